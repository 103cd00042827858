//! The Kubernetes backend's manifests.

use crate::error::FleetError;
use crate::plan::Fleet;
use std::path::{Path, PathBuf};

/// Writes one Job manifest per run into `dir`.
pub fn write_manifests(_fleet: &Fleet, _dir: &Path) -> Result<Vec<PathBuf>, FleetError> {
    Err(FleetError::Backend(
        "Kubernetes manifests are not written yet".into(),
    ))
}

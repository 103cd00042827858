//! Why a fleet could not be planned, run or collected. Every message names the entry or the
//! file at fault and what to change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read the plan {path}")]
    ReadPlan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the plan {path} is not valid TOML for a fleet: {message}(see examples/fleet.toml)")]
    ParsePlan { path: PathBuf, message: String },
    /// An entry of the plan that names something pilot does not know, or cannot run.
    #[error("the plan's {entry}: {reason}")]
    Entry { entry: String, reason: String },
    /// Runs that cannot fit their model on their GPUs, all of them at once.
    #[error("{} run(s) cannot fit their model on their GPU profile:\n  {}\nuse more or larger GPUs for these models, or drop them from the plan", reasons.len(), reasons.join("\n  "))]
    DoesNotFit { reasons: Vec<String> },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the fleet state {path} cannot be read ({reason}); it records which runs are done: fix or move it, nothing measured is in it"
    )]
    State { path: PathBuf, reason: String },
    #[error("{0}")]
    Backend(String),
    #[error(transparent)]
    Schema(#[from] pilot_core::schema::SchemaError),
    #[error(transparent)]
    Characterize(#[from] pilot_characterize::error::CharacterizeError),
}

impl FleetError {
    pub(crate) fn entry(entry: impl Into<String>, reason: impl std::fmt::Display) -> FleetError {
        FleetError::Entry {
            entry: entry.into(),
            reason: reason.to_string(),
        }
    }
}

//! `pilot fleet collect`: every run's `summary.csv` into one measurement dataset in pilot's
//! schema (what `pilot train --data` reads), and every run's `requests.parquet` into one
//! request table beside it.
//!
//! Rows are read and written by core's schema functions, the ones `characterize
//! --append-to` and `train` use, so the dataset is exactly what a hand-run characterization
//! appends. A run's partial levels are collected too (they were measured); the notes say
//! which runs are not done.

use crate::error::FleetError;
use crate::local::run_dir;
use crate::plan::Fleet;
use crate::state::{Fate, FleetState, STATE_FILE};
use pilot_characterize::run::latest_run;
use pilot_core::requests::{RequestRecord, read_requests, write_requests};
use pilot_core::schema::{Measurement, read_measurements, write_measurements};
use std::path::{Path, PathBuf};

/// What was collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub rows: usize,
    pub requests: usize,
    /// Runs with a summary (all their levels, or some).
    pub runs_with_rows: usize,
    pub dataset: PathBuf,
    pub requests_path: Option<PathBuf>,
    pub notes: Vec<String>,
}

/// The request table's path beside the dataset: `<stem>-requests.parquet`.
pub fn requests_path(dataset: &Path) -> PathBuf {
    let stem = dataset
        .file_stem()
        .map_or_else(|| "fleet".into(), |s| s.to_string_lossy().into_owned());
    dataset.with_file_name(format!("{stem}-requests.parquet"))
}

/// Collects the runs of `fleet` found under `results` into `dataset` (CSV or Parquet by its
/// extension). An existing dataset is refused rather than replaced: it may hold measurements.
pub fn collect(fleet: &Fleet, results: &Path, dataset: &Path) -> Result<Collected, FleetError> {
    let req_path = requests_path(dataset);
    for p in [dataset, req_path.as_path()] {
        if p.exists() {
            return Err(FleetError::Backend(format!(
                "{} already exists; collect into a new file (nothing measured is overwritten)",
                p.display()
            )));
        }
    }
    let state = FleetState::read(&results.join(STATE_FILE))?;
    let mut rows: Vec<Measurement> = Vec::new();
    let mut records: Vec<RequestRecord> = Vec::new();
    let mut out = Collected {
        dataset: dataset.to_path_buf(),
        ..Default::default()
    };
    for run in &fleet.runs {
        // Each fleet run always resumes into its own `--out`, so it has one run directory.
        let dir = latest_run(&run_dir(results, &run.id));
        let fate = state.as_ref().map_or(Fate::Pending, |s| s.fate(&run.id));
        let Some(summary) = dir
            .as_ref()
            .map(|d| d.join("summary.csv"))
            .filter(|p| p.exists())
        else {
            out.notes.push(format!(
                "{}: nothing measured yet ({})",
                run.id,
                fate.name()
            ));
            continue;
        };
        let mut these = read_measurements(&summary)?;
        if fate != Fate::Done {
            out.notes.push(format!(
                "{}: {} level(s) collected, but the run is {}",
                run.id,
                these.len(),
                fate.name()
            ));
        }
        for r in &mut these {
            r.source = format!("pilot fleet {}: run {}", fleet.name, run.id);
        }
        out.runs_with_rows += 1;
        rows.extend(these);
        let req = summary.with_file_name("requests.parquet");
        if req.exists() {
            records.extend(read_requests(&req)?);
        }
    }
    if rows.is_empty() {
        return Err(FleetError::Backend(format!(
            "no run of '{}' has measured anything under {}; run `pilot fleet run` first (with the same --results)",
            fleet.name,
            results.display()
        )));
    }
    if let Some(parent) = dataset.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| FleetError::Io {
            what: "create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_measurements(&rows, dataset)?;
    out.rows = rows.len();
    if !records.is_empty() {
        write_requests(&records, &req_path)?;
        out.requests = records.len();
        out.requests_path = Some(req_path);
    }
    Ok(out)
}

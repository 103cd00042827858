//! [`CharacterizeError`]: why a run of `pilot characterize` failed.
//!
//! One enum for every layer (options, target, sweep, summary, tuning), in its own module
//! because all of them return it and it depends on none of them: each message names what to
//! do next, so the binary can print it as is.

use crate::client::ClientError;
use crate::workload::WorkloadError;
use pilot_core::schema::SchemaError;
use pilot_core::slo::SloError;
use pilot_core::validate::InvalidValue;
use std::path::PathBuf;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum CharacterizeError {
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Slo(#[from] SloError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot start the embedded engine")]
    Engine(#[source] pilot_engine::EngineError),
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "interrupted ({signal}): {requests} requests and {levels} complete levels are saved in {out}; run again with --resume to finish"
    )]
    Interrupted {
        out: PathBuf,
        /// What stopped the run: `Ctrl-C`, `SIGTERM` or `SIGHUP`.
        signal: &'static str,
        requests: usize,
        levels: usize,
    },
    #[error(
        "--append-to {path}: {reason}; nothing was measured. Fix or move the dataset, or leave out --append-to (the rows are always written to <out>/summary.csv)"
    )]
    AppendTarget {
        path: PathBuf,
        reason: String,
        /// The error that made the dataset unusable, when there is one.
        #[source]
        source: Option<pilot_core::BoxError>,
    },
    #[error(
        "cannot append this run's rows to {path}. The rows are safe in {summary} (the same measurement schema): pass it with --data beside the dataset, or append it once the dataset is fixed"
    )]
    Append {
        path: PathBuf,
        summary: PathBuf,
        #[source]
        source: Box<CharacterizeError>,
    },
    #[error("tuning: {0}")]
    Tune(String),
    /// A `--launch` command whose server never became healthy (measured without tuning).
    #[error("the launched server: {0}")]
    Launch(String),
}

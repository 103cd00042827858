//! pilot-predict: latency and throughput of an LLM on a GPU profile, for LLMs and GPUs never
//! measured.
//!
//! Two models answer the same question ([`LatencyModel::predict`] on a [`Scenario`]):
//!
//! - [`PhysicsModel`] (no training): prefill and decode-step times from FLOPs, bytes moved and
//!   tensor-parallel all-reduces; KV-cache capacity from the memory left after weights and
//!   activations; an analytic continuous-batching steady state for closed-loop users,
//!   open-loop rates and offline batches. "Does not fit" is an answer ([`Fit::DoesNotFit`]).
//! - [`Predictor`] (trained with [`train`]): one LightGBM model per target metric that learns
//!   the *log-ratio* of the measurement to the physics estimate. Trees cannot extrapolate, so
//!   they are only asked for a correction factor; the physics carries the scaling to larger
//!   models and faster GPUs. Intervals are cross-conformal (residuals of models that never saw
//!   the LLM), and a scenario outside the training ranges is flagged out of domain.
//!
//! [`OverLengths`] runs either over a length distribution: the server's state at the mean
//! lengths, each request's TTFT and end-to-end latency mixed over length buckets, so a p99
//! SLO sees the long requests that set it.
//!
//! [`eval::leave_one_group_out`] measures both on held-out LLMs or GPUs, and [`analyze()`] gives
//! LLM-Pilot's factor analysis (correlations and permutation importance).
//!
//! Trees are trained by LightGBM (lightgbm3) but evaluated by [`gbdt`], a small reader of
//! LightGBM's model text: it is `Send + Sync` (so [`Predictor::shipped`] can be a `&'static`),
//! needs no FFI call per prediction, and stores only what prediction needs (the shipped file
//! stays small).

pub mod analyze;
pub mod calibrate;
pub mod commands;
pub mod eval;
pub mod features;
pub mod gbdt;
mod open_loop;
pub mod over_lengths;
pub mod physics;
pub mod predictor;
pub mod rows;
pub mod scenario;
pub mod train;

pub use analyze::{AnalyzeOptions, AnalyzeReport, analyze};
pub use eval::{EvalOptions, EvalReport, GroupBy, leave_one_group_out};
pub use over_lengths::{LengthBucket, OverLengths};
pub use physics::{PhysicsModel, PhysicsParams};
pub use predictor::Predictor;
pub use scenario::{
    Fit, Load, Prediction, Scenario, ScenarioFile, read_scenarios, write_predictions,
};
pub use train::{TrainOptions, train};

/// Everything that can go wrong predicting, training or loading. Messages carry the numbers
/// that disagree and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("{0}")]
    Model(#[from] pilot_core::llm::ModelError),
    #[error("{0}")]
    Gpu(#[from] pilot_core::gpu::GpuError),
    #[error("scenario: {0}")]
    Scenario(String),
    /// The engine does not run the scenario's layout or weight format on its GPU.
    #[error("scenario: {0}")]
    Unsupported(#[from] pilot_core::engine::Unsupported),
    #[error("training: {0}")]
    Train(String),
    #[error("LightGBM: {0}")]
    LightGbm(String),
    #[error("predictor file {path}: {reason}")]
    PredictorFile {
        path: String,
        reason: String,
        /// The io or JSON error behind it, when there is one.
        #[source]
        source: Option<pilot_core::BoxError>,
    },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// A file could not be read, parsed or written: `what` says which; the io or CSV error
    /// is the source.
    #[error("{path}: {what}")]
    File {
        path: String,
        what: String,
        #[source]
        source: pilot_core::BoxError,
    },
    #[error(transparent)]
    Schema(#[from] pilot_core::schema::SchemaError),
    #[error("{0}")]
    Invalid(#[from] pilot_core::validate::InvalidValue),
}

/// A latency/throughput model: the physics model alone, or the trained predictor. `Sync`:
/// a recommend search asks one model about thousands of candidates from several threads.
pub trait LatencyModel: Sync {
    /// Predicts one scenario. A configuration that cannot run (weights larger than memory, a
    /// request longer than the KV cache) is `Ok` with [`Fit::DoesNotFit`] and no metrics.
    fn predict(&self, s: &Scenario) -> Result<Prediction, PredictError>;

    /// Predicts many scenarios; the trained predictor batches its tree evaluations here.
    fn predict_many(&self, s: &[Scenario]) -> Vec<Result<Prediction, PredictError>> {
        s.iter().map(|x| self.predict(x)).collect()
    }
}

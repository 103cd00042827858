//! pilot-recommend: the cheapest GPU configuration that meets latency SLOs.
//!
//! A config optimizer in Vidur's sense: it only calls the others. It enumerates candidate
//! *profiles* (GPU type x tensor-parallel count x quantization x engine), asks a
//! [`LatencyModel`] whether each fits and, by search on the model, the largest load one
//! replica sustains within the SLOs ([`capacity`]); then replicas = ceil(demand / capacity),
//! cost = replicas x the profile's price, and candidates are ranked by cost.
//!
//! - [`search`]: the candidates, the capacity search and the ranking.
//! - [`render`]: the ranked table with its evidence, the `--json` frontier and the CSV export.
//! - [`eval`]: LLM-Pilot's recommendation benchmark (leave-one-LLM-out, S/O score).
//! - [`eval_stacks`]: the same protocol on AIConfigurator's measured deployments (today's
//!   LLMs, GPUs and engines).
//! - [`commands`]: clap-free entry points for `pilot recommend` and `pilot eval recommend`.

pub mod commands;
pub mod eval;
pub mod eval_stacks;
pub mod render;
pub mod search;

pub use search::{
    Candidate, Margin, RecommendError, RecommendOptions, Recommendation, Verdict, capacity,
    recommend,
};

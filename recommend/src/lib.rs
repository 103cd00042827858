//! pilot-recommend: the cheapest GPU configuration that meets latency SLOs.
//!
//! A config optimizer in Vidur's sense: it only calls the others. It enumerates candidate
//! *profiles* (GPU type x engine x weight format x KV-cache dtype x parallel layout, aggregated
//! or disaggregated), asks a
//! [`LatencyModel`] whether each fits and, by search on the model, the largest load one
//! replica sustains within the SLOs ([`capacity`]); then replicas = ceil(demand / capacity),
//! cost = replicas x the profile's price, and candidates are ranked by cost.
//!
//! - [`space`]: the profiles searched (GPU x engine x weights x KV dtype x layout, aggregated
//!   or disaggregated), only those an engine can start.
//! - [`search`]: the capacity search and the ranking by cost, with the Pareto frontier.
//! - [`mix`]: mixed fleets (`--mix`): the demand split across GPU types by request length.
//! - [`deploy`]: the chosen row's launch commands (`--emit cmd`) and Kubernetes manifests.
//! - [`render`]: the ranked table with its evidence, the `--json` frontier and the CSV export.
//! - [`html_report`]: `--report FILE`, the frontier plotted with the answer, as one HTML page.
//! - [`eval`]: LLM-Pilot's recommendation benchmark (leave-one-LLM-out, S/O score).
//! - [`eval_stacks`]: the same protocol on AIConfigurator's measured deployments (today's
//!   LLMs, GPUs and engines).
//! - [`commands`]: clap-free entry points for `pilot recommend` and `pilot eval recommend`.

pub mod commands;
pub mod deploy;
pub mod eval;
pub mod eval_stacks;
pub mod html_report;
pub mod mix;
pub mod render;
pub mod search;
pub mod space;

pub use search::{
    Candidate, Margin, RecommendError, RecommendOptions, Recommendation, Verdict, capacity,
    recommend,
};

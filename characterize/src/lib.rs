//! pilot-characterize: measurements in pilot's schema.
//!
//! - [`run`]: `pilot characterize`, the benchmark client: [`run::characterize`] sweeps load
//!   levels against an OpenAI-compatible server (or the embedded engine) and writes
//!   `requests.parquet` and `summary.csv`. The layers under it, each used only by those above:
//!   - [`tune`]: `--tune`, trials of whole sweeps; [`sweep`]: one target's levels;
//!     `target`: the server measured (an endpoint or the embedded engine).
//!   - [`summary`]: `summary.csv` and `--append-to`; [`report`]: what a run produced;
//!     [`runinfo`]: `run.json`, the run's metadata; [`results`]: `results.json`, vLLM's shape;
//!     [`options`]: what it can be told; [`error`]: why it failed.
//!   - [`client`]: one streamed request and its token times; [`sse`]: the event decoder.
//!   - [`level`]: closed-loop users, open-loop arrivals, trace replay; [`workload`]: lengths
//!     and prompts; [`dataset`]: `--dataset` kinds (random, ShareGPT text, shared prefixes,
//!     multi-turn conversations).
//!   - [`store`]: the request table written as the run goes; [`telemetry`]: `/metrics`, NVML.
//!   - [`tokenize`]: exact-length text prompts through the model's tokenizer.
//!   - SLOs (`--slo`) are `pilot_core::slo`, shared with recommend.
//! - [`html_report`]: `pilot report`, one HTML page of runs' plots and tables, read back from
//!   their directories.
//! - [`commands`]: the clap-free entry point the binary calls: checks the values as typed,
//!   runs [`run::characterize`] and returns the text to print.

pub mod client;
pub mod commands;
pub mod dataset;
pub mod error;
pub mod html_report;
pub mod level;
pub mod options;
pub mod report;
pub mod results;
pub mod run;
pub mod runinfo;
pub mod sse;
pub mod store;
pub mod summary;
pub mod sweep;
mod target;
pub mod telemetry;
pub mod tokenize;
pub mod tune;
pub mod workload;

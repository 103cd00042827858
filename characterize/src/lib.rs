//! pilot-characterize: measurements in pilot's schema.
//!
//! - [`import`]: public datasets (LLM-Pilot, LLM-Inference-Bench) translated into
//!   measurement rows, reproducing each source's own aggregation.
//! - [`run`]: `pilot characterize`, the benchmark client: [`run::characterize`] sweeps load
//!   levels against an OpenAI-compatible server (or the embedded engine) and writes
//!   `requests.parquet` and `summary.csv`.
//!   - [`client`]: one streamed request and its token times; [`sse`]: the event decoder.
//!   - [`level`]: closed-loop users, open-loop arrivals, trace replay; [`workload`]: lengths.
//!   - [`store`]: the request table written as the run goes; [`telemetry`]: `/metrics`, NVML.
//!   - [`tokenize`]: exact-length text prompts through the model's tokenizer.
//!   - [`slo`]: `--slo` parsing and checks (shared with recommend); [`tune`]: `--tune`.

pub mod client;
pub mod import;
pub mod level;
pub mod run;
pub mod slo;
pub mod sse;
pub mod store;
pub mod telemetry;
pub mod tokenize;
pub mod tune;
pub mod workload;

//! pilot-core: what characterize, predict and recommend share.
//!
//! - [`units`]: quantities with units (no bare `f64` crosses a public API).
//! - [`load`]: the one [`Load`] of an operating point (closed-loop users, an open-loop rate or
//!   an offline batch) and its [`load::Mode`].
//! - [`requests`]: the per-request table and its aggregation into rows.
//! - [`schema`]: the one measurement row (an operating point and its latency/throughput) and
//!   the per-request record, with CSV/Parquet I/O through polars.
//! - [`metrics`]: the one definition of TTFT, ITL, E2E and throughput, the one list of their
//!   names ([`metrics::Metric`], [`metrics::Stat`]), and the aggregation of request records
//!   into measurement rows.
//! - [`slo`]: latency objectives (`--slo ttft=200ms`), their parsing and their checks per row
//!   and per request, shared by characterize's goodput and recommend's feasibility.
//! - [`gpu`], [`price`], [`llm`]: catalogs that turn names into numbers; [`listing`]: how
//!   `pilot catalog` prints them.
//! - [`engine`]: the one table of serving engines: names, aliases, KV-cache layout,
//!   scheduling, quantizations and parallel layouts.
//! - [`quant`]: the one [`quant::Quantization`]: weight formats as serving stacks name them
//!   (fp8 per tensor or per block, nvfp4, mxfp4, int4 w4a16), their bytes per weight.
//! - [`layout`]: the parallel [`layout::Layout`] of a worker (tensor, pipeline, expert,
//!   attention-data parallel) and the [`layout::Serving`] mode (aggregated or disaggregated).
//! - [`validate`]: the one check of counts, rates, names and engine names users give pilot.
//! - [`rng`]: the one seeded random number generator and stable hash.
//! - [`table`]: the one style of printed tables.
//! - [`command`]: what a clap-free command returns to the binary.

pub mod command;
pub mod engine;
pub mod gpu;
pub mod layout;
pub mod listing;
pub mod llm;
pub mod load;
pub mod metrics;
pub mod price;
pub mod quant;
pub mod replace;
pub mod requests;
pub mod rng;
pub mod schema;
pub mod slo;
pub mod table;
pub mod units;
pub mod validate;

pub use load::Load;
pub use units::*;

/// A wrapped cause of any type (io, polars, csv, serde_json, reqwest), kept as an error's
/// `#[source]` so the binary prints it as a "caused by" line and can find a broken pipe in it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A CSV error as a cause: the io::Error itself when the CSV reader only passed one on
/// (csv::Error has no `source()`), so a missing file or a broken pipe stays recognisable.
pub fn csv_cause(e: csv::Error) -> BoxError {
    if !e.is_io_error() {
        return Box::new(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Box::new(io),
        _ => unreachable!("is_io_error() said it holds an io::Error"),
    }
}

/// `shared/data` (or `$PILOT_SHARED_DATA`) when it holds `marker`, for tests that read the
/// public data; `None`, with a note, where it is absent, so those tests skip.
#[cfg(test)]
pub(crate) fn shared_data_with(marker: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("PILOT_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
        });
    if dir.join(marker).exists() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found (set PILOT_SHARED_DATA); skipping",
            dir.join(marker).display()
        );
        None
    }
}

//! pilot-core: what characterize, predict and recommend share.
//!
//! - [`units`]: quantities with units (no bare `f64` crosses a public API).
//! - [`requests`]: the per-request table and its aggregation into rows.
//! - [`schema`]: the one measurement row (an operating point and its latency/throughput) and
//!   the per-request record, with CSV/Parquet I/O through polars.
//! - [`metrics`]: the one definition of TTFT, ITL, E2E and throughput, and the aggregation
//!   of request records into measurement rows.
//! - [`gpu`], [`price`], [`llm`]: catalogs that turn names into numbers.

pub mod gpu;
pub mod llm;
pub mod metrics;
pub mod price;
pub mod requests;
pub mod schema;
pub mod units;

pub use units::*;

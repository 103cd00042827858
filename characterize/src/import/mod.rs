//! Importers of public measurements into pilot's schema.
//!
//! Each importer reproduces its source's own aggregation (so that its published numbers come
//! back out) and keeps what the source's summary dropped: failures by kind, tails.
//! Ambiguous GPU names are mapped from what the source documents, and the choice is
//! reported in [`Import::notes`].

pub mod llm_inference_bench;
pub mod llm_pilot;

use pilot_core::schema::{Measurement, SchemaError};

/// Rows imported from one source, with notes on every judgement call made.
#[derive(Debug, Default)]
pub struct Import {
    pub rows: Vec<Measurement>,
    /// Human-readable notes: GPU name mappings, flagged rows, skipped rows.
    pub notes: Vec<String>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{path}: {reason}")]
    Data { path: String, reason: String },
    #[error("{path}: GPU '{name}': {reason}")]
    Gpu {
        path: String,
        name: String,
        reason: String,
    },
    #[error("{path}: model '{name}': {reason}")]
    Model {
        path: String,
        name: String,
        reason: String,
    },
}

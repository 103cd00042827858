//! pilot-import: public measurements translated into pilot's schema.
//!
//! A crate of its own because nothing that measures uses it: the importers need only core's
//! schema, metric definitions and catalogs, so the binary (`pilot dataset import`) and
//! predict's evaluation against published predictions get them without the load generator,
//! the engine and its tensor library.
//!
//! - [`llm_pilot`]: LLM-Pilot's per-request characterization data (closed loop, TGIS).
//! - [`llm_inference_bench`]: LLM-Inference-Bench's offline static batches.
//! - [`aiconfigurator`]: NVIDIA AIConfigurator's silicon measurements (vLLM, SGLang,
//!   TensorRT-LLM; aggregated and disaggregated; closed loop at a fixed concurrency).
//! - The result files of benchmark tools people already ran ([`tool::Tool`]):
//!   [`vllm_bench`] (`vllm bench serve --save-result`), [`guidellm`] (`guidellm benchmark`'s
//!   report), [`aiperf`] (`profile_export_aiperf.json`), [`inference_perf`] (its per-stage
//!   lifecycle reports) and [`llmperf`] (`*_summary.json`, `*_individual_responses.json`).
//!   They say the load and the latencies but not the hardware: [`tool::Given`] fills that.
//!
//! Each importer reproduces its source's own aggregation (so that its published numbers come
//! back out) and keeps what the source's summary dropped: failures by kind, tails.
//! Ambiguous GPU names are mapped from what the source documents, and the choice is
//! reported in [`Import::notes`].

pub mod aiconfigurator;
pub mod aiperf;
pub mod guidellm;
pub mod inference_perf;
pub mod llm_inference_bench;
pub mod llm_pilot;
pub mod llmperf;
pub mod tool;
pub mod vllm_bench;

#[cfg(test)]
mod tool_tests;

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
    /// The file could not be opened or parsed; the reader's error is the source.
    #[error("{path}: {what}")]
    Read {
        path: String,
        what: String,
        #[source]
        source: pilot_core::BoxError,
    },
    #[error("{path}: GPU '{name}': {reason}")]
    Gpu {
        path: String,
        name: String,
        reason: String,
    },
    /// A benchmark tool's file does not say a fact every row needs, and no flag gave it.
    #[error("{path}: {tool}'s file does not say {what}; give it with {flag}")]
    Missing {
        path: String,
        tool: &'static str,
        what: String,
        flag: String,
    },
    #[error("{path}: model '{name}' is not one pilot can resolve")]
    Model {
        path: String,
        name: String,
        #[source]
        source: Box<pilot_core::llm::ModelError>,
    },
}

/// A CSV source as an importer expects it: the reader and its header. What each source
/// needs to say about itself: `name` ("LLM-Inference-Bench results"), `where_to_find` (the
/// shared-data path, for a missing file), `expected` (the file and columns it should be) and
/// its required `columns`.
pub(crate) struct CsvSource<'a> {
    pub name: &'a str,
    pub where_to_find: &'a str,
    pub expected: &'a str,
    pub columns: &'a [&'a str],
}

impl CsvSource<'_> {
    /// Opens `path` and checks its header. A file that is not this dataset fails here rather
    /// than importing as zero rows: a header without the columns has no records that fail to
    /// parse.
    pub(crate) fn open(
        &self,
        path: &std::path::Path,
    ) -> Result<(csv::Reader<std::fs::File>, csv::StringRecord), ImportError> {
        let p = path.display().to_string();
        let mut rdr = csv::Reader::from_path(path).map_err(|e| {
            let what = if path.exists() {
                "cannot open it".to_string()
            } else {
                format!("no such file; {}", self.where_to_find)
            };
            read_error(&p, what, e)
        })?;
        let headers = rdr
            .headers()
            .map_err(|e| read_error(&p, format!("not CSV; {}", self.expected), e))?
            .clone();
        let missing: Vec<&str> = self
            .columns
            .iter()
            .copied()
            .filter(|c| !headers.iter().any(|h| h.trim() == *c))
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::Data {
                path: p,
                reason: format!(
                    "not {}: no column {}; {}",
                    self.name,
                    missing.join(", "),
                    self.expected
                ),
            });
        }
        Ok((rdr, headers))
    }
}

/// A CSV reader's error as an import error about `path`, the cause kept.
pub(crate) fn read_error(path: &str, what: String, e: csv::Error) -> ImportError {
    ImportError::Read {
        path: path.to_string(),
        what,
        source: pilot_core::csv_cause(e),
    }
}

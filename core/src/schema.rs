//! The measurement schema: one row per operating point, shared by characterize (which
//! measures rows), the importers (which translate public data into rows), predict (which
//! learns from rows and writes predicted rows) and recommend (which reads predicted rows).
//!
//! An operating point is an LLM on some GPUs behind some engine under some [`Load`]: `closed`
//! (N users, each sending its next request when the last ends: LLM-Pilot's setting), `open`
//! (Poisson arrivals at a rate) or `offline` (one static batch: LLM-Inference-Bench's
//! setting). A file stores it in the `mode` column and the one load column that mode names
//! (`users`, `rate_rps`, `batch_size`); the other two are left empty when written and not
//! read.
//!
//! Where it runs is a [`Serving`] (`pilot_core::layout`): the parallel layout of its workers
//! and whether prefill and decode share them, in the layout columns ([`layout::COLUMNS`]);
//! `quantization` and `kv_cache_dtype` are [`Quantization`]s (`bf16`, `fp8`, `fp8_block`,
//! `nvfp4`, `mxfp4`, `int4`, ...).
//!
//! Files are CSV or Parquet (by extension), read and written with polars. Every file carries
//! a `schema_version` column so that a future change of meaning is detected rather than
//! silently misread. Version 2 added the layout columns, `kv_cache_dtype` and the
//! quantization formats beyond a width. A version-1 file still reads (it has none of them, and
//! every row of it is one tensor-parallel group over `gpu_count`, which is what version 2
//! reads for rows without layout cells); the number was raised because a version-1 reader
//! would read a disaggregated or attention-data-parallel row of version 2 as a plain
//! tensor-parallel one without a word, and refuses a version-2 file instead. Reading validates: a missing required column, an unreadable value, an
//! unknown mode or a row without the load column of its mode is an error that names the
//! file, the column (and row) and the fix.

use crate::BoxError;
use crate::layout::{self, LayoutCells, Serving};
pub use crate::load::{Load, Mode};
use crate::metrics::{Metric, Stat, Summary};
use crate::quant::Quantization;
use crate::units::{Gigabytes, Percent, RequestsPerSec, TokensPerSec, Watts};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version written to the `schema_version` column (see the module doc for what changed).
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest version still read: files from [`OLDEST_SCHEMA_VERSION`] to [`SCHEMA_VERSION`]
/// are accepted.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// One operating point and what was measured (or predicted) there.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The LLM, as a catalog id (Hugging Face Hub id where one exists).
    pub model: String,
    /// The GPU type, as a GPU catalog name.
    pub gpu: String,
    /// All GPUs of the deployment (prefill and decode workers together when disaggregated);
    /// always `serving.gpus()` in a row read from a file.
    pub gpu_count: u32,
    /// How the LLM is spread over the GPUs ([`Serving`]); one tensor-parallel group over
    /// `gpu_count` unless a source says otherwise.
    pub serving: Serving,
    /// The serving engine (vllm, tgis, tensorrt-llm, pilot, ...).
    pub engine: String,
    pub engine_version: Option<String>,
    /// The load offered: its mode and amount (the `mode` column and the one load column
    /// that mode names: `users`, `rate_rps` or `batch_size`).
    pub load: Load,
    /// Weight format served (fp16 unless known otherwise).
    pub quantization: Option<Quantization>,
    /// KV-cache format, when the source says (engines default to the 16-bit type, or fp8
    /// with fp8 weights on some).
    pub kv_cache_dtype: Option<Quantization>,
    /// The server's batch budget (max sequences or batch weight), when tuned or known.
    pub max_batch: Option<u32>,
    /// Length of the measurement window (excluding warm-up).
    pub duration: Option<Duration>,
    pub metrics: Summary,
    pub gpu_utilization: Option<Percent>,
    pub gpu_memory_used: Option<Gigabytes>,
    pub gpu_power: Option<Watts>,
    pub kv_cache_usage: Option<Percent>,
    /// Where the row came from (a file, a run directory, a predictor).
    pub source: String,
    /// Comma-separated quality flags (e.g. `implausible_throughput`); empty when clean.
    pub flags: String,
}

impl Measurement {
    /// A row with the identifying columns set and nothing measured yet.
    pub fn new(model: &str, gpu: &str, gpu_count: u32, engine: &str, load: Load) -> Measurement {
        Measurement {
            model: model.to_string(),
            gpu: gpu.to_string(),
            gpu_count,
            // A count of 0 has no layout; the row is invalid anyway and reading it back fails
            // with gpu_count named.
            serving: Serving::tensor_parallel(gpu_count.max(1))
                .expect("one tensor-parallel group of at least one GPU is a valid layout"),
            engine: engine.to_string(),
            engine_version: None,
            load,
            quantization: None,
            kv_cache_dtype: None,
            max_batch: None,
            duration: None,
            metrics: Summary::default(),
            gpu_utilization: None,
            gpu_memory_used: None,
            gpu_power: None,
            kv_cache_usage: None,
            source: String::new(),
            flags: String::new(),
        }
    }

    /// Sets the deployment and `gpu_count` with it (its GPUs).
    pub fn set_serving(&mut self, serving: Serving) {
        self.serving = serving;
        self.gpu_count = serving.gpus();
    }

    /// Whether a quality flag is set.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(',').any(|f| f.trim() == flag)
    }

    /// Adds a quality flag (idempotent).
    pub fn add_flag(&mut self, flag: &str) {
        if !self.has_flag(flag) {
            if !self.flags.is_empty() {
                self.flags.push(',');
            }
            self.flags.push_str(flag);
        }
    }
}

/// Errors reading or writing measurement files.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("cannot read {path}: no such file (check the path)")]
    NotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error(
        "{path} has no column '{column}', so it is not a pilot measurement file (schema v{SCHEMA_VERSION}). \
         Required columns: {required}. Produce one with `pilot dataset import`, `pilot dataset aggregate` or `pilot characterize`"
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        required: String,
    },
    #[error("{path}, column '{column}', row {row}: {reason}")]
    BadValue {
        path: PathBuf,
        column: String,
        row: usize,
        reason: String,
    },
    #[error("{path}, column '{column}' cannot be read as {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: &'static str,
        #[source]
        source: PolarsError,
    },
    #[error(
        "{path} has schema_version {found}, but this pilot reads versions {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION}: re-create it with this pilot's `pilot dataset` commands (or use a newer pilot)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: unsupported extension; use .csv or .parquet")]
    Extension { path: PathBuf },
}

/// The column prefixes of the metrics with percentile columns ([`Metric::column_prefix`]),
/// for code that walks columns by name. Shared by writer, reader, predictor targets and SLO
/// checks so each metric has one name.
pub const LATENCY_METRICS: [&str; 5] = {
    let mut out = [""; 5];
    let mut i = 0;
    while i < out.len() {
        out[i] = Metric::ALL[i].column_prefix();
        i += 1;
    }
    out
};

/// All statistic suffixes of a latency metric, in column order ([`Stat::name`]).
pub fn stat_suffixes() -> impl Iterator<Item = &'static str> {
    Stat::ALL.into_iter().map(Stat::name)
}

/// A metric column of a summary, named once: `ttft_ms_p50` is `Latency(Ttft, P50)`. Parse a
/// name once and read or write with it many times (predict does so on every prediction);
/// [`metric_value`] and [`set_metric_value`] are the by-name shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricColumn {
    Latency(Metric, Stat),
    OutputThroughput,
    TotalThroughput,
    RequestThroughput,
}

impl MetricColumn {
    /// `None` for a name that is no metric column.
    pub fn parse(name: &str) -> Option<MetricColumn> {
        Some(match name {
            "output_throughput_tok_s" => MetricColumn::OutputThroughput,
            "total_throughput_tok_s" => MetricColumn::TotalThroughput,
            "request_throughput_rps" => MetricColumn::RequestThroughput,
            _ => {
                let (metric, stat) = name.rsplit_once('_')?;
                MetricColumn::Latency(Metric::from_column_prefix(metric)?, stat.parse().ok()?)
            }
        })
    }

    /// Every metric column ([`metric_columns`]), in file order.
    pub fn all() -> &'static [MetricColumn] {
        static ALL: std::sync::OnceLock<Vec<MetricColumn>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            metric_columns()
                .iter()
                .map(|c| MetricColumn::parse(c).expect("a metric column parses"))
                .collect()
        })
    }

    pub fn get(self, m: &Summary) -> Option<f64> {
        match self {
            MetricColumn::Latency(metric, stat) => metric.stat(m, stat),
            MetricColumn::OutputThroughput => m.output_throughput.map(|x| x.0),
            MetricColumn::TotalThroughput => m.total_throughput.map(|x| x.0),
            MetricColumn::RequestThroughput => m.request_throughput.map(|x| x.0),
        }
    }

    pub fn set(self, m: &mut Summary, v: Option<f64>) {
        match self {
            MetricColumn::Latency(metric, stat) => metric.set_stat(m, stat, v),
            MetricColumn::OutputThroughput => m.output_throughput = v.map(TokensPerSec),
            MetricColumn::TotalThroughput => m.total_throughput = v.map(TokensPerSec),
            MetricColumn::RequestThroughput => m.request_throughput = v.map(RequestsPerSec),
        }
    }
}

/// The value of a metric column of a row by its schema name (`itl_ms_p50`,
/// `output_throughput_tok_s`, ...): the one lookup predict and recommend use for targets.
pub fn metric_value(row: &Measurement, column: &str) -> Option<f64> {
    MetricColumn::parse(column)?.get(&row.metrics)
}

/// Sets a metric column of a row by its schema name; false if the name is not a metric.
pub fn set_metric_value(row: &mut Measurement, column: &str, v: Option<f64>) -> bool {
    match MetricColumn::parse(column) {
        Some(c) => {
            c.set(&mut row.metrics, v);
            true
        }
        None => false,
    }
}

/// Every metric column name, in file order.
pub fn metric_columns() -> Vec<String> {
    let mut cols: Vec<String> = LATENCY_METRICS
        .iter()
        .flat_map(|m| stat_suffixes().map(move |s| format!("{m}_{s}")))
        .collect();
    cols.extend(
        [
            "output_throughput_tok_s",
            "total_throughput_tok_s",
            "request_throughput_rps",
        ]
        .map(String::from),
    );
    cols
}

/// Columns a file must have to be read as measurements.
pub const REQUIRED_COLUMNS: [&str; 5] = ["model", "gpu", "gpu_count", "engine", "mode"];

/// Writes rows to `path` (`.csv` or `.parquet`), creating parent directories.
pub fn write_measurements(rows: &[Measurement], path: &Path) -> Result<(), SchemaError> {
    let mut df = to_frame(rows).map_err(|e| SchemaError::Write {
        path: path.into(),
        source: e.into(),
    })?;
    write_frame(&mut df, path)
}

/// Reads and validates rows from a `.csv` or `.parquet` file.
pub fn read_measurements(path: &Path) -> Result<Vec<Measurement>, SchemaError> {
    let df = read_frame(path)?;
    from_frame(&df, path)
}

/// Writes any frame to CSV or Parquet by extension (used for the request table too).
pub fn write_frame(df: &mut DataFrame, path: &Path) -> Result<(), SchemaError> {
    let err = |e: BoxError| SchemaError::Write {
        path: path.into(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
    }
    let ext = extension(path)?;
    let file = std::fs::File::create(path).map_err(|e| err(e.into()))?;
    match ext {
        Ext::Csv => CsvWriter::new(file).finish(df).map_err(|e| err(e.into())),
        Ext::Parquet => ParquetWriter::new(file)
            .finish(df)
            .map(|_| ())
            .map_err(|e| err(e.into())),
    }
}

/// Checks, before any work is done, that a file to write has an extension pilot writes
/// (`.csv`, `.parquet`); the error names both.
pub fn check_table_path(path: &Path) -> Result<(), SchemaError> {
    extension(path).map(|_| ())
}

/// Writes a table made as CSV text (header line first) to `path` as CSV or Parquet by
/// extension. Why through CSV: writers that build rows of text (predictions) then need no
/// columnar code of their own, and the Parquet file holds the types pilot's own CSV reader
/// would infer, so either file reads back the same.
pub fn write_csv_table(csv: Vec<u8>, path: &Path) -> Result<(), SchemaError> {
    let err = |e: BoxError| SchemaError::Write {
        path: path.into(),
        source: e,
    };
    match extension(path)? {
        Ext::Csv => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
            }
            std::fs::write(path, csv).map_err(|e| err(e.into()))
        }
        Ext::Parquet => {
            let mut df = CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(None)
                .into_reader_with_file_handle(std::io::Cursor::new(csv))
                .finish()
                .map_err(|e| err(e.into()))?;
            write_frame(&mut df, path)
        }
    }
}

/// Reads any CSV or Parquet file into a frame.
pub fn read_frame(path: &Path) -> Result<DataFrame, SchemaError> {
    let err = |e: BoxError| SchemaError::Read {
        path: path.into(),
        source: e,
    };
    let ext = extension(path)?;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SchemaError::NotFound {
                path: path.into(),
                source: e,
            });
        }
        Err(e) => return Err(err(e.into())),
        Ok(_) => {}
    }
    match ext {
        Ext::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.into()))
            .and_then(|r| r.finish())
            .map_err(|e| err(e.into())),
        Ext::Parquet => {
            let file = std::fs::File::open(path).map_err(|e| err(e.into()))?;
            ParquetReader::new(file).finish().map_err(|e| err(e.into()))
        }
    }
}

enum Ext {
    Csv,
    Parquet,
}

fn extension(path: &Path) -> Result<Ext, SchemaError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
    {
        Some(e) if e == "csv" => Ok(Ext::Csv),
        Some(e) if e == "parquet" || e == "pq" => Ok(Ext::Parquet),
        _ => Err(SchemaError::Extension { path: path.into() }),
    }
}

fn str_col(name: &str, rows: &[Measurement], f: impl Fn(&Measurement) -> Option<String>) -> Column {
    Column::new(
        name.into(),
        rows.iter().map(f).collect::<Vec<Option<String>>>(),
    )
}

fn u64_col(name: &str, rows: &[Measurement], f: impl Fn(&Measurement) -> Option<u64>) -> Column {
    Column::new(
        name.into(),
        rows.iter().map(f).collect::<Vec<Option<u64>>>(),
    )
}

fn f64_col(name: &str, rows: &[Measurement], f: impl Fn(&Measurement) -> Option<f64>) -> Column {
    Column::new(
        name.into(),
        rows.iter().map(f).collect::<Vec<Option<f64>>>(),
    )
}

/// Rows as a polars frame in schema column order.
pub fn to_frame(rows: &[Measurement]) -> PolarsResult<DataFrame> {
    let mut cols = vec![
        u64_col("schema_version", rows, |_| Some(SCHEMA_VERSION as u64)),
        str_col("model", rows, |r| Some(r.model.clone())),
        str_col("gpu", rows, |r| Some(r.gpu.clone())),
        u64_col("gpu_count", rows, |r| Some(r.gpu_count as u64)),
        str_col("engine", rows, |r| Some(r.engine.clone())),
        str_col("engine_version", rows, |r| r.engine_version.clone()),
        str_col("mode", rows, |r| Some(r.load.mode().name().to_string())),
        u64_col("users", rows, |r| r.load.users().map(u64::from)),
        f64_col("rate_rps", rows, |r| r.load.rate().map(|x| x.0)),
        u64_col("batch_size", rows, |r| r.load.batch_size().map(u64::from)),
        str_col("quantization", rows, |r| {
            r.quantization.map(|d| d.name().to_string())
        }),
        str_col("kv_cache_dtype", rows, |r| {
            r.kv_cache_dtype.map(|d| d.name().to_string())
        }),
    ];
    for c in layout::COLUMNS {
        cols.push(u64_col(c, rows, |r| {
            LayoutCells::of(r.serving).get(c).map(u64::from)
        }));
    }
    cols.extend([
        u64_col("max_batch", rows, |r| r.max_batch.map(u64::from)),
        f64_col("duration_s", rows, |r| r.duration.map(|d| d.as_secs_f64())),
        f64_col("input_tokens_mean", rows, |r| r.metrics.input_tokens_mean),
        f64_col("output_tokens_mean", rows, |r| r.metrics.output_tokens_mean),
    ]);
    for c in metric_columns() {
        cols.push(f64_col(&c, rows, |r| metric_value(r, &c)));
    }
    cols.extend([
        u64_col("requests_ok", rows, |r| Some(r.metrics.requests_ok)),
        u64_col("requests_failed", rows, |r| Some(r.metrics.requests_failed)),
        u64_col("requests_failed_oom", rows, |r| {
            Some(r.metrics.requests_failed_oom)
        }),
        f64_col("gpu_utilization_pct", rows, |r| {
            r.gpu_utilization.map(|x| x.0)
        }),
        f64_col("gpu_memory_used_gb", rows, |r| {
            r.gpu_memory_used.map(|x| x.0)
        }),
        f64_col("gpu_power_w", rows, |r| r.gpu_power.map(|x| x.0)),
        f64_col("kv_cache_usage_pct", rows, |r| {
            r.kv_cache_usage.map(|x| x.0)
        }),
        str_col("source", rows, |r| Some(r.source.clone())),
        str_col("flags", rows, |r| Some(r.flags.clone())),
    ]);
    DataFrame::new_infer_height(cols)
}

/// A column reader that reports problems with the file, column and row.
struct Reader<'a> {
    df: &'a DataFrame,
    path: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, column: &str, row: usize, reason: impl Into<String>) -> SchemaError {
        SchemaError::BadValue {
            path: self.path.into(),
            column: column.into(),
            row,
            reason: reason.into(),
        }
    }

    fn column_type(&self, column: &str, expected: &'static str, e: PolarsError) -> SchemaError {
        SchemaError::ColumnType {
            path: self.path.into(),
            column: column.into(),
            expected,
            source: e,
        }
    }

    fn strings(&self, name: &str) -> Result<Option<Vec<Option<String>>>, SchemaError> {
        let Ok(col) = self.df.column(name) else {
            return Ok(None);
        };
        let col = col
            .cast(&DataType::String)
            .map_err(|e| self.column_type(name, "text", e))?;
        let ca = col.str().map_err(|e| self.column_type(name, "text", e))?;
        Ok(Some(ca.iter().map(|v| v.map(str::to_string)).collect()))
    }

    fn floats(&self, name: &str) -> Result<Option<Vec<Option<f64>>>, SchemaError> {
        let Ok(col) = self.df.column(name) else {
            return Ok(None);
        };
        let cast = col
            .cast(&DataType::Float64)
            .map_err(|e| self.column_type(name, "numbers", e))?;
        let ca = cast
            .f64()
            .map_err(|e| self.column_type(name, "numbers", e))?;
        let values: Vec<Option<f64>> = ca.iter().collect();
        // A non-strict cast turns junk into null: find it and say which row.
        if col.dtype() == &DataType::String {
            let raw = col.str().map_err(|e| self.column_type(name, "text", e))?;
            for (i, (v, r)) in values.iter().zip(raw.iter()).enumerate() {
                if let (None, Some(text)) = (v, r)
                    && !text.trim().is_empty()
                {
                    return Err(self.bad(name, i, format!("'{text}' is not a number")));
                }
            }
        }
        Ok(Some(values))
    }

    fn counts(&self, name: &str) -> Result<Option<Vec<Option<u64>>>, SchemaError> {
        let Some(values) = self.floats(name)? else {
            return Ok(None);
        };
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(x) if x < 0.0 || x.fract() != 0.0 => {
                    Err(self.bad(name, i, format!("{x} is not a whole non-negative count")))
                }
                Some(x) => Ok(Some(x as u64)),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn at<T: Clone>(col: &Option<Vec<Option<T>>>, i: usize) -> Option<T> {
    col.as_ref().and_then(|c| c[i].clone())
}

/// Validates and converts a frame read from `path` into rows.
pub fn from_frame(df: &DataFrame, path: &Path) -> Result<Vec<Measurement>, SchemaError> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for required in REQUIRED_COLUMNS {
        if !names.iter().any(|n| n == required) {
            return Err(SchemaError::MissingColumn {
                path: path.into(),
                column: required.into(),
                required: REQUIRED_COLUMNS.join(", "),
            });
        }
    }
    let r = Reader { df, path };
    if let Some(versions) = r.counts("schema_version")?
        && let Some(v) = versions
            .iter()
            .flatten()
            .find(|v| !(OLDEST_SCHEMA_VERSION as u64..=SCHEMA_VERSION as u64).contains(*v))
    {
        return Err(SchemaError::Version {
            path: path.into(),
            found: *v as u32,
        });
    }
    let model = r.strings("model")?;
    let gpu = r.strings("gpu")?;
    let gpu_count = r.counts("gpu_count")?;
    let engine = r.strings("engine")?;
    let engine_version = r.strings("engine_version")?;
    let mode = r.strings("mode")?;
    let users = r.counts("users")?;
    let rate = r.floats("rate_rps")?;
    let batch = r.counts("batch_size")?;
    let quant = r.strings("quantization")?;
    let kv_dtype = r.strings("kv_cache_dtype")?;
    let layout_cols: Vec<(&str, Option<Vec<Option<u64>>>)> = layout::COLUMNS
        .into_iter()
        .map(|c| r.counts(c).map(|v| (c, v)))
        .collect::<Result<_, _>>()?;
    let max_batch = r.counts("max_batch")?;
    let duration = r.floats("duration_s")?;
    let in_mean = r.floats("input_tokens_mean")?;
    let out_mean = r.floats("output_tokens_mean")?;
    let metric_cols: Vec<(String, Option<Vec<Option<f64>>>)> = metric_columns()
        .into_iter()
        .map(|c| r.floats(&c).map(|v| (c, v)))
        .collect::<Result<_, _>>()?;
    let ok = r.counts("requests_ok")?;
    let failed = r.counts("requests_failed")?;
    let oom = r.counts("requests_failed_oom")?;
    let util = r.floats("gpu_utilization_pct")?;
    let mem = r.floats("gpu_memory_used_gb")?;
    let power = r.floats("gpu_power_w")?;
    let kv = r.floats("kv_cache_usage_pct")?;
    let source = r.strings("source")?;
    let flags = r.strings("flags")?;

    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let need = |col: &Option<Vec<Option<String>>>, name: &str| {
            at(col, i)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| r.bad(name, i, "empty; every row needs a value"))
        };
        let mode_text = need(&mode, "mode")?;
        let mode = mode_text.parse::<Mode>().map_err(|e| r.bad("mode", i, e))?;
        let load = Load::from_columns(
            mode,
            at(&users, i).map(|u| u as u32),
            at(&rate, i).map(RequestsPerSec),
            at(&batch, i).map(|u| u as u32),
        )
        .ok_or_else(|| r.bad(mode.column(), i, mode.missing_load()))?;
        let count = at(&gpu_count, i)
            .ok_or_else(|| r.bad("gpu_count", i, "empty; every row needs a value"))?;
        let format = |col: &Option<Vec<Option<String>>>, name: &str| {
            at(col, i)
                .filter(|s| !s.is_empty())
                .map(|q| q.parse::<Quantization>().map_err(|e| r.bad(name, i, e)))
                .transpose()
        };
        let quantization = format(&quant, "quantization")?;
        let kv_cache_dtype = format(&kv_dtype, "kv_cache_dtype")?;
        let mut cells = LayoutCells::default();
        for (c, v) in &layout_cols {
            let v = at(v, i)
                .map(|v| u32::try_from(v).map_err(|_| r.bad(c, i, format!("{v} is too large"))))
                .transpose()?;
            cells.set(c, v);
        }
        let mut row = Measurement::new(
            &need(&model, "model")?,
            &need(&gpu, "gpu")?,
            count as u32,
            &need(&engine, "engine")?,
            load,
        );
        row.engine_version = at(&engine_version, i).filter(|s| !s.is_empty());
        row.quantization = quantization;
        row.kv_cache_dtype = kv_cache_dtype;
        if cells != LayoutCells::default() {
            row.serving = cells
                .serving(Some(count as u32))
                .map_err(|e| r.bad("layout", i, e.to_string()))?;
        }
        row.max_batch = at(&max_batch, i).map(|u| u as u32);
        let raw_duration = at(&duration, i);
        row.duration = raw_duration
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(Duration::from_secs_f64);
        row.metrics.input_tokens_mean = at(&in_mean, i);
        row.metrics.output_tokens_mean = at(&out_mean, i);
        for (c, v) in &metric_cols {
            set_metric_value(&mut row, c, at(v, i));
        }
        row.metrics.requests_ok = at(&ok, i).unwrap_or(0);
        row.metrics.requests_failed = at(&failed, i).unwrap_or(0);
        row.metrics.requests_failed_oom = at(&oom, i).unwrap_or(0);
        row.gpu_utilization = at(&util, i).map(Percent);
        row.gpu_memory_used = at(&mem, i).map(Gigabytes);
        row.gpu_power = at(&power, i).map(Watts);
        row.kv_cache_usage = at(&kv, i).map(Percent);
        row.source = at(&source, i).unwrap_or_default();
        row.flags = at(&flags, i).unwrap_or_default();
        if raw_duration.is_some_and(|d| !d.is_finite()) || !non_finite_columns(&row).is_empty() {
            row.add_flag(FLAG_NON_FINITE);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Flag of a row read with NaN or an infinity in a numeric column. Such a value is no
/// measurement (a crashed run, a division by zero upstream); the row is kept, like the
/// importers' flagged rows, so that `pilot dataset show` counts it as invalid and training
/// skips it with a note, instead of either trusting it or dropping it unseen.
pub const FLAG_NON_FINITE: &str = "non_finite_value";

/// The numeric columns of a row that hold NaN or an infinity.
pub fn non_finite_columns(row: &Measurement) -> Vec<String> {
    let mut out: Vec<String> = metric_columns()
        .into_iter()
        .filter(|c| metric_value(row, c).is_some_and(|v| !v.is_finite()))
        .collect();
    for (name, v) in [
        ("rate_rps", row.load.rate().map(|x| x.0)),
        ("input_tokens_mean", row.metrics.input_tokens_mean),
        ("output_tokens_mean", row.metrics.output_tokens_mean),
        ("gpu_utilization_pct", row.gpu_utilization.map(|x| x.0)),
        ("gpu_memory_used_gb", row.gpu_memory_used.map(|x| x.0)),
        ("gpu_power_w", row.gpu_power.map(|x| x.0)),
        ("kv_cache_usage_pct", row.kv_cache_usage.map(|x| x.0)),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Layout, Workers};
    use crate::metrics::{RequestTimings, summarize};
    use crate::units::Millis;

    fn sample() -> Vec<Measurement> {
        let reqs = [
            RequestTimings::from_token_times(10, &[Millis(50.0), Millis(60.0)], Millis(60.0), None),
            RequestTimings::from_token_times(
                30,
                &[Millis(90.0), Millis(105.0), Millis(125.0)],
                Millis(125.0),
                None,
            ),
        ];
        let mut a = Measurement::new(
            "mistralai/Mistral-7B-v0.1",
            "H100-SXM-80GB",
            2,
            "vllm",
            Load::Users(8),
        );
        a.duration = Some(Duration::from_secs(120));
        a.metrics = summarize(&reqs, Duration::from_secs(120));
        a.quantization = Some(Quantization::Fp8);
        a.source = "test".into();
        a.add_flag("x");
        let b = Measurement::new("gpt2", "L4", 1, "pilot", Load::Batch(32));
        let c = Measurement::new("gpt2", "L4", 1, "pilot", Load::Rate(RequestsPerSec(2.5)));
        // Today's deployments: attention-DP with experts spread, and disaggregated serving.
        let mut d = Measurement::new(
            "deepseek-ai/DeepSeek-V3",
            "B200-SXM-180GB",
            8,
            "sglang",
            Load::Users(64),
        );
        d.set_serving(Serving::Aggregated(Layout::new(1, 1, 8, 8).unwrap()));
        d.quantization = Some(Quantization::Fp8Block);
        d.kv_cache_dtype = Some(Quantization::Fp8);
        let mut e = Measurement::new(
            "deepseek-ai/DeepSeek-R1",
            "B200-SXM-180GB",
            1,
            "tensorrt-llm",
            Load::Users(36),
        );
        e.set_serving(Serving::Disaggregated {
            prefill: Workers::new(1, Layout::new(1, 1, 4, 4).unwrap()).unwrap(),
            decode: Workers::new(4, Layout::new(8, 1, 8, 1).unwrap()).unwrap(),
        });
        e.quantization = Some(Quantization::Nvfp4);
        vec![a, b, c, d, e]
    }

    /// `sample()` written as CSV in `dir` with the cell of `row` (0-based) and `col` set to
    /// `value`; returns the file's path.
    fn sample_csv_with(dir: &Path, row: usize, col: &str, value: &str) -> PathBuf {
        let p = dir.join("m.csv");
        write_measurements(&sample(), &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let j = header.iter().position(|h| *h == col).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut cells: Vec<&str> = lines[row + 1].split(',').collect();
        cells[j] = value;
        lines[row + 1] = cells.join(",");
        let q = dir.join("edited.csv");
        std::fs::write(&q, lines.join("\n")).unwrap();
        q
    }

    /// NaN and infinities are read (the file is not refused) but the row is flagged invalid,
    /// and a non-finite duration does not panic.
    #[test]
    fn non_finite_values_flag_the_row() {
        let dir = tempfile::tempdir().unwrap();
        // Row 1 is offline, row 2 open (whose load column is rate_rps).
        for (row, col, bad) in [
            (1, "ttft_ms_p50", "inf"),
            (1, "e2e_ms_mean", "NaN"),
            (1, "duration_s", "inf"),
            (2, "rate_rps", "-inf"),
        ] {
            let q = sample_csv_with(dir.path(), row, col, bad);
            let rows = read_measurements(&q).unwrap();
            for (i, r) in rows.iter().enumerate() {
                assert_eq!(
                    r.has_flag(FLAG_NON_FINITE),
                    i == row,
                    "{col}={bad}, row {i}"
                );
            }
            if col != "duration_s" {
                assert_eq!(non_finite_columns(&rows[row]), vec![col.to_string()]);
            }
        }
    }

    /// A row is read only with the load column its mode names: a closed row without users is
    /// an error naming the file, the row, the column and the fix, never a row without a load.
    #[test]
    fn a_row_without_its_load_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        for (row, col) in [(0, "users"), (1, "batch_size"), (2, "rate_rps")] {
            let q = sample_csv_with(dir.path(), row, col, "");
            let e = read_measurements(&q).unwrap_err().to_string();
            assert!(
                e.contains("edited.csv")
                    && e.contains(&format!("column '{col}', row {row}"))
                    && e.contains(&format!("fill in {col}")),
                "{e}"
            );
        }
        // Another mode's column does not stand in for the missing one.
        let p = dir.path().join("x.csv");
        std::fs::write(
            &p,
            "model,gpu,gpu_count,engine,mode,users,rate_rps\nm,H100,1,vllm,closed,,4\n",
        )
        .unwrap();
        let e = read_measurements(&p).unwrap_err().to_string();
        assert!(
            e.contains("column 'users', row 0") && e.contains("closed"),
            "{e}"
        );
    }

    /// The columns of other modes are not read: a closed row's load is its users alone.
    #[test]
    fn other_load_columns_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let q = sample_csv_with(dir.path(), 0, "rate_rps", "3.5");
        let rows = read_measurements(&q).unwrap();
        assert_eq!(rows[0].load, Load::Users(8));
        assert_eq!(rows, sample());
    }

    #[test]
    fn rows_round_trip_through_csv_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let rows = sample();
        for name in ["m.csv", "m.parquet"] {
            let p = dir.path().join(name);
            write_measurements(&rows, &p).unwrap();
            let back = read_measurements(&p).unwrap();
            assert_eq!(back, rows, "{name}");
        }
    }

    /// A file written before layouts (schema version 1: no layout or kv_cache_dtype column,
    /// quantization a width) reads, each row one tensor-parallel group over gpu_count.
    #[test]
    fn version_1_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.csv");
        std::fs::write(
            &p,
            "schema_version,model,gpu,gpu_count,engine,engine_version,mode,users,rate_rps,batch_size,quantization,max_batch,duration_s,input_tokens_mean,output_tokens_mean,ttft_ms_p50,source,flags\n\
             1,EleutherAI/gpt-neox-20b,A10,2,tgis,,closed,1,,,,,120.0,112.6,22.25,118.5,llm-pilot:requests.parquet,\"\"\n\
             1,meta-llama/Llama-2-7b-hf,H100-SXM-80GB,4,vllm,,offline,,,64,int4,,,128.0,128.0,,llm-inference-bench:line 2,\n",
        )
        .unwrap();
        let rows = read_measurements(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].serving, Serving::tensor_parallel(2).unwrap());
        assert_eq!(rows[1].serving.decode_layout().tensor(), 4);
        assert_eq!(rows[0].quantization, None);
        assert_eq!(rows[1].quantization, Some(Quantization::Int4W4a16));
        assert_eq!(rows[0].metrics.ttft.p50.map(|x| x.0), Some(118.5));
        // The shipped files are version 1 and read the same way.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/predictor/llm-inference-bench.csv");
        let rows = read_measurements(&shipped).unwrap();
        assert!(
            rows.iter()
                .all(|r| r.serving == Serving::tensor_parallel(r.gpu_count).unwrap())
        );
        // A version this pilot does not know is refused, naming the versions it reads.
        std::fs::write(
            &p,
            "schema_version,model,gpu,gpu_count,engine,mode,users\n3,m,H100,1,vllm,closed,1\n",
        )
        .unwrap();
        let e = read_measurements(&p).unwrap_err().to_string();
        assert!(
            e.contains("schema_version 3") && e.contains("versions 1 to 2"),
            "{e}"
        );
    }

    /// Layout cells that disagree with gpu_count are an error naming the row and the numbers.
    #[test]
    fn a_layout_that_disagrees_with_gpu_count_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let q = sample_csv_with(dir.path(), 3, "tensor_parallel", "2");
        let e = read_measurements(&q).unwrap_err().to_string();
        assert!(
            e.contains("row 3") && e.contains("gpu_count 8") && e.contains("16 GPUs"),
            "{e}"
        );
        let q = sample_csv_with(dir.path(), 3, "attention_dp", "4");
        let e = read_measurements(&q).unwrap_err().to_string();
        assert!(
            e.contains("row 3") && e.contains("expert_parallel 8"),
            "{e}"
        );
        let q = sample_csv_with(dir.path(), 4, "decode_workers", "2");
        let e = read_measurements(&q).unwrap_err().to_string();
        assert!(e.contains("row 4") && e.contains("gpu_count 36"), "{e}");
    }

    #[test]
    fn metric_names_are_one_vocabulary() {
        let rows = sample();
        let cols = metric_columns();
        assert!(cols.contains(&"ttft_ms_p50".to_string()));
        assert!(cols.contains(&"nttft_ms_per_token_p99".to_string()));
        assert_eq!(
            metric_value(&rows[0], "itl_ms_p50"),
            rows[0].metrics.itl.p50.map(|x| x.0)
        );
        let mut r = rows[1].clone();
        assert!(set_metric_value(&mut r, "e2e_ms_p90", Some(3.0)));
        assert_eq!(r.metrics.e2e.p90, Some(Millis(3.0)));
        assert!(!set_metric_value(&mut r, "bogus_p50", Some(1.0)));
    }

    #[test]
    fn missing_column_names_the_column_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "model,gpu,engine,mode\nm,H100,vllm,closed\n").unwrap();
        let e = read_measurements(&p).unwrap_err().to_string();
        assert!(
            e.contains("gpu_count") && e.contains("pilot dataset import"),
            "{e}"
        );
    }

    #[test]
    fn junk_values_name_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(
            &p,
            "model,gpu,gpu_count,engine,mode,itl_ms_p50\nm,H100,1,vllm,closed,12\nm,H100,1,vllm,closed,fast\n",
        )
        .unwrap();
        let e = read_measurements(&p).unwrap_err().to_string();
        assert!(
            e.contains("itl_ms_p50") && e.contains("row 1") && e.contains("fast"),
            "{e}"
        );
        std::fs::write(
            &p,
            "model,gpu,gpu_count,engine,mode\nm,H100,1,vllm,sideways\n",
        )
        .unwrap();
        let e = read_measurements(&p).unwrap_err().to_string();
        assert!(e.contains("sideways") && e.contains("closed"), "{e}");
    }

    #[test]
    fn wrong_extension_and_missing_file_are_errors() {
        assert!(matches!(
            read_measurements(Path::new("a.json")),
            Err(SchemaError::Extension { .. })
        ));
        let e = read_measurements(Path::new("/nonexistent/a.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    /// The io or polars error behind a failed read is kept as the source, for the binary to
    /// print as "caused by", not flattened into the message.
    #[test]
    fn read_errors_keep_their_cause() {
        use std::error::Error;
        let e = read_measurements(Path::new("/nonexistent/a.csv")).unwrap_err();
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("garbled.parquet");
        std::fs::write(&p, "not parquet").unwrap();
        let e = read_measurements(&p).unwrap_err();
        assert!(matches!(e, SchemaError::Read { .. }), "{e}");
        assert!(
            e.source()
                .is_some_and(|s| s.downcast_ref::<PolarsError>().is_some()),
            "{e:?}"
        );
        assert!(!e.to_string().contains(&e.source().unwrap().to_string()));
    }
}

//! Where a run's rows go: `<out>/summary.csv` ([`write_summary`], read back by
//! [`read_summary`] for `--resume`) and the dataset of `--append-to`.
//!
//! `summary.csv` holds one row per level in pilot's measurement schema, re-aggregated from the
//! requests with the one metric definition ([`pilot_core::metrics`]: TTFT, ITL, TPOT, E2E as
//! `vllm bench serve` defines them), plus telemetry, and four columns beyond the schema:
//! `goodput_rps` (requests per second that met every SLO, per request), `slo_met` (the
//! level's statistics meet every SLO), `server_running_mean`, `server_waiting_mean`. It is
//! rewritten after every level, so its reading and writing live apart from the sweep that
//! calls them.

use crate::error::CharacterizeError;
use crate::report::LevelResult;
use crate::telemetry::ServerGauges;
use pilot_core::schema::{
    Measurement, SchemaError, from_frame, read_frame, read_measurements, to_frame, write_frame,
    write_measurements,
};
use pilot_core::units::RequestsPerSec;
use polars::prelude::{Column, DataType, PolarsError};
use std::path::Path;

const EXTRA_COLUMNS: [&str; 4] = [
    "goodput_rps",
    "slo_met",
    "server_running_mean",
    "server_waiting_mean",
];

/// Writes `summary.csv`: the schema's columns, then [`EXTRA_COLUMNS`].
pub fn write_summary(levels: &[LevelResult], path: &Path) -> Result<(), CharacterizeError> {
    let rows: Vec<Measurement> = levels.iter().map(|l| l.row.clone()).collect();
    let werr = |e: PolarsError| SchemaError::Write {
        path: path.into(),
        source: e.into(),
    };
    let mut df = to_frame(&rows).map_err(werr)?;
    let f = |name: &str, v: Vec<Option<f64>>| Column::new(name.into(), v);
    let extra = [
        f(
            EXTRA_COLUMNS[0],
            levels.iter().map(|l| l.goodput.map(|g| g.0)).collect(),
        ),
        Column::new(
            EXTRA_COLUMNS[1].into(),
            levels
                .iter()
                .map(|l| l.slo_met)
                .collect::<Vec<Option<bool>>>(),
        ),
        f(
            EXTRA_COLUMNS[2],
            levels.iter().map(|l| l.server.running_mean).collect(),
        ),
        f(
            EXTRA_COLUMNS[3],
            levels.iter().map(|l| l.server.waiting_mean).collect(),
        ),
    ];
    for c in extra {
        df.with_column(c).map_err(werr)?;
    }
    write_frame(&mut df, path)?;
    Ok(())
}

/// Reads a `summary.csv` written by [`write_summary`] (levels marked resumed).
pub fn read_summary(path: &Path) -> Result<Vec<LevelResult>, CharacterizeError> {
    let df = read_frame(path)?;
    let rows = from_frame(&df, path)?;
    let n = df.height();
    let floats = |name: &str| -> Vec<Option<f64>> {
        let Ok(c) = df.column(name).and_then(|c| c.cast(&DataType::Float64)) else {
            return vec![None; n];
        };
        match c.f64() {
            Ok(ca) => ca.iter().collect(),
            Err(_) => vec![None; n],
        }
    };
    let met: Vec<Option<bool>> = match df.column("slo_met").and_then(|c| c.cast(&DataType::String))
    {
        Ok(c) => match c.str() {
            Ok(ca) => ca
                .iter()
                .map(|v| v.map(|s| s.eq_ignore_ascii_case("true")))
                .collect(),
            Err(_) => vec![None; n],
        },
        Err(_) => vec![None; n],
    };
    let (goodput, running, waiting) = (
        floats("goodput_rps"),
        floats("server_running_mean"),
        floats("server_waiting_mean"),
    );
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| LevelResult {
            server: ServerGauges {
                running_mean: running[i],
                waiting_mean: waiting[i],
                kv_cache_usage: row.kv_cache_usage,
            },
            row,
            goodput: goodput[i].map(RequestsPerSec),
            slo_met: met[i],
            resumed: true,
        })
        .collect())
}

/// Appends `rows` to the dataset of `--append-to` (created if missing).
pub(crate) fn append_rows(dataset: &Path, rows: &[Measurement]) -> Result<(), CharacterizeError> {
    let mut all = if dataset.exists() {
        read_measurements(dataset)?
    } else {
        Vec::new()
    };
    all.extend_from_slice(rows);
    write_measurements(&all, dataset)?;
    Ok(())
}

/// Checks `--append-to` before anything is measured: an existing dataset must read as
/// measurements and be writable; a new one needs a supported extension and a writable
/// directory (tried by writing an empty dataset beside it, then removing it).
pub(crate) fn check_append_target(dataset: &Path) -> Result<(), CharacterizeError> {
    let caused =
        |reason: &str, source: Option<pilot_core::BoxError>| CharacterizeError::AppendTarget {
            path: dataset.to_path_buf(),
            reason: reason.into(),
            source,
        };
    let bad = |reason: String| caused(&reason, None);
    if dataset.exists() {
        read_measurements(dataset)
            .map_err(|e| caused("cannot read it as a dataset", Some(e.into())))?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(dataset)
            .map_err(|e| caused("cannot write it", Some(e.into())))?;
        return Ok(());
    }
    let name = dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the extension: it picks the format (and an unsupported one fails here).
    let probe = dataset.with_file_name(format!(".pilot-check-{}-{name}", std::process::id()));
    let written = write_measurements(&[], &probe);
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| match e {
        SchemaError::Extension { .. } => bad("unsupported extension; use .csv or .parquet".into()),
        SchemaError::Write { source, .. } => caused("cannot create it", Some(source)),
        other => bad(other.to_string()),
    })
}

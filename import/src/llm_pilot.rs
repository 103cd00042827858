//! LLM-Pilot's characterization data (Łazuka et al., SC'24; IBM/LLM-performance-prediction).
//!
//! `requests.parquet` holds one row per request of 526 closed-loop runs: 10 LLMs x 14 GPU
//! profiles x 8 user levels, 120 s each, served by TGIS with streaming. This importer
//! reproduces LLM-Pilot's own aggregation exactly, so its published medians come back:
//!
//! - TTFT = element 1 of `latency_ms_per_token` (element 0 is the stream's first message,
//!   which carries no generated token);
//! - ITLs = elements 2.. of it, pooled over the successful requests of a run;
//! - nTTFT = TTFT / input tokens, per request;
//! - output throughput = output tokens of successful requests / experiment duration.
//!
//! Beyond LLM-Pilot's medians it keeps the tails (p90/p95/p99, means), TPOT, E2E, and the
//! failures: status 408 covers out-of-memory (told apart by the server's text) and
//! deadline errors; 9999 other errors.

use crate::{Import, ImportError};
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::metrics::{FailureKind, RequestTimings, summarize};
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::{Gigabytes, GigabytesPerSec, Millis};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The GPUs as LLM-Pilot's `gpu_features.csv` documents them (memory GB, bandwidth GB/s,
/// is_sxm), transcribed from IBM/LLM-performance-prediction@3c66483. They decide which
/// catalog SKU a bare name like `A100` means.
pub const DOCUMENTED_GPUS: [(&str, f64, f64, bool); 5] = [
    ("A10", 24.0, 600.0, false),
    ("A100", 40.0, 1555.0, false),
    ("H100", 80.0, 3350.0, true),
    ("T4", 16.0, 300.0, false),
    ("V100", 16.0, 900.0, false),
];

/// The serving engine LLM-Pilot measured (IBM's fork of text-generation-inference).
pub const ENGINE: &str = "tgis";

/// The columns read from `requests.parquet`.
const COLUMNS: [&str; 11] = [
    "model",
    "gpu_type",
    "n_gpus",
    "num_users",
    "status",
    "errors",
    "experiment_duration_s",
    "n_input_tokens",
    "n_output_tokens",
    "latency_ms",
    "latency_ms_per_token",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RunKey {
    model: String,
    gpu: String,
    gpu_count: u32,
    users: u32,
}

const NOT_GAPS: &str = "column 'latency_ms_per_token' is not a list of numbers";

/// Imports LLM-Pilot's `requests.parquet` into one measurement row per run.
pub fn import(path: &Path) -> Result<Import, ImportError> {
    let p = path.display().to_string();
    let data = |reason: String| ImportError::Data {
        path: p.clone(),
        reason,
    };
    let read = |what: String, source: pilot_core::BoxError| ImportError::Read {
        path: p.clone(),
        what,
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file; LLM-Pilot's requests are in ../shared/data/llm-pilot/requests.parquet"
        } else {
            "cannot open it"
        };
        read(what.into(), e.into())
    })?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| read("not a readable Parquet file".into(), e.into()))?;
    for c in COLUMNS {
        if df.column(c).is_err() {
            return Err(data(format!(
                "missing column '{c}': this is not LLM-Pilot's requests table (expected columns {})",
                COLUMNS.join(", ")
            )));
        }
    }
    let col = |name: &str| df.column(name).expect("checked above");
    let text = |name: &str| -> Result<Vec<Option<String>>, ImportError> {
        let not_text = |e: PolarsError| read(format!("column '{name}' is not text"), e.into());
        let c = col(name).cast(&DataType::String).map_err(not_text)?;
        Ok(c.str()
            .map_err(not_text)?
            .iter()
            .map(|v| v.map(String::from))
            .collect())
    };
    let num = |name: &str| -> Result<Vec<Option<f64>>, ImportError> {
        let not_numeric =
            |e: PolarsError| read(format!("column '{name}' is not numeric"), e.into());
        let c = col(name)
            .strict_cast(&DataType::Float64)
            .map_err(not_numeric)?;
        Ok(c.f64().map_err(not_numeric)?.iter().collect())
    };
    let (models, gpus, errors) = (text("model")?, text("gpu_type")?, text("errors")?);
    let (n_gpus, users, status) = (num("n_gpus")?, num("num_users")?, num("status")?);
    let (duration, n_in, n_out, latency) = (
        num("experiment_duration_s")?,
        num("n_input_tokens")?,
        num("n_output_tokens")?,
        num("latency_ms")?,
    );
    let gaps = col("latency_ms_per_token")
        .cast(&DataType::List(Box::new(DataType::Float64)))
        .map_err(|e| read(NOT_GAPS.into(), e.into()))?;
    let gaps = gaps.list().map_err(|e| read(NOT_GAPS.into(), e.into()))?;

    let mut runs: BTreeMap<RunKey, (Vec<RequestTimings>, f64)> = BTreeMap::new();
    for (i, g) in gaps.amortized_iter().enumerate() {
        let missing = |c: &str| data(format!("row {i}: column '{c}' is empty"));
        let key = RunKey {
            model: models[i].clone().ok_or_else(|| missing("model"))?,
            gpu: gpus[i].clone().ok_or_else(|| missing("gpu_type"))?,
            gpu_count: n_gpus[i].ok_or_else(|| missing("n_gpus"))? as u32,
            users: users[i].ok_or_else(|| missing("num_users"))? as u32,
        };
        let gaps: Vec<f64> = match g {
            Some(s) => s
                .as_ref()
                .f64()
                .map_err(|e| read(format!("row {i}: {NOT_GAPS}"), e.into()))?
                .iter()
                .flatten()
                .collect(),
            None => Vec::new(),
        };
        let ok = status[i] == Some(200.0);
        let failure =
            (!ok).then(
                || match FailureKind::classify(errors[i].as_deref().unwrap_or("")) {
                    // A 408 without an OOM text is the load generator's timeout.
                    FailureKind::Other if status[i] == Some(408.0) => FailureKind::Timeout,
                    k => k,
                },
            );
        let timing = RequestTimings {
            input_tokens: n_in[i].unwrap_or(0.0) as u64,
            output_tokens: n_out[i].unwrap_or(gaps.len().saturating_sub(1) as f64) as u64,
            ttft: Millis(gaps.get(1).copied().unwrap_or(f64::NAN)),
            itls: gaps.iter().skip(2).copied().map(Millis).collect(),
            e2e: Millis(latency[i].unwrap_or(f64::NAN)),
            failure,
        };
        let entry = runs.entry(key).or_insert_with(|| (Vec::new(), 0.0));
        entry.0.push(timing);
        entry.1 = duration[i].unwrap_or(entry.1);
    }

    let gpu_catalog = GpuCatalog::builtin();
    let models_catalog = ModelCatalog::builtin();
    let mut out = Import::default();
    let mut gpu_names: BTreeMap<String, String> = BTreeMap::new();
    let mut model_ids: BTreeMap<String, String> = BTreeMap::new();
    for (key, (timings, secs)) in runs {
        if !gpu_names.contains_key(&key.gpu) {
            let (_, mem, bw, sxm) = DOCUMENTED_GPUS
                .iter()
                .find(|d| d.0.eq_ignore_ascii_case(&key.gpu))
                .copied()
                .ok_or_else(|| ImportError::Gpu {
                    path: p.clone(),
                    name: key.gpu.clone(),
                    reason: "not documented in LLM-Pilot's gpu_features.csv".into(),
                })?;
            let choice = gpu_catalog
                .resolve_documented(&key.gpu, Gigabytes(mem), GigabytesPerSec(bw), Some(sxm))
                .map_err(|e| ImportError::Gpu {
                    path: p.clone(),
                    name: key.gpu.clone(),
                    reason: e.to_string(),
                })?;
            out.notes
                .push(format!("LLM-Pilot gpu_features.csv: {}", choice.reason));
            gpu_names.insert(key.gpu.clone(), choice.spec.name.clone());
        }
        if !model_ids.contains_key(&key.model) {
            let spec = models_catalog
                .resolve(&key.model)
                .map_err(|e| ImportError::Model {
                    path: p.clone(),
                    name: key.model.clone(),
                    source: Box::new(e),
                })?;
            model_ids.insert(key.model.clone(), spec.id.clone());
        }
        let window = Duration::from_secs_f64(secs);
        let mut row = Measurement::new(
            &model_ids[&key.model],
            &gpu_names[&key.gpu],
            key.gpu_count,
            ENGINE,
            Load::Users(key.users),
        );
        row.duration = Some(window);
        row.metrics = summarize(&timings, window);
        row.source = format!(
            "llm-pilot:{}",
            path.file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("requests.parquet")
        );
        out.rows.push(row);
    }
    out.notes.push(format!("{} runs imported", out.rows.len()));
    Ok(out)
}

/// Where the shared public data lives for tests: `$PILOT_SHARED_DATA` or `../shared/data`
/// beside the repository.
#[cfg(test)]
pub(crate) fn shared_data() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("PILOT_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    dir.exists().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every published LLM-Pilot point (median nTTFT, median ITL) is reproduced from the
    /// raw requests, to rounding.
    #[test]
    fn reproduces_llm_pilots_published_medians() {
        let Some(data) = shared_data() else {
            eprintln!("skipped: ../shared/data not found (set PILOT_SHARED_DATA)");
            return;
        };
        let imported = import(&data.join("llm-pilot/requests.parquet")).unwrap();
        assert_eq!(imported.rows.len(), 526);
        let catalog = GpuCatalog::builtin();
        let models = ModelCatalog::builtin();
        let mut rdr =
            csv::Reader::from_path(data.join("llm-pilot/published/predictions_LLM-Pilot.csv"))
                .unwrap();
        let headers = rdr.headers().unwrap().clone();
        let idx = |n: &str| headers.iter().position(|h| h == n).unwrap();
        let (im, ig, iu, in_, ii) = (
            idx("model"),
            idx("gpu"),
            idx("num_users"),
            idx("median_nttft"),
            idx("median_itl"),
        );
        let (mut published, mut matched) = (0, 0);
        for rec in rdr.records() {
            let rec = rec.unwrap();
            published += 1;
            let (count, bare) = pilot_core::gpu::split_profile(&rec[ig]);
            let count = count.unwrap().unwrap();
            let gpu = catalog
                .resolve_documented(
                    bare,
                    Gigabytes(DOCUMENTED_GPUS.iter().find(|d| d.0 == bare).unwrap().1),
                    GigabytesPerSec(DOCUMENTED_GPUS.iter().find(|d| d.0 == bare).unwrap().2),
                    Some(DOCUMENTED_GPUS.iter().find(|d| d.0 == bare).unwrap().3),
                )
                .unwrap();
            let model = models.resolve(&rec[im]).unwrap().id;
            let users: u32 = rec[iu].parse().unwrap();
            let Some(row) = imported.rows.iter().find(|r| {
                r.model == model
                    && r.gpu == gpu.spec.name
                    && r.gpu_count == count
                    && r.load == Load::Users(users)
            }) else {
                continue;
            };
            matched += 1;
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            let nttft: f64 = rec[in_].parse().unwrap();
            let itl: f64 = rec[ii].parse().unwrap();
            let got_n = row.metrics.nttft.p50.unwrap().0;
            let got_i = row.metrics.itl.p50.unwrap().0;
            assert!(
                close(got_n, nttft),
                "{} {} u{}: nTTFT {got_n} vs published {nttft}",
                &rec[im],
                &rec[ig],
                users
            );
            assert!(
                close(got_i, itl),
                "{} {} u{}: ITL {got_i} vs published {itl}",
                &rec[im],
                &rec[ig],
                users
            );
        }
        assert_eq!(published, 528);
        assert_eq!(matched, 526, "two runs have no raw data in the source");
        // Beyond LLM-Pilot: failures are kept and told apart.
        let oom: u64 = imported
            .rows
            .iter()
            .map(|r| r.metrics.requests_failed_oom)
            .sum();
        let failed: u64 = imported
            .rows
            .iter()
            .map(|r| r.metrics.requests_failed)
            .sum();
        assert!(oom > 20_000 && failed > oom, "oom {oom}, failed {failed}");
        // The shipped copy (what the shipped predictor was trained on) is this import.
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor/llm-pilot.csv");
        let committed = pilot_core::schema::read_measurements(&shipped).unwrap();
        assert_eq!(committed.len(), imported.rows.len());
        for (a, b) in committed.iter().zip(&imported.rows) {
            assert_eq!(
                (&a.model, &a.gpu, a.gpu_count, a.load),
                (&b.model, &b.gpu, b.gpu_count, b.load)
            );
            assert_eq!(
                a.metrics, b.metrics,
                "datasets/predictor/llm-pilot.csv is stale: re-import it"
            );
        }
    }

    #[test]
    fn wrong_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = import(&dir.path().join("nope.parquet")).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        let p = dir.path().join("other.parquet");
        let mut df = df!("model" => ["m"], "x" => [1i64]).unwrap();
        ParquetWriter::new(std::fs::File::create(&p).unwrap())
            .finish(&mut df)
            .unwrap();
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("missing column 'gpu_type'"), "{e}");
        let p = dir.path().join("junk.parquet");
        std::fs::write(&p, "not parquet").unwrap();
        let e = import(&p).unwrap_err();
        assert!(e.to_string().contains("not a readable Parquet"), "{e}");
        let source = std::error::Error::source(&e).expect("the polars error is kept");
        assert!(source.downcast_ref::<PolarsError>().is_some(), "{source}");
    }
}

//! NVIDIA AIPerf's `profile_export_aiperf.json` (aiperf 0.13.0,
//! `aiperf/exporters/metrics_json_exporter.py`, `aiperf/common/models/export_models.py`; the
//! shape is GenAI-Perf's, which AIPerf succeeds).
//!
//! Every metric is a top-level object `{unit, avg, p1..p99, min, max, std, count, sum}`,
//! scaled by its `unit` (`ms`, `s`/`sec`, `us`, `ns`). The run's settings are in
//! `input_config`: the model (`models.items[].name`, or the older `endpoint.model_names`) and
//! the load (the profiling entry of `phases`: `type` concurrency with `concurrency`, or a
//! rate type with `rate`; older files: `loadgen.concurrency` / `loadgen.request_rate`).
//!
//! Metric names differ from pilot's, and are mapped by what they measure:
//! - `time_to_first_token` -> TTFT; `request_latency` -> E2E;
//! - `inter_token_latency` -> **TPOT**: AIPerf's "ITL" is per request
//!   (latency - TTFT) / (output tokens - first chunk's tokens), which is vLLM's and pilot's TPOT;
//! - `inter_chunk_latency` -> ITL: the gaps between streamed chunks, pooled over requests
//!   (one token per chunk on the servers pilot measures; percentiles from a t-digest within
//!   0.05%);
//! - throughputs, request and error counts, mean input/output lengths, `benchmark_duration`.
//!
//! AIPerf's percentiles are numpy's linear interpolation, pilot's convention.

use crate::tool::{At, Given, Said, Tool, identify, not_this_tool, rate_load, stats_ms, whole};
use crate::{Import, ImportError};
use pilot_core::metrics::{Stats, Summary};
use pilot_core::schema::Load;
use pilot_core::units::{Millis, RequestsPerSec, TokensPerSec};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const EXPECTED: &str = "AIPerf's profile_export_aiperf.json: top-level metrics such as 'time_to_first_token' {unit, avg, p50, p99, ...} and 'input_config'";

/// Imports one `profile_export_aiperf.json`: one row.
pub fn import(path: &Path, given: &Given) -> Result<Import, ImportError> {
    let doc = crate::tool::read_json(path, EXPECTED)?;
    if doc.get("time_to_first_token").is_none() && doc.get("request_latency").is_none() {
        return Err(not_this_tool(
            path,
            Tool::Aiperf,
            &doc,
            "no metric 'time_to_first_token' or 'request_latency'",
            EXPECTED,
        ));
    }
    let at = At::new(&doc, path);
    let config = doc.get("input_config").map(|c| At::new(c, path));
    let mut out = Import::default();
    let said = Said {
        model: config.and_then(model),
        ..Said::default()
    };
    let id = identify(path, Tool::Aiperf, &said, given, &mut out.notes)?;
    let load = match config {
        Some(c) => load(path, c)?,
        None => None,
    }
    .ok_or_else(|| ImportError::Data {
        path: path.display().to_string(),
        reason: "'input_config' says no concurrency or request rate (no profiling phase with 'concurrency' or 'rate', no 'loadgen'): the load the run offered is unknown".into(),
    })?;

    let metric = |name: &str| -> Result<Option<(At, f64)>, ImportError> {
        let Some(v) = at.get(name) else {
            return Ok(None);
        };
        let m = At::new(v, path);
        let unit = m.text("unit").unwrap_or_default();
        Ok(Some((m, to_ms(path, name, &unit)?)))
    };
    let latency = |name: &str| -> Result<Stats<Millis>, ImportError> {
        let Some((m, scale)) = metric(name)? else {
            return Ok(Stats::default());
        };
        let q = |k: &str| m.num(k, &format!("{name}.{k}"));
        Ok(stats_ms(
            q("avg")?,
            q("p50")?,
            q("p90")?,
            q("p95")?,
            q("p99")?,
            scale,
        ))
    };
    let avg = |name: &str| -> Result<Option<f64>, ImportError> {
        match at.get(name) {
            Some(v) => At::new(v, path).num("avg", &format!("{name}.avg")),
            None => Ok(None),
        }
    };
    let duration_s = match metric("benchmark_duration")? {
        Some((m, scale)) => m
            .num("avg", "benchmark_duration.avg")?
            .map(|v| v * scale / 1e3),
        None => None,
    };
    let mut row = id.row(load, Tool::Aiperf, path);
    row.duration = duration_s
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    row.metrics = Summary {
        ttft: latency("time_to_first_token")?,
        tpot: latency("inter_token_latency")?,
        itl: latency("inter_chunk_latency")?,
        e2e: latency("request_latency")?,
        output_throughput: avg("output_token_throughput")?.map(TokensPerSec),
        total_throughput: avg("total_token_throughput")?.map(TokensPerSec),
        request_throughput: avg("request_throughput")?.map(RequestsPerSec),
        requests_ok: avg("request_count")?.unwrap_or(0.0) as u64,
        requests_failed: avg("error_request_count")?.unwrap_or(0.0) as u64,
        input_tokens_mean: avg("input_sequence_length")?,
        output_tokens_mean: avg("output_sequence_length")?,
        ..Summary::default()
    };
    out.notes.push("AIPerf: its inter_token_latency is per-request TPOT (imported as TPOT); ITL is its inter_chunk_latency".into());
    out.rows.push(row);
    Ok(out)
}

/// Milliseconds per unit of an AIPerf metric.
fn to_ms(path: &Path, name: &str, unit: &str) -> Result<f64, ImportError> {
    Ok(match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1.0,
        "s" | "sec" | "secs" | "seconds" => 1e3,
        "us" | "µs" => 1e-3,
        "ns" => 1e-6,
        // Counts, rates and token lengths carry their own units and are not scaled.
        _ if !name.contains("latency")
            && !name.contains("token")
            && name != "benchmark_duration" =>
        {
            1.0
        }
        other => {
            return Err(ImportError::Data {
                path: path.display().to_string(),
                reason: format!("key '{name}.unit' is '{other}', not a time unit (ms, s, us, ns)"),
            });
        }
    })
}

/// The model from `input_config`, in any of AIPerf's spellings.
fn model(c: At) -> Option<String> {
    let v = c.value;
    let first_text = |x: Option<&Value>| -> Option<String> {
        match x? {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(|f| match f {
                Value::String(s) => Some(s.clone()),
                o => o.get("name").and_then(Value::as_str).map(String::from),
            }),
            o => o
                .get("items")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|f| f.get("name").and_then(Value::as_str).map(String::from)),
        }
    };
    first_text(v.get("models"))
        .or_else(|| first_text(v.get("model_names")))
        .or_else(|| first_text(v.pointer("/endpoint/model_names")))
}

/// The load from `input_config`: the profiling phase, else the older `loadgen`.
fn load(path: &Path, c: At) -> Result<Option<Load>, ImportError> {
    let phases = c
        .value
        .get("phases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let profiling = phases.iter().enumerate().find(|(_, p)| {
        let kind = p
            .get("kind")
            .or(p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        kind != "warmup" && p.get("exclude_from_results").and_then(Value::as_bool) != Some(true)
    });
    if let Some((i, p)) = profiling {
        let at = At::new(p, path);
        let key = |k: &str| format!("input_config.phases[{i}].{k}");
        let kind = at.text("type").unwrap_or_default();
        if kind == "concurrency" {
            let n = at.num("concurrency", &key("concurrency"))?.unwrap_or(1.0);
            return Ok(Some(Load::Users(whole(path, &key("concurrency"), n)?)));
        }
        if let Some(r) = at.num("rate", &key("rate"))? {
            return rate_load(path, &key("rate"), r).map(Some);
        }
    }
    if let Some(l) = c.value.get("loadgen") {
        let at = At::new(l, path);
        if let Some(r) = at.num("request_rate", "input_config.loadgen.request_rate")? {
            return rate_load(path, "input_config.loadgen.request_rate", r).map(Some);
        }
        if let Some(n) = at.num("concurrency", "input_config.loadgen.concurrency")? {
            return Ok(Some(Load::Users(whole(
                path,
                "input_config.loadgen.concurrency",
                n,
            )?)));
        }
    }
    Ok(None)
}

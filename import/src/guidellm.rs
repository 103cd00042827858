//! GuideLLM's benchmarks report (`guidellm benchmark ... --output-path benchmarks.json`;
//! guidellm 0.8.1, `guidellm/benchmark/schemas/{report,benchmark,metrics}.py` and
//! `guidellm/schemas/base/{statistics,request_stats}.py`).
//!
//! The report holds `benchmarks`, one per strategy of the sweep: each is a row. Per
//! benchmark: `config.strategy` (`type_` synchronous, concurrent with `streams`,
//! constant/poisson with `rate`, throughput with an optional `max_concurrency`),
//! `config.backend.model`, `duration` (s), and `metrics`, whose latencies are
//! `StatusDistributionSummary`s: `{successful, errored, incomplete, total}`, each
//! `{mean, median, percentiles: {p50, p90, p95, p99, ...}, count, total_sum, ...}`.
//!
//! What is read, from the `successful` requests:
//! - TTFT <- `time_to_first_token_ms`; E2E <- `request_latency` (seconds);
//! - ITL <- `inter_token_latency_ms`. GuideLLM's value per request is
//!   (last token - first token) / (output tokens - 1), weighted by output tokens - 1: its mean
//!   is exactly pilot's pooled mean gap; its percentiles replace each gap by its request's
//!   mean gap, so tails of single stalls are smoothed away.
//! - TPOT is left empty: GuideLLM's `time_per_output_token_ms` divides the whole latency,
//!   first token included, by the output tokens, which is not (E2E - TTFT) / (tokens - 1).
//! - throughputs = successful requests' token sums (`total_sum`) / `duration`.
//!
//! GuideLLM's percentiles are nearest-rank on the (weighted) empirical distribution, not
//! numpy's interpolation; on a few hundred requests the two differ by one order statistic.

use crate::tool::{
    At, Given, Said, Tool, identify, known_engine, not_this_tool, rate_load, source, stats_ms,
    whole,
};
use crate::{Import, ImportError};
use pilot_core::metrics::Summary;
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::{RequestsPerSec, TokensPerSec};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const EXPECTED: &str = "GuideLLM's benchmarks report (`guidellm benchmark --output-path benchmarks.json`): an object with 'benchmarks', each with 'config.strategy', 'duration' and 'metrics.time_to_first_token_ms.successful'";

/// Imports one GuideLLM report: one row per benchmark in it.
pub fn import(path: &Path, given: &Given) -> Result<Import, ImportError> {
    let doc = crate::tool::read_json(path, EXPECTED)?;
    let Some(benchmarks) = doc.get("benchmarks").and_then(Value::as_array) else {
        return Err(not_this_tool(
            path,
            Tool::Guidellm,
            &doc,
            "no list 'benchmarks'",
            EXPECTED,
        ));
    };
    if benchmarks.is_empty() {
        return Err(ImportError::Data {
            path: path.display().to_string(),
            reason: "'benchmarks' is empty: the run finished no benchmark".into(),
        });
    }
    let mut out = Import::default();
    out.notes.push("GuideLLM: percentiles are nearest-rank; ITL percentiles are of per-request mean gaps (token-weighted); TPOT not imported (GuideLLM's includes the first token)".into());
    for (i, b) in benchmarks.iter().enumerate() {
        out.rows
            .push(benchmark(path, &doc, b, i, given, &mut out.notes)?);
    }
    Ok(out)
}

fn benchmark(
    path: &Path,
    report: &Value,
    b: &Value,
    i: usize,
    given: &Given,
    notes: &mut Vec<String>,
) -> Result<Measurement, ImportError> {
    let here = format!("benchmarks[{i}]");
    let at = At::new(b, path);
    let metrics = b
        .get("metrics")
        .filter(|m| m.get("time_to_first_token_ms").is_some())
        .ok_or_else(|| {
            not_this_tool(
                path,
                Tool::Guidellm,
                report,
                &format!("no key '{here}.metrics.time_to_first_token_ms'"),
                EXPECTED,
            )
        })?;
    let backend = b.pointer("/config/backend").map(|v| At::new(v, path));
    let said = Said {
        model: backend.and_then(|a| a.text("model")).or_else(|| {
            report
                .pointer("/config/model")
                .and_then(Value::as_str)
                .map(String::from)
        }),
        engine: backend
            .and_then(|a| a.text("kind").or_else(|| a.text("type_")))
            .and_then(|k| known_engine(&k)),
        ..Said::default()
    };
    let id = identify(path, Tool::Guidellm, &said, given, notes)?;

    let secs = at
        .num("duration", &format!("{here}.duration"))?
        .unwrap_or(f64::NAN);
    if !(secs.is_finite() && secs > 0.0) {
        return Err(at.bad(
            &format!("{here}.duration"),
            at.get("duration").unwrap_or(&Value::Null),
            "a positive number of seconds",
        ));
    }
    let load = strategy(path, b, &here, notes)?;
    let mut row = id.row(load, Tool::Guidellm, path);
    row.duration = Some(Duration::from_secs_f64(secs));
    row.source = format!("{}#{i}", source(Tool::Guidellm, path));

    // One status's distribution of one metric, at `to_ms` milliseconds per unit.
    let dist = |name: &str, to_ms: f64| -> Result<_, ImportError> {
        let p = format!("{here}.metrics.{name}.successful");
        let Some(d) = metrics
            .get(name)
            .and_then(|d| d.get("successful"))
            .filter(|d| !d.is_null())
        else {
            return Ok(Default::default());
        };
        let d = At::new(d, path);
        let pct = d.get("percentiles").map(|v| At::new(v, path));
        let q = |k: &str| -> Result<Option<f64>, ImportError> {
            match pct {
                Some(p2) => p2.num(k, &format!("{p}.percentiles.{k}")),
                None => Ok(None),
            }
        };
        Ok(stats_ms(
            d.num("mean", &format!("{p}.mean"))?,
            d.num("median", &format!("{p}.median"))?.or(q("p50")?),
            q("p90")?,
            q("p95")?,
            q("p99")?,
            to_ms,
        ))
    };
    let field = |name: &str, stat: &str| -> Result<Option<f64>, ImportError> {
        match metrics.get(name).and_then(|d| d.get("successful")) {
            Some(d) => {
                At::new(d, path).num(stat, &format!("{here}.metrics.{name}.successful.{stat}"))
            }
            None => Ok(None),
        }
    };
    let totals = metrics.get("request_totals").map(|t| At::new(t, path));
    let count = |k: &str| -> Result<u64, ImportError> {
        Ok(match totals {
            Some(t) => t
                .num(k, &format!("{here}.metrics.request_totals.{k}"))?
                .unwrap_or(0.0) as u64,
            None => 0,
        })
    };
    let ok = count("successful")?;
    let (errored, incomplete) = (count("errored")?, count("incomplete")?);
    if incomplete > 0 {
        notes.push(format!(
            "{here}: {incomplete} requests still running when the benchmark ended are not counted as failures"
        ));
    }
    let per_sec = |x: Option<f64>| x.map(|v| v / secs);
    row.metrics = Summary {
        ttft: dist("time_to_first_token_ms", 1.0)?,
        itl: dist("inter_token_latency_ms", 1.0)?,
        e2e: dist("request_latency", 1000.0)?,
        output_throughput: per_sec(field("output_token_count", "total_sum")?).map(TokensPerSec),
        total_throughput: per_sec(field("total_token_count", "total_sum")?).map(TokensPerSec),
        request_throughput: (ok > 0).then(|| RequestsPerSec(ok as f64 / secs)),
        requests_ok: ok,
        requests_failed: errored,
        input_tokens_mean: field("prompt_token_count", "mean")?,
        output_tokens_mean: field("output_token_count", "mean")?,
        ..Summary::default()
    };
    Ok(row)
}

/// The load of a benchmark from its scheduling strategy.
fn strategy(
    path: &Path,
    b: &Value,
    here: &str,
    notes: &mut Vec<String>,
) -> Result<Load, ImportError> {
    let Some(s) = b.pointer("/config/strategy") else {
        return Err(ImportError::Data {
            path: path.display().to_string(),
            reason: format!(
                "no key '{here}.config.strategy': the load the benchmark offered is unknown; expected {EXPECTED}"
            ),
        });
    };
    let at = At::new(s, path);
    let kind = at
        .text("type_")
        .or_else(|| at.text("type"))
        .unwrap_or_default();
    let key = |k: &str| format!("{here}.config.strategy.{k}");
    let cap = at
        .num("max_concurrency", &key("max_concurrency"))?
        .map(|c| whole(path, &key("max_concurrency"), c))
        .transpose()?;
    match kind.as_str() {
        "synchronous" => Ok(Load::Users(1)),
        "concurrent" => {
            let n = at.num("streams", &key("streams"))?.ok_or_else(|| {
                at.bad(
                    &key("streams"),
                    &Value::Null,
                    "the number of concurrent streams",
                )
            })?;
            Ok(Load::Users(whole(path, &key("streams"), n)?))
        }
        "constant" | "poisson" => {
            let r = at
                .num("rate", &key("rate"))?
                .ok_or_else(|| at.bad(&key("rate"), &Value::Null, "a request rate"))?;
            if let Some(c) = cap {
                notes.push(format!(
                    "{here}: {kind} at {r} req/s, capped at {c} concurrent requests"
                ));
            }
            rate_load(path, &key("rate"), r)
        }
        "throughput" => match cap {
            Some(c) => {
                notes.push(format!(
                    "{here}: throughput strategy read as {c} users (its max_concurrency)"
                ));
                Ok(Load::Users(c))
            }
            None => {
                let n = b
                    .pointer("/metrics/request_totals/total")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0);
                notes.push(format!(
                    "{here}: throughput strategy without max_concurrency: every request sent at once, read as an offline batch of {n}"
                ));
                Ok(Load::Batch(whole(path, "request_totals.total", n)?))
            }
        },
        other => Err(ImportError::Data {
            path: path.display().to_string(),
            reason: format!(
                "key '{}' is '{other}', a strategy pilot cannot map to a load (synchronous, concurrent, constant, poisson, throughput)",
                key("type_")
            ),
        }),
    }
}

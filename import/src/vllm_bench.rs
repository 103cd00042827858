//! `vllm bench serve --save-result` files (vLLM 0.34, `vllm/benchmarks/serve.py`).
//!
//! One JSON object per run (`--append-result` appends one per line: each line is a row). It
//! says the model (`model_id`), the client `backend`, the load (`request_rate`, `"inf"` when
//! unpaced; `max_concurrency`; `num_prompts`), `duration` (s), `completed`, `failed`, the
//! token totals and throughputs, and per metric `mean_/median_/std_/pNN_{ttft,tpot,itl,e2el}_ms`
//! (the percentiles chosen by `--metric-percentiles`, default 99). `--metadata KEY=VALUE`
//! adds top-level keys: `gpu`, `gpus` (or `gpu_count`, `num_gpus`), `engine` and
//! `engine_version` (or `version`) are read from there when present.
//!
//! With `--save-detailed` it also keeps the per-request arrays `input_lens`, `output_lens`,
//! `ttfts` (s), `itls` (lists of s), `latencies` (s) and `errors` (empty for a success); then
//! the row is recomputed from them with pilot's definitions, which are vLLM's own
//! ([`pilot_core::metrics`]): TTFT per request, ITL pooled over all gaps, TPOT =
//! (E2E - TTFT) / (output tokens - 1) over requests with two or more tokens, numpy's linear
//! percentiles, so every `pNN` the file has comes back and p50/p90/p95 are filled besides.
//! Without them the file's own statistics are copied (median -> p50).
//!
//! Load: a finite `request_rate` is an open loop at that rate (a `max_concurrency` cap is
//! noted); an unpaced run capped at `max_concurrency` C is a closed loop of C users (each
//! finished request lets the next one in); unpaced and uncapped sends every prompt at once,
//! an offline batch of `num_prompts`.

use crate::tool::{
    At, Given, Said, Tool, identify, known_engine, not_this_tool, rate_load, stats_ms, whole,
};
use crate::{Import, ImportError};
use pilot_core::metrics::{FailureKind, RequestTimings, Summary, summarize};
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::{Millis, RequestsPerSec, TokensPerSec};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const EXPECTED: &str = "the JSON that `vllm bench serve --save-result` writes (keys model_id, backend, request_rate, max_concurrency, duration, completed, median_ttft_ms, ...; one object per line with --append-result)";

/// Imports one `vllm bench serve` result file: one row per run in it.
pub fn import(path: &Path, given: &Given) -> Result<Import, ImportError> {
    let text = crate::tool::read_text(path, EXPECTED)?;
    let docs = parse_docs(path, &text)?;
    let mut out = Import::default();
    for (i, doc) in docs.iter().enumerate() {
        let row =
            import_run(path, doc, given, &mut out.notes).map_err(|e| match (docs.len(), e) {
                (n, ImportError::Data { path, reason }) if n > 1 => ImportError::Data {
                    path,
                    reason: format!("line {}: {reason}", i + 1),
                },
                (_, e) => e,
            })?;
        out.rows.push(row);
    }
    Ok(out)
}

/// One JSON object, or one per non-empty line (`--append-result`).
fn parse_docs(path: &Path, text: &str) -> Result<Vec<Value>, ImportError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(vec![v]),
        Err(whole_err) => {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() < 2 {
                return Err(crate::tool::json_error(path, EXPECTED, whole_err));
            }
            lines
                .iter()
                .map(|l| serde_json::from_str(l))
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|_| crate::tool::json_error(path, EXPECTED, whole_err))
        }
    }
}

fn import_run(
    path: &Path,
    doc: &Value,
    given: &Given,
    notes: &mut Vec<String>,
) -> Result<Measurement, ImportError> {
    let at = At::new(doc, path);
    if !doc.is_object() || at.get("completed").is_none() || at.get("duration").is_none() {
        return Err(not_this_tool(
            path,
            Tool::VllmBench,
            doc,
            "no key 'completed' or 'duration'",
            EXPECTED,
        ));
    }
    let backend = at.text("backend");
    let mut said = Said::from_metadata(&at, "model_id")?;
    // `backend` names the client protocol; it says the engine only when it is one (vllm).
    said.engine = said
        .engine
        .or_else(|| backend.as_deref().and_then(known_engine));
    // vLLM's own help writes the version as `--metadata version=...`.
    said.engine_version = said.engine_version.or_else(|| at.text("version"));
    let id = identify(path, Tool::VllmBench, &said, given, notes)?;

    let secs = at.num("duration", "duration")?.unwrap_or(f64::NAN);
    if !(secs.is_finite() && secs > 0.0) {
        return Err(at.bad("duration", &doc["duration"], "a positive number of seconds"));
    }
    let window = Duration::from_secs_f64(secs);
    let load = load(path, &at, notes)?;
    let mut row = id.row(load, Tool::VllmBench, path);
    row.duration = Some(window);
    row.metrics = match per_request(path, &at)? {
        Some(timings) => {
            notes.push(format!(
                "{} requests recomputed from the per-request arrays (--save-detailed)",
                timings.len()
            ));
            summarize(&timings, window)
        }
        None => {
            notes.push("no per-request arrays (run with --save-detailed for p50/p90/p95 and nTTFT): the file's statistics are copied, median as p50".into());
            from_summary(&at)?
        }
    };
    Ok(row)
}

/// The load the run offered (see the module doc).
fn load(path: &Path, at: &At, notes: &mut Vec<String>) -> Result<Load, ImportError> {
    let rate = match at.get("request_rate") {
        None => None,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("inf") => None,
        Some(_) => at
            .num("request_rate", "request_rate")?
            .filter(|r| r.is_finite()),
    };
    let cap = at
        .num("max_concurrency", "max_concurrency")?
        .map(|c| whole(path, "max_concurrency", c))
        .transpose()?;
    Ok(match (rate, cap) {
        (Some(r), cap) => {
            let rate = rate_load(path, "request_rate", r)?;
            if let Some(c) = cap {
                notes.push(format!(
                    "open loop at {r} req/s, capped at {c} concurrent requests by max_concurrency"
                ));
            }
            rate
        }
        (None, Some(c)) => Load::Users(c),
        (None, None) => {
            let n = at
                .num("num_prompts", "num_prompts")?
                .or(at.num("completed", "completed")?)
                .unwrap_or(1.0);
            notes.push(format!(
                "unpaced and uncapped: all {n} prompts sent at once, read as an offline batch"
            ));
            Load::Batch(whole(path, "num_prompts", n)?)
        }
    })
}

/// The per-request timings of a `--save-detailed` file, `None` without its arrays.
fn per_request(path: &Path, at: &At) -> Result<Option<Vec<RequestTimings>>, ImportError> {
    let Some(ttfts) = at.nums("ttfts", "ttfts")? else {
        return Ok(None);
    };
    let n = ttfts.len();
    // Every per-request array has one entry per request, as 'ttfts' does.
    let same_len = |key: &str, len: usize| -> Result<(), ImportError> {
        if len == n {
            return Ok(());
        }
        Err(ImportError::Data {
            path: path.display().to_string(),
            reason: format!("key '{key}' has {len} entries but 'ttfts' has {n}"),
        })
    };
    let need = |key: &str| -> Result<Vec<f64>, ImportError> {
        let v = at.nums(key, key)?.ok_or_else(|| {
            at.bad(
                key,
                &Value::Null,
                "a per-request list (the file has 'ttfts')",
            )
        })?;
        same_len(key, v.len())?;
        Ok(v)
    };
    let (inputs, outputs, latencies) = (
        need("input_lens")?,
        need("output_lens")?,
        need("latencies")?,
    );
    let itls = at.get("itls").and_then(Value::as_array).ok_or_else(|| {
        at.bad(
            "itls",
            at.get("itls").unwrap_or(&Value::Null),
            "a list of per-request lists",
        )
    })?;
    same_len("itls", itls.len())?;
    let errors: Vec<Option<String>> = match at.get("errors").and_then(Value::as_array) {
        Some(e) => e
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            })
            .collect(),
        None => vec![None; n],
    };
    (0..n)
        .map(|i| {
            let gaps = itls[i]
                .as_array()
                .ok_or_else(|| at.bad(&format!("itls[{i}]"), &itls[i], "a list of seconds"))?
                .iter()
                .map(|g| g.as_f64().map(|s| Millis(s * 1e3)))
                .collect::<Option<Vec<Millis>>>()
                .ok_or_else(|| at.bad(&format!("itls[{i}]"), &itls[i], "a list of seconds"))?;
            let error = errors.get(i).cloned().flatten();
            Ok(RequestTimings {
                input_tokens: inputs[i].max(0.0) as u64,
                output_tokens: outputs[i].max(0.0) as u64,
                ttft: Millis(ttfts[i] * 1e3),
                itls: gaps,
                e2e: Millis(latencies[i] * 1e3),
                failure: error.map(|e| FailureKind::classify(&e)),
            })
        })
        .collect::<Result<Vec<_>, ImportError>>()
        .map(Some)
}

/// The row's metrics from the file's own statistics.
fn from_summary(at: &At) -> Result<Summary, ImportError> {
    let stat = |metric: &str| -> Result<_, ImportError> {
        let get = |prefix: &str| {
            let key = format!("{prefix}_{metric}_ms");
            at.num(&key, &key)
        };
        Ok(stats_ms(
            get("mean")?,
            get("median")?.or(get("p50")?),
            get("p90")?,
            get("p95")?,
            get("p99")?,
            1.0,
        ))
    };
    let completed = at.num("completed", "completed")?.unwrap_or(0.0);
    let per_request = |key: &str| -> Result<Option<f64>, ImportError> {
        Ok(at
            .num(key, key)?
            .filter(|_| completed > 0.0)
            .map(|t| t / completed))
    };
    Ok(Summary {
        ttft: stat("ttft")?,
        itl: stat("itl")?,
        tpot: stat("tpot")?,
        e2e: stat("e2el")?,
        output_throughput: at
            .num("output_throughput", "output_throughput")?
            .map(TokensPerSec),
        total_throughput: at
            .num("total_token_throughput", "total_token_throughput")?
            .map(TokensPerSec),
        request_throughput: at
            .num("request_throughput", "request_throughput")?
            .map(RequestsPerSec),
        requests_ok: completed as u64,
        requests_failed: at.num("failed", "failed")?.unwrap_or(0.0) as u64,
        input_tokens_mean: per_request("total_input_tokens")?,
        output_tokens_mean: per_request("total_output_tokens")?,
        ..Summary::default()
    })
}

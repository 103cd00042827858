//! ray-project/llmperf's result files (`token_benchmark_ray.py`, `src/llmperf/common_metrics.py`,
//! `src/llmperf/ray_clients/openai_chat_completions_client.py`).
//!
//! `token_benchmark_ray.py --results-dir DIR` writes two files per run:
//! - `<model>_<in>_<out>_summary.json`: the run's settings (`model`, `num_concurrent_requests`,
//!   `mean_input_tokens`, ..., user `--metadata` keys) and flattened statistics
//!   `results_<metric>_quantiles_p25..p99`, `_mean`, `_min`, `_max`, `_stddev` for
//!   `ttft_s`, `end_to_end_latency_s`, `inter_token_latency_s`, token counts, plus
//!   `results_num_completed_requests`, `results_number_errors`,
//!   `results_mean_output_throughput_token_per_s`, `results_num_completed_requests_per_min`.
//!   Its quantiles are pandas' (linear, as numpy's and pilot's).
//! - `<model>_<in>_<out>_individual_responses.json`: a list of per-request objects with
//!   `ttft_s`, `end_to_end_latency_s`, `number_input_tokens`, `number_output_tokens`,
//!   `error_code` (null for a success), `error_msg`.
//!
//! LLMPerf's `inter_token_latency_s` is **not** an inter-token latency: the client sums every
//! gap *including* the first token's and divides by the output tokens, i.e. E2E / output
//! tokens. It is not imported as ITL or TPOT. From the individual responses pilot computes
//! TPOT = (E2E - TTFT) / (output tokens - 1) per request; ITL stays empty (no per-token times
//! are saved). The individual responses do not say the load: the run's settings are read from
//! the summary beside them (same name prefix), so the two files are kept together.

use crate::tool::{At, Given, Said, Tool, identify, not_this_tool, stats_ms, whole};
use crate::{Import, ImportError};
use pilot_core::metrics::{FailureKind, RequestTimings, Summary, summarize};
use pilot_core::schema::Load;
use pilot_core::units::{Millis, RequestsPerSec, TokensPerSec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXPECTED: &str = "LLMPerf's <model>_<in>_<out>_summary.json (keys model, num_concurrent_requests, results_ttft_s_quantiles_p50, ...) or <model>_<in>_<out>_individual_responses.json (a list of objects with ttft_s, end_to_end_latency_s, number_output_tokens, error_code)";

const SUMMARY: &str = "_summary.json";
const INDIVIDUAL: &str = "_individual_responses.json";

/// Imports an LLMPerf summary or individual-responses file: one row. Given the individual
/// responses, the summary beside them supplies the run's settings; given the summary, the
/// individual responses beside it (when present) supply the per-request latencies.
pub fn import(path: &Path, given: &Given) -> Result<Import, ImportError> {
    let doc = crate::tool::read_json(path, EXPECTED)?;
    let (summary_path, individual_path, summary, individual) = if doc.is_array() {
        let sp = sibling(path, INDIVIDUAL, SUMMARY);
        let summary = match &sp {
            Some(p) if p.is_file() => Some(crate::tool::read_json(p, EXPECTED)?),
            _ => None,
        };
        (sp, Some(path.to_path_buf()), summary, Some(doc))
    } else if doc.get("num_concurrent_requests").is_some()
        || doc.get("results_ttft_s_mean").is_some()
    {
        let ip = sibling(path, SUMMARY, INDIVIDUAL).filter(|p| p.is_file());
        let individual = match &ip {
            Some(p) => Some(crate::tool::read_json(p, EXPECTED)?),
            None => None,
        };
        (Some(path.to_path_buf()), ip, Some(doc), individual)
    } else {
        return Err(not_this_tool(
            path,
            Tool::Llmperf,
            &doc,
            "neither a list of responses nor a summary with 'num_concurrent_requests'",
            EXPECTED,
        ));
    };
    let Some(summary) = summary else {
        return Err(ImportError::Data {
            path: path.display().to_string(),
            reason: format!(
                "LLMPerf's individual responses do not say the run's concurrency, and its summary is not beside them (looked for {}); keep the *_summary.json next to it, or import the summary",
                summary_path.map_or("?".into(), |p| p.display().to_string())
            ),
        });
    };
    let sp = summary_path.unwrap_or_else(|| path.to_path_buf());
    let s = At::new(&summary, &sp);
    let mut out = Import::default();
    let said = Said::from_metadata(&s, "model")?;
    let id = identify(path, Tool::Llmperf, &said, given, &mut out.notes)?;
    let users = s
        .num("num_concurrent_requests", "num_concurrent_requests")?
        .ok_or_else(|| {
            s.bad(
                "num_concurrent_requests",
                &Value::Null,
                "the run's concurrency",
            )
        })?;
    let load = Load::Users(whole(&sp, "num_concurrent_requests", users)?);
    let mut row = id.row(load, Tool::Llmperf, path);

    // The run's window: completed requests over completed requests per minute.
    let completed = s.num(
        "results_num_completed_requests",
        "results_num_completed_requests",
    )?;
    let per_min = s.num(
        "results_num_completed_requests_per_min",
        "results_num_completed_requests_per_min",
    )?;
    let secs = match (completed, per_min) {
        (Some(n), Some(m)) if n > 0.0 && m > 0.0 => Some(n / m * 60.0),
        _ => None,
    };
    row.duration = secs.map(Duration::from_secs_f64);

    row.metrics = match (&individual, &individual_path) {
        (Some(list), Some(ip)) => {
            let timings = responses(ip, list)?;
            out.notes.push(format!(
                "{} responses recomputed from {}; LLMPerf's inter_token_latency_s (E2E / output tokens) is not imported",
                timings.len(),
                ip.display()
            ));
            let mut m = summarize(
                &timings,
                secs.map_or(Duration::ZERO, Duration::from_secs_f64),
            );
            // The summary's own throughput is over the whole test, as pilot's.
            if let Some(t) = s.num(
                "results_mean_output_throughput_token_per_s",
                "results_mean_output_throughput_token_per_s",
            )? {
                m.output_throughput = Some(TokensPerSec(t));
            }
            m
        }
        _ => {
            out.notes.push("summary only: TTFT and E2E copied (TPOT and ITL need the individual responses; LLMPerf's inter_token_latency_s is E2E / output tokens and is not imported)".into());
            let stat = |metric: &str| -> Result<_, ImportError> {
                let q = |suffix: &str| {
                    let key = format!("results_{metric}_{suffix}");
                    s.num(&key, &key)
                };
                Ok(stats_ms(
                    q("mean")?,
                    q("quantiles_p50")?,
                    q("quantiles_p90")?,
                    q("quantiles_p95")?,
                    q("quantiles_p99")?,
                    1e3,
                ))
            };
            Summary {
                ttft: stat("ttft_s")?,
                e2e: stat("end_to_end_latency_s")?,
                output_throughput: s
                    .num(
                        "results_mean_output_throughput_token_per_s",
                        "results_mean_output_throughput_token_per_s",
                    )?
                    .map(TokensPerSec),
                request_throughput: per_min.map(|m| RequestsPerSec(m / 60.0)),
                requests_ok: completed.unwrap_or(0.0) as u64,
                requests_failed: s
                    .num("results_number_errors", "results_number_errors")?
                    .unwrap_or(0.0) as u64,
                input_tokens_mean: s.num(
                    "results_number_input_tokens_mean",
                    "results_number_input_tokens_mean",
                )?,
                output_tokens_mean: s.num(
                    "results_number_output_tokens_mean",
                    "results_number_output_tokens_mean",
                )?,
                ..Summary::default()
            }
        }
    };
    out.rows.push(row);
    Ok(out)
}

/// Which run a file belongs to: its summary's path (the individual responses' sibling).
pub(crate) fn run_of(path: &Path) -> PathBuf {
    sibling(path, INDIVIDUAL, SUMMARY).unwrap_or_else(|| path.to_path_buf())
}

/// The file beside `path` whose name ends in `to` instead of `from`.
fn sibling(path: &Path, from: &str, to: &str) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(from)?;
    Some(path.with_file_name(format!("{stem}{to}")))
}

/// The per-request timings of an individual-responses list.
fn responses(path: &Path, list: &Value) -> Result<Vec<RequestTimings>, ImportError> {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = At::new(r, path);
            let key = |k: &str| format!("[{i}].{k}");
            let need = |k: &str| -> Result<f64, ImportError> {
                at.num(k, &key(k))?
                    .ok_or_else(|| at.bad(&key(k), r.get(k).unwrap_or(&Value::Null), "a number"))
            };
            let failed = !matches!(r.get("error_code"), None | Some(Value::Null));
            let failure =
                failed.then(|| FailureKind::classify(&at.text("error_msg").unwrap_or_default()));
            let ttft = need("ttft_s")?;
            let e2e = need("end_to_end_latency_s")?;
            Ok(RequestTimings {
                input_tokens: at
                    .num("number_input_tokens", &key("number_input_tokens"))?
                    .unwrap_or(0.0) as u64,
                output_tokens: need("number_output_tokens")?.max(0.0) as u64,
                ttft: Millis(ttft * 1e3),
                itls: Vec::new(),
                e2e: Millis(e2e * 1e3),
                failure,
            })
        })
        .collect()
}

//! kubernetes-sigs/inference-perf's per-stage lifecycle reports
//! (`stage_N_lifecycle_metrics.json`; `inference_perf/reportgen/base.py`,
//! `summarize_requests`).
//!
//! A stage report says the load (`load_summary.requested_rate`, and `concurrency` for a
//! concurrency stage), `benchmark_time_seconds`, and per outcome `successes` / `failures`:
//! `successes.latency.{time_to_first_token, time_per_output_token, inter_token_latency,
//! request_latency}`, each `{mean, min, max, median, p90, p99, ...}` in seconds (the
//! percentiles the run's report config chose, `median` for the 50th), and
//! `successes.throughput.{input,output,total}_tokens_per_sec, requests_per_sec`. It names
//! neither the model nor the hardware (they are in the run's config.yaml): `--model`, `--gpu`,
//! `--gpus` and `--engine` give them.
//!
//! inference-perf's definitions are pilot's: ITL pools every gap between output tokens; TPOT =
//! (last token - first token) / (output tokens - 1) per request (pilot ends at the response's
//! end, a few microseconds later); numpy's linear percentiles.
//!
//! `summary_lifecycle_metrics.json` pools all stages, whose loads differ, and says none of
//! them: it is refused, naming the stage files to import instead.

use crate::tool::{At, Given, Said, Tool, identify, not_this_tool, rate_load, stats_ms, whole};
use crate::{Import, ImportError};
use pilot_core::metrics::{Stats, Summary};
use pilot_core::schema::Load;
use pilot_core::units::{Millis, RequestsPerSec, TokensPerSec};
use std::path::Path;
use std::time::Duration;

const EXPECTED: &str = "an inference-perf stage report (stage_N_lifecycle_metrics.json) with 'load_summary' (requested_rate, concurrency), 'successes.latency' and 'successes.throughput'";

/// Imports one stage report: one row.
pub fn import(path: &Path, given: &Given) -> Result<Import, ImportError> {
    let doc = crate::tool::read_json(path, EXPECTED)?;
    let (Some(load_summary), Some(successes)) = (doc.get("load_summary"), doc.get("successes"))
    else {
        return Err(not_this_tool(
            path,
            Tool::InferencePerf,
            &doc,
            "no key 'load_summary' or 'successes'",
            EXPECTED,
        ));
    };
    let ls = At::new(load_summary, path);
    let concurrency = ls.num("concurrency", "load_summary.concurrency")?;
    let rate = ls.num("requested_rate", "load_summary.requested_rate")?;
    let load = match (concurrency, rate) {
        (Some(c), _) => Load::Users(whole(path, "load_summary.concurrency", c)?),
        (None, Some(r)) => rate_load(path, "load_summary.requested_rate", r)?,
        (None, None) => {
            return Err(ImportError::Data {
                path: path.display().to_string(),
                reason: "no 'load_summary.requested_rate' or 'load_summary.concurrency': this is the summary over all stages, whose loads differ; import the per-stage reports (stage_0_lifecycle_metrics.json, ...) instead".into(),
            });
        }
    };
    let mut out = Import::default();
    let id = identify(
        path,
        Tool::InferencePerf,
        &Said::default(),
        given,
        &mut out.notes,
    )?;
    let at = At::new(&doc, path);
    let s = At::new(successes, path);
    let latency = |name: &str| -> Result<Stats<Millis>, ImportError> {
        let Some(v) = successes
            .get("latency")
            .and_then(|l| l.get(name))
            .filter(|v| !v.is_null())
        else {
            return Ok(Stats::default());
        };
        let m = At::new(v, path);
        let q = |k: &str| m.num(k, &format!("successes.latency.{name}.{k}"));
        Ok(stats_ms(
            q("mean")?,
            q("median")?.or(q("p50")?),
            q("p90")?,
            q("p95")?,
            q("p99")?,
            1e3,
        ))
    };
    let throughput = |name: &str| -> Result<Option<f64>, ImportError> {
        match successes.get("throughput") {
            Some(t) => At::new(t, path).num(name, &format!("successes.throughput.{name}")),
            None => Ok(None),
        }
    };
    let mean_of = |name: &str| -> Result<Option<f64>, ImportError> {
        match successes.get(name) {
            Some(t) => At::new(t, path).num("mean", &format!("successes.{name}.mean")),
            None => Ok(None),
        }
    };
    let failed = match doc.get("failures") {
        Some(f) => At::new(f, path)
            .num("count", "failures.count")?
            .unwrap_or(0.0) as u64,
        None => 0,
    };
    let secs = at.num("benchmark_time_seconds", "benchmark_time_seconds")?;
    let mut row = id.row(load, Tool::InferencePerf, path);
    row.duration = secs
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    row.metrics = Summary {
        ttft: latency("time_to_first_token")?,
        tpot: latency("time_per_output_token")?,
        itl: latency("inter_token_latency")?,
        e2e: latency("request_latency")?,
        output_throughput: throughput("output_tokens_per_sec")?.map(TokensPerSec),
        total_throughput: throughput("total_tokens_per_sec")?.map(TokensPerSec),
        request_throughput: throughput("requests_per_sec")?.map(RequestsPerSec),
        requests_ok: s.num("count", "successes.count")?.unwrap_or(0.0) as u64,
        requests_failed: failed,
        input_tokens_mean: mean_of("prompt_tokens")?,
        output_tokens_mean: mean_of("output_tokens")?.or(mean_of("output_len")?),
        ..Summary::default()
    };
    out.rows.push(row);
    Ok(out)
}

//! `<run dir>/results.json`: each level in the shape `vllm bench serve --save-result` writes,
//! with its metric names (`completed`, `request_throughput`, `median_ttft_ms`, `p99_itl_ms`,
//! `std_e2el_ms`, ...), so that the scripts and dashboards a team already feeds with vLLM's
//! results read pilot's too. A JSON array, one object per level, in the order run.
//!
//! Means, medians and p99s are the row's own ([`pilot_core::metrics::summarize`], which
//! defines them as vLLM does: ITL over every gap, TPOT per request); the standard deviations,
//! which the schema has no column for, are computed from the same requests
//! ([`pilot_core::metrics::std_dev`]: the population one, numpy's default that vLLM uses).

use crate::error::CharacterizeError;
use crate::report::{CharacterizeReport, key_of};
use pilot_core::load::Load;
use pilot_core::metrics::{Metric, RequestTimings, Stat, std_dev};
use pilot_core::requests::RequestRecord;
use serde_json::{Map, Value, json};

/// vLLM's metric names, by pilot's metric.
const METRICS: [(Metric, &str); 4] = [
    (Metric::Ttft, "ttft"),
    (Metric::Tpot, "tpot"),
    (Metric::Itl, "itl"),
    (Metric::E2e, "e2el"),
];

/// A metric's values over a level's successful requests, as [`pilot_core::metrics::summarize`]
/// pools them (every ITL gap; TPOT of requests with two tokens or more).
fn values(metric: Metric, ok: &[RequestTimings]) -> Vec<f64> {
    match metric {
        Metric::Itl => ok.iter().flat_map(|r| r.itls.iter().map(|m| m.0)).collect(),
        _ => ok.iter().filter_map(|r| metric.of_request(r)).collect(),
    }
}

/// One object per level, in `vllm bench serve --save-result`'s shape.
pub fn results_json(report: &CharacterizeReport, records: &[RequestRecord], api: &str) -> Value {
    let levels = report.levels.iter().map(|l| {
        let (row, m) = (&l.row, &l.row.metrics);
        let key = key_of(row);
        let ok: Vec<RequestTimings> = records
            .iter()
            .filter(|r| !r.warmup && r.failure.is_none() && r.point == key)
            .map(RequestRecord::timings)
            .collect();
        let mut o = Map::new();
        let mut put = |k: &str, v: Value| {
            o.insert(k.to_string(), v);
        };
        put("backend", json!(api));
        put("model_id", json!(row.model));
        put("duration", json!(row.duration.map(|d| d.as_secs_f64())));
        put("completed", json!(m.requests_ok));
        put("failed", json!(m.requests_failed));
        put("num_prompts", json!(m.requests_ok + m.requests_failed));
        let (concurrency, rate) = match row.load {
            Load::Users(u) => (json!(u), json!("inf")),
            Load::Rate(r) => (Value::Null, json!(r.0)),
            Load::Batch(_) => (Value::Null, Value::Null),
        };
        put("max_concurrency", concurrency);
        put("request_rate", rate);
        put(
            "total_input_tokens",
            json!(ok.iter().map(|r| r.input_tokens).sum::<u64>()),
        );
        put(
            "total_output_tokens",
            json!(ok.iter().map(|r| r.output_tokens).sum::<u64>()),
        );
        put(
            "request_throughput",
            json!(m.request_throughput.map(|x| x.0)),
        );
        put("request_goodput", json!(l.goodput.map(|g| g.0)));
        put("output_throughput", json!(m.output_throughput.map(|x| x.0)));
        put(
            "total_token_throughput",
            json!(m.total_throughput.map(|x| x.0)),
        );
        for (metric, name) in METRICS {
            put(
                &format!("mean_{name}_ms"),
                json!(metric.stat(m, Stat::Mean)),
            );
            put(
                &format!("median_{name}_ms"),
                json!(metric.stat(m, Stat::P50)),
            );
            put(
                &format!("std_{name}_ms"),
                json!(std_dev(&values(metric, &ok))),
            );
            for stat in [Stat::P90, Stat::P95, Stat::P99] {
                put(&format!("{stat}_{name}_ms"), json!(metric.stat(m, stat)));
            }
        }
        put("flags", json!(row.flags));
        Value::Object(o)
    });
    Value::Array(levels.collect())
}

/// Writes `<run dir>/results.json` (atomically).
pub(crate) fn write_results(
    report: &CharacterizeReport,
    records: &[RequestRecord],
    api: &str,
) -> Result<(), CharacterizeError> {
    crate::runinfo::write_json(
        &report.run_dir.join("results.json"),
        &results_json(report, records, api),
    )
}

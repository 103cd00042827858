//! The benchmark tools' importers against their fixtures (`import/tests/fixtures/`, see its
//! README for which tool version wrote each and how): every number checked is the file's
//! own, read independently of the importer, or recomputed from the file's per-request data.

use crate::ImportError;
use crate::tool::{Given, Tool};
use pilot_core::metrics::Stats;
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::{Millis, RequestsPerSec};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(rel)).unwrap()).unwrap()
}

/// The hardware of the fixtures' runs, as a user would give it.
fn h100() -> Given {
    Given {
        gpu: Some("H100".into()),
        gpu_count: Some(1),
        engine: Some("pilot".into()),
        model: None,
    }
}

fn one(tool: Tool, rel: &str, given: &Given) -> Measurement {
    let mut import = tool.import(&fixture(rel), given).unwrap();
    assert_eq!(import.rows.len(), 1, "{rel}");
    import.rows.remove(0)
}

/// `got` equals the file's `want` (to the last bits a unit conversion costs).
#[track_caller]
fn same(got: Option<Millis>, want: f64, what: &str) {
    let got = got
        .unwrap_or_else(|| panic!("{what}: nothing imported, the file says {want}"))
        .0;
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1e-3),
        "{what}: imported {got}, the file says {want}"
    );
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(|x| {
            x.as_f64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or_else(|| panic!("fixture has no number at {pointer}"))
}

fn err(tool: Tool, path: &Path, given: &Given) -> String {
    tool.import(path, given).unwrap_err().to_string()
}

#[test]
fn vllm_bench_detailed_is_recomputed_to_vllms_own_numbers() {
    let file = json("vllm-bench/detailed.json");
    // The file's --metadata says the GPU, its count and the engine: no flag needed.
    let row = one(
        Tool::VllmBench,
        "vllm-bench/detailed.json",
        &Given::default(),
    );
    assert_eq!(
        (
            row.model.as_str(),
            row.gpu.as_str(),
            row.gpu_count,
            row.engine.as_str()
        ),
        ("pilot/tiny-llama", "H100-SXM-80GB", 1, "pilot")
    );
    assert_eq!(
        row.load,
        Load::Users(4),
        "max_concurrency 4, request_rate inf"
    );
    assert_eq!(row.source, "vllm-bench:detailed.json");
    let m = &row.metrics;
    // Recomputed from ttfts/itls/latencies/output_lens with pilot's definitions, every
    // statistic vLLM wrote comes back: the definitions and the percentile rule are the same.
    let stats: [(&str, &Stats<Millis>); 4] = [
        ("ttft", &m.ttft),
        ("tpot", &m.tpot),
        ("itl", &m.itl),
        ("e2el", &m.e2e),
    ];
    for (name, s) in stats {
        same(
            s.mean,
            num(&file, &format!("/mean_{name}_ms")),
            &format!("mean {name}"),
        );
        same(
            s.p50,
            num(&file, &format!("/median_{name}_ms")),
            &format!("median {name}"),
        );
        same(
            s.p90,
            num(&file, &format!("/p90_{name}_ms")),
            &format!("p90 {name}"),
        );
        same(
            s.p95,
            num(&file, &format!("/p95_{name}_ms")),
            &format!("p95 {name}"),
        );
        same(
            s.p99,
            num(&file, &format!("/p99_{name}_ms")),
            &format!("p99 {name}"),
        );
    }
    assert_eq!(m.requests_ok, num(&file, "/completed") as u64);
    assert_eq!(m.requests_failed, 0);
    let tput = m.output_throughput.unwrap().0;
    assert!(
        (tput - num(&file, "/output_throughput")).abs() < 1e-6,
        "{tput}"
    );
    let rate = m.request_throughput.unwrap();
    assert!((rate.0 - num(&file, "/request_throughput")).abs() < 1e-6);
    assert!(m.nttft.p50.is_some(), "per-request data gives nTTFT");
}

#[test]
fn vllm_bench_summary_copies_the_files_statistics_and_needs_the_hardware() {
    let path = fixture("vllm-bench/summary.json");
    let e = err(Tool::VllmBench, &path, &Given::default());
    assert!(
        e.contains("does not say the GPU") && e.contains("--gpu NAME"),
        "{e}"
    );
    assert!(e.contains("summary.json"), "names the file: {e}");
    let no_engine = Given {
        engine: None,
        ..h100()
    };
    // backend "openai" is a protocol, not an engine.
    let e = err(Tool::VllmBench, &path, &no_engine);
    assert!(e.contains("--engine NAME"), "{e}");

    let file = json("vllm-bench/summary.json");
    let row = one(Tool::VllmBench, "vllm-bench/summary.json", &h100());
    assert_eq!(row.load, Load::Rate(RequestsPerSec(50.0)));
    let m = &row.metrics;
    same(m.ttft.p50, num(&file, "/median_ttft_ms"), "median ttft");
    same(m.ttft.p99, num(&file, "/p99_ttft_ms"), "p99 ttft");
    same(m.tpot.mean, num(&file, "/mean_tpot_ms"), "mean tpot");
    same(m.itl.p99, num(&file, "/p99_itl_ms"), "p99 itl");
    assert_eq!(m.ttft.p90, None, "the file has no p90: none is invented");
    assert_eq!(
        m.e2e,
        Stats::default(),
        "e2el was not among the percentile metrics"
    );
    assert_eq!(m.requests_ok, 24);
}

#[test]
fn vllm_bench_flags_are_checked_against_the_catalogs() {
    let path = fixture("vllm-bench/summary.json");
    let e = err(
        Tool::VllmBench,
        &path,
        &Given {
            gpu: Some("H1000".into()),
            ..h100()
        },
    );
    assert!(e.contains("H1000") && e.contains("did you mean"), "{e}");
    let e = err(
        Tool::VllmBench,
        &path,
        &Given {
            engine: Some("vlmm".into()),
            ..h100()
        },
    );
    assert!(e.contains("vlmm") && e.contains("did you mean vllm"), "{e}");
    let e = tool_err(
        Tool::VllmBench,
        &path,
        &Given {
            model: Some("lama-7b-typo".into()),
            ..h100()
        },
    );
    assert!(matches!(e, ImportError::Model { .. }), "{e}");
}

fn tool_err(tool: Tool, path: &Path, given: &Given) -> ImportError {
    tool.import(path, given).unwrap_err()
}

#[test]
fn vllm_bench_append_result_lines_are_rows_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let one_run = std::fs::read_to_string(fixture("vllm-bench/summary.json")).unwrap();
    let p = dir.path().join("appended.json");
    std::fs::write(&p, format!("{}\n{}\n", one_run.trim(), one_run.trim())).unwrap();
    let import = Tool::VllmBench.import(&p, &h100()).unwrap();
    assert_eq!(import.rows.len(), 2);
    let broken = one_run.replace("\"completed\"", "\"finished\"");
    std::fs::write(&p, format!("{}\n{}\n", one_run.trim(), broken.trim())).unwrap();
    let e = err(Tool::VllmBench, &p, &h100());
    assert!(e.contains("line 2") && e.contains("'completed'"), "{e}");
    std::fs::write(&p, "{\"completed\": ").unwrap();
    let e = err(Tool::VllmBench, &p, &h100());
    assert!(e.contains("not JSON (line 1"), "{e}");
}

#[test]
fn guidellm_benchmarks_are_rows_with_guidellms_statistics() {
    let file = json("guidellm/benchmarks.json");
    let import = Tool::Guidellm
        .import(&fixture("guidellm/benchmarks.json"), &h100())
        .unwrap();
    assert_eq!(import.rows.len(), 2);
    assert_eq!(import.rows[0].load, Load::Users(4), "concurrent, 4 streams");
    assert_eq!(
        import.rows[1].load,
        Load::Rate(RequestsPerSec(2.0)),
        "constant 2/s"
    );
    for (i, row) in import.rows.iter().enumerate() {
        let at = |p: &str| num(&file, &format!("/benchmarks/{i}/metrics/{p}"));
        let m = &row.metrics;
        assert_eq!(row.model, "pilot/tiny-llama", "config.backend.model");
        same(
            m.ttft.p50,
            at("time_to_first_token_ms/successful/median"),
            "ttft p50",
        );
        same(
            m.ttft.p99,
            at("time_to_first_token_ms/successful/percentiles/p99"),
            "ttft p99",
        );
        same(
            m.itl.mean,
            at("inter_token_latency_ms/successful/mean"),
            "itl mean",
        );
        same(
            m.e2e.p90,
            1e3 * at("request_latency/successful/percentiles/p90"),
            "e2e p90 (s)",
        );
        assert_eq!(
            m.tpot,
            Stats::default(),
            "GuideLLM's TPOT includes the first token"
        );
        assert_eq!((m.requests_ok, m.requests_failed), (12, 1));
        let secs = num(&file, &format!("/benchmarks/{i}/duration"));
        let out = at("output_token_count/successful/total_sum") / secs;
        assert!((m.output_throughput.unwrap().0 - out).abs() < 1e-9);
        assert!(
            row.source.starts_with("guidellm:benchmarks.json"),
            "{}",
            row.source
        );
    }
}

#[test]
fn aiperf_maps_its_names_to_pilots_metrics() {
    let file = json("aiperf/profile_export_aiperf.json");
    let row = one(Tool::Aiperf, "aiperf/profile_export_aiperf.json", &h100());
    assert_eq!(
        row.model, "pilot/tiny-llama",
        "input_config.models.items[0].name"
    );
    assert_eq!(
        row.load,
        Load::Users(4),
        "the profiling phase's concurrency"
    );
    let m = &row.metrics;
    same(
        m.ttft.p50,
        num(&file, "/time_to_first_token/p50"),
        "ttft p50",
    );
    same(
        m.ttft.p99,
        num(&file, "/time_to_first_token/p99"),
        "ttft p99",
    );
    // AIPerf's "inter_token_latency" is per-request TPOT; its chunk gaps are the ITL.
    same(
        m.tpot.p50,
        num(&file, "/inter_token_latency/p50"),
        "tpot p50",
    );
    same(m.itl.p99, num(&file, "/inter_chunk_latency/p99"), "itl p99");
    same(m.e2e.mean, num(&file, "/request_latency/avg"), "e2e mean");
    assert_eq!(m.requests_ok, num(&file, "/request_count/avg") as u64);
    let secs = row.duration.unwrap().as_secs_f64();
    assert!(
        (secs - num(&file, "/benchmark_duration/avg")).abs() < 1e-9,
        "unit sec"
    );
    assert_eq!(row.source, "aiperf:profile_export_aiperf.json");
    let e = err(
        Tool::Aiperf,
        &fixture("aiperf/profile_export_aiperf.json"),
        &Given::default(),
    );
    assert!(e.contains("--gpu NAME"), "{e}");
}

#[test]
fn inference_perf_stage_reports_are_rows_and_the_pooled_summary_is_refused() {
    let path = fixture("inference-perf/stage_0_lifecycle_metrics.json");
    let e = err(Tool::InferencePerf, &path, &h100());
    assert!(
        e.contains("does not say the model") && e.contains("--model NAME"),
        "{e}"
    );
    let given = Given {
        model: Some("tiny-llama".into()),
        ..h100()
    };
    let file = json("inference-perf/stage_0_lifecycle_metrics.json");
    let row = one(
        Tool::InferencePerf,
        "inference-perf/stage_0_lifecycle_metrics.json",
        &given,
    );
    assert_eq!(row.load, Load::Rate(RequestsPerSec(2.0)));
    let lat = |p: &str| 1e3 * num(&file, &format!("/successes/latency/{p}"));
    let m = &row.metrics;
    same(m.ttft.p50, lat("time_to_first_token/median"), "ttft median");
    same(m.ttft.p99, lat("time_to_first_token/p99"), "ttft p99");
    same(m.tpot.p90, lat("time_per_output_token/p90"), "tpot p90");
    same(m.itl.mean, lat("inter_token_latency/mean"), "itl mean");
    same(m.e2e.p99, lat("request_latency/p99"), "e2e p99");
    assert_eq!(m.ttft.p95, None, "the report's percentiles have no 95th");
    assert_eq!((m.requests_ok, m.requests_failed), (24, 1));
    let e = err(
        Tool::InferencePerf,
        &fixture("inference-perf/summary_lifecycle_metrics.json"),
        &given,
    );
    assert!(e.contains("stage_0_lifecycle_metrics.json"), "{e}");
}

#[test]
fn llmperf_individual_responses_reproduce_its_summary() {
    let summary = json("llmperf/tiny-llama_128_32_summary.json");
    let import = Tool::Llmperf
        .import(
            &fixture("llmperf/tiny-llama_128_32_individual_responses.json"),
            &h100(),
        )
        .unwrap();
    let row = &import.rows[0];
    assert_eq!(
        row.load,
        Load::Users(4),
        "num_concurrent_requests from the summary beside"
    );
    assert_eq!(row.model, "pilot/tiny-llama");
    let m = &row.metrics;
    // Recomputed from the responses, LLMPerf's own quantiles (pandas, linear) come back.
    for q in ["p25", "p50", "p75", "p90", "p95", "p99"] {
        let ttft = 1e3 * num(&summary, &format!("/results_ttft_s_quantiles_{q}"));
        let e2e = 1e3
            * num(
                &summary,
                &format!("/results_end_to_end_latency_s_quantiles_{q}"),
            );
        match q {
            "p50" => (same(m.ttft.p50, ttft, q), same(m.e2e.p50, e2e, q)),
            "p90" => (same(m.ttft.p90, ttft, q), same(m.e2e.p90, e2e, q)),
            "p95" => (same(m.ttft.p95, ttft, q), same(m.e2e.p95, e2e, q)),
            "p99" => (same(m.ttft.p99, ttft, q), same(m.e2e.p99, e2e, q)),
            _ => ((), ()),
        };
    }
    assert!(
        m.tpot.p50.is_some(),
        "TPOT from TTFT, E2E and the output tokens"
    );
    assert_eq!(m.itl, Stats::default(), "LLMPerf keeps no per-token times");
    assert_eq!((m.requests_ok, m.requests_failed), (24, 1));

    // The summary alone: its statistics copied, TPOT left empty.
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("m_128_32_summary.json");
    std::fs::copy(fixture("llmperf/tiny-llama_128_32_summary.json"), &alone).unwrap();
    let row = Tool::Llmperf
        .import(&alone, &h100())
        .unwrap()
        .rows
        .remove(0);
    same(
        row.metrics.ttft.p50,
        1e3 * num(&summary, "/results_ttft_s_quantiles_p50"),
        "p50",
    );
    assert_eq!(row.metrics.tpot, Stats::default());
    // The responses alone do not say the load.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("m_128_32_individual_responses.json");
    std::fs::copy(
        fixture("llmperf/tiny-llama_128_32_individual_responses.json"),
        &lone,
    )
    .unwrap();
    let e = err(Tool::Llmperf, &lone, &h100());
    assert!(
        e.contains("m_128_32_summary.json"),
        "names the summary it looked for: {e}"
    );
    // Both files of one run are one row.
    let both = Tool::Llmperf
        .import_all(
            &[
                &fixture("llmperf/tiny-llama_128_32_summary.json"),
                &fixture("llmperf/tiny-llama_128_32_individual_responses.json"),
            ],
            &h100(),
        )
        .unwrap();
    assert_eq!(both.rows.len(), 1);
}

#[test]
fn another_tools_file_names_the_tool_it_is() {
    let cases = [
        (Tool::VllmBench, "guidellm/benchmarks.json", "guidellm"),
        (Tool::Guidellm, "vllm-bench/detailed.json", "vllm-bench"),
        (
            Tool::Aiperf,
            "inference-perf/stage_0_lifecycle_metrics.json",
            "inference-perf",
        ),
        (
            Tool::InferencePerf,
            "aiperf/profile_export_aiperf.json",
            "aiperf",
        ),
        (Tool::Llmperf, "vllm-bench/summary.json", "vllm-bench"),
        (
            Tool::VllmBench,
            "llmperf/tiny-llama_128_32_summary.json",
            "llmperf",
        ),
    ];
    for (tool, rel, other) in cases {
        let e = err(tool, &fixture(rel), &h100());
        assert!(
            e.contains(&format!("not a {} result", tool.name()))
                && e.contains(&format!("pilot dataset import {other} FILE")),
            "{} reading {rel}: {e}",
            tool.name()
        );
    }
    let e = err(Tool::Guidellm, &fixture("nope.json"), &h100());
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn a_bad_value_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stage_0_lifecycle_metrics.json");
    let mut doc = json("inference-perf/stage_0_lifecycle_metrics.json");
    doc["successes"]["latency"]["time_to_first_token"]["median"] = Value::from("fast");
    std::fs::write(&p, doc.to_string()).unwrap();
    let given = Given {
        model: Some("tiny-llama".into()),
        ..h100()
    };
    let e = err(Tool::InferencePerf, &p, &given);
    assert!(
        e.contains("successes.latency.time_to_first_token.median") && e.contains("\"fast\""),
        "{e}"
    );
    let mut doc = json("vllm-bench/detailed.json");
    doc["ttfts"].as_array_mut().unwrap().pop();
    std::fs::write(&p, doc.to_string()).unwrap();
    let e = err(Tool::VllmBench, &p, &Given::default());
    assert!(
        e.contains("'input_lens' has 24 entries but 'ttfts' has 23"),
        "{e}"
    );
}

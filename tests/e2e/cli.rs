//! End-to-end tests of the real `pilot` binary: what a user types, what they get back.

use crate::common::validate_manifests;
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn pilot() -> Command {
    Command::cargo_bin("pilot").expect("the pilot binary builds")
}

/// Runs pilot, expecting failure: returns stderr, after checking exit code 2 and no panic.
fn fails(args: &[&str]) -> String {
    let out = pilot().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "pilot {args:?} should exit 2; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "pilot {args:?} panicked: {err}");
    err
}

/// `pilot recommend --model MODEL --slo SLO EXTRA...`, which must fail: its stderr.
fn recommend_fails(model: &str, slo: &str, extra: &[&str]) -> String {
    fails(&[&["recommend", "--model", model, "--slo", slo][..], extra].concat())
}

fn succeeds(args: &[&str]) -> String {
    let out = pilot().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pilot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("PILOT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.exists().then_some(dir)
}

#[test]
fn help_lists_every_command() {
    let help = succeeds(&["--help"]);
    for cmd in [
        "characterize",
        "serve",
        "dataset",
        "train",
        "predict",
        "recommend",
        "analyze",
        "catalog",
        "eval",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
}

#[test]
fn catalogs_print_as_json() {
    let gpus: serde_json::Value =
        serde_json::from_str(&succeeds(&["catalog", "gpus", "--json"])).unwrap();
    let names: Vec<&str> = gpus
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"H100-SXM-80GB") && names.contains(&"Max-1550"),
        "{names:?}"
    );
    let models: serde_json::Value =
        serde_json::from_str(&succeeds(&["catalog", "models", "--json"])).unwrap();
    let mistral = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mistralai/Mistral-7B-v0.1")
        .expect("mistral in the catalog");
    let params = mistral["params_total"].as_f64().unwrap();
    assert!((params / 7.24e9 - 1.0).abs() < 0.02, "{params}");
    assert_eq!(mistral["attention"], "Gqa");
    // The table names the catalog's refused models and why, so none is silently missing.
    let table = succeeds(&["catalog", "models"]);
    let (listed, refused) = table
        .split_once("not modelled")
        .expect("a section of refused models");
    assert!(listed.contains("deepseek-ai/DeepSeek-V3 "), "{listed}");
    assert!(refused.contains("deepseek-ai/DeepSeek-V4-Pro"), "{refused}");
    assert!(!listed.contains("DeepSeek-V4-Pro"), "{listed}");
    let prices: serde_json::Value = serde_json::from_str(&succeeds(&[
        "catalog",
        "prices",
        "--json",
        "--cloud",
        "llm-pilot",
    ]))
    .unwrap();
    assert_eq!(
        prices.as_array().unwrap().len(),
        14,
        "LLM-Pilot's 14 GPU profiles"
    );
}

#[test]
fn unknown_names_get_the_closest_suggestions() {
    let e = recommend_fails("mistral-7c", "ttft=200ms", &[]);
    assert!(e.contains("mistral-7b"), "{e}");
    let e = recommend_fails("mistral-7b", "ttft=200ms", &["--gpus", "H10O"]);
    assert!(e.contains("H100"), "{e}");
    // One GPU to predict on must be named exactly: the bare family lists its variants.
    let e = fails(&[
        "predict",
        "--model",
        "mistral-7b",
        "--gpu",
        "a100",
        "--users",
        "1",
    ]);
    assert!(
        e.contains("A100-SXM-80GB") && e.contains("A100-PCIe-40GB"),
        "ambiguous A100 lists variants: {e}"
    );
    let e = fails(&["catalog", "prices", "--cloud", "moon"]);
    assert!(e.contains("aws"), "{e}");
}

/// A set of GPUs to consider may name a family: each of its SKUs is a candidate of its own.
#[test]
fn a_gpu_family_in_recommend_means_each_of_its_skus() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("frontier.csv");
    succeeds(&[
        "recommend",
        "--model",
        "mistral-7b",
        "--slo",
        "ttft=200ms",
        "--gpus",
        "a100,l4",
        "--max-gpus",
        "1",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let gpus: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    for g in ["A100-PCIe-40GB", "A100-SXM-80GB", "L4"] {
        assert!(gpus.contains(g), "{g} missing from {gpus:?}");
    }
    assert!(
        gpus.iter().all(|g| g.starts_with("A100-") || *g == "L4"),
        "{gpus:?}"
    );
}

#[test]
fn bad_slo_and_load_are_clear_errors() {
    let e = recommend_fails("mistral-7b", "ttft=fast", &[]);
    assert!(e.contains("ttft=fast") && e.contains("200ms"), "{e}");
    let e = recommend_fails("mistral-7b", "speed=1ms", &[]);
    assert!(e.contains("speed"), "{e}");
    let e = recommend_fails("mistral-7b", "ttft=1s", &["--rate", "lots"]);
    assert!(e.contains("--rate"), "{e}");
}

#[test]
fn malformed_files_are_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&[
        "dataset",
        "show",
        dir.path().join("missing.csv").to_str().unwrap(),
    ]);
    assert!(e.contains("no such file"), "{e}");
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "model,gpu\nm,H100\n").unwrap();
    let e = fails(&["dataset", "show", wrong.to_str().unwrap()]);
    assert!(
        e.contains("gpu_count") && e.contains("pilot dataset import"),
        "{e}"
    );
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, r#"{"model_type": "llama", "num_hidden_layers": 2}"#).unwrap();
    let e = recommend_fails(cfg.to_str().unwrap(), "ttft=1s", &[]);
    assert!(
        e.contains("hidden"),
        "malformed config names the missing key: {e}"
    );
    std::fs::write(&cfg, "not json").unwrap();
    let e = recommend_fails(cfg.to_str().unwrap(), "ttft=1s", &[]);
    assert!(e.to_lowercase().contains("json"), "{e}");
    let prices = dir.path().join("prices.csv");
    std::fs::write(&prices, "cloud,gpu\naws,H100\n").unwrap();
    let e = fails(&["catalog", "prices", "--prices", prices.to_str().unwrap()]);
    assert!(e.contains("gpu_count"), "{e}");
}

/// A file that cannot be read says which file and what was being done, and then the reader's
/// own error on a "caused by" line: the cause is kept, not flattened away.
#[test]
fn unreadable_files_print_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let e = fails(&["dataset", "show", missing.to_str().unwrap()]);
    assert!(
        e.contains("error: cannot read") && e.contains("missing.csv"),
        "{e}"
    );
    assert!(e.contains("caused by:"), "{e}");
    let garbled = dir.path().join("garbled.parquet");
    std::fs::write(&garbled, "this is not parquet").unwrap();
    let e = fails(&["dataset", "show", garbled.to_str().unwrap()]);
    assert!(
        e.contains("cannot read") && e.contains("garbled.parquet"),
        "{e}"
    );
    let caused: Vec<&str> = e.lines().filter(|l| l.contains("caused by:")).collect();
    assert!(!caused.is_empty(), "{e}");
    let prices = dir.path().join("prices.json");
    std::fs::write(&prices, "[not json").unwrap();
    let e = fails(&["catalog", "prices", "--prices", prices.to_str().unwrap()]);
    assert!(
        e.contains("prices.json") && e.contains("catalog prices --json"),
        "{e}"
    );
    assert!(e.contains("caused by:"), "{e}");
}

#[test]
fn imports_llm_inference_bench_and_reads_it_back() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lib.parquet");
    succeeds(&[
        "dataset",
        "import",
        "llm-inference-bench",
        data.join("llm-inference-bench/results.csv")
            .to_str()
            .unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let shown = pilot()
        .args(["dataset", "show", out.to_str().unwrap(), "--limit", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&shown.stderr);
    let n: usize = err
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(n > 3700, "{err}");
    let e = fails(&[
        "dataset",
        "import",
        "llm-pilot",
        "/nonexistent/requests.parquet",
        "-o",
        "x.csv",
    ]);
    assert!(e.contains("no such file"), "{e}");
}

/// The README's question: Mistral-7B for 200 users, TTFT <= 200 ms, ITL <= 50 ms.
const MISTRAL_200: &[&str] = &[
    "recommend",
    "--model",
    "mistral-7b",
    "--slo",
    "ttft=200ms",
    "--slo",
    "itl=50ms",
    "--users",
    "200",
];

#[test]
fn recommend_exports_a_frontier_ranked_by_cost() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("frontier.csv");
    let text = succeeds(
        &[
            MISTRAL_200,
            &["--physics-only", "--csv", csv.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(text.contains("rejected"), "{text}");
    let mut rdr = csv::Reader::from_path(&csv).unwrap();
    let header = rdr.headers().unwrap().clone();
    for col in [
        "gpu",
        "gpu_count",
        "quantization",
        "replicas",
        "cost_usd_per_hour",
        "feasible",
        "rejection_reason",
    ] {
        assert!(
            header.iter().any(|h| h == col),
            "missing {col} in {header:?}"
        );
    }
    let idx = |n: &str| header.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let costs: Vec<f64> = rows
        .iter()
        .filter(|r| &r[idx("feasible")] == "true")
        .map(|r| r[idx("cost_usd_per_hour")].parse().unwrap())
        .collect();
    assert!(!costs.is_empty(), "some configuration serves 200 users");
    assert!(
        costs.windows(2).all(|w| w[0] <= w[1]),
        "ranked by cost: {costs:?}"
    );
    // A 14.5 GB model cannot fit a 16 GB card with room for activations: rejected for memory.
    assert!(
        rows.iter()
            .any(|r| &r[idx("gpu")] == "T4" && r[idx("rejection_reason")].starts_with("memory"))
    );
    // Every feasible candidate's replicas serve the demand.
    for r in rows.iter().filter(|r| &r[idx("feasible")] == "true") {
        let cap: f64 = r[idx("capacity_per_replica")].parse().unwrap();
        let reps: f64 = r[idx("replicas")].parse().unwrap();
        assert!(cap * reps >= 200.0, "{r:?}");
    }
}

#[test]
fn recommend_says_what_its_numbers_rest_on() {
    // The shipped predictor measured TGIS under closed-loop users in LLM-Pilot's runs and
    // vLLM in AIConfigurator's (mean TTFT and TPOT only), DeepSpeed-MII only in offline
    // batches: the answer says so per engine, with the datasets and what they measured.
    let text = succeeds(&[MISTRAL_200, &["--engine", "vllm,tgis,deepspeed-mii"]].concat());
    let line = |engine: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("evidence: {engine}:")))
            .unwrap_or_else(|| panic!("no evidence line for {engine}: {text}"))
            .to_string()
    };
    let vllm = line("vllm");
    assert!(
        vllm.contains("corrected by measurements of vllm under closed-loop load (aiconfigurator: ")
            && vllm.contains("measured ttft_ms_mean, tpot_ms_mean, "),
        "{vllm}"
    );
    let tgis = line("tgis");
    assert!(
        tgis.contains("(llm-pilot: ") && !tgis.contains("measured "),
        "{tgis}"
    );
    assert!(
        line("deepspeed-mii").contains("no closed-loop measurements of deepspeed-mii"),
        "{text}"
    );
}

/// `pilot predict --scenarios` takes a measurement file as it is: every row is predicted, in
/// order, its measured columns ignored, and its layout comes back with it.
#[test]
fn predict_reads_a_measurement_file_as_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("measured.csv");
    std::fs::write(
        &data,
        "schema_version,model,gpu,gpu_count,engine,mode,users,rate_rps,batch_size,quantization,tensor_parallel,attention_dp,expert_parallel,prefill_workers,prefill_tensor_parallel,decode_workers,input_tokens_mean,output_tokens_mean,ttft_ms_mean,source,flags\n\
         2,mistral-7b,H100-SXM-80GB,2,vllm,closed,16,,,fp8,2,1,1,,,,512,128,99.0,a,\n\
         2,mistral-7b,H100-SXM-80GB,1,tgis,offline,,,8,,,,,,,,256,64,,b,\n\
         2,mistral-7b,H100-SXM-80GB,3,vllm,closed,4,,,,2,,,1,1,1,1024,256,7.0,c,\n",
    )
    .unwrap();
    let out = dir.path().join("p.csv");
    succeeds(&[
        "predict",
        "--scenarios",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let header = rdr.headers().unwrap().clone();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let cells = |n: &str| {
        rows.iter()
            .map(|r| r[col(n)].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(cells("gpu_count"), ["2", "1", "3"]);
    assert_eq!(cells("engine"), ["vllm", "tgis", "vllm"]);
    assert_eq!(cells("mode"), ["closed", "offline", "closed"]);
    assert_eq!(cells("quantization")[0], "fp8");
    assert_eq!(cells("tensor_parallel"), ["2", "1", "2"]);
    assert_eq!(cells("decode_workers"), ["", "", "1"]);
    assert_eq!(cells("prefill_tensor_parallel"), ["", "", "1"]);
    // Predicted, not copied: the measured TTFT of 99 ms is not what comes back.
    let ttft = cells("ttft_ms_p50");
    assert!(ttft.iter().all(|t| !t.is_empty()), "{ttft:?}");
    assert_ne!(cells("ttft_ms_mean")[0], "99.000000");
}

/// One-shot `pilot predict` takes a parallel layout: the GPU count follows from it, the
/// header names it, attention-DP holds more sequences than one tensor-parallel group, and a
/// layout the model cannot be split by is refused with the fix.
#[test]
fn predict_takes_a_layout_on_the_command_line() {
    let base = [
        "predict",
        "--model",
        "deepseek-ai/DeepSeek-V3",
        "--gpu",
        "h200",
        "--engine",
        "sglang",
        "--quantization",
        "fp8_block",
        "--users",
        "256",
    ];
    let budget = |text: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with("fits:")).unwrap_or("");
        line.rsplit(' ').next().unwrap_or("").parse().unwrap_or(0.0)
    };
    let tp = succeeds(&[&base[..], &["--tensor-parallel", "8"]].concat());
    assert!(tp.contains("on 8 x H200") && !tp.contains("adp"), "{tp}");
    let adp = succeeds(
        &[
            &base[..],
            &[
                "--tensor-parallel",
                "1",
                "--attention-dp",
                "8",
                "--expert-parallel",
                "8",
            ],
        ]
        .concat(),
    );
    assert!(
        adp.contains("on 8 x H200") && adp.contains("tp1 adp8 ep8"),
        "{adp}"
    );
    assert!(budget(&adp) > budget(&tp), "{adp}\n{tp}");
    let disagg = succeeds(
        &[
            &base[..],
            &[
                "--tensor-parallel",
                "8",
                "--prefill-workers",
                "1",
                "--prefill-tensor-parallel",
                "8",
                "--decode-workers",
                "2",
            ],
        ]
        .concat(),
    );
    assert!(
        disagg.contains("on 24 x H200") && disagg.contains("1 x prefill (tp8) + 2 x decode (tp8)"),
        "{disagg}"
    );
    let e = fails(
        &[
            &base[..],
            &["--tensor-parallel", "8", "--expert-parallel", "7"],
        ]
        .concat(),
    );
    assert!(
        e.contains("does not divide its 256 routed") && e.contains("divisor"),
        "{e}"
    );
    let e = fails(&[&base[..], &["--gpu-count", "16", "--tensor-parallel", "8"]].concat());
    assert!(e.contains("gpu_count 16 disagrees"), "{e}");
}

/// `--emit cmd` prints the chosen row's launch commands with its layout and batch limit;
/// `--emit k8s DIR` writes manifests that validate against the Kubernetes schema, including
/// a LeaderWorkerSet for a worker spanning nodes.
#[test]
fn recommend_emits_commands_and_valid_kubernetes_manifests() {
    let base = [
        "recommend",
        "--model",
        "deepseek-ai/DeepSeek-V3",
        "--slo",
        "ttft=2s,itl=60ms",
        "--users",
        "64",
        "--gpus",
        "h100",
        "--engine",
        "vllm",
        "--max-gpus",
        "16",
        "--serving",
        "aggregated",
    ];
    let out = pilot().args(base).args(["--emit", "cmd"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("row 1"), "the default row is named: {err}");
    assert!(text.starts_with("# pilot: row 1"), "{text}");
    // 671 GB of fp8 weights need two 8 x H100 nodes: pipeline stages across them.
    assert!(
        text.contains("vllm serve deepseek-ai/DeepSeek-V3"),
        "{text}"
    );
    assert!(text.contains("--pipeline-parallel-size 2"), "{text}");
    assert!(text.contains("--max-num-seqs"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("k8s");
    succeeds(&[&base[..], &["--emit", "k8s", k8s.to_str().unwrap()]].concat());
    let kinds = validate_manifests(&k8s);
    assert!(kinds.contains(&"LeaderWorkerSet".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"Service".to_string()), "{kinds:?}");

    // A disaggregated SGLang deployment: Deployments per role and the router, all valid.
    let k8s = dir.path().join("disagg");
    succeeds(&[
        "recommend",
        "--model",
        "llama-3.1-8b",
        "--slo",
        "ttft=1s,itl=50ms",
        "--users",
        "64",
        "--gpus",
        "h100",
        "--engine",
        "sglang",
        "--serving",
        "disaggregated",
        "--emit",
        "k8s",
        k8s.to_str().unwrap(),
    ]);
    let kinds = validate_manifests(&k8s);
    assert!(
        kinds.iter().filter(|k| *k == "Deployment").count() >= 3,
        "{kinds:?}"
    );

    // Bad --emit and --row are errors before or after the search, never a panic.
    let e = fails(&[&base[..], &["--emit", "helm"]].concat());
    assert!(e.contains("use cmd, or k8s DIR"), "{e}");
    let e = fails(&[&base[..], &["--emit", "cmd", "--row", "999"]].concat());
    assert!(e.contains("row 999 does not exist"), "{e}");
    // A combination no engine starts says so, and what does run.
    let e = recommend_fails(
        "llama-3.1-8b",
        "ttft=1s",
        &[
            "--gpus",
            "h100",
            "--engine",
            "tensorrt-llm",
            "--quantization",
            "nvfp4",
        ],
    );
    assert!(
        e.contains("no engine can start")
            && e.contains("nvfp4 runs under tensorrt-llm on Blackwell"),
        "{e}"
    );
}

/// The frontier carries each candidate's layout, KV dtype and batch limit, and marks the
/// cost-vs-latency Pareto frontier: the cheapest cost is on it, and no
/// candidate on it is beaten on cost and every SLO metric by another feasible one.
#[test]
fn recommend_frontier_has_layouts_and_a_pareto_view() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("f.csv");
    succeeds(&[
        "recommend",
        "--model",
        "Qwen/Qwen3-235B-A22B-FP8",
        "--slo",
        "ttft=2s,itl=50ms",
        "--users",
        "128",
        "--gpus",
        "h200,h100",
        "--engine",
        "sglang,vllm",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let mut rdr = csv::Reader::from_path(&csv).unwrap();
    let header = rdr.headers().unwrap().clone();
    let idx = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("no {n} in {header:?}"))
    };
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    for col in [
        "tensor_parallel",
        "expert_parallel",
        "attention_dp",
        "pipeline_parallel",
        "prefill_workers",
        "decode_workers",
        "engine",
        "kv_cache_dtype",
        "batch_limit",
    ] {
        idx(col);
    }
    let feasible: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[idx("feasible")] == "true")
        .collect();
    assert!(!feasible.is_empty());
    // The cheapest cost is on the frontier (by the cheapest candidate, or one of the same cost
    // that is faster).
    let cheapest = &feasible[0][idx("cost_usd_per_hour")];
    assert!(
        feasible.iter().any(
            |r| &r[idx("cost_usd_per_hour")] == cheapest && &r[idx("pareto_optimal")] == "true"
        )
    );
    // The space has expert-parallel, attention-DP and disaggregated candidates.
    assert!(
        rows.iter()
            .any(|r| r[idx("expert_parallel")].parse::<u32>().unwrap_or(1) > 1)
    );
    assert!(
        rows.iter()
            .any(|r| r[idx("attention_dp")].parse::<u32>().unwrap_or(1) > 1)
    );
    assert!(rows.iter().any(|r| !r[idx("decode_workers")].is_empty()));
    let num = |r: &csv::StringRecord, c: &str| r[idx(c)].parse::<f64>().unwrap();
    let point = |r: &csv::StringRecord| {
        [
            num(r, "cost_usd_per_hour"),
            num(r, "ttft_ms_p50"),
            num(r, "itl_ms_p50"),
        ]
    };
    for r in feasible
        .iter()
        .filter(|r| &r[idx("pareto_optimal")] == "true")
    {
        let p = point(r);
        assert!(
            !feasible.iter().any(|q| {
                let q = point(q);
                q.iter().zip(&p).all(|(a, b)| a <= b) && q.iter().zip(&p).any(|(a, b)| a < b)
            }),
            "{r:?} is dominated"
        );
    }
}

/// The shipped predictor's three training files, AIConfigurator's import first.
const PREDICTOR_DATA: [&str; 3] = [
    "datasets/predictor/aiconfigurator.csv",
    "datasets/predictor/llm-pilot.csv",
    "datasets/predictor/llm-inference-bench.csv",
];

/// `pilot eval recommend --benchmark aiconfigurator` on one held-out LLM (one training, so a
/// debug build runs it in seconds): the LLM is the catalog's, named here by its FP8
/// re-publication; its predictor trains on every row but those of each of its checkpoints;
/// the per-engine breakdown and the scores follow.
#[test]
fn eval_recommend_on_todays_stacks_holds_out_an_llm_with_its_checkpoints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<String> = PREDICTOR_DATA
        .iter()
        .map(|f| root.join(f).display().to_string())
        .collect();
    let (mut total, mut held_out) = (0, 0);
    for f in &files {
        let rows = pilot_core::schema::read_measurements(Path::new(f)).unwrap();
        total += rows.len();
        held_out += rows
            .iter()
            .filter(|r| r.model.contains("Llama-3.1-8B"))
            .count();
    }
    let mut args = vec!["eval", "recommend", "--benchmark", "aiconfigurator"];
    for f in &files {
        args.extend(["--data", f.as_str()]);
    }
    args.extend(["--models", "nvidia/Llama-3.1-8B-Instruct-FP8"]);
    let out = succeeds(&args);
    let line = out
        .lines()
        .find(|l| l.contains("meta-llama/Llama-3.1-8B "))
        .unwrap_or_else(|| panic!("no per-LLM row:\n{out}"));
    assert!(
        line.contains(&format!(" {} ", total - held_out)),
        "trained on {total} - {held_out} rows? {line}"
    );
    for engine in ["sglang", "tensorrt-llm", "vllm"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("│ {engine} "))),
            "no {engine} row:\n{out}"
        );
    }
    assert!(out.contains("pilot (margin none)"), "{out}");
    assert!(!out.contains("DeepSeek"), "only the LLM asked for: {out}");
    // Refusals: another protocol's margin, an LLM the data lacks, the wrong benchmark.
    let e = fails(&[&args[..8], &["--margin", "nested"]].concat());
    assert!(e.contains("nested") && e.contains("LLM-Pilot"), "{e}");
    let e = fails(&[&args[..6], &["--models", "no-such-llm"]].concat());
    assert!(
        e.contains("no-such-llm") && e.contains("Qwen/Qwen3-32B"),
        "{e}"
    );
    let e = fails(&["eval", "recommend", "--data", &files[0]]);
    assert!(e.contains("--benchmark aiconfigurator"), "{e}");
}

/// An SLO nothing meets names the SLO that binds and what the closest candidate reaches,
/// whichever SLO it is.
#[test]
fn an_unmeetable_slo_names_what_binds_and_the_closest() {
    let run = |slo: &str| {
        succeeds(&[
            "recommend",
            "--model",
            "mistral-7b",
            "--slo",
            slo,
            "--users",
            "8",
            "--gpus",
            "h100,l4",
            "--physics-only",
        ])
    };
    let text = run("ttft=1ms,itl=50ms");
    assert!(text.contains("No configuration meets the SLOs"), "{text}");
    assert!(text.contains("ttft:p50<=1ms binds"), "{text}");
    assert!(
        text.contains("The closest is") && text.contains("% over"),
        "{text}"
    );
    let text = run("ttft=10s,itl=0.5ms");
    assert!(text.contains("itl:p50<=0.5ms binds"), "{text}");
}

/// `--mix` splits a workload's length distribution over GPU types and prints the fleet
/// beside the best single type: every bucket served once, shares adding to 100%.
#[test]
fn recommend_mix_splits_a_workload_by_length() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let mut text = String::from("arrived_at,num_prefill_tokens,num_decode_tokens\n");
    for k in 0..200 {
        // Half short chats, half long documents.
        let (i, o) = if k % 2 == 0 {
            (150 + k, 40)
        } else {
            (6000 + k, 600)
        };
        text.push_str(&format!("{}.0,{i},{o}\n", k));
    }
    std::fs::write(&trace, text).unwrap();
    let out = succeeds(&[
        "recommend",
        "--model",
        "mistral-7b",
        "--slo",
        "ttft=2s,itl=60ms",
        "--users",
        "300",
        "--gpus",
        "l4,a100-sxm-80gb,h100",
        "--workload",
        trace.to_str().unwrap(),
        "--mix",
        "--physics-only",
    ]);
    let section = out
        .split("Mixed fleet (--mix)")
        .nth(1)
        .unwrap_or_else(|| panic!("no mix section:\n{out}"));
    assert!(section.contains("length bucket(s)"), "{section}");
    let shares: f64 = section
        .lines()
        .filter(|l| l.starts_with('│'))
        .filter_map(|l| l.split('┆').nth(3))
        .filter_map(|c| c.trim().trim_end_matches('%').parse::<f64>().ok())
        .sum();
    assert!(
        (shares - 100.0).abs() <= 2.0,
        "shares add to {shares}:\n{section}"
    );
    assert!(
        section.contains("less than the best single type") || section.contains("no mix is cheaper"),
        "{section}"
    );
}

/// A workload where one prompt in ten is 24 times longer than the rest (an fmperf histogram).
fn bimodal_workload(dir: &Path) -> PathBuf {
    let path = dir.join("bimodal.csv");
    std::fs::write(
        &path,
        "generated_token_count,input_token_count,probability\n128,256,0.9\n128,6144,0.1\n",
    )
    .unwrap();
    path
}

/// `predict --workload`: the mix's median TTFT is below the mean lengths' and its p99 above
/// (the long prompts set it); ITL is the server's at the mean lengths either way.
#[test]
fn predict_over_a_workload_puts_the_long_prompts_in_the_p99() {
    let dir = tempfile::tempdir().unwrap();
    let w = bimodal_workload(dir.path());
    let value = |out: &str, name: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    let base = [
        "predict",
        "--model",
        "mistral-7b",
        "--gpu",
        "H100",
        "--users",
        "32",
        "--engine",
        "vllm",
    ];
    let mix = pilot()
        .args(base)
        .arg("--workload")
        .arg(&w)
        .output()
        .unwrap();
    assert!(
        mix.status.success(),
        "{}",
        String::from_utf8_lossy(&mix.stderr)
    );
    assert!(String::from_utf8_lossy(&mix.stderr).contains("2 length buckets"));
    let mix = String::from_utf8_lossy(&mix.stdout).into_owned();
    // 0.9 x 256 + 0.1 x 6144 = 844.8 input tokens on average.
    assert!(mix.contains("845 in / 128 out"), "{mix}");
    let mean = pilot()
        .args(base)
        .args(["--input-tokens", "845", "--output-tokens", "128"])
        .output()
        .unwrap();
    assert!(mean.status.success());
    let mean = String::from_utf8_lossy(&mean.stdout).into_owned();
    assert!(
        value(&mix, "ttft_ms_p99") > value(&mean, "ttft_ms_p99"),
        "{mix}\n{mean}"
    );
    assert!(
        value(&mix, "ttft_ms_p50") < value(&mean, "ttft_ms_p50"),
        "{mix}\n{mean}"
    );
    assert_eq!(value(&mix, "itl_ms_p50"), value(&mean, "itl_ms_p50"));
}

/// `recommend --workload` judges a p99 TTFT SLO over the length mix: the same configuration
/// serves fewer users per replica than at the mean lengths, and the log says why.
#[test]
fn recommend_judges_a_p99_slo_over_the_workloads_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let w = bimodal_workload(dir.path());
    let base = [
        "recommend",
        "--model",
        "mistral-7b",
        "--slo",
        "ttft=500ms",
        "--percentile",
        "p99",
        "--users",
        "64",
        "--gpus",
        "H100",
        "--json",
    ];
    let run = |extra: &[&str]| -> serde_json::Value {
        let o = pilot().args(base).args(extra).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let w = w.to_str().unwrap();
    let mix = run(&["--workload", w]);
    let mean = run(&["--input-tokens", "845", "--output-tokens", "128"]);
    let key = |c: &serde_json::Value| {
        format!(
            "{} {} {} {}",
            c["gpu"], c["gpu_count"], c["serving"], c["kv_cache_dtype"]
        )
    };
    let capacity = |rec: &serde_json::Value, k: &str| {
        rec["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| key(c) == k)
            .and_then(|c| c["capacity_per_replica"].as_f64())
    };
    let chosen = mean["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feasible"] == true)
        .expect("a feasible answer at the mean lengths");
    let k = key(chosen);
    let (at_mix, at_mean) = (capacity(&mix, &k).unwrap(), capacity(&mean, &k).unwrap());
    assert!(
        at_mix < at_mean,
        "{k}: {at_mix} users per replica over the mix, {at_mean} at the mean"
    );
}

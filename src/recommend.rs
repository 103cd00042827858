//! `pilot recommend` and `pilot eval recommend`: flags to [`pilot_recommend::commands`].

use crate::output::printed;
use clap::Args;
use pilot_characterize::workload::{LoadedWorkload, Workload};
use pilot_recommend::commands::{
    BENCHMARKS, EvalRecommendRequest, RecommendRequest, eval_command, recommend_command,
};
use std::path::PathBuf;

#[derive(Args)]
pub struct RecommendArgs {
    /// The LLM: a catalog name (`pilot catalog models`), a Hub id, or a path to config.json.
    #[arg(long)]
    model: String,
    /// A latency objective, e.g. `ttft=200ms`, `itl=50ms`, `e2e=2s`, `nttft=1ms`, `tpot:p99=80ms`,
    /// `tokens_per_s=20` (per user); repeat or comma-separate for several.
    #[arg(long = "slo", value_delimiter = ',', required = true)]
    slos: Vec<String>,
    /// The statistic SLOs without one are checked at.
    #[arg(long, default_value = "p50", value_parser = ["p50", "p90", "p95", "p99", "mean"])]
    percentile: String,
    /// Concurrent users (closed loop).
    #[arg(long, conflicts_with = "rate", default_value_t = 200)]
    users: u32,
    /// Request rate, e.g. `10/s` or `10` (Poisson arrivals).
    #[arg(long)]
    rate: Option<String>,
    /// Mean input tokens per request.
    #[arg(long, conflicts_with = "workload")]
    input_tokens: Option<u64>,
    /// Mean output tokens per request.
    #[arg(long, conflicts_with = "workload")]
    output_tokens: Option<u64>,
    /// Also find the cheapest fleet that mixes GPU types by request length (short requests
    /// on one type, long ones on another), beside the best single type; give the lengths with
    /// --workload.
    #[arg(long)]
    mix: bool,
    /// Take the lengths from a workload file (fmperf histogram CSV, Azure trace CSV, ShareGPT JSON).
    #[arg(long)]
    workload: Option<PathBuf>,
    /// GPU types to consider; a family name (`a100`) means all its SKUs (default: every
    /// catalog GPU with a price).
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<String>,
    /// The widest worker to consider (GPUs per engine instance); wider than a node means
    /// pipeline stages across nodes.
    #[arg(long, default_value_t = 8)]
    max_gpus: u32,
    /// Weight formats to consider, e.g. `bf16,fp8,nvfp4,int4` (default: the checkpoint's own).
    #[arg(long, value_delimiter = ',')]
    quantization: Vec<String>,
    /// KV-cache dtypes to consider: `auto` (the engine's default) or `fp8`, ... (default: auto,
    /// plus fp8 where the GPU and engine run it).
    #[arg(long, value_delimiter = ',')]
    kv_cache_dtype: Vec<String>,
    /// Serving modes to search: `aggregated`, `disaggregated` (prefill and decode workers) or
    /// `both`.
    #[arg(long, default_value = "both")]
    serving: String,
    /// Serving engines to consider, e.g. `vllm,tensorrt-llm,tgis` (default: vllm).
    #[arg(long, value_delimiter = ',')]
    engine: Vec<String>,
    /// Only this cloud's prices (`pilot catalog prices` lists them).
    #[arg(long)]
    cloud: Option<String>,
    /// Use spot prices.
    #[arg(long)]
    spot: bool,
    /// Your own price list: a CSV with the columns of `datasets/prices.csv`, or the JSON that
    /// `pilot catalog prices --json` prints (by extension: `.json` is JSON).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Safety margin: `upper` (the predictor's interval's upper end), `none`, or a fraction like `0.2`.
    #[arg(long, default_value = "upper")]
    margin: String,
    /// A predictor trained with `pilot train` (default: the shipped one).
    #[arg(long, conflicts_with = "physics_only")]
    predictor: Option<PathBuf>,
    /// Use the physics model alone, without learned corrections.
    #[arg(long)]
    physics_only: bool,
    /// Export the whole frontier (every candidate, feasible or not) as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write a self-contained HTML report: the cost-vs-latency frontier plotted per SLO
    /// (the chosen candidate highlighted), the answer and the rejected alternatives.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the whole frontier as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Show each top candidate's latency-vs-load curve.
    #[arg(long)]
    explain: bool,
    /// How many feasible candidates to show.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Write how to deploy a row: `cmd` prints each worker's launch command (vllm serve,
    /// python -m sglang.launch_server, trtllm-serve), `k8s DIR` writes Kubernetes manifests
    /// into DIR.
    #[arg(long, num_args = 1..=2, value_names = ["KIND", "DIR"])]
    emit: Vec<String>,
    /// The feasible row `--emit` writes (default: 1, the cheapest).
    #[arg(long, requires = "emit")]
    row: Option<usize>,
}

/// A workload file's length distribution, (input, output, probability) per request shape,
/// each clamped to `max_positions` when the model's context is known. Reading workloads
/// belongs to the load generator, so the binary hands it to predict and recommend.
pub fn workload_lengths(
    path: &std::path::Path,
    max_positions: Option<u32>,
) -> anyhow::Result<Vec<(u64, u64, f64)>> {
    let loaded = LoadedWorkload::load(&Workload::detect(path)?, max_positions)?;
    Ok(loaded
        .weighted()
        .into_iter()
        .map(|(s, w)| (u64::from(s.input), u64::from(s.output), w))
        .collect())
}

pub fn run(a: RecommendArgs) -> anyhow::Result<()> {
    // Reading a workload belongs to the load generator: recommend asks for the mean lengths
    // once it knows the model's context length.
    let workload = a.workload.clone();
    let lengths = workload
        .as_deref()
        .map(|path| move |max_positions: Option<u32>| workload_lengths(path, max_positions));
    let req = RecommendRequest {
        model: a.model,
        slos: a.slos,
        percentile: a.percentile,
        users: a.users,
        rate: a.rate,
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        workload: lengths.as_ref().map(|f| f as _),
        mix: a.mix,
        gpus: a.gpus,
        max_gpus: a.max_gpus,
        quantization: a.quantization,
        kv_cache_dtype: a.kv_cache_dtype,
        serving: a.serving,
        engine: a.engine,
        cloud: a.cloud,
        spot: a.spot,
        prices: a.prices,
        margin: a.margin,
        predictor: a.predictor,
        physics_only: a.physics_only,
        csv: a.csv,
        report: a.report,
        json: a.json,
        explain: a.explain,
        top: a.top,
        emit: a.emit,
        row: a.row,
    };
    printed(recommend_command(&req)?)
}

#[derive(Args)]
pub struct EvalRecommendArgs {
    /// `llm-pilot`: LLM-Pilot's benchmark on its own data. `aiconfigurator`: the same protocol
    /// on AIConfigurator's measured deployments of today's LLMs, GPUs and engines (512 users,
    /// mean TTFT <= 500 ms or 2 s, mean TPOT <= 20 or 50 ms).
    #[arg(long, default_value = "llm-pilot", value_parser = BENCHMARKS)]
    benchmark: String,
    /// `llm-pilot`: LLM-Pilot's dataset in pilot's schema (`pilot dataset import llm-pilot ...`).
    /// `aiconfigurator`: the training data, repeated per file, AIConfigurator's import
    /// (`pilot dataset import aiconfigurator`) among them: its rows are the cases.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// `none`: LLM-Pilot's exact protocol (point predictions); `upper`: the SLOs must hold at
    /// the upper end of the predictor's interval, as `pilot recommend` does by default; a
    /// fraction (`0.1`): at the point prediction plus that fraction; `nested`: a fraction
    /// chosen per held-out LLM by the same benchmark on the other LLMs (never on it; LLM-Pilot's
    /// benchmark only).
    #[arg(long, default_value = "none")]
    margin: String,
    /// Also rerun the benchmark with this many training seeds (42, 43, ...) and print the
    /// median and range of each score: one seed's score is one draw.
    #[arg(long, default_value_t = 1)]
    seeds: u32,
    /// `aiconfigurator` only: hold out just these LLMs (comma-separated names; a quantized
    /// checkpoint's name means its base model).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// `aiconfigurator` only: cross-conformal folds per training (default 5, as the shipped
    /// predictor trains: the folds also pick, per engine, the physics alone where that errs
    /// less on held-out LLMs); 0 turns that off, for comparison (not with `--margin upper`).
    #[arg(long)]
    conformal_folds: Option<u32>,
}

pub fn eval(a: EvalRecommendArgs) -> anyhow::Result<()> {
    printed(eval_command(&EvalRecommendRequest {
        benchmark: a.benchmark,
        data: a.data,
        margin: a.margin,
        seeds: a.seeds,
        models: a.models,
        conformal_folds: a.conformal_folds,
    })?)
}

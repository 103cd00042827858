//! `pilot train`, `pilot predict`, `pilot eval predict`, `pilot analyze`: flags to
//! [`pilot_predict::commands`].

use crate::output::{emit, printed};
use clap::Args;
use pilot_core::units::{DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, RequestsPerSec, Tokens};
use pilot_predict::commands::{
    OneShot, analyze_files, eval_files, predict_file, predict_one, train_files,
};
use pilot_predict::{GroupBy, Load, TrainOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// Measurement datasets (CSV or Parquet in pilot's schema); repeat for several.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Where to write the predictor (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Seed: training is deterministic given it.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train LightGBM on raw features only (no physics model), for comparison.
    #[arg(long)]
    no_physics: bool,
    /// Fit the physics constants per engine to the data before training the corrections.
    #[arg(long, conflicts_with = "no_physics")]
    calibrate: bool,
}

pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    let opts = TrainOptions {
        seed: a.seed,
        use_physics: !a.no_physics,
        calibrate: a.calibrate,
        ..TrainOptions::default()
    };
    printed(train_files(&a.data, &a.out, &opts)?)
}

#[derive(Args)]
pub struct PredictArgs {
    /// A predictor from `pilot train` (default: the shipped one).
    #[arg(long)]
    predictor: Option<PathBuf>,
    /// A scenario CSV (model, gpu, gpu_count, mode, users|rate_rps|batch_size, input_tokens, output_tokens[, engine, quantization, kv_cache_dtype, tensor_parallel, attention_dp, ...]) or any measurement file (.csv or .parquet), predicted row for row.
    #[arg(long, requires = "out", conflicts_with = "model")]
    scenarios: Option<PathBuf>,
    /// Where to write the predictions: a `.csv` or `.parquet` file (by extension).
    #[arg(long)]
    out: Option<PathBuf>,
    /// One-shot: the LLM.
    #[arg(long, required_unless_present = "scenarios")]
    model: Option<String>,
    /// One-shot: the GPU type.
    #[arg(long, default_value = "h100")]
    gpu: String,
    /// All GPUs of the deployment [default: what the layout flags use, else 1].
    #[arg(long)]
    gpu_count: Option<u32>,
    /// One-shot layout: tensor-parallel degree of the (decode) workers' attention.
    #[arg(long)]
    tensor_parallel: Option<u32>,
    #[arg(long)]
    pipeline_parallel: Option<u32>,
    /// Expert-parallel degree of the MoE layers (it must divide the routed experts).
    #[arg(long)]
    expert_parallel: Option<u32>,
    /// Attention data-parallel ranks (each holds its own sequences).
    #[arg(long)]
    attention_dp: Option<u32>,
    /// Disaggregated serving: prefill workers, with their own layout (`--prefill-*`); the
    /// layout flags above are then the decode workers'.
    #[arg(long, requires_all = ["decode_workers", "prefill_tensor_parallel"])]
    prefill_workers: Option<u32>,
    #[arg(long)]
    prefill_tensor_parallel: Option<u32>,
    #[arg(long)]
    prefill_expert_parallel: Option<u32>,
    #[arg(long)]
    prefill_attention_dp: Option<u32>,
    /// Disaggregated serving: decode workers.
    #[arg(long, requires = "prefill_workers")]
    decode_workers: Option<u32>,
    /// Concurrent users (closed loop).
    #[arg(long, conflicts_with_all = ["rate", "batch_size"])]
    users: Option<u32>,
    /// Requests per second (open loop).
    #[arg(long, conflicts_with = "batch_size")]
    rate: Option<f64>,
    /// Static batch size (offline).
    #[arg(long)]
    batch_size: Option<u32>,
    #[arg(long, default_value_t = DEFAULT_INPUT_TOKENS.0)]
    input_tokens: u64,
    #[arg(long, default_value_t = DEFAULT_OUTPUT_TOKENS.0)]
    output_tokens: u64,
    /// Predict over a workload file's length distribution (fmperf histogram CSV, Azure trace
    /// CSV, ShareGPT JSON) instead of --input-tokens/--output-tokens: TTFT and end-to-end
    /// percentiles mix its length buckets.
    #[arg(long, conflicts_with_all = ["input_tokens", "output_tokens", "scenarios"])]
    workload: Option<PathBuf>,
    #[arg(long)]
    engine: Option<String>,
    /// Weight format: fp16, bf16, fp8, fp8_block, int8, nvfp4, mxfp4 or int4 (w4a16).
    #[arg(long)]
    quantization: Option<String>,
}

pub fn predict(a: PredictArgs) -> anyhow::Result<()> {
    if let Some(sc) = &a.scenarios {
        let out = a
            .out
            .as_ref()
            .expect("clap requires --out with --scenarios");
        return printed(predict_file(a.predictor.as_deref(), sc, out)?);
    }
    // `predict_one` checks every value (pilot_core::validate), this one included.
    let load = match (a.users, a.rate, a.batch_size) {
        (Some(u), _, _) => Load::Users(u),
        (_, Some(r), _) => Load::Rate(RequestsPerSec(r)),
        (_, _, Some(b)) => Load::Batch(b),
        _ => Load::Users(1),
    };
    let quantization = a
        .quantization
        .as_deref()
        .map(str::parse::<pilot_core::quant::Quantization>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut layout = pilot_core::layout::LayoutCells::default();
    for (column, v) in [
        ("tensor_parallel", a.tensor_parallel),
        ("pipeline_parallel", a.pipeline_parallel),
        ("expert_parallel", a.expert_parallel),
        ("attention_dp", a.attention_dp),
        ("prefill_workers", a.prefill_workers),
        ("prefill_tensor_parallel", a.prefill_tensor_parallel),
        ("prefill_expert_parallel", a.prefill_expert_parallel),
        ("prefill_attention_dp", a.prefill_attention_dp),
        ("decode_workers", a.decode_workers),
    ] {
        layout.set(column, v);
    }
    let one = OneShot {
        model: a.model.expect("clap requires --model without --scenarios"),
        gpu: a.gpu,
        gpu_count: a.gpu_count,
        layout,
        load,
        input_tokens: Tokens(a.input_tokens),
        output_tokens: Tokens(a.output_tokens),
        lengths: a
            .workload
            .as_deref()
            .map(|w| crate::recommend::workload_lengths(w, None))
            .transpose()?,
        engine: a.engine,
        quantization,
    };
    printed(predict_one(a.predictor.as_deref(), &one)?)
}

#[derive(Args)]
pub struct EvalPredictArgs {
    /// Measurement datasets; repeat for several.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Hold out one `model`, one `gpu` type or one `engine` at a time.
    #[arg(long, default_value = "model")]
    group_by: GroupBy,
    /// LLM-Pilot's published predictions directory, to score them on the same points.
    #[arg(long)]
    published: Option<PathBuf>,
    /// Print CSV instead of a table.
    #[arg(long)]
    csv: bool,
    /// Also write every held-out prediction (point, target, method, actual, predicted) here.
    #[arg(long, value_name = "FILE")]
    rows: Option<PathBuf>,
    /// Calibrate the physics constants per engine on each fold's training rows.
    #[arg(long)]
    calibrate: bool,
}

pub fn eval(a: EvalPredictArgs) -> anyhow::Result<()> {
    let opts = TrainOptions {
        calibrate: a.calibrate,
        ..TrainOptions::default()
    };
    let rows = a.rows.as_deref();
    emit(eval_files(&a.data, a.group_by, a.published, a.csv, rows, &opts)?.trim_end())
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Measurement datasets; repeat for several.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// A predictor for permutation importance (default: trained on the data).
    #[arg(long)]
    predictor: Option<PathBuf>,
    /// Write charts into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print CSV instead of tables.
    #[arg(long)]
    csv: bool,
}

pub fn analyze(a: AnalyzeArgs) -> anyhow::Result<()> {
    emit(analyze_files(&a.data, a.predictor.as_deref(), a.plot, a.csv)?.trim_end())
}

//! `pilot characterize`: flags to [`pilot_characterize::commands`].

use crate::output::printed;
use clap::Args;
use pilot_characterize::client::Api;
use pilot_characterize::commands::{
    CharacterizeRequest, DatasetFlags, characterize_command, report_command,
};
use pilot_characterize::options::CharacterizeOptions;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct CharacterizeArgs {
    /// The server: its OpenAI base URL or its root, e.g. http://127.0.0.1:8000/v1 or
    /// http://127.0.0.1:8000 (default: start pilot's embedded engine on a tiny model and
    /// measure it).
    #[arg(long, visible_alias = "base-url", alias = "url")]
    endpoint: Option<String>,
    /// The served model name (default: the first of /v1/models; the embedded engine's
    /// `tiny-llama`, or a catalog name or config.json path for it).
    #[arg(long)]
    model: Option<String>,
    /// The model's tokenizer: a tokenizer.json, a directory holding one, or a Hugging Face
    /// model id (its tokenizer.json downloaded from $HF_ENDPOINT with $HF_TOKEN, cached).
    /// Prompts go out as text of exactly the asked token count, and real texts' lengths are
    /// its counts.
    #[arg(long, value_name = "PATH|HUB_ID")]
    tokenizer: Option<String>,
    /// When the tokenizer is missing or cannot be loaded: `error` (default), or `estimate`
    /// (token-id prompts, and text lengths estimated from word counts, with a note).
    #[arg(long, value_name = "error|estimate", default_value = "error", value_parser = ["error", "estimate"])]
    tokenizer_fallback: String,
    /// What to send, as `vllm bench serve --dataset-name`: random, sharegpt, prefix,
    /// multi-turn or trace (sharegpt and trace read --dataset-path; multi-turn may).
    #[arg(long, visible_alias = "dataset-name", value_name = "KIND")]
    dataset: Option<String>,
    /// The dataset's file: ShareGPT JSON (sharegpt, multi-turn), or a trace/histogram CSV
    /// (trace).
    #[arg(long)]
    dataset_path: Option<PathBuf>,
    /// --dataset random (and synthetic multi-turn turns): input tokens (default 1024; 256).
    #[arg(long)]
    random_input_len: Option<u32>,
    /// --dataset random / multi-turn: output tokens (default 128; 64).
    #[arg(long)]
    random_output_len: Option<u32>,
    /// --dataset random: lengths uniform in [len*(1-R), len*(1+R)] (default 0).
    #[arg(long, visible_alias = "input-spread", value_name = "R")]
    random_range_ratio: Option<f64>,
    /// --dataset sharegpt / multi-turn: every request's output tokens, instead of the
    /// reference reply's length.
    #[arg(long)]
    sharegpt_output_len: Option<u32>,
    /// --dataset prefix: tokens of the prefix the prompts of a group share (default 256).
    #[arg(long)]
    prefix_len: Option<u32>,
    /// --dataset prefix: tokens of each prompt's own suffix (default 256).
    #[arg(long)]
    suffix_len: Option<u32>,
    /// --dataset prefix: how many prefix groups (default 10).
    #[arg(long)]
    num_prefixes: Option<u32>,
    /// --dataset prefix: output tokens (default 128).
    #[arg(long)]
    output_len: Option<u32>,
    /// --dataset multi-turn without --dataset-path: turns per synthetic conversation
    /// (default 5).
    #[arg(long)]
    turns: Option<u32>,
    /// JSON object merged into every request's body, e.g. '{"top_k": 1}' (not model,
    /// prompt, messages, max_tokens or stream, which pilot sets).
    #[arg(long, value_name = "JSON")]
    extra_body: Option<String>,
    /// A header sent on every request, 'NAME: VALUE' (repeatable); values of Authorization,
    /// *key*, *token* headers are redacted in run.json and logs.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The route measured: `completions` (token-id prompts: exact input lengths) or `chat`.
    #[arg(long, default_value = "completions")]
    api: Api,
    /// Closed-loop levels: concurrent users, e.g. 1,2,4,8.
    #[arg(
        long,
        value_delimiter = ',',
        visible_alias = "max-concurrency",
        alias = "concurrency"
    )]
    users: Vec<u32>,
    /// Open-loop levels: request rates, e.g. 2,4,8/s.
    #[arg(long, value_delimiter = ',', visible_alias = "request-rate")]
    rate: Vec<String>,
    /// End each level after this many measured requests (or at its --duration, whichever
    /// comes first).
    #[arg(long)]
    num_prompts: Option<u64>,
    /// Gamma shape of open-loop inter-arrival times (1 = Poisson, < 1 burstier).
    #[arg(long, default_value_t = 1.0)]
    burstiness: f64,
    /// Measurement window of each level, e.g. 120s, 2m (default: 120s; 15s for the embedded quick start).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each level's window, excluded from its metrics (default: 10s; 3s quick start).
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Input tokens of every request.
    #[arg(long, conflicts_with = "workload", requires = "output_tokens")]
    input_tokens: Option<u32>,
    /// Output tokens of every request (exact: max_tokens = min_tokens, ignore_eos).
    #[arg(long, conflicts_with = "workload", requires = "input_tokens")]
    output_tokens: Option<u32>,
    /// Request lengths from a file: fmperf histogram CSV, Azure trace CSV or ShareGPT JSON.
    #[arg(long)]
    workload: Option<PathBuf>,
    /// With an Azure trace (--workload or --dataset trace): replay its arrivals by timestamp
    /// instead of the levels.
    #[arg(long)]
    replay: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Objectives for goodput, e.g. ttft=200ms,itl=50ms.
    #[arg(long = "slo", value_delimiter = ',')]
    slos: Vec<String>,
    /// Objectives for goodput in vLLM's form, KEY:MILLISECONDS, e.g. --goodput ttft:200 tpot:50
    /// (the same objectives as --slo ttft=200ms,tpot=50ms).
    #[arg(long, num_args = 1.., value_name = "KEY:MS")]
    goodput: Vec<String>,
    /// Print only errors: no progress bars, table or notes (the files are written as usual).
    #[arg(long, short)]
    quiet: bool,
    /// Parent of the run directories: each run writes <out>/<UTC time>-<id>/ (requests.parquet,
    /// summary.csv, results.json, run.json) and never touches an earlier run.
    #[arg(long, default_value = "pilot-run")]
    out: PathBuf,
    /// Also append this run's rows to a measurement dataset.
    #[arg(long)]
    append_to: Option<PathBuf>,
    /// Continue a run: the one given (a run directory), else the latest under --out (or
    /// --out itself, when it is a run directory); keep the levels already in its summary.csv
    /// and run only the others.
    #[arg(long, num_args = 0..=1, value_name = "RUN_DIR")]
    resume: Option<Option<PathBuf>>,
    /// No longer needed (every run writes a new directory); accepted for old scripts.
    #[arg(long, conflicts_with = "resume", hide = true)]
    overwrite: bool,
    /// Environment variable holding the API key (sent as a bearer token, never logged).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Stop the sweep when a level fails more than this fraction of its requests.
    #[arg(long, default_value_t = 0.1)]
    max_failures: f64,
    /// Longest one request may take.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Longest a level waits for its open requests after its window; those still open are
    /// recorded as timeouts (default: the --duration, at least 10s, at most --timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    drain_timeout: Option<Duration>,
    /// Do not ask the server for exact output lengths (min_tokens, ignore_eos).
    #[arg(long)]
    no_exact_output: bool,
    /// GPU label of the rows (a catalog name, for training on them).
    #[arg(long)]
    gpu: Option<String>,
    #[arg(long)]
    gpu_count: Option<u32>,
    /// Engine label of the rows (vllm, sglang, tgi, ...).
    #[arg(long)]
    engine_label: Option<String>,
    /// The embedded engine's most sequences per step.
    #[arg(long)]
    max_batch: Option<u32>,
    /// Command starting the server measured at --endpoint: started before the sweep and
    /// stopped after it (output in <out>/server.log); with --tune, started for each trial,
    /// with {max_batch} where the setting goes.
    #[arg(long, requires = "endpoint")]
    launch: Option<String>,
    /// Binary-search the largest batch setting that does not fail: max_batch=LO..HI.
    #[arg(long)]
    tune: Option<String>,
    /// How long a launched server may take to answer /health.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
}

pub fn run(a: CharacterizeArgs) -> anyhow::Result<()> {
    // A named run directory must hold a run: a mistyped path would otherwise start a new run
    // there and say nothing of the one the user meant to continue.
    if let Some(Some(dir)) = &a.resume
        && pilot_characterize::run::latest_run(dir).is_none()
    {
        anyhow::bail!(
            "--resume {}: no run there to continue (no summary.csv or requests.parquet in it \
             or in a run directory under it); check the path, or drop --resume to start a new run",
            dir.display()
        );
    }
    let options = CharacterizeOptions {
        endpoint: a.endpoint,
        model: a.model,
        api: a.api,
        tokenizer_fallback: a.tokenizer_fallback == "estimate",
        burstiness: a.burstiness,
        replay: a.replay,
        seed: a.seed,
        // `--resume RUN_DIR` continues that directory: it is where the run writes.
        out: a.resume.clone().flatten().unwrap_or(a.out),
        append_to: a.append_to,
        resume: a.resume.is_some(),
        overwrite: a.overwrite,
        api_key_env: a.api_key_env,
        max_failure_fraction: a.max_failures,
        request_timeout: a.timeout,
        drain_timeout: a.drain_timeout,
        exact_output: !a.no_exact_output,
        gpu: a.gpu,
        gpu_count: a.gpu_count,
        engine_label: a.engine_label,
        engine_max_batch: a.max_batch,
        ..CharacterizeOptions::default()
    };
    printed(characterize_command(CharacterizeRequest {
        options,
        duration: a.duration,
        num_prompts: a.num_prompts,
        quiet: a.quiet,
        warmup: a.warmup,
        users: a.users,
        rates: a.rate,
        lengths: a.input_tokens.zip(a.output_tokens),
        workload: a.workload,
        slos: a.slos.into_iter().chain(a.goodput).collect(),
        tune: a.tune,
        launch: a.launch,
        health_timeout: a.health_timeout,
        dataset: DatasetFlags {
            kind: a.dataset,
            path: a.dataset_path,
            random_input_len: a.random_input_len,
            random_output_len: a.random_output_len,
            random_range_ratio: a.random_range_ratio,
            sharegpt_output_len: a.sharegpt_output_len,
            prefix_len: a.prefix_len,
            suffix_len: a.suffix_len,
            num_prefixes: a.num_prefixes,
            output_len: a.output_len,
            turns: a.turns,
        },
        tokenizer: a.tokenizer,
        extra_body: a.extra_body,
        headers: a.headers,
    })?)
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run directories made by `pilot characterize` (`<out>/<UTC time>-<id>/`, holding
    /// run.json and summary.csv); several are overlaid, one colour each.
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
    /// The HTML file to write (default: report.html in the first run directory).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> anyhow::Result<()> {
    printed(report_command(&a.runs, a.out.as_deref())?)
}

//! `pilot characterize`: sweeps load levels against an OpenAI-compatible server (or pilot's
//! embedded engine) and writes what it measured.
//!
//! Outputs, in `--out`:
//! - `requests.parquet`: every request (warm-up included, marked), with each token's arrival
//!   time, status and error text ([`pilot_core::requests`]); rewritten every few seconds and
//!   at each level's end, so an interrupted run keeps what it measured.
//! - `summary.csv`: one row per level in pilot's measurement schema, re-aggregated from the
//!   requests with the one metric definition ([`pilot_core::metrics`]: TTFT, ITL, TPOT, E2E as
//!   `vllm bench serve` defines them), plus telemetry, and four columns beyond the schema:
//!   `goodput_rps` (requests per second that met every SLO, per request), `slo_met` (the
//!   level's statistics meet every SLO), `server_running_mean`, `server_waiting_mean`.
//!
//! A sweep runs closed-loop levels (`users`) in order, then open-loop levels (`rates`), and
//! stops early when a level fails more than `max_failure_fraction` of its requests, the server
//! stops answering, or the server is saturated:
//! - closed loop: output throughput grew less than 5% over the previous level while median
//!   E2E grew by more than half;
//! - open loop: completions fell behind arrivals (achieved request rate below 90% of the
//!   offered one) *and* the backlog took more than two median E2Es to drain.

use crate::client::{Api, Client, ClientError, ClientOptions};
use crate::level::{LevelContext, LevelRun, Load, run_level};
use crate::slo::{Slo, request_is_good, row_meets};
use crate::store::Store;
use crate::telemetry::{GpuSampler, ServerGauges, metrics_url};
use crate::tune::{self, TuneOptions, TuneTrial};
use crate::workload::{LoadedWorkload, Workload, WorkloadError};
use pilot_core::requests::{PointKey, RequestRecord, aggregate, read_requests};
use pilot_core::schema::{
    Measurement, Mode, SchemaError, from_frame, read_frame, read_measurements, to_frame,
    write_frame, write_measurements,
};
use pilot_core::units::{Dtype, Millis, RequestsPerSec};
use polars::prelude::{Column, DataType};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything `pilot characterize` can be told. The CLI flag of each field is in its doc.
#[derive(Debug, Clone)]
pub struct CharacterizeOptions {
    /// `--endpoint`: OpenAI base URL (`http://127.0.0.1:8000/v1`, `https://...` for TLS).
    /// `None` starts pilot's embedded engine on 127.0.0.1 and measures it.
    pub endpoint: Option<String>,
    /// `--model`: the served model name. With an endpoint, `None` takes the first model of
    /// `/v1/models`; without one, the embedded engine's model (a built-in name such as
    /// `tiny-llama`, or a path to a `config.json`), `tiny-llama` by default.
    pub model: Option<String>,
    /// `--api completions|chat`: the route measured (completions gives exact input lengths).
    pub api: Api,
    /// `--users 1,2,4`: closed-loop levels (concurrent users).
    pub users: Vec<u32>,
    /// `--rate 2,4,8`: open-loop levels (requests per second).
    pub rates: Vec<RequestsPerSec>,
    /// `--burstiness`: shape of the gamma inter-arrival times (1 = Poisson).
    pub burstiness: f64,
    /// `--duration 120s`: measurement window of each level.
    pub duration: Duration,
    /// `--warmup 10s`: load before each level's window, excluded from its metrics.
    pub warmup: Duration,
    /// `--input-tokens N --output-tokens N`, or `--workload <file>` (kind by content/flag).
    pub workload: Workload,
    /// `--replay`: with an Azure trace, replay its arrivals by timestamp (one open-loop level)
    /// instead of the `users` / `rates` levels.
    pub replay: bool,
    /// `--seed`: prompts, lengths and arrivals are deterministic in it.
    pub seed: u64,
    /// `--slo ttft=200ms,itl=50ms`: objectives for goodput and `slo_met` (see [`crate::slo`]).
    pub slos: Vec<Slo>,
    /// `--out`: directory for `requests.parquet` and `summary.csv`.
    pub out: PathBuf,
    /// `--append-to <dataset.csv|parquet>`: also append this run's rows to a dataset.
    pub append_to: Option<PathBuf>,
    /// `--resume`: keep the levels already in `<out>/summary.csv` and run only the others.
    pub resume: bool,
    /// `--api-key-env`: environment variable holding the API key (sent as a bearer token).
    pub api_key_env: String,
    /// `--max-failures 0.1`: a level failing more than this fraction of its requests ends
    /// the sweep.
    pub max_failure_fraction: f64,
    /// `--timeout 600s`: longest one request may take.
    pub request_timeout: Duration,
    /// `--no-exact-output` clears it: send `min_tokens` and `ignore_eos` (vLLM extensions).
    pub exact_output: bool,
    /// `--gpu`: GPU label of the rows (`cpu` for the embedded engine, else `unknown`).
    pub gpu: Option<String>,
    /// `--gpu-count`: GPUs behind the endpoint (1 by default).
    pub gpu_count: Option<u32>,
    /// `--engine-label`: engine label of the rows (`pilot` embedded, else `unknown`).
    pub engine_label: Option<String>,
    /// `--max-batch`: the embedded engine's most sequences per step (its default otherwise).
    pub engine_max_batch: Option<u32>,
    /// `--launch '<cmd with {max_batch}>' --tune max_batch=LO..HI`: tuning (see [`crate::tune`]).
    pub tune: Option<TuneOptions>,
    /// `--tokenizer tokenizer.json`: send text prompts of exactly the asked token count (for
    /// servers that take no token ids); see [`crate::tokenize`].
    pub tokenizer: Option<PathBuf>,
}

impl Default for CharacterizeOptions {
    /// The quick start: the embedded engine on `tiny-llama`, three closed-loop levels of
    /// 15 s, about a minute on two cores.
    fn default() -> Self {
        CharacterizeOptions {
            endpoint: None,
            model: None,
            api: Api::Completions,
            users: vec![1, 4, 16],
            rates: Vec::new(),
            burstiness: 1.0,
            duration: Duration::from_secs(15),
            warmup: Duration::from_secs(3),
            workload: Workload::Fixed {
                input: 64,
                output: 32,
            },
            replay: false,
            seed: 0,
            slos: Vec::new(),
            out: PathBuf::from("pilot-characterize"),
            append_to: None,
            resume: false,
            api_key_env: "OPENAI_API_KEY".to_string(),
            max_failure_fraction: 0.1,
            request_timeout: Duration::from_secs(600),
            exact_output: true,
            gpu: None,
            gpu_count: None,
            engine_label: None,
            engine_max_batch: None,
            tune: None,
            tokenizer: None,
        }
    }
}

/// One level's row and what the schema has no column for.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelResult {
    pub row: Measurement,
    /// Requests per second that met every SLO (per request); `None` without SLOs.
    pub goodput: Option<RequestsPerSec>,
    /// Whether the level's statistics meet every SLO; `None` without SLOs.
    pub slo_met: Option<bool>,
    /// Means of the server's Prometheus gauges during the window.
    pub server: ServerGauges,
    /// Kept from an earlier run by `--resume`, not measured now.
    pub resumed: bool,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct CharacterizeReport {
    /// Every level, in the order run (resumed ones first).
    pub levels: Vec<LevelResult>,
    pub requests_path: PathBuf,
    pub summary_path: PathBuf,
    /// The dataset the rows were appended to, if asked.
    pub appended_to: Option<PathBuf>,
    /// Why the (last) sweep stopped before its last level, if it did.
    pub stopped_early: Option<String>,
    /// Notes for the user: workload estimates, missing telemetry, length mismatches.
    pub notes: Vec<String>,
    /// Tuning trials, in the order run (empty without `--tune`).
    pub trials: Vec<TuneTrial>,
    /// The tuned setting chosen (see [`crate::tune`]).
    pub best_setting: Option<u32>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum CharacterizeError {
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot start the embedded engine: {0}")]
    Engine(String),
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "interrupted: {requests} requests and {levels} complete levels are saved in {out}; run again with --resume to finish"
    )]
    Interrupted {
        out: PathBuf,
        requests: usize,
        levels: usize,
    },
    #[error("tuning: {0}")]
    Tune(String),
}

/// Runs `pilot characterize`. With `progress`, draws a progress bar per level on stderr.
/// Ctrl-C saves what was measured and returns [`CharacterizeError::Interrupted`].
pub async fn characterize(
    opts: CharacterizeOptions,
    progress: bool,
) -> Result<CharacterizeReport, CharacterizeError> {
    validate(&opts)?;
    let out = opts.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| CharacterizeError::Io {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    let requests_path = out.join("requests.parquet");
    let summary_path = out.join("summary.csv");
    let mut report = CharacterizeReport {
        requests_path: requests_path.clone(),
        summary_path: summary_path.clone(),
        ..Default::default()
    };
    let prior_records = if opts.resume && summary_path.exists() {
        report.levels = read_summary(&summary_path)?;
        let done: Vec<PointKey> = report.levels.iter().map(|l| key_of(&l.row)).collect();
        let kept: Vec<RequestRecord> = if requests_path.exists() {
            read_requests(&requests_path)?
                .into_iter()
                .filter(|r| done.contains(&r.point))
                .collect()
        } else {
            Vec::new()
        };
        report.notes.push(format!(
            "resumed: {} levels already measured are kept",
            report.levels.len()
        ));
        kept
    } else {
        for p in [&requests_path, &summary_path] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| CharacterizeError::Io {
                    path: p.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        Vec::new()
    };
    let first_id = prior_records
        .iter()
        .map(|r| r.request_id + 1)
        .max()
        .unwrap_or(0);
    let store = Arc::new(Mutex::new(Store::new(&requests_path, prior_records)));
    let resumed_count = report.levels.len();

    let result = {
        let work = async {
            let mut run = Run {
                opts: &opts,
                store: store.clone(),
                next_id: Arc::new(AtomicU64::new(first_id)),
                progress,
            };
            match &opts.tune {
                None => run.target(None, &mut report).await.map(|_| ()),
                Some(t) => tune::tune(&mut run, t, &mut report).await,
            }
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(CharacterizeError::Interrupted {
                out: out.clone(), requests: 0, levels: 0,
            }),
        }
    };
    Store::flush(&store)?;
    write_summary(&report.levels, &summary_path)?;
    if let Err(CharacterizeError::Interrupted { .. }) = result {
        let requests = store.lock().expect("store lock").records().len();
        return Err(CharacterizeError::Interrupted {
            out,
            requests,
            levels: report.levels.len(),
        });
    }
    result?;
    if let Some(dataset) = &opts.append_to {
        let new_rows: Vec<Measurement> = report.levels[resumed_count..]
            .iter()
            .map(|l| l.row.clone())
            .collect();
        append_rows(dataset, &new_rows)?;
        report.appended_to = Some(dataset.clone());
    }
    Ok(report)
}

fn validate(o: &CharacterizeOptions) -> Result<(), CharacterizeError> {
    let bad = |m: String| Err(CharacterizeError::Options(m));
    if o.duration.is_zero() {
        return bad("--duration must be positive".into());
    }
    if o.users.contains(&0) {
        return bad("--users: every level needs at least 1 user".into());
    }
    if let Some(r) = o.rates.iter().find(|r| !(r.0.is_finite() && r.0 > 0.0)) {
        return bad(format!("--rate: {} is not a positive rate", r.0));
    }
    if !(o.burstiness.is_finite() && o.burstiness > 0.0) {
        return bad(format!(
            "--burstiness must be positive (1 is Poisson), got {}",
            o.burstiness
        ));
    }
    if !(0.0..=1.0).contains(&o.max_failure_fraction) {
        return bad(format!(
            "--max-failures is a fraction from 0 to 1, got {}",
            o.max_failure_fraction
        ));
    }
    if o.replay && !matches!(o.workload, Workload::AzureTrace(_)) {
        return bad("--replay needs an Azure trace as --workload".into());
    }
    if o.request_timeout.is_zero() {
        return bad("--timeout must be positive".into());
    }
    Ok(())
}

/// A sweep in progress: shared by the plain run and each tuning trial.
pub struct Run<'a> {
    pub opts: &'a CharacterizeOptions,
    store: Arc<Mutex<Store>>,
    next_id: Arc<AtomicU64>,
    progress: bool,
}

/// How one target's sweep went (for tuning).
#[derive(Debug, Clone, Default)]
pub struct SweepOutcome {
    /// Indices into [`CharacterizeReport::levels`] of this sweep's levels (resumed included).
    pub levels: Vec<usize>,
    /// Out-of-memory failures seen.
    pub oom: u64,
    /// Why the sweep stopped early.
    pub stopped: Option<String>,
    /// Whether it stopped because of failures or a dead server (not saturation).
    pub failed: bool,
}

/// The server being measured: the embedded engine (stopped on drop) or an endpoint.
struct Target {
    base_url: String,
    model: String,
    embedded: Option<pilot_engine::ServerHandle>,
    max_model_len: Option<u32>,
    gpu: String,
    gpu_count: u32,
    engine: String,
    quantization: Option<Dtype>,
}

impl Run<'_> {
    /// Starts (or reaches) the target, sweeps its levels, stops it. `max_batch` labels the
    /// rows (tuning) and configures the embedded engine.
    pub async fn target(
        &mut self,
        max_batch: Option<u32>,
        report: &mut CharacterizeReport,
    ) -> Result<SweepOutcome, CharacterizeError> {
        let o = self.opts;
        let api_key = std::env::var(&o.api_key_env).ok().filter(|k| !k.is_empty());
        let mut target = match &o.endpoint {
            Some(url) => Target {
                base_url: url.trim_end_matches('/').to_string(),
                model: o.model.clone().unwrap_or_default(),
                embedded: None,
                max_model_len: None,
                gpu: o.gpu.clone().unwrap_or_else(|| "unknown".into()),
                gpu_count: o.gpu_count.unwrap_or(1),
                engine: o.engine_label.clone().unwrap_or_else(|| "unknown".into()),
                quantization: None,
            },
            None => {
                let mut engine = pilot_engine::EngineOptions {
                    model: o.model.clone().unwrap_or_else(|| "tiny-llama".into()),
                    seed: o.seed,
                    ..Default::default()
                };
                if let Some(b) = max_batch.or(o.engine_max_batch) {
                    engine.max_batch = b as usize;
                }
                let opts = pilot_engine::ServeOptions {
                    engine,
                    port: 0,
                    ..Default::default()
                };
                let handle = pilot_engine::spawn_server(opts)
                    .await
                    .map_err(|e| CharacterizeError::Engine(e.to_string()))?;
                let info = handle.info();
                Target {
                    base_url: handle.openai_base_url(),
                    model: handle.model_name.clone(),
                    max_model_len: Some(info.max_model_len as u32),
                    gpu: o.gpu.clone().unwrap_or_else(|| "cpu".into()),
                    gpu_count: o.gpu_count.unwrap_or(1),
                    engine: o.engine_label.clone().unwrap_or_else(|| "pilot".into()),
                    quantization: Some(match info.dtype {
                        pilot_engine::Dtype::F32 => Dtype::F32,
                        pilot_engine::Dtype::F16 => Dtype::F16,
                        pilot_engine::Dtype::Bf16 => Dtype::Bf16,
                    }),
                    embedded: Some(handle),
                }
            }
        };
        let result = self.sweep(&mut target, api_key, max_batch, report).await;
        if let Some(h) = target.embedded.take() {
            h.shutdown().await;
        }
        result
    }

    async fn sweep(
        &mut self,
        target: &mut Target,
        api_key: Option<String>,
        max_batch: Option<u32>,
        report: &mut CharacterizeReport,
    ) -> Result<SweepOutcome, CharacterizeError> {
        let o = self.opts;
        let mut client_opts = ClientOptions {
            base_url: target.base_url.clone(),
            model: target.model.clone(),
            api: o.api,
            api_key,
            timeout: o.request_timeout,
            exact_output: o.exact_output,
            tokenizer: match &o.tokenizer {
                Some(p) => Some(std::sync::Arc::new(
                    crate::tokenize::PromptTokenizer::load(p)
                        .map_err(CharacterizeError::Options)?,
                )),
                None => None,
            },
        };
        let probe = Client::new(client_opts.clone())?;
        match list_models(&probe, &target.base_url).await {
            Ok(models) => {
                if target.model.is_empty() {
                    target.model = models.first().map(|m| m.0.clone()).ok_or_else(|| {
                        CharacterizeError::Unreachable {
                            url: format!("{}/models", target.base_url),
                            reason: "lists no model: pass --model".into(),
                        }
                    })?;
                }
                if let Some((_, Some(len))) = models.iter().find(|m| m.0 == target.model) {
                    target.max_model_len = target.max_model_len.or(Some(*len));
                }
            }
            Err(reason) if target.model.is_empty() => {
                return Err(CharacterizeError::Unreachable {
                    url: format!("{}/models", target.base_url),
                    reason,
                });
            }
            Err(reason) => push_note(
                report,
                format!("could not list the server's models ({reason}); going on"),
            ),
        }
        if target.max_model_len.is_none() {
            push_note(
                report,
                "the server does not report max_model_len: lengths are not clamped to its context"
                    .into(),
            );
        }
        client_opts.model = target.model.clone();
        let client = Arc::new(Client::new(client_opts)?);
        let workload = LoadedWorkload::load(&o.workload, target.max_model_len)?;
        for n in &workload.notes {
            push_note(report, n.clone());
        }
        let gpu = Arc::new(GpuSampler::open());
        if let Some(why) = &gpu.unavailable {
            push_note(report, why.clone());
        }
        let murl = metrics_url(&target.base_url);
        let ctx = LevelContext {
            client,
            workload: Arc::new(workload),
            seed: o.seed,
            warmup: o.warmup,
            duration: o.duration,
            drain: o.request_timeout,
            next_id: self.next_id.clone(),
            store: self.store.clone(),
            metrics_url: Some(murl.clone()),
            gpu,
            progress: self.progress,
        };

        let base_key = PointKey {
            model: target.model.clone(),
            gpu: target.gpu.clone(),
            gpu_count: target.gpu_count,
            engine: target.engine.clone(),
            mode: Mode::Closed,
            users: None,
            rate_milli_rps: None,
            batch_size: None,
            max_batch,
            quantization: target.quantization,
        };
        let mut levels: Vec<(Load, PointKey)> = Vec::new();
        if o.replay {
            let span = o.warmup + o.duration;
            let trace: Vec<Duration> = ctx
                .workload
                .trace()
                .map(|t| t.map(|(at, _)| at).collect())
                .unwrap_or_default();
            let in_window = trace
                .iter()
                .filter(|at| **at >= o.warmup && **at < span)
                .count();
            let rate = in_window as f64 / o.duration.as_secs_f64();
            let key = PointKey {
                mode: Mode::Open,
                rate_milli_rps: Some((rate * 1000.0).round() as u64),
                ..base_key.clone()
            };
            levels.push((Load::Trace, key));
        } else {
            let users = if o.users.is_empty() && o.rates.is_empty() {
                vec![1]
            } else {
                o.users.clone()
            };
            for u in users {
                levels.push((
                    Load::Closed { users: u },
                    PointKey {
                        users: Some(u),
                        ..base_key.clone()
                    },
                ));
            }
            for r in &o.rates {
                let key = PointKey {
                    mode: Mode::Open,
                    rate_milli_rps: Some((r.0 * 1000.0).round() as u64),
                    ..base_key.clone()
                };
                levels.push((
                    Load::Open {
                        rate: *r,
                        burstiness: o.burstiness,
                    },
                    key,
                ));
            }
        }

        let mut outcome = SweepOutcome::default();
        let mut previous: Option<Measurement> = None;
        for (load, key) in levels {
            if let Some(i) = report.levels.iter().position(|l| key_of(&l.row) == key) {
                outcome.levels.push(i);
                previous = Some(report.levels[i].row.clone());
                continue;
            }
            let label = level_label(&key);
            let run = run_level(&ctx, load, key.clone(), &label).await;
            let result = self.level_result(&run, &key, report);
            Store::flush(&self.store)?;
            let row = result.row.clone();
            outcome.oom += row.metrics.requests_failed_oom;
            report.levels.push(result);
            outcome.levels.push(report.levels.len() - 1);
            write_summary(&report.levels, &report.summary_path)?;

            let total = row.metrics.requests_ok + row.metrics.requests_failed;
            let stop = if let Some(why) = &run.aborted {
                outcome.failed = true;
                Some(format!("{label}: {why}"))
            } else if total > 0
                && row.metrics.requests_failed as f64 / total as f64 > o.max_failure_fraction
            {
                outcome.failed = true;
                Some(format!(
                    "{label}: {} of {total} requests failed, more than --max-failures {}",
                    row.metrics.requests_failed, o.max_failure_fraction
                ))
            } else {
                saturated(&load, &row, previous.as_ref(), &run, o.duration)
                    .map(|why| format!("{label}: saturated ({why})"))
            };
            if let Some(why) = stop {
                if let Some(last) = report.levels.last_mut() {
                    last.row.add_flag(if outcome.failed {
                        "sweep_stopped"
                    } else {
                        "saturated"
                    });
                }
                write_summary(&report.levels, &report.summary_path)?;
                report.stopped_early = Some(why.clone());
                outcome.stopped = Some(why);
                break;
            }
            if matches!(load, Load::Closed { .. }) {
                previous = Some(row);
            } else {
                previous = None;
            }
        }
        Ok(outcome)
    }

    fn level_result(
        &self,
        run: &LevelRun,
        key: &PointKey,
        report: &mut CharacterizeReport,
    ) -> LevelResult {
        let o = self.opts;
        let source = format!("pilot characterize ({})", o.out.display());
        let mut row = aggregate(&run.records, &source)
            .into_iter()
            .next()
            .unwrap_or_else(|| {
                let mut r = key.to_row();
                r.duration = Some(run.window);
                r.source = source.clone();
                r
            });
        row.kv_cache_usage = run.server.kv_cache_usage;
        row.gpu_utilization = run.gpu.utilization;
        row.gpu_memory_used = run.gpu.memory_used;
        row.gpu_power = run.gpu.power;
        let label = level_label(key);
        if run.input_mismatches > 0 {
            row.add_flag("input_length_mismatch");
            push_note(
                report,
                format!(
                    "{label}: {} requests: the server counted a different prompt length than sent (recorded: the server's count){}",
                    run.input_mismatches,
                    if o.api == Api::Chat {
                        "; expected with --api chat, whose template adds tokens"
                    } else {
                        ""
                    }
                ),
            );
        }
        if run.output_mismatches > 0 {
            row.add_flag("output_length_mismatch");
            push_note(
                report,
                format!(
                    "{label}: {} requests produced a different number of tokens than asked (does the server honour min_tokens / ignore_eos?)",
                    run.output_mismatches
                ),
            );
        }
        if run.packed_events > 0 {
            row.add_flag("multi_token_events");
            push_note(
                report,
                format!(
                    "{label}: {} requests streamed several tokens per event; ITLs are per event, as vllm bench serve counts them",
                    run.packed_events
                ),
            );
        }
        if run.aborted.is_some() {
            row.add_flag("level_aborted");
        }
        let (goodput, slo_met) = if o.slos.is_empty() {
            (None, None)
        } else {
            let good = run
                .records
                .iter()
                .filter(|r| !r.warmup && request_is_good(&o.slos, &r.timings()))
                .count();
            (
                Some(RequestsPerSec(good as f64 / run.window.as_secs_f64())),
                row_meets(&o.slos, &row),
            )
        };
        LevelResult {
            row,
            goodput,
            slo_met,
            server: run.server,
            resumed: false,
        }
    }
}

fn push_note(report: &mut CharacterizeReport, note: String) {
    if !report.notes.contains(&note) {
        report.notes.push(note);
    }
}

/// `(id, max_model_len)` of each model the server lists.
async fn list_models(client: &Client, base: &str) -> Result<Vec<(String, Option<u32>)>, String> {
    let url = format!("{base}/models");
    let mut req = client.http().get(&url);
    if let Some(key) = client.api_key() {
        req = req.bearer_auth(key);
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| client.redact(&crate::client::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| client.redact(&e.to_string()))?;
    let data = v
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or("no 'data' list in the answer")?;
    Ok(data
        .iter()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_string();
            let len = m
                .get("max_model_len")
                .and_then(|l| l.as_u64())
                .map(|l| l as u32);
            Some((id, len))
        })
        .collect())
}

fn saturated(
    load: &Load,
    row: &Measurement,
    previous: Option<&Measurement>,
    run: &LevelRun,
    duration: Duration,
) -> Option<String> {
    let m = &row.metrics;
    match load {
        Load::Closed { .. } => {
            let prev = previous?;
            let (thr, prev_thr) = (m.output_throughput?.0, prev.metrics.output_throughput?.0);
            let (e2e, prev_e2e) = (m.e2e.p50?.0, prev.metrics.e2e.p50?.0);
            (thr < prev_thr * 1.05 && e2e > prev_e2e * 1.5).then(|| {
                format!("output throughput {thr:.1} tok/s vs {prev_thr:.1} before, median E2E {e2e:.0} ms vs {prev_e2e:.0} ms")
            })
        }
        Load::Open { .. } | Load::Trace => {
            let offered = run.sent_measured as f64 / duration.as_secs_f64();
            let achieved = m.request_throughput?.0;
            let drain = run.window.saturating_sub(duration);
            let e2e = m.e2e.p50.unwrap_or(Millis(0.0)).to_duration();
            (achieved < 0.9 * offered && drain > 2 * e2e).then(|| {
                format!("completed {achieved:.2} req/s of {offered:.2} offered; the backlog took {:.1} s to drain", drain.as_secs_f64())
            })
        }
    }
}

/// A short name of a level for progress and messages: `users=4`, `rate=2/s`, `+ max_batch=8`.
pub fn level_label(k: &PointKey) -> String {
    let mut s = match (k.mode, k.users, k.rate_milli_rps) {
        (Mode::Closed, Some(u), _) => format!("users={u}"),
        (_, _, Some(r)) => format!("rate={}/s", r as f64 / 1000.0),
        (m, _, _) => m.name().to_string(),
    };
    if let Some(b) = k.max_batch {
        s.push_str(&format!(" mb={b}"));
    }
    s
}

/// The key of a row (to match resumed levels).
pub fn key_of(r: &Measurement) -> PointKey {
    PointKey {
        model: r.model.clone(),
        gpu: r.gpu.clone(),
        gpu_count: r.gpu_count,
        engine: r.engine.clone(),
        mode: r.mode,
        users: r.users,
        rate_milli_rps: r.rate.map(|x| (x.0 * 1000.0).round() as u64),
        batch_size: r.batch_size,
        max_batch: r.max_batch,
        quantization: r.quantization,
    }
}

const EXTRA_COLUMNS: [&str; 4] = [
    "goodput_rps",
    "slo_met",
    "server_running_mean",
    "server_waiting_mean",
];

/// Writes `summary.csv`: the schema's columns, then [`EXTRA_COLUMNS`].
pub fn write_summary(levels: &[LevelResult], path: &Path) -> Result<(), CharacterizeError> {
    let rows: Vec<Measurement> = levels.iter().map(|l| l.row.clone()).collect();
    let werr = |e: &dyn std::fmt::Display| SchemaError::Write {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut df = to_frame(&rows).map_err(|e| werr(&e))?;
    let f = |name: &str, v: Vec<Option<f64>>| Column::new(name.into(), v);
    let extra = [
        f(
            EXTRA_COLUMNS[0],
            levels.iter().map(|l| l.goodput.map(|g| g.0)).collect(),
        ),
        Column::new(
            EXTRA_COLUMNS[1].into(),
            levels
                .iter()
                .map(|l| l.slo_met)
                .collect::<Vec<Option<bool>>>(),
        ),
        f(
            EXTRA_COLUMNS[2],
            levels.iter().map(|l| l.server.running_mean).collect(),
        ),
        f(
            EXTRA_COLUMNS[3],
            levels.iter().map(|l| l.server.waiting_mean).collect(),
        ),
    ];
    for c in extra {
        df.with_column(c).map_err(|e| werr(&e))?;
    }
    write_frame(&mut df, path)?;
    Ok(())
}

/// Reads a `summary.csv` written by [`write_summary`] (levels marked resumed).
pub fn read_summary(path: &Path) -> Result<Vec<LevelResult>, CharacterizeError> {
    let df = read_frame(path)?;
    let rows = from_frame(&df, path)?;
    let n = df.height();
    let floats = |name: &str| -> Vec<Option<f64>> {
        let Ok(c) = df.column(name).and_then(|c| c.cast(&DataType::Float64)) else {
            return vec![None; n];
        };
        match c.f64() {
            Ok(ca) => ca.iter().collect(),
            Err(_) => vec![None; n],
        }
    };
    let met: Vec<Option<bool>> = match df.column("slo_met").and_then(|c| c.cast(&DataType::String))
    {
        Ok(c) => match c.str() {
            Ok(ca) => ca
                .iter()
                .map(|v| v.map(|s| s.eq_ignore_ascii_case("true")))
                .collect(),
            Err(_) => vec![None; n],
        },
        Err(_) => vec![None; n],
    };
    let (goodput, running, waiting) = (
        floats("goodput_rps"),
        floats("server_running_mean"),
        floats("server_waiting_mean"),
    );
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| LevelResult {
            server: ServerGauges {
                running_mean: running[i],
                waiting_mean: waiting[i],
                kv_cache_usage: row.kv_cache_usage,
            },
            row,
            goodput: goodput[i].map(RequestsPerSec),
            slo_met: met[i],
            resumed: true,
        })
        .collect())
}

fn append_rows(dataset: &Path, rows: &[Measurement]) -> Result<(), CharacterizeError> {
    let mut all = if dataset.exists() {
        read_measurements(dataset)?
    } else {
        Vec::new()
    };
    all.extend_from_slice(rows);
    write_measurements(&all, dataset)?;
    Ok(())
}

impl CharacterizeReport {
    /// The end-of-run table: one line per level.
    pub fn table(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        let mut header = vec![
            "level",
            "ok",
            "failed",
            "TTFT p50",
            "ITL p50",
            "TPOT p50",
            "E2E p50",
            "out tok/s",
            "req/s",
        ];
        let slos = self.levels.iter().any(|l| l.goodput.is_some());
        if slos {
            header.extend(["goodput req/s", "SLOs met"]);
        }
        header.push("KV %");
        header.push("flags");
        t.set_header(header);
        // Sub-millisecond gaps (a tiny model on a fast CPU) keep their digits.
        let ms = |m: Option<Millis>| {
            m.map_or("-".to_string(), |m| {
                let digits = if m.0 < 1.0 {
                    3
                } else if m.0 < 10.0 {
                    2
                } else {
                    1
                };
                format!("{:.digits$} ms", m.0)
            })
        };
        let num = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |x| format!("{x:.p$}"));
        for l in &self.levels {
            let m = &l.row.metrics;
            let mut cells = vec![
                level_label(&key_of(&l.row)),
                m.requests_ok.to_string(),
                m.requests_failed.to_string(),
                ms(m.ttft.p50),
                ms(m.itl.p50),
                ms(m.tpot.p50),
                ms(m.e2e.p50),
                num(m.output_throughput.map(|x| x.0), 1),
                num(m.request_throughput.map(|x| x.0), 2),
            ];
            if slos {
                cells.push(num(l.goodput.map(|g| g.0), 2));
                cells.push(
                    l.slo_met
                        .map_or("-".into(), |b| if b { "yes".into() } else { "no".into() }),
                );
            }
            cells.push(num(l.row.kv_cache_usage.map(|p| p.0), 0));
            let mut flags = l.row.flags.clone();
            if l.resumed {
                flags = if flags.is_empty() {
                    "resumed".into()
                } else {
                    format!("{flags},resumed")
                };
            }
            cells.push(flags);
            t.add_row(cells);
        }
        t.to_string()
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;

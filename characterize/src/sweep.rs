//! A sweep: the load levels run against one target, each turned into a row, until the last
//! level or an early stop. [`Run`] is shared by the plain run and by each tuning trial
//! ([`crate::tune`] calls [`Run::target`]); it knows nothing of tuning, so the dependency
//! runs one way, tune on sweep.
//!
//! A sweep runs closed-loop levels (`users`) in order, then open-loop levels (`rates`), and
//! stops early when a level fails more than `max_failure_fraction` of its requests, the server
//! stops answering, or the server is saturated:
//! - closed loop: output throughput grew less than 5% over the previous level while median
//!   E2E grew by more than half;
//! - open loop: completions fell behind arrivals (achieved request rate below 90% of the
//!   offered one) *and* the backlog took more than two median E2Es to drain.
//!
//! Each level ends at most `--drain-timeout` after its window (see [`crate::level`]); a level
//! in which no measured request completed is flagged `no_completed_requests`. Levels already
//! in the report (`--resume`) are not run again. `summary.csv` is rewritten after each level.

use crate::client::{Api, Client, ClientOptions, prompt_id_range};
use crate::error::CharacterizeError;
use crate::level::{Arrivals, Level, LevelContext, LevelRun, run_level};
use crate::options::CharacterizeOptions;
use crate::report::{CharacterizeReport, LevelResult, key_of, level_label, push_note};
use crate::store::Store;
use crate::summary::write_summary;
use crate::target::Target;
use crate::telemetry::{GpuSampler, metrics_url};
use crate::workload::LoadedWorkload;
use pilot_core::load::Load;
use pilot_core::requests::{PointKey, aggregate};
use pilot_core::schema::Measurement;
use pilot_core::slo::{request_is_good, row_meets};
use pilot_core::units::{Millis, RequestsPerSec};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A sweep in progress: shared by the plain run and each tuning trial.
pub struct Run<'a> {
    pub opts: &'a CharacterizeOptions,
    store: Arc<Mutex<Store>>,
    next_id: Arc<AtomicU64>,
    progress: bool,
}

impl<'a> Run<'a> {
    /// A sweep writing to `store`, numbering its requests from `first_id`; with `progress`,
    /// a progress bar per level on stderr.
    pub(crate) fn new(
        opts: &'a CharacterizeOptions,
        store: Arc<Mutex<Store>>,
        first_id: u64,
        progress: bool,
    ) -> Self {
        Run {
            opts,
            store,
            next_id: Arc::new(AtomicU64::new(first_id)),
            progress,
        }
    }
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
        let mut target = Target::start(o, max_batch).await?;
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
                Some(p) => match crate::tokenize::PromptTokenizer::load(p) {
                    Ok(t) => Some(std::sync::Arc::new(t)),
                    Err(why) if o.tokenizer_fallback => {
                        push_note(
                            report,
                            format!(
                                "{why}: continuing without it (--tokenizer-fallback estimate): token-id prompts, estimated text lengths"
                            ),
                        );
                        None
                    }
                    Err(why) => {
                        return Err(CharacterizeError::Options(format!(
                            "{why}; or add --tokenizer-fallback estimate to run with estimated lengths"
                        )));
                    }
                },
                None => None,
            },
            extra_body: o.extra_body.clone(),
            headers: o.headers.clone(),
        };
        let probe = Client::new(client_opts.clone())?;
        target.discover(&probe, report).await?;
        let prompt_ids = prompt_id_range(target.vocab.map(|v| v.0));
        // Real texts (ShareGPT) are sent as they are: no ids to speak of.
        let texts = matches!(
            o.workload,
            crate::workload::Workload::Dataset(
                crate::dataset::Dataset::ShareGpt { .. }
                    | crate::dataset::Dataset::MultiTurn { file: Some(_), .. }
            )
        );
        if o.api == Api::Completions && client_opts.tokenizer.is_none() && !texts {
            push_note(
                report,
                match target.vocab {
                    Some((size, from)) => format!(
                        "prompts: token ids {}..{}, inside {}'s vocabulary of {size} ids (from {from})",
                        prompt_ids.start, prompt_ids.end, target.model
                    ),
                    None => format!(
                        "prompts: token ids {}..{}, which every vocabulary of {} ids or more holds: {}'s vocabulary size is unknown (not in pilot's model catalog); --tokenizer tokenizer.json sends text prompts instead",
                        prompt_ids.start, prompt_ids.end, prompt_ids.end, target.model
                    ),
                },
            );
        }
        if target.max_model_len.is_none() {
            push_note(
                report,
                "the server does not report max_model_len: lengths are not clamped to its context"
                    .into(),
            );
        }
        client_opts.model = target.model.clone();
        let workload = LoadedWorkload::load_with(
            &o.workload,
            target.max_model_len,
            client_opts.tokenizer.as_deref(),
        )?;
        let client = Arc::new(Client::new(client_opts)?);
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
            prompt_ids,
            warmup: o.warmup,
            duration: o.duration,
            num_prompts: o.num_prompts,
            drain: o.drain(),
            next_id: self.next_id.clone(),
            store: self.store.clone(),
            metrics_url: Some(murl.clone()),
            gpu,
            progress: self.progress,
        };

        let key_of_level = |load: Load| PointKey {
            model: target.model.clone(),
            gpu: target.gpu.clone(),
            gpu_count: target.gpu_count,
            engine: target.engine.clone(),
            load: PointKey::keyed(load),
            max_batch,
            quantization: target.quantization,
        };
        let mut levels: Vec<(Level, PointKey)> = Vec::new();
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
            let level = Level {
                load: Load::Rate(RequestsPerSec(rate)),
                arrivals: Arrivals::Trace,
            };
            levels.push((level, key_of_level(level.load)));
        } else {
            let users = if o.users.is_empty() && o.rates.is_empty() {
                vec![1]
            } else {
                o.users.clone()
            };
            let arrivals = Arrivals::Gamma {
                burstiness: o.burstiness,
            };
            let loads = users
                .into_iter()
                .map(Load::Users)
                .chain(o.rates.iter().copied().map(Load::Rate));
            for load in loads {
                levels.push((Level { load, arrivals }, key_of_level(load)));
            }
        }

        let mut outcome = SweepOutcome::default();
        let mut previous: Option<Measurement> = None;
        for (level, key) in levels {
            if let Some(i) = report.levels.iter().position(|l| key_of(&l.row) == key) {
                outcome.levels.push(i);
                previous = Some(report.levels[i].row.clone());
                continue;
            }
            let label = level_label(&key);
            tracing::info!(level = %label, model = %key.model, "level starts");
            let file = crate::store::level_file(&report.run_dir, &label);
            self.store.lock().expect("store lock").begin_level(file);
            let run = run_level(&ctx, level, key.clone(), &label).await;
            // The level's own file, complete, then the whole table (below).
            Store::flush(&self.store)?;
            self.store.lock().expect("store lock").end_level();
            let result = self.level_result(&run, &key, report);
            let m = &result.row.metrics;
            tracing::info!(
                level = %label,
                ok = m.requests_ok,
                failed = m.requests_failed,
                window_s = run.window.as_secs_f64(),
                ttft_p50_ms = m.ttft.p50.map(|x| x.0),
                output_tok_s = m.output_throughput.map(|x| x.0),
                "level done"
            );
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
                saturated(level.load, &row, previous.as_ref(), &run, o.duration)
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
            if matches!(level.load, Load::Users(_)) {
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
        if run.stalled > 0 {
            row.add_flag("stalled_requests");
            push_note(
                report,
                format!(
                    "{label}: {} requests were still open {:.0} s after the window (--drain-timeout) and are recorded as timeouts: is the server stalled?",
                    run.stalled,
                    o.drain().as_secs_f64()
                ),
            );
        }
        if row.metrics.requests_ok == 0 {
            // Never a silent "0 ok / 0 failed": the row has no latency to read.
            row.add_flag("no_completed_requests");
            push_note(
                report,
                format!(
                    "{label}: no measured request completed ({} failed): the row holds no latency or throughput",
                    row.metrics.requests_failed
                ),
            );
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

fn saturated(
    load: Load,
    row: &Measurement,
    previous: Option<&Measurement>,
    run: &LevelRun,
    duration: Duration,
) -> Option<String> {
    let m = &row.metrics;
    match load {
        Load::Users(_) => {
            let prev = previous?;
            let (thr, prev_thr) = (m.output_throughput?.0, prev.metrics.output_throughput?.0);
            let (e2e, prev_e2e) = (m.e2e.p50?.0, prev.metrics.e2e.p50?.0);
            (thr < prev_thr * 1.05 && e2e > prev_e2e * 1.5).then(|| {
                format!("output throughput {thr:.1} tok/s vs {prev_thr:.1} before, median E2E {e2e:.0} ms vs {prev_e2e:.0} ms")
            })
        }
        Load::Rate(_) => {
            let offered = run.sent_measured as f64 / duration.as_secs_f64();
            let achieved = m.request_throughput?.0;
            let drain = run.window.saturating_sub(duration);
            let e2e = m.e2e.p50.unwrap_or(Millis(0.0)).to_duration();
            (achieved < 0.9 * offered && drain > 2 * e2e).then(|| {
                format!("completed {achieved:.2} req/s of {offered:.2} offered; the backlog took {:.1} s to drain", drain.as_secs_f64())
            })
        }
        // Never offered (see `run_level`).
        Load::Batch(_) => None,
    }
}

//! One load level: offers load for warm-up plus the measurement window, records every request,
//! samples telemetry, and shows live progress.
//!
//! A [`Level`] is a core [`Load`] (how much, the one the level's rows record) and, for an open
//! loop, its [`Arrivals`] (how the requests are spaced):
//!
//! - **Closed loop** ([`Load::Users`]): each user sends its next request when its last one
//!   ends.
//! - **Open loop** ([`Load::Rate`]) with [`Arrivals::Gamma`]: gamma-distributed gaps of mean
//!   `1/rate` and shape `burstiness` (1 = Poisson, as `vllm bench serve --burstiness`), each
//!   request independent of the others' progress.
//! - **Open loop** with [`Arrivals::Trace`]: arrivals at the trace's own timestamps.
//!
//! Requests *sent* during warm-up are kept but marked `warmup`; requests sent during the
//! window are measured to their end. The window used for throughput runs from the end of
//! warm-up to the last measured completion, as `vllm bench serve` measures its duration.
//!
//! A level ends shortly after its window, whatever the server does: it waits at most
//! [`LevelContext::drain`] (`--drain-timeout`) for the requests still open when the window
//! closes. A stalled server (one that never answers, sends headers and then nothing, or
//! trickles a token a second) would otherwise hold the run for the whole request timeout
//! (600 s by default) with nothing to show. Requests still open when the drain ends are
//! recorded as [`FailureKind::Timeout`] failures of the window, with their start time and an
//! error saying how long after the window they were still open; those sent in the warm-up
//! count as measured too, since they hung through the whole window.
//!
//! A server that refuses [`DEAD_AFTER`] connections in a row is dead: the level ends with what
//! was measured.

use crate::client::{Client, Outcome, unix_ms};
use crate::dataset::Talk;
use crate::store::Store;
use crate::telemetry::{GpuGauges, GpuSampler, ServerGauges, scrape};
use crate::workload::{LoadedWorkload, Pick, Shape};
use indicatif::{ProgressBar, ProgressStyle};
use pilot_core::load::Load;
use pilot_core::metrics::FailureKind;
use pilot_core::requests::{PointKey, RequestRecord};
use pilot_core::units::Millis;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Consecutive refused connections after which the server is taken for dead.
pub const DEAD_AFTER: u32 = 8;

/// How an open loop's requests arrive; how many arrive is the level's [`Load::Rate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Gaps drawn from a gamma distribution of mean `1/rate` and shape `burstiness` (1 =
    /// Poisson; below 1 burstier, above 1 more regular).
    Gamma { burstiness: f64 },
    /// At the workload trace's own timestamps; the level's rate is then the trace's mean rate
    /// over the window, for the row to record.
    Trace,
}

/// One level of a sweep: the load offered and how an open loop's requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// The load as offered (a rate exactly as given; the level's [`PointKey`] holds it to the
    /// milli-request per second).
    pub load: Load,
    /// Used by an open loop only: a closed loop's users send when their last answer ends.
    pub arrivals: Arrivals,
}

/// Everything a level needs, shared by the levels of a sweep.
pub struct LevelContext {
    pub client: Arc<Client>,
    pub workload: Arc<LoadedWorkload>,
    pub seed: u64,
    /// The token ids prompts are drawn from (inside the model's vocabulary).
    pub prompt_ids: Range<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    /// `--num-prompts`: the most measured requests a level sends; it ends once they finish,
    /// or at the window's end if that comes first.
    pub num_prompts: Option<u64>,
    /// Longest a level waits for its open requests after the window (`--drain-timeout`);
    /// those still open then are recorded as timeouts.
    pub drain: Duration,
    pub next_id: Arc<AtomicU64>,
    pub store: Arc<Mutex<Store>>,
    /// `/metrics` URL, or `None` once the server is known to have none.
    pub metrics_url: Option<String>,
    pub gpu: Arc<GpuSampler>,
    pub progress: bool,
}

/// What one level measured.
#[derive(Debug)]
pub struct LevelRun {
    pub records: Vec<RequestRecord>,
    pub window: Duration,
    pub server: ServerGauges,
    pub gpu: GpuGauges,
    /// Why the level ended before its time, if it did.
    pub aborted: Option<String>,
    /// Successful measured requests whose `usage.prompt_tokens` differed from the sent length.
    pub input_mismatches: u64,
    /// Successful measured requests with a different number of tokens than asked.
    pub output_mismatches: u64,
    /// Successful measured requests whose token events were fewer than `usage.completion_tokens`
    /// (the server packs several tokens per event).
    pub packed_events: u64,
    /// Requests sent during the measurement window (for saturation checks).
    pub sent_measured: u64,
    /// Requests still open when the drain after the window ended, recorded as timeouts.
    pub stalled: u64,
}

/// A request sent and not answered yet: what recording it takes if the level gives up on it.
struct InFlight {
    start_unix_ms: f64,
    started: Instant,
    shape: Shape,
    turn: Option<(u64, u32)>,
}

/// The requests in flight, by id. A task removes its request when the answer arrives (or the
/// level is aborted); what is left when the drain ends stalled.
type OpenRequests = Arc<Mutex<HashMap<u64, InFlight>>>;

fn opened(open: &OpenRequests, id: u64, shape: Shape, turn: Option<(u64, u32)>) {
    let request = InFlight {
        start_unix_ms: unix_ms(),
        started: Instant::now(),
        shape,
        turn,
    };
    open.lock().expect("open requests lock").insert(id, request);
}

fn closed(open: &OpenRequests, id: u64) {
    open.lock().expect("open requests lock").remove(&id);
}

struct Done {
    id: u64,
    warmup: bool,
    shape: Shape,
    outcome: Outcome,
    /// Given up at the end of the drain (see [`LevelContext::drain`]).
    stalled: bool,
    /// Multi-turn: the conversation's id and the turn's index.
    turn: Option<(u64, u32)>,
}

/// Runs one level and returns its records (already in the store, window set).
///
/// Offline batches are not something characterize offers: such a level ends at once with
/// [`LevelRun::aborted`] saying so.
pub async fn run_level(ctx: &LevelContext, level: Level, key: PointKey, label: &str) -> LevelRun {
    if let Load::Batch(_) = level.load {
        return LevelRun {
            records: Vec::new(),
            window: Duration::ZERO,
            server: ServerGauges::default(),
            gpu: GpuGauges::default(),
            aborted: Some(format!(
                "{} is an offline load; characterize offers closed-loop users or open-loop rates",
                level.load
            )),
            input_mismatches: 0,
            output_mismatches: 0,
            packed_events: 0,
            sent_measured: 0,
            stalled: 0,
        };
    }
    let t0 = Instant::now();
    let measure_start = t0 + ctx.warmup;
    let end = measure_start + ctx.duration;
    let (tx, mut rx) = mpsc::unbounded_channel::<Done>();
    let (abort_tx, abort_rx) = watch::channel(false);
    let level_seed = ctx.seed ^ hash_key(&key);

    let driver = {
        let (client, workload, next_id) = (
            ctx.client.clone(),
            ctx.workload.clone(),
            ctx.next_id.clone(),
        );
        let seed = ctx.seed;
        let ids = ctx.prompt_ids.clone();
        let drain = ctx.drain;
        let abort = abort_rx.clone();
        let (limit, taken) = (ctx.num_prompts, Arc::new(AtomicU64::new(0)));
        let open: OpenRequests = Arc::default();
        async move {
            let mut tasks = JoinSet::new();
            match level.load {
                Load::Users(users) => {
                    for user in 0..users {
                        let (client, workload, next_id, tx, open, ids, taken) = (
                            client.clone(),
                            workload.clone(),
                            next_id.clone(),
                            tx.clone(),
                            open.clone(),
                            ids.clone(),
                            taken.clone(),
                        );
                        let mut abort = abort.clone();
                        let mut rng = StdRng::seed_from_u64(
                            level_seed ^ (user as u64).wrapping_mul(0xa076_1d64_78bd_642f),
                        );
                        tasks.spawn(async move {
                            // Multi-turn: this user's conversation in progress.
                            let mut talk: Option<Talk> = None;
                            while Instant::now() < end && !*abort.borrow() {
                                let warmup = Instant::now() < measure_start;
                                if !warmup && !claim(limit, &taken) {
                                    break;
                                }
                                let id = next_id.fetch_add(1, Ordering::Relaxed);
                                let (shape, prompt, turn) = match workload.conversations() {
                                    None => {
                                        let pick = workload.pick(&mut rng);
                                        let prompt = workload.prompt(pick, seed, id, ids.clone());
                                        (pick.shape, prompt, None)
                                    }
                                    Some(convs) => {
                                        let max = workload.max_model_len();
                                        if talk.as_ref().is_none_or(|t| t.done() || !t.fits(max)) {
                                            let c = &convs[rng.random_range(0..convs.len())];
                                            talk = Some(Talk::new(id, c));
                                        }
                                        let t = talk.as_mut().expect("set above");
                                        let (shape, prompt, index) = t.next_request(|n| {
                                            client.text_of(&crate::client::prompt_ids(
                                                seed,
                                                id,
                                                n,
                                                ids.clone(),
                                            ))
                                        });
                                        (shape, prompt, Some((t.id, index)))
                                    }
                                };
                                opened(&open, id, shape, turn);
                                let outcome = tokio::select! {
                                    o = client.send(&prompt, shape.output) => o,
                                    _ = abort.wait_for(|a| *a) => {
                                        closed(&open, id);
                                        break;
                                    }
                                };
                                closed(&open, id);
                                if let Some(t) = talk.as_mut() {
                                    let tokens = outcome
                                        .usage_completion
                                        .unwrap_or(outcome.token_times.len() as u64);
                                    t.answered(outcome.failure.is_none().then_some((
                                        outcome.reply.as_deref().unwrap_or_default(),
                                        tokens as u32,
                                    )));
                                }
                                let refused = outcome.failure == Some(FailureKind::Connection);
                                let _ = tx.send(Done {
                                    id,
                                    warmup,
                                    shape,
                                    outcome,
                                    stalled: false,
                                    turn,
                                });
                                if refused {
                                    // Do not spin on a closed port.
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }
                        });
                    }
                }
                Load::Rate(_) | Load::Batch(_) => {
                    let arrivals = arrivals(&workload, level, level_seed, end - t0);
                    let mut abort_wait = abort.clone();
                    for (offset, pick) in arrivals {
                        let shape = pick.shape;
                        tokio::select! {
                            _ = tokio::time::sleep_until(t0 + offset) => {}
                            _ = abort_wait.wait_for(|a| *a) => break,
                        }
                        let warmup = offset < measure_start - t0;
                        if !warmup && !claim(limit, &taken) {
                            break;
                        }
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let (client, tx, open) = (client.clone(), tx.clone(), open.clone());
                        let mut abort = abort.clone();
                        let prompt = workload.prompt(pick, seed, id, ids.clone());
                        opened(&open, id, shape, None);
                        tasks.spawn(async move {
                            tokio::select! {
                                o = client.send(&prompt, shape.output) => {
                                    closed(&open, id);
                                    let _ = tx.send(Done { id, warmup, shape, outcome: o, stalled: false, turn: None });
                                }
                                _ = abort.wait_for(|a| *a) => closed(&open, id),
                            }
                        });
                    }
                }
            }
            // Requests still running at the end of the window are measured to their end, if
            // it comes within the drain; the others are given up and recorded as timeouts.
            let closes = end.max(Instant::now());
            let _ = tokio::time::timeout_at(closes + drain, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let now = Instant::now();
            let mut stalled: Vec<(u64, InFlight)> =
                open.lock().expect("open requests lock").drain().collect();
            stalled.sort_by_key(|(id, _)| *id);
            for (id, r) in stalled {
                let after = now.saturating_duration_since(closes).as_secs_f64();
                let outcome = Outcome {
                    start_unix_ms: r.start_unix_ms,
                    e2e: Millis::from_duration(now - r.started),
                    failure: Some(FailureKind::Timeout),
                    error: format!(
                        "still open {after:.1} s after the window closed (stalled server?): given up at the end of --drain-timeout {:.1} s",
                        drain.as_secs_f64()
                    ),
                    ..Default::default()
                };
                let _ = tx.send(Done {
                    id,
                    warmup: false,
                    shape: r.shape,
                    outcome,
                    stalled: true,
                    turn: r.turn,
                });
            }
        }
    };

    let telemetry = {
        let (http, url, gpu) = (
            ctx.client.http().clone(),
            ctx.metrics_url.clone(),
            ctx.gpu.clone(),
        );
        let mut stop = abort_rx.clone();
        tokio::spawn(async move {
            let (mut server, mut gpus) = (Vec::new(), Vec::new());
            tokio::time::sleep_until(measure_start).await;
            let mut url = url;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while Instant::now() < end && !*stop.borrow() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                if let Some(u) = &url {
                    match scrape(&http, u).await {
                        Some(s) => server.push(s),
                        None if server.is_empty() => url = None,
                        None => {}
                    }
                }
                if let Some(g) = gpu.sample() {
                    gpus.push(g);
                }
            }
            (ServerGauges::mean_of(&server), GpuGauges::mean_of(&gpus))
        })
    };

    let bar = progress_bar(ctx.progress, label, ctx.warmup + ctx.duration);
    let mut records: Vec<RequestRecord> = Vec::new();
    let mut live = Live::default();
    let mut refused_in_a_row = 0u32;
    let mut aborted = None;
    let mut last_done = measure_start;
    let (mut input_mismatches, mut output_mismatches, mut packed_events) = (0, 0, 0);
    let mut stalled = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_flush = Instant::now();
    tokio::pin!(driver);
    let mut driver_done = false;
    loop {
        tokio::select! {
            biased;
            done = rx.recv() => {
                let Some(done) = done else { break };
                let now = Instant::now();
                stalled += u64::from(done.stalled);
                let refused = done.outcome.failure == Some(FailureKind::Connection);
                refused_in_a_row = if refused { refused_in_a_row + 1 } else { 0 };
                if refused_in_a_row >= DEAD_AFTER && aborted.is_none() {
                    aborted = Some(format!(
                        "server unreachable: {refused_in_a_row} connections in a row failed ({})",
                        done.outcome.error
                    ));
                    let _ = abort_tx.send(true);
                }
                let ok = done.outcome.failure.is_none();
                tracing::debug!(
                    id = done.id,
                    warmup = done.warmup,
                    ok,
                    e2e_ms = done.outcome.e2e.0,
                    tokens = done.outcome.token_times.len(),
                    http_status = done.outcome.http_status,
                    "request done"
                );
                if ok && !done.warmup {
                    last_done = last_done.max(now);
                    let sent = done.shape.input as u64;
                    // A conversation's input is the history in the server's chat template,
                    // which pilot cannot count: only single prompts are checked.
                    if done.turn.is_none() && done.outcome.usage_prompt.is_some_and(|p| p != sent) {
                        input_mismatches += 1;
                    }
                    if done.outcome.token_times.len() as u64 != done.shape.output as u64 {
                        output_mismatches += 1;
                    }
                    if done.outcome.usage_completion.is_some_and(|c| c > done.outcome.token_times.len() as u64) {
                        packed_events += 1;
                    }
                } else if !done.warmup {
                    last_done = last_done.max(now);
                }
                live.add(&done);
                let record = RequestRecord {
                    point: key.clone(),
                    request_id: done.id,
                    warmup: done.warmup,
                    start_unix_ms: done.outcome.start_unix_ms,
                    e2e: done.outcome.e2e,
                    input_tokens: done.outcome.usage_prompt.unwrap_or(done.shape.input as u64),
                    token_times: done.outcome.token_times,
                    failure: done.outcome.failure,
                    http_status: done.outcome.http_status,
                    error: done.outcome.error,
                    window: None,
                    conversation: done.turn.map(|t| t.0),
                    turn: done.turn.map(|t| t.1),
                };
                ctx.store.lock().expect("store lock").push(record.clone());
                records.push(record);
            }
            _ = &mut driver, if !driver_done => {
                driver_done = true;
            }
            _ = tick.tick() => {
                let elapsed = t0.elapsed().min(ctx.warmup + ctx.duration);
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(live.message());
                if last_flush.elapsed() >= Duration::from_secs(5) {
                    last_flush = Instant::now();
                    Store::flush_in_background(&ctx.store);
                }
            }
        }
    }
    let _ = abort_tx.send(true);
    let (server, gpu) = telemetry.await.unwrap_or_default();
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup).collect();
    let sent_measured = measured.len() as u64;
    let window = if measured.is_empty() {
        ctx.duration
    } else {
        (last_done - measure_start).max(Duration::from_millis(1))
    };
    for r in records.iter_mut().filter(|r| !r.warmup) {
        r.window = Some(window);
    }
    ctx.store
        .lock()
        .expect("store lock")
        .set_window(&key, window);
    bar.finish_with_message(live.message());
    LevelRun {
        records,
        window,
        server,
        gpu,
        aborted,
        input_mismatches,
        output_mismatches,
        packed_events,
        sent_measured,
        stalled,
    }
}

/// Takes one of a level's `--num-prompts` measured requests; `false` once all are taken.
fn claim(limit: Option<u64>, taken: &AtomicU64) -> bool {
    limit.is_none_or(|n| taken.fetch_add(1, Ordering::Relaxed) < n)
}

/// Arrival offsets from the level's start, up to `span` (none for a closed loop).
fn arrivals(w: &LoadedWorkload, level: Level, seed: u64, span: Duration) -> Vec<(Duration, Pick)> {
    let mut rng = StdRng::seed_from_u64(seed);
    match (level.load, level.arrivals) {
        (Load::Rate(_), Arrivals::Trace) => w
            .trace()
            .map(|t| t.take_while(|(at, _)| *at < span).collect())
            .unwrap_or_default(),
        (Load::Rate(rate), Arrivals::Gamma { burstiness }) => {
            let k = if burstiness > 0.0 { burstiness } else { 1.0 };
            let gap = Gamma::new(k, 1.0 / (rate.0 * k)).expect("positive rate and shape");
            let mut t = 0.0;
            let mut out = Vec::new();
            loop {
                t += gap.sample(&mut rng);
                if t >= span.as_secs_f64() {
                    break out;
                }
                out.push((Duration::from_secs_f64(t), w.pick(&mut rng)));
            }
        }
        (Load::Users(_) | Load::Batch(_), _) => Vec::new(),
    }
}

/// The stable hash of a level's key that its seed is drawn from.
///
/// Why field by field rather than `PointKey`'s derived `Hash`: a seed must draw the same
/// requests from one pilot version to the next (a `--resume`d run continues the sweep it
/// began), and a derived hash changes with the struct. These are the fields, types and order
/// the key had when its load was four columns (mode, users, rate in milli-requests per
/// second, batch size), so every seed is the one it was then.
fn hash_key(k: &PointKey) -> u64 {
    use std::hash::{Hash, Hasher};
    // std's default hasher is not stable across releases; a fixed hasher is.
    let mut h = pilot_core::rng::Fnv1a::default();
    k.model.hash(&mut h);
    k.gpu.hash(&mut h);
    k.gpu_count.hash(&mut h);
    k.engine.hash(&mut h);
    k.load.mode().hash(&mut h);
    k.load.users().hash(&mut h);
    k.load
        .rate()
        .map(|r| (r.0 * 1000.0).round() as u64)
        .hash(&mut h);
    k.load.batch_size().hash(&mut h);
    k.max_batch.hash(&mut h);
    k.quantization.hash(&mut h);
    h.finish()
}

/// A histogram of latencies in logarithmic buckets 1% wide, from 1 µs to about 3 hours:
/// the progress bar's percentiles every 250 ms at a constant cost, where sorting every value
/// so far grew with the run (and the run's rows are still computed exactly, from the
/// requests, by [`pilot_core::metrics::summarize`]).
struct LiveHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl LiveHistogram {
    /// The smallest value told apart, in milliseconds; smaller ones count in the first bucket.
    const MIN_MS: f64 = 0.001;
    /// Each bucket is this much wider than the one before (1%).
    const GROWTH: f64 = 1.01;
    const BUCKETS: usize = 2400;

    fn new() -> Self {
        LiveHistogram {
            counts: vec![0; Self::BUCKETS],
            total: 0,
        }
    }

    fn add(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let i = ((ms.max(Self::MIN_MS) / Self::MIN_MS).ln() / Self::GROWTH.ln()) as usize;
        self.counts[i.min(Self::BUCKETS - 1)] += 1;
        self.total += 1;
    }

    /// The `q`-th percentile (0..=100), to within 1%: the middle of the bucket holding it.
    fn percentile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q / 100.0 * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let i = self.counts.iter().position(|&c| {
            seen += c;
            seen >= rank
        })?;
        Some(Self::MIN_MS * Self::GROWTH.powf(i as f64 + 0.5))
    }
}

/// Live statistics for the progress bar.
struct Live {
    ok: u64,
    failed: u64,
    ttft: LiveHistogram,
    itl: LiveHistogram,
    last_error: String,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            ok: 0,
            failed: 0,
            ttft: LiveHistogram::new(),
            itl: LiveHistogram::new(),
            last_error: String::new(),
        }
    }
}

impl Live {
    fn add(&mut self, d: &Done) {
        match d.outcome.failure {
            Some(kind) => {
                self.failed += 1;
                self.last_error = format!(
                    "{}: {}",
                    kind.name(),
                    d.outcome.error.chars().take(60).collect::<String>()
                );
            }
            None => {
                self.ok += 1;
                if let Some(first) = d.outcome.token_times.first() {
                    self.ttft.add(first.0);
                }
                for w in d.outcome.token_times.windows(2) {
                    self.itl.add(w[1].0 - w[0].0);
                }
            }
        }
    }

    fn message(&self) -> String {
        let p50 = |h: &LiveHistogram| {
            h.percentile(50.0)
                .map_or("-".to_string(), |p| format!("{p:.1}ms"))
        };
        let mut m = format!(
            "ok {} fail {}  TTFT p50 {}  ITL p50 {}",
            self.ok,
            self.failed,
            p50(&self.ttft),
            p50(&self.itl)
        );
        if self.failed > 0 {
            m.push_str("  last: ");
            m.push_str(&self.last_error);
        }
        m
    }
}

fn progress_bar(show: bool, label: &str, total: Duration) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:24}] {elapsed:>4} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::load::Mode;
    use pilot_core::units::{Dtype, RequestsPerSec};
    use std::hash::{Hash, Hasher};

    #[test]
    fn live_percentiles_are_within_one_percent_of_the_exact_ones() {
        let mut h = LiveHistogram::new();
        assert_eq!(h.percentile(50.0), None);
        let values: Vec<f64> = (1..=10_000).map(|i| i as f64 * 0.37).collect();
        for v in &values {
            h.add(*v);
        }
        for q in [1.0, 50.0, 90.0, 99.0] {
            let exact = pilot_core::metrics::percentile(&mut values.clone(), q).unwrap();
            let live = h.percentile(q).unwrap();
            assert!(
                (live / exact - 1.0).abs() < 0.011,
                "p{q}: {live} vs {exact}"
            );
        }
        // Sub-microsecond and huge values land in the end buckets, never out of range.
        h.add(0.0);
        h.add(1e12);
        assert!(h.percentile(100.0).unwrap() > 1e6);
    }

    /// `PointKey` as it was before its load became one [`Load`] (commit fe87af6), with the
    /// derived hash that level seeds were drawn from.
    #[derive(Hash)]
    struct KeyBeforeLoad {
        model: String,
        gpu: String,
        gpu_count: u32,
        engine: String,
        mode: Mode,
        users: Option<u32>,
        rate_milli_rps: Option<u64>,
        batch_size: Option<u32>,
        max_batch: Option<u32>,
        quantization: Option<Dtype>,
    }

    /// A seed draws the same requests as before: the key hashes as its old layout did.
    #[test]
    fn level_seeds_are_unchanged() {
        for load in [
            Load::Users(4),
            Load::Rate(RequestsPerSec(2.5)),
            Load::Rate(RequestsPerSec(1.0 / 3.0)),
            Load::Batch(8),
        ] {
            let key = PointKey {
                model: "gpt2".into(),
                gpu: "cpu".into(),
                gpu_count: 1,
                engine: "pilot".into(),
                load: PointKey::keyed(load),
                max_batch: Some(8),
                quantization: Some(Dtype::F32),
            };
            let before = KeyBeforeLoad {
                model: "gpt2".into(),
                gpu: "cpu".into(),
                gpu_count: 1,
                engine: "pilot".into(),
                mode: load.mode(),
                users: load.users(),
                rate_milli_rps: load.rate().map(|r| (r.0 * 1000.0).round() as u64),
                batch_size: load.batch_size(),
                max_batch: Some(8),
                quantization: Some(Dtype::F32),
            };
            let mut h = pilot_core::rng::Fnv1a::default();
            before.hash(&mut h);
            assert_eq!(hash_key(&key), h.finish(), "{load}");
        }
    }
}

//! The engine: a model on its own OS thread, fed by an iteration-level continuous-batching
//! scheduler (Orca, Yu et al., OSDI '22; vLLM's policy, Kwon et al., SOSP '23).
//!
//! burn's compute is synchronous, so the scheduler owns the model on a dedicated thread.
//! Requests arrive over a channel; each streams its tokens back through its own
//! `tokio::sync::mpsc` channel, so async HTTP handlers await them without blocking.
//!
//! # Scheduling policy, one step at a time
//!
//! 1. **Running sequences first**, within the step's token budget (`max_batched_tokens`):
//!    every decoding sequence, oldest first, gets its one token; then sequences still
//!    prefilling get the next chunk of their prompt.
//! 2. **Admission**, first come first served: while fewer than `max_batch` sequences run, the
//!    token budget is not spent and the KV cache has free blocks for the whole prompt plus one
//!    token, the oldest waiting request joins; its prompt is prefilled in this same step
//!    (chunked if longer than the remaining budget). A request that does not fit waits, and so
//!    does everyone behind it (no overtaking).
//! 3. **One forward** runs every scheduled token: prefill chunks and decode tokens share each
//!    linear layer's matmul; attention runs per sequence against its own cache.
//! 4. Sequences whose tokens reached the end of what they know sample one token each;
//!    generation stops at exactly `max_tokens`, or at an end-of-sequence token once
//!    `min_tokens` are out (unless `ignore_eos`).
//!
//! The KV cache is accounted in blocks of [`KV_BLOCK_TOKENS`] tokens against a budget
//! (`kv_cache_tokens`). When a running sequence needs a block and none is free, the
//! **newest** running sequence is preempted: its cache is dropped and it returns to the
//! front of the queue, to be recomputed (prompt and output so far) when space allows, as
//! vLLM's recompute preemption does. Requests that could never fit (prompt + `max_tokens`
//! beyond the context or the whole cache) are refused at submission, so the oldest sequence
//! can always make progress.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::EngineError;
use crate::config::{ModelConfig, resolve_model};
use crate::metrics::EngineMetrics;
use crate::model::{
    BatchEntry, EngineDevice, KvCache, Logits, Transformer, compute_float, logits_to_rows,
};
use crate::sampling::{SamplingParams, sample};
use crate::weights::{load_safetensors, random_weights};
use pilot_core::rng::{SplitMix64, derive_seed};
use pilot_core::units::Dtype;

/// Tokens per KV-cache accounting block.
pub const KV_BLOCK_TOKENS: usize = 16;

/// How to build and run the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// A catalog name (`tiny-llama`, `small-llama`, ...) or a path to an HF `config.json` (or
    /// a directory holding one). Also the name the server answers to.
    pub model: String,
    /// Directory of `*.safetensors` with HF tensor names; `None` runs seeded random weights.
    pub weights: Option<PathBuf>,
    /// Most sequences in one step (vLLM's `max_num_seqs`).
    pub max_batch: usize,
    /// Most tokens in one step, prefill and decode together (`max_num_batched_tokens`).
    pub max_batched_tokens: usize,
    /// KV-cache capacity in tokens; `None` derives it from `kv_cache_bytes`.
    pub kv_cache_tokens: Option<usize>,
    /// Memory budget of the KV cache when `kv_cache_tokens` is `None`.
    pub kv_cache_bytes: u64,
    /// Seed of the random weights and of requests that bring no seed.
    pub seed: u64,
    pub dtype: Dtype,
    pub device: EngineDevice,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            model: "tiny-llama".to_string(),
            weights: None,
            max_batch: 32,
            max_batched_tokens: 2048,
            kv_cache_tokens: None,
            kv_cache_bytes: 1 << 30,
            seed: 0,
            dtype: Dtype::F32,
            device: EngineDevice::default(),
        }
    }
}

/// What the engine is serving, fixed at start.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The name requests must use (the `model` option as given).
    pub name: String,
    pub config: ModelConfig,
    pub dtype: Dtype,
    pub device: EngineDevice,
    /// Longest prompt + output.
    pub max_model_len: usize,
    /// KV-cache capacity, a multiple of [`KV_BLOCK_TOKENS`].
    pub kv_cache_tokens: usize,
    pub max_batch: usize,
    pub max_batched_tokens: usize,
    /// Weights are seeded random: end-of-sequence tokens are ignored unless a request asks
    /// otherwise, so every request generates exactly `max_tokens`.
    pub random_weights: bool,
}

/// Why a sequence stopped, as OpenAI spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` reached.
    Length,
    /// An end-of-sequence token was generated.
    Stop,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
        }
    }
}

/// Token counts of one request, as in OpenAI's `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Ids the model saw as the prompt.
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// The end of a request: why, and its token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub reason: FinishReason,
    pub usage: Usage,
}

/// What a request's stream carries: one event per sampled token; the last one also says the
/// request is finished (so a streaming client sees the finish reason with the last token, not
/// one token late). A stream that closes without a finished event means the engine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationEvent {
    pub token: u32,
    pub finished: Option<Finished>,
}

/// A finished generation (from [`Engine::generate_blocking`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub reason: FinishReason,
    pub usage: Usage,
}

/// Counters of the scheduler's behaviour since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub steps: u64,
    /// Largest number of sequences one forward step has batched.
    pub max_running_observed: usize,
    pub preemptions: u64,
    pub running: usize,
    pub waiting: usize,
    pub kv_cache_used_tokens: usize,
    pub requests_finished: u64,
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
}

enum Command {
    Submit(Box<Sequence>),
    Shutdown,
}

struct Shared {
    info: ModelInfo,
    metrics: EngineMetrics,
    stats: Mutex<EngineStats>,
    next_id: AtomicU64,
    seed: u64,
}

/// A running engine. Dropping it stops the scheduler thread (requests in flight end).
pub struct Engine {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.shared.info)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the model on its device and starts the scheduler thread. Blocks while the
    /// weights are built or read (seconds for a small model).
    pub fn start(opts: EngineOptions) -> Result<Self, EngineError> {
        // Before any size is computed from the dtype's width.
        compute_float(opts.dtype)?;
        let (name, json) = resolve_model(&opts.model)?;
        let config = ModelConfig::from_hf_json(&json, &name)?;
        if opts.max_batch == 0 || opts.max_batched_tokens < opts.max_batch {
            return Err(EngineError::Config {
                source_name: "options".to_string(),
                message: format!(
                    "max batched tokens ({}) must be at least max batch ({}), which must be positive",
                    opts.max_batched_tokens, opts.max_batch
                ),
            });
        }
        let max_model_len = config.max_position_embeddings;
        let kv_tokens = opts.kv_cache_tokens.unwrap_or_else(|| {
            let per_token = config.kv_bytes_per_token(opts.dtype);
            // More than every sequence at full length is never needed.
            let fits = (opts.kv_cache_bytes / per_token.max(1)) as usize;
            fits.min(opts.max_batch * max_model_len).max(max_model_len)
        });
        let kv_cache_tokens = kv_tokens / KV_BLOCK_TOKENS * KV_BLOCK_TOKENS;
        if kv_cache_tokens == 0 {
            return Err(EngineError::Config {
                source_name: "options".to_string(),
                message: format!("the KV cache must hold at least {KV_BLOCK_TOKENS} tokens"),
            });
        }
        let info = ModelInfo {
            name: name.clone(),
            config: config.clone(),
            dtype: opts.dtype,
            device: opts.device,
            max_model_len,
            kv_cache_tokens,
            max_batch: opts.max_batch,
            max_batched_tokens: opts.max_batched_tokens,
            random_weights: opts.weights.is_none(),
        };
        crate::memory::Footprint::of(&config, opts.dtype, kv_cache_tokens, opts.device)
            .check(&name, crate::memory::available_host_memory())?;
        let weights = match &opts.weights {
            Some(dir) => load_safetensors(dir, &config)?,
            None => random_weights(&config, opts.seed),
        };
        let device = opts.device.burn_device()?;
        let model = Transformer::new(config, &weights, &device, opts.dtype)?;
        drop(weights);
        let shared = Arc::new(Shared {
            metrics: EngineMetrics::new(&name),
            info,
            stats: Mutex::new(EngineStats::default()),
            next_id: AtomicU64::new(0),
            seed: opts.seed,
        });
        let (tx, rx) = mpsc::channel();
        let scheduler = Scheduler {
            model,
            shared: shared.clone(),
            running: Vec::new(),
            waiting: VecDeque::new(),
            free_blocks: kv_cache_tokens / KV_BLOCK_TOKENS,
            total_blocks: kv_cache_tokens / KV_BLOCK_TOKENS,
            stats: EngineStats::default(),
        };
        let thread = std::thread::Builder::new()
            .name("pilot-engine".to_string())
            .spawn(move || scheduler.run(rx))
            .map_err(|e| EngineError::Io {
                addr: "engine thread".to_string(),
                source: e,
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
            shared,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.shared.info
    }

    pub fn metrics(&self) -> &EngineMetrics {
        &self.shared.metrics
    }

    pub fn stats(&self) -> EngineStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks a request against the model and the cache; the message is the 400 body.
    pub fn validate(&self, prompt: &[u32], params: &SamplingParams) -> Result<(), EngineError> {
        let info = &self.shared.info;
        let bad = |m: String| Err(EngineError::InvalidRequest(m));
        if prompt.is_empty() {
            return bad("the prompt is empty: send at least one token".to_string());
        }
        if let Some(&id) = prompt
            .iter()
            .find(|&&id| id as usize >= info.config.vocab_size)
        {
            return bad(format!(
                "token id {id} is outside the vocabulary of {} ids",
                info.config.vocab_size
            ));
        }
        if params.max_tokens == 0 {
            return bad("max_tokens must be at least 1".to_string());
        }
        if params.min_tokens > params.max_tokens {
            return bad(format!(
                "min_tokens ({}) must not exceed max_tokens ({})",
                params.min_tokens, params.max_tokens
            ));
        }
        // Written as ranges so NaN fails both.
        let temperature_ok = (0.0..=f32::MAX).contains(&params.temperature);
        if !temperature_ok || !(f32::MIN_POSITIVE..=1.0).contains(&params.top_p) {
            return bad("temperature must be >= 0 and top_p in (0, 1]".to_string());
        }
        let total = prompt.len() + params.max_tokens;
        if total > info.max_model_len {
            return bad(format!(
                "This model's maximum context length is {} tokens. However, you requested {total} \
                 tokens ({} in the prompt, {} in the completion). Please reduce the prompt or \
                 max_tokens.",
                info.max_model_len,
                prompt.len(),
                params.max_tokens
            ));
        }
        if total.div_ceil(KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS > info.kv_cache_tokens {
            return bad(format!(
                "the KV cache holds {} tokens, but this request needs up to {total}: reduce \
                 max_tokens or start the server with a larger KV cache",
                info.kv_cache_tokens
            ));
        }
        Ok(())
    }

    /// Queues a request; its tokens arrive on the returned channel, the last marked finished.
    /// `params.ignore_eos` is taken as given (see [`ModelInfo::random_weights`] for the
    /// server's default).
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        params: SamplingParams,
    ) -> Result<UnboundedReceiver<GenerationEvent>, EngineError> {
        self.validate(&prompt, &params)?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let seed = params
            .seed
            .unwrap_or_else(|| derive_seed(self.shared.seed, id));
        let (tx, rx) = unbounded_channel();
        let seq = Sequence {
            prompt_len: prompt.len(),
            tokens: prompt,
            generated: 0,
            rng: SplitMix64::new(seed),
            params,
            tx,
            cache: KvCache::new(),
            blocks: 0,
            counted: false,
        };
        self.tx
            .send(Command::Submit(Box::new(seq)))
            .map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// Submits and waits for the whole generation (tests, benchmarks; not from async code).
    pub fn generate_blocking(
        &self,
        prompt: Vec<u32>,
        params: SamplingParams,
    ) -> Result<Generation, EngineError> {
        let mut rx = self.submit(prompt, params)?;
        collect_blocking(&mut rx)
    }

    /// Stops the scheduler thread and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drains a request's stream into a [`Generation`], blocking the current thread.
pub fn collect_blocking(
    rx: &mut UnboundedReceiver<GenerationEvent>,
) -> Result<Generation, EngineError> {
    let mut tokens = Vec::new();
    while let Some(event) = rx.blocking_recv() {
        tokens.push(event.token);
        if let Some(Finished { reason, usage }) = event.finished {
            return Ok(Generation {
                tokens,
                reason,
                usage,
            });
        }
    }
    Err(EngineError::Stopped)
}

struct Sequence {
    /// Prompt, then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
    generated: usize,
    params: SamplingParams,
    rng: SplitMix64,
    tx: UnboundedSender<GenerationEvent>,
    /// Holds the first `cache.len()` tokens; the rest are pending.
    cache: KvCache,
    /// KV blocks reserved.
    blocks: usize,
    /// Prompt tokens already counted in the metrics (not again after preemption).
    counted: bool,
}

impl Sequence {
    fn pending(&self) -> usize {
        self.tokens.len() - self.cache.len()
    }
}

struct Scheduler {
    model: Transformer,
    shared: Arc<Shared>,
    /// In admission order: oldest first.
    running: Vec<Sequence>,
    waiting: VecDeque<Sequence>,
    free_blocks: usize,
    total_blocks: usize,
    stats: EngineStats,
}

impl Scheduler {
    fn run(mut self, rx: Receiver<Command>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match rx.recv() {
                    Ok(Command::Submit(seq)) => self.waiting.push_back(*seq),
                    Ok(Command::Shutdown) | Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(Command::Submit(seq)) => self.waiting.push_back(*seq),
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.step();
            self.publish();
        }
    }

    fn preempt(&mut self, index: usize) {
        let mut seq = self.running.remove(index);
        self.free_blocks += seq.blocks;
        seq.blocks = 0;
        seq.cache = KvCache::new();
        self.waiting.push_front(seq);
        self.stats.preemptions += 1;
        self.shared.metrics.preemptions.inc();
    }

    fn step(&mut self) {
        // Requests whose client went away free their space.
        let free = &mut self.free_blocks;
        self.running.retain(|s| {
            let keep = !s.tx.is_closed();
            if !keep {
                *free += s.blocks;
            }
            keep
        });
        self.waiting.retain(|s| !s.tx.is_closed());

        let (max_batch, max_batched_tokens) = (
            self.shared.info.max_batch,
            self.shared.info.max_batched_tokens,
        );
        let mut budget = max_batched_tokens;
        // chunks[i]: tokens of running[i] in this step (0: not scheduled).
        let mut chunks = vec![0usize; self.running.len()];
        let mut preempted = false;
        // Decodes first, oldest first: one token each, and a new block when one fills up.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let seq = &self.running[i];
            if seq.pending() != 1 {
                i += 1;
                continue;
            }
            let need = (seq.cache.len() + 1)
                .div_ceil(KV_BLOCK_TOKENS)
                .saturating_sub(seq.blocks);
            while self.free_blocks < need && self.running.len() - 1 > i {
                self.preempt(self.running.len() - 1);
                chunks.pop();
                preempted = true;
            }
            if self.free_blocks < need {
                // Only when the cache cannot hold this one sequence, which submission
                // refuses; requeue it rather than loop.
                self.preempt(i);
                chunks.pop();
                preempted = true;
                break;
            }
            self.free_blocks -= need;
            self.running[i].blocks += need;
            chunks[i] = 1;
            budget -= 1;
            i += 1;
        }
        // Then prefill chunks of admitted prompts (their blocks were reserved on admission).
        for (seq, chunk) in self.running.iter_mut().zip(chunks.iter_mut()) {
            if budget == 0 {
                break;
            }
            if *chunk == 0 && seq.pending() > 1 {
                *chunk = seq.pending().min(budget);
                budget -= *chunk;
            }
        }
        // Admission, first come first served, while space allows.
        while !preempted && budget > 0 && self.running.len() < max_batch {
            let Some(front) = self.waiting.front() else {
                break;
            };
            if (front.tokens.len() + 1).div_ceil(KV_BLOCK_TOKENS) > self.free_blocks {
                break;
            }
            let mut seq = self.waiting.pop_front().expect("front exists");
            let reserve = seq.tokens.len().div_ceil(KV_BLOCK_TOKENS);
            self.free_blocks -= reserve;
            seq.blocks = reserve;
            if !seq.counted {
                seq.counted = true;
                self.stats.prompt_tokens += seq.prompt_len as u64;
                self.shared
                    .metrics
                    .prompt_tokens
                    .inc_by(seq.prompt_len as u64);
            }
            let chunk = seq.pending().min(budget);
            budget -= chunk;
            chunks.push(chunk);
            self.running.push(seq);
        }
        let scheduled = chunks.iter().filter(|&&c| c > 0).count();
        if scheduled == 0 {
            return;
        }

        let mut samples = Vec::new();
        let mut entries = Vec::with_capacity(chunks.len());
        for (index, (seq, &chunk)) in self.running.iter_mut().zip(&chunks).enumerate() {
            if chunk == 0 {
                continue;
            }
            let start = seq.cache.len();
            let ends = start + chunk == seq.tokens.len();
            if ends {
                samples.push(index);
            }
            entries.push(BatchEntry {
                tokens: &seq.tokens[start..start + chunk],
                cache: &mut seq.cache,
                logits: if ends { Logits::Last } else { Logits::None },
            });
        }
        let logits = self.model.forward(&mut entries);
        drop(entries);
        self.stats.steps += 1;
        self.stats.max_running_observed = self.stats.max_running_observed.max(scheduled);

        let rows = logits.map(logits_to_rows).unwrap_or_default();
        let eos = &self.model.config().eos_token_ids;
        let mut finished = Vec::new();
        for (&index, mut row) in samples.iter().zip(rows) {
            let seq = &mut self.running[index];
            let suppress: &[u32] = if seq.generated < seq.params.min_tokens {
                eos
            } else {
                &[]
            };
            let token = sample(&mut row, &seq.params, suppress, &mut seq.rng);
            seq.tokens.push(token);
            seq.generated += 1;
            self.stats.generation_tokens += 1;
            self.shared.metrics.generation_tokens.inc();
            let reason = if seq.generated >= seq.params.max_tokens {
                Some(FinishReason::Length)
            } else if !seq.params.ignore_eos && eos.contains(&token) {
                Some(FinishReason::Stop)
            } else {
                None
            };
            let usage = Usage {
                prompt_tokens: seq.prompt_len,
                completion_tokens: seq.generated,
            };
            let done = reason.map(|reason| Finished { reason, usage });
            let _ = seq.tx.send(GenerationEvent {
                token,
                finished: done,
            });
            if done.is_some() {
                finished.push(index);
            }
        }
        for &index in finished.iter().rev() {
            let seq = self.running.remove(index);
            self.free_blocks += seq.blocks;
            self.stats.requests_finished += 1;
            self.shared.metrics.requests_finished.inc();
        }
    }

    fn publish(&mut self) {
        let used = self.total_blocks - self.free_blocks;
        self.stats.running = self.running.len();
        self.stats.waiting = self.waiting.len();
        self.stats.kv_cache_used_tokens = used * KV_BLOCK_TOKENS;
        let m = &self.shared.metrics;
        m.running.set(self.running.len() as i64);
        m.waiting.set(self.waiting.len() as i64);
        m.kv_cache_usage.set(used as f64 / self.total_blocks as f64);
        m.max_running_observed
            .set(self.stats.max_running_observed as i64);
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.stats.clone();
    }
}

//! The physics model: serving latency from FLOPs, bytes and links, no training.
//!
//! Roofline step times (as in Vidur's and LLMCompass' analytic predictors, and NVIDIA's
//! AIConfigurator without its measured kernel tables), then an analytic steady state of a
//! continuous-batching server. Every constant is in [`PhysicsParams`] with its reason; none
//! is fitted to the public data (the trained [`crate::Predictor`] learns what they miss).
//!
//! Per GPU, with tensor parallelism `TP` = GPU count:
//!
//! - **Decode step** at batch `n`, mean context `c`:
//!   `max(bytes / (bw · η_mem), flops / (peak · mfu_decode)) + all-reduce + overhead`, where
//!   bytes = weights read this step (dense weights, plus the experts the `n` tokens touch for
//!   MoE) / TP + `n · c ·` KV bytes per token / TP (+ cross-attention K/V for encoder-decoder),
//!   flops = `n ·` FLOPs per token / TP. The all-reduce is two per layer, each
//!   `α + 2 (TP−1)/TP · n · hidden · 2 B / link_bw` (ring). The overhead (per step and per
//!   layer: scheduling, sampling, kernel launches) does **not** shrink with TP, which is why
//!   measured decode steps speed up far less than linearly from 2 to 8 GPUs.
//! - **Prefill** of `T` tokens (requests of length `I`): `max(T · flops(I/2) / (peak ·
//!   mfu_prefill), weights / bw) / TP` + all-reduces of `T · hidden` + overhead. For
//!   encoder-decoder models the prompt runs through the encoder only.
//! - **KV capacity**: `memory · util − weights/TP − activations/TP − runtime` per GPU, times
//!   TP, over KV bytes per token. A request reserves `input + output` tokens (TGIS and vLLM
//!   admission both budget the full length), so the batch budget is capacity / (I + O),
//!   capped by the engine's sequence limit.
//! - **Closed loop** (N users): `n = min(N, B)` in flight. In the time the batch produces `O`
//!   tokens each, `n` prompts are prefilled, in `min(n, O)` prefill steps that stall decoding
//!   (TGIS and vLLM's default both run prefill as its own step). So a cycle lasts
//!   `O · t_decode + min(n, O) · t_prefill`, throughput is `n` requests per cycle, and a
//!   fraction `min(n, O)/O` of inter-token gaps contain a prefill (ITL is a two-point
//!   mixture, which gives its percentiles). With N > B the rest queue: E2E = N / X (Little's
//!   law, zero think time) and the wait lands in TTFT.
//! - **Open loop** (rate λ): by Little's law the same steady state as the closed loop whose
//!   throughput is λ, so the model solves for that population (bisection over the closed-loop
//!   throughput) and answers its step times and TTFT. What Poisson arrivals add on top is the
//!   wait for a free slot when all `B` are busy (M/M/c, Erlang C), with the load capped at
//!   0.99 so overload shows as very long TTFTs rather than an error. (It used to solve
//!   `n = λ · R(n)` on its own, with an M/M/1 wait: Mistral-7B on an H100 then read a TTFT
//!   at 5 requests/s nearly three times the one at 40 closed-loop users, twice the load.)
//! - **Offline batch** of b: `ceil(b / B)` waves, each a batched prefill then `O − 1` decode
//!   steps at the wave's batch size.
//!
//! Percentile spread of TTFT and E2E (request lengths vary; the model sees only means) uses a
//! fixed log-normal width; the trained predictor corrects each percentile separately.

use crate::LatencyModel;
use crate::PredictError;
use crate::scenario::{Fit, Load, Prediction, Scenario};
use pilot_core::gpu::GpuSpec;
use pilot_core::llm::LlmSpec;
use pilot_core::metrics::{Stat, Stats, Summary};
use pilot_core::schema::Measurement;
use pilot_core::units::{Dtype, Millis, MsPerToken, RequestsPerSec, TokensPerSec};

/// The physics model's constants. Defaults are typical published efficiencies, not fits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhysicsParams {
    /// Fraction of peak memory bandwidth a decode step achieves (GEMV kernels reach 70-85%).
    pub mem_efficiency: f64,
    /// Model-FLOPs utilisation of prefill (large GEMMs: 40-60% of dense peak).
    pub mfu_prefill: f64,
    /// Utilisation of the compute peak in a decode step (small, skinny GEMMs).
    pub mfu_decode: f64,
    /// Fixed time per engine step (scheduling, sampling, detokenisation), ms.
    pub step_overhead_ms: f64,
    /// Fixed time per request before its prefill (HTTP/gRPC, tokenisation, admission), ms.
    pub request_overhead_ms: f64,
    /// Fixed time per layer per step (kernel launches, norms, rotary), ms.
    pub layer_overhead_ms: f64,
    /// Latency of one all-reduce over NVLink-class links, ms.
    pub allreduce_latency_nvlink_ms: f64,
    /// Latency of one all-reduce over PCIe, ms.
    pub allreduce_latency_pcie_ms: f64,
    /// Fraction of device memory the engine may use (vLLM's gpu_memory_utilization is 0.9;
    /// TGI/TGIS fill the memory left after a warm-up, closer to 0.95).
    pub memory_utilization: f64,
    /// Memory per GPU taken by the runtime (CUDA context, workspaces), GB.
    pub runtime_overhead_gb: f64,
    /// Tokens the engine sizes its activation buffers for (a prefill chunk).
    pub activation_tokens: f64,
    /// Most sequences an engine batches (vLLM's max_num_seqs default).
    pub max_sequences: u32,
    /// Log-normal width of TTFT / E2E across requests (percentile spread).
    pub length_sigma: f64,
    /// Share of the other in-flight requests' prefills a new closed-loop request waits for
    /// before its own behind a TGI-style router (see [`Scenario::tgi_router`]; 1: all, as when
    /// the router holds arrivals and prefills them as one batch). Measured TGIS TTFT grows
    /// about linearly with users long before the KV cache is full, which a model without this
    /// queue misses by 5-10x at 64 users.
    #[serde(default = "default_prefill_queue_share")]
    pub prefill_queue_share: f64,
    /// Prompt tokens a padded batch computes per real prompt token (prompts run at the batch's
    /// longest length; see [`Scenario::padded_batching`]).
    #[serde(default = "default_padded_token_factor")]
    pub padded_token_factor: f64,
    /// KV-cache tokens a padded engine reserves per sequence: without paging it allocates the
    /// longest sequence it admits (capped by the model's context), whatever the request needs.
    /// TGI/TGIS default to 2048 (`--max-total-tokens`, `MAX_SEQUENCE_LENGTH`).
    #[serde(default = "default_padded_sequence_tokens")]
    pub padded_sequence_tokens: f64,
    /// Host time per sequence per decode step (sampling, stop checks, detokenisation, stream
    /// bookkeeping), ms: it makes a step grow with the batch even where the GPU does not.
    /// (TGIS 2023 runs this in Python and measures nearer 0.3-0.7 ms per user on an H100, but
    /// a TGIS-specific value here leaves the trained predictor's held-out ITL error higher,
    /// 21.9% against 19.3% MAPE: the trees correct TGIS better from the generic step.)
    #[serde(default = "default_sequence_overhead_ms")]
    pub sequence_overhead_ms: f64,
    /// Host time per decoder layer per decode step of a padded engine, ms: without flash
    /// attention TGI/TGIS run the architecture's eager Transformers modules, a dozen unfused
    /// kernel launches per layer (three attention blocks in a T5 decoder layer) for one token's
    /// work. Measured at one user, flan-t5-xl (24 decoder layers, 3B) steps in 15 ms on an H100
    /// where its bytes take 5 ms, and flan-t5-xxl (24 layers, 11B) in the same 15 ms.
    #[serde(default = "default_padded_layer_overhead_ms")]
    pub padded_layer_overhead_ms: f64,
    /// Copies of a padded batch's KV cache held at its peak. Without paging, the cache is one
    /// padded tensor per layer, rebuilt whole when a request joins (TGI/TGIS `concatenate`) or
    /// leaves (`filter`): the old and the new tensors coexist, so a server sized not to run out
    /// of memory admits half the sequences one copy would allow. In LLM-Pilot's TGIS runs, the
    /// padded LLMs that plateau (26 LLM x GPU profiles) decode a median 0.45 of the one-copy
    /// budget at once (Little's law on throughput and latencies), with 0.12 to 0.91 between
    /// profiles whose batch weights LLM-Pilot tuned.
    #[serde(default = "default_padded_kv_copies")]
    pub padded_kv_copies: f64,
}

fn default_padded_kv_copies() -> f64 {
    2.0
}

fn default_padded_layer_overhead_ms() -> f64 {
    0.2
}

fn default_sequence_overhead_ms() -> f64 {
    0.03
}

fn default_padded_sequence_tokens() -> f64 {
    2048.0
}

fn default_prefill_queue_share() -> f64 {
    0.5
}

fn default_padded_token_factor() -> f64 {
    2.0
}

impl Default for PhysicsParams {
    fn default() -> Self {
        PhysicsParams {
            mem_efficiency: 0.75,
            mfu_prefill: 0.5,
            mfu_decode: 0.4,
            step_overhead_ms: 2.0,
            request_overhead_ms: 30.0,
            layer_overhead_ms: 0.03,
            allreduce_latency_nvlink_ms: 0.01,
            allreduce_latency_pcie_ms: 0.03,
            memory_utilization: 0.95,
            runtime_overhead_gb: 1.0,
            activation_tokens: 4096.0,
            max_sequences: 256,
            length_sigma: 0.5,
            prefill_queue_share: default_prefill_queue_share(),
            padded_token_factor: default_padded_token_factor(),
            padded_sequence_tokens: default_padded_sequence_tokens(),
            sequence_overhead_ms: default_sequence_overhead_ms(),
            padded_layer_overhead_ms: default_padded_layer_overhead_ms(),
            padded_kv_copies: default_padded_kv_copies(),
        }
    }
}

/// The physics model (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct PhysicsModel {
    pub params: PhysicsParams,
    /// Constants calibrated per serving engine (lower-case name), used instead of `params`
    /// for scenarios on that engine (see [`crate::calibrate`]).
    pub per_engine: std::collections::BTreeMap<String, PhysicsParams>,
}

/// Everything the physics derives for one scenario, exposed for features and tests.
/// Times in ms, memory in bytes, counts as plain numbers (internal to the crate's features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub fits: bool,
    /// Total KV-cache tokens across the GPUs.
    pub kv_cache_tokens: f64,
    /// Batch budget: sequences in flight at most.
    pub max_batch: f64,
    /// Sequences in flight at steady state.
    pub in_flight: f64,
    /// One decode step at the steady-state batch.
    pub decode_step_ms: f64,
    /// One decode step at batch 1.
    pub decode_step1_ms: f64,
    /// Prefill of one request.
    pub prefill_ms: f64,
    /// Fraction of the batch-1 decode step that is all-reduce.
    pub comm_fraction: f64,
    /// Fraction of the batch-1 decode step that is fixed overhead.
    pub overhead_fraction: f64,
    /// Compute time over memory time of the decode step (> 1: compute bound).
    pub compute_to_memory: f64,
    /// Fraction of usable memory the weights take.
    pub weight_memory_fraction: f64,
    /// Fraction of ITL gaps that contain a prefill.
    pub prefill_gap_fraction: f64,
    /// Offered load over capacity (closed: users / batch budget; open: rate / max rate).
    pub load_ratio: f64,
    pub ttft_ms: f64,
    pub itl_mean_ms: f64,
    pub e2e_ms: f64,
    pub output_tok_s: f64,
    pub total_tok_s: f64,
    pub request_rps: f64,
}

/// z-scores of the percentiles the schema reports.
const Z: [(Stat, f64); 4] = [
    (Stat::P50, 0.0),
    (Stat::P90, 1.2816),
    (Stat::P95, 1.6449),
    (Stat::P99, 2.3263),
];

/// Derived per-model quantities the step functions need (computed once per scenario).
struct Shape {
    tp: f64,
    /// Layers a token passes (encoder and decoder), and those a decode step runs.
    layers: f64,
    decoder_layers: f64,
    hidden: f64,
    /// Bytes of weights a decode token runs through when all experts are counted (dense part).
    dense_bytes: f64,
    /// Bytes of one expert's MLP across all layers (0 for dense models).
    expert_bytes: f64,
    experts: f64,
    experts_per_token: f64,
    /// Bytes of all weights (memory footprint).
    weight_bytes: f64,
    kv_bytes_per_token: f64,
    /// Cross-attention K/V bytes per input token (encoder-decoder), else 0.
    cross_kv_bytes_per_token: f64,
    /// FLOPs per decode token at context 0 (decoder side), and per context token of attention.
    decode_flops0: f64,
    attn_flops_per_ctx: f64,
    /// FLOPs per prompt token at context 0 (encoder for enc-dec).
    prefill_flops0: f64,
    peak_flops: f64,
    bw: f64,
    link_bw: f64,
    allreduce_latency_ms: f64,
    memory_per_gpu: f64,
    /// The engine runs this architecture in padded batches.
    padded: bool,
    /// Host time per sequence per decode step for this engine, ms.
    sequence_overhead_ms: f64,
}

fn mlp_params(m: &LlmSpec) -> f64 {
    let (h, i) = (m.hidden as f64, m.intermediate as f64);
    if m.gated_mlp {
        3.0 * h * i
    } else {
        2.0 * h * i
    }
}

impl Shape {
    fn new(
        m: &LlmSpec,
        g: &GpuSpec,
        count: u32,
        wdt: Dtype,
        kvdt: Dtype,
        p: &PhysicsParams,
    ) -> Shape {
        let h = m.hidden as f64;
        let q_width = (m.heads * m.head_dim) as f64;
        let kv_width = m.kv_heads * m.head_dim as f64;
        let attn = 2.0 * h * q_width + 2.0 * h * kv_width;
        let mlp = mlp_params(m);
        let b = wdt.bytes();
        let total = m.params_total().0;
        let embed = m.vocab as f64 * h;
        let lm_head = embed; // a matmul per token, tied or not
        let (decode_w, prefill_w, expert_bytes) = if m.encoder_decoder {
            let enc = m.encoder_layers as f64 * (attn + mlp);
            let dec = m.decoder_layers as f64 * (2.0 * attn + mlp);
            (dec + lm_head, enc, 0.0)
        } else if m.experts > 1 {
            let layers = m.layers as f64;
            let non_expert = (total - layers * m.experts as f64 * mlp - embed).max(0.0);
            (non_expert + lm_head, 0.0, layers * mlp * b)
        } else {
            let w = (total - embed).max(0.0) + if m.tied_embeddings { lm_head } else { 0.0 };
            (w, w, 0.0)
        };
        let active_w = if m.experts > 1 {
            decode_w + m.layers as f64 * m.experts_per_token as f64 * mlp
        } else {
            decode_w
        };
        let prefill_w = if m.encoder_decoder {
            prefill_w
        } else {
            active_w
        };
        let pcie = g.is_pcie_card();
        // A peak for every dtype: F32 (no tensor-core figure in the catalog) runs at a quarter
        // of the 16-bit peak (TF32-class); a GPU without any figure falls back to bandwidth x 100.
        let peak = g
            .peak(wdt)
            .or_else(|| {
                g.peak(Dtype::F16)
                    .map(|t| pilot_core::units::Tflops(t.0 / 4.0))
            })
            .map(|t| t.0 * 1e12)
            .unwrap_or(g.memory_bandwidth.0 * 1e9 * 100.0);
        Shape {
            tp: count.max(1) as f64,
            layers: (m.layers + m.encoder_layers) as f64,
            decoder_layers: if m.encoder_decoder {
                m.decoder_layers
            } else {
                m.layers
            } as f64,
            hidden: h,
            dense_bytes: decode_w * b,
            expert_bytes,
            experts: m.experts.max(1) as f64,
            experts_per_token: m.experts_per_token.max(1) as f64,
            weight_bytes: total * b,
            kv_bytes_per_token: m.kv_cache_bytes_per_token(kvdt).0,
            cross_kv_bytes_per_token: if m.encoder_decoder {
                2.0 * m.decoder_layers as f64 * kv_width * kvdt.bytes()
            } else {
                0.0
            },
            decode_flops0: 2.0 * active_w,
            attn_flops_per_ctx: 4.0 * m.layers as f64 * q_width,
            prefill_flops0: 2.0 * prefill_w,
            peak_flops: peak,
            bw: g.memory_bandwidth.0 * 1e9,
            link_bw: g.intra_node_bandwidth.0.max(1.0) * 1e9,
            allreduce_latency_ms: if pcie {
                p.allreduce_latency_pcie_ms
            } else {
                p.allreduce_latency_nvlink_ms
            },
            memory_per_gpu: g.memory.0 * 1e9,
            padded: false,
            sequence_overhead_ms: p.sequence_overhead_ms,
        }
    }

    /// One all-reduce phase per step: two per layer over `tokens · hidden` 16-bit values.
    fn allreduce_ms(&self, tokens: f64) -> f64 {
        if self.tp <= 1.0 {
            return 0.0;
        }
        let bytes = 2.0 * (self.tp - 1.0) / self.tp * tokens * self.hidden * 2.0;
        2.0 * self.layers * (self.allreduce_latency_ms + bytes / self.link_bw * 1e3)
    }
}

/// Parts of a decode step, ms.
struct Step {
    total: f64,
    comm: f64,
    overhead: f64,
    compute_to_memory: f64,
}

impl PhysicsModel {
    pub fn new(params: PhysicsParams) -> PhysicsModel {
        PhysicsModel {
            params,
            per_engine: Default::default(),
        }
    }

    /// The model with one engine's calibrated constants, when it has them.
    fn for_engine(&self, sc: &Scenario) -> Option<PhysicsModel> {
        let engine = sc.engine.as_deref()?.to_ascii_lowercase();
        self.per_engine
            .get(&engine)
            .map(|p| PhysicsModel::new(p.clone()))
    }

    fn overhead_ms(&self, s: &Shape) -> f64 {
        self.params.step_overhead_ms + self.params.layer_overhead_ms * s.layers
    }

    /// A decode step at batch `n` with mean context `ctx` and prompt length `input` (for
    /// cross-attention).
    fn decode_step(&self, s: &Shape, n: f64, ctx: f64, input: f64) -> Step {
        let p = &self.params;
        // Distinct experts the batch touches: E · (1 − (1 − k/E)^n) (uniform routing).
        let touched = if s.expert_bytes > 0.0 {
            s.experts * (1.0 - (1.0 - s.experts_per_token / s.experts).powf(n))
        } else {
            0.0
        };
        let weights = (s.dense_bytes + s.expert_bytes * touched) / s.tp;
        let kv = n * (ctx * s.kv_bytes_per_token + input * s.cross_kv_bytes_per_token) / s.tp;
        let t_mem = (weights + kv) / (s.bw * p.mem_efficiency) * 1e3;
        let flops = n * (s.decode_flops0 + ctx * s.attn_flops_per_ctx) / s.tp;
        let t_comp = flops / (s.peak_flops * p.mfu_decode) * 1e3;
        let comm = s.allreduce_ms(n);
        let eager = if s.padded {
            p.padded_layer_overhead_ms * s.decoder_layers
        } else {
            0.0
        };
        let overhead = self.overhead_ms(s) + eager + n * s.sequence_overhead_ms;
        Step {
            total: t_mem.max(t_comp) + comm + overhead,
            comm,
            overhead,
            compute_to_memory: t_comp / t_mem.max(1e-12),
        }
    }

    /// Prefill of `requests` prompts of `input` tokens each, in one step.
    fn prefill(&self, s: &Shape, requests: f64, input: f64) -> f64 {
        let p = &self.params;
        // A padded batch computes every prompt at the longest length in it; one prompt alone
        // has no padding, so the waste grows with the batch.
        let pad = if s.padded {
            1.0 + (p.padded_token_factor - 1.0).max(0.0) * (1.0 - 1.0 / requests.max(1.0))
        } else {
            1.0
        };
        let tokens = requests * input * pad;
        let flops = tokens * (s.prefill_flops0 + 0.5 * input * s.attn_flops_per_ctx) / s.tp;
        let t_comp = flops / (s.peak_flops * p.mfu_prefill) * 1e3;
        let t_mem =
            (s.dense_bytes + s.expert_bytes * s.experts) / s.tp / (s.bw * p.mem_efficiency) * 1e3;
        t_comp.max(t_mem) + s.allreduce_ms(tokens) + self.overhead_ms(s)
    }

    /// The physics estimate of a scenario, with the intermediate quantities.
    pub fn estimate(&self, sc: &Scenario) -> Result<(Estimate, Fit), PredictError> {
        if let Some(m) = self.for_engine(sc) {
            return m.estimate(sc);
        }
        let p = &self.params;
        let i = sc.input_tokens.0.max(1) as f64;
        let o = sc.output_tokens.0.max(1) as f64;
        let mut s = Shape::new(
            &sc.model,
            &sc.gpu,
            sc.gpu_count,
            sc.quantization,
            sc.kv_dtype(),
            p,
        );
        s.padded = sc.padded_batching();
        // Memory per GPU.
        let usable = s.memory_per_gpu * p.memory_utilization - p.runtime_overhead_gb * 1e9;
        let weights = s.weight_bytes / s.tp;
        // Activation buffers for one prefill chunk (residual, q/k/v, MLP intermediate, 16-bit).
        let act = p.activation_tokens.max(i)
            * (4.0 * s.hidden + 2.0 * sc.model.intermediate as f64)
            * 2.0
            / s.tp;
        let free = usable - weights - act;
        let mut est = Estimate {
            fits: false,
            kv_cache_tokens: 0.0,
            max_batch: 0.0,
            in_flight: 0.0,
            decode_step_ms: 0.0,
            decode_step1_ms: 0.0,
            prefill_ms: 0.0,
            comm_fraction: 0.0,
            overhead_fraction: 0.0,
            compute_to_memory: 0.0,
            weight_memory_fraction: weights / usable.max(1.0),
            prefill_gap_fraction: 0.0,
            load_ratio: 0.0,
            ttft_ms: f64::NAN,
            itl_mean_ms: f64::NAN,
            e2e_ms: f64::NAN,
            output_tok_s: 0.0,
            total_tok_s: 0.0,
            request_rps: 0.0,
        };
        let gb = |b: f64| b / 1e9;
        if free <= 0.0 {
            let reason = format!(
                "{} at {} needs {:.1} GB of weights per GPU over {} GPU(s), plus {:.1} GB of activations and runtime, \
                 but a {} has {:.1} GB usable ({:.0}% of {:.0} GB); use more or larger GPUs, or a smaller dtype",
                sc.model.id,
                sc.quantization,
                gb(weights),
                sc.gpu_count,
                gb(act + p.runtime_overhead_gb * 1e9),
                sc.gpu.name,
                gb(s.memory_per_gpu * p.memory_utilization),
                p.memory_utilization * 100.0,
                gb(s.memory_per_gpu),
            );
            return Ok((est, Fit::DoesNotFit { reason }));
        }
        let kv_tokens = free * s.tp / s.kv_bytes_per_token.max(1e-9);
        let reserved = if s.padded {
            // The server reserves its configured longest sequence; a decoder-only model's trained
            // context bounds what it is started with, but T5's relative position buckets have no
            // table, and TGIS serves flan-t5 (trained at 512) up to its 2048 default: capped at
            // 512, the physics gave flan-t5-xl on one A100 a batch of 256 where 5-9 were measured.
            let cap = match sc.model.max_positions {
                Some(m) if !sc.model.encoder_decoder => m as f64,
                _ => f64::INFINITY,
            };
            (i + o).max(p.padded_sequence_tokens.min(cap))
        } else {
            i + o
        };
        let mut per_request =
            reserved + i * s.cross_kv_bytes_per_token / s.kv_bytes_per_token.max(1e-9);
        if s.padded {
            per_request *= p.padded_kv_copies.max(1.0);
        }
        let budget = (kv_tokens / per_request)
            .floor()
            .min(p.max_sequences as f64);
        est.kv_cache_tokens = kv_tokens;
        est.max_batch = budget;
        if budget < 1.0 {
            let reason = format!(
                "the KV cache holds {:.0} tokens after {:.1} GB of weights per GPU, but one request needs {:.0} \
                 ({} in + {} out); use more or larger GPUs, or shorter requests",
                kv_tokens,
                gb(weights),
                per_request,
                sc.input_tokens.0,
                sc.output_tokens.0
            );
            return Ok((est, Fit::DoesNotFit { reason }));
        }
        est.fits = true;
        let ctx = i + o / 2.0;
        let step1 = self.decode_step(&s, 1.0, ctx, i);
        est.decode_step1_ms = step1.total;
        est.prefill_ms = self.prefill(&s, 1.0, i);

        // Closed-loop cycle for `n` in flight: (ITL mean, gap fraction, prefill event ms, cycle ms).
        let cycle = |n: f64| {
            let step = self.decode_step(&s, n, ctx, i);
            let events = n.min(o).max(1.0);
            let t_pe = self.prefill(&s, n / events, i);
            let cycle = o * step.total + events * t_pe;
            (step, events / o, t_pe, cycle)
        };

        // The closed-loop steady state with `users` (real-valued, so that the open loop can
        // solve for it) in flight or queued.
        let closed = |users: f64| {
            let n = users.min(budget);
            let (step, f, t_pe, cyc) = cycle(n);
            let itl_mean = step.total + f * t_pe;
            // A new request is prefilled with those that arrived in the same step; behind a
            // TGI-style router it also waits for a share of the other in-flight requests'
            // prefills (one batched prefill step either way).
            let share = if sc.tgi_router() {
                p.prefill_queue_share
            } else {
                0.0
            };
            let together = (n / n.min(o).max(1.0)).max(1.0 + share * (n - 1.0));
            let t_first = self.prefill(&s, together, i);
            let ttft0 = p.request_overhead_ms + t_first + 0.5 * step.total;
            // Each user's cycle includes the per-request overhead and the prefill queue
            // (host side or waiting, overlapped with other users' GPU work), so it bounds
            // throughput as well as the GPU does.
            let own = ttft0 + (o - 1.0) * itl_mean;
            let x = (n / cyc).min(n / own); // requests per ms
            let (ttft, e2e) = if users <= budget {
                (ttft0, own)
            } else {
                let e2e = users / x;
                (e2e - (o - 1.0) * itl_mean, e2e)
            };
            SteadyState {
                n,
                step,
                gap_fraction: f,
                prefill_event_ms: t_pe,
                ttft_ms: ttft,
                e2e_ms: e2e,
                requests_per_ms: x,
            }
        };

        let state = match sc.load {
            Load::Users(users) => {
                let users = users.max(1) as f64;
                est.load_ratio = users / budget;
                closed(users)
            }
            Load::Rate(rate) => {
                let lambda = rate.0.max(1e-9) / 1e3; // per ms
                let x_max = closed(budget).requests_per_ms;
                let rho = lambda / x_max;
                est.load_ratio = rho;
                // By Little's law an open loop at rate λ holds the same steady state as the
                // closed loop whose throughput is λ: solve for that population.
                let users = closed_population(lambda, budget, |u| closed(u).requests_per_ms);
                let mut st = closed(users);
                // What Poisson arrivals add: a request that finds every one of the `budget`
                // slots busy waits for one to free (M/M/c, Erlang C). Overload keeps ρ at
                // 0.99, so it shows as very long TTFTs rather than an error.
                let wait = erlang_c_wait(budget, rho.min(0.99), x_max);
                st.ttft_ms += wait;
                st.e2e_ms += wait;
                st.requests_per_ms = lambda.min(x_max);
                st
            }
            Load::Batch(b) => {
                let b = b.max(1) as f64;
                let waves = (b / budget).ceil();
                let m = b / waves;
                let step = self.decode_step(&s, m, ctx, i);
                let t_pe = self.prefill(&s, m, i);
                let wave = t_pe + (o - 1.0) * step.total;
                let e2e = waves * wave;
                est.load_ratio = b / budget;
                SteadyState {
                    n: m,
                    step,
                    gap_fraction: 0.0,
                    prefill_event_ms: t_pe,
                    ttft_ms: t_pe,
                    e2e_ms: e2e,
                    requests_per_ms: b / e2e,
                }
            }
        };
        let SteadyState {
            n,
            step,
            gap_fraction: gap_frac,
            prefill_event_ms: t_pe,
            ttft_ms: ttft,
            e2e_ms: e2e,
            requests_per_ms,
        } = state;
        let x = requests_per_ms * 1e3;
        est.in_flight = n;
        est.decode_step_ms = step.total;
        // Shares of the batch-1 step: properties of the model and GPUs, not of the load (so the
        // predictor's monotone constraints cover every feature that moves with load).
        est.comm_fraction = step1.comm / step1.total;
        est.overhead_fraction = step1.overhead / step1.total;
        est.compute_to_memory = step.compute_to_memory;
        est.prefill_gap_fraction = gap_frac;
        est.ttft_ms = ttft;
        est.itl_mean_ms = step.total + gap_frac * t_pe;
        est.e2e_ms = e2e;
        est.request_rps = x;
        est.output_tok_s = x * o;
        est.total_tok_s = x * (i + o);
        Ok((
            est,
            Fit::Fits {
                kv_cache_tokens: pilot_core::units::Tokens(kv_tokens as u64),
                max_batch: budget as u32,
            },
        ))
    }

    /// The summary (percentiles and throughputs) the physics implies for an estimate.
    pub fn summary(&self, sc: &Scenario, e: &Estimate) -> Summary {
        if let Some(m) = self.for_engine(sc) {
            return m.summary(sc, e);
        }
        let mut m = Summary::default();
        if !e.fits {
            return m;
        }
        let i = sc.input_tokens.0.max(1) as f64;
        let o = sc.output_tokens.0.max(1) as f64;
        let offline = matches!(sc.load, Load::Batch(_));
        let sigma = if offline {
            0.0
        } else {
            self.params.length_sigma
        };
        let spread = |z: f64| (sigma * z).exp();
        let t_pe = (e.itl_mean_ms - e.decode_step_ms) / e.prefill_gap_fraction.max(1e-12);
        let itl_at = |z: f64| {
            // A gap holds a Poisson number of prefill events (mean f per gap), each t_pe.
            let q = 0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2));
            e.decode_step_ms + t_pe * poisson_quantile(e.prefill_gap_fraction, q)
        };
        let mut ttft = Stats::default();
        let mut nttft = Stats::default();
        let mut itl = Stats::default();
        let mut e2e = Stats::default();
        let mut tpot = Stats::default();
        for (name, z) in Z {
            ttft.set(name, Some(Millis(e.ttft_ms * spread(z))));
            nttft.set(name, Some(MsPerToken(e.ttft_ms * spread(z) / i)));
            itl.set(name, Some(Millis(itl_at(z))));
            e2e.set(name, Some(Millis(e.e2e_ms * spread(z))));
            tpot.set(name, Some(Millis(e.itl_mean_ms)));
        }
        let mean = (sigma * sigma / 2.0).exp();
        ttft.mean = Some(Millis(e.ttft_ms * mean));
        nttft.mean = Some(MsPerToken(e.ttft_ms * mean / i));
        itl.mean = Some(Millis(e.itl_mean_ms));
        e2e.mean = Some(Millis(e.e2e_ms * mean));
        tpot.mean = Some(Millis(e.itl_mean_ms));
        m.ttft = ttft;
        m.nttft = nttft;
        m.itl = itl;
        m.tpot = tpot;
        m.e2e = e2e;
        m.output_throughput = Some(TokensPerSec(e.output_tok_s));
        m.total_throughput = Some(TokensPerSec(e.total_tok_s));
        m.request_throughput = Some(RequestsPerSec(e.request_rps));
        m.input_tokens_mean = Some(i);
        m.output_tokens_mean = Some(o);
        m
    }
}

/// A steady state of the server: in flight, the decode step at that batch, the share of
/// inter-token gaps holding a prefill and its length, mean TTFT and E2E, and throughput.
/// Times in ms (crate-internal, as [`Estimate`]).
struct SteadyState {
    n: f64,
    step: Step,
    gap_fraction: f64,
    prefill_event_ms: f64,
    ttft_ms: f64,
    e2e_ms: f64,
    requests_per_ms: f64,
}

/// The closed-loop population (1 to `budget` users, real-valued) whose throughput
/// `throughput(users)` is `lambda`: the closed loop an open loop at rate `lambda` matches by
/// Little's law. Below one user's throughput it is one user (a request mostly runs alone);
/// at or past the saturated throughput, the whole budget.
pub(crate) fn closed_population(lambda: f64, budget: f64, throughput: impl Fn(f64) -> f64) -> f64 {
    if budget <= 1.0 || lambda <= throughput(1.0) {
        return 1.0;
    }
    if lambda >= throughput(budget) {
        return budget;
    }
    let (mut lo, mut hi) = (1.0, budget);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if throughput(mid) < lambda {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-3 * lo {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Mean wait for a free slot under Poisson arrivals at utilisation `rho` of `slots` slots
/// that together complete `capacity_per_ms` requests per ms (M/M/c: Erlang C probability of
/// waiting over the spare capacity), in ms. A continuous-batching server admits a request at
/// its next step while a slot is free, so with many slots this stays near zero until the
/// server is nearly full, then grows steeply.
pub(crate) fn erlang_c_wait(slots: f64, rho: f64, capacity_per_ms: f64) -> f64 {
    let c = slots.floor().max(1.0);
    let rho = rho.clamp(0.0, 0.99);
    if rho <= 0.0 || capacity_per_ms <= 0.0 {
        return 0.0;
    }
    let a = rho * c;
    // Erlang B by its stable recursion, then Erlang C from it.
    let mut b = 1.0;
    for k in 1..=(c as u64) {
        b = a * b / (k as f64 + a * b);
    }
    let wait_probability = b / (1.0 - rho * (1.0 - b));
    wait_probability / (capacity_per_ms * (1.0 - rho))
}

/// The `q` quantile of a Poisson count with mean `lambda`, interpolated linearly within the
/// step where the CDF crosses `q`, so that it moves continuously with `lambda` (a percentile
/// that jumps as the mean crosses a threshold would teach the trees a jump that is not there).
fn poisson_quantile(lambda: f64, q: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut pk = (-lambda).exp();
    let mut cdf = pk;
    if q <= cdf {
        return 0.0;
    }
    for k in 1..200 {
        pk *= lambda / k as f64;
        let next = cdf + pk;
        if q <= next {
            return (k - 1) as f64 + (q - cdf) / pk.max(1e-300);
        }
        cdf = next;
    }
    lambda
}

/// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): enough to place percentiles.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
            + 0.254829592)
            * t
            * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

impl LatencyModel for PhysicsModel {
    fn predict(&self, sc: &Scenario) -> Result<Prediction, PredictError> {
        let (e, fit) = self.estimate(sc)?;
        let mut row: Measurement = sc.to_row("pilot-predict:physics");
        row.max_batch = e.fits.then_some(e.max_batch as u32);
        row.metrics = self.summary(sc, &e);
        Ok(Prediction {
            lower: row.metrics.clone(),
            upper: row.metrics.clone(),
            row,
            out_of_domain: false,
            fit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;
    use pilot_core::units::Tokens;

    fn sc(model: &str, gpu: &str, count: u32, load: Load) -> Scenario {
        let m = ModelCatalog::builtin().resolve(model).unwrap();
        let g = GpuCatalog::builtin().resolve(gpu).unwrap().clone();
        Scenario::new(m, g, count, load, Tokens(512), Tokens(256))
    }

    fn est(s: &Scenario) -> Estimate {
        PhysicsModel::default().estimate(s).unwrap().0
    }

    #[test]
    fn bigger_model_is_slower() {
        let small = est(&sc("llama-2-7b", "A100-SXM-80GB", 1, Load::Users(8)));
        let big = est(&sc("llama-2-13b", "A100-SXM-80GB", 1, Load::Users(8)));
        assert!(
            big.decode_step_ms > small.decode_step_ms,
            "{big:?} vs {small:?}"
        );
        assert!(big.ttft_ms > small.ttft_ms);
        assert!(big.output_tok_s < small.output_tok_s);
    }

    #[test]
    fn more_bandwidth_is_faster_decode() {
        // H100 SXM vs PCIe: same generation, 3350 vs 2000 GB/s.
        let fast = est(&sc("llama-2-7b", "H100-SXM-80GB", 1, Load::Users(1)));
        let slow = est(&sc("llama-2-7b", "H100-PCIe-80GB", 1, Load::Users(1)));
        assert!(
            fast.decode_step_ms < slow.decode_step_ms,
            "{} vs {}",
            fast.decode_step_ms,
            slow.decode_step_ms
        );
    }

    #[test]
    fn poisson_quantile_is_continuous_and_monotone_in_the_mean() {
        // Below ln 2 the median count is 0; it then rises without jumps.
        assert_eq!(poisson_quantile(0.5, 0.5), 0.0);
        let mut last = 0.0;
        let mut lambda = 0.0;
        while lambda < 6.0 {
            let q = poisson_quantile(lambda, 0.5);
            assert!(q >= last - 1e-12, "median fell at {lambda}: {q} < {last}");
            assert!(q - last < 0.05, "median jumped at {lambda}: {last} -> {q}");
            last = q;
            lambda += 0.01;
        }
        // The p99 lies above the mean, the p10 below it.
        assert!(poisson_quantile(3.0, 0.99) > 3.0 && poisson_quantile(3.0, 0.1) < 3.0);
    }

    #[test]
    fn closed_loop_ttft_queues_behind_other_prefills_before_the_cache_is_full() {
        // 16 users fit in the batch budget; behind TGIS their TTFT still grows with the
        // prefills queued ahead (measured TTFT grows about linearly with users), unless no
        // share of them is waited for; an engine that schedules prompts at the next step
        // (vLLM) does not hold them back.
        let tgis = |u| {
            let mut s = sc("llama-2-7b", "A100-SXM-80GB", 1, Load::Users(u));
            s.engine = Some("tgis".into());
            s
        };
        let e16 = est(&tgis(16));
        assert!(e16.max_batch >= 16.0, "budget {}", e16.max_batch);
        assert!(e16.ttft_ms > 2.0 * est(&tgis(1)).ttft_ms);
        let none = PhysicsModel::new(PhysicsParams {
            prefill_queue_share: 0.0,
            ..PhysicsParams::default()
        });
        let flat = none.estimate(&tgis(16)).unwrap().0.ttft_ms;
        assert!(flat < e16.ttft_ms / 2.0, "{flat} vs {}", e16.ttft_ms);
        let mut vllm = tgis(16);
        vllm.engine = Some("vllm".into());
        assert!((est(&vllm).ttft_ms - flat).abs() < 1e-9);
    }

    #[test]
    fn decode_steps_grow_with_the_batch_by_the_host_time_per_sequence() {
        // Short contexts on an H100: the GPU part of a 64-sequence step barely grows, the host
        // part grows by 63 x the per-sequence time.
        let step = |p: &PhysicsParams, u: u32| {
            let mut s = sc("llama-2-7b", "H100-SXM-80GB", 1, Load::Users(u));
            s.input_tokens = Tokens(120);
            s.output_tokens = Tokens(20);
            PhysicsModel::new(p.clone())
                .estimate(&s)
                .unwrap()
                .0
                .decode_step_ms
        };
        let with = PhysicsParams::default();
        let without = PhysicsParams {
            sequence_overhead_ms: 0.0,
            ..PhysicsParams::default()
        };
        let host = (step(&with, 64) - step(&with, 1)) - (step(&without, 64) - step(&without, 1));
        let want = 63.0 * with.sequence_overhead_ms;
        assert!((host - want).abs() < 1e-6 * want, "{host} vs {want}");
    }

    #[test]
    fn padded_engines_reserve_whole_sequences_and_pay_for_padding() {
        // Short requests (LLM-Pilot's: ~120 in, ~20 out), so the reservation decides.
        let mut paged = sc("flan-t5-xl", "A100-PCIe-40GB", 1, Load::Users(8));
        paged.input_tokens = Tokens(120);
        paged.output_tokens = Tokens(20);
        paged.engine = Some("vllm".into());
        let mut padded = paged.clone();
        padded.engine = Some("tgis".into());
        assert!(padded.padded_batching() && !paged.padded_batching());
        let (a, b) = (est(&paged), est(&padded));
        assert!(
            b.max_batch < a.max_batch,
            "{} vs {}",
            b.max_batch,
            a.max_batch
        );
        assert!(b.ttft_ms > a.ttft_ms);
        // T5's trained 512 positions do not cap the server's 2048-token reservation (relative
        // position buckets have no table): halving it would double the padded batch.
        let shorter = PhysicsParams {
            padded_sequence_tokens: 512.0,
            ..PhysicsParams::default()
        };
        let (b512, _) = PhysicsModel::new(shorter).estimate(&padded).unwrap();
        assert!(
            b.max_batch * 3.0 < b512.max_batch,
            "{} vs {}",
            b.max_batch,
            b512.max_batch
        );
        // The padded cache is held twice at its peak (rebuilt whole as requests join and
        // leave): one copy would admit about twice the sequences.
        let one_copy = PhysicsParams {
            padded_kv_copies: 1.0,
            ..PhysicsParams::default()
        };
        let (b1, _) = PhysicsModel::new(one_copy).estimate(&padded).unwrap();
        assert!(
            (b1.max_batch / b.max_batch - 2.0).abs() < 0.1,
            "{} with one copy vs {} with two",
            b1.max_batch,
            b.max_batch
        );
        // Each decode step pays the eager modules' per-layer host time on top of the bytes.
        let no_eager = PhysicsParams {
            padded_layer_overhead_ms: 0.0,
            ..PhysicsParams::default()
        };
        let (c, _) = PhysicsModel::new(no_eager).estimate(&padded).unwrap();
        let layers = padded.model.decoder_layers as f64;
        let extra = b.decode_step_ms - c.decode_step_ms;
        assert!(
            (extra - PhysicsParams::default().padded_layer_overhead_ms * layers).abs() < 1e-9,
            "{extra} ms for {layers} layers"
        );
        // Flash-attention architectures are paged on TGIS too.
        let mut llama = sc("llama-2-7b", "A100-PCIe-40GB", 1, Load::Users(8));
        llama.engine = Some("tgis".into());
        assert!(!llama.padded_batching());
    }

    #[test]
    fn more_users_never_lower_itl_or_ttft() {
        let mut last = (0.0, 0.0, 0.0);
        for u in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
            let e = est(&sc("llama-2-13b", "A10", 2, Load::Users(u)));
            assert!(e.fits);
            assert!(
                e.itl_mean_ms >= last.0 - 1e-9,
                "ITL fell at {u} users: {} < {}",
                e.itl_mean_ms,
                last.0
            );
            assert!(e.ttft_ms >= last.1 - 1e-9, "TTFT fell at {u} users");
            assert!(e.e2e_ms >= last.2 - 1e-9, "E2E fell at {u} users");
            last = (e.itl_mean_ms, e.ttft_ms, e.e2e_ms);
        }
        // And the median ITL of the summary too.
        let p = PhysicsModel::default();
        let mut last = 0.0;
        for u in [1, 4, 16, 64, 256] {
            let pred = p
                .predict(&sc("mistral-7b", "L4", 1, Load::Users(u)))
                .unwrap();
            let itl = pred.row.metrics.itl.p50.unwrap().0;
            assert!(itl >= last, "p50 ITL fell at {u} users");
            last = itl;
        }
    }

    #[test]
    fn seventy_b_fp16_does_not_fit_one_24gb_gpu() {
        let p = PhysicsModel::default();
        let s = sc("llama-2-70b", "A10", 1, Load::Users(1));
        let pred = p.predict(&s).unwrap();
        let Fit::DoesNotFit { reason } = &pred.fit else {
            panic!("70B fp16 fits a 24 GB GPU? {:?}", pred.fit)
        };
        assert!(reason.contains("A10") && reason.contains("GB"), "{reason}");
        assert_eq!(pred.row.metrics.itl.p50, None);
        // ... but 70B at int4 on 2 x H100 does.
        let mut s = sc("llama-2-70b", "H100", 2, Load::Users(1));
        s.quantization = Dtype::Int4;
        assert!(matches!(p.predict(&s).unwrap().fit, Fit::Fits { .. }));
    }

    #[test]
    fn smaller_dtypes_are_faster_and_hold_more_kv() {
        let mut a = sc("llama-3-8b", "H100", 1, Load::Users(1));
        a.quantization = Dtype::F16;
        let mut b = a.clone();
        b.quantization = Dtype::Int4;
        let (ea, eb) = (est(&a), est(&b));
        assert!(eb.decode_step_ms < ea.decode_step_ms);
        assert!(eb.kv_cache_tokens > ea.kv_cache_tokens);
        let mut c = a.clone();
        c.kv_cache = Some(Dtype::Fp8);
        assert!((est(&c).kv_cache_tokens / ea.kv_cache_tokens - 2.0).abs() < 0.01);
    }

    #[test]
    fn moe_decode_reads_active_not_total_params() {
        // Mixtral-8x7B (46.7B total, 12.9B active) at batch 1 decodes much faster than a dense
        // model of its total size, and a bit slower than a dense 13B.
        let mix = est(&sc("mixtral-8x7b", "H100", 2, Load::Users(1)));
        let dense70 = est(&sc("llama-2-70b", "H100", 2, Load::Users(1)));
        let dense13 = est(&sc("llama-2-13b", "H100", 2, Load::Users(1)));
        assert!(
            mix.decode_step1_ms < 0.5 * dense70.decode_step1_ms,
            "{} vs {}",
            mix.decode_step1_ms,
            dense70.decode_step1_ms
        );
        assert!(mix.decode_step1_ms < 1.3 * dense13.decode_step1_ms);
        // Large batches touch every expert: the step grows toward the total's cost.
        let mix64 = est(&sc("mixtral-8x7b", "H100", 2, Load::Batch(64)));
        assert!(mix64.decode_step_ms > 1.5 * mix.decode_step1_ms);
    }

    #[test]
    fn encoder_decoder_prefills_with_the_encoder() {
        let t5 = sc("flan-t5-xl", "A10", 1, Load::Users(4));
        let e = est(&t5);
        assert!(e.fits && e.prefill_ms > 0.0 && e.decode_step_ms > 0.0);
        // Decoding reads the decoder's weights only: faster than a decoder-only model of the
        // same total size would be.
        let full = t5.model.weight_bytes(Dtype::F16).0 / (600e9 * 0.75) * 1e3;
        assert!(e.decode_step1_ms - PhysicsModel::default().params.step_overhead_ms < full);
    }

    #[test]
    fn tensor_parallel_speedup_is_sublinear() {
        let one = est(&sc("llama-2-70b", "H100", 2, Load::Users(1))).decode_step1_ms;
        let eight = est(&sc("llama-2-70b", "H100", 8, Load::Users(1))).decode_step1_ms;
        let speedup = one / eight;
        assert!(
            speedup > 1.3 && speedup < 3.5,
            "2 -> 8 GPUs speedup {speedup}"
        );
    }

    #[test]
    fn offline_and_open_loop_give_finite_numbers() {
        let p = PhysicsModel::default();
        for load in [
            Load::Batch(1),
            Load::Batch(64),
            Load::Batch(1000),
            Load::Rate(RequestsPerSec(0.5)),
            Load::Rate(RequestsPerSec(1e4)),
        ] {
            let pred = p.predict(&sc("mistral-7b", "H100", 1, load)).unwrap();
            for c in [
                "ttft_ms_p50",
                "itl_ms_p99",
                "e2e_ms_p50",
                "output_throughput_tok_s",
            ] {
                let v = pilot_core::schema::metric_value(&pred.row, c).unwrap();
                assert!(v.is_finite() && v > 0.0, "{load:?} {c} = {v}");
            }
        }
        // Overload is very slow, not an error.
        let calm = est(&sc(
            "mistral-7b",
            "H100",
            1,
            Load::Rate(RequestsPerSec(0.5)),
        ));
        let flood = est(&sc(
            "mistral-7b",
            "H100",
            1,
            Load::Rate(RequestsPerSec(1e4)),
        ));
        assert!(flood.ttft_ms > 10.0 * calm.ttft_ms);
    }
}

//! Roofline step times: what one decode step and one prefill cost on the GPUs, from the
//! model's shape (bytes, FLOPs, all-reduces) and the engine's per-step overheads.

use super::{PhysicsModel, PhysicsParams};
use pilot_core::gpu::GpuSpec;
use pilot_core::llm::LlmSpec;
use pilot_core::units::Dtype;

/// Derived per-model quantities the step functions need (computed once per scenario).
pub(super) struct Shape {
    pub(super) tp: f64,
    /// Layers a token passes (encoder and decoder), and those a decode step runs.
    pub(super) layers: f64,
    pub(super) decoder_layers: f64,
    pub(super) hidden: f64,
    /// Bytes of weights a decode token runs through when all experts are counted (dense part).
    pub(super) dense_bytes: f64,
    /// Bytes of one expert's MLP across all layers (0 for dense models).
    pub(super) expert_bytes: f64,
    pub(super) experts: f64,
    pub(super) experts_per_token: f64,
    /// Bytes of all weights (memory footprint).
    pub(super) weight_bytes: f64,
    pub(super) kv_bytes_per_token: f64,
    /// Over how many GPUs' memories one token's KV cache is spread. Tensor parallelism splits
    /// K/V heads, so by default every GPU of the group holds its share of every token; MLA's
    /// compressed latent has no heads to split, so tensor-parallel ranks each hold all of it
    /// and only attention data parallelism (ranks holding different sequences) spreads it.
    pub(super) kv_split: f64,
    /// Cross-attention K/V bytes per input token (encoder-decoder), else 0.
    pub(super) cross_kv_bytes_per_token: f64,
    /// FLOPs per decode token at context 0 (decoder side), and per context token of attention.
    pub(super) decode_flops0: f64,
    pub(super) attn_flops_per_ctx: f64,
    /// FLOPs per prompt token at context 0 (encoder for enc-dec).
    pub(super) prefill_flops0: f64,
    pub(super) peak_flops: f64,
    pub(super) bw: f64,
    pub(super) link_bw: f64,
    pub(super) allreduce_latency_ms: f64,
    pub(super) memory_per_gpu: f64,
    /// The engine runs this architecture in padded batches.
    pub(super) padded: bool,
    /// Host time per sequence per decode step for this engine, ms.
    pub(super) sequence_overhead_ms: f64,
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
    pub(super) fn new(
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
        // One routed expert's weights and the layers that route (0 for dense models).
        let (expert, moe_layers) = (m.expert_params().0, m.moe_layers() as f64);
        let b = wdt.bytes();
        let total = m.params_total().0;
        let embed = m.vocab as f64 * h;
        let lm_head = embed; // a matmul per token, tied or not
        let (decode_w, prefill_w, expert_bytes) = if m.encoder_decoder {
            let enc = m.encoder_layers as f64 * (attn + mlp);
            let dec = m.decoder_layers as f64 * (2.0 * attn + mlp);
            (dec + lm_head, enc, 0.0)
        } else if m.experts > 1 {
            // Routed experts live only in the MoE layers (DeepSeek's first layers are dense,
            // of another width); shared experts run for every token, so they count as dense.
            let routed = moe_layers * m.experts as f64 * expert;
            let non_expert = (total - routed - embed).max(0.0);
            (non_expert + lm_head, 0.0, moe_layers * expert * b)
        } else {
            let w = (total - embed).max(0.0) + if m.tied_embeddings { lm_head } else { 0.0 };
            (w, w, 0.0)
        };
        let active_w = if m.experts > 1 {
            decode_w + moe_layers * m.experts_per_token as f64 * expert
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
            kv_split: count.max(1) as f64,
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
    pub(super) fn allreduce_ms(&self, tokens: f64) -> f64 {
        if self.tp <= 1.0 {
            return 0.0;
        }
        let bytes = 2.0 * (self.tp - 1.0) / self.tp * tokens * self.hidden * 2.0;
        2.0 * self.layers * (self.allreduce_latency_ms + bytes / self.link_bw * 1e3)
    }
}

/// Parts of a decode step, ms.
pub(super) struct Step {
    pub(super) total: f64,
    pub(super) comm: f64,
    pub(super) overhead: f64,
    pub(super) compute_to_memory: f64,
}

impl PhysicsModel {
    pub(super) fn overhead_ms(&self, s: &Shape) -> f64 {
        self.params.step_overhead_ms + self.params.layer_overhead_ms * s.layers
    }

    /// A decode step at batch `n` with mean context `ctx` and prompt length `input` (for
    /// cross-attention).
    pub(super) fn decode_step(&self, s: &Shape, n: f64, ctx: f64, input: f64) -> Step {
        let p = &self.params;
        // Distinct experts the batch touches: E · (1 − (1 − k/E)^n) (uniform routing).
        let touched = if s.expert_bytes > 0.0 {
            s.experts * (1.0 - (1.0 - s.experts_per_token / s.experts).powf(n))
        } else {
            0.0
        };
        let weights = (s.dense_bytes + s.expert_bytes * touched) / s.tp;
        let kv = n * (ctx * s.kv_bytes_per_token + input * s.cross_kv_bytes_per_token) / s.kv_split;
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
    pub(super) fn prefill(&self, s: &Shape, requests: f64, input: f64) -> f64 {
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
}

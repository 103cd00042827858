//! Roofline step times: what one decode step and one prefill cost on the GPUs, from the
//! model's shape (bytes, FLOPs, all-reduces) and the engine's per-step overheads.

use super::{PhysicsModel, PhysicsParams};
use pilot_core::gpu::GpuSpec;
use pilot_core::layout::Layout;
use pilot_core::llm::{AttentionKind, LlmSpec};
use pilot_core::quant::Quantization;
use pilot_core::units::Dtype;

/// Derived per-model quantities the step functions need (computed once per scenario).
pub(super) struct Shape {
    /// Tensor-parallel degree of attention (and of the dense layers) inside one attention-DP
    /// rank.
    pub(super) tp: f64,
    /// Attention data-parallel ranks: each holds different sequences and a copy of the
    /// attention and dense weights; the routed experts are spread over all `tp · dp` GPUs.
    pub(super) dp: f64,
    /// Pipeline stages: each holds `1/pp` of the layers.
    pub(super) pp: f64,
    /// Layers that route to experts (0 for dense models).
    pub(super) moe_layers: f64,
    /// FLOPs per token of the routed experts (part of `decode_flops0` and `prefill_flops0`).
    pub(super) expert_flops0: f64,
    /// The links of the tensor-parallel group, of the MoE group (`tp · dp` GPUs) and of the
    /// pipeline's stage-to-stage hand-off.
    pub(super) tp_link: Link,
    pub(super) moe_link: Link,
    pub(super) pp_link: Link,
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
    /// FLOPs per decode token at context 0 (decoder side), and per context token of attention
    /// in a decode step and in a prefill (equal but for MLA: see [`attention_flops_per_ctx`]).
    pub(super) decode_flops0: f64,
    pub(super) attn_flops_per_ctx: f64,
    pub(super) prefill_attn_flops_per_ctx: f64,
    /// FLOPs per prompt token at context 0 (encoder for enc-dec).
    pub(super) prefill_flops0: f64,
    pub(super) peak_flops: f64,
    pub(super) bw: f64,
    pub(super) memory_per_gpu: f64,
    /// The engine runs this architecture in padded batches.
    pub(super) padded: bool,
    /// Host time per sequence per decode step for this engine, ms.
    pub(super) sequence_overhead_ms: f64,
}

/// A group of GPUs' link for collectives: bandwidth per GPU (bytes/s) and latency per phase
/// (ms). A group inside the GPU's scale-up domain (NVLink, or PCIe inside one server) talks
/// at `intra_node_bandwidth`; a wider group's traffic crosses the scale-out network, which
/// bounds a ring (every GPU's ring neighbour may sit across it) and carries the share of an
/// all-to-all that goes to GPUs outside the sender's domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Link {
    /// GPUs in the group.
    pub(super) width: f64,
    /// GPUs that reach each other over the scale-up link (infinite when unknown).
    pub(super) domain: f64,
    pub(super) intra_bw: f64,
    pub(super) net_bw: f64,
    pub(super) intra_latency_ms: f64,
    pub(super) net_latency_ms: f64,
}

impl Link {
    pub(super) fn new(g: &GpuSpec, width: f64, p: &PhysicsParams) -> Link {
        Link {
            width,
            domain: scale_up_domain(g),
            intra_bw: g.intra_node_bandwidth.0.max(1.0) * 1e9,
            net_bw: p.network_bandwidth_gbps.max(1e-3) * 1e9,
            intra_latency_ms: if g.is_pcie_card() {
                p.allreduce_latency_pcie_ms
            } else {
                p.allreduce_latency_nvlink_ms
            },
            net_latency_ms: p.network_latency_ms,
        }
    }

    /// The group spans more than one scale-up domain.
    pub(super) fn crosses(&self) -> bool {
        self.width > self.domain
    }

    /// Bandwidth a ring over the group moves at, bytes/s.
    pub(super) fn ring_bw(&self) -> f64 {
        if self.crosses() {
            self.net_bw
        } else {
            self.intra_bw
        }
    }

    pub(super) fn latency_ms(&self) -> f64 {
        if self.crosses() {
            self.net_latency_ms
        } else {
            self.intra_latency_ms
        }
    }

    /// One all-to-all phase in which each GPU sends `bytes` to the others, spread evenly:
    /// the share bound for GPUs outside its domain goes over the network, the rest over
    /// the scale-up link, both at once. ms.
    pub(super) fn all_to_all_ms(&self, bytes: f64) -> f64 {
        if self.width <= 1.0 {
            return 0.0;
        }
        let off = if self.crosses() {
            (self.width - self.domain) / (self.width - 1.0)
        } else {
            0.0
        };
        let t = (bytes * (1.0 - off) / self.intra_bw).max(bytes * off / self.net_bw);
        self.latency_ms() + t * 1e3
    }
}

/// GPUs that reach each other over the fast scale-up link: the NVLink domain of an SXM part
/// (8 on HGX, 72 in an NVL72 rack), the server of a PCIe card (whose `intra_node_bandwidth`
/// is PCIe); infinite where the catalog does not say, so that an unknown GPU keeps the
/// one-fast-group physics of before.
fn scale_up_domain(g: &GpuSpec) -> f64 {
    let d = if g.is_pcie_card() {
        g.gpus_per_node
    } else {
        g.nvlink_domain.or(g.gpus_per_node)
    };
    d.map(f64::from).unwrap_or(f64::INFINITY)
}

/// Attention FLOPs per context token of one query token, over all layers: (decode, prefill).
///
/// Multi-head, grouped and multi-query attention: `QKᵀ` and `AV` over the query width,
/// `4 · heads · head_dim` per layer in both. MLA (DeepSeek-V3) differs by phase. Decoding,
/// engines absorb the K/V up-projection into the query and output (FlashMLA, FlashInfer's MLA
/// kernels): every head attends over the cached latent and its rotary part, `2 · (r + rope)`
/// for the scores and `2 · r` for the values with `r = kv_lora_rank` (512 against a head's
/// 192: 4.3x an MHA head's work). Prefilling, they expand K and V per head and run ordinary
/// attention at `qk_nope + qk_rope` (scores) and `v_head_dim` (values).
fn attention_flops_per_ctx(m: &LlmSpec, q_width: f64) -> (f64, f64) {
    let layers = m.layers as f64;
    match m.plan.mla {
        Some(a) if !m.encoder_decoder => {
            let heads = m.heads as f64;
            let (r, rope) = (a.kv_lora_rank as f64, a.qk_rope_head_dim as f64);
            let qk = (a.qk_nope_head_dim + a.qk_rope_head_dim) as f64;
            let decode = layers * heads * (2.0 * (r + rope) + 2.0 * r);
            let prefill = layers * heads * (2.0 * qk + 2.0 * a.v_head_dim as f64);
            (decode, prefill)
        }
        _ => (4.0 * layers * q_width, 4.0 * layers * q_width),
    }
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
        let tp = count.max(1) as f64;
        Shape {
            tp,
            dp: 1.0,
            pp: 1.0,
            moe_layers: if m.experts > 1 { moe_layers } else { 0.0 },
            expert_flops0: if m.experts > 1 && !m.encoder_decoder {
                2.0 * moe_layers * m.experts_per_token as f64 * expert
            } else {
                0.0
            },
            tp_link: Link::new(g, tp, p),
            moe_link: Link::new(g, tp, p),
            pp_link: Link::new(g, tp, p),
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
            attn_flops_per_ctx: attention_flops_per_ctx(m, q_width).0,
            prefill_attn_flops_per_ctx: attention_flops_per_ctx(m, q_width).1,
            prefill_flops0: 2.0 * prefill_w,
            peak_flops: peak,
            bw: g.memory_bandwidth.0 * 1e9,
            memory_per_gpu: g.memory.0 * 1e9,
            padded: false,
            sequence_overhead_ms: p.sequence_overhead_ms,
        }
    }

    /// The shape of one worker of `layout` serving `m` in the weight format `q`: attention and
    /// the dense layers tensor-parallel over `tensor` inside each of `attention_dp` ranks
    /// (which hold different sequences and a copy of those weights), the routed experts
    /// spread over all `tensor · attention_dp` GPUs of a stage (expert x MoE-tensor
    /// parallelism), the layers split over `pipeline` stages. The GEMMs run at the peak of
    /// the format's math ([`GpuSpec::peak_for`]: fp8 at the fp8 rate, nvfp4/mxfp4 at the fp4
    /// rate where the GPU has one). One tensor-parallel layout gives [`Shape::new`]'s numbers.
    pub(super) fn of_layout(
        m: &LlmSpec,
        g: &GpuSpec,
        layout: Layout,
        q: Quantization,
        kvdt: Dtype,
        p: &PhysicsParams,
    ) -> Shape {
        let mut s = Shape::new(m, g, layout.tensor(), q.storage(), kvdt, p);
        if let Some(t) = g.peak_for(q) {
            s.peak_flops = t.0 * 1e12;
        }
        let dp = f64::from(layout.attention_dp().max(1));
        let pp = f64::from(layout.pipeline().max(1));
        s.dp = dp;
        s.pp = pp;
        // K/V heads split over the tensor-parallel ranks of a DP rank; MLA's latent has no
        // heads, so each of those ranks holds all of it. Either way the ranks' sequences and
        // the stages' layers divide the cache further.
        let per_rank = if m.attention_kind() == AttentionKind::Mla {
            1.0
        } else {
            s.tp
        };
        s.kv_split = per_rank * dp * pp;
        s.moe_link = Link::new(g, s.tp * dp, p);
        s.pp_link = Link::new(g, s.tp * dp * pp, p);
        s
    }

    /// Bytes of all routed experts' weights (0 for dense models).
    pub(super) fn routed_bytes(&self) -> f64 {
        self.expert_bytes * self.experts
    }

    /// One all-reduce phase per step: two per layer over `tokens · hidden` 16-bit values.
    pub(super) fn allreduce_ms(&self, tokens: f64) -> f64 {
        self.allreduce_phases_ms(tokens, 2.0 * self.layers / self.pp)
    }

    /// `phases` ring all-reduces over the tensor-parallel group of `tokens · hidden` 16-bit
    /// values each.
    fn allreduce_phases_ms(&self, tokens: f64, phases: f64) -> f64 {
        if self.tp <= 1.0 {
            return 0.0;
        }
        let bytes = 2.0 * (self.tp - 1.0) / self.tp * tokens * self.hidden * 2.0;
        phases * (self.tp_link.latency_ms() + bytes / self.tp_link.ring_bw() * 1e3)
    }

    /// Communication of one step (one pipeline stage's layers) over `tokens` tokens of the
    /// worker, of which the busiest attention-DP rank holds `rank_tokens`. Without attention
    /// DP: two tensor-parallel all-reduces per layer. With it, attention (and a dense layer's
    /// MLP) all-reduce the rank's tokens over `tp`, and each MoE layer sends every token to
    /// the GPUs holding its experts and back (dispatch and combine, an all-to-all over the
    /// `tp · dp` GPUs): a token's `k` experts sit on `G (1 − (1 − 1/G)^k)` distinct GPUs of
    /// the `G`, all but `1/G` of them remote, and each GPU sends its `1/G` of the tokens.
    pub(super) fn comm_ms(&self, tokens: f64, rank_tokens: f64) -> f64 {
        if self.dp <= 1.0 {
            return self.allreduce_ms(tokens);
        }
        let layers = self.layers / self.pp;
        let moe = self.moe_layers / self.pp;
        let dense_mlps = layers - moe;
        let attn = self.allreduce_phases_ms(rank_tokens, layers + dense_mlps);
        if moe <= 0.0 {
            return attn;
        }
        let g = self.tp * self.dp;
        let k = self.experts_per_token;
        let targets = g * (1.0 - (1.0 - 1.0 / g).powf(k));
        let bytes = tokens / g * targets * (g - 1.0) / g * self.hidden * 2.0;
        attn + 2.0 * moe * self.moe_link.all_to_all_ms(bytes)
    }

    /// Handing `tokens` activations from one pipeline stage to the next, ms.
    fn stage_handoff_ms(&self, tokens: f64) -> f64 {
        if self.pp <= 1.0 {
            return 0.0;
        }
        let bytes = tokens * self.hidden * 2.0 / (self.tp * self.dp);
        self.pp_link.latency_ms() + bytes / self.pp_link.ring_bw() * 1e3
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
    /// cross-attention). With pipeline stages the batch runs as `min(n, pp)` micro-batches,
    /// and a token passes every stage in turn: its step is `pp` stage times (each stage's
    /// share of the bytes and FLOPs at the micro-batch) plus the hand-offs between stages, so
    /// a batch smaller than `pp` leaves stages idle (the bubble).
    pub(super) fn decode_step(&self, s: &Shape, n: f64, ctx: f64, input: f64) -> Step {
        let p = &self.params;
        let m = n / n.min(s.pp).max(1.0);
        // Distinct experts the batch touches: E · (1 − (1 − k/E)^n) (uniform routing).
        let touched = if s.expert_bytes > 0.0 {
            s.experts * (1.0 - (1.0 - s.experts_per_token / s.experts).powf(m))
        } else {
            0.0
        };
        // Attention-DP ranks split the sequences; with fewer sequences than ranks, the busy
        // ones set the pace (`skew` is the busiest rank's excess over an even share).
        let busy = s.dp.min(m).max(1.0);
        let skew = s.dp / busy - 1.0;
        // Per GPU of a stage: the dense weights over TP, the touched experts over TP · DP.
        let weights = (s.dense_bytes + s.expert_bytes * touched / s.dp) / s.tp / s.pp;
        let kv = m * (ctx * s.kv_bytes_per_token + input * s.cross_kv_bytes_per_token) / s.kv_split
            * (s.dp / busy);
        let t_mem = (weights + kv) / (s.bw * p.mem_efficiency) * 1e3;
        let dense_flops = s.decode_flops0 - s.expert_flops0 + ctx * s.attn_flops_per_ctx;
        let flops = m * (s.decode_flops0 + ctx * s.attn_flops_per_ctx + skew * dense_flops)
            / (s.tp * s.dp)
            / s.pp;
        let t_comp = flops / (s.peak_flops * p.mfu_decode) * 1e3;
        let comm = s.pp * s.comm_ms(m, m / busy) + (s.pp - 1.0) * s.stage_handoff_ms(m);
        let eager = if s.padded {
            p.padded_layer_overhead_ms * s.decoder_layers
        } else {
            0.0
        };
        let overhead = self.overhead_ms(s) + eager + n * s.sequence_overhead_ms;
        Step {
            total: s.pp * t_mem.max(t_comp) + comm + overhead,
            comm,
            overhead,
            compute_to_memory: t_comp / t_mem.max(1e-12),
        }
    }

    /// Prefill of `requests` prompts of `input` tokens each, in one step. The prompts spread
    /// over the attention-DP ranks (attention and dense layers over each rank's `tp` GPUs,
    /// the experts over all of them), and over pipeline stages as `min(requests, pp)`
    /// micro-batches: `pp + mb − 1` stage times.
    pub(super) fn prefill(&self, s: &Shape, requests: f64, input: f64) -> f64 {
        let p = &self.params;
        // A padded batch computes every prompt at the longest length in it; one prompt alone
        // has no padding, so the waste grows with the batch.
        let pad = if s.padded {
            1.0 + (p.padded_token_factor - 1.0).max(0.0) * (1.0 - 1.0 / requests.max(1.0))
        } else {
            1.0
        };
        let mb = requests.min(s.pp).max(1.0);
        let r = requests / mb;
        let tokens = r * input * pad;
        let busy = s.dp.min(r).max(1.0);
        let skew = s.dp / busy - 1.0;
        let attn = 0.5 * input * s.prefill_attn_flops_per_ctx;
        let dense_flops = s.prefill_flops0 - s.expert_flops0 + attn;
        let flops = tokens * (s.prefill_flops0 + attn + skew * dense_flops) / (s.tp * s.dp) / s.pp;
        let t_comp = flops / (s.peak_flops * p.mfu_prefill) * 1e3;
        let t_mem = (s.dense_bytes + s.expert_bytes * s.experts / s.dp)
            / s.tp
            / s.pp
            / (s.bw * p.mem_efficiency)
            * 1e3;
        let stage = t_comp.max(t_mem) + s.comm_ms(tokens, tokens / busy);
        (s.pp + mb - 1.0) * stage + (s.pp - 1.0) * s.stage_handoff_ms(tokens) + self.overhead_ms(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;

    fn model(name: &str) -> LlmSpec {
        ModelCatalog::builtin().resolve(name).unwrap()
    }

    fn gpu(name: &str) -> GpuSpec {
        GpuCatalog::builtin().resolve(name).unwrap().clone()
    }

    fn shape(m: &str, g: &GpuSpec, layout: Layout, q: Quantization) -> Shape {
        let m = model(m);
        Shape::of_layout(&m, g, layout, q, q.storage(), &PhysicsParams::default())
    }

    fn layout(tensor: u32, pipeline: u32, expert: u32, adp: u32) -> Layout {
        Layout::new(tensor, pipeline, expert, adp).unwrap()
    }

    #[test]
    fn mla_decode_attends_over_the_latent_at_several_times_a_heads_work() {
        // Decoding, every MLA head reads the 512-wide latent (plus rotary) for scores and
        // values; prefilling, it runs at its own 192/128 widths. Other attention is the same
        // in both phases.
        let h100 = gpu("H100");
        let ds = shape(
            "deepseek-ai/DeepSeek-V3",
            &h100,
            layout(8, 1, 1, 1),
            Quantization::Fp8,
        );
        let ratio = ds.attn_flops_per_ctx / ds.prefill_attn_flops_per_ctx;
        assert!(ratio > 3.0 && ratio < 8.0, "{ratio}");
        let llama = shape("llama-2-70b", &h100, layout(8, 1, 1, 1), Quantization::Bf16);
        assert_eq!(llama.attn_flops_per_ctx, llama.prefill_attn_flops_per_ctx);
        // So a long-context decode step of DeepSeek-V3 costs more compute per token of context.
        let ds_m = model("deepseek-ai/DeepSeek-V3");
        assert!(ds.attn_flops_per_ctx / ds_m.layers as f64 > 100_000.0);
    }

    #[test]
    fn a_tensor_parallel_layout_is_the_old_shape_to_the_bit() {
        // Every dataset before layouts is one TP group over gpu_count: its step times must
        // not move by a bit.
        let pm = PhysicsModel::default();
        for (m, g, n, q) in [
            ("llama-2-70b", "H100", 4, Quantization::Fp16),
            ("mixtral-8x7b", "A100-SXM-80GB", 2, Quantization::Bf16),
            ("mistral-7b", "L4", 1, Quantization::Int4W4a16),
            ("flan-t5-xl", "A10", 2, Quantization::Fp16),
        ] {
            let (spec, g) = (model(m), gpu(g));
            let old = Shape::new(&spec, &g, n, q.storage(), q.storage(), &pm.params);
            let new = Shape::of_layout(
                &spec,
                &g,
                Layout::tensor_parallel(n).unwrap(),
                q,
                q.storage(),
                &pm.params,
            );
            for b in [1.0, 7.0, 64.0] {
                let (a, c) = (
                    pm.decode_step(&old, b, 900.0, 512.0),
                    pm.decode_step(&new, b, 900.0, 512.0),
                );
                assert_eq!(a.total.to_bits(), c.total.to_bits(), "{m} decode at {b}");
                assert_eq!(
                    pm.prefill(&old, b, 512.0).to_bits(),
                    pm.prefill(&new, b, 512.0).to_bits(),
                    "{m} prefill of {b}"
                );
            }
        }
    }

    #[test]
    fn attention_dp_replicates_the_dense_weights_and_spreads_the_experts() {
        let h200 = gpu("H200");
        let ds = "deepseek-ai/DeepSeek-V3";
        let tp8 = shape(ds, &h200, layout(8, 1, 8, 1), Quantization::Fp8);
        let adp8 = shape(ds, &h200, layout(1, 1, 8, 8), Quantization::Fp8);
        let pm = PhysicsModel::default();
        // Batch 1, no context: a step reads the dense weights (over TP) and the one token's
        // experts (over TP x DP).
        let bytes = |s: &Shape| {
            let t = pm.decode_step(s, 1.0, 0.0, 0.0);
            let mem = t.total - t.comm - t.overhead;
            mem * s.bw * pm.params.mem_efficiency / 1e3
        };
        let (a, b) = (bytes(&tp8), bytes(&adp8));
        let experts = tp8.experts_per_token * tp8.expert_bytes / 8.0;
        let dense = tp8.dense_bytes;
        assert!((a / (dense / 8.0 + experts) - 1.0).abs() < 1e-9, "{a}");
        assert!((b / (dense + experts) - 1.0).abs() < 1e-9, "{b}");
    }

    #[test]
    fn expert_all_to_all_grows_with_the_expert_group_and_the_batch() {
        let ds = "deepseek-ai/DeepSeek-V3";
        let h200 = gpu("H200");
        // The same 32 sequences on every attention-DP rank: the wider the group, the more
        // distinct GPUs a token's 8 experts sit on.
        let a2a = |g: &GpuSpec, dp: u32, per_rank: f64| {
            let s = shape(ds, g, layout(1, 1, dp, dp), Quantization::Fp8);
            let n = per_rank * f64::from(dp);
            s.comm_ms(n, per_rank)
        };
        let mut last = 0.0;
        for dp in [2, 4, 8] {
            let t = a2a(&h200, dp, 32.0);
            assert!(t > last, "all-to-all over {dp}: {t} ms after {last}");
            last = t;
        }
        assert!(a2a(&h200, 8, 64.0) > a2a(&h200, 8, 32.0));
        // Sixteen H200s span two 8-GPU NVLink domains; in a 72-GPU domain they do not.
        let mut nvl = h200.clone();
        nvl.nvlink_domain = Some(72);
        assert!(a2a(&h200, 16, 32.0) > 3.0 * a2a(&nvl, 16, 32.0));
        // Without attention-DP the tokens are on every GPU already: no all-to-all, only the
        // tensor-parallel all-reduces.
        let tp8 = shape(ds, &h200, layout(8, 1, 8, 1), Quantization::Fp8);
        assert_eq!(tp8.comm_ms(64.0, 64.0), tp8.allreduce_ms(64.0));
    }

    #[test]
    fn a_tensor_group_across_two_nodes_all_reduces_slower_than_inside_an_nvl72_domain() {
        let h100 = gpu("H100");
        let mut nvl = h100.clone();
        nvl.nvlink_domain = Some(72);
        let m = "llama-3.1-405b";
        let across = shape(m, &h100, layout(16, 1, 1, 1), Quantization::Fp8);
        let inside = shape(m, &nvl, layout(16, 1, 1, 1), Quantization::Fp8);
        let node = shape(m, &h100, layout(8, 1, 1, 1), Quantization::Fp8);
        assert!(across.tp_link.crosses() && !inside.tp_link.crosses());
        assert!(across.allreduce_ms(64.0) > 3.0 * inside.allreduce_ms(64.0));
        // Eight GPUs of one HGX node stay on NVLink.
        assert!(node.allreduce_ms(64.0) < across.allreduce_ms(64.0));
        // The real NVL72 parts keep 64-wide expert groups on NVLink.
        let gb = gpu("GB200");
        let wide = shape(
            "deepseek-ai/DeepSeek-V3",
            &gb,
            layout(1, 1, 64, 64),
            Quantization::Nvfp4,
        );
        assert!(!wide.moe_link.crosses());
    }

    #[test]
    fn gemms_run_at_the_peak_of_the_quantization() {
        let (b200, h100) = (gpu("B200"), gpu("H100"));
        let m = "llama-3-8b";
        let peak = |g: &GpuSpec, q| shape(m, g, layout(1, 1, 1, 1), q).peak_flops / 1e12;
        assert_eq!(peak(&b200, Quantization::Nvfp4), b200.fp4.unwrap().0);
        assert_eq!(peak(&b200, Quantization::Mxfp4), b200.fp4.unwrap().0);
        assert_eq!(peak(&h100, Quantization::Fp8Block), h100.fp8.unwrap().0);
        assert_eq!(peak(&h100, Quantization::Fp8), h100.fp8.unwrap().0);
        // No fp4 math on Hopper: dequantized to 16 bits; int4 w4a16 is 16-bit math anywhere.
        assert_eq!(peak(&h100, Quantization::Nvfp4), h100.fp16.unwrap().0);
        assert_eq!(peak(&b200, Quantization::Int4W4a16), b200.fp16.unwrap().0);
        // ... with 4-bit weight bytes either way.
        let s = shape(m, &b200, layout(1, 1, 1, 1), Quantization::Int4W4a16);
        let f = shape(m, &b200, layout(1, 1, 1, 1), Quantization::Fp16);
        assert!((f.weight_bytes / s.weight_bytes - 4.0).abs() < 1e-9);
    }

    #[test]
    fn pipeline_stages_split_the_layers_but_a_token_passes_them_all() {
        let h100 = gpu("H100");
        let m = "llama-2-70b";
        let pp1 = shape(m, &h100, layout(1, 1, 1, 1), Quantization::Fp8);
        let pp2 = shape(m, &h100, layout(1, 2, 1, 1), Quantization::Fp8);
        assert_eq!(pp2.kv_split, 2.0 * pp1.kv_split);
        let pm = PhysicsModel::default();
        // Batch 1: one micro-batch, the other stage idles; the token takes as long as on one
        // GPU holding every layer, plus the hand-off.
        let (a, b) = (
            pm.decode_step(&pp1, 1.0, 1024.0, 1024.0),
            pm.decode_step(&pp2, 1.0, 1024.0, 1024.0),
        );
        assert!(
            b.total > a.total && b.total < 1.05 * a.total,
            "{} vs {}",
            b.total,
            a.total
        );
        // A batch of 64 runs as two micro-batches of 32 in flight at once: faster per token
        // than one stage of everything at 64.
        let (a, b) = (
            pm.decode_step(&pp1, 64.0, 1024.0, 1024.0),
            pm.decode_step(&pp2, 64.0, 1024.0, 1024.0),
        );
        assert!(b.total < a.total, "{} vs {}", b.total, a.total);
        // Prefill of one prompt passes both stages in turn: no faster than one GPU.
        assert!(pm.prefill(&pp2, 1.0, 2048.0) >= pm.prefill(&pp1, 1.0, 2048.0));
    }
}

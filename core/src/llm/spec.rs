//! [`LlmSpec`], the internal description of a model, and the arithmetic derived from it.
//!
//! Parameter counts, weight bytes, KV-cache bytes per token and FLOPs per token are computed
//! here from the spec's numbers and the family facts in [`Arch`] (fixed by `arch` at
//! conversion), never typed in. Keeping the formulas in one file, apart from config parsing
//! and architecture quirks, puts every number pilot derives about a model in one place to
//! check against published counts (this file's tests).

use super::arch::{Arch, Family};
use super::checkpoint::{CheckpointFormat, Part};
use super::layers::{Ffn, Layer, LayerPlan, Mixer};
use crate::quant::Quantization;
use crate::units::{Bytes, Dtype, Flops};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A parameter (weight) count. A plain count rather than a physical unit, but kept apart from
/// other `f64`s so a count of weights is never mistaken for bytes or FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub f64);

impl Params {
    /// The raw count.
    pub fn value(self) -> f64 {
        self.0
    }
    /// The count in billions (7.24 for Mistral-7B).
    pub fn billions(self) -> f64 {
        self.0 / 1e9
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(2);
        let v = self.0;
        if v >= 1e9 {
            write!(f, "{:.*}B", p, v / 1e9)
        } else if v >= 1e6 {
            write!(f, "{:.*}M", p, v / 1e6)
        } else if v >= 1e3 {
            write!(f, "{:.*}K", p, v / 1e3)
        } else {
            write!(f, "{v}")
        }
    }
}

/// How K/V heads relate to query heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKind {
    /// Multi-head: one K/V head per query head.
    Mha,
    /// Grouped-query: fewer K/V heads than query heads, more than one.
    Gqa,
    /// Multi-query: one K/V head shared by all query heads.
    Mqa,
    /// Multi-head latent attention (DeepSeek-V3): one compressed K/V vector per token.
    Mla,
}

impl fmt::Display for AttentionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttentionKind::Mha => "MHA",
            AttentionKind::Gqa => "GQA",
            AttentionKind::Mqa => "MQA",
            AttentionKind::Mla => "MLA",
        })
    }
}

/// One model, as pilot's stages see it: the architecture numbers every estimate starts from.
///
/// Built from an [`HfConfig`](super::HfConfig) (candle-style: "convert the HF config into the
/// internal config"). Head counts and widths are per layer; for encoder-decoder models `layers`
/// is the decoder's (the part that runs per generated token) and the encoder's is separate.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSpec {
    /// The Hub id (`meta-llama/Llama-2-7b-hf`), or the path it was loaded from.
    pub id: String,
    /// Short lowercase names (`llama-2-7b`).
    pub aliases: Vec<String>,
    /// `model_type` from the config (`llama`, `t5`, ...).
    pub model_type: String,
    /// Decoder blocks (every block for decoder-only models).
    pub layers: u32,
    /// Decoder blocks (equal to `layers`).
    pub decoder_layers: u32,
    /// Encoder blocks (0 for decoder-only models).
    pub encoder_layers: u32,
    /// Model width (d_model).
    pub hidden: u32,
    /// Query heads per layer.
    pub heads: u32,
    /// K/V heads per layer; the average over layers where it varies (DeciLM), hence `f64`.
    pub kv_heads: f64,
    /// Width of one head.
    pub head_dim: u32,
    /// MLP width: the dense layers' (`intermediate_size`). Mixtral-style configs give no
    /// separate expert width, so there it is also each expert's; models with
    /// `moe_intermediate_size` (DeepSeek, Qwen3-MoE) give the experts' width in
    /// `plan.moe` ([`MoeShape::expert_intermediate`](super::MoeShape)), and a model with no
    /// dense layer and no `intermediate_size` (Qwen3.5-MoE) repeats the experts' width here.
    pub intermediate: u32,
    /// Vocabulary size (rows of the embedding table).
    pub vocab: u32,
    /// Trained context length, where the config states one.
    pub max_positions: Option<u64>,
    /// Routed experts per MoE layer (1 if dense).
    pub experts: u32,
    /// Experts each token runs through (1 if dense).
    pub experts_per_token: u32,
    /// Encoder-decoder (T5 family) rather than decoder-only.
    pub encoder_decoder: bool,
    /// The LM head shares the input embedding matrix.
    pub tied_embeddings: bool,
    /// Gated MLP (SwiGLU / GeGLU: three matrices) rather than plain (two).
    pub gated_mlp: bool,
    /// Dtype the weights are published in (`torch_dtype`; fp16 when absent).
    pub dtype: Dtype,
    /// Total parameters as published (model card / paper), where known.
    pub published_params: Option<Params>,
    /// Where `published_params` comes from.
    pub params_source: Option<String>,
    /// Where the config was transcribed from (catalog entries).
    pub config_source: Option<String>,
    /// The decoder layer by layer (mixer and MLP kinds) with the shapes of MoE, latent
    /// attention, linear attention and Mamba where the model has them. For a classic decoder,
    /// every layer is full attention with a dense MLP (or Mixtral-style experts).
    pub plan: LayerPlan,
    /// The quantized format the checkpoint is published in (`None`: its `dtype`).
    pub checkpoint: Option<CheckpointFormat>,
    pub(super) arch: Arch,
}

/// KV-cache bytes per token split by the kind of layer holding them
/// ([`LlmSpec::kv_cache_bytes_by_kind`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvBytesByKind {
    /// Full-attention layers: grows with every token of context.
    pub full: Bytes,
    /// Latent-attention (MLA) layers: grows with every token of context.
    pub latent: Bytes,
    /// Sliding-window layers: grows per token only up to `sliding_window` tokens.
    pub sliding: Bytes,
    /// The largest sliding window (0 if the model has none).
    pub sliding_window: u32,
}

/// One layer's parameters by part, for totals and for per-part storage formats.
#[derive(Debug, Clone, Copy, Default)]
struct LayerParams {
    mixer: f64,
    dense: f64,
    experts: f64,
    shared: f64,
    router: f64,
    norms: f64,
}

impl LlmSpec {
    /// Query heads x head width: the attention's inner width.
    fn q_width(&self) -> f64 {
        self.heads as f64 * self.head_dim as f64
    }

    /// One attention block's weights for a layer with `kv` K/V heads.
    fn attention_params(&self, kv: f64) -> f64 {
        let h = self.hidden as f64;
        let q = self.q_width();
        let kvw = kv * self.head_dim as f64;
        let a = &self.arch;
        let mut p = h * q + 2.0 * h * kvw + q * h;
        if a.qkv_bias {
            p += q + 2.0 * kvw;
        }
        if a.o_bias {
            p += h;
        }
        p + a.attention_extra
    }

    /// One latent-attention block (DeepSeek-V3's MLA): query down/up projections (or a direct
    /// one), the joint K/V down-projection with its rotary part, the K/V up-projection, the
    /// output projection, the two latent norms, and DeepSeek sparse attention's indexer.
    fn latent_attention_params(&self) -> f64 {
        let Some(m) = self.plan.mla else { return 0.0 };
        let h = self.hidden as f64;
        let heads = self.heads as f64;
        let qk = (m.qk_nope_head_dim + m.qk_rope_head_dim) as f64;
        let q = match m.q_lora_rank {
            Some(r) => h * r as f64 + r as f64 + r as f64 * heads * qk,
            None => h * heads * qk,
        };
        let kv_lora = m.kv_lora_rank as f64;
        let kv = h * (kv_lora + m.qk_rope_head_dim as f64)
            + kv_lora
            + kv_lora * heads * (m.qk_nope_head_dim + m.v_head_dim) as f64;
        let o = heads * m.v_head_dim as f64 * h;
        let indexer = match (m.indexer, m.q_lora_rank) {
            (Some((ih, id)), Some(r)) => {
                let (ih, id) = (ih as f64, id as f64);
                r as f64 * ih * id + h * id + 2.0 * id + h * ih
            }
            _ => 0.0,
        };
        q + kv + o + indexer
    }

    /// One Gated DeltaNet block (Qwen3-Next / Qwen3.5): q/k/v/z and b/a input projections, the
    /// causal convolution over q, k, v, the per-head decay and step parameters, the gated
    /// norm and the output projection.
    fn linear_attention_params(&self) -> f64 {
        let Some(l) = self.plan.linear else {
            return 0.0;
        };
        let h = self.hidden as f64;
        let key = (l.key_heads * l.key_head_dim) as f64;
        let value = (l.value_heads * l.value_head_dim) as f64;
        let nv = l.value_heads as f64;
        h * (2.0 * key + 2.0 * value)
            + h * 2.0 * nv
            + (2.0 * key + value) * l.conv_kernel as f64
            + 2.0 * nv
            + l.value_head_dim as f64
            + value * h
    }

    /// One Mamba-2 block (Nemotron-H): the input projection (x, z, B, C, dt), the causal
    /// convolution over x, B, C, the per-head A, D and dt bias, the gated norm and the output
    /// projection.
    fn mamba_params(&self) -> f64 {
        let Some(m) = self.plan.mamba else { return 0.0 };
        let h = self.hidden as f64;
        let inner = (m.heads * m.head_dim) as f64;
        let bc = 2.0 * (m.groups * m.state_size) as f64;
        let heads = m.heads as f64;
        let in_proj = 2.0 * inner + bc + heads;
        let conv = inner + bc;
        h * in_proj
            + if m.proj_bias { in_proj + h } else { 0.0 }
            + conv * m.conv_kernel as f64
            + if m.conv_bias { conv } else { 0.0 }
            + 3.0 * heads
            + inner
            + inner * h
    }

    /// One MLP of width `width` on the hidden state.
    fn mlp_of(&self, width: u32, gated: bool, bias: bool) -> f64 {
        Self::mlp_on(self.hidden, width, gated, bias)
    }

    /// One MLP of width `width` whose input and output are `input` wide.
    fn mlp_on(input: u32, width: u32, gated: bool, bias: bool) -> f64 {
        let h = input as f64;
        let i = width as f64;
        let mats = if gated { 3.0 } else { 2.0 };
        let mut p = mats * h * i;
        if bias {
            p += if gated { 2.0 * i + h } else { i + h };
        }
        p
    }

    /// Layer `i`'s parameters by part, counting `experts_counted` routed experts per MoE layer.
    fn layer_params(&self, i: usize, experts_counted: f64) -> LayerParams {
        let layer = self.plan.layers[i];
        let h = self.hidden as f64;
        let mixer = match layer.mixer {
            Mixer::Attention | Mixer::SlidingAttention { .. } => {
                self.attention_params(self.arch.kv_per_layer[i] as f64)
            }
            Mixer::Latent => self.latent_attention_params(),
            Mixer::LinearAttention => self.linear_attention_params(),
            Mixer::Mamba => self.mamba_params(),
            Mixer::None => 0.0,
        };
        let mut p = LayerParams {
            mixer,
            norms: if self.plan.norm_per_sublayer {
                h * ((layer.mixer != Mixer::None) as u8 + (layer.ffn != Ffn::None) as u8) as f64
            } else {
                self.arch.norm_per_layer
            },
            ..LayerParams::default()
        };
        match layer.ffn {
            Ffn::Dense => {
                p.dense = match self.plan.dense_widths.get(i) {
                    Some(&w) => self.mlp_of(w, self.gated_mlp, self.arch.mlp_bias),
                    None => self.mlp_params(),
                }
            }
            Ffn::Moe => {
                let Some(m) = self.plan.moe else { return p };
                p.experts = self.expert_params().0 * experts_counted;
                p.router =
                    h * m.experts as f64 + if m.router_bias { m.experts as f64 } else { 0.0 };
                // Latent MoE: the projections into and out of the experts' width.
                p.router += m.latent.map_or(0.0, |l| 2.0 * h * l as f64);
                if m.shared_intermediate > 0 {
                    p.shared = self.mlp_of(m.shared_intermediate, self.plan.gated, false)
                        + if m.shared_gate { h } else { 0.0 };
                }
            }
            Ffn::None => {}
        }
        p
    }

    fn layer_total(p: LayerParams) -> f64 {
        p.mixer + (p.dense + p.experts + p.router + p.shared) + p.norms
    }

    /// One dense MLP's weights (width `intermediate`).
    fn mlp_params(&self) -> f64 {
        self.mlp_of(self.intermediate, self.gated_mlp, self.arch.mlp_bias)
    }

    /// Input embedding table(s): tokens plus any learned positions.
    fn input_embedding_params(&self) -> f64 {
        (self.vocab as f64 + self.arch.position_rows as f64) * self.hidden as f64
    }

    /// The LM head's own weights (0 when tied to the input embedding).
    fn lm_head_params(&self) -> f64 {
        let v = self.vocab as f64;
        let mut p = if self.tied_embeddings {
            0.0
        } else {
            v * self.hidden as f64
        };
        if self.arch.lm_head_bias {
            p += v;
        }
        p
    }

    /// Total parameters, derived from the config.
    ///
    /// Decoder-only: embeddings (+ learned positions for GPT-2/OPT/BigCode) + per layer
    /// [q/o at full width, k/v at `kv_heads x head_dim`, biases where the architecture has
    /// them, an MLP per expert (3 matrices gated, 2 plain) plus the router for MoE, the
    /// block's norms] + final norm + an untied LM head. T5: shared embedding, encoder blocks
    /// (self-attention, MLP, 2 RMSNorms), decoder blocks (self- and cross-attention, MLP,
    /// 3 RMSNorms), one relative-position bias table (buckets x heads) per stack, two final
    /// norms, and the LM head when untied.
    pub fn params_total(&self) -> Params {
        Params(self.count_params(self.experts as f64))
    }

    /// Parameters a single token runs through: for mixture-of-experts only the
    /// `experts_per_token` routed experts count (Mixtral-8x7B: 12.9B of 46.7B); for dense
    /// models this equals [`LlmSpec::params_total`].
    pub fn params_active(&self) -> Params {
        Params(self.count_params(self.experts_per_token as f64))
    }

    fn count_params(&self, experts_counted: f64) -> f64 {
        let h = self.hidden as f64;
        let a = &self.arch;
        if a.family == Family::T5 {
            let attn = 4.0 * h * self.q_width();
            let mlp = self.mlp_params();
            let enc = self.encoder_layers as f64 * (attn + mlp + 2.0 * h);
            let dec = self.decoder_layers as f64 * (2.0 * attn + mlp + 3.0 * h);
            let rel = 2.0 * a.rel_buckets as f64 * self.heads as f64;
            return self.vocab as f64 * h + enc + dec + rel + 2.0 * h + self.lm_head_params();
        }
        // A layer's count depends only on its kind, its K/V heads and its MLP width: runs of
        // identical layers (58 MoE layers of DeepSeek-V3) are counted once and repeated, in
        // the same order, so the sum is the same to the bit. Why: the physics model asks for
        // this several times per prediction, and a recommend call makes thousands.
        // (the layer, its K/V heads, its MLP width) and its count.
        type Kind = (Layer, Option<u32>, Option<u32>);
        let mut last: Option<(Kind, f64)> = None;
        let layers: f64 = (0..self.plan.layers.len())
            .map(|i| {
                let key = (
                    self.plan.layers[i],
                    self.arch.kv_per_layer.get(i).copied(),
                    self.plan.dense_widths.get(i).copied(),
                );
                match last {
                    Some((k, total)) if k == key => total,
                    _ => {
                        let total = Self::layer_total(self.layer_params(i, experts_counted));
                        last = Some((key, total));
                        total
                    }
                }
            })
            .sum();
        self.input_embedding_params() + a.embed_proj + layers + a.norm_extra + self.lm_head_params()
    }

    /// Parameters of the multi-token-prediction modules (`num_nextn_predict_layers`), kept out
    /// of [`LlmSpec::params_total`]: the published counts of DeepSeek-V3 (671B) and its kin
    /// exclude them (the Hub's 685B includes DeepSeek-V3's 14B MTP module), and serving
    /// without speculative decoding never loads them. Each module is one more decoder layer
    /// (full attention, the model's last MLP kind) plus two norms, the 2h x h projection that
    /// joins the hidden state and the next token's embedding, and a final norm.
    pub fn params_mtp(&self) -> Params {
        let Some(last) = self.plan.layers.len().checked_sub(1) else {
            return Params(0.0);
        };
        let h = self.hidden as f64;
        let layer = self.layer_params(last, self.experts as f64);
        let mixer = match self.plan.mla {
            Some(_) => self.latent_attention_params(),
            None => self.attention_params(self.kv_heads),
        };
        let module = mixer
            + layer.dense
            + layer.experts
            + layer.router
            + layer.shared
            + self.arch.norm_per_layer
            + 3.0 * h
            + 2.0 * h * h;
        Params(self.plan.mtp_layers as f64 * module)
    }

    /// Bytes of weights stored at `dtype`.
    pub fn weight_bytes(&self, dtype: Dtype) -> Bytes {
        Bytes(self.params_total().0 * dtype.bytes())
    }

    /// Bytes of weights stored in the served format `q` (scales included), every weight in it.
    pub fn weight_bytes_as(&self, q: Quantization) -> Bytes {
        Bytes(self.params_total().0 * q.bytes_per_weight())
    }

    /// Bytes of the published checkpoint's weights: each layer part in the format its files
    /// give it (modules the checkpoint leaves unquantized, the embeddings and the norms at the
    /// published 16-bit `dtype`). Equals `weight_bytes(dtype)` for an unquantized checkpoint.
    pub fn checkpoint_weight_bytes(&self) -> Bytes {
        let Some(c) = &self.checkpoint else {
            return self.weight_bytes(self.dtype);
        };
        let wide = self.dtype.bytes();
        let at = |q: Option<Quantization>| q.map_or(wide, |q| q.bytes_per_weight());
        let mut bytes = 0.0;
        for i in 0..self.plan.layers.len() {
            let p = self.layer_params(i, self.experts as f64);
            bytes += p.mixer * at(c.format_of(i, Part::Mixer))
                + p.dense * at(c.format_of(i, Part::DenseMlp))
                + p.experts * at(c.format_of(i, Part::Experts))
                + p.shared * at(c.format_of(i, Part::SharedExperts))
                + p.router * at(c.format_of(i, Part::Router))
                + p.norms * wide;
        }
        let head = self.lm_head_params();
        let head_q = if c.lm_head_unquantized {
            None
        } else {
            Some(c.weights)
        };
        bytes += (self.input_embedding_params() + self.arch.embed_proj + self.arch.norm_extra)
            * wide
            + head * at(head_q);
        Bytes(bytes)
    }

    /// The KV-cache dtype the checkpoint was calibrated for, if its files give one.
    pub fn checkpoint_kv_cache_dtype(&self) -> Option<Dtype> {
        self.checkpoint.as_ref().and_then(|c| c.kv_cache)
    }

    /// KV-cache bytes one token of context adds at `dtype`, over the layers whose cache grows
    /// with the context: full attention
    /// `2 (K and V) x sum over layers of kv_heads x head_dim x bytes` (Llama-2-7B at fp16:
    /// 2 x 32 x 32 x 128 x 2 = 524,288), and latent attention `(kv_lora_rank +
    /// qk_rope_head_dim) x bytes` per layer (DeepSeek-V3 in bf16: 61 x 576 x 2 = 70,272), plus
    /// the sparse-attention indexer's key where there is one. Sliding-window layers (which
    /// stop growing at their window) and linear-attention and Mamba layers (a fixed state) are
    /// in [`LlmSpec::kv_cache_bytes`] and [`LlmSpec::state_bytes_per_sequence`]. For
    /// encoder-decoder models this is the decoder's self-attention cache per generated token;
    /// the cross-attention cache (per input token, computed once) is not included.
    pub fn kv_cache_bytes_per_token(&self, dtype: Dtype) -> Bytes {
        let kv: f64 = self
            .plan
            .layers
            .iter()
            .zip(&self.arch.kv_per_layer)
            .filter(|(l, _)| l.mixer == Mixer::Attention)
            .map(|(_, &k)| k as f64)
            .sum();
        Bytes(
            2.0 * kv * self.head_dim as f64 * dtype.bytes()
                + self.latent_kv_elements() * dtype.bytes(),
        )
    }

    /// KV-cache bytes per token at `dtype`, by layer kind: what full-attention layers add
    /// (`full`), what latent-attention layers add (`latent`, indexer included), and what the
    /// sliding-window layers add per token until their window fills (`sliding`, with the
    /// largest window). The first two sum to [`LlmSpec::kv_cache_bytes_per_token`].
    pub fn kv_cache_bytes_by_kind(&self, dtype: Dtype) -> KvBytesByKind {
        let mut full = 0.0;
        let mut sliding = 0.0;
        let mut window = 0;
        for (l, &k) in self.plan.layers.iter().zip(&self.arch.kv_per_layer) {
            let per_layer = 2.0 * k as f64 * self.head_dim as f64 * dtype.bytes();
            match l.mixer {
                Mixer::Attention => full += per_layer,
                Mixer::SlidingAttention { window: w } => {
                    sliding += per_layer;
                    window = window.max(w);
                }
                _ => {}
            }
        }
        KvBytesByKind {
            full: Bytes(full),
            latent: Bytes(self.latent_kv_elements() * dtype.bytes()),
            sliding: Bytes(sliding),
            sliding_window: window,
        }
    }

    /// One routed expert's MLP weights (0 for a dense model): what each distinct expert a
    /// decode step touches adds to the bytes it streams.
    pub fn expert_params(&self) -> Params {
        match self.plan.moe {
            Some(m) => Params(Self::mlp_on(
                m.latent.unwrap_or(self.hidden),
                m.expert_intermediate,
                self.plan.gated,
                m.expert_bias,
            )),
            None => Params(0.0),
        }
    }

    /// Layers whose MLP routes through experts.
    pub fn moe_layers(&self) -> usize {
        self.plan
            .layers
            .iter()
            .filter(|l| l.ffn == Ffn::Moe)
            .count()
    }

    /// Elements latent attention caches per token, over all its layers.
    fn latent_kv_elements(&self) -> f64 {
        match self.plan.mla {
            Some(m) => {
                let per_layer = (m.kv_lora_rank + m.qk_rope_head_dim) as f64
                    + m.indexer.map_or(0.0, |(_, d)| d as f64);
                per_layer * self.plan.count(|m| *m == Mixer::Latent) as f64
            }
            None => 0.0,
        }
    }

    /// KV-cache bytes of one sequence of `tokens` tokens at `dtype`: the growing layers
    /// ([`LlmSpec::kv_cache_bytes_per_token`]) for every token, each sliding-window layer for
    /// at most its window, and the fixed linear-attention and Mamba state.
    pub fn kv_cache_bytes(&self, dtype: Dtype, tokens: u64) -> Bytes {
        let sliding: f64 = self
            .plan
            .layers
            .iter()
            .zip(&self.arch.kv_per_layer)
            .map(|(l, &k)| match l.mixer {
                Mixer::SlidingAttention { window } => {
                    2.0 * k as f64 * self.head_dim as f64 * tokens.min(window as u64) as f64
                }
                _ => 0.0,
            })
            .sum();
        Bytes(
            self.kv_cache_bytes_per_token(dtype).0 * tokens as f64
                + sliding * dtype.bytes()
                + self.state_bytes_per_sequence(dtype).0,
        )
    }

    /// The fixed state one sequence holds in linear-attention and Mamba layers, whatever its
    /// length: per Gated DeltaNet layer a `value_heads x key_head_dim x value_head_dim`
    /// recurrent state plus the convolution's last `kernel - 1` inputs; per Mamba-2 layer
    /// `heads x head_dim x state_size` plus its convolution window. The recurrent state is
    /// kept at the config's `mamba_ssm_dtype` / `mamba_ssm_cache_dtype` where it names one
    /// (fp32 for Qwen3.5 and Nemotron 3), else at `dtype`.
    pub fn state_bytes_per_sequence(&self, dtype: Dtype) -> Bytes {
        let ssm = self.arch.ssm_dtype.unwrap_or(dtype).bytes();
        let mut b = 0.0;
        if let Some(l) = self.plan.linear {
            let n = self.plan.count(|m| *m == Mixer::LinearAttention) as f64;
            let key = (l.key_heads * l.key_head_dim) as f64;
            let value = (l.value_heads * l.value_head_dim) as f64;
            let recurrent = (l.value_heads * l.key_head_dim * l.value_head_dim) as f64;
            let conv = (2.0 * key + value) * (l.conv_kernel.saturating_sub(1)) as f64;
            b += n * (recurrent * ssm + conv * dtype.bytes());
        }
        if let Some(m) = self.plan.mamba {
            let n = self.plan.count(|k| *k == Mixer::Mamba) as f64;
            let inner = (m.heads * m.head_dim) as f64;
            let recurrent = inner * m.state_size as f64;
            let conv = (inner + 2.0 * (m.groups * m.state_size) as f64)
                * (m.conv_kernel.saturating_sub(1)) as f64;
            b += n * (recurrent * ssm + conv * dtype.bytes());
        }
        Bytes(b)
    }

    /// Forward-pass FLOPs for one token attending to `context` earlier tokens.
    ///
    /// `2 x (active matmul weights) + 4 x layers x context x heads x head_dim`. The first term
    /// is one multiply-add per weight the token passes through: active parameters minus the
    /// embedding lookup tables (a gather, not a matmul) plus the LM-head projection (a matmul
    /// even when tied). The second is QK^T and attention x V, each `2 x context x heads x
    /// head_dim` per layer. For T5 the weight term counts encoder and decoder together (an
    /// upper bound for a decoder token) and the attention term the decoder's self-attention.
    pub fn flops_per_token(&self, context: u64) -> Flops {
        let lm_head_matmul = self.vocab as f64 * self.hidden as f64;
        let weights = self.params_active().0 - self.input_embedding_params()
            + if self.tied_embeddings {
                lm_head_matmul
            } else {
                0.0
            };
        let full = self.plan.count(|m| *m == Mixer::Attention) as f64;
        let mut attention = 4.0 * full * context as f64 * self.q_width();
        for l in &self.plan.layers {
            attention += match l.mixer {
                Mixer::SlidingAttention { window } => {
                    4.0 * context.min(window as u64) as f64 * self.q_width()
                }
                _ => 0.0,
            };
        }
        if let Some(m) = self.plan.mla {
            // Scores over qk_nope + qk_rope and the weighted sum over v_head_dim, per head.
            let per_layer = 2.0
                * context as f64
                * self.heads as f64
                * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) as f64;
            attention += per_layer * self.plan.count(|k| *k == Mixer::Latent) as f64;
        }
        // A recurrent layer reads and updates its fixed state once per token.
        if let Some(l) = self.plan.linear {
            attention += 4.0
                * (l.value_heads * l.key_head_dim * l.value_head_dim) as f64
                * self.plan.count(|k| *k == Mixer::LinearAttention) as f64;
        }
        if let Some(m) = self.plan.mamba {
            attention += 4.0
                * (m.heads * m.head_dim * m.state_size) as f64
                * self.plan.count(|k| *k == Mixer::Mamba) as f64;
        }
        Flops(2.0 * weights + attention)
    }

    /// Whether `tp` tensor-parallel ranks can split this model's attention: `tp` divides the
    /// query heads, and either divides the K/V heads or is a multiple of them (K/V heads are
    /// then replicated), as the engines' sharding requires.
    pub fn shards_heads(&self, tp: u32) -> bool {
        let kv = (self.kv_heads.round() as u32).max(1);
        tp >= 1 && self.heads.is_multiple_of(tp) && (kv.is_multiple_of(tp) || tp.is_multiple_of(kv))
    }

    /// MHA, GQA or MQA, from the K/V head count(s).
    pub fn attention_kind(&self) -> AttentionKind {
        let kv = &self.arch.kv_per_layer;
        if self.plan.mla.is_some() {
            AttentionKind::Mla
        } else if kv.iter().all(|&k| k == self.heads) {
            AttentionKind::Mha
        } else if kv.iter().all(|&k| k == 1) {
            AttentionKind::Mqa
        } else {
            AttentionKind::Gqa
        }
    }

    /// K/V heads of each decoder layer (constant except for DeciLM-style variable GQA).
    pub fn kv_heads_per_layer(&self) -> &[u32] {
        &self.arch.kv_per_layer
    }

    /// Whether `name` is this model's id or one of its aliases (case-insensitive).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        self.id.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::AttentionKind;
    use crate::llm::test_support::{cat, spec};

    #[test]
    fn llm_params_match_published_counts_within_2_percent() {
        let mut table = format!(
            "{:<36} {:>16} {:>16} {:>8}\n",
            "model", "computed", "published", "error"
        );
        let mut bad = Vec::new();
        for e in cat().entries() {
            let computed = e.params_total().0;
            let Some(published) = e.published_params else {
                table += &format!("{:<36} {:>16.0} {:>16} {:>8}\n", e.id, computed, "-", "-");
                continue;
            };
            let err = (computed - published.0) / published.0;
            table += &format!(
                "{:<36} {:>16.0} {:>16.0} {:>7.2}%\n",
                e.id,
                computed,
                published.0,
                err * 100.0
            );
            if err.abs() > 0.02 {
                bad.push(e.id.clone());
            }
        }
        println!("{table}");
        assert!(bad.is_empty(), "off by more than 2%: {bad:?}\n{table}");
    }

    #[test]
    fn llm_moe_counts_only_routed_experts_as_active() {
        let m = spec("mixtral-8x7b");
        assert_eq!((m.experts, m.experts_per_token), (8, 2));
        let (total, active) = (m.params_total().billions(), m.params_active().billions());
        assert!(active < total);
        assert!(
            (active - 12.9).abs() < 0.2,
            "Mixtral-8x7B active {active}B, expected ~12.9B"
        );
        let big = spec("mixtral-8x22b");
        assert!(
            (big.params_active().billions() - 39.0).abs() < 1.0,
            "{}",
            big.params_active()
        );
        let dense = spec("llama-2-7b");
        assert_eq!(dense.params_active(), dense.params_total());
    }

    #[test]
    fn llm_kv_cache_bytes_per_token() {
        assert_eq!(
            spec("llama-2-7b").kv_cache_bytes_per_token(Dtype::F16),
            Bytes(524_288.0)
        );
        // GQA: Llama-3-8B keeps 8 of 32 heads.
        assert_eq!(
            spec("llama-3-8b").kv_cache_bytes_per_token(Dtype::F16),
            Bytes(131_072.0)
        );
        // MQA: StarCoder keeps one 128-wide head per layer.
        assert_eq!(
            spec("starcoder").kv_cache_bytes_per_token(Dtype::F16),
            Bytes(2.0 * 40.0 * 128.0 * 2.0)
        );
        // T5: decoder self-attention only.
        let t5 = spec("flan-t5-xl");
        assert_eq!(
            t5.kv_cache_bytes_per_token(Dtype::F32),
            Bytes(2.0 * 24.0 * 32.0 * 64.0 * 4.0)
        );
    }

    #[test]
    fn llm_weights_flops_and_dtypes_derive_from_the_config() {
        let m = spec("mistral-7b");
        assert_eq!(m.dtype, Dtype::Bf16);
        assert_eq!(m.weight_bytes(Dtype::F16), Bytes(m.params_total().0 * 2.0));
        let f0 = m.flops_per_token(0).0;
        // ~2 x non-embedding params (+ LM head): 2 x (7.24B - 0.13B).
        assert!((f0 / 1e9 - 14.2).abs() < 0.2, "{f0}");
        let f4k = m.flops_per_token(4096).0;
        assert_eq!(f4k - f0, 4.0 * 32.0 * 4096.0 * 4096.0);
        // Active, not total, parameters drive MoE FLOPs.
        let mx = spec("mixtral-8x7b");
        assert!(mx.flops_per_token(0).0 < 2.0 * mx.params_active().0);
        assert_eq!(spec("llama-2-7b").dtype, Dtype::F16);
        assert_eq!(spec("bloom").dtype, Dtype::F16); // no torch_dtype: the default
        let t5 = spec("flan-t5-xl");
        assert!(t5.encoder_decoder && t5.gated_mlp);
        assert_eq!((t5.encoder_layers, t5.decoder_layers), (24, 24));
        assert_eq!(spec("gpt2").max_positions, Some(1024));
    }

    #[test]
    fn llm_mla_caches_one_latent_per_layer() {
        let v3 = spec("deepseek-ai/DeepSeek-V3");
        assert_eq!(v3.attention_kind(), AttentionKind::Mla);
        let mla = v3.plan.mla.unwrap();
        assert_eq!((mla.kv_lora_rank, mla.qk_rope_head_dim), (512, 64));
        // 61 layers x (512 + 64) x 2 bytes, not 2 x 128 K/V heads x 128 x 2 per layer.
        assert_eq!(
            v3.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(61.0 * 576.0 * 2.0)
        );
        assert_eq!(v3.kv_cache_bytes_per_token(Dtype::Bf16), Bytes(70_272.0));
        assert_eq!(v3.kv_cache_bytes_per_token(Dtype::Fp8), Bytes(35_136.0));
        // DeepSeek-V3.2's indexer caches one more 128-wide key per token and layer.
        let v32 = spec("deepseek-ai/DeepSeek-V3.2");
        assert_eq!(
            v32.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(61.0 * (576.0 + 128.0) * 2.0)
        );
    }

    #[test]
    fn llm_moe_active_params_follow_routed_and_shared_experts() {
        let v3 = spec("deepseek-v3");
        let moe = v3.plan.moe.unwrap();
        assert_eq!(
            (moe.experts, moe.experts_per_token, moe.expert_intermediate),
            (256, 8, 2048)
        );
        assert_eq!(moe.shared_intermediate, 2048);
        // first_k_dense_replace = 3: three dense layers of width 18432, 58 MoE layers.
        let dense = v3
            .plan
            .layers
            .iter()
            .filter(|l| l.ffn == Ffn::Dense)
            .count();
        assert_eq!((dense, v3.plan.dense_intermediate), (3, 18432));
        let active = v3.params_active().billions();
        assert!((active - 37.0).abs() < 1.0, "DeepSeek-V3 active {active}B");
        // The MTP module is counted apart, and only apart.
        let mtp = v3.params_mtp().billions();
        assert!((mtp - 11.6).abs() < 0.5, "DeepSeek-V3 MTP {mtp}B");
        assert!((v3.params_total().billions() - 671.0).abs() < 2.0);
        let q = spec("Qwen/Qwen3-235B-A22B");
        let active = q.params_active().billions();
        assert!(
            (active - 22.0).abs() < 0.5,
            "Qwen3-235B-A22B active {active}B"
        );
        assert!(q.plan.layers.iter().all(|l| l.ffn == Ffn::Moe));
        // Latent MoE (Nemotron 3 Super): 512 experts on a 1024-wide projection; the total and
        // active counts land on the ones its name states (120B, A12B).
        let sup = spec("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8");
        assert_eq!(sup.plan.moe.unwrap().latent, Some(1024));
        assert_eq!(
            sup.expert_params(),
            Params(2.0 * 1024.0 * 2688.0),
            "relu2 experts: up and down on the latent width"
        );
        let (total, active) = (
            sup.params_total().billions(),
            sup.params_active().billions(),
        );
        assert!(
            (total - 120.0).abs() < 2.4 && (active - 12.0).abs() < 1.0,
            "{total} {active}"
        );
        // FLOPs follow the active parameters, not the total.
        assert!(q.flops_per_token(0).0 < 2.1 * q.params_active().0);
    }

    #[test]
    fn llm_sliding_and_recurrent_layers_do_not_grow_with_the_context() {
        let oss = spec("openai/gpt-oss-120b");
        let sliding = oss
            .plan
            .layers
            .iter()
            .filter(|l| matches!(l.mixer, Mixer::SlidingAttention { window: 128 }))
            .count();
        assert_eq!(sliding, 18);
        // Per token: the 18 full-attention layers, 8 K/V heads of 64.
        let per_token = 2.0 * 18.0 * 8.0 * 64.0 * 2.0;
        assert_eq!(oss.kv_cache_bytes_per_token(Dtype::Bf16), Bytes(per_token));
        // A 1,000-token sequence: every full layer holds 1,000, every sliding layer 128.
        assert_eq!(
            oss.kv_cache_bytes(Dtype::Bf16, 1000),
            Bytes(per_token * 1000.0 + 2.0 * 18.0 * 8.0 * 64.0 * 128.0 * 2.0)
        );
        let kinds = oss.kv_cache_bytes_by_kind(Dtype::Bf16);
        assert_eq!((kinds.full, kinds.latent), (Bytes(per_token), Bytes(0.0)));
        assert_eq!(
            (kinds.sliding, kinds.sliding_window),
            (Bytes(per_token), 128)
        );
        // One gpt-oss-120b expert: gate/up (2 x 2880 x 2880) and down, with their biases.
        assert_eq!(
            oss.expert_params(),
            Params(3.0 * 2880.0 * 2880.0 + 2.0 * 2880.0 + 2880.0)
        );
        assert_eq!(oss.moe_layers(), 36);
        // Llama 4: three of four layers attend within 8,192-token chunks, every fourth
        // globally; Maverick routes every second layer through 128 experts plus a shared one.
        let scout = spec("meta-llama/Llama-4-Scout-17B-16E-Instruct");
        let chunked = scout
            .plan
            .layers
            .iter()
            .filter(|l| l.mixer == Mixer::SlidingAttention { window: 8192 })
            .count();
        assert_eq!(chunked, 36);
        assert_eq!(
            scout.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(2.0 * 12.0 * 8.0 * 128.0 * 2.0)
        );
        let maverick = spec("meta-llama/Llama-4-Maverick-17B-128E-Instruct");
        assert_eq!(maverick.moe_layers(), 24);
        assert_eq!(maverick.plan.dense_intermediate, 16384);
        assert!((maverick.params_active().billions() - 17.0).abs() < 0.5);
        // Llama-Nemotron-Super-49B: NAS blocks skip attention in 31 of 80 layers and give
        // each MLP its own width (ffn_mult 5.25 on 8192: 2 x 5.25 x 8192 / 3 = 28672).
        let nas = spec("nvidia/Llama-3_3-Nemotron-Super-49B-v1");
        let attending = nas.plan.count(|m| *m == Mixer::Attention) as f64;
        assert_eq!(attending, 49.0);
        assert_eq!(nas.plan.dense_widths.iter().max(), Some(&28672));
        assert_eq!(
            nas.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(2.0 * attending * 8.0 * 128.0 * 2.0)
        );
        // Qwen3.5: 15 of 60 layers attend; the other 45 keep a fixed Gated DeltaNet state.
        let q = spec("Qwen/Qwen3.5-397B-A17B");
        assert_eq!(q.plan.count(|m| *m == Mixer::LinearAttention), 45);
        assert_eq!(
            q.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(2.0 * 15.0 * 2.0 * 256.0 * 2.0)
        );
        let state = q.state_bytes_per_sequence(Dtype::Bf16).0;
        assert!(state > 0.0);
        let grow = |n: u64| q.kv_cache_bytes(Dtype::Bf16, n).0;
        assert_eq!(
            grow(2000) - grow(1000),
            1000.0 * q.kv_cache_bytes_per_token(Dtype::Bf16).0
        );
        // Nemotron-H: Mamba-2 layers hold state; only the attention layers cache K/V.
        let h = spec("nvidia/Nemotron-H-56B-Base-8K");
        let attention = h.plan.count(|m| *m == Mixer::Attention) as f64;
        assert_eq!(attention, 10.0);
        assert_eq!(
            h.kv_cache_bytes_per_token(Dtype::Bf16),
            Bytes(2.0 * attention * 8.0 * 128.0 * 2.0)
        );
        assert!(h.state_bytes_per_sequence(Dtype::Bf16).0 > 0.0);
    }

    #[test]
    fn llm_quantized_checkpoints_weigh_what_their_formats_store() {
        let v3 = spec("deepseek-ai/DeepSeek-V3");
        let c = v3.checkpoint.as_ref().unwrap();
        assert_eq!(
            (c.weights, c.read_from),
            (Quantization::Fp8Block, "config.json")
        );
        let nv = spec("nvidia/DeepSeek-V3.1-NVFP4");
        let c = nv.checkpoint.as_ref().unwrap();
        assert_eq!(
            (c.weights, c.kv_cache, c.read_from),
            (
                Quantization::Nvfp4,
                Some(Dtype::Fp8),
                "hf_quant_config.json"
            )
        );
        assert_eq!(nv.checkpoint_kv_cache_dtype(), Some(Dtype::Fp8));
        // Experts in fp4, attention and the LM head in bf16: between all-fp4 and all-fp8.
        let bytes = nv.checkpoint_weight_bytes().0;
        assert!(bytes > nv.weight_bytes_as(Quantization::Nvfp4).0, "{bytes}");
        assert!(bytes < v3.checkpoint_weight_bytes().0, "{bytes}");
        assert!(v3.checkpoint_weight_bytes().0 > v3.weight_bytes_as(Quantization::Fp8Block).0);
        // gpt-oss keeps attention, router, embedding and LM head out of mxfp4.
        let oss = spec("openai/gpt-oss-120b");
        let c = oss.checkpoint.as_ref().unwrap();
        assert_eq!(c.weights, Quantization::Mxfp4);
        assert!(c.lm_head_unquantized);
        assert_eq!(c.format_of(0, Part::Mixer), None);
        assert_eq!(c.format_of(0, Part::Experts), Some(Quantization::Mxfp4));
        // An unquantized checkpoint weighs its dtype.
        let m = spec("mistral-7b");
        assert_eq!(m.checkpoint_weight_bytes(), m.weight_bytes(Dtype::Bf16));
        assert!(m.checkpoint.is_none());
    }
}

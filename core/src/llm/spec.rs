//! [`LlmSpec`], the internal description of a model, and the arithmetic derived from it.
//!
//! Parameter counts, weight bytes, KV-cache bytes per token and FLOPs per token are computed
//! here from the spec's numbers and the family facts in [`Arch`] (fixed by `arch` at
//! conversion), never typed in. Keeping the formulas in one file, apart from config parsing
//! and architecture quirks, puts every number pilot derives about a model in one place to
//! check against published counts (this file's tests).

use super::arch::{Arch, Family};
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
}

impl fmt::Display for AttentionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttentionKind::Mha => "MHA",
            AttentionKind::Gqa => "GQA",
            AttentionKind::Mqa => "MQA",
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
    /// MLP width (one expert's, for mixture-of-experts).
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
    pub(super) arch: Arch,
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
        p
    }

    /// One MLP (one expert's) weights.
    fn mlp_params(&self) -> f64 {
        let h = self.hidden as f64;
        let i = self.intermediate as f64;
        let mats = if self.gated_mlp { 3.0 } else { 2.0 };
        let mut p = mats * h * i;
        if self.arch.mlp_bias {
            p += if self.gated_mlp { 2.0 * i + h } else { i + h };
        }
        p
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
        let moe = self.experts > 1;
        let mlp =
            self.mlp_params() * experts_counted + if moe { h * self.experts as f64 } else { 0.0 };
        let layers: f64 = a
            .kv_per_layer
            .iter()
            .map(|&kv| self.attention_params(kv as f64) + mlp + a.norm_per_layer)
            .sum();
        self.input_embedding_params() + a.embed_proj + layers + a.norm_extra + self.lm_head_params()
    }

    /// Bytes of weights stored at `dtype`.
    pub fn weight_bytes(&self, dtype: Dtype) -> Bytes {
        Bytes(self.params_total().0 * dtype.bytes())
    }

    /// KV-cache bytes one token occupies at `dtype`:
    /// `2 (K and V) x sum over layers of kv_heads x head_dim x bytes` (Llama-2-7B at fp16:
    /// 2 x 32 x 32 x 128 x 2 = 524,288). For encoder-decoder models this is the decoder's
    /// self-attention cache per generated token; the cross-attention cache (per input token,
    /// computed once) is not included.
    pub fn kv_cache_bytes_per_token(&self, dtype: Dtype) -> Bytes {
        let kv: f64 = self.arch.kv_per_layer.iter().map(|&k| k as f64).sum();
        Bytes(2.0 * kv * self.head_dim as f64 * dtype.bytes())
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
        let attention = 4.0 * self.layers as f64 * context as f64 * self.q_width();
        Flops(2.0 * weights + attention)
    }

    /// MHA, GQA or MQA, from the K/V head count(s).
    pub fn attention_kind(&self) -> AttentionKind {
        let kv = &self.arch.kv_per_layer;
        if kv.iter().all(|&k| k == self.heads) {
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
}

//! Architecture families: turning an [`HfConfig`] into an [`LlmSpec`].
//!
//! A `config.json` states widths and counts but not the layout they fill: whether the LM head
//! is tied, which projections carry biases, LayerNorm or RMSNorm, gated or plain MLP, learned
//! position tables, K/V head conventions (Falcon's multi-query default, DeciLM's per-layer
//! list). Those facts depend on the architecture family, and they live here, fixed once at
//! conversion into [`Arch`], so the arithmetic in `spec` reads them without knowing any
//! `model_type`. A new architecture is a new [`Family`] arm here and nothing elsewhere.

use super::checkpoint::CheckpointFormat;
use super::config::keys;
use super::layers::LayerPlan;
use super::{HfConfig, LlmSpec, ModelError};
use crate::units::Dtype;

/// Which block layout the parameter count follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// Llama and its descendants: RMSNorm, rotary, gated MLP, no position table.
    LlamaLike,
    Gpt2,
    Opt,
    Bloom,
    Falcon,
    /// GPT-J and CodeGen: one LayerNorm per block (parallel attention), LM head with bias.
    GptJ,
    GptNeox,
    GptBigCode,
    Mpt,
    T5,
}

/// Per-architecture facts the config does not spell out, fixed at conversion.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Arch {
    pub(super) family: Family,
    /// Parameters in one block's norms (all of them).
    pub(super) norm_per_layer: f64,
    /// Parameters in the final norm (plus BLOOM's embedding LayerNorm).
    pub(super) norm_extra: f64,
    pub(super) qkv_bias: bool,
    pub(super) o_bias: bool,
    pub(super) mlp_bias: bool,
    /// Rows of a learned position-embedding table (0 for rotary / ALiBi / relative).
    pub(super) position_rows: u64,
    pub(super) lm_head_bias: bool,
    /// OPT's input/output projections when `word_embed_proj_dim` != hidden.
    pub(super) embed_proj: f64,
    /// T5 relative-attention buckets (0 elsewhere).
    pub(super) rel_buckets: u64,
    /// K/V heads of each decoder layer.
    pub(super) kv_per_layer: Vec<u32>,
    /// Weights an attention block has beyond q/k/v/o and biases: Qwen3's per-head q/k norms,
    /// MiniMax's per-layer q/k norms, gpt-oss's per-head sinks, Qwen3.5's output gate.
    pub(super) attention_extra: f64,
    /// The dtype a recurrent (linear-attention / Mamba) state is kept in, where the config
    /// names one.
    pub(super) ssm_dtype: Option<Dtype>,
}

fn need(v: Option<u64>, what: &str, names: &[&str], source: &str) -> Result<u64, ModelError> {
    match v {
        Some(0) => Err(ModelError::Malformed {
            source_name: source.to_string(),
            reason: format!("{what} is 0 (read from key(s) {})", names.join(", ")),
        }),
        Some(n) => Ok(n),
        None => Err(ModelError::Malformed {
            source_name: source.to_string(),
            reason: format!("missing {what}: looked for key(s) {}", names.join(", ")),
        }),
    }
}

fn to_u32(n: u64, what: &str, source: &str) -> Result<u32, ModelError> {
    u32::try_from(n).map_err(|_| ModelError::Malformed {
        source_name: source.to_string(),
        reason: format!("{what} {n} is too large"),
    })
}

impl LlmSpec {
    /// Converts a parsed config. `id` names the model (and labels errors).
    pub fn from_hf(id: &str, cfg: &HfConfig) -> Result<LlmSpec, ModelError> {
        super::layers::refuse_unmodelled(cfg, id)?;
        let model_type = cfg
            .model_type
            .clone()
            .or_else(|| {
                // Some older repos omit model_type; the architecture class names it.
                let arch = cfg.architectures.first()?.to_ascii_lowercase();
                Some(arch.trim_end_matches("forcausallm").to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let mt = model_type.as_str();
        let family = match mt {
            "gpt2" => Family::Gpt2,
            "opt" => Family::Opt,
            "bloom" => Family::Bloom,
            "falcon" | "refinedweb" | "refinedwebmodel" | "rw" => Family::Falcon,
            "gptj" | "gpt-j" | "codegen" => Family::GptJ,
            "gpt_neox" => Family::GptNeox,
            "gpt_bigcode" => Family::GptBigCode,
            "mpt" => Family::Mpt,
            "t5" | "mt5" | "umt5" => Family::T5,
            _ if cfg.is_encoder_decoder == Some(true) => Family::T5,
            _ => Family::LlamaLike,
        };

        let hidden = need(cfg.hidden_size, "hidden size", keys::HIDDEN, id)?;
        // Later Nemotron-H exports give the layer count only as the length of their layout.
        let listed_layers = cfg
            .language_model()
            .get("layers_block_type")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.len() as u64);
        let n_layers = need(
            cfg.num_layers.or(listed_layers),
            "layer count",
            keys::LAYERS,
            id,
        )?;
        let heads = need(cfg.num_heads, "attention head count", keys::HEADS, id)?;
        let vocab = need(cfg.vocab_size, "vocabulary size", keys::VOCAB, id)?;
        let head_dim = cfg.head_dim.unwrap_or(hidden / heads);
        if head_dim == 0 {
            return Err(ModelError::Malformed {
                source_name: id.to_string(),
                reason: format!(
                    "head width is 0: hidden size {hidden} / {heads} heads, and no key(s) {}",
                    keys::HEAD_DIM.join(", ")
                ),
            });
        }

        let encoder_decoder = family == Family::T5;
        let (encoder_layers, decoder_layers) = if encoder_decoder {
            (n_layers, cfg.num_decoder_layers.unwrap_or(n_layers))
        } else {
            (0, n_layers)
        };

        // K/V heads: explicit per-layer list, explicit count, multi-query flag, else MHA.
        let kv_uniform = match (family, cfg.num_kv_heads) {
            (_, Some(kv))
                if family != Family::Falcon || cfg.new_decoder_architecture == Some(true) =>
            {
                kv
            }
            _ if cfg.multi_query == Some(true) => 1,
            // Pre-integration Falcon-7B configs say neither; its RW code is multi-query.
            (Family::Falcon, _) if cfg.new_decoder_architecture != Some(true) => {
                if cfg.multi_query == Some(false) {
                    heads
                } else {
                    1
                }
            }
            _ => heads,
        };
        let kv_per_layer: Vec<u32> = match &cfg.kv_heads_per_layer {
            Some(list) => {
                if list.len() as u64 != decoder_layers {
                    return Err(ModelError::Malformed {
                        source_name: id.to_string(),
                        reason: format!(
                            "num_key_value_heads_per_layer has {} entries but the model has {} \
                             layers",
                            list.len(),
                            decoder_layers
                        ),
                    });
                }
                list.iter()
                    .map(|&k| to_u32(k, "K/V head count", id))
                    .collect::<Result<_, _>>()?
            }
            None => vec![to_u32(kv_uniform, "K/V head count", id)?; decoder_layers as usize],
        };
        let nas = match family {
            Family::LlamaLike => super::layers::nas_blocks(cfg, id, hidden, heads, decoder_layers)?,
            _ => None,
        };
        let kv_per_layer = match &nas {
            Some(n) => n.kv_heads.clone(),
            None => kv_per_layer,
        };
        let kv_heads =
            kv_per_layer.iter().map(|&k| k as f64).sum::<f64>() / kv_per_layer.len() as f64;

        let intermediate = match family {
            Family::Mpt => (cfg.expansion_ratio.unwrap_or(4.0) * hidden as f64).round() as u64,
            // Mixture-of-experts configs without dense layers may give only the experts' width.
            Family::LlamaLike if nas.is_some() => nas
                .as_ref()
                .and_then(|n| n.widths.iter().copied().max())
                .map_or(0, u64::from),
            Family::LlamaLike => need(
                ["intermediate_size_mlp"]
                    .iter()
                    .find_map(|k| cfg.language_model().get(*k)?.as_u64())
                    .or(cfg.intermediate_size)
                    .or_else(|| {
                        cfg.language_model()
                            .get("moe_intermediate_size")
                            .and_then(serde_json::Value::as_u64)
                    }),
                "MLP (intermediate) size",
                keys::INTERMEDIATE,
                id,
            )?,
            Family::T5 => need(
                cfg.intermediate_size,
                "MLP (intermediate) size",
                keys::INTERMEDIATE,
                id,
            )?,
            // GPT-2-style configs write `n_inner: null` for the conventional 4 x hidden.
            _ => cfg.intermediate_size.unwrap_or(4 * hidden),
        };

        let plan = match (family, &nas) {
            (_, Some(n)) => LayerPlan::from_blocks(n),
            (Family::LlamaLike, None) => LayerPlan::read(
                cfg,
                id,
                to_u32(decoder_layers, "layer count", id)?,
                cfg.intermediate_size
                    .map(|i| to_u32(i, "MLP size", id))
                    .transpose()?,
            )?,
            (_, None) => LayerPlan::uniform(
                to_u32(decoder_layers, "layer count", id)?,
                to_u32(intermediate, "MLP size", id)?,
                false,
            ),
        };
        let gated_mlp = match family {
            Family::LlamaLike => plan.gated,
            Family::T5 => cfg
                .feed_forward_proj
                .as_deref()
                .is_some_and(|p| p.starts_with("gated")),
            _ => false,
        };
        let tied_embeddings = match family {
            Family::Mpt => true, // MPT has no separate LM head at all.
            _ => cfg.tie_word_embeddings.unwrap_or(matches!(
                mt,
                "gpt2"
                    | "gpt_bigcode"
                    | "opt"
                    | "bloom"
                    | "falcon"
                    | "refinedweb"
                    | "refinedwebmodel"
                    | "rw"
                    | "gemma"
                    | "gemma2"
                    | "gemma3_text"
                    | "t5"
            )),
        };

        let h = hidden as f64;
        let ln = 2.0 * h; // LayerNorm: weight + bias
        let rms = h; // RMSNorm (and bias-free LayerNorm): weight only
        let falcon_bias = cfg.bias == Some(true);
        let arch = match family {
            Family::LlamaLike => {
                let attn_bias = cfg.attention_bias == Some(true);
                let norms = if mt.starts_with("gemma2") || mt.starts_with("gemma3") {
                    4.0
                } else if mt == "nemotron_h" {
                    1.0 // one norm before each layer's single mixer or MLP
                } else {
                    2.0
                };
                let lm = cfg.language_model();
                let flag = |k: &str| lm.get(k).and_then(serde_json::Value::as_bool) == Some(true);
                let q_width = (heads * head_dim) as f64;
                let qk_norm = if mt.starts_with("qwen3") {
                    2.0 * head_dim as f64
                } else if flag("use_qk_norm")
                    && lm.get("qk_norm_type").and_then(serde_json::Value::as_str)
                        == Some("per_layer")
                {
                    q_width + kv_uniform as f64 * head_dim as f64
                } else {
                    0.0
                };
                let sinks = if mt == "gpt_oss" { heads as f64 } else { 0.0 };
                let output_gate = if flag("attn_output_gate") {
                    h * q_width
                } else {
                    0.0
                };
                let ssm_dtype = ["mamba_ssm_dtype", "mamba_ssm_cache_dtype"]
                    .iter()
                    .find_map(|k| lm.get(*k)?.as_str()?.parse::<Dtype>().ok());
                Arch {
                    family,
                    norm_per_layer: norms * rms,
                    norm_extra: rms,
                    qkv_bias: attn_bias || mt.starts_with("qwen2"),
                    o_bias: attn_bias,
                    mlp_bias: cfg.mlp_bias == Some(true),
                    position_rows: 0,
                    lm_head_bias: false,
                    embed_proj: 0.0,
                    rel_buckets: 0,
                    kv_per_layer: kv_per_layer.clone(),
                    attention_extra: qk_norm + sinks + output_gate,
                    ssm_dtype,
                }
            }
            Family::Gpt2 | Family::GptBigCode => Arch {
                family,
                norm_per_layer: 2.0 * ln,
                norm_extra: ln,
                qkv_bias: true,
                o_bias: true,
                mlp_bias: true,
                position_rows: cfg.max_positions.unwrap_or(1024),
                lm_head_bias: false,
                embed_proj: 0.0,
                rel_buckets: 0,
                kv_per_layer: kv_per_layer.clone(),
                attention_extra: 0.0,
                ssm_dtype: None,
            },
            Family::Opt => {
                let proj = cfg.word_embed_proj_dim.filter(|&d| d != hidden);
                Arch {
                    family,
                    norm_per_layer: 2.0 * ln,
                    norm_extra: ln,
                    qkv_bias: true,
                    o_bias: true,
                    mlp_bias: true,
                    // OPT's learned positions start at offset 2.
                    position_rows: cfg.max_positions.unwrap_or(2048) + 2,
                    lm_head_bias: false,
                    embed_proj: proj.map_or(0.0, |d| 2.0 * d as f64 * h),
                    rel_buckets: 0,
                    kv_per_layer: kv_per_layer.clone(),
                    attention_extra: 0.0,
                    ssm_dtype: None,
                }
            }
            Family::Bloom => Arch {
                family,
                norm_per_layer: 2.0 * ln,
                norm_extra: 2.0 * ln, // ln_f and the embedding LayerNorm
                qkv_bias: true,
                o_bias: true,
                mlp_bias: true,
                position_rows: 0, // ALiBi
                lm_head_bias: false,
                embed_proj: 0.0,
                rel_buckets: 0,
                kv_per_layer: kv_per_layer.clone(),
                attention_extra: 0.0,
                ssm_dtype: None,
            },
            Family::Falcon => {
                let norms = if cfg.new_decoder_architecture == Some(true) {
                    2.0
                } else if cfg.parallel_attn != Some(false) {
                    1.0
                } else {
                    2.0
                };
                Arch {
                    family,
                    norm_per_layer: norms * ln,
                    norm_extra: ln,
                    qkv_bias: falcon_bias,
                    o_bias: falcon_bias,
                    mlp_bias: falcon_bias,
                    position_rows: 0,
                    lm_head_bias: false,
                    embed_proj: 0.0,
                    rel_buckets: 0,
                    kv_per_layer: kv_per_layer.clone(),
                    attention_extra: 0.0,
                    ssm_dtype: None,
                }
            }
            Family::GptJ => Arch {
                family,
                norm_per_layer: ln,
                norm_extra: ln,
                qkv_bias: false,
                o_bias: false,
                mlp_bias: true,
                position_rows: 0,
                lm_head_bias: true,
                embed_proj: 0.0,
                rel_buckets: 0,
                kv_per_layer: kv_per_layer.clone(),
                attention_extra: 0.0,
                ssm_dtype: None,
            },
            Family::GptNeox => Arch {
                family,
                norm_per_layer: 2.0 * ln,
                norm_extra: ln,
                qkv_bias: true,
                o_bias: true,
                mlp_bias: true,
                position_rows: 0,
                lm_head_bias: false,
                embed_proj: 0.0,
                rel_buckets: 0,
                kv_per_layer: kv_per_layer.clone(),
                attention_extra: 0.0,
                ssm_dtype: None,
            },
            Family::Mpt => {
                let no_bias = cfg.no_bias != Some(false);
                let norm = if no_bias { rms } else { ln };
                Arch {
                    family,
                    norm_per_layer: 2.0 * norm,
                    norm_extra: norm,
                    qkv_bias: !no_bias,
                    o_bias: !no_bias,
                    mlp_bias: !no_bias,
                    position_rows: if cfg.alibi == Some(true) {
                        0
                    } else {
                        cfg.max_positions.unwrap_or(2048)
                    },
                    lm_head_bias: false,
                    embed_proj: 0.0,
                    rel_buckets: 0,
                    kv_per_layer: kv_per_layer.clone(),
                    attention_extra: 0.0,
                    ssm_dtype: None,
                }
            }
            Family::T5 => Arch {
                family,
                norm_per_layer: 0.0, // counted separately for encoder and decoder blocks
                norm_extra: 0.0,
                qkv_bias: false,
                o_bias: false,
                mlp_bias: false,
                position_rows: 0,
                lm_head_bias: false,
                embed_proj: 0.0,
                rel_buckets: cfg.relative_attention_num_buckets.unwrap_or(32),
                kv_per_layer: kv_per_layer.clone(),
                attention_extra: 0.0,
                ssm_dtype: None,
            },
        };

        let (experts, experts_per_token) = match cfg.num_experts {
            Some(e) if e > 1 => (e, cfg.experts_per_token.unwrap_or(2).min(e)),
            _ => (1, 1),
        };
        let dtype = cfg
            .torch_dtype
            .as_deref()
            .and_then(|s| s.parse::<Dtype>().ok())
            .unwrap_or(Dtype::F16);

        Ok(LlmSpec {
            id: id.to_string(),
            aliases: Vec::new(),
            model_type,
            layers: to_u32(decoder_layers, "layer count", id)?,
            decoder_layers: to_u32(decoder_layers, "layer count", id)?,
            encoder_layers: to_u32(encoder_layers, "encoder layer count", id)?,
            hidden: to_u32(hidden, "hidden size", id)?,
            heads: to_u32(heads, "head count", id)?,
            kv_heads,
            head_dim: to_u32(head_dim, "head width", id)?,
            intermediate: to_u32(intermediate, "MLP size", id)?,
            vocab: to_u32(vocab, "vocabulary size", id)?,
            max_positions: cfg.max_positions,
            experts: to_u32(experts, "expert count", id)?,
            experts_per_token: to_u32(experts_per_token, "experts per token", id)?,
            encoder_decoder,
            tied_embeddings,
            gated_mlp,
            dtype,
            published_params: None,
            params_source: None,
            config_source: None,
            checkpoint: CheckpointFormat::read(&cfg.raw, None, id)?,
            plan,
            arch,
        })
    }

    /// Parses `config.json` text into a spec named `id`.
    pub fn from_config_json(id: &str, text: &str) -> Result<LlmSpec, ModelError> {
        LlmSpec::from_config_files(id, text, None)
    }

    /// Parses `config.json` text and, where the checkpoint ships one, the
    /// `hf_quant_config.json` beside it (NVIDIA ModelOpt exports), whose weight format, KV-cache
    /// dtype and excluded modules take precedence over `config.json`'s `quantization_config`.
    pub fn from_config_files(
        id: &str,
        config: &str,
        hf_quant_config: Option<&str>,
    ) -> Result<LlmSpec, ModelError> {
        let mut spec = LlmSpec::from_hf(id, &HfConfig::from_json(config, id)?)?;
        if let Some(text) = hf_quant_config {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| ModelError::Unparsable {
                    source_name: format!("{id} hf_quant_config.json"),
                    format: "JSON",
                    source: e.into(),
                })?;
            spec.checkpoint = CheckpointFormat::read(&serde_json::Value::Null, Some(&v), id)?;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use crate::llm::AttentionKind;
    use crate::llm::test_support::spec;

    #[test]
    fn llm_attention_kinds_follow_the_configs() {
        assert_eq!(spec("llama-2-7b").attention_kind(), AttentionKind::Mha);
        assert_eq!(spec("llama-3-8b").attention_kind(), AttentionKind::Gqa);
        assert_eq!(spec("starcoder").attention_kind(), AttentionKind::Mqa);
        let falcon = spec("falcon-40b");
        assert_eq!(falcon.attention_kind(), AttentionKind::Gqa);
        assert_eq!(falcon.kv_heads, 8.0);
        let deci = spec("Deci/DeciLM-7B");
        assert_eq!(deci.attention_kind(), AttentionKind::Gqa);
        assert_eq!(deci.kv_heads_per_layer().iter().sum::<u32>(), 67);
        assert!((deci.kv_heads - 67.0 / 32.0).abs() < 1e-9);
        let g = spec("gemma-2-9b");
        assert_eq!((g.head_dim, g.tied_embeddings), (256, true));
    }
}

//! The LLM catalog: model names in, architecture numbers out.
//!
//! Every model pilot knows is a Hugging Face `config.json` under `models/<org>/<name>/`
//! (transcribed from the Hub, sources listed in `models/catalog.toml`), embedded in the
//! binary with `include_dir` so pilot works from any directory and offline. Following
//! candle-transformers, the JSON deserializes into [`HfConfig`] (which tolerates the many
//! spellings of the same key across architectures) and then converts into [`LlmSpec`], the
//! internal description every other stage uses.
//!
//! Parameter counts, weight bytes, KV-cache bytes and FLOPs are *derived* from the config,
//! never typed in: a typed-in "7B" is wrong for Llama-2-7B (6.74B) and silently stays wrong
//! when someone adds a model. The derivation is architecture-aware (tied or untied LM head,
//! learned position tables, which projections carry biases, LayerNorm vs RMSNorm, gated vs
//! plain MLPs, GQA/MQA K/V widths, mixture-of-experts, T5's encoder-decoder with relative
//! attention buckets), and the tests hold it within 2% of each model's published count.
//!
//! Names resolve in this order (see [`ModelCatalog::resolve`]): a catalog id or alias
//! (case-insensitive); a path to a `config.json` or a directory holding one; a Hub id
//! (`org/name`) fetched once from the Hub and cached; otherwise an error naming the closest
//! catalog entries.

use crate::units::{Bytes, Dtype, Flops};
use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

static MODELS_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../models");

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

/// What went wrong turning a model name into a spec. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not a catalog name, not an existing path, not a Hub id.
    #[error(
        "unknown model '{name}': it is not in pilot's catalog, not an existing path, and not a \
         Hugging Face id of the form org/name. {}Run `pilot catalog models` to list the built-in \
         models, or pass a path to a local config.json",
        closest_hint(closest)
    )]
    Unknown { name: String, closest: Vec<String> },
    /// A path that does not exist or holds no `config.json`.
    #[error(
        "model path '{}' does not exist or holds no config.json: pass a Hugging Face \
         config.json file, or a directory that contains one",
        path.display()
    )]
    NotFound { path: PathBuf },
    /// The config was found but cannot be read as a Hugging Face config.
    #[error(
        "model config '{source_name}' is not a usable Hugging Face config.json: {reason}. Fix \
         that file (or pass another one); `pilot catalog models` lists configs that work"
    )]
    Malformed { source_name: String, reason: String },
    /// A Hub id that is not in the catalog and could not be fetched.
    #[error(
        "model '{id}' is not in pilot's catalog and its config.json could not be fetched from \
         the Hugging Face Hub: {reason}. Run `pilot catalog models` to list the built-in models, \
         pass a path to a local config.json, or (for a gated or private model) set HF_TOKEN"
    )]
    Fetch { id: String, reason: String },
}

fn closest_hint(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("Closest catalog names: {}. ", closest.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// HfConfig: the Hub's config.json, as written.
// ---------------------------------------------------------------------------------------------

/// Keys that mean the same thing across architectures, in the order they are tried.
///
/// These are read by hand rather than with `#[serde(alias)]`: real configs sometimes carry two
/// spellings at once (Falcon's `n_head_kv` and `num_kv_heads`, GPT-2's `n_ctx` and
/// `n_positions`), which serde rejects as a duplicate field.
mod keys {
    pub const HIDDEN: &[&str] = &["hidden_size", "n_embd", "d_model", "dim"];
    pub const LAYERS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];
    pub const DECODER_LAYERS: &[&str] = &["num_decoder_layers"];
    pub const HEADS: &[&str] = &["num_attention_heads", "n_head", "num_heads", "n_heads"];
    pub const KV_HEADS: &[&str] = &[
        "num_key_value_heads",
        "num_kv_heads",
        "n_head_kv",
        "multi_query_group_num",
    ];
    pub const KV_HEADS_PER_LAYER: &[&str] = &["num_key_value_heads_per_layer"];
    pub const HEAD_DIM: &[&str] = &["head_dim", "d_kv"];
    pub const INTERMEDIATE: &[&str] = &[
        "intermediate_size",
        "ffn_dim",
        "d_ff",
        "n_inner",
        "ffn_hidden_size",
    ];
    pub const VOCAB: &[&str] = &["vocab_size", "padded_vocab_size", "n_vocab"];
    pub const MAX_POSITIONS: &[&str] = &[
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "seq_length",
        "max_sequence_length",
    ];
    pub const EXPERTS: &[&str] = &["num_local_experts", "num_experts", "n_routed_experts"];
    pub const EXPERTS_PER_TOKEN: &[&str] = &["num_experts_per_tok", "moe_top_k"];
    pub const DTYPE: &[&str] = &["torch_dtype", "dtype"];
}

/// A Hugging Face `config.json`, with the keys pilot needs pulled out under one spelling each
/// (see the `keys` lists for what each field is read from) and the whole document kept in
/// [`HfConfig::raw`]. Deserializes from any JSON object; missing keys stay `None` here and are
/// only an error when [`LlmSpec`] needs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct HfConfig {
    /// `model_type` (`llama`, `t5`, `gpt_bigcode`, ...), lowercased.
    pub model_type: Option<String>,
    /// `architectures`, e.g. `["LlamaForCausalLM"]`.
    pub architectures: Vec<String>,
    /// Model width: `hidden_size` / `n_embd` / `d_model` / `dim`.
    pub hidden_size: Option<u64>,
    /// Blocks: `num_hidden_layers` / `n_layer` / `num_layers` / `n_layers` (T5: the encoder's).
    pub num_layers: Option<u64>,
    /// T5's `num_decoder_layers` (defaults to `num_layers`).
    pub num_decoder_layers: Option<u64>,
    /// Query heads: `num_attention_heads` / `n_head` / `num_heads` / `n_heads`.
    pub num_heads: Option<u64>,
    /// K/V heads: `num_key_value_heads` / `num_kv_heads` / `n_head_kv` / `multi_query_group_num`.
    pub num_kv_heads: Option<u64>,
    /// DeciLM's variable GQA: `num_key_value_heads_per_layer`.
    pub kv_heads_per_layer: Option<Vec<u64>>,
    /// `multi_query` (GPT-BigCode, early Falcon): one K/V head.
    pub multi_query: Option<bool>,
    /// `head_dim` / T5's `d_kv` (defaults to hidden / heads).
    pub head_dim: Option<u64>,
    /// MLP width: `intermediate_size` / `ffn_dim` / `d_ff` / `n_inner` / `ffn_hidden_size`.
    pub intermediate_size: Option<u64>,
    /// MPT's `expansion_ratio` (MLP width = ratio x d_model).
    pub expansion_ratio: Option<f64>,
    /// `vocab_size` / `padded_vocab_size` / `n_vocab`.
    pub vocab_size: Option<u64>,
    /// Trained context: `max_position_embeddings` / `n_positions` / `max_seq_len` / ...
    pub max_positions: Option<u64>,
    /// Routed experts: `num_local_experts` / `num_experts` / `n_routed_experts`.
    pub num_experts: Option<u64>,
    /// Experts per token: `num_experts_per_tok` / `moe_top_k`.
    pub experts_per_token: Option<u64>,
    /// `tie_word_embeddings` as written (the default depends on the architecture).
    pub tie_word_embeddings: Option<bool>,
    /// `torch_dtype` / `dtype` as written.
    pub torch_dtype: Option<String>,
    /// `is_encoder_decoder`.
    pub is_encoder_decoder: Option<bool>,
    /// T5's `feed_forward_proj` (`relu`, `gated-gelu`, `gated-silu`).
    pub feed_forward_proj: Option<String>,
    /// Falcon's `bias` (biases on every linear layer).
    pub bias: Option<bool>,
    /// Llama-family `attention_bias` (biases on q/k/v/o).
    pub attention_bias: Option<bool>,
    /// Llama-family `mlp_bias`.
    pub mlp_bias: Option<bool>,
    /// MPT's `no_bias`.
    pub no_bias: Option<bool>,
    /// Falcon's `new_decoder_architecture` (two LayerNorms per block, grouped K/V).
    pub new_decoder_architecture: Option<bool>,
    /// Falcon's `parallel_attn`.
    pub parallel_attn: Option<bool>,
    /// ALiBi positions (`alibi`, or MPT's `attn_config.alibi`): no position table.
    pub alibi: Option<bool>,
    /// OPT's `word_embed_proj_dim` (a projection when it differs from the hidden size).
    pub word_embed_proj_dim: Option<u64>,
    /// T5's `relative_attention_num_buckets`.
    pub relative_attention_num_buckets: Option<u64>,
    /// The whole document as parsed.
    pub raw: Value,
}

impl TryFrom<Value> for HfConfig {
    type Error = String;

    fn try_from(v: Value) -> Result<HfConfig, String> {
        let top = v
            .as_object()
            .ok_or_else(|| format!("expected a JSON object, found {}", json_kind(&v)))?;
        // Multimodal configs (Llama 4, Gemma 3, ...) keep the language model in `text_config`.
        let obj = match top.get("text_config").and_then(Value::as_object) {
            Some(text) if !keys::HIDDEN.iter().any(|k| top.contains_key(*k)) => text,
            _ => top,
        };
        let uint = |names: &[&str]| -> Result<Option<u64>, String> {
            for name in names {
                match obj.get(*name) {
                    None | Some(Value::Null) => continue,
                    Some(x) => {
                        return match x.as_u64().or_else(|| {
                            x.as_f64()
                                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                                .map(|f| f as u64)
                        }) {
                            Some(n) => Ok(Some(n)),
                            None => Err(format!(
                                "key '{name}' should be a non-negative integer, found {x}"
                            )),
                        };
                    }
                }
            }
            Ok(None)
        };
        let boolean = |name: &str| obj.get(name).and_then(Value::as_bool);
        let string = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| obj.get(*n).and_then(Value::as_str))
                .map(str::to_string)
        };
        let kv_heads_per_layer = match obj.get(keys::KV_HEADS_PER_LAYER[0]) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|x| {
                        x.as_u64().ok_or_else(|| {
                            format!(
                                "key 'num_key_value_heads_per_layer' should hold integers, \
                                 found {x}"
                            )
                        })
                    })
                    .collect::<Result<Vec<u64>, String>>()?,
            ),
            Some(x) => {
                return Err(format!(
                    "key 'num_key_value_heads_per_layer' should be a list, found {x}"
                ));
            }
        };
        let attn_config = obj.get("attn_config").and_then(Value::as_object);
        let alibi = boolean("alibi").or_else(|| attn_config?.get("alibi")?.as_bool());
        Ok(HfConfig {
            model_type: string(&["model_type"]).map(|s| s.to_ascii_lowercase()),
            architectures: obj
                .get("architectures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            hidden_size: uint(keys::HIDDEN)?,
            num_layers: uint(keys::LAYERS)?,
            num_decoder_layers: uint(keys::DECODER_LAYERS)?,
            num_heads: uint(keys::HEADS)?,
            num_kv_heads: uint(keys::KV_HEADS)?,
            kv_heads_per_layer,
            multi_query: boolean("multi_query"),
            head_dim: uint(keys::HEAD_DIM)?,
            intermediate_size: uint(keys::INTERMEDIATE)?,
            expansion_ratio: obj.get("expansion_ratio").and_then(Value::as_f64),
            vocab_size: uint(keys::VOCAB)?,
            max_positions: uint(keys::MAX_POSITIONS)?,
            num_experts: uint(keys::EXPERTS)?,
            experts_per_token: uint(keys::EXPERTS_PER_TOKEN)?,
            tie_word_embeddings: boolean("tie_word_embeddings"),
            torch_dtype: string(keys::DTYPE),
            is_encoder_decoder: boolean("is_encoder_decoder"),
            feed_forward_proj: string(&["feed_forward_proj"]),
            bias: boolean("bias"),
            attention_bias: boolean("attention_bias"),
            mlp_bias: boolean("mlp_bias"),
            no_bias: boolean("no_bias"),
            new_decoder_architecture: boolean("new_decoder_architecture"),
            parallel_attn: boolean("parallel_attn"),
            alibi,
            word_embed_proj_dim: uint(&["word_embed_proj_dim"])?,
            relative_attention_num_buckets: uint(&["relative_attention_num_buckets"])?,
            raw: v,
        })
    }
}

impl From<HfConfig> for Value {
    fn from(c: HfConfig) -> Value {
        c.raw
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl HfConfig {
    /// Parses `config.json` text. `source_name` (a path or id) only labels errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<HfConfig, ModelError> {
        let malformed = |reason: String| ModelError::Malformed {
            source_name: source_name.to_string(),
            reason,
        };
        let v: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("not valid JSON ({e})")))?;
        HfConfig::try_from(v).map_err(malformed)
    }
}

// ---------------------------------------------------------------------------------------------
// LlmSpec: the internal description.
// ---------------------------------------------------------------------------------------------

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

/// Which block layout the parameter count follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
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
struct Arch {
    family: Family,
    /// Parameters in one block's norms (all of them).
    norm_per_layer: f64,
    /// Parameters in the final norm (plus BLOOM's embedding LayerNorm).
    norm_extra: f64,
    qkv_bias: bool,
    o_bias: bool,
    mlp_bias: bool,
    /// Rows of a learned position-embedding table (0 for rotary / ALiBi / relative).
    position_rows: u64,
    lm_head_bias: bool,
    /// OPT's input/output projections when `word_embed_proj_dim` != hidden.
    embed_proj: f64,
    /// T5 relative-attention buckets (0 elsewhere).
    rel_buckets: u64,
    /// K/V heads of each decoder layer.
    kv_per_layer: Vec<u32>,
}

/// One model, as pilot's stages see it: the architecture numbers every estimate starts from.
///
/// Built from an [`HfConfig`] (candle-style: "convert the HF config into the internal
/// config"). Head counts and widths are per layer; for encoder-decoder models `layers` is the
/// decoder's (the part that runs per generated token) and the encoder's is separate.
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
    arch: Arch,
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
        let n_layers = need(cfg.num_layers, "layer count", keys::LAYERS, id)?;
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
        let kv_heads =
            kv_per_layer.iter().map(|&k| k as f64).sum::<f64>() / kv_per_layer.len() as f64;

        let intermediate = match family {
            Family::Mpt => (cfg.expansion_ratio.unwrap_or(4.0) * hidden as f64).round() as u64,
            Family::LlamaLike | Family::T5 => need(
                cfg.intermediate_size,
                "MLP (intermediate) size",
                keys::INTERMEDIATE,
                id,
            )?,
            // GPT-2-style configs write `n_inner: null` for the conventional 4 x hidden.
            _ => cfg.intermediate_size.unwrap_or(4 * hidden),
        };

        let gated_mlp = match family {
            Family::LlamaLike => true,
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
                } else {
                    2.0
                };
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
            arch,
        })
    }

    /// Parses `config.json` text into a spec named `id`.
    pub fn from_config_json(id: &str, text: &str) -> Result<LlmSpec, ModelError> {
        LlmSpec::from_hf(id, &HfConfig::from_json(text, id)?)
    }

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

// ---------------------------------------------------------------------------------------------
// ModelCatalog
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CatalogFile {
    model: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEntry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    published_params: Option<f64>,
    params_source: Option<String>,
    config_source: Option<String>,
}

/// Where the Hub lookups of [`ModelCatalog::resolve_with`] go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL (`https://huggingface.co`; `PILOT_HF_ENDPOINT`, else `HF_ENDPOINT`).
    pub endpoint: String,
    /// Root of the config cache (`$PILOT_CACHE_DIR`, else `$XDG_CACHE_HOME/pilot/hf`, else
    /// `~/.cache/pilot/hf`); configs land at `<root>/<org>/<name>/config.json`.
    pub cache_dir: Option<PathBuf>,
    /// Bearer token for gated models (`HF_TOKEN`). Never logged or put in messages.
    pub token: Option<String>,
    /// How long one fetch may take.
    pub timeout: Duration,
}

impl HubOptions {
    /// Reads the environment variables listed on each field.
    pub fn from_env() -> HubOptions {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let cache_dir = env("PILOT_CACHE_DIR")
            .map(|d| PathBuf::from(d).join("hf"))
            .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("pilot").join("hf")))
            .or_else(|| {
                env("HOME").map(|d| PathBuf::from(d).join(".cache").join("pilot").join("hf"))
            });
        HubOptions {
            endpoint: env("PILOT_HF_ENDPOINT")
                .or_else(|| env("HF_ENDPOINT"))
                .unwrap_or_else(|| "https://huggingface.co".to_string()),
            cache_dir,
            token: env("HF_TOKEN"),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The built-in models (from `models/`, embedded at compile time) and the name resolver.
#[derive(Debug)]
pub struct ModelCatalog {
    entries: Vec<LlmSpec>,
    /// The `config.json` text of each entry, same order as `entries`.
    configs: Vec<&'static str>,
}

impl ModelCatalog {
    /// The catalog embedded in this binary. Parsed once; the embedded files are checked by
    /// this module's tests, so a failure here is a build defect and panics with the reason.
    pub fn builtin() -> &'static ModelCatalog {
        static CATALOG: OnceLock<ModelCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            ModelCatalog::from_dir(&MODELS_DIR)
                .unwrap_or_else(|e| panic!("the embedded models/ catalog is broken: {e}"))
        })
    }

    fn from_dir(dir: &'static Dir<'static>) -> Result<ModelCatalog, ModelError> {
        let toml_text = dir
            .get_file("catalog.toml")
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| ModelError::NotFound {
                path: PathBuf::from("models/catalog.toml"),
            })?;
        let file: CatalogFile = toml::from_str(toml_text).map_err(|e| ModelError::Malformed {
            source_name: "models/catalog.toml".to_string(),
            reason: e.to_string(),
        })?;
        let mut entries = Vec::with_capacity(file.model.len());
        let mut configs = Vec::with_capacity(file.model.len());
        for e in file.model {
            let path = format!("{}/config.json", e.id);
            let text = dir
                .get_file(&path)
                .and_then(|f| f.contents_utf8())
                .ok_or_else(|| ModelError::NotFound {
                    path: PathBuf::from("models").join(&path),
                })?;
            let mut spec = LlmSpec::from_config_json(&e.id, text)?;
            spec.aliases = e.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
            spec.published_params = e.published_params.map(Params);
            spec.params_source = e.params_source;
            spec.config_source = e.config_source;
            entries.push(spec);
            configs.push(text);
        }
        Ok(ModelCatalog { entries, configs })
    }

    /// Every built-in model, in catalog order.
    pub fn entries(&self) -> &[LlmSpec] {
        &self.entries
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.matches(name))
    }

    /// Resolves a model name, with Hub settings from the environment ([`HubOptions::from_env`]):
    ///
    /// 1. a catalog id or alias, case-insensitive (`llama-2-7b`, `Mistralai/Mistral-7B-v0.1`);
    /// 2. a path to a `config.json`, or to a directory holding one;
    /// 3. a Hub id `org/name`: read from the cache, else fetched from
    ///    `<endpoint>/<id>/resolve/main/config.json` and cached;
    /// 4. otherwise [`ModelError::Unknown`] with the closest catalog names.
    pub fn resolve(&self, name: &str) -> Result<LlmSpec, ModelError> {
        self.resolve_with(name, &HubOptions::from_env())
    }

    /// [`ModelCatalog::resolve`] with explicit Hub settings.
    pub fn resolve_with(&self, name: &str, hub: &HubOptions) -> Result<LlmSpec, ModelError> {
        let name = name.trim();
        if let Some(i) = self.find(name) {
            return Ok(self.entries[i].clone());
        }
        let (id, text) = self.locate(name, hub)?;
        LlmSpec::from_config_json(&id, &text)
    }

    /// The raw `config.json` text for `name` (resolved as in [`ModelCatalog::resolve`]), for
    /// consumers that parse it themselves (the embedded inference engine).
    pub fn config_json(&self, name: &str) -> Result<String, ModelError> {
        self.config_json_with(name, &HubOptions::from_env())
    }

    /// [`ModelCatalog::config_json`] with explicit Hub settings.
    pub fn config_json_with(&self, name: &str, hub: &HubOptions) -> Result<String, ModelError> {
        let name = name.trim();
        if let Some(i) = self.find(name) {
            return Ok(self.configs[i].to_string());
        }
        Ok(self.locate(name, hub)?.1)
    }

    /// Steps 2-4 of `resolve`: returns (id, config text).
    fn locate(&self, name: &str, hub: &HubOptions) -> Result<(String, String), ModelError> {
        let path = Path::new(name);
        if path.exists() {
            let file = if path.is_dir() {
                path.join("config.json")
            } else {
                path.to_path_buf()
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|_| ModelError::NotFound { path: file.clone() })?;
            return Ok((file.display().to_string(), text));
        }
        if looks_like_path(name) {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if is_hub_id(name) {
            return fetch_config(name, hub).map(|t| (name.to_string(), t));
        }
        Err(ModelError::Unknown {
            name: name.to_string(),
            closest: self.closest(name, 3),
        })
    }

    /// The `n` catalog names (ids or aliases) most similar to `name`.
    pub fn closest(&self, name: &str, n: usize) -> Vec<String> {
        let needle = name.to_ascii_lowercase();
        let mut scored: Vec<(f64, String)> = self
            .entries
            .iter()
            .flat_map(|e| std::iter::once(&e.id).chain(&e.aliases))
            .map(|cand| {
                let lc = cand.to_ascii_lowercase();
                // Compare against the bare name too, so "Llama-2-7b" finds the org-qualified id.
                let bare = lc.rsplit('/').next().unwrap_or(&lc).to_string();
                let s =
                    strsim::jaro_winkler(&needle, &lc).max(strsim::jaro_winkler(&needle, &bare));
                (s, cand.clone())
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<String> = Vec::new();
        for (_, c) in scored {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&c)) {
                out.push(c);
            }
            if out.len() == n {
                break;
            }
        }
        out
    }
}

fn looks_like_path(name: &str) -> bool {
    name.ends_with(".json")
        || name.starts_with('/')
        || name.starts_with("./")
        || name.starts_with("../")
        || name.starts_with('~')
        || name.contains('\\')
}

/// `org/name` with the characters the Hub allows.
fn is_hub_id(name: &str) -> bool {
    let mut parts = name.split('/');
    let ok = |s: Option<&str>| {
        s.is_some_and(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Reads `<cache>/<id>/config.json`, else downloads it (and caches it when it parses).
fn fetch_config(id: &str, hub: &HubOptions) -> Result<String, ModelError> {
    let cached = hub
        .cache_dir
        .as_ref()
        .map(|d| d.join(id).join("config.json"));
    if let Some(text) = cached
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        return Ok(text);
    }
    let fetch_err = |reason: String| ModelError::Fetch {
        id: id.to_string(),
        reason,
    };
    let url = format!(
        "{}/{}/resolve/main/config.json",
        hub.endpoint.trim_end_matches('/'),
        id
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(hub.timeout)
        .connect_timeout(hub.timeout)
        .user_agent(concat!("pilot/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fetch_err(format!("could not start an HTTP client ({e})")))?;
    let mut req = client.get(&url);
    if let Some(token) = &hub.token {
        req = req.bearer_auth(token);
    }
    // `without_url` keeps reqwest's message about the failure, not about our query string.
    let resp = req
        .send()
        .map_err(|e| fetch_err(format!("GET {url} failed: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        let why = match status.as_u16() {
            401 | 403 => {
                "the repository is gated or private (accept its licence on the Hub and set HF_TOKEN)"
            }
            404 => "no such repository, or it has no config.json",
            _ => "the Hub refused the request",
        };
        return Err(fetch_err(format!(
            "GET {url} returned HTTP {status}: {why}"
        )));
    }
    let text = resp.text().map_err(|e| {
        fetch_err(format!(
            "reading the response of GET {url} failed: {}",
            e.without_url()
        ))
    })?;
    // Only cache what parses, so a captive-portal page never poisons the cache.
    HfConfig::from_json(&text, id)?;
    if let Some(path) = cached {
        // Caching is best-effort: a read-only home must not turn a success into an error.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, &text));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static ModelCatalog {
        ModelCatalog::builtin()
    }

    fn spec(name: &str) -> LlmSpec {
        cat()
            .resolve(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn offline(dir: &Path) -> HubOptions {
        HubOptions {
            endpoint: "http://127.0.0.1:1".to_string(),
            cache_dir: Some(dir.to_path_buf()),
            token: None,
            timeout: Duration::from_secs(2),
        }
    }

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
    fn llm_catalog_covers_the_datasets_and_required_models() {
        for name in [
            "llama-2-7b",
            "llama-2-13b",
            "llama-2-70b",
            "llama-3-8b",
            "llama-3-70b",
            "llama-3.1-8b",
            "llama-3.1-70b",
            "llama-3.1-405b",
            "mistral-7b",
            "mixtral-8x7b",
            "mixtral-8x22b",
            "qwen2-7b",
            "qwen2-72b",
            "qwen2.5-7b",
            "qwen2.5-72b",
            "gemma-2-9b",
            "gemma-2-27b",
            "phi-3-mini",
            "falcon-40b",
            "bloom",
            "gpt-j-6b",
            "opt-6.7b",
            "gpt2",
            "flan-t5-xl",
            "google/flan-t5-xxl",
            "google/flan-ul2",
            "ibm/mpt-7b-instruct2",
            "bigscience/mt0-xxl",
            "Salesforce/codegen2-16B",
            "llama-7b",
            "llama-13b",
            "EleutherAI/gpt-neox-20b",
            "bigcode/starcoder",
            "Qwen/Qwen1.5-7B",
            "Deci/DeciLM-7B",
            "BAAI/Aquila-7B",
            "bigscience/bloom-7b1",
            "facebook/opt-6.7b",
            "huggyllama/llama-7b",
            "tiny-llama",
            "tiny-gpt2",
            "small-llama",
        ] {
            spec(name);
        }
        // Every alias is unique across the catalog.
        let mut seen = std::collections::HashSet::new();
        for e in cat().entries() {
            for n in std::iter::once(&e.id).chain(&e.aliases) {
                assert!(
                    seen.insert(n.to_ascii_lowercase()),
                    "duplicate catalog name {n}"
                );
            }
        }
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
    fn llm_aliases_resolve_case_insensitively() {
        let a = spec("MISTRAL-7B");
        assert_eq!(a.id, "mistralai/Mistral-7B-v0.1");
        assert_eq!(spec("mistralai/mistral-7b-v0.1").id, a.id);
        assert_eq!(spec("  Llama-7B ").id, "huggyllama/llama-7b");
        assert_eq!(spec("gpt2").id, "openai-community/gpt2");
        let tiny = spec("tiny-llama");
        assert_eq!(
            (tiny.hidden, tiny.layers, tiny.heads, tiny.kv_heads),
            (64, 2, 4, 2.0)
        );
        assert_eq!(tiny.dtype, Dtype::F32);
        assert!(tiny.published_params.is_none());
        let raw = cat().config_json("tiny-gpt2").unwrap();
        assert!(raw.contains("\"n_embd\": 64"), "{raw}");
    }

    #[test]
    fn llm_unknown_name_lists_close_catalog_names() {
        let err = cat().resolve("lama-2-7b").unwrap_err();
        let ModelError::Unknown { closest, .. } = &err else {
            panic!("expected Unknown, got {err}")
        };
        assert!(closest.iter().any(|c| c == "llama-2-7b"), "{closest:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("'lama-2-7b'") && msg.contains("pilot catalog models"),
            "{msg}"
        );
    }

    #[test]
    fn llm_malformed_configs_name_the_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"model_type": "llama", "num_hidden_layers": 2}"#).unwrap();
        let err = cat().resolve(p.to_str().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Malformed { .. }), "{msg}");
        assert!(
            msg.contains("hidden_size") && msg.contains("n_embd") && msg.contains("d_model"),
            "{msg}"
        );

        std::fs::write(&p, "this is not json").unwrap();
        let err = cat().resolve(p.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(&err, ModelError::Malformed { reason, .. } if reason.contains("not valid JSON")),
            "{err}"
        );

        std::fs::write(&p, r#"{"hidden_size": "big"}"#).unwrap();
        let err = cat().resolve(p.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("'hidden_size'"), "{err}");
    }

    #[test]
    fn llm_local_config_paths_load() {
        let dir = tempfile::tempdir().unwrap();
        let text = cat().config_json("llama-2-7b").unwrap();
        std::fs::write(dir.path().join("config.json"), &text).unwrap();
        for name in [dir.path().to_path_buf(), dir.path().join("config.json")] {
            let s = cat().resolve(name.to_str().unwrap()).unwrap();
            assert_eq!(s.params_total(), spec("llama-2-7b").params_total());
        }
        let missing = dir.path().join("nope").join("config.json");
        let err = cat().resolve(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = cat().resolve(empty.path().to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
    }

    #[test]
    fn llm_unreachable_hub_gives_a_fetch_error_and_cache_is_used() {
        let cache = tempfile::tempdir().unwrap();
        let hub = offline(cache.path());
        let err = cat().resolve_with("some-org/some-model", &hub).unwrap_err();
        let ModelError::Fetch { id, reason } = &err else {
            panic!("expected Fetch, got {err}")
        };
        assert_eq!(id, "some-org/some-model");
        assert!(reason.contains("127.0.0.1:1"), "{reason}");
        assert!(err.to_string().contains("pilot catalog models"), "{err}");

        // A cached config answers without the network.
        let dir = cache.path().join("some-org").join("some-model");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            cat().config_json("tiny-llama").unwrap(),
        )
        .unwrap();
        let s = cat().resolve_with("some-org/some-model", &hub).unwrap();
        assert_eq!((s.id.as_str(), s.hidden), ("some-org/some-model", 64));
    }

    #[test]
    fn llm_hf_config_round_trips_through_serde() {
        let c: HfConfig =
            serde_json::from_str(cat().config_json("falcon-40b").unwrap().as_str()).unwrap();
        assert_eq!(
            (c.hidden_size, c.num_heads, c.num_kv_heads),
            (Some(8192), Some(128), Some(8))
        );
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["num_kv_heads"], 8);
        // Two spellings of one key at once are fine (serde aliases would reject this).
        let c: HfConfig = serde_json::from_str(r#"{"n_head_kv": 8, "num_kv_heads": 8}"#).unwrap();
        assert_eq!(c.num_kv_heads, Some(8));
    }
}

//! The Hugging Face `config.json`, as written: [`HfConfig`].
//!
//! Kept apart from the conversion into [`LlmSpec`](super::LlmSpec) because reading is its own
//! problem: the same number is spelled differently across architectures (and sometimes twice
//! in one file), multimodal configs nest the language model in `text_config`, and a config
//! must round-trip through serde unchanged. Nothing here knows what the numbers mean; a
//! missing key is only an error once the conversion needs it.

use super::ModelError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Keys that mean the same thing across architectures, in the order they are tried.
///
/// These are read by hand rather than with `#[serde(alias)]`: real configs sometimes carry two
/// spellings at once (Falcon's `n_head_kv` and `num_kv_heads`, GPT-2's `n_ctx` and
/// `n_positions`), which serde rejects as a duplicate field.
pub(super) mod keys {
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
    pub const HEAD_DIM: &[&str] = &["head_dim", "d_kv", "attention_head_dim"];
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
    pub const EXPERTS_PER_TOKEN: &[&str] = &[
        "num_experts_per_tok",
        "moe_top_k",
        "experts_per_token",
        "num_experts_per_token",
        "top_k_experts",
    ];
    pub const DTYPE: &[&str] = &["torch_dtype", "dtype"];
}

/// A Hugging Face `config.json`, with the keys pilot needs pulled out under one spelling each
/// (see the `keys` lists for what each field is read from) and the whole document kept in
/// [`HfConfig::raw`]. Deserializes from any JSON object; missing keys stay `None` here and are
/// only an error when [`LlmSpec`](super::LlmSpec) needs them.
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
        let obj = language_model_of(top);
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

/// The object that describes the language model: multimodal configs (Llama 4, Gemma 3, Qwen3-VL,
/// Kimi-K2.5, ...) keep it in `text_config`.
fn language_model_of(top: &Map<String, Value>) -> &Map<String, Value> {
    match top.get("text_config").and_then(Value::as_object) {
        Some(text) if !keys::HIDDEN.iter().any(|k| top.contains_key(*k)) => text,
        _ => top,
    }
}

impl HfConfig {
    /// The language model's keys (the `text_config` of a multimodal config, else the whole
    /// document), for the architecture keys the typed fields above do not hold.
    pub fn language_model(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.raw.as_object() {
            Some(top) => language_model_of(top),
            None => EMPTY.get_or_init(Map::new),
        }
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
        let v: Value = serde_json::from_str(text).map_err(|e| ModelError::Unparsable {
            source_name: source_name.to_string(),
            format: "JSON",
            source: e.into(),
        })?;
        HfConfig::try_from(v).map_err(malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::test_support::cat;

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
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let source = std::error::Error::source(&err).expect("the JSON error is kept");
        assert!(
            source.downcast_ref::<serde_json::Error>().is_some(),
            "{source}"
        );

        std::fs::write(&p, r#"{"hidden_size": "big"}"#).unwrap();
        let err = cat().resolve(p.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("'hidden_size'"), "{err}");
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

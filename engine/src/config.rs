//! Model configs: HF `config.json` files deserialize straight into serde structs with HF's
//! defaults for missing keys (candle's approach), then convert into the one internal
//! [`ModelConfig`] the transformer reads.

use serde::Deserialize;

use crate::EngineError;
use pilot_core::units::Dtype;

/// The two decoder-only families the engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama family: RMSNorm, rotary embeddings (HF `rotate_half`), grouped-query attention,
    /// SwiGLU MLP. Covers `llama`, `mistral` (sliding window ignored) and `qwen2` (q/k/v bias).
    Llama,
    /// GPT-2: LayerNorm, learned absolute positions, multi-head attention, GELU (tanh) MLP,
    /// `Conv1D` weights stored `[in, out]`, tied embeddings.
    Gpt2,
}

/// The internal model description, independent of the HF spelling.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    /// Longest sequence (prompt + output) the model accepts.
    pub max_position_embeddings: usize,
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2; always true for GPT-2's fused `c_attn`).
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// One token id or a list of them: HF writes `eos_token_id` both ways.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![id],
            TokenIds::Many(ids) => ids,
        }
    }
}

/// `config.json` of `LlamaForCausalLM` (and Mistral, Qwen2), with HF's defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_llama_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    bos_token_id: Option<TokenIds>,
    #[serde(default)]
    eos_token_id: Option<TokenIds>,
}

fn default_llama_max_pos() -> usize {
    2048
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}

/// `config.json` of `GPT2LMHeadModel`, with HF's defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_gpt2_vocab")]
    pub vocab_size: usize,
    #[serde(default = "default_gpt2_positions")]
    pub n_positions: usize,
    #[serde(default = "default_gpt2_embd")]
    pub n_embd: usize,
    #[serde(default = "default_gpt2_layer")]
    pub n_layer: usize,
    #[serde(default = "default_gpt2_head")]
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_gelu_new")]
    pub activation_function: String,
    #[serde(default)]
    bos_token_id: Option<TokenIds>,
    #[serde(default)]
    eos_token_id: Option<TokenIds>,
}

fn default_gpt2_vocab() -> usize {
    50257
}
fn default_gpt2_positions() -> usize {
    1024
}
fn default_gpt2_embd() -> usize {
    768
}
fn default_gpt2_layer() -> usize {
    12
}
fn default_gpt2_head() -> usize {
    12
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_gelu_new() -> String {
    "gelu_new".to_string()
}

impl From<LlamaConfig> for ModelConfig {
    fn from(c: LlamaConfig) -> Self {
        let num_kv_heads = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
        let head_dim = c
            .head_dim
            .unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
        let attention_bias = c
            .attention_bias
            .unwrap_or(c.model_type.as_deref() == Some("qwen2"));
        ModelConfig {
            architecture: Architecture::Llama,
            hidden_size: c.hidden_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            num_kv_heads,
            head_dim,
            intermediate_size: c.intermediate_size,
            vocab_size: c.vocab_size,
            max_position_embeddings: c.max_position_embeddings,
            norm_eps: c.rms_norm_eps,
            rope_theta: c.rope_theta,
            tie_word_embeddings: c.tie_word_embeddings,
            attention_bias,
            bos_token_id: c
                .bos_token_id
                .and_then(|ids| ids.into_vec().first().copied()),
            eos_token_ids: c.eos_token_id.map(TokenIds::into_vec).unwrap_or_default(),
        }
    }
}

impl From<Gpt2Config> for ModelConfig {
    fn from(c: Gpt2Config) -> Self {
        ModelConfig {
            architecture: Architecture::Gpt2,
            hidden_size: c.n_embd,
            num_layers: c.n_layer,
            num_heads: c.n_head,
            num_kv_heads: c.n_head,
            head_dim: c.n_embd / c.n_head.max(1),
            intermediate_size: c.n_inner.unwrap_or(4 * c.n_embd),
            vocab_size: c.vocab_size,
            max_position_embeddings: c.n_positions,
            norm_eps: c.layer_norm_epsilon,
            rope_theta: 0.0,
            tie_word_embeddings: true,
            attention_bias: true,
            bos_token_id: Some(c.bos_token_id.map_or(50256, |ids| ids.into_vec()[0])),
            eos_token_ids: c.eos_token_id.map_or(vec![50256], TokenIds::into_vec),
        }
    }
}

impl ModelConfig {
    /// Parses the text of an HF `config.json`; `source_name` only labels errors.
    pub fn from_hf_json(text: &str, source_name: &str) -> Result<Self, EngineError> {
        let err = |message: String| EngineError::Config {
            source_name: source_name.to_string(),
            message,
        };
        let unreadable = |what: &str, e: serde_json::Error| EngineError::Unreadable {
            source_name: source_name.to_string(),
            what: what.into(),
            source: e.into(),
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| unreadable("not valid JSON", e))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let is_gpt2 = match model_type.as_deref() {
            Some("gpt2") => true,
            Some("llama" | "mistral" | "qwen2") => false,
            Some(other) => {
                return Err(EngineError::UnsupportedArchitecture {
                    model_type: other.to_string(),
                });
            }
            None => value.get("n_embd").is_some(),
        };
        let config: ModelConfig = if is_gpt2 {
            let c: Gpt2Config = serde_json::from_value(value)
                .map_err(|e| unreadable("not a GPT-2 config.json the engine can read", e))?;
            if c.activation_function != "gelu_new" && c.activation_function != "gelu_pytorch_tanh" {
                return Err(err(format!(
                    "activation_function `{}` is not supported: the engine implements gelu_new",
                    c.activation_function
                )));
            }
            c.into()
        } else {
            let c: LlamaConfig = serde_json::from_value(value)
                .map_err(|e| unreadable("not a Llama-family config.json the engine can read", e))?;
            c.into()
        };
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("hidden size", self.hidden_size),
            ("layers", self.num_layers),
            ("attention heads", self.num_heads),
            ("key/value heads", self.num_kv_heads),
            ("vocab size", self.vocab_size),
            ("max positions", self.max_position_embeddings),
        ];
        if let Some((what, _)) = positive.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{what} must be positive"));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.architecture == Architecture::Llama && !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "rotary embeddings need an even head_dim, got {}",
                self.head_dim
            ));
        }
        if self.architecture == Architecture::Gpt2
            && self.head_dim * self.num_heads != self.hidden_size
        {
            return Err(format!(
                "n_embd {} is not divisible by n_head {}",
                self.hidden_size, self.num_heads
            ));
        }
        Ok(())
    }

    /// Width of the fused q|k|v projection output.
    pub fn qkv_size(&self) -> usize {
        (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
    }

    /// Bytes of KV cache one token occupies in `dtype`.
    pub fn kv_bytes_per_token(&self, dtype: Dtype) -> u64 {
        let elements = 2 * self.num_layers * self.num_kv_heads * self.head_dim;
        (elements as f64 * dtype.bytes()) as u64
    }
}

/// Test fixtures: the tiny configs written out here so the engine's correctness tests do not
/// change when the catalog does (the catalog's `pilot/tiny-llama` etc. are what users get).
#[cfg(test)]
pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[
    (
        "tiny-llama",
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
            "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
            "tie_word_embeddings": false, "torch_dtype": "float32"}"#,
    ),
    (
        "tiny-gpt2",
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64,
            "n_layer": 2, "n_head": 4, "vocab_size": 512, "n_positions": 512,
            "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
            "bos_token_id": 0, "eos_token_id": 0}"#,
    ),
    (
        "small-llama",
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 512,
            "intermediate_size": 1376, "num_hidden_layers": 8, "num_attention_heads": 8,
            "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
            "tie_word_embeddings": false, "torch_dtype": "float32"}"#,
    ),
];

/// Resolves `--model` to `(served name, config.json text)` through pilot's model catalog
/// (`pilot_core::llm::ModelCatalog`): a catalog name or alias (`tiny-llama`, `small-llama`,
/// `mistral-7b`, ...), a path to a config.json (or a directory holding one), or a Hub id.
/// The served name is what the user typed, so clients can send it back as `model`.
pub fn resolve_model(model: &str) -> Result<(String, String), EngineError> {
    pilot_core::llm::ModelCatalog::builtin()
        .config_json(model)
        .map(|text| (model.to_string(), text))
        .map_err(|e| EngineError::Unreadable {
            source_name: model.to_string(),
            what: "no config.json for this --model".into(),
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_configs_parse() {
        for (name, text) in BUILTIN_CONFIGS {
            let c = ModelConfig::from_hf_json(text, name).unwrap();
            assert_eq!(c.hidden_size, c.num_heads * c.head_dim, "{name}");
        }
        let llama = ModelConfig::from_hf_json(BUILTIN_CONFIGS[0].1, "tiny-llama").unwrap();
        assert_eq!(
            (llama.num_heads, llama.num_kv_heads, llama.head_dim),
            (4, 2, 16)
        );
        assert_eq!(llama.eos_token_ids, vec![2]);
        let gpt2 = ModelConfig::from_hf_json(BUILTIN_CONFIGS[1].1, "tiny-gpt2").unwrap();
        assert_eq!(
            (gpt2.architecture, gpt2.intermediate_size),
            (Architecture::Gpt2, 256)
        );
    }

    #[test]
    fn hf_defaults_and_errors() {
        let c = ModelConfig::from_hf_json(
            r#"{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,
                "num_hidden_layers":1,"num_attention_heads":4,"vocab_size":100,
                "eos_token_id":[5,6]}"#,
            "inline",
        )
        .unwrap();
        assert!(c.attention_bias);
        assert_eq!((c.num_kv_heads, c.max_position_embeddings), (4, 2048));
        assert_eq!(c.eos_token_ids, vec![5, 6]);
        let e = ModelConfig::from_hf_json(r#"{"model_type":"mamba"}"#, "x").unwrap_err();
        assert!(e.to_string().contains("mamba"), "{e}");
        let e = ModelConfig::from_hf_json(
            r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,
                "num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,
                "vocab_size":100}"#,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("4 attention heads"), "{e}");
        let e = resolve_model("no-such-model").unwrap_err();
        let source = std::error::Error::source(&e).expect("the catalog's error is kept");
        assert!(
            source
                .downcast_ref::<pilot_core::llm::ModelError>()
                .is_some(),
            "{source}"
        );
        let e = ModelConfig::from_hf_json("{not json", "x").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(
            std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some()),
            "{e:?}"
        );
    }
}

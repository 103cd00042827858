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
//! (case-insensitive); a path to a `config.json` or a directory holding one (with the
//! `hf_quant_config.json` beside it, if any); a Hub id (`org/name`) fetched once from the Hub
//! and cached; otherwise an error naming the closest catalog entries. A config whose layout
//! pilot cannot count (an unknown layer or attention type, compressed attention, an
//! unknown quantization) is refused with [`ModelError::Unsupported`], which names it, rather
//! than counted as the nearest thing pilot knows; catalog entries of that kind resolve to the
//! same refusal.
//!
//! The module is split by concept, one file each, so a change to one (a new architecture
//! family, a new catalog field, a different Hub endpoint) reads and reviews on its own:
//!
//! - `config`: [`HfConfig`], the `config.json` as written, with its many key spellings;
//! - `arch`: the architecture families and the conversion of an [`HfConfig`] into an
//!   [`LlmSpec`], with the per-family facts a config leaves unsaid;
//! - `layers`: [`LayerPlan`], the decoder layer by layer (attention, sliding-window, latent,
//!   linear attention, Mamba; dense MLP or experts), read from the config;
//! - `checkpoint`: [`CheckpointFormat`], the quantized weight format from
//!   `quantization_config` and `hf_quant_config.json`;
//! - `spec`: [`LlmSpec`] and the arithmetic derived from it (parameters, weight and KV-cache
//!   bytes, FLOPs);
//! - `catalog`: [`ModelCatalog`], the embedded `models/` and name resolution;
//! - `hub`: [`HubOptions`] and fetching (and caching) configs from the Hugging Face Hub.
//!
//! This file holds what they share: the error type and the re-exports that make up the public
//! API (`pilot_core::llm::LlmSpec`, ...).

mod arch;
mod catalog;
mod checkpoint;
mod config;
mod hub;
mod layers;
mod spec;

pub use catalog::ModelCatalog;
pub use checkpoint::{CheckpointFormat, Part};
pub use config::HfConfig;
pub use hub::HubOptions;
pub use layers::{
    Ffn, Layer, LayerPlan, LinearAttentionShape, MambaShape, Mixer, MlaShape, MoeShape,
};
pub use spec::{AttentionKind, KvBytesByKind, LlmSpec, Params};
use std::path::PathBuf;

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
    /// The config (or the embedded catalog) is not valid JSON (TOML); the parser's message is
    /// the source.
    #[error(
        "model config '{source_name}' is not valid {format}. Fix that file (or pass another \
         one); `pilot catalog models` lists configs that work"
    )]
    Unparsable {
        source_name: String,
        format: &'static str,
        #[source]
        source: crate::BoxError,
    },
    /// A Hub id that is not in the catalog and could not be fetched.
    #[error(
        "model '{id}' is not in pilot's catalog and its config.json could not be fetched from \
         the Hugging Face Hub: {reason}. Run `pilot catalog models` to list the built-in models, \
         pass a path to a local config.json, or (for a gated or private model) set HF_TOKEN"
    )]
    Fetch {
        id: String,
        reason: String,
        /// The HTTP client's error, when one caused this.
        #[source]
        source: Option<crate::BoxError>,
    },
    /// The config describes something pilot cannot count (an unknown layer or attention type,
    /// an unknown quantization): refused rather than guessed.
    #[error(
        "pilot cannot model '{source_name}': it uses {feature}, which pilot's parameter, \
         KV-cache and FLOP arithmetic does not know, and a guess would mis-size every \
         deployment. Use a model whose architecture pilot lists (`pilot catalog models`)"
    )]
    Unsupported {
        source_name: String,
        feature: String,
    },
    /// A name no catalog could hold (see [`crate::validate::name`]).
    #[error("model {0}")]
    Invalid(#[from] crate::validate::InvalidValue),
}

fn closest_hint(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("Closest catalog names: {}. ", closest.join(", "))
    }
}

/// What the tests of every part start from: the built-in catalog, and specs resolved from it.
#[cfg(test)]
mod test_support {
    use super::{LlmSpec, ModelCatalog};

    pub(super) fn cat() -> &'static ModelCatalog {
        ModelCatalog::builtin()
    }

    pub(super) fn spec(name: &str) -> LlmSpec {
        cat()
            .resolve(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

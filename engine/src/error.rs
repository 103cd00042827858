//! The engine's one error type: every variant names the problem and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model, serving it or accepting a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The config.json could not be read or understood.
    #[error("model config {source_name}: {message}")]
    Config {
        source_name: String,
        message: String,
    },

    /// The config.json could not be parsed, or `--model` could not be resolved to one; the
    /// parser's (or the model catalog's) error is the source.
    #[error("model config {source_name}: {what}")]
    Unreadable {
        source_name: String,
        what: String,
        #[source]
        source: pilot_core::BoxError,
    },

    /// The architecture in config.json is not one the engine implements.
    #[error(
        "model_type `{model_type}` is not supported: the engine runs the Llama family \
         (llama, mistral, qwen2) and gpt2"
    )]
    UnsupportedArchitecture { model_type: String },

    /// Weights on disk do not fit the config.
    #[error("weights in {}: {message}", dir.display())]
    Weights { dir: PathBuf, message: String },

    /// The requested dtype is not one the engine computes in ([`crate::model::COMPUTE_DTYPES`]).
    #[error(
        "the engine cannot compute in {dtype}: use one of {}",
        crate::model::compute_dtype_names()
    )]
    UncomputableDtype { dtype: pilot_core::units::Dtype },

    /// The requested dtype cannot run on the selected device.
    #[error("dtype {dtype} is not supported by the {device} backend: use --dtype f32")]
    UnsupportedDtype { dtype: String, device: String },

    /// A request the engine refuses (the HTTP layer answers 400 with this text).
    #[error("{0}")]
    InvalidRequest(String),

    /// The model would not fit in this machine's memory (checked before allocating).
    #[error("{0}")]
    OutOfMemory(String),

    /// The engine thread is gone (it panicked or was shut down).
    #[error("the engine has stopped: restart the server")]
    Stopped,

    /// Binding or serving HTTP failed.
    #[error("server on {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

//! pilot's embedded LLM inference engine: real transformer architectures on burn, batched by
//! an iteration-level continuous-batching scheduler, served over an OpenAI-compatible HTTP
//! API. It is `pilot characterize`'s default target, so every machine has a server to measure.
//!
//! - [`config`]: HF `config.json` → [`ModelConfig`] (Llama family, GPT-2).
//! - [`weights`]: seeded random weights or local safetensors, under HF names.
//! - [`memory`]: the host memory a model needs, checked before anything is allocated.
//! - [`model`]: the transformer and its per-sequence [`KvCache`].
//! - [`engine`]: the scheduler thread and its policy.
//! - [`server`]: `/v1/completions`, `/v1/chat/completions`, `/v1/models`, `/health`, `/metrics`.
//!
//! Weight values do not change latency, so without `--weights` the engine runs seeded random
//! weights (vLLM's dummy load format), and text is tokenized byte by byte ([`tokenizer`]).
//!
//! The CPU backend is burn's flex. `--features cuda` adds burn-cuda; it is never built on CI
//! or offline machines because its build script downloads LLVM.

pub mod config;
pub mod engine;
mod error;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod sampling;
pub mod server;
pub mod tokenizer;
pub mod weights;

#[cfg(test)]
mod reference_tests;

pub use config::{Architecture, ModelConfig};
pub use engine::{
    Engine, EngineOptions, EngineStats, FinishReason, Finished, Generation, GenerationEvent,
    ModelInfo, Usage,
};
pub use error::EngineError;
pub use model::{EngineDevice, KvCache, Transformer};
pub use sampling::SamplingParams;
pub use server::{ServeOptions, ServerHandle, serve_blocking, spawn_server};

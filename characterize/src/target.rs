//! The server being measured: an endpoint, or pilot's embedded engine started on 127.0.0.1;
//! and what the run learns of it before the first request (its model, context length and
//! vocabulary).
//!
//! Kept apart from the sweep because it is what differs between the two: the sweep runs the
//! same levels whichever server answers, while starting the engine, listing `/v1/models` and
//! looking up the vocabulary are about the server alone.

use crate::client::Client;
use crate::error::CharacterizeError;
use crate::options::CharacterizeOptions;
use crate::report::{CharacterizeReport, push_note};
use pilot_core::units::Dtype;
use std::time::Duration;

/// The server being measured: the embedded engine (stopped on drop) or an endpoint.
pub(crate) struct Target {
    pub(crate) base_url: String,
    pub(crate) model: String,
    pub(crate) embedded: Option<pilot_engine::ServerHandle>,
    pub(crate) max_model_len: Option<u32>,
    pub(crate) gpu: String,
    pub(crate) gpu_count: u32,
    pub(crate) engine: String,
    pub(crate) quantization: Option<Dtype>,
    /// The model's vocabulary size and where it was learnt, when known.
    pub(crate) vocab: Option<(u32, &'static str)>,
}

impl Target {
    /// Starts the embedded engine (with `max_batch`, else `--max-batch`), or names the
    /// endpoint; labels the rows from the options.
    pub(crate) async fn start(
        o: &CharacterizeOptions,
        max_batch: Option<u32>,
    ) -> Result<Target, CharacterizeError> {
        Ok(match &o.endpoint {
            Some(url) => Target {
                base_url: url.trim_end_matches('/').to_string(),
                model: o.model.clone().unwrap_or_default(),
                embedded: None,
                max_model_len: None,
                gpu: o.gpu.clone().unwrap_or_else(|| "unknown".into()),
                gpu_count: o.gpu_count.unwrap_or(1),
                engine: o.engine_label.clone().unwrap_or_else(|| "unknown".into()),
                quantization: None,
                vocab: None,
            },
            None => {
                let mut engine = pilot_engine::EngineOptions {
                    model: o.model.clone().unwrap_or_else(|| "tiny-llama".into()),
                    seed: o.seed,
                    ..Default::default()
                };
                if let Some(b) = max_batch.or(o.engine_max_batch) {
                    engine.max_batch = b as usize;
                }
                let opts = pilot_engine::ServeOptions {
                    engine,
                    port: 0,
                    ..Default::default()
                };
                let handle = pilot_engine::spawn_server(opts)
                    .await
                    .map_err(CharacterizeError::Engine)?;
                let info = handle.info();
                Target {
                    base_url: handle.openai_base_url(),
                    model: handle.model_name.clone(),
                    max_model_len: Some(info.max_model_len as u32),
                    vocab: u32::try_from(info.config.vocab_size)
                        .ok()
                        .map(|v| (v, "the embedded engine's config")),
                    gpu: o.gpu.clone().unwrap_or_else(|| "cpu".into()),
                    gpu_count: o.gpu_count.unwrap_or(1),
                    engine: o.engine_label.clone().unwrap_or_else(|| "pilot".into()),
                    quantization: Some(info.dtype),
                    embedded: Some(handle),
                }
            }
        })
    }

    /// Fills in what the options left open from `/v1/models`: the model (the first listed,
    /// without `--model`) and its `max_model_len`; then the vocabulary size from pilot's
    /// catalog if the server did not give it.
    pub(crate) async fn discover(
        &mut self,
        probe: &Client,
        report: &mut CharacterizeReport,
    ) -> Result<(), CharacterizeError> {
        report.server_version = server_version(probe, &self.base_url).await;
        match list_models(probe, &self.base_url).await {
            Ok(models) => {
                report.server_models = models.iter().map(|m| m.0.clone()).collect();
                if self.model.is_empty() {
                    self.model = models.first().map(|m| m.0.clone()).ok_or_else(|| {
                        CharacterizeError::Unreachable {
                            url: format!("{}/models", self.base_url),
                            reason: "lists no model: pass --model".into(),
                        }
                    })?;
                }
                if let Some((_, Some(len))) = models.iter().find(|m| m.0 == self.model) {
                    self.max_model_len = self.max_model_len.or(Some(*len));
                }
            }
            Err(reason) if self.model.is_empty() => {
                return Err(CharacterizeError::Unreachable {
                    url: format!("{}/models", self.base_url),
                    reason,
                });
            }
            Err(reason) => push_note(
                report,
                format!("could not list the server's models ({reason}); going on"),
            ),
        }
        if self.vocab.is_none() {
            self.vocab = catalog_vocab(&self.model).map(|v| (v, "pilot's model catalog"));
        }
        Ok(())
    }
}

/// The vocabulary size of a served model whose name is in pilot's model catalog (an id or
/// alias; no Hub lookup, which would make a benchmark depend on the network).
fn catalog_vocab(model: &str) -> Option<u32> {
    pilot_core::llm::ModelCatalog::builtin()
        .entries()
        .iter()
        .find(|m| m.matches(model))
        .map(|m| m.vocab)
}

/// Longest the server may take to list its models.
const MODELS_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's version from `<root>/version` (vLLM answers `{"version": "0.11.0"}`), for
/// `run.json`; `None` from a server without it, which is no reason to stop.
async fn server_version(client: &Client, base: &str) -> Option<String> {
    let url = format!("{}/version", crate::telemetry::server_root(base));
    let answer = async {
        let resp = client.http().get(&url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: serde_json::Value = resp.json().await.ok()?;
        v.get("version")?.as_str().map(str::to_string)
    };
    tokio::time::timeout(MODELS_TIMEOUT, answer).await.ok()?
}

/// `(id, max_model_len)` of each model the server lists.
async fn list_models(client: &Client, base: &str) -> Result<Vec<(String, Option<u32>)>, String> {
    let url = format!("{base}/models");
    let mut req = client.http().get(&url);
    if let Some(key) = client.api_key() {
        req = req.bearer_auth(key);
    }
    // The whole exchange is bounded, body included: a server that sends headers and then
    // nothing must not hold the run before it starts.
    let answer = async {
        let resp = req
            .send()
            .await
            .map_err(|e| client.redact(&crate::client::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.json::<serde_json::Value>()
            .await
            .map_err(|e| client.redact(&e.to_string()))
    };
    let v = tokio::time::timeout(MODELS_TIMEOUT, answer)
        .await
        .map_err(|_| format!("no complete answer within {} s", MODELS_TIMEOUT.as_secs()))??;
    let data = v
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or("no 'data' list in the answer")?;
    Ok(data
        .iter()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_string();
            let len = m
                .get("max_model_len")
                .and_then(|l| l.as_u64())
                .map(|l| l as u32);
            Some((id, len))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_model_in_the_catalog_has_a_known_vocabulary() {
        assert_eq!(catalog_vocab("mistral-7b"), Some(32000));
        assert_eq!(catalog_vocab("mistralai/Mistral-7B-v0.1"), Some(32000));
        assert_eq!(catalog_vocab("my-private-finetune"), None);
    }
}

//! Fetching configs from the Hugging Face Hub: [`HubOptions`] and the cached download.
//!
//! The only part of the catalog that touches the network or the disk cache, kept apart so its
//! settings (endpoint, cache folder, token, timeout) and failure messages (gated repository,
//! no such repository, unreachable Hub) are in one place. A download is cached only when it
//! parses as a config, so a captive-portal page never poisons the cache.

use super::{HfConfig, ModelError};
use std::path::PathBuf;
use std::time::Duration;

/// Where the Hub lookups of [`ModelCatalog::resolve_with`](super::ModelCatalog::resolve_with) go.
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

/// `org/name` with the characters the Hub allows.
pub(super) fn is_hub_id(name: &str) -> bool {
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
pub(super) fn fetch_config(id: &str, hub: &HubOptions) -> Result<String, ModelError> {
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
    let fetch_err = |reason: String, source: Option<crate::BoxError>| ModelError::Fetch {
        id: id.to_string(),
        reason,
        source,
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
        .map_err(|e| fetch_err("could not start an HTTP client".into(), Some(e.into())))?;
    let mut req = client.get(&url);
    if let Some(token) = &hub.token {
        req = req.bearer_auth(token);
    }
    // `without_url` keeps reqwest's message about the failure, not about our query string.
    let resp = req
        .send()
        .map_err(|e| fetch_err(format!("GET {url} failed"), Some(e.without_url().into())))?;
    let status = resp.status();
    if !status.is_success() {
        let why = match status.as_u16() {
            401 | 403 => {
                "the repository is gated or private (accept its licence on the Hub and set HF_TOKEN)"
            }
            404 => "no such repository, or it has no config.json",
            _ => "the Hub refused the request",
        };
        return Err(fetch_err(
            format!("GET {url} returned HTTP {status}: {why}"),
            None,
        ));
    }
    let text = resp.text().map_err(|e| {
        fetch_err(
            format!("reading the response of GET {url} failed"),
            Some(e.without_url().into()),
        )
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
    use crate::llm::test_support::cat;
    use std::path::Path;

    fn offline(dir: &Path) -> HubOptions {
        HubOptions {
            endpoint: "http://127.0.0.1:1".to_string(),
            cache_dir: Some(dir.to_path_buf()),
            token: None,
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn llm_unreachable_hub_gives_a_fetch_error_and_cache_is_used() {
        let cache = tempfile::tempdir().unwrap();
        let hub = offline(cache.path());
        let err = cat().resolve_with("some-org/some-model", &hub).unwrap_err();
        let ModelError::Fetch { id, reason, .. } = &err else {
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
}

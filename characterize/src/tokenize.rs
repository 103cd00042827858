//! Exact-length text prompts for servers that take no token ids (`--tokenizer`).
//!
//! pilot prefers token-id prompts (`"prompt": [ids]`), which vLLM, SGLang and the embedded
//! engine accept, so the input length is exact by construction. A server that only takes
//! text (TGI, Ollama, chat routes) tokenizes it itself; to still send exactly N input tokens
//! the client needs that model's tokenizer (`tokenizer.json` from the model's repository):
//! [`PromptTokenizer::text_of_length`] decodes N ids and trims or extends the text until the
//! tokenizer counts exactly N tokens in it.

use std::fmt;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// A model's tokenizer, used only to build prompts of exact length.
pub struct PromptTokenizer {
    inner: Tokenizer,
    vocab: u32,
}

impl fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PromptTokenizer {{ vocab: {} }}", self.vocab)
    }
}

impl PromptTokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn load(path: &Path) -> Result<PromptTokenizer, String> {
        let inner = Tokenizer::from_file(path).map_err(|e| {
            format!(
                "tokenizer {}: {e}; pass the model's tokenizer.json (from its Hugging Face repository)",
                path.display()
            )
        })?;
        let vocab = inner.get_vocab_size(false) as u32;
        if vocab == 0 {
            return Err(format!(
                "tokenizer {}: its vocabulary is empty",
                path.display()
            ));
        }
        Ok(PromptTokenizer { inner, vocab })
    }

    /// Tokens the tokenizer counts in `text` (without special tokens: servers add their own).
    pub fn count(&self, text: &str) -> usize {
        self.inner
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or(usize::MAX)
    }

    /// Text that this tokenizer counts as exactly `ids.len()` tokens, made from `ids`
    /// (mapped into the vocabulary). Decoding and re-encoding is not always a round trip
    /// (merges across token boundaries), so ids are dropped or added until the count is
    /// exact; `None` if that does not converge.
    pub fn text_of_length(&self, ids: &[u32]) -> Option<String> {
        let n = ids.len();
        let mut ids: Vec<u32> = ids.iter().map(|id| id % self.vocab).collect();
        let mut extra = 0u32;
        for _ in 0..64 {
            let text = self.inner.decode(&ids, true).ok()?;
            let count = self.count(&text);
            match count.cmp(&n) {
                std::cmp::Ordering::Equal => return Some(text),
                std::cmp::Ordering::Greater => {
                    ids.pop()?;
                }
                std::cmp::Ordering::Less => {
                    extra += 1;
                    ids.push((ids.len() as u32 * 7919 + extra) % self.vocab);
                }
            }
        }
        None
    }
}

/// Where `--tokenizer SPEC` is: a `tokenizer.json`, a directory holding one (a model
/// checkout), or a Hugging Face model id (`org/name`), whose `tokenizer.json` is downloaded
/// once from `$HF_ENDPOINT` (default `https://huggingface.co`) with `$HF_TOKEN` if set, and
/// cached under `$HF_HOME/pilot/tokenizers/` (else `~/.cache/pilot/tokenizers/`).
pub async fn resolve(spec: &str) -> Result<PathBuf, String> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(path.into());
    }
    if path.is_dir() {
        let file = path.join("tokenizer.json");
        return if file.is_file() {
            Ok(file)
        } else {
            Err(format!(
                "--tokenizer {spec}: the directory holds no tokenizer.json; give the file itself or the model's Hugging Face id"
            ))
        };
    }
    let hub_id = !spec.is_empty()
        && !spec.starts_with(['.', '/'])
        && spec.split('/').count() <= 2
        && spec.split('/').all(|p| {
            !p.is_empty()
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !hub_id {
        return Err(format!(
            "--tokenizer {spec}: no such file or directory, and not a Hugging Face model id (org/name)"
        ));
    }
    let cache = cache_dir().join(spec).join("tokenizer.json");
    if cache.is_file() {
        return Ok(cache);
    }
    download(spec, &cache).await?;
    Ok(cache)
}

/// `$HF_HOME/pilot/tokenizers`, else `~/.cache/pilot/tokenizers`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("HF_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join("pilot").join("tokenizers"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache")
            .join("pilot")
            .join("tokenizers"),
    }
}

/// Downloads `<endpoint>/<id>/resolve/main/tokenizer.json` to `to` (through a temporary file,
/// so an interrupted download leaves no broken cache entry).
async fn download(id: &str, to: &Path) -> Result<(), String> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into());
    let url = format!(
        "{}/{id}/resolve/main/tokenizer.json",
        endpoint.trim_end_matches('/')
    );
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let fail = |why: String| {
        let why = crate::client::redact(&why, token.as_deref());
        format!("--tokenizer {id}: cannot download {url}: {why}")
    };
    let mut req = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(120));
    if let Some(t) = &token {
        let mut h = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| fail("HF_TOKEN holds characters not allowed in a header".into()))?;
        h.set_sensitive(true);
        req = req.header(reqwest::header::AUTHORIZATION, h);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| fail(crate::client::error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => "; a gated or private model needs HF_TOKEN set",
            404 => "; check the model id",
            _ => "",
        };
        return Err(fail(format!("HTTP {status}{hint}")));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| fail(crate::client::error_chain(&e)))?;
    Tokenizer::from_bytes(&bytes)
        .map_err(|e| fail(format!("the file is not a tokenizer.json: {e}")))?;
    let dir = to.parent().expect("a file in the cache");
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let cannot = |e: std::io::Error| fail(format!("cannot write {}: {e}", to.display()));
    pilot_core::replace::replace_file(
        to,
        |tmp| std::fs::write(tmp, &bytes).map_err(cannot),
        cannot,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;

    /// A real `tokenizer.json` (word-level, 200 words), written to `dir`.
    pub(crate) fn word_tokenizer(dir: &Path) -> std::path::PathBuf {
        let mut vocab: HashMap<String, u32> = (0..200).map(|i| (format!("w{i}"), i)).collect();
        vocab.insert("[UNK]".into(), 200);
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        let path = dir.join("tokenizer.json");
        t.save(&path, false).unwrap();
        path
    }

    #[test]
    fn prompts_have_exactly_the_asked_token_count() {
        let dir = tempfile::tempdir().unwrap();
        let t = PromptTokenizer::load(&word_tokenizer(dir.path())).unwrap();
        for n in [1usize, 7, 64, 300] {
            let ids: Vec<u32> = (0..n as u32).map(|i| i * 31 + 5).collect();
            let text = t.text_of_length(&ids).unwrap();
            assert_eq!(t.count(&text), n, "{text}");
        }
    }

    /// With a tokenizer, the client's request body carries text of exactly the asked length,
    /// on both routes.
    #[test]
    fn the_client_sends_exact_length_text_with_a_tokenizer() {
        use crate::client::{Api, Client, ClientOptions, Prompt};
        let dir = tempfile::tempdir().unwrap();
        let t = std::sync::Arc::new(PromptTokenizer::load(&word_tokenizer(dir.path())).unwrap());
        for api in [Api::Completions, Api::Chat] {
            let client = Client::new(ClientOptions {
                base_url: "http://127.0.0.1:1/v1".into(),
                model: "m".into(),
                api,
                api_key: None,
                timeout: std::time::Duration::from_secs(1),
                exact_output: true,
                tokenizer: Some(t.clone()),
                extra_body: Default::default(),
                headers: Vec::new(),
            })
            .unwrap();
            let ids: Vec<u32> = (0..37).collect();
            let body: serde_json::Value =
                serde_json::from_slice(&client.body(&Prompt::Ids(ids), 4)).unwrap();
            let text = match api {
                Api::Completions => body["prompt"].as_str().unwrap().to_string(),
                Api::Chat => body["messages"][0]["content"].as_str().unwrap().to_string(),
            };
            assert_eq!(t.count(&text), 37, "{api:?}: {text}");
        }
    }

    #[test]
    fn a_missing_or_broken_tokenizer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = PromptTokenizer::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(e.contains("tokenizer.json"), "{e}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{}").unwrap();
        assert!(PromptTokenizer::load(&bad).is_err());
    }
}

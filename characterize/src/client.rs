//! The streaming client: one request, every token's arrival time, and why it failed if it did.
//!
//! Requests go to an OpenAI-compatible `/v1/completions` (token-id prompts, so the input
//! length is exact on vLLM, SGLang and pilot's engine) or `/v1/chat/completions` (text
//! prompts), always streaming with `stream_options.include_usage`, so the server reports the
//! token counts it saw. Output length is pinned with `max_tokens` = `min_tokens` and
//! `ignore_eos` (vLLM's extensions; [`ClientOptions::exact_output`] turns them off for servers
//! that reject unknown fields).
//!
//! Token times follow `vllm bench serve`: each SSE event carrying non-empty text is one token
//! arrival, stamped when its bytes were read; TTFT is the first, E2E is the arrival of
//! `[DONE]` (or of the end of the body after a `finish_reason`).
//!
//! The API key is sent as a bearer header marked sensitive, and removed from every error text
//! this module produces (a server may echo request headers in its errors).

use crate::sse::SseDecoder;
use pilot_core::metrics::FailureKind;
use pilot_core::rng::{SplitMix64, derive_seed};
use pilot_core::units::Millis;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which OpenAI route to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// `/v1/completions` with token-id prompts (exact input lengths).
    #[default]
    Completions,
    /// `/v1/chat/completions` with text prompts (input length as the server counts it).
    Chat,
}

impl Api {
    /// `vllm bench serve --backend`'s name of this route (`results.json`'s `backend`).
    pub fn vllm_backend(self) -> &'static str {
        match self {
            Api::Completions => "openai",
            Api::Chat => "openai-chat",
        }
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Api, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "completions" | "completion" => Ok(Api::Completions),
            "chat" | "chat-completions" | "chat_completions" => Ok(Api::Chat),
            other => Err(format!("unknown API '{other}': use completions or chat")),
        }
    }
}

/// A prompt as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Ids(Vec<u32>),
    Text(String),
    /// A shared prefix and the request's own suffix (`--dataset prefix`): with a tokenizer,
    /// each part becomes its own exact-length text, so every prompt of a group starts with
    /// the very same text; without, the ids are sent one after the other.
    Split(Vec<u32>, Vec<u32>),
    /// A conversation so far (`--dataset multi-turn`, chat route only).
    Chat(Vec<Message>),
}

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn user(content: String) -> Message {
        Message {
            role: "user",
            content,
        }
    }
    pub fn assistant(content: String) -> Message {
        Message {
            role: "assistant",
            content,
        }
    }
}

/// Request fields pilot sets itself: `--extra-body` may not replace them.
pub const RESERVED_BODY_KEYS: [&str; 6] = [
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "stream",
    "stream_options",
];

/// Parses `--extra-body`: a JSON object, without [`RESERVED_BODY_KEYS`].
pub fn parse_extra_body(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("--extra-body '{text}' is not JSON: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err(format!(
            "--extra-body '{text}' is not a JSON object: write e.g. '{{\"top_k\": 1}}'"
        ));
    };
    if let Some(k) = map
        .keys()
        .find(|k| RESERVED_BODY_KEYS.contains(&k.as_str()))
    {
        return Err(format!(
            "--extra-body sets \"{k}\", which pilot sets itself ({}): use --model, --dataset or the length flags instead",
            RESERVED_BODY_KEYS.join(", ")
        ));
    }
    Ok(map)
}

/// Whether a header's value is a credential, by its name (Authorization, X-Api-Key, any
/// `*token*`, `*key*`, `*secret*`, cookies): such values are never logged or written.
pub fn sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n.contains("cookie")
        || ["token", "key", "secret", "auth", "password"]
            .iter()
            .any(|w| n.contains(w))
}

/// Parses `--header 'K: V'` (also `K=V`, as `vllm bench serve --header` takes it).
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once(':')
        .or_else(|| text.split_once('='))
        .ok_or_else(|| {
            format!(
                "--header '{}': write NAME: VALUE, e.g. --header 'X-Tenant: team-a'",
                redact_header_text(text)
            )
        })?;
    let (k, v) = (k.trim(), v.trim());
    header_of(k, v).map_err(|e| format!("--header {e}"))?;
    Ok((k.to_string(), v.to_string()))
}

/// A header as HTTP takes it, or why it cannot be one; a credential's value is marked
/// sensitive (kept out of reqwest's debug output).
fn header_of(
    name: &str,
    value: &str,
) -> Result<(reqwest::header::HeaderName, HeaderValue), String> {
    let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{name}' is not a valid header name"))?;
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| format!("{name}: its value holds characters not allowed in a header"))?;
    v.set_sensitive(sensitive_header(name));
    Ok((n, v))
}

/// A `--header` as text safe to show: the value cut out when the name is sensitive.
fn redact_header_text(text: &str) -> String {
    match text.split_once(':').or_else(|| text.split_once('=')) {
        Some((k, _)) if sensitive_header(k.trim()) => format!("{}: [redacted]", k.trim()),
        _ => text.to_string(),
    }
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    pub api: Api,
    /// Bearer token; never logged or written.
    pub api_key: Option<String>,
    /// Longest a request may take, from send to its last byte.
    pub timeout: Duration,
    /// Send `min_tokens` and `ignore_eos` so the output has exactly `max_tokens` tokens.
    pub exact_output: bool,
    /// With a tokenizer, prompts go out as text of exactly the asked token count (both
    /// routes); without one, completions send token ids.
    pub tokenizer: Option<std::sync::Arc<crate::tokenize::PromptTokenizer>>,
    /// `--extra-body`: merged into every request's body (after pilot's own fields, so it may
    /// replace e.g. `temperature`, never the [`RESERVED_BODY_KEYS`]).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// `--header`: sent on every request; values of [`sensitive_header`]s are redacted from
    /// errors.
    pub headers: Vec<(String, String)>,
}

/// What happened to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// When it was sent, in milliseconds since the Unix epoch.
    pub start_unix_ms: f64,
    /// Arrival of each token event, from the send.
    pub token_times: Vec<Millis>,
    pub e2e: Millis,
    /// `usage.prompt_tokens` / `usage.completion_tokens` as the server reported them.
    pub usage_prompt: Option<u64>,
    pub usage_completion: Option<u64>,
    pub finish_reason: Option<String>,
    pub failure: Option<FailureKind>,
    pub http_status: Option<u16>,
    /// Error text (with any credential removed); empty on success.
    pub error: String,
    /// The generated text (content, not reasoning): the reply a multi-turn conversation
    /// carries into its next turn. Kept only for a conversation's turns (`Prompt::Chat`), so
    /// other requests do not copy every token's text.
    pub reply: Option<String>,
}

/// A client of one server; cheap to share (`Arc`) between tasks.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    opts: ClientOptions,
    auth: Option<HeaderValue>,
    headers: reqwest::header::HeaderMap,
    /// Values never to show: the API key and sensitive `--header` values.
    secrets: Vec<String>,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(String);

struct Failure {
    kind: FailureKind,
    text: String,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        let auth = match opts.api_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut h = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    ClientError("the API key holds characters not allowed in a header".into())
                })?;
                h.set_sensitive(true);
                Some(h)
            }
            None => None,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        let mut secrets: Vec<String> = opts
            .api_key
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect();
        for (k, v) in &opts.headers {
            let (name, value) = header_of(k, v).map_err(|e| ClientError(format!("header {e}")))?;
            if value.is_sensitive() {
                secrets.push(v.clone());
            }
            headers.append(name, value);
        }
        let base = opts.base_url.trim_end_matches('/');
        let url = match opts.api {
            Api::Completions => format!("{base}/completions"),
            Api::Chat => format!("{base}/chat/completions"),
        };
        Ok(Client {
            http,
            url,
            opts,
            auth,
            headers,
            secrets,
        })
    }

    /// The underlying HTTP client (for `/v1/models` and `/metrics`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The API key, for the few other requests of a run (`/v1/models`).
    pub(crate) fn api_key(&self) -> Option<&str> {
        self.opts.api_key.as_deref().filter(|k| !k.is_empty())
    }

    /// Removes the API key from text bound for logs or files.
    pub fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| redact(&t, Some(s)))
    }

    /// Text of exactly `ids.len()` tokens with a tokenizer, else [`ids_as_text`]'s letters
    /// (synthetic turns of a conversation).
    pub fn text_of(&self, ids: &[u32]) -> String {
        self.opts
            .tokenizer
            .as_ref()
            .and_then(|t| t.text_of_length(ids))
            .unwrap_or_else(|| ids_as_text(ids))
    }

    /// The JSON body of a request.
    pub fn body(&self, prompt: &Prompt, output: u32) -> Vec<u8> {
        let exact_text = match (prompt, &self.opts.tokenizer) {
            (Prompt::Ids(ids), Some(t)) => t.text_of_length(ids).map(Prompt::Text),
            (Prompt::Split(a, b), Some(t)) => t
                .text_of_length(a)
                .zip(t.text_of_length(b))
                .map(|(a, b)| Prompt::Text(join_parts(a, &b))),
            (Prompt::Split(a, b), None) => Some(Prompt::Ids([a.as_slice(), b].concat())),
            _ => None,
        };
        let prompt = exact_text.as_ref().unwrap_or(prompt);
        let mut v = match (self.opts.api, prompt) {
            (Api::Completions, Prompt::Ids(ids)) => serde_json::json!({"prompt": ids}),
            (Api::Completions, Prompt::Text(t)) => serde_json::json!({"prompt": t}),
            (Api::Completions, Prompt::Split(a, b)) => {
                serde_json::json!({"prompt": ([a.as_slice(), b].concat())})
            }
            (Api::Completions, Prompt::Chat(m)) => {
                // Refused before a run starts (multi-turn forces the chat route); the
                // conversation as plain text keeps this total.
                let text: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
                serde_json::json!({"prompt": text.join("\n")})
            }
            (Api::Chat, p) => {
                let messages = match p {
                    Prompt::Text(t) => serde_json::json!([{"role": "user", "content": t}]),
                    Prompt::Ids(ids) => {
                        serde_json::json!([{"role": "user", "content": ids_as_text(ids)}])
                    }
                    Prompt::Split(a, b) => serde_json::json!([{"role": "user",
                        "content": join_parts(ids_as_text(a), &ids_as_text(b))}]),
                    Prompt::Chat(m) => m
                        .iter()
                        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                        .collect(),
                };
                serde_json::json!({"messages": messages, "max_completion_tokens": output})
            }
        };
        v["model"] = self.opts.model.clone().into();
        v["max_tokens"] = output.into();
        v["stream"] = true.into();
        v["stream_options"] = serde_json::json!({"include_usage": true});
        v["temperature"] = 0.0.into();
        if self.opts.exact_output {
            v["min_tokens"] = output.into();
            v["ignore_eos"] = true.into();
        }
        for (k, x) in &self.opts.extra_body {
            v[k] = x.clone();
        }
        serde_json::to_vec(&v).expect("JSON values serialize")
    }

    /// Sends one request and follows its stream to the end, a failure, or the timeout.
    pub async fn send(&self, prompt: &Prompt, output: u32) -> Outcome {
        let body = self.body(prompt, output);
        let mut out = Outcome {
            start_unix_ms: unix_ms(),
            reply: matches!(prompt, Prompt::Chat(_)).then(String::new),
            ..Default::default()
        };
        let start = Instant::now();
        let result =
            match tokio::time::timeout(self.opts.timeout, self.exchange(body, start, &mut out))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(Failure {
                    kind: FailureKind::Timeout,
                    text: format!(
                        "no complete response within {:.1} s ({} tokens received)",
                        self.opts.timeout.as_secs_f64(),
                        out.token_times.len()
                    ),
                }),
            };
        if let Err(f) = result {
            out.e2e = Millis::from_duration(start.elapsed());
            out.failure = Some(f.kind);
            out.error = self.redact(&f.text);
        }
        out
    }

    async fn exchange(
        &self,
        body: Vec<u8>,
        start: Instant,
        out: &mut Outcome,
    ) -> Result<(), Failure> {
        let mut req = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(h) = &self.auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        if !self.headers.is_empty() {
            req = req.headers(self.headers.clone());
        }
        let mut resp = req.send().await.map_err(|e| Failure {
            kind: send_kind(&e),
            text: error_chain(&e),
        })?;
        let status = resp.status();
        out.http_status = Some(status.as_u16());
        if !status.is_success() {
            let text = read_some(&mut resp, 2000).await;
            let kind = match FailureKind::classify(&text) {
                FailureKind::Other => FailureKind::HttpStatus,
                k => k,
            };
            return Err(Failure {
                kind,
                text: format!("HTTP {status}: {}", text.trim()),
            });
        }
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ctype.starts_with("text/event-stream") {
            let text = read_some(&mut resp, 300).await;
            return Err(Failure {
                kind: FailureKind::Malformed,
                text: format!("expected text/event-stream, got '{ctype}': {}", text.trim()),
            });
        }
        let mut decoder = SseDecoder::new();
        let mut state = StreamState::Reading;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    let now = Millis::from_duration(start.elapsed());
                    decoder.feed(&bytes, |data| {
                        state = on_event(data, now, out);
                        matches!(state, StreamState::Reading)
                    });
                    match std::mem::replace(&mut state, StreamState::Reading) {
                        StreamState::Reading => {}
                        StreamState::Done => {
                            out.e2e = now;
                            // Read the body's end so the connection goes back to the pool.
                            let _ = tokio::time::timeout(Duration::from_millis(200), resp.chunk())
                                .await;
                            return Ok(());
                        }
                        StreamState::Failed(f) => return Err(f),
                    }
                }
                Ok(None) => {
                    let now = Millis::from_duration(start.elapsed());
                    if out.finish_reason.is_some() && !decoder.pending() {
                        out.e2e = now;
                        return Ok(());
                    }
                    return Err(Failure {
                        kind: FailureKind::StreamCut,
                        text: format!(
                            "the stream ended after {} tokens without finish_reason or [DONE]",
                            out.token_times.len()
                        ),
                    });
                }
                Err(e) => {
                    return Err(Failure {
                        kind: if e.is_timeout() {
                            FailureKind::Timeout
                        } else {
                            FailureKind::StreamCut
                        },
                        text: format!(
                            "the stream broke after {} tokens: {}",
                            out.token_times.len(),
                            error_chain(&e)
                        ),
                    });
                }
            }
        }
    }
}

enum StreamState {
    Reading,
    Done,
    Failed(Failure),
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    usage: Option<UsageJson>,
    error: Option<serde_json::Value>,
    object: Option<Cow<'a, str>>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UsageJson {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// Handles one SSE event's data.
fn on_event(data: &[u8], now: Millis, out: &mut Outcome) -> StreamState {
    let data = data.trim_ascii();
    if data == b"[DONE]" {
        return StreamState::Done;
    }
    let chunk: Chunk = match serde_json::from_slice(data) {
        Ok(c) => c,
        Err(e) => {
            let shown = String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned();
            return StreamState::Failed(Failure {
                kind: FailureKind::Malformed,
                text: format!(
                    "malformed SSE event after {} tokens ({e}): {shown:?}",
                    out.token_times.len()
                ),
            });
        }
    };
    if chunk.error.is_some() || chunk.object.as_deref() == Some("error") {
        let text = match &chunk.error {
            Some(serde_json::Value::Object(o)) => o
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| o_string(o)),
            Some(v) => v.to_string(),
            None => chunk.message.clone().unwrap_or_default(),
        };
        let kind = match FailureKind::classify(&text) {
            FailureKind::Other => FailureKind::HttpStatus,
            k => k,
        };
        return StreamState::Failed(Failure {
            kind,
            text: format!("error event in the stream: {text}"),
        });
    }
    if let Some(u) = chunk.usage {
        out.usage_prompt = u.prompt_tokens.or(out.usage_prompt);
        out.usage_completion = u.completion_tokens.or(out.usage_completion);
    }
    if let Some(c) = chunk.choices.as_ref().and_then(|c| c.first()) {
        let text = c.text.as_deref().or_else(|| {
            c.delta
                .as_ref()
                .and_then(|d| d.content.as_deref().or(d.reasoning_content.as_deref()))
        });
        if text.is_some_and(|t| !t.is_empty()) {
            out.token_times.push(now);
        }
        if let (Some(reply), Some(t)) = (
            out.reply.as_mut(),
            c.text
                .as_deref()
                .or_else(|| c.delta.as_ref().and_then(|d| d.content.as_deref())),
        ) {
            reply.push_str(t);
        }
        if let Some(r) = &c.finish_reason {
            out.finish_reason = Some(r.to_string());
        }
    }
    StreamState::Reading
}

fn o_string(o: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(o.clone()).to_string()
}

fn send_kind(e: &reqwest::Error) -> FailureKind {
    if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connection
    } else {
        match FailureKind::classify(&error_chain(e)) {
            FailureKind::Other => FailureKind::Connection,
            k => k,
        }
    }
}

/// An error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Up to `limit` bytes of a response body, as text (errors end the read).
async fn read_some(resp: &mut reqwest::Response, limit: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(b))) => buf.extend_from_slice(&b),
            _ => break,
        }
    }
    buf.truncate(limit);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `text` with every occurrence of `secret` replaced.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| s.len() >= 4) {
        Some(s) if text.contains(s) => text.replace(s, "[redacted]"),
        _ => text.to_string(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The lowest prompt token id: below it sit the special tokens (PAD, BOS, EOS, UNK) of most
/// vocabularies, which a server may reject or treat as the end of the text.
pub const FIRST_PROMPT_ID: u32 = 10;

/// The id range used when the model's vocabulary is unknown, and the top of every range: ids
/// below 500 exist in every vocabulary of 500 ids or more, and stay clear of the ids past a
/// tokenizer's real size that padded vocabularies (Qwen's 151936) hold and vLLM rejects.
pub const DEFAULT_PROMPT_IDS: std::ops::Range<u32> = FIRST_PROMPT_ID..500;

/// The ids prompts are drawn from for a model with `vocab_size` ids (`None`: unknown, then
/// [`DEFAULT_PROMPT_IDS`]): [`DEFAULT_PROMPT_IDS`] cut to the vocabulary, so every id exists.
/// A vocabulary too small to spare the low special ids keeps its upper half.
pub fn prompt_id_range(vocab_size: Option<u32>) -> std::ops::Range<u32> {
    match vocab_size {
        None => DEFAULT_PROMPT_IDS,
        Some(v) => {
            let end = v.clamp(1, DEFAULT_PROMPT_IDS.end);
            FIRST_PROMPT_ID.min(end / 2)..end
        }
    }
}

/// Prompt token ids, deterministic in `(seed, request_id)`, uniform in `ids` (see
/// [`prompt_id_range`]). Different per request, so a server's prefix cache does not shorten
/// prefill.
pub fn prompt_ids(seed: u64, request_id: u64, len: u32, ids: std::ops::Range<u32>) -> Vec<u32> {
    let span = u64::from(ids.end.saturating_sub(ids.start).max(1));
    // The salt is part of the stream: changing it changes every prompt a seed gives.
    let mut rng = SplitMix64::new(derive_seed(seed, request_id) ^ 0x5851_f42d_4c95_7f2d);
    (0..len)
        .map(|_| ids.start + rng.below(span) as u32)
        .collect()
}

/// Two parts of a prompt as one text, a space between them unless one is there already (so
/// the prefix's last word does not merge with the suffix's first).
fn join_parts(mut a: String, b: &str) -> String {
    if !a.is_empty() && !a.ends_with(char::is_whitespace) && !b.starts_with(char::is_whitespace) {
        a.push(' ');
    }
    a.push_str(b);
    a
}

/// Text for a chat prompt from ids: one lowercase letter per id, space-separated in words of
/// four. On pilot's byte-level engine that is one token per character; on BPE tokenizers the
/// count differs, and the recorded input length is the server's `usage.prompt_tokens`.
fn ids_as_text(ids: &[u32]) -> String {
    let mut s = String::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if i % 5 == 4 {
            s.push(' ');
        } else {
            s.push((b'a' + (id % 26) as u8) as char);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_token_times_usage_and_failures() {
        let mut out = Outcome::default();
        let tok = br#"{"choices":[{"index":0,"text":"a","finish_reason":null}]}"#;
        assert!(matches!(
            on_event(tok, Millis(5.0), &mut out),
            StreamState::Reading
        ));
        let chat = br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#;
        assert!(matches!(
            on_event(chat, Millis(6.0), &mut out),
            StreamState::Reading
        ));
        let last =
            br#"{"choices":[{"delta":{"content":"b\n"},"finish_reason":"length"}],"usage":null}"#;
        on_event(last, Millis(7.0), &mut out);
        on_event(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            Millis(8.0),
            &mut out,
        );
        assert_eq!(out.token_times, vec![Millis(5.0), Millis(7.0)]);
        assert_eq!((out.usage_prompt, out.usage_completion), (Some(3), Some(2)));
        assert_eq!(out.finish_reason.as_deref(), Some("length"));
        assert!(matches!(
            on_event(b"[DONE]", Millis(9.0), &mut out),
            StreamState::Done
        ));
        match on_event(b"{not json", Millis(9.0), &mut out) {
            StreamState::Failed(f) => assert_eq!(f.kind, FailureKind::Malformed),
            _ => panic!("malformed data accepted"),
        }
        let oom = br#"{"error":{"message":"CUDA out of memory","code":500}}"#;
        match on_event(oom, Millis(9.0), &mut out) {
            StreamState::Failed(f) => assert_eq!(f.kind, FailureKind::OutOfMemory),
            _ => panic!("error event accepted"),
        }
    }

    #[test]
    fn prompts_are_deterministic_and_in_range() {
        let a = prompt_ids(1, 7, 100, DEFAULT_PROMPT_IDS);
        assert_eq!(a, prompt_ids(1, 7, 100, DEFAULT_PROMPT_IDS));
        // Pinned: a seed gives the prompts it always gave.
        assert_eq!(a[..8], [273, 483, 66, 63, 304, 249, 304, 496]);
        assert_ne!(a, prompt_ids(1, 8, 100, DEFAULT_PROMPT_IDS));
        assert!(a.iter().all(|&i| (10..500).contains(&i)));
        // A small vocabulary: every id exists, the low special ids are spared.
        for (vocab, range) in [
            (Some(300), 10..300),
            (Some(32000), 10..500),
            (Some(12), 6..12),
            (None, 10..500),
        ] {
            assert_eq!(prompt_id_range(vocab), range, "{vocab:?}");
            let ids = prompt_ids(3, 9, 2000, prompt_id_range(vocab));
            assert!(ids.iter().all(|i| range.contains(i)), "{vocab:?}");
            assert!(ids.contains(&(range.end - 1)), "the whole range is used");
        }
        assert_eq!(ids_as_text(&[0, 1, 2, 3, 4, 5]).len(), 6);
        assert_eq!(
            redact("Bearer sk-secret-1 bad", Some("sk-secret-1")),
            "Bearer [redacted] bad"
        );
    }

    #[test]
    fn extra_body_and_headers_are_checked_and_credentials_kept_out_of_errors() {
        let m = parse_extra_body(r#"{"top_k": 1, "temperature": 0.7}"#).unwrap();
        assert_eq!(m["top_k"], 1);
        let e = parse_extra_body("{top_k: 1}").unwrap_err();
        assert!(e.contains("not JSON") && e.contains("line 1"), "{e}");
        let e = parse_extra_body(r#"{"stream": false}"#).unwrap_err();
        assert!(
            e.contains("\"stream\"") && e.contains("pilot sets itself"),
            "{e}"
        );
        assert!(
            parse_extra_body("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert_eq!(
            parse_header("X-Tenant:  team-a ").unwrap(),
            ("X-Tenant".to_string(), "team-a".to_string())
        );
        assert_eq!(parse_header("k=v").unwrap(), ("k".into(), "v".into()));
        assert!(parse_header("novalue").is_err());
        for name in [
            "Authorization",
            "X-Api-Key",
            "x-auth-token",
            "OpenAI-Secret",
        ] {
            assert!(sensitive_header(name), "{name}");
        }
        assert!(!sensitive_header("X-Tenant"));
        let client = Client::new(ClientOptions {
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            api: Api::Chat,
            api_key: Some("sk-1".into()),
            timeout: Duration::from_secs(1),
            exact_output: false,
            tokenizer: None,
            extra_body: parse_extra_body(r#"{"temperature": 0.7, "top_k": 3}"#).unwrap(),
            headers: vec![
                ("X-Api-Key".into(), "secret-xyz".into()),
                ("X-Tenant".into(), "a".into()),
            ],
        })
        .unwrap();
        assert_eq!(
            client.redact("key secret-xyz tenant a sk-1"),
            "key [redacted] tenant a [redacted]"
        );
        let body: serde_json::Value = serde_json::from_slice(&client.body(
            &Prompt::Chat(vec![
                Message::user("hi".into()),
                Message::assistant("hello".into()),
                Message::user("more".into()),
            ]),
            4,
        ))
        .unwrap();
        assert_eq!(
            (body["temperature"].clone(), body["top_k"].clone()),
            (0.7.into(), 3.into())
        );
        assert_eq!(body["messages"][1]["role"], "assistant");
        assert_eq!(body["messages"][2]["content"], "more");
    }
}

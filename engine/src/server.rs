//! The OpenAI-compatible HTTP server (axum): `/v1/completions`, `/v1/chat/completions`
//! (streaming as server-sent events, one token per chunk), `/v1/models`, `/health` and
//! Prometheus `/metrics`. Wire formats follow vLLM's, so one client measures both.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::EngineError;
use crate::engine::{
    Engine, EngineOptions, EngineStats, FinishReason, GenerationEvent, ModelInfo, Usage,
};
use crate::sampling::SamplingParams;
use crate::tokenizer;

/// Where to serve which engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    pub engine: EngineOptions,
    /// 127.0.0.1 unless told otherwise: the server has no authentication.
    pub host: IpAddr,
    /// 0 picks a free port (tests and `characterize` do); see [`ServerHandle::addr`].
    pub port: u16,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            engine: EngineOptions::default(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
        }
    }
}

impl ServeOptions {
    /// `model` with default engine options on 127.0.0.1 at a free port: the server
    /// `characterize` starts when given no endpoint.
    pub fn ephemeral(model: impl Into<String>) -> Self {
        let engine = EngineOptions {
            model: model.into(),
            ..EngineOptions::default()
        };
        Self {
            engine,
            port: 0,
            ..Self::default()
        }
    }
}

/// A running server. [`ServerHandle::shutdown`] stops it; dropping the handle also signals it
/// to stop.
#[derive(Debug)]
pub struct ServerHandle {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The name requests use in `"model"`.
    pub model_name: String,
    engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// `http://addr`, the base of every route.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenAI base URL, `http://addr/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn info(&self) -> &ModelInfo {
        self.engine.info()
    }

    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Stops accepting connections, lets open responses finish (for up to 10 s) and stops the
    /// engine.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the engine (model load runs on a blocking thread) and serves it in the current
/// tokio runtime.
pub async fn spawn_server(opts: ServeOptions) -> Result<ServerHandle, EngineError> {
    let engine = tokio::task::spawn_blocking(move || Engine::start(opts.engine))
        .await
        .map_err(|_| EngineError::Stopped)??;
    let engine = Arc::new(engine);
    let addr = SocketAddr::new(opts.host, opts.port);
    let io_err = |source| EngineError::Io {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io_err)?;
    let addr = listener.local_addr().map_err(io_err)?;
    // One SSE chunk per token: without TCP_NODELAY, Nagle's algorithm holds a small write
    // until the client's delayed ACK (~40 ms), and tokens arrive in bursts, not as produced.
    let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
        let _ = s.set_nodelay(true);
    });
    let model_name = engine.info().name.clone();
    let app = router(AppState {
        engine: engine.clone(),
        next_id: Arc::new(AtomicU64::new(0)),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(ServerHandle {
        addr,
        model_name,
        engine,
        stop: Some(stop),
        task: Some(task),
    })
}

/// `pilot serve`: starts the server, prints its URL, runs until Ctrl-C.
pub fn serve_blocking(opts: ServeOptions) -> Result<(), EngineError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| EngineError::Io {
            addr: "tokio runtime".to_string(),
            source,
        })?;
    runtime.block_on(async move {
        let handle = spawn_server(opts).await?;
        let info = handle.info();
        println!(
            "pilot engine: {} ({:?}, {}, {} on {}, {} weights) at {}  (Ctrl-C stops)",
            handle.model_name,
            info.config.architecture,
            info.dtype,
            info.kv_cache_tokens,
            info.device,
            if info.random_weights {
                "random"
            } else {
                "loaded"
            },
            handle.openai_base_url()
        );
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        Ok(())
    })
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    next_id: Arc<AtomicU64>,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route: see /v1/models".to_string(),
            )
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "method {method} is not allowed here: completions take POST, /v1/models GET"
                ),
            )
        })
        .with_state(state)
}

/// An OpenAI-style error body (`{"error": {message, type, param, code}}`), for every error the
/// server answers, so clients parse one shape whatever went wrong.
fn error(status: StatusCode, message: String) -> Response {
    let kind = match status {
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedError",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeError",
        s if s.is_server_error() => "InternalServerError",
        _ => "BadRequestError",
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn models(State(app): State<AppState>) -> Response {
    let info = app.engine.info();
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": info.name, "object": "model", "created": now_secs(), "owned_by": "pilot",
            "root": info.name, "max_model_len": info.max_model_len,
        }],
    }))
    .into_response()
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.engine.metrics().encode(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields both endpoints share; unknown fields are ignored, as OpenAI clients send many.
#[derive(Debug, Deserialize)]
struct Common {
    model: Option<String>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    min_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    ignore_eos: Option<bool>,
    n: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: Prompt,
    #[serde(flatten)]
    common: Common,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    #[serde(flatten)]
    common: Common,
}

/// Default `max_tokens` of a chat request without one (vLLM fills the context instead; with
/// random weights that is thousands of tokens of noise).
const CHAT_DEFAULT_MAX_TOKENS: usize = 256;

/// Completions default to 16 tokens, as OpenAI's and vLLM's do.
const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

/// The request body as JSON; a body the server would not read (over axum's 2 MB limit, or
/// cut off) answers with its own status in the OpenAI error shape. The error is the finished
/// response.
#[allow(clippy::result_large_err)]
fn parse<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, Response> {
    let body = body.map_err(|r| error(r.status(), r.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| bad_request(format!("invalid request body: {e}")))
}

#[allow(clippy::result_large_err)]
fn params(app: &AppState, c: &Common, default_max: usize) -> Result<SamplingParams, Response> {
    let info = app.engine.info();
    if let Some(model) = c.model.as_ref().filter(|m| **m != info.name) {
        return Err(bad_request(format!(
            "The model `{model}` does not exist: this server serves `{}`",
            info.name
        )));
    }
    if c.n.is_some_and(|n| n != 1) {
        return Err(bad_request(
            "n must be 1: send one request per completion".to_string(),
        ));
    }
    let max_tokens = c
        .max_completion_tokens
        .or(c.max_tokens)
        .unwrap_or(default_max);
    Ok(SamplingParams {
        max_tokens,
        min_tokens: c.min_tokens.unwrap_or(0),
        temperature: c.temperature.unwrap_or(1.0),
        top_p: c.top_p.unwrap_or(1.0),
        seed: c.seed,
        ignore_eos: c.ignore_eos.unwrap_or(info.random_weights),
    })
}

async fn completions(State(app): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: CompletionRequest = match parse(body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let vocab = app.engine.info().config.vocab_size;
    let ids = match req.prompt {
        Prompt::Text(text) => tokenizer::encode(&text, vocab),
        Prompt::Ids(ids) => ids,
        Prompt::Texts(mut texts) if texts.len() == 1 => tokenizer::encode(&texts.remove(0), vocab),
        Prompt::IdLists(mut lists) if lists.len() == 1 => lists.remove(0),
        Prompt::Texts(_) | Prompt::IdLists(_) => {
            return bad_request("send one prompt per request".to_string());
        }
    };
    let default_max = COMPLETION_DEFAULT_MAX_TOKENS;
    run(app, ids, &req.common, default_max, Kind::Completion).await
}

async fn chat_completions(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: ChatRequest = match parse(body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.messages.is_empty() {
        return bad_request("messages is empty: send at least one message".to_string());
    }
    let texts: Vec<(String, String)> = req
        .messages
        .iter()
        .map(|m| {
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .collect::<Vec<_>>()
                    .join(""),
            };
            (m.role.clone(), content)
        })
        .collect();
    let prompt = tokenizer::chat_prompt(texts.iter().map(|(r, c)| (r.as_str(), c.as_str())));
    let info = app.engine.info();
    let ids = tokenizer::encode(&prompt, info.config.vocab_size);
    let default_max =
        CHAT_DEFAULT_MAX_TOKENS.min(info.max_model_len.saturating_sub(ids.len()).max(1));
    run(app, ids, &req.common, default_max, Kind::Chat).await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Completion,
    Chat,
}

/// Builds the JSON of one response or chunk.
#[derive(Clone)]
struct Chunker {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
    include_usage: bool,
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens})
}

impl Chunker {
    fn token_chunk(&self, token: u32, first: bool, finish: Option<FinishReason>) -> String {
        let text = tokenizer::decode_token(token);
        let finish = finish.map(FinishReason::as_str);
        let mut chunk = match self.kind {
            Kind::Completion => json!({
                "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
            }),
            Kind::Chat => {
                // The role rides on the first token's chunk: one token per chunk, always.
                let delta = if first {
                    json!({"role": "assistant", "content": text})
                } else {
                    json!({"content": text})
                };
                json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                })
            }
        };
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk.to_string()
    }

    fn usage_chunk(&self, usage: Usage) -> String {
        let object = if self.kind == Kind::Chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": [], "usage": usage_json(usage)})
        .to_string()
    }

    fn full(&self, tokens: &[u32], reason: FinishReason, usage: Usage) -> Value {
        let text: String = tokens.iter().map(|&t| tokenizer::decode_token(t)).collect();
        let choice = match self.kind {
            Kind::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": reason.as_str()})
            }
            Kind::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
                                 "logprobs": null, "finish_reason": reason.as_str()}),
        };
        let object = if self.kind == Kind::Chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": [choice], "usage": usage_json(usage)})
    }
}

async fn run(
    app: AppState,
    ids: Vec<u32>,
    common: &Common,
    default_max: usize,
    kind: Kind,
) -> Response {
    let params = match params(&app, common, default_max) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let rx = match app.engine.submit(ids, params) {
        Ok(rx) => rx,
        Err(EngineError::InvalidRequest(m)) => return bad_request(m),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let n = app.next_id.fetch_add(1, Ordering::Relaxed);
    let chunker = Chunker {
        id: format!(
            "{}-{n}",
            if kind == Kind::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            }
        ),
        created: now_secs(),
        model: app.engine.info().name.clone(),
        kind,
        include_usage: common
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
    };
    if common.stream {
        stream(rx, chunker)
    } else {
        collect(rx, chunker).await
    }
}

async fn collect(mut rx: UnboundedReceiver<GenerationEvent>, chunker: Chunker) -> Response {
    let mut tokens = Vec::new();
    while let Some(event) = rx.recv().await {
        tokens.push(event.token);
        if let Some(done) = event.finished {
            return axum::Json(chunker.full(&tokens, done.reason, done.usage)).into_response();
        }
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Stopped.to_string(),
    )
}

enum StreamState {
    Tokens {
        rx: UnboundedReceiver<GenerationEvent>,
        first: bool,
    },
    Usage(Usage),
    Done,
    End,
}

/// `data: {chunk}` per token (the last carries `finish_reason`), then the usage chunk when
/// `stream_options.include_usage` asks for it, then `data: [DONE]`. Dropping the stream (the
/// client left) closes the request's channel, and the scheduler drops the sequence.
fn stream(rx: UnboundedReceiver<GenerationEvent>, chunker: Chunker) -> Response {
    let events =
        futures_util::stream::unfold(StreamState::Tokens { rx, first: true }, move |state| {
            let chunker = chunker.clone();
            async move {
                let (data, next) = match state {
                    StreamState::Tokens { mut rx, first } => match rx.recv().await {
                        Some(event) => {
                            let data = chunker.token_chunk(
                                event.token,
                                first,
                                event.finished.map(|f| f.reason),
                            );
                            let next = match event.finished {
                                Some(f) if chunker.include_usage => StreamState::Usage(f.usage),
                                Some(_) => StreamState::Done,
                                None => StreamState::Tokens { rx, first: false },
                            };
                            (data, next)
                        }
                        None => {
                            let body = json!({"error": {"message": EngineError::Stopped.to_string(),
                                                    "type": "InternalServerError", "code": 503}});
                            (body.to_string(), StreamState::End)
                        }
                    },
                    StreamState::Usage(usage) => (chunker.usage_chunk(usage), StreamState::Done),
                    StreamState::Done => ("[DONE]".to_string(), StreamState::End),
                    StreamState::End => return None,
                };
                Some((Ok::<_, Infallible>(Event::default().data(data)), next))
            }
        });
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server(max_batch: usize) -> ServerHandle {
        let mut opts = ServeOptions::ephemeral("tiny-llama");
        opts.engine.max_batch = max_batch;
        spawn_server(opts).await.unwrap()
    }

    /// The `data:` payloads of an SSE body.
    fn sse_data(body: &str) -> Vec<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_completions_and_chat_over_http() {
        let s = server(8).await;
        assert!(s.addr.ip().is_loopback());
        let http = reqwest::Client::new();
        let url = s.openai_base_url();

        let body = json!({"model": "tiny-llama", "prompt": [1, 2, 3, 4, 5], "max_tokens": 7,
                          "stream": true, "stream_options": {"include_usage": true}});
        let resp = http
            .post(format!("{url}/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let data = sse_data(&resp.text().await.unwrap());
        assert_eq!(data.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let tokens: Vec<&Value> = chunks
            .iter()
            .filter(|c| !c["choices"].as_array().unwrap().is_empty())
            .collect();
        assert_eq!(tokens.len(), 7);
        assert!(
            tokens[..6]
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null())
        );
        assert_eq!(tokens[6]["choices"][0]["finish_reason"], "length");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(
            (
                usage["prompt_tokens"].as_u64(),
                usage["completion_tokens"].as_u64()
            ),
            (Some(5), Some(7))
        );
        assert_eq!(usage["total_tokens"], 12);

        // Chat, streaming without usage: tokens then [DONE].
        let body = json!({"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}],
                          "max_tokens": 4, "stream": true});
        let resp = http
            .post(format!("{url}/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let data = sse_data(&resp.text().await.unwrap());
        assert_eq!(data.len(), 5, "{data:?}");
        let first: Value = serde_json::from_str(&data[0]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");

        // Chat, not streaming: usage counts the byte-tokenized prompt.
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0});
        let v: Value = http
            .post(format!("{url}/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let prompt_len = tokenizer::chat_prompt([("user", "hi")]).len() as u64;
        assert_eq!(v["usage"]["prompt_tokens"].as_u64(), Some(prompt_len));
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");

        // Text completion, not streaming.
        let body = json!({"prompt": "hello", "max_tokens": 2});
        let v: Value = http
            .post(format!("{url}/completions"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (
                v["usage"]["prompt_tokens"].as_u64(),
                v["usage"]["completion_tokens"].as_u64()
            ),
            (Some(5), Some(2))
        );

        let v: Value = http
            .get(format!("{url}/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["data"][0]["id"], "tiny-llama");
        assert_eq!(
            http.get(format!("{}/health", s.url()))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        s.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_requests_get_openai_errors() {
        let s = server(8).await;
        let http = reqwest::Client::new();
        let url = format!("{}/completions", s.openai_base_url());
        let cases = [
            (
                json!({"model": "gpt-5", "prompt": [1], "max_tokens": 1}).to_string(),
                "does not exist",
            ),
            (
                json!({"prompt": [1, 2], "max_tokens": 600}).to_string(),
                "maximum context length is 512",
            ),
            (
                json!({"prompt": [9999], "max_tokens": 1}).to_string(),
                "outside the vocabulary",
            ),
            (
                json!({"prompt": [], "max_tokens": 1}).to_string(),
                "prompt is empty",
            ),
            ("{not json".to_string(), "invalid request body"),
        ];
        for (body, needle) in cases {
            let resp = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400);
            let v: Value = resp.json().await.unwrap();
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
        }
        assert_eq!(
            http.get(format!("{}/nope", s.url()))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        // Errors outside the handlers keep the OpenAI shape too: a wrong method, a body over
        // the 2 MB limit.
        let oversized = format!(
            r#"{{"prompt": "{}", "max_tokens": 1}}"#,
            "a".repeat(3 << 20)
        );
        for (resp, status) in [
            (http.get(&url).send().await.unwrap(), 405),
            (
                http.post(&url)
                    .header("content-type", "application/json")
                    .body(oversized)
                    .send()
                    .await
                    .unwrap(),
                413,
            ),
        ] {
            assert_eq!(resp.status(), status);
            let v: Value = resp.json().await.expect("an OpenAI-style JSON error body");
            assert_eq!(v["error"]["code"], status);
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        s.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_batched() {
        let s = server(16).await;
        let http = reqwest::Client::new();
        let url = format!("{}/completions", s.openai_base_url());
        let requests = (0..16).map(|i| {
            let body = json!({"prompt": (0..4 + i).collect::<Vec<u32>>(), "max_tokens": 8, "stream": i % 2 == 0});
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().text().await.unwrap() })
        });
        let bodies = futures_util::future::join_all(requests).await;
        for (i, body) in bodies.into_iter().enumerate() {
            let body = body.unwrap();
            if i % 2 == 0 {
                assert_eq!(sse_data(&body).len(), 9, "{body}");
            } else {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["usage"]["completion_tokens"], 8);
            }
        }
        let metrics = http
            .get(format!("{}/metrics", s.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for name in [
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:generation_tokens_total",
            "vllm:prompt_tokens_total",
        ] {
            assert!(metrics.contains(name), "{name} missing from\n{metrics}");
        }
        assert!(
            metrics.contains(r#"vllm:generation_tokens_total{model_name="tiny-llama"} 128"#),
            "{metrics}"
        );
        let max_batch = s.stats().max_running_observed;
        assert!(
            max_batch > 1,
            "16 concurrent requests never shared a step: {:?}",
            s.stats()
        );
        s.shutdown().await;
    }
}

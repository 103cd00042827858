//! End-to-end tests of `--dataset` (random, sharegpt, prefix, multi-turn), `--tokenizer`
//! from a path and from a Hub id, `--extra-body` and `--header`, and the errors of bad input.
//! They run the real binary against `pilot serve` (the embedded engine's real HTTP server) on
//! a loopback port.
//!
//! Two small servers are written here, because what they stand for cannot be reached or
//! observed otherwise: a stand-in for the Hugging Face Hub (`HF_ENDPOINT` points at it: the
//! real Hub is out of reach in tests) that serves a tokenizer.json, and an echo server that
//! records the headers and bodies pilot sends (the embedded engine accepts unknown fields
//! but does not show them).

use assert_cmd::Command;
use pilot_core::requests::read_requests;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serve::{run_dir, serve};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/characterize/tests/fixtures/sharegpt_small.json"
);

/// A real word-level `tokenizer.json` (whitespace pre-tokenizer; the fixture's words and
/// 300 more).
fn word_tokenizer_json() -> String {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for w in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let n = vocab.len();
        vocab.entry(w.to_string()).or_insert(n.into());
    }
    for i in 0..300 {
        let n = vocab.len();
        vocab.insert(format!("w{i}"), n.into());
    }
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
    .to_string()
}

fn characterize(port: u16, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("pilot")
        .unwrap()
        .args([
            "characterize",
            "--endpoint",
            &format!("http://127.0.0.1:{port}/v1"),
            "--users",
            "1",
            "--duration",
            "120s",
            "--warmup",
            "0s",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .env_remove("HF_TOKEN")
        .env_remove("HF_ENDPOINT")
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

fn measured(out: &Path) -> Vec<pilot_core::requests::RequestRecord> {
    let rows = read_requests(&run_dir(out).join("requests.parquet")).unwrap();
    rows.into_iter().filter(|r| !r.warmup).collect()
}

/// What one HTTP request to a test server held.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A one-thread HTTP server on a free port: records each request and answers with
/// `answer(request) -> (status, content type, body)`.
fn tiny_server(
    answer: impl Fn(&Seen) -> (u16, &'static str, String) + Send + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap_or(0);
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let req = Seen {
                line: line.trim().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, ctype, text) = answer(&req);
            log.lock().unwrap().push(req);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (port, seen)
}

/// ShareGPT's texts go out as text, with lengths counted by a tokenizer given as a path and
/// then as a Hub id (downloaded with HF_TOKEN from HF_ENDPOINT, cached under HF_HOME, the
/// token never written); random lengths spread within vLLM's bounds; prefix groups.
#[test]
fn sharegpt_random_and_prefix_datasets_run_against_the_embedded_server() {
    let server = serve();
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    std::fs::create_dir_all(&tok).unwrap();
    std::fs::write(tok.join("tokenizer.json"), word_tokenizer_json()).unwrap();

    // sharegpt, tokenizer from a directory holding tokenizer.json.
    let out = dir.path().join("sharegpt");
    let o = characterize(
        server.port,
        &out,
        &[
            "--dataset",
            "sharegpt",
            "--dataset-path",
            FIXTURE,
            "--tokenizer",
            tok.to_str().unwrap(),
            "--num-prompts",
            "4",
            "--sharegpt-output-len",
            "3",
        ],
    );
    let err = ok(&o);
    assert!(err.contains("counted by the given tokenizer"), "{err}");
    let rows = measured(&out);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.failure.is_none()), "{rows:?}");
    assert!(rows.iter().all(|r| r.token_times.len() == 3), "{rows:?}");

    // The same tokenizer from a Hub id, served by a local stand-in for the Hub.
    let json = word_tokenizer_json();
    let (hub, seen) = tiny_server(move |req| {
        if req
            .line
            .starts_with("GET /acme/tiny/resolve/main/tokenizer.json")
        {
            (200, "application/json", json.clone())
        } else {
            (404, "text/plain", "no such model".into())
        }
    });
    let home = dir.path().join("hf-home");
    let out = dir.path().join("hub");
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args([
            "characterize",
            "--endpoint",
            &format!("http://127.0.0.1:{}/v1", server.port),
            "--users",
            "1",
            "--warmup",
            "0s",
            "--duration",
            "120s",
            "--num-prompts",
            "2",
            "--dataset",
            "sharegpt",
            "--dataset-path",
            FIXTURE,
            "--tokenizer",
            "acme/tiny",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{hub}"))
        .env("HF_HOME", &home)
        .env("HF_TOKEN", "hf_secret_abc123")
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap();
    let err = ok(&o);
    assert!(!err.contains("hf_secret_abc123"));
    let cached = home.join("pilot/tokenizers/acme/tiny/tokenizer.json");
    assert!(cached.is_file(), "not cached at {}", cached.display());
    let auth: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|s| s.headers.iter().filter(|(k, _)| k == "authorization"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(auth, ["Bearer hf_secret_abc123"]);
    let run_json = std::fs::read_to_string(run_dir(&out).join("run.json")).unwrap();
    assert!(!run_json.contains("hf_secret_abc123"));
    assert_eq!(measured(&out).len(), 2);

    // A tokenizer that cannot be had (the Hub answers 404) is an error unless the fallback is
    // asked for; then the run goes on with estimated lengths, and says so.
    let fallback = |extra: &[&str], out: &Path| {
        Command::cargo_bin("pilot")
            .unwrap()
            .args(["characterize", "--endpoint"])
            .arg(format!("http://127.0.0.1:{}/v1", server.port))
            .args(["--users", "1", "--warmup", "0s", "--num-prompts", "2"])
            .args(["--dataset", "sharegpt", "--dataset-path", FIXTURE])
            .args(["--tokenizer", "acme/missing", "--out"])
            .arg(out)
            .args(extra)
            .env("HF_ENDPOINT", format!("http://127.0.0.1:{hub}"))
            .env("HF_HOME", &home)
            .timeout(Duration::from_secs(240))
            .output()
            .unwrap()
    };
    let out = dir.path().join("fallback");
    let o = fallback(&[], &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("HTTP 404")
            && err.contains("--tokenizer-fallback estimate"),
        "{err}"
    );
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing ran"
    );
    let err = ok(&fallback(&["--tokenizer-fallback", "estimate"], &out));
    assert!(
        err.contains("continuing without a tokenizer") && err.contains("estimates"),
        "{err}"
    );
    assert_eq!(measured(&out).len(), 2);

    // random with a spread: token-id prompts, so the server counts exactly what was drawn.
    let out = dir.path().join("random");
    ok(&characterize(
        server.port,
        &out,
        &[
            "--dataset",
            "random",
            "--random-input-len",
            "40",
            "--random-output-len",
            "6",
            "--input-spread",
            "0.5",
            "--num-prompts",
            "12",
        ],
    ));
    let rows = measured(&out);
    assert_eq!(rows.len(), 12);
    assert!(
        rows.iter()
            .all(|r| (20..=60).contains(&r.input_tokens) && (3..=9).contains(&r.token_times.len()))
    );
    let distinct: std::collections::HashSet<u64> = rows.iter().map(|r| r.input_tokens).collect();
    assert!(distinct.len() > 3, "lengths spread: {distinct:?}");

    // prefix groups: every prompt is the prefix and its suffix.
    let out = dir.path().join("prefix");
    ok(&characterize(
        server.port,
        &out,
        &[
            "--dataset",
            "prefix",
            "--prefix-len",
            "32",
            "--suffix-len",
            "8",
            "--num-prefixes",
            "2",
            "--output-len",
            "4",
            "--num-prompts",
            "6",
        ],
    ));
    let rows = measured(&out);
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| r.input_tokens == 40 && r.token_times.len() == 4)
    );
}

/// Multi-turn conversations over the chat route: each turn carries the history (the
/// server's replies included), so later turns' inputs grow; the table records the
/// conversation and the turn.
#[test]
fn multi_turn_conversations_carry_their_history() {
    let server = serve();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synthetic");
    ok(&characterize(
        server.port,
        &out,
        &[
            "--api",
            "chat",
            "--dataset",
            "multi-turn",
            "--turns",
            "3",
            "--random-input-len",
            "16",
            "--random-output-len",
            "5",
            "--num-prompts",
            "6",
        ],
    ));
    let mut rows = measured(&out);
    rows.sort_by_key(|r| r.request_id);
    assert_eq!(rows.len(), 6);
    assert_eq!(
        rows.iter().map(|r| r.turn).collect::<Vec<_>>(),
        [0, 1, 2, 0, 1, 2].map(Some)
    );
    let convs: Vec<u64> = rows.iter().map(|r| r.conversation.unwrap()).collect();
    assert!(convs[0] == convs[1] && convs[1] == convs[2] && convs[3] != convs[0]);
    for c in rows.chunks(3) {
        assert!(
            c[0].input_tokens < c[1].input_tokens && c[1].input_tokens < c[2].input_tokens,
            "inputs grow with the history: {:?}",
            c.iter().map(|r| r.input_tokens).collect::<Vec<_>>()
        );
        // The history holds the first turn, the server's reply and the new turn: more than
        // the two turns alone.
        assert!(c[1].input_tokens > 2 * c[0].input_tokens, "{c:?}");
    }

    // From a ShareGPT file's conversations, lengths by a tokenizer.
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, word_tokenizer_json()).unwrap();
    let out = dir.path().join("sharegpt");
    ok(&characterize(
        server.port,
        &out,
        &[
            "--api",
            "chat",
            "--dataset",
            "multi-turn",
            "--dataset-path",
            FIXTURE,
            "--tokenizer",
            tok.to_str().unwrap(),
            "--sharegpt-output-len",
            "4",
            "--num-prompts",
            "5",
        ],
    ));
    let rows = measured(&out);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.failure.is_none() && r.turn.is_some()));
}

/// --extra-body and --header reach the server on every request; a credential header's value
/// is in no file; the embedded server accepts the extra fields.
#[test]
fn extra_body_and_headers_reach_the_server() {
    let sse = "data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    let (port, seen) = tiny_server(move |req| {
        if req.line.starts_with("POST /v1/completions") {
            (200, "text/event-stream", sse.into())
        } else {
            (404, "text/plain", "not here".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("echo");
    let flags = [
        "--model",
        "m",
        "--input-tokens",
        "4",
        "--output-tokens",
        "1",
        "--num-prompts",
        "2",
        "--extra-body",
        r#"{"top_k": 1, "temperature": 0.5, "chat_template_kwargs": {"thinking": false}}"#,
        "--header",
        "X-Tenant: team-a",
        "--header",
        "X-Api-Key: sk-hidden-123",
    ];
    ok(&characterize(port, &out, &flags));
    let posts: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.line.starts_with("POST"))
        .cloned()
        .collect();
    assert!(posts.len() >= 2, "{posts:?}");
    for p in &posts {
        let body: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(body["top_k"], 1);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["chat_template_kwargs"]["thinking"], false);
        assert_eq!(body["model"], "m");
        let h = |name: &str| {
            p.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("x-tenant"), Some("team-a"));
        assert_eq!(h("x-api-key"), Some("sk-hidden-123"));
    }
    let run = run_dir(&out);
    let run_json = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(run_json.contains("X-Tenant: team-a"), "{run_json}");
    assert!(run_json.contains("X-Api-Key: [redacted]"), "{run_json}");
    for f in std::fs::read_dir(&run).unwrap() {
        let f = f.unwrap().path();
        if f.is_dir() {
            continue;
        }
        let bytes = std::fs::read(f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("sk-hidden-123"));
    }

    // The embedded engine's real server accepts the same request.
    let server = serve();
    let out = dir.path().join("embedded");
    ok(&characterize(server.port, &out, &flags[2..]));
    assert!(measured(&out).iter().all(|r| r.failure.is_none()));
}

/// Bad input: each error names what is wrong and the fix, exits non-zero, and nothing runs.
#[test]
fn bad_dataset_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"conversations": [{"from": "human", "value": "hi"}]}, {"text": "no"}]"#,
    )
    .unwrap();
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, word_tokenizer_json()).unwrap();
    let (hub, _) = tiny_server(|_| (404, "text/plain", "Repository not found".into()));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--dataset",
                "sharegpt",
                "--dataset-path",
                bad.to_str().unwrap(),
                "--tokenizer",
                tok.to_str().unwrap(),
            ],
            "entry 1 has no \"conversations\"",
        ),
        (
            vec![
                "--dataset",
                "multi-turn",
                "--api",
                "chat",
                "--dataset-path",
                bad.to_str().unwrap(),
                "--tokenizer",
                tok.to_str().unwrap(),
            ],
            "entry 1 has no \"conversations\"",
        ),
        (vec!["--dataset", "sharegpt"], "give --dataset-path FILE"),
        (vec!["--dataset", "trace"], "give --dataset-path FILE"),
        (
            vec!["--dataset", "sharegpt", "--dataset-path", FIXTURE],
            "give --tokenizer PATH|HUB_ID",
        ),
        (
            vec!["--dataset", "random", "--workload", FIXTURE],
            "keep one",
        ),
        (
            vec!["--dataset", "random", "--prefix-len", "3"],
            "--prefix-len does not apply to --dataset random",
        ),
        (
            vec!["--dataset", "zipf"],
            "use random, sharegpt, prefix, multi-turn or trace",
        ),
        (vec!["--dataset", "multi-turn"], "add --api chat"),
        (vec!["--extra-body", "{top_k: 1}"], "is not JSON"),
        (
            vec!["--extra-body", r#"{"max_tokens": 5}"#],
            "pilot sets itself",
        ),
        (vec!["--header", "NoColonHere"], "write NAME: VALUE"),
        (
            vec![
                "--dataset",
                "sharegpt",
                "--dataset-path",
                FIXTURE,
                "--tokenizer",
                "acme/missing",
            ],
            "HTTP 404",
        ),
    ];
    for (args, expected) in cases {
        let out = dir.path().join("runs");
        let o = Command::cargo_bin("pilot")
            .unwrap()
            .args([
                "characterize",
                "--endpoint",
                "http://127.0.0.1:1/v1",
                "--out",
            ])
            .arg(&out)
            .args(&args)
            .env("HF_ENDPOINT", format!("http://127.0.0.1:{hub}"))
            .env("HF_HOME", dir.path().join("hf"))
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

//! `<run dir>/run.json`: what a run was, so that a result file found months later says what
//! produced it: the endpoint (credentials stripped), every option's value, what the server
//! says of itself (its models, its version), pilot's version, and when the run started and
//! ended. Written when the run starts (`"status": "running"`, so even a killed run has one)
//! and again when it ends.
//!
//! Secrets never reach it: the API key is named by its environment variable only, and the
//! endpoint loses its user and password and the values of query parameters that look like
//! keys ([`redacted_endpoint`]).
//!
//! [`read_run_json`] reads it back, for `pilot report`.

use crate::error::CharacterizeError;
use crate::options::CharacterizeOptions;
use crate::report::CharacterizeReport;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Query parameter names whose values are secrets (`?api-key=...`, `?token=...`).
const SECRET_PARAMS: [&str; 6] = ["key", "token", "secret", "password", "auth", "sig"];

/// The endpoint as it can be shown and saved: no user or password, and the values of
/// query parameters named like keys replaced by `REDACTED`.
pub fn redacted_endpoint(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        // Not a URL: validation refuses it before anything is written.
        return "<not a URL>".into();
    };
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_PARAMS
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                let v = if secret {
                    "REDACTED".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Every option's value, by its flag's name.
fn options_json(o: &CharacterizeOptions) -> Value {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    json!({
        "endpoint": o.endpoint.as_deref().map(redacted_endpoint),
        "model": o.model,
        "api": format!("{:?}", o.api).to_ascii_lowercase(),
        "tokenizer": o.tokenizer,
        "tokenizer_fallback": if o.tokenizer_fallback { "estimate" } else { "error" },
        "extra_body": o.extra_body,
        // Credentials' values never reach the file.
        "headers": o.headers.iter().map(|(k, v)| {
            let v = if crate::client::sensitive_header(k) { "[redacted]" } else { v.as_str() };
            format!("{k}: {v}")
        }).collect::<Vec<_>>(),
        "users": o.users,
        "rate": o.rates.iter().map(|r| r.0).collect::<Vec<_>>(),
        "burstiness": o.burstiness,
        "duration_s": secs(o.duration),
        "warmup_s": secs(o.warmup),
        "num_prompts": o.num_prompts,
        "workload": format!("{:?}", o.workload),
        "replay": o.replay,
        "seed": o.seed,
        "slo": o.slos.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "out": o.out,
        "append_to": o.append_to,
        "resume": o.resume,
        // The variable's name, never its value.
        "api_key_env": o.api_key_env,
        "max_failures": o.max_failure_fraction,
        "timeout_s": secs(o.request_timeout),
        "drain_timeout_s": secs(o.drain()),
        "exact_output": o.exact_output,
        "gpu": o.gpu,
        "gpu_count": o.gpu_count,
        "engine_label": o.engine_label,
        "max_batch": o.engine_max_batch,
        "tune": o.tune.as_ref().map(|t| json!({
            // As typed, but with the API key's and the Hub token's values cut out: the
            // shell has already put them into a command like `vllm serve --api-key $KEY`.
            "launch": t.launch.as_deref().map(|l| secret_free(l, &o.api_key_env)),
            "lo": t.lo, "hi": t.hi,
            "health_timeout_s": secs(t.health_timeout),
        })),
    })
}

/// `text` with the values of the API key's variable and of `HF_TOKEN` redacted.
fn secret_free(text: &str, api_key_env: &str) -> String {
    [api_key_env, "HF_TOKEN"]
        .iter()
        .fold(text.to_string(), |t, var| {
            crate::client::redact(&t, std::env::var(var).ok().as_deref())
        })
}

/// Writes `<run dir>/run.json` (atomically: a reader never sees half of it).
pub(crate) fn write_run_json(
    o: &CharacterizeOptions,
    report: &CharacterizeReport,
    started: SystemTime,
    ended: Option<SystemTime>,
    status: &str,
) -> Result<(), CharacterizeError> {
    let info = json!({
        "pilot_version": env!("CARGO_PKG_VERSION"),
        "command": "characterize",
        "status": status,
        "started": time(started),
        "ended": ended.map(time),
        "duration_s": ended.and_then(|e| e.duration_since(started).ok()).map(|d| d.as_secs_f64()),
        "endpoint": o.endpoint.as_deref().map(redacted_endpoint),
        "embedded_engine": o.endpoint.is_none(),
        "api_key_env": o.api_key_env,
        "api_key_set": std::env::var(&o.api_key_env).is_ok_and(|k| !k.is_empty()),
        "server": {
            "models": report.server_models,
            "version": report.server_version,
        },
        "levels": report.levels.len(),
        "stopped_early": report.stopped_early,
        "failure": report.failure,
        "appended_to": report.appended_to,
        "options": options_json(o),
    });
    write_json(&report.run_dir.join("run.json"), &info)
}

/// Writes `value` to `path` as pretty JSON, atomically (a temporary file renamed over it), so
/// that a reader never sees half a file: `run.json`, `results.json`.
pub(crate) fn write_json(path: &std::path::Path, value: &Value) -> Result<(), CharacterizeError> {
    let io = |source| CharacterizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    pilot_core::replace::replace_file(path, |tmp| std::fs::write(tmp, text).map_err(io), io)
}

/// `run.json` as read back: what a report shows of it. Every field is optional and unknown
/// ones are ignored, so that a file of an older or newer pilot still reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunInfo {
    pub pilot_version: Option<String>,
    /// `running` (never ended: killed, or still going), `interrupted`, `failed`, `finished`.
    pub status: Option<String>,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_s: Option<f64>,
    pub endpoint: Option<String>,
    pub embedded_engine: Option<bool>,
    #[serde(default)]
    pub server: ServerInfo,
    pub stopped_early: Option<String>,
    pub failure: Option<String>,
    /// Every option's value, by its flag's name (see `options_json`).
    #[serde(default)]
    pub options: serde_json::Map<String, Value>,
}

/// What the server said of itself.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerInfo {
    #[serde(default)]
    pub models: Vec<String>,
    pub version: Option<String>,
}

impl RunInfo {
    /// The run ended normally (not killed, interrupted or failed).
    pub fn finished(&self) -> bool {
        self.status.as_deref() == Some("finished")
    }

    /// The options that were set, as flags: `--users [1,2]`, `--duration-s 3` (nulls, empty
    /// lists and `false` left out).
    pub fn flags(&self) -> Vec<String> {
        self.options
            .iter()
            .filter(|(_, v)| match v {
                Value::Null | Value::Bool(false) => false,
                Value::Array(a) => !a.is_empty(),
                _ => true,
            })
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(true) => String::new(),
                    other => other.to_string(),
                };
                format!("--{} {value}", k.replace('_', "-"))
                    .trim_end()
                    .to_string()
            })
            .collect()
    }
}

/// Why `run.json` could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RunJsonError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a run.json that pilot characterize wrote: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `<run dir>/run.json` back.
pub fn read_run_json(path: &Path) -> Result<RunInfo, RunJsonError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunJsonError::Read {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| RunJsonError::Parse {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_command_keeps_no_key_the_shell_put_in_it() {
        let var = "PILOT_TEST_RUNINFO_KEY";
        // SAFETY: a variable no other test reads, set before this test reads it.
        unsafe { std::env::set_var(var, "sk-live-1234567890") };
        let text = secret_free("vllm serve m --api-key sk-live-1234567890 --port 8000", var);
        assert!(!text.contains("sk-live-1234567890"), "{text}");
        assert!(text.starts_with("vllm serve m --api-key ") && text.ends_with("--port 8000"));
    }

    #[test]
    fn credentials_and_query_secrets_leave_the_endpoint() {
        let shown =
            redacted_endpoint("https://bob:hunter2@gw.example.com/v1?api-key=sk-123&region=eu");
        assert!(
            !shown.contains("bob") && !shown.contains("hunter2") && !shown.contains("sk-123"),
            "{shown}"
        );
        assert!(
            shown.contains("gw.example.com/v1")
                && shown.contains("region=eu")
                && shown.contains("api-key=REDACTED"),
            "{shown}"
        );
        assert_eq!(
            redacted_endpoint("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1"
        );
    }

    #[test]
    fn run_json_reads_back_with_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let info = json!({
            "pilot_version": "0.1.0", "status": "running", "started": "2026-01-01T00:00:00Z",
            "server": {"models": ["m"], "version": null}, "future_field": 1,
            "options": {"users": [1, 2], "rate": [], "model": "m<x>", "endpoint": null,
                        "exact_output": true, "tune": null},
        });
        write_json(&path, &info).unwrap();
        let back = read_run_json(&path).unwrap();
        assert!(!back.finished());
        assert_eq!(back.server.models, ["m"]);
        assert_eq!(
            back.flags(),
            ["--exact-output", "--model m<x>", "--users [1,2]"]
        );
        std::fs::write(&path, "{").unwrap();
        let err = read_run_json(&path).unwrap_err().to_string();
        assert!(
            err.contains("run.json") && err.contains("not a run.json"),
            "{err}"
        );
    }
}

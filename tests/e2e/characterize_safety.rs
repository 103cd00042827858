//! End-to-end tests of `pilot characterize` when things go wrong: a rerun into a used
//! directory, a stalled or dead server, a stop signal, bad flags. Each runs the real binary
//! against pilot's embedded engine or a small loopback server written here, for seconds.

use assert_cmd::Command;
use pilot_core::metrics::FailureKind;
use pilot_core::requests::read_requests;
use pilot_core::schema::read_measurements;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for "ends shortly": the runs below take a few seconds; this only catches a
/// run that waits for the request timeout.
const ENDS_WITHIN: Duration = Duration::from_secs(60);

fn pilot() -> Command {
    Command::cargo_bin("pilot").expect("the pilot binary builds")
}

/// `pilot characterize` with a short, cheap load (1 s levels unless `extra` sets
/// `--duration`) and no API key, plus `extra`.
fn characterize(out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let duration = if extra.contains(&"--duration") {
        &[][..]
    } else {
        &["--duration", "1s"][..]
    };
    let quick = [
        "characterize",
        "--out",
        out,
        "--users",
        "1",
        "--warmup",
        "0s",
        "--input-tokens",
        "8",
        "--output-tokens",
        "2",
        "--api-key-env",
        "PILOT_TEST_UNSET_KEY",
    ];
    pilot()
        .args(quick)
        .args(duration)
        .args(extra)
        .timeout(ENDS_WITHIN)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 (pilot's error code), no panic; the stderr.
fn failed(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The run directories under `out` (each run writes its own), oldest first.
fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The one run directory under `out`.
fn run_dir(out: &Path) -> PathBuf {
    let dirs = run_dirs(out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn a_rerun_writes_a_new_run_directory_and_leaves_the_earlier_one_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let first = characterize(&out, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let earlier = run_dir(&out);
    assert!(stderr(&first).contains(earlier.to_str().unwrap()));
    let files = ["summary.csv", "requests.parquet", "run.json"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(earlier.join(f)).unwrap())
        .collect();

    let again = characterize(&out, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let dirs = run_dirs(&out);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    assert_eq!(dirs[0], earlier, "names sort by time");
    for (f, bytes) in files.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(earlier.join(f)).unwrap(),
            bytes,
            "{f} changed"
        );
    }
    assert_eq!(
        read_measurements(&dirs[1].join("summary.csv"))
            .unwrap()
            .len(),
        1
    );

    // --resume continues the latest run: its level is kept, nothing new is made.
    let resumed = characterize(&out, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(run_dirs(&out).len(), 2);
    assert!(stderr(&resumed).contains("resumed"), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains(dirs[1].to_str().unwrap()));

    // --resume RUN_DIR continues that one, the earlier.
    let first = characterize(&out, &["--resume", earlier.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(run_dirs(&out).len(), 2);
    let err = stderr(&first);
    assert!(
        err.contains("resumed") && err.contains(earlier.to_str().unwrap()),
        "{err}"
    );
    // Its first run.json is kept aside, byte for byte.
    let kept: Vec<PathBuf> = run_dirs(&earlier)
        .into_iter()
        .filter(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(kept[0].join("run.json")).unwrap(), before[2]);
}

#[test]
fn run_json_records_the_run_but_never_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let secret = "sk-pilot-test-secret-4242";
    let o = pilot()
        .env("PILOT_TEST_KEY", secret)
        .args(["characterize", "--out", out.to_str().unwrap()])
        .args(["--users", "1", "--duration", "1s", "--warmup", "0s"])
        .args(["--input-tokens", "8", "--output-tokens", "2"])
        .args(["--api-key-env", "PILOT_TEST_KEY", "--slo", "ttft=5s"])
        .timeout(ENDS_WITHIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(run_dir(&out).join("run.json")).unwrap();
    assert!(!text.contains(secret), "{text}");
    let info: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["pilot_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["status"], "finished");
    assert_eq!(info["api_key_env"], "PILOT_TEST_KEY");
    assert_eq!(info["api_key_set"], true);
    assert_eq!(info["embedded_engine"], true);
    assert_eq!(info["options"]["users"], serde_json::json!([1]));
    assert_eq!(info["options"]["duration_s"], 1.0);
    assert!(
        info["started"].as_str().unwrap().starts_with("20"),
        "{text}"
    );
    assert!(info["ended"].is_string(), "{text}");
    // The embedded engine lists its model.
    assert_eq!(info["server"]["models"][0], "tiny-llama", "{text}");
}

/// A loopback server that lists model `m` and then, for every completion, sends the
/// response headers and nothing more. Its threads end within `LIFETIME`.
fn headers_then_nothing() -> u16 {
    const LIFETIME: Duration = Duration::from_secs(60);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let until = Instant::now() + LIFETIME;
    std::thread::spawn(move || {
        while Instant::now() < until {
            match listener.accept() {
                Ok((sock, _)) => {
                    std::thread::spawn(move || stall(sock, until));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
}

fn stall(mut sock: TcpStream, until: Instant) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let head = loop {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) if Instant::now() < until => continue,
            Err(_) => return,
        }
    };
    let answer = if head.starts_with("GET /v1/models") {
        let body = r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    } else if head.starts_with("POST") {
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_string()
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
    };
    if sock.write_all(answer.as_bytes()).is_err() || !head.starts_with("POST") {
        return;
    }
    // Hold the stream open, silent, until the client gives up (or the test's time is up).
    while Instant::now() < until {
        match sock.read(&mut buf) {
            Ok(0) => return,
            _ => continue,
        }
    }
}

#[test]
fn a_stalled_server_ends_the_run_shortly_after_its_window_and_fails_it() {
    let port = headers_then_nothing();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let endpoint = format!("http://127.0.0.1:{port}/v1");
    let start = Instant::now();
    let o = characterize(
        &out,
        &[
            "--endpoint",
            &endpoint,
            "--model",
            "m",
            "--duration",
            "2s",
            "--drain-timeout",
            "1s",
        ],
    );
    assert!(start.elapsed() < ENDS_WITHIN, "took {:?}", start.elapsed());
    let err = failed(&o);
    assert!(
        err.contains("no measured request succeeded") && err.contains("summary.csv"),
        "{err}"
    );
    let run = run_dir(&out);
    let records = read_requests(&run.join("requests.parquet")).unwrap();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r.failure, Some(FailureKind::Timeout), "{r:?}");
        assert!(r.error.contains("after the window"), "{}", r.error);
    }
    let rows = read_measurements(&run.join("summary.csv")).unwrap();
    assert!(
        rows[0].has_flag("no_completed_requests"),
        "{}",
        rows[0].flags
    );
}

#[test]
fn sigterm_saves_the_run_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pilot"))
        .args(["characterize", "--out", out.to_str().unwrap()])
        .args(["--users", "1", "--duration", "60s", "--warmup", "0s"])
        .args(["--input-tokens", "8", "--output-tokens", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait for the first periodic save of the level's requests (5 s into the level, in
    // levels/): requests were measured and the signal handlers are in place. Then stop it as
    // a scheduler would.
    let waiting = Instant::now();
    while !run_dirs(&out)
        .iter()
        .any(|d| d.join("levels/users-1.parquet").exists())
        && waiting.elapsed() < ENDS_WITHIN
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(start.elapsed() < ENDS_WITHIN);
    let err = failed(&o);
    assert!(err.contains("SIGTERM") && err.contains("--resume"), "{err}");
    let run = run_dir(&out);
    let records = read_requests(&run.join("requests.parquet")).unwrap();
    assert!(
        records.iter().any(|r| r.failure.is_none()),
        "the measured requests were saved"
    );
    read_measurements(&run.join("summary.csv")).unwrap();
    // The level's own file holds its requests too (saved before the signal: a subset).
    let level = read_requests(&run.join("levels/users-1.parquet")).unwrap();
    assert!(!level.is_empty() && level.len() <= records.len());
    let info = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(info.contains("\"interrupted\""), "{info}");
}

#[test]
fn endpoints_that_are_not_http_urls_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not-a-url", "ftp://127.0.0.1:8000/v1"] {
        let start = Instant::now();
        let err = failed(&characterize(&dir.path().join("run"), &["--endpoint", bad]));
        assert!(start.elapsed() < Duration::from_secs(10), "{bad}");
        assert!(
            err.contains("--endpoint")
                && err.contains(bad)
                && err.contains("http://127.0.0.1:8000/v1"),
            "{err}"
        );
    }
    assert!(!dir.path().join("run").exists(), "nothing ran");
}

#[test]
fn a_closed_port_exits_nonzero_with_the_files_written() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let endpoint = format!("http://127.0.0.1:{port}/v1");
    let err = failed(&characterize(
        &out,
        &["--endpoint", &endpoint, "--model", "m", "--duration", "30s"],
    ));
    assert!(
        err.contains("unreachable") || err.contains("no measured request"),
        "{err}"
    );
    let rows = read_measurements(&run_dir(&out).join("summary.csv")).unwrap();
    assert_eq!(rows[0].metrics.requests_ok, 0);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&out).join("run.json")).unwrap())
            .unwrap();
    assert_eq!(info["status"], "failed");
    assert!(
        info["failure"]
            .as_str()
            .unwrap()
            .contains("no measured request")
    );
    assert_eq!(info["server"]["models"], serde_json::json!([]));
}

#[test]
fn append_to_a_garbage_dataset_fails_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("dataset.csv");
    std::fs::write(&dataset, "not,a,dataset\n1,2,3\n").unwrap();
    let out = dir.path().join("run");
    let err = failed(&characterize(
        &out,
        &["--append-to", dataset.to_str().unwrap()],
    ));
    assert!(
        err.contains("--append-to")
            && err.contains("dataset.csv")
            && err.contains("nothing was measured"),
        "{err}"
    );
    assert!(!out.join("requests.parquet").exists(), "it measured first");
}

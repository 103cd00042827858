//! End-to-end tests of the flags and names people bring from `vllm bench serve`, GuideLLM
//! and friends: `--base-url` with a server root, `--max-concurrency`, `--num-prompts`,
//! `--goodput ttft:200`, `--quiet`, and `pilot completions`. They run the real binary
//! against `pilot serve` (the embedded engine's real HTTP server) on a loopback port.

use assert_cmd::Command;
use pilot_core::requests::read_requests;
use pilot_core::schema::read_frame;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::serve::{run_dir, serve};

#[test]
fn a_vllm_style_command_line_measures_a_server_root_and_stops_after_num_prompts() {
    let server = serve();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let started = Instant::now();
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args([
            "characterize",
            // A server root, as vLLM's --base-url takes it: pilot adds /v1.
            "--base-url",
            &format!("http://127.0.0.1:{}/", server.port),
            "--max-concurrency",
            "2",
            "--num-prompts",
            "6",
            // The window is long: only --num-prompts can end the level in time.
            "--duration",
            "120s",
            "--warmup",
            "0s",
            "--input-tokens",
            "8",
            "--output-tokens",
            "2",
            "--goodput",
            "ttft:60000",
            "e2el:60000",
            "--quiet",
            "--api-key-env",
            "PILOT_TEST_UNSET_KEY",
            "--out",
            out.to_str().unwrap(),
        ])
        .timeout(Duration::from_secs(100))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(100));
    // --quiet: no table on stdout.
    assert!(String::from_utf8_lossy(&o.stdout).trim().is_empty());
    let run = run_dir(&out);
    let measured: Vec<_> = read_requests(&run.join("requests.parquet"))
        .unwrap()
        .into_iter()
        .filter(|r| !r.warmup)
        .collect();
    assert_eq!(measured.len(), 6);
    assert!(measured.iter().all(|r| r.failure.is_none()), "{measured:?}");
    let summary = read_frame(&run.join("summary.csv")).unwrap();
    let goodput = summary.column("goodput_rps").unwrap().f64().unwrap().get(0);
    // Every request met the generous objectives: goodput is the request rate.
    assert!(goodput.is_some_and(|g| g > 0.0), "{goodput:?}");
}

#[test]
fn a_bad_goodput_names_both_forms() {
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["characterize", "--goodput", "ttft:fast", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ttft:200") && err.contains("ttft=200ms"),
        "{err}"
    );
}

#[test]
fn resuming_a_directory_that_holds_no_run_is_an_error_that_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("no-such-run");
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["characterize", "--resume"])
        .arg(&typo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no run there to continue"), "{err}");
    assert!(!typo.exists(), "a run was started in {}", typo.display());
}

#[test]
fn completions_print_a_script_that_knows_characterize() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::cargo_bin("pilot")
            .unwrap()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains("characterize") && script.contains("max-concurrency"),
            "{shell}"
        );
    }
}

#[test]
fn results_json_has_vllms_names_and_the_table_shows_p99() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["characterize", "--out", out.to_str().unwrap()])
        .args(["--max-concurrency", "1,2", "--num-prompts", "5"])
        .args(["--duration", "60s", "--warmup", "0s"])
        .args(["--input-tokens", "8", "--output-tokens", "4"])
        .args([
            "--slo",
            "ttft:p90=60s",
            "--api-key-env",
            "PILOT_TEST_UNSET_KEY",
        ])
        .arg("-v")
        .timeout(Duration::from_secs(100))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    // -v: one structured line per level on stderr, with its fields.
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(log.matches("level done").count(), 2, "{log}");
    assert!(
        log.contains("ok=5") && log.contains("level=users=2"),
        "{log}"
    );
    // The SLO's own percentile for TTFT, p99 for the others.
    for head in ["TTFT p50", "TTFT p90", "ITL p99", "TPOT p99", "E2E p99"] {
        assert!(table.contains(head), "{head}: {table}");
    }
    // One Parquet file per level beside the whole table.
    let run = run_dir(&out);
    for (file, users) in [("users-1.parquet", 1), ("users-2.parquet", 2)] {
        let level = read_requests(&run.join("levels").join(file)).unwrap();
        assert_eq!(level.len(), 5, "{file}");
        assert!(level.iter().all(|r| r.point.load.users() == Some(users)));
    }
    assert_eq!(
        read_requests(&run.join("requests.parquet")).unwrap().len(),
        10
    );
    let text = std::fs::read_to_string(run.join("results.json")).unwrap();
    let levels: serde_json::Value = serde_json::from_str(&text).unwrap();
    let levels = levels.as_array().unwrap();
    assert_eq!(levels.len(), 2, "{text}");
    for (level, users) in levels.iter().zip([1, 2]) {
        assert_eq!(level["max_concurrency"], users);
        assert_eq!(level["request_rate"], "inf");
        assert_eq!(level["completed"], 5);
        assert_eq!(level["total_output_tokens"], 20);
        for name in ["ttft", "tpot", "itl", "e2el"] {
            for stat in ["mean", "median", "std", "p99"] {
                let v = &level[format!("{stat}_{name}_ms")];
                assert!(
                    v.as_f64().is_some_and(|x| x >= 0.0),
                    "{stat}_{name}_ms: {v}"
                );
            }
        }
        for k in [
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "duration",
        ] {
            assert!(level[k].as_f64().is_some_and(|x| x > 0.0), "{k}");
        }
        assert!(level["median_ttft_ms"].as_f64() <= level["p99_ttft_ms"].as_f64());
    }
}

/// `--launch CMD` without `--tune`: the server is started, measured at `--endpoint` once it
/// answers its health route, and stopped after the run, its output in `<out>/server.log`.
/// Without `--endpoint` there is nothing to measure it at: a usage error.
#[test]
fn a_launched_server_is_started_measured_and_stopped_by_characterize() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = assert_cmd::cargo::cargo_bin("pilot");
    let out = dir.path().join("out");
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["characterize", "--endpoint"])
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .arg("--launch")
        .arg(format!("{} serve --port {port}", bin.display()))
        .args([
            "--model",
            "tiny-llama",
            "--users",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ])
        .args(["--input-tokens", "16", "--output-tokens", "4", "--out"])
        .arg(&out)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_frame(&run_dir(&out).join("summary.csv")).unwrap();
    assert_eq!(rows.height(), 1);
    assert!(out.join("server.log").exists());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the launched server is stopped after the run"
    );

    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["characterize", "--launch", "sleep 100", "--out"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--endpoint"));
    assert!(!dir.path().join("none").exists());
}

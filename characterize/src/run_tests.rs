//! End-to-end tests of `characterize` against pilot's real embedded engine over HTTP on
//! 127.0.0.1, and, for faults only, against a small hand-written misbehaving server.

use super::*;
use crate::client::Api;
use crate::options::TuneOptions;
use crate::workload::Workload;
use pilot_core::load::Load;
use pilot_core::metrics::FailureKind;
use pilot_core::requests::aggregate;
use pilot_core::schema::read_measurements;
use pilot_core::slo::parse_slos;
use pilot_core::units::RequestsPerSec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn quick(out: &Path) -> CharacterizeOptions {
    CharacterizeOptions {
        users: vec![1, 2],
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        workload: Workload::Fixed {
            input: 8,
            output: 4,
        },
        out: out.to_path_buf(),
        request_timeout: Duration::from_secs(20),
        api_key_env: "PILOT_TEST_UNSET_KEY".into(),
        ..Default::default()
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_levels_measure_the_embedded_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.slos = parse_slos("ttft=10s,itl=5s").unwrap();
    opts.append_to = Some(dir.path().join("dataset.csv"));
    let report = characterize(opts, false).await.unwrap();
    assert_eq!(report.levels.len(), 2, "{:?}", report.stopped_early);
    for (l, users) in report.levels.iter().zip([1, 2]) {
        let m = &l.row.metrics;
        assert_eq!(
            (l.row.load, l.row.engine.as_str(), l.row.gpu.as_str()),
            (Load::Users(users), "pilot", "cpu")
        );
        assert!(m.requests_ok > 0 && m.requests_failed == 0, "{m:?}");
        assert_eq!(
            m.output_tokens_mean,
            Some(4.0),
            "exactly the asked output length"
        );
        assert_eq!(
            m.input_tokens_mean,
            Some(8.0),
            "exactly the asked input length"
        );
        assert!(m.ttft.p50.is_some() && m.itl.p50.is_some() && m.tpot.p50.is_some());
        assert!(l.row.flags.is_empty(), "{}", l.row.flags);
        assert!(
            l.row.kv_cache_usage.is_some(),
            "KV usage scraped from /metrics"
        );
        assert!(l.server.running_mean.is_some());
        assert_eq!(l.slo_met, Some(true));
        assert!(l.goodput.unwrap().0 > 0.0);
    }
    // The request table re-aggregates to the same rows.
    let records = read_requests(&report.requests_path).unwrap();
    assert!(
        records.iter().any(|r| r.warmup),
        "warm-up requests are kept, marked"
    );
    let again = aggregate(&records, "x");
    assert_eq!(again.len(), 2);
    for (a, l) in again.iter().zip(&report.levels) {
        let (a, b) = (&a.metrics, &l.row.metrics);
        assert_eq!(
            (a.ttft, a.itl, a.tpot, a.e2e, a.requests_ok),
            (b.ttft, b.itl, b.tpot, b.e2e, b.requests_ok)
        );
        assert!(close(
            a.output_throughput.map(|x| x.0),
            b.output_throughput.map(|x| x.0)
        ));
    }
    // summary.csv reads back as measurements, with the extra columns.
    let rows = read_measurements(&report.summary_path).unwrap();
    assert_eq!(rows.len(), 2);
    let back = read_summary(&report.summary_path).unwrap();
    assert_eq!(back[1].slo_met, Some(true));
    assert!(close(
        back[1].goodput.map(|g| g.0),
        report.levels[1].goodput.map(|g| g.0)
    ));
    assert_eq!(
        read_measurements(&dir.path().join("dataset.csv"))
            .unwrap()
            .len(),
        2
    );
    let table = report.table();
    assert!(
        table.contains("users=2") && table.contains("TTFT p50"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_poisson_and_gamma_arrivals() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.users = vec![];
    opts.rates = vec![RequestsPerSec(8.0)];
    opts.burstiness = 0.5;
    let report = characterize(opts, false).await.unwrap();
    assert_eq!(report.levels.len(), 1);
    let row = &report.levels[0].row;
    assert_eq!(row.load, Load::Rate(RequestsPerSec(8.0)));
    assert!(row.metrics.requests_ok >= 3, "{:?}", row.metrics);
    assert_eq!(row.metrics.output_tokens_mean, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_levels_already_measured() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.users = vec![1];
    let first = characterize(opts.clone(), false).await.unwrap();
    let kept = read_requests(&first.requests_path).unwrap().len();
    opts.users = vec![1, 2];
    opts.resume = true;
    let second = characterize(opts, false).await.unwrap();
    assert_eq!(second.levels.len(), 2);
    assert!(second.levels[0].resumed && !second.levels[1].resumed);
    assert_eq!(second.levels[0].row.metrics, first.levels[0].row.metrics);
    let records = read_requests(&second.requests_path).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.point.load == Load::Users(1))
            .count(),
        kept
    );
    assert!(records.iter().any(|r| r.point.load == Load::Users(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_replay_sends_at_the_trace_times() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let mut text = "arrived_at,num_prefill_tokens,num_decode_tokens\n".to_string();
    for i in 0..20 {
        text.push_str(&format!("{},{},{}\n", 100.0 + i as f64 * 0.1, 5 + i % 3, 3));
    }
    std::fs::write(&trace, text).unwrap();
    let mut opts = quick(dir.path());
    opts.workload = Workload::AzureTrace(trace);
    opts.replay = true;
    opts.warmup = Duration::from_millis(500);
    let report = characterize(opts, false).await.unwrap();
    assert_eq!(report.levels.len(), 1);
    let row = &report.levels[0].row;
    // Arrivals 0.5 s .. 1.9 s fall in the window: 15 requests over 1.5 s.
    assert_eq!(row.metrics.requests_ok, 15, "{:?}", row.metrics);
    assert_eq!(row.load, Load::Rate(RequestsPerSec(10.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_the_embedded_engine_keeps_every_trial() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.users = vec![2];
    opts.duration = Duration::from_millis(800);
    opts.warmup = Duration::ZERO;
    opts.tune = Some(TuneOptions {
        launch: None,
        lo: 1,
        hi: 2,
        health_timeout: Duration::from_secs(5),
    });
    let report = characterize(opts, false).await.unwrap();
    let tried: Vec<u32> = report.trials.iter().map(|t| t.max_batch).collect();
    assert_eq!(tried, vec![1, 2]);
    assert!(report.trials.iter().all(|t| t.ok && t.levels.len() == 1));
    assert!(report.best_setting.is_some());
    assert_eq!(report.failure, None);
    let rows = read_measurements(&report.summary_path).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.max_batch).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launched_servers_that_die_fail_their_trial() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port().await;
    let mut opts = quick(dir.path());
    opts.endpoint = Some(format!("http://127.0.0.1:{port}/v1"));
    opts.model = Some("m".into());
    opts.tune = Some(TuneOptions {
        launch: Some("echo 'CUDA out of memory with max_batch={max_batch}'; exit 3".into()),
        lo: 4,
        hi: 16,
        health_timeout: Duration::from_secs(5),
    });
    let report = characterize(opts, false).await.unwrap();
    // 10 fails, then 6, then 4 (the lowest): the search stops there.
    assert_eq!(
        report
            .trials
            .iter()
            .map(|t| t.max_batch)
            .collect::<Vec<_>>(),
        vec![10, 6, 4]
    );
    let why = report.trials[0].reason.clone().unwrap();
    assert!(
        why.contains("out of memory") && why.contains("max_batch=10"),
        "{why}"
    );
    assert_eq!(report.best_setting, None);
    // Failing trials are the search working; here none measured anything, which is an error.
    let why = report.failure.as_deref().unwrap_or_default();
    assert!(why.contains("no measured request succeeded"), "{why}");
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_ends_the_level_with_what_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port().await;
    let mut opts = quick(dir.path());
    opts.endpoint = Some(format!("http://127.0.0.1:{port}/v1"));
    opts.model = Some("m".into());
    opts.duration = Duration::from_secs(30);
    opts.warmup = Duration::ZERO;
    let start = std::time::Instant::now();
    let report = characterize(opts, false).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the level ended early"
    );
    assert_eq!(report.levels.len(), 1, "the sweep stopped");
    let l = &report.levels[0];
    assert!(l.row.has_flag("level_aborted"), "{}", l.row.flags);
    assert!(l.row.has_flag("no_completed_requests"), "{}", l.row.flags);
    let why = report.failure.as_deref().unwrap_or_default();
    assert!(why.contains("no measured request succeeded"), "{why}");
    assert!(
        report
            .stopped_early
            .as_deref()
            .unwrap()
            .contains("unreachable")
    );
    let records = read_requests(&report.requests_path).unwrap();
    assert!(records.len() >= crate::level::DEAD_AFTER as usize);
    assert!(
        records
            .iter()
            .all(|r| r.failure == Some(FailureKind::Connection) && !r.error.is_empty())
    );
}

/// A misbehaving OpenAI-style server: by request number, a 500 echoing the request headers,
/// a stream cut after two tokens, malformed SSE, a hang, then well-formed streams.
async fn faulty_server() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let _ = serve_one(sock, count).await;
            });
        }
    });
    (port, n)
}

async fn serve_one(mut sock: TcpStream, count: Arc<AtomicUsize>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    if !head.starts_with("POST /v1/completions") {
        return sock
            .write_all(b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .await;
    }
    let sse = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    let token = "data: {\"choices\":[{\"index\":0,\"text\":\"x\",\"finish_reason\":null}]}\n\n";
    match count.fetch_add(1, Ordering::SeqCst) % 8 {
        0 => {
            let body = format!("internal error; request was:\n{head}");
            let resp = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await?;
        }
        1 => {
            sock.write_all(format!("{sse}{token}{token}").as_bytes())
                .await?;
        }
        2 => {
            sock.write_all(format!("{sse}{token}data: {{\"choices\": [oops\n\n").as_bytes())
                .await?;
        }
        3 => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {
            sock.write_all(sse.as_bytes()).await?;
            for i in 0..4 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let finish = if i == 3 { "\"length\"" } else { "null" };
                let ev = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"text\":\"x\",\"finish_reason\":{finish}}}]}}\n\n"
                );
                sock.write_all(ev.as_bytes()).await?;
            }
            let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
            sock.write_all(usage.as_bytes()).await?;
        }
    }
    sock.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_recorded_with_reasons_and_the_key_is_never_written() {
    const KEY: &str = "sk-pilot-test-4f2a9c1e77";
    const VAR: &str = "PILOT_CHARACTERIZE_TEST_KEY";
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var(VAR, KEY) };
    let (port, served) = faulty_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.endpoint = Some(format!("http://127.0.0.1:{port}/v1"));
    opts.model = Some("faulty".into());
    opts.users = vec![1];
    opts.duration = Duration::from_millis(2500);
    opts.warmup = Duration::ZERO;
    opts.request_timeout = Duration::from_millis(500);
    opts.max_failure_fraction = 1.0;
    opts.api_key_env = VAR.into();
    let report = characterize(opts, false).await.unwrap();
    assert!(
        served.load(Ordering::SeqCst) >= 8,
        "the run went on after the faults"
    );
    let records = read_requests(&report.requests_path).unwrap();
    let find = |k: FailureKind| {
        records
            .iter()
            .find(|r| r.failure == Some(k))
            .unwrap_or_else(|| panic!("no {k:?}"))
    };
    let e500 = find(FailureKind::HttpStatus);
    assert_eq!(e500.http_status, Some(500));
    assert!(
        e500.error.contains("HTTP 500") && e500.error.contains("[redacted]"),
        "{}",
        e500.error
    );
    let cut = find(FailureKind::StreamCut);
    assert_eq!(cut.token_times.len(), 2);
    assert!(cut.error.contains("after 2 tokens"), "{}", cut.error);
    assert!(find(FailureKind::Malformed).error.contains("malformed SSE"));
    assert!(find(FailureKind::Timeout).error.contains("within 0.5 s"));
    let ok: Vec<_> = records.iter().filter(|r| r.failure.is_none()).collect();
    assert!(ok.len() >= 4 && ok.iter().all(|r| r.token_times.len() == 4));
    let m = &report.levels[0].row.metrics;
    assert_eq!(m.requests_failed as usize, records.len() - ok.len());
    // Failures within --max-failures, some successes: a run that measured, not a failure.
    assert_eq!(report.failure, None);
    // Every file of the run: the tables, each level's, run.json, results.json.
    assert!(report.run_dir.join("run.json").exists());
    let files: Vec<std::path::PathBuf> = [report.run_dir.clone(), report.run_dir.join("levels")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.is_file())
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key was written"
        );
    }
    assert!(!format!("{report:?}").contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_api_records_the_servers_prompt_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick(dir.path());
    opts.api = Api::Chat;
    opts.users = vec![1];
    opts.duration = Duration::from_millis(800);
    opts.warmup = Duration::ZERO;
    let report = characterize(opts, false).await.unwrap();
    let row = &report.levels[0].row;
    assert!(row.metrics.requests_ok > 0);
    assert_eq!(row.metrics.output_tokens_mean, Some(4.0));
    // The engine's chat template adds tokens: the row says so, and records the server's count.
    assert!(row.has_flag("input_length_mismatch"), "{}", row.flags);
    assert!(row.metrics.input_tokens_mean.unwrap() > 8.0);
    assert!(
        report.notes.iter().any(|n| n.contains("--api chat")),
        "{:?}",
        report.notes
    );
}

/// How a test server misbehaves once it has read a request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stall {
    /// Accepts and never answers.
    Silent,
    /// Sends the response headers, then nothing.
    HeadersOnly,
    /// Streams one token a second, forever.
    Trickle,
    /// Sends headers then nothing on every route, `/v1/models` included.
    Everywhere,
}

/// A loopback server that lists model `m` on `/v1/models` and stalls every completion as
/// `how` says; its connections close within `LIFETIME`, so nothing outlives the test.
async fn stalling_server(how: Stall) -> u16 {
    const LIFETIME: Duration = Duration::from_secs(30);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LIFETIME, async {
            loop {
                let Ok((mut sock, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(tokio::time::timeout(LIFETIME, async move {
                    let mut buf = [0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    if head.starts_with("GET /v1/models") && how == Stall::Everywhere {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                            .await;
                        tokio::time::sleep(LIFETIME).await;
                        return;
                    }
                    if head.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        return;
                    }
                    if !head.starts_with("POST") {
                        let _ = sock
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    let sse = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
                    if how != Stall::Silent && sock.write_all(sse.as_bytes()).await.is_err() {
                        return;
                    }
                    loop {
                        if how == Stall::Trickle {
                            let token = "data: {\"choices\":[{\"index\":0,\"text\":\"x\",\"finish_reason\":null}]}\n\n";
                            if sock.write_all(token.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }));
            }
        })
        .await;
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_servers_end_the_level_after_the_drain_with_the_open_requests_as_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |how: Stall, warmup: Duration| {
        let out = dir.path().join(format!("{how:?}"));
        async move {
            let port = stalling_server(how).await;
            let mut opts = quick(&out);
            opts.endpoint = Some(format!("http://127.0.0.1:{port}/v1"));
            opts.model = Some("m".into());
            opts.users = vec![2];
            opts.warmup = warmup;
            opts.duration = Duration::from_secs(1);
            opts.drain_timeout = Some(Duration::from_secs(1));
            opts.request_timeout = Duration::from_secs(600);
            let start = std::time::Instant::now();
            let report = characterize(opts, false).await.unwrap();
            (how, start.elapsed(), report)
        }
    };
    // The silent server's requests are all sent in the warm-up: they hung through the
    // window, so they are the window's failures.
    let all = tokio::join!(
        run(Stall::Silent, Duration::from_millis(500)),
        run(Stall::HeadersOnly, Duration::ZERO),
        run(Stall::Trickle, Duration::ZERO),
        run(Stall::Everywhere, Duration::ZERO),
    );
    for (how, took, report) in [all.0, all.1, all.2, all.3] {
        // Warm-up, window and drain are 2.5 s at most, plus the 10 s a stalled model list may
        // take; a generous bound for a busy machine.
        assert!(took < Duration::from_secs(20), "{how:?} took {took:?}");
        let records = read_requests(&report.requests_path).unwrap();
        assert_eq!(records.len(), 2, "{how:?}: one open request per user");
        for r in &records {
            assert_eq!(r.failure, Some(FailureKind::Timeout), "{how:?}");
            assert!(
                !r.warmup,
                "{how:?}: a request open through the window failed in it"
            );
            assert!(r.start_unix_ms > 0.0 && r.e2e.0 >= 1000.0, "{how:?}: {r:?}");
            assert!(r.error.contains("after the window"), "{how:?}: {}", r.error);
        }
        let row = &report.levels[0].row;
        assert_eq!(row.metrics.requests_failed, 2, "{how:?}");
        for flag in ["no_completed_requests", "stalled_requests", "sweep_stopped"] {
            assert!(row.has_flag(flag), "{how:?}: {}", row.flags);
        }
        assert!(report.failure.is_some(), "{how:?}");
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("vocabulary size is unknown")),
            "{:?}",
            report.notes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_to_a_dataset_that_cannot_take_rows_fails_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.csv");
    std::fs::write(&garbage, "hello,world\n1,2\n").unwrap();
    let no_dir = dir.path().join("file");
    std::fs::write(&no_dir, "").unwrap();
    for (dataset, why) in [
        (garbage.clone(), "not a pilot measurement file"),
        (dir.path().join("rows.txt"), "unsupported extension"),
        (no_dir.join("rows.csv"), "cannot create it"),
    ] {
        let out = dir.path().join("out");
        let mut opts = quick(&out);
        opts.append_to = Some(dataset.clone());
        let start = std::time::Instant::now();
        let e = characterize(opts, false).await.unwrap_err();
        assert!(matches!(e, CharacterizeError::AppendTarget { .. }), "{e}");
        // The message and its causes, as the binary prints them.
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!("; {c}"));
            cause = c.source();
        }
        assert!(
            text.contains(why) && text.contains("nothing was measured"),
            "{text}"
        );
        assert!(!out.join("requests.parquet").exists(), "it measured first");
        assert!(start.elapsed() < Duration::from_secs(5), "{dataset:?}");
    }
    assert_eq!(std::fs::read(&garbage).unwrap(), b"hello,world\n1,2\n");
}

/// A dataset that stops taking rows while the run measures (here: turned into garbage): the
/// append fails, the measurements stay in the run directory, and run.json says "failed", not
/// "finished".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_leaves_the_run_failed_in_run_json_and_its_measurements_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let dataset = dir.path().join("dataset.csv");
    let mut opts = quick(&out);
    opts.users = vec![1];
    opts.append_to = Some(dataset.clone());
    let spoil = {
        let dataset = dataset.clone();
        tokio::spawn(async move {
            // After the check before measuring (it finds no file and allows a new one).
            tokio::time::sleep(Duration::from_millis(700)).await;
            std::fs::write(&dataset, "hello,world\n1,2\n").unwrap();
        })
    };
    let e = characterize(opts, false).await.unwrap_err();
    spoil.await.unwrap();
    assert!(matches!(e, CharacterizeError::Append { .. }), "{e}");
    let run = crate::run::latest_run(&out).expect("the run directory");
    assert!(run.join("summary.csv").exists() && run.join("requests.parquet").exists());
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "failed", "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_vocabulary_gets_prompt_ids_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    // tiny-llama's shape with 300 token ids: ids from the default 10..500 fail 40% of requests.
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
            "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 512,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
            "tie_word_embeddings": false, "torch_dtype": "float32"}"#,
    )
    .unwrap();
    let mut opts = quick(&dir.path().join("out"));
    opts.model = Some(config.display().to_string());
    opts.users = vec![2];
    opts.workload = Workload::Fixed {
        input: 32,
        output: 2,
    };
    opts.warmup = Duration::ZERO;
    opts.duration = Duration::from_secs(1);
    let report = characterize(opts, false).await.unwrap();
    let m = &report.levels[0].row.metrics;
    assert!(m.requests_ok >= 3 && m.requests_failed == 0, "{m:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("10..300") && n.contains("300 ids")),
        "{:?}",
        report.notes
    );
}

/// The README's quick start: `pilot characterize` with no flags (about a minute). Run with
/// `cargo test -p pilot-characterize quick_start -- --ignored --nocapture` to see its table.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "takes about a minute"]
async fn quick_start_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CharacterizeOptions {
        out: dir.path().to_path_buf(),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let report = characterize(opts, true).await.unwrap();
    println!(
        "{}\n{:?}\nin {:.0} s",
        report.table(),
        report.notes,
        start.elapsed().as_secs_f64()
    );
    assert!(report.levels.iter().all(|l| l.row.metrics.requests_ok > 0));
}

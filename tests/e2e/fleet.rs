//! End-to-end tests of `pilot fleet` through the real binary, on pilot's embedded engine (its
//! real HTTP server): a 2 x 2 plan run and collected; the same plan killed mid-way and
//! resumed, with nothing measured lost and nothing measured twice; bad plans refused.

use crate::common::{self, validate_manifests};
use assert_cmd::Command;
use pilot_core::schema::{Measurement, read_measurements};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn pilot() -> Command {
    Command::cargo_bin("pilot").expect("the pilot binary builds")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The state file's fate of every run.
fn fates(results: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(results.join("fleet-state.json")) else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("the state is whole JSON");
    v["runs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, r)| (k.clone(), r["fate"].as_str().unwrap().to_string()))
        .collect()
}

fn attempts(results: &Path, run: &str) -> u64 {
    let text = std::fs::read_to_string(results.join("fleet-state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["runs"][run]["attempts"].as_u64().unwrap()
}

/// A row's identity: model and level.
fn key(r: &Measurement) -> (String, String) {
    (r.model.clone(), r.load.to_string())
}

/// Every run's summary rows, by run directory.
fn run_rows(results: &Path) -> BTreeMap<String, Vec<Measurement>> {
    let mut out = BTreeMap::new();
    let Ok(dirs) = std::fs::read_dir(results.join("runs")) else {
        return out;
    };
    for d in dirs {
        let d = d.unwrap().path();
        // characterize writes a run directory under each fleet run's own `--out`; a fleet
        // run always resumes it, so there is at most one.
        let Some(run) = pilot_characterize::run::latest_run(&d) else {
            continue;
        };
        let runs_inside = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().join("run.json").exists())
            .count();
        assert!(
            runs_inside <= 1,
            "{}: {runs_inside} run directories",
            d.display()
        );
        let summary = run.join("summary.csv");
        if summary.exists()
            && let Ok(rows) = read_measurements(&summary)
        {
            out.insert(d.file_name().unwrap().to_string_lossy().into_owned(), rows);
        }
    }
    out
}

/// `pilot fleet run PLAN --results RESULTS` on the local backend, within `secs` seconds.
fn fleet_run(plan: &Path, results: &Path, secs: u64) -> std::process::Output {
    pilot()
        .args(["fleet", "run"])
        .arg(plan)
        .arg("--results")
        .arg(results)
        .timeout(Duration::from_secs(secs))
        .output()
        .unwrap()
}

fn collect(plan: &Path, results: &Path, out: &Path) -> Vec<Measurement> {
    let o = pilot()
        .args(["fleet", "collect"])
        .arg(plan)
        .arg("--results")
        .arg(results)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "collect failed: {}", stderr(&o));
    read_measurements(out).unwrap()
}

/// Each (model, level) once, and the keys.
fn unique_keys(rows: &[Measurement]) -> Vec<(String, String)> {
    let mut keys: Vec<_> = rows.iter().map(key).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a level was measured twice: {keys:?}");
    keys
}

/// A 2 x 2 plan runs to the end; `--backend k8s` without a kubeconfig says so in one line
/// and runs here; a second run measures nothing; collect gives every row once.
#[test]
fn a_local_fleet_runs_skips_what_is_done_and_collects_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::local_plan(dir.path(), 1);
    let results = dir.path().join("results");
    let o = pilot()
        .args(["fleet", "run"])
        .arg(&plan)
        .args(["--backend", "k8s", "--results"])
        .arg(&results)
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOME", dir.path())
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("no kubeconfig")).count(),
        1,
        "{err}"
    );
    let f = fates(&results);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.values().all(|v| v == "done"), "{f:?}");
    let before = run_rows(&results);
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.values().all(|rows| rows.len() == 2), "{before:?}");

    let o = fleet_run(&plan, &results, 120);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("0 measured now, 2 done before"), "{err}");
    assert_eq!(run_rows(&results), before, "a done run was measured again");

    let rows = collect(&plan, &results, &dir.path().join("all.csv"));
    let keys = unique_keys(&rows);
    assert_eq!(keys.len(), 4, "{keys:?}");
    let models: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models.len(), 2, "{models:?}");
    assert!(dir.path().join("all-requests.parquet").exists());
    // Collecting over an existing dataset is refused, not overwritten.
    let o = pilot()
        .args(["fleet", "collect"])
        .arg(&plan)
        .arg("--results")
        .arg(&results)
        .arg("--out")
        .arg(dir.path().join("all.csv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

/// The fleet is killed (SIGKILL: no chance to save anything) once its first run is done and
/// its second has measured a level; the next `fleet run` keeps every level measured before
/// the kill, as it was, and measures only the rest.
#[test]
fn a_killed_fleet_resumes_without_losing_or_repeating_a_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::local_plan(dir.path(), 3);
    let results = dir.path().join("results");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pilot"))
        .args(["fleet", "run"])
        .arg(&plan)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Until one run is done and the other has a level in its summary (or is done too).
    let killed_at = loop {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the fleet never finished a run: {:?}",
            fates(&results)
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the fleet ended ({status}) before it could be killed mid-way");
        }
        let f = fates(&results);
        let done: Vec<&String> = f
            .iter()
            .filter(|(_, v)| *v == "done")
            .map(|(k, _)| k)
            .collect();
        let rows = run_rows(&results);
        if done.len() == 1 && rows.len() == 2 && rows.values().all(|r| !r.is_empty()) {
            child.kill().unwrap();
            child.wait().unwrap();
            break (done[0].clone(), rows);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (done_run, before) = killed_at;
    let f = fates(&results);
    let (unfinished, fate) = f.iter().find(|(k, _)| **k != done_run).unwrap();
    assert_eq!(
        fate, "running",
        "the killed run is recorded as running: {f:?}"
    );

    let o = fleet_run(&plan, &results, 300);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 measured now, 1 done before"), "{err}");
    let after = run_rows(&results);
    // The run done before the kill is untouched, and started once.
    assert_eq!(after[&done_run], before[&done_run]);
    assert_eq!(attempts(&results, &done_run), 1);
    // The killed run keeps its levels measured before the kill, as they were, and now has all.
    for row in &before[unfinished] {
        let again: Vec<&Measurement> = after[unfinished]
            .iter()
            .filter(|r| key(r) == key(row))
            .collect();
        assert_eq!(
            again,
            vec![row],
            "a level measured before the kill changed or repeated"
        );
    }
    assert_eq!(after[unfinished].len(), 2, "{after:?}");
    assert_eq!(attempts(&results, unfinished), 2);
    assert!(fates(&results).values().all(|v| v == "done"));

    let rows = collect(&plan, &results, &dir.path().join("all.parquet"));
    assert_eq!(unique_keys(&rows).len(), 4);
}

/// Unknown names are refused before anything runs, naming the entry and the closest names;
/// nothing is written.
#[test]
fn a_plan_with_an_unknown_gpu_or_engine_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::local_plan(dir.path(), 1);
    let text = std::fs::read_to_string(&plan).unwrap();
    for (from, to, entry, hint) in [
        ("gpu = \"cpu\"", "gpu = \"H10O\"", "gpus[1]", "H100"),
        ("name = \"pilot\"", "name = \"vlmm\"", "engines[1]", "vllm"),
        (
            "model = \"tiny-gpt2\"",
            "model = \"tiny-gtp2\"",
            "llms[2]",
            "tiny-gpt2",
        ),
    ] {
        std::fs::write(&plan, text.replace(from, to)).unwrap();
        let results = dir.path().join("never");
        for sub in ["plan", "run"] {
            let o = pilot()
                .args(["fleet", sub])
                .arg(&plan)
                .args(if sub == "run" {
                    vec!["--results".to_string(), results.display().to_string()]
                } else {
                    vec![]
                })
                .output()
                .unwrap();
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(err.contains(entry) && err.contains(hint), "{to}: {err}");
        }
        assert!(!results.exists(), "nothing is written for a bad plan");
    }
}

/// `--backend k8s --dry-run --out DIR` writes one Job per run of the example GPU plan, and
/// every manifest validates against the Kubernetes OpenAPI schema (strict); the embedded
/// engine's CPU plan becomes Jobs too. Nothing runs, and no state is written.
#[test]
fn dry_run_writes_one_valid_job_per_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for (plan, runs) in [
        ("examples/fleet.toml", 18),
        ("examples/fleet-local.toml", 2),
    ] {
        let out = dir.path().join(plan.replace('/', "-"));
        let results = dir.path().join("never");
        let o = pilot()
            .args(["fleet", "run"])
            .arg(root.join(plan))
            .args(["--backend", "k8s", "--dry-run", "--out"])
            .arg(&out)
            .arg("--results")
            .arg(&results)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{plan}: {err}");
        let kinds = validate_manifests(&out);
        assert_eq!(
            kinds.iter().filter(|k| *k == "Job").count(),
            runs,
            "{plan}: {kinds:?}"
        );
        assert!(!results.exists(), "a dry run writes no state");
        for f in std::fs::read_dir(&out).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(text.contains("--resume"), "{text}");
        }
    }
}

/// An engine entry with a `launch` command and its `endpoint`: the local backend starts the
/// server (here `pilot serve`, a real separate process), measures it at the endpoint and
/// stops it after the run.
#[test]
fn a_launched_server_is_started_measured_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = assert_cmd::cargo::cargo_bin("pilot");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
name = "launched"
duration = "1s"
warmup = "0s"
[load]
users = [1]
[workload]
input_tokens = 16
output_tokens = 4
[[llms]]
model = "tiny-llama"
[[gpus]]
gpu = "cpu"
[[engines]]
name = "pilot"
launch = "{} serve --model {{model}} --port {port}"
endpoint = "http://127.0.0.1:{port}/v1"
"#,
            bin.display()
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let o = fleet_run(&plan, &results, 300);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let rows = run_rows(&results);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let rows = rows.values().next().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].metrics.requests_ok > 0, "{rows:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the launched server is stopped after its run"
    );
}

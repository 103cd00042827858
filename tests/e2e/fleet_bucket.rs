//! `pilot fleet --results s3://...` end to end, against moto's S3 server (the AWS emulator
//! of the `moto` Python package, installed by ./scripts/setup.sh): no S3 can be reached from
//! the machines here, and moto answers S3's REST API (signed requests, ETags, listings) as
//! AWS documents it.
//!
//! - A local fleet's results reach the bucket, and a second machine with nothing but the plan
//!   collects every row from the bucket and skips every run as done.
//! - A Kubernetes Job's pilot container (its shell, environment and command, taken from the
//!   manifest) runs here with pilot on PATH: it writes its run to the bucket, and a retried
//!   pod on an empty volume resumes from the bucket and measures nothing twice.

use crate::common;
use assert_cmd::Command;
use pilot_core::schema::{Measurement, read_measurements};
use pilot_fleet::bucket::BucketUrl;
use pilot_fleet::k8s::{self, JobResults};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The secret key the tests give the S3 client: it must appear in no output and no file.
const SECRET: &str = "pilot-test-secret-8d1f7c";

/// moto's S3 server on a free port, with one bucket; stopped when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start(bucket: &str) -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut server = S3Server { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(_)) = server.child.try_wait() {
                let mut err = String::new();
                server
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("moto's S3 server did not start: run ./scripts/setup.sh ({err})");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.create_bucket(bucket);
        server
    }

    /// S3's CreateBucket (`PUT /bucket`); moto does not check its signature.
    fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// The AWS variables object_store reads.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "pilot-test".into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pilot(s3: &S3Server, cwd: &Path) -> Command {
    let mut c = Command::cargo_bin("pilot").expect("the pilot binary builds");
    c.current_dir(cwd).envs(s3.env());
    c
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn keys(rows: &[Measurement]) -> Vec<(String, String)> {
    let mut k: Vec<_> = rows
        .iter()
        .map(|r| (r.model.clone(), r.load.to_string()))
        .collect();
    k.sort();
    k
}

/// Every file under `dir`, for the secret check.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_no_secret(dir: &Path) {
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "the S3 secret key is in {}",
            f.display()
        );
    }
}

#[test]
fn a_local_fleet_writes_to_a_bucket_that_another_machine_collects_and_resumes_from() {
    let s3 = S3Server::start("pilot-e2e");
    let url = "s3://pilot-e2e/campaigns/week1";
    let here = tempfile::tempdir().unwrap();
    let p = common::local_plan(here.path(), 2);
    let o = pilot(&s3, here.path())
        .args(["fleet", "run"])
        .arg(&p)
        .args(["--results", url])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(url),
        "the results are named by their URL: {out}"
    );
    assert!(!out.contains(SECRET), "{out}");
    assert_no_secret(here.path());

    // Another machine: the plan alone, an empty directory.
    let there = tempfile::tempdir().unwrap();
    let p2 = common::local_plan(there.path(), 2);
    let o = pilot(&s3, there.path())
        .args(["fleet", "collect"])
        .arg(&p2)
        .args(["--results", url, "--out", "dataset.csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rows = read_measurements(&there.path().join("dataset.csv")).unwrap();
    let k = keys(&rows);
    assert_eq!(k.len(), 4, "2 LLMs x 2 levels from the bucket: {k:?}");
    let mut unique = k.clone();
    unique.dedup();
    assert_eq!(unique, k, "each level once");
    assert!(there.path().join("dataset-requests.parquet").exists());

    // A second `fleet run` there finds every run done in the bucket's state.
    let o = pilot(&s3, there.path())
        .args(["fleet", "run"])
        .arg(&p2)
        .args(["--results", url])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("done before, skipped").count(), 2, "{out}");
    assert!(out.contains("0 measured now"), "{out}");
}

/// The pilot container of a run's Job, as the manifest has it, with `/results` (its
/// `emptyDir`) moved to `volume`: (argv, environment).
fn pilot_container(
    plan: &Path,
    url: &BucketUrl,
    volume: &Path,
) -> (Vec<String>, Vec<(String, String)>) {
    let fleet = pilot_fleet::plan::load(plan).unwrap();
    let job = k8s::job(&fleet, &fleet.runs[0], JobResults::Bucket(url)).unwrap();
    let job = job.objects.last().unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["emptyDir"], serde_json::json!({}));
    let c = &pod["containers"][0];
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "pilot-s3");
    let moved = |s: &str| s.replace(k8s::RESULTS_MOUNT, &volume.to_string_lossy());
    let argv = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| moved(a.as_str().unwrap()))
        .collect();
    let env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                moved(e["value"].as_str().unwrap()),
            )
        })
        .collect();
    (argv, env)
}

#[test]
fn a_jobs_pilot_container_writes_its_run_to_the_bucket_and_a_retried_pod_resumes_it() {
    let s3 = S3Server::start("pilot-k8s");
    let dir = tempfile::tempdir().unwrap();
    let p = common::local_plan(dir.path(), 2);
    let url = BucketUrl::parse("s3://pilot-k8s/fleet").unwrap().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pilot"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_pod = |volume: &Path| {
        let (argv, env) = pilot_container(&p, &url, volume);
        assert_eq!(&argv[..2], ["sh", "-c"]);
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env)
            .envs(s3.env())
            .env("PATH", &path)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let first = tempfile::tempdir().unwrap();
    let o = run_pod(first.path());
    assert!(o.status.success(), "{}", text(&o));

    // What the bucket holds, seen from a third directory.
    let check = tempfile::tempdir().unwrap();
    let fleet = pilot_fleet::plan::load(&p).unwrap();
    let run = &fleet.runs[0];
    let o = pilot(&s3, dir.path())
        .args(["fleet", "pull"])
        .arg(url.join("runs").join(&run.id).url)
        .arg(check.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summaries: Vec<PathBuf> = files(check.path())
        .into_iter()
        .filter(|f| f.ends_with("summary.csv"))
        .collect();
    assert_eq!(summaries.len(), 1, "one run directory: {summaries:?}");
    let before = keys(&read_measurements(&summaries[0]).unwrap());
    assert_eq!(before.len(), 2, "both levels of the run: {before:?}");
    assert_no_secret(check.path());

    // The pod is retried on a new, empty volume: it pulls the run and measures nothing again.
    let second = tempfile::tempdir().unwrap();
    let o = run_pod(second.path());
    assert!(o.status.success(), "{}", text(&o));
    let again: Vec<PathBuf> = files(second.path())
        .into_iter()
        .filter(|f| f.ends_with("summary.csv"))
        .collect();
    assert_eq!(again.len(), 1, "the same run directory, resumed: {again:?}");
    let stamp = |f: &Path| f.parent().unwrap().file_name().unwrap().to_owned();
    assert_eq!(
        stamp(&again[0]),
        stamp(&summaries[0]),
        "the run resumed, not a new one"
    );
    assert_eq!(keys(&read_measurements(&again[0]).unwrap()), before);
}

#[test]
fn dry_run_jobs_for_a_bucket_validate_and_carry_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("manifests");
    let o = Command::cargo_bin("pilot")
        .unwrap()
        .args(["fleet", "run"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet.toml"))
        .args(["--backend", "k8s", "--dry-run", "--out"])
        .arg(&out)
        .args(["--results", "s3://bench/week1"])
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let kinds = common::validate_manifests(&out);
    assert!(kinds.iter().any(|k| k == "Job"), "{kinds:?}");
    for f in files(&out) {
        let yaml = std::fs::read_to_string(&f).unwrap();
        assert!(!yaml.contains(SECRET), "{}", f.display());
        assert!(!yaml.contains("claimName: pilot-results"), "{yaml}");
        assert!(yaml.contains("s3://bench/week1/runs/"), "{yaml}");
    }
}

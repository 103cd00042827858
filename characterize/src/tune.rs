//! Tuning as LLM-Pilot does it: find the largest batch budget the server survives, by
//! binary search over `LO..=HI`.
//!
//! Each trial starts the server with the setting (`--launch` command with `{max_batch}`
//! replaced, run by `sh -c` in its own process group; or the embedded engine with that
//! `max_batch`), waits until `/health` answers, runs the whole sweep, and stops the server.
//! A trial *fails* when the server does not come up (it exited or `/health` never answered),
//! a request ran out of memory, more than `--max-failures` of a level's requests failed, or the
//! server died; a failing setting moves the search down, a passing one up.
//!
//! Every trial's levels are kept in `summary.csv` and `requests.parquet` (their rows carry
//! `max_batch`). The setting reported as best is, among passing trials, the one with the
//! highest goodput under the SLOs (highest output throughput without SLOs), the larger setting
//! on ties; with monotone behaviour that is usually the largest passing one.
//!
//! This module sits on top of the sweep: a trial is a [`Run::target`] with the setting, and
//! its options ([`TuneOptions`]) and trials ([`TuneTrial`]) are plain data in
//! [`crate::options`] and [`crate::report`], so nothing below depends on tuning.

use crate::error::CharacterizeError;
use crate::options::TuneOptions;
use crate::report::{CharacterizeReport, TuneTrial};
use crate::sweep::Run;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the search; trials and the chosen setting go into `report`.
pub async fn tune(
    run: &mut Run<'_>,
    t: &TuneOptions,
    report: &mut CharacterizeReport,
) -> Result<(), CharacterizeError> {
    if t.lo == 0 || t.lo > t.hi {
        return Err(CharacterizeError::Tune(format!(
            "empty range {}..{}",
            t.lo, t.hi
        )));
    }
    if t.launch.is_some() && run.opts.endpoint.is_none() {
        return Err(CharacterizeError::Tune(
            "--launch needs --endpoint: the URL the launched server serves".into(),
        ));
    }
    let (mut lo, mut hi) = (t.lo, t.hi);
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let trial = trial(run, t, mid, report).await?;
        let ok = trial.ok;
        report.trials.push(trial);
        if ok {
            lo = mid + 1;
        } else if mid == t.lo {
            break;
        } else {
            hi = mid - 1;
        }
    }
    let slos = !run.opts.slos.is_empty();
    report.best_setting = report
        .trials
        .iter()
        .filter(|t| t.ok)
        .max_by(|a, b| {
            let score = |t: &TuneTrial| {
                if slos {
                    (
                        t.goodput.map_or(0.0, |g| g.0),
                        t.throughput.map_or(0.0, |x| x.0),
                    )
                } else {
                    (t.throughput.map_or(0.0, |x| x.0), 0.0)
                }
            };
            score(a)
                .partial_cmp(&score(b))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.max_batch.cmp(&b.max_batch))
        })
        .map(|t| t.max_batch);
    if report.best_setting.is_none() {
        report.notes.push(format!(
            "tuning: no max_batch in {}..{} ran without failing",
            t.lo, t.hi
        ));
    }
    Ok(())
}

async fn trial(
    run: &mut Run<'_>,
    t: &TuneOptions,
    value: u32,
    report: &mut CharacterizeReport,
) -> Result<TuneTrial, CharacterizeError> {
    let mut trial = TuneTrial {
        max_batch: value,
        ok: false,
        reason: None,
        levels: Vec::new(),
        goodput: None,
        throughput: None,
        log: None,
    };
    let mut server = None;
    if let Some(cmd) = &t.launch {
        let endpoint = run.opts.endpoint.clone().unwrap_or_default();
        let log = run.opts.out.join(format!("trial-max_batch-{value}.log"));
        trial.log = Some(log.clone());
        let mut child = launch(&cmd.replace("{max_batch}", &value.to_string()), &log)?;
        if let Err(why) = wait_healthy(&mut child, &endpoint, t.health_timeout, &log).await {
            stop(&mut child).await;
            trial.reason = Some(why);
            return Ok(trial);
        }
        server = Some(child);
    }
    let outcome = run.target(Some(value), report).await;
    if let Some(child) = server.as_mut() {
        stop(child).await;
    }
    let outcome = match outcome {
        Ok(o) => o,
        // The embedded engine refusing a setting is a failed trial, not a failed run.
        Err(CharacterizeError::Engine(why)) => {
            trial.reason = Some(why.to_string());
            return Ok(trial);
        }
        Err(e) => return Err(e),
    };
    trial.levels = outcome.levels.clone();
    let levels = || outcome.levels.iter().map(|&i| &report.levels[i]);
    trial.goodput = levels()
        .filter_map(|l| l.goodput)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    trial.throughput = levels()
        .filter_map(|l| l.row.metrics.output_throughput)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    trial.ok = outcome.oom == 0 && !outcome.failed;
    if outcome.oom > 0 {
        trial.reason = Some(format!("{} requests ran out of memory", outcome.oom));
    } else if outcome.failed {
        trial.reason = outcome.stopped.clone();
    }
    Ok(trial)
}

/// A server started by a `--launch` command and healthy, for a run that measures it without
/// tuning (`characterize --launch CMD --endpoint URL`): the same start, health wait and stop
/// as a tuning trial's.
pub struct LaunchedServer {
    child: Child,
}

impl LaunchedServer {
    /// Runs `cmd` (`sh -c`, its own process group, output to `log`) and waits until the
    /// health route beside `endpoint` answers, for at most `timeout`; a server that exits or
    /// never answers is stopped and its log's last lines are in the error.
    pub async fn start(
        cmd: &str,
        endpoint: &str,
        timeout: Duration,
        log: &PathBuf,
    ) -> Result<LaunchedServer, CharacterizeError> {
        let mut child = launch(cmd, log)?;
        if let Err(why) = wait_healthy(&mut child, endpoint, timeout, log).await {
            stop(&mut child).await;
            return Err(CharacterizeError::Launch(why));
        }
        Ok(LaunchedServer { child })
    }

    /// SIGTERM to its process group, then SIGKILL after 15 s.
    pub async fn stop(mut self) {
        stop(&mut self.child).await;
    }
}

fn launch(cmd: &str, log: &PathBuf) -> Result<Child, CharacterizeError> {
    let io = |source: std::io::Error| CharacterizeError::Io {
        path: log.clone(),
        source,
    };
    // Appended to: a resumed run keeps the log of the server it measured before.
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let err = file.try_clone().map_err(io)?;
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| CharacterizeError::Tune(format!("cannot run `sh -c {cmd}`: {e}")))
}

/// Waits until `<root>/health` answers 200; fails if the process exits first.
async fn wait_healthy(
    child: &mut Child,
    endpoint: &str,
    timeout: Duration,
    log: &PathBuf,
) -> Result<(), String> {
    let url = format!("{}/health", crate::telemetry::server_root(endpoint));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(log);
            let oom = tail.to_ascii_lowercase().contains("out of memory");
            return Err(format!(
                "the server exited ({status}) before {url} answered{}; last output: {tail}",
                if oom { ", out of memory" } else { "" }
            ));
        }
        let answer = tokio::time::timeout(Duration::from_secs(2), http.get(&url).send()).await;
        if answer.is_ok_and(|r| r.is_ok_and(|r| r.status().is_success())) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{url} did not answer within {:.0} s",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn log_tail(log: &PathBuf) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// SIGTERM to the process group, then SIGKILL after 15 s.
async fn stop(child: &mut Child) {
    let pgid = child.id() as i32;
    // SAFETY: kill(2) on the process group we created; no memory is shared.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

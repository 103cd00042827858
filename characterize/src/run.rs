//! `pilot characterize`: sweeps load levels against an OpenAI-compatible server (or pilot's
//! embedded engine) and writes what it measured.
//!
//! This module is the entry point, [`characterize`]: it prepares `--out`, runs the sweep (or
//! the tuning search) and saves what was measured. The pieces it wires live beside it:
//! [`crate::options`] (what can be asked, and its checks), `target` (the server),
//! [`crate::sweep`] (the levels), [`crate::tune`] (`--tune`), [`crate::summary`]
//! (`summary.csv` and `--append-to`), [`crate::report`] (what a run produced).
//!
//! Outputs, in a run directory of its own, `<out>/<UTC time>-<id>/` (printed at the end):
//! - `requests.parquet`: every request (warm-up included, marked), with each token's arrival
//!   time, status and error text ([`pilot_core::requests`]); written at each level's end and
//!   the run's, while `levels/<level>.parquet` saves the running level's requests every few
//!   seconds ([`crate::store`]), so an interrupted run keeps what it measured.
//! - `summary.csv`: one row per level in pilot's measurement schema (see [`crate::summary`]).
//! - `run.json`: what was run, against what, when ([`crate::runinfo`]).
//! - `results.json`: each level in `vllm bench serve --save-result`'s shape and names
//!   ([`crate::results`]).
//!
//! Nothing measured is ever deleted or overwritten: each run writes a new directory, so a
//! rerun leaves the earlier ones as they are; `--resume` continues the latest run under
//! `--out` (or `--out` itself when it holds one). `--append-to` is checked before anything
//! runs, so a bad dataset costs no measurement; the endpoint URL too.
//!
//! A run that measured no success at all, or whose sweep was stopped by failures (not by
//! saturation), still writes everything and returns its report, with
//! [`CharacterizeReport::failure`] set so the binary exits non-zero. Ctrl-C, SIGTERM and
//! SIGHUP save what was measured and return [`CharacterizeError::Interrupted`].

use crate::error::CharacterizeError;
use crate::options::{CharacterizeOptions, openai_base_url, validate};
use crate::report::{CharacterizeReport, key_of};
use crate::results::write_results;
use crate::runinfo::write_run_json;
use crate::store::Store;
use crate::summary::{append_rows, check_append_target, read_summary, write_summary};
use crate::sweep::Run;
use crate::tune;
use pilot_core::requests::{PointKey, RequestRecord, read_requests};
use pilot_core::schema::Measurement;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs `pilot characterize`. With `progress`, draws a progress bar per level on stderr.
/// Ctrl-C, SIGTERM and SIGHUP save what was measured and return
/// [`CharacterizeError::Interrupted`]. A run that measured nothing usable still returns its
/// report (everything written), with [`CharacterizeReport::failure`] saying why.
pub async fn characterize(
    mut opts: CharacterizeOptions,
    progress: bool,
) -> Result<CharacterizeReport, CharacterizeError> {
    validate(&opts)?;
    opts.endpoint = opts.endpoint.as_deref().map(openai_base_url);
    if let Some(dataset) = &opts.append_to {
        check_append_target(dataset)?;
    }
    let started = SystemTime::now();
    let (out, earlier) = run_dir(&opts.out, opts.resume, started)?;
    // From here on, `--out` is this run's own directory (tuning logs, rows' source).
    opts.out = out.clone();
    let requests_path = out.join("requests.parquet");
    let summary_path = out.join("summary.csv");
    let mut report = CharacterizeReport {
        run_dir: out.clone(),
        slos: opts.slos.clone(),
        requests_path: requests_path.clone(),
        summary_path: summary_path.clone(),
        ..Default::default()
    };
    if opts.overwrite {
        report.notes.push(
            "--overwrite is no longer needed: every run writes a directory of its own, and earlier runs stay as they are"
                .into(),
        );
    }
    let earlier_info = out.join("run.json");
    if earlier && earlier_info.exists() {
        // The resumed run's own record (its start, its options) is kept, not replaced.
        let kept = set_aside(&out, std::slice::from_ref(&earlier_info))?;
        report.notes.push(format!(
            "resumed: the earlier run.json is kept in {}",
            kept.display()
        ));
    }
    write_run_json(&opts, &report, started, None, "running")?;
    let prior_records = if opts.resume && earlier {
        report.levels = if summary_path.exists() {
            read_summary(&summary_path)?
        } else {
            Vec::new()
        };
        let done: Vec<PointKey> = report.levels.iter().map(|l| key_of(&l.row)).collect();
        let all = if requests_path.exists() {
            read_requests(&requests_path)?
        } else {
            Vec::new()
        };
        let total = all.len();
        let kept: Vec<RequestRecord> = all
            .into_iter()
            .filter(|r| done.contains(&r.point))
            .collect();
        report.notes.push(format!(
            "resumed: {} levels already measured are kept",
            report.levels.len()
        ));
        if kept.len() < total {
            // The unfinished level is measured again; its requests are kept aside, not lost.
            let copy = set_aside(&out, std::slice::from_ref(&requests_path))?;
            report.notes.push(format!(
                "resumed: {} requests of unfinished levels are measured again; the earlier table is kept in {}",
                total - kept.len(),
                copy.display()
            ));
        }
        kept
    } else {
        Vec::new()
    };
    let first_id = prior_records
        .iter()
        .map(|r| r.request_id + 1)
        .max()
        .unwrap_or(0);
    let store = Arc::new(Mutex::new(Store::new(&requests_path, prior_records)));
    let resumed_count = report.levels.len();

    // Why the sweep was stopped by failures (plain runs only: see `failure`).
    let result = {
        let work = async {
            let mut run = Run::new(&opts, store.clone(), first_id, progress);
            match &opts.tune {
                None => run
                    .target(None, &mut report)
                    .await
                    .map(|o| o.stopped.filter(|_| o.failed)),
                Some(t) => tune::tune(&mut run, t, &mut report).await.map(|_| None),
            }
        };
        tokio::select! {
            r = work => r,
            signal = stop_signal() => Err(CharacterizeError::Interrupted {
                out: out.clone(), signal, requests: 0, levels: 0,
            }),
        }
    };
    // A level cut short (a signal) is saved into the whole table too.
    store.lock().expect("store lock").end_level();
    Store::flush(&store)?;
    write_summary(&report.levels, &summary_path)?;
    // A sweep that ended is not a run that finished: its verdict (no success, stopped by
    // failures) and --append-to come below, and run.json says "finished" only after them.
    let ended = match &result {
        Err(CharacterizeError::Interrupted { .. }) => Some("interrupted"),
        Err(_) => Some("failed"),
        Ok(_) => None,
    };
    if let Some(status) = ended {
        write_run_json(&opts, &report, started, Some(SystemTime::now()), status)?;
    }
    write_results(
        &report,
        store.lock().expect("store lock").records(),
        opts.api.vllm_backend(),
    )?;
    if let Err(CharacterizeError::Interrupted { signal, .. }) = result {
        let requests = store.lock().expect("store lock").records().len();
        return Err(CharacterizeError::Interrupted {
            out,
            signal,
            requests,
            levels: report.levels.len(),
        });
    }
    let stopped_by_failures = result?;
    let succeeded: u64 = report
        .levels
        .iter()
        .map(|l| l.row.metrics.requests_ok)
        .sum();
    if succeeded == 0 {
        let first_error = store
            .lock()
            .expect("store lock")
            .records()
            .iter()
            .find(|r| !r.warmup && r.failure.is_some())
            .map(|r| format!("; the first error: {}", r.error))
            .unwrap_or_default();
        report.failure = Some(format!(
            "no measured request succeeded{first_error}{}",
            if opts.append_to.is_some() {
                "; nothing was appended to --append-to"
            } else {
                ""
            }
        ));
        write_run_json(&opts, &report, started, Some(SystemTime::now()), "failed")?;
        return Ok(report);
    }
    report.failure = stopped_by_failures.map(|why| format!("the sweep was stopped: {why}"));
    if let Some(dataset) = &opts.append_to {
        let new_rows: Vec<Measurement> = report.levels[resumed_count..]
            .iter()
            .map(|l| l.row.clone())
            .collect();
        if let Err(e) = append_rows(dataset, &new_rows) {
            write_run_json(&opts, &report, started, Some(SystemTime::now()), "failed")?;
            return Err(CharacterizeError::Append {
                path: dataset.clone(),
                summary: summary_path.clone(),
                source: Box::new(e),
            });
        }
        report.appended_to = Some(dataset.clone());
    }
    // The verdict, now that --append-to is done.
    let status = if report.failure.is_some() {
        "failed"
    } else {
        "finished"
    };
    write_run_json(&opts, &report, started, Some(SystemTime::now()), status)?;
    Ok(report)
}

/// Resolves on the first Ctrl-C, SIGTERM or SIGHUP, with the signal's name: a scheduler
/// stopping the job, or a closed terminal, must save the run as Ctrl-C does, not kill it.
async fn stop_signal() -> &'static str {
    // A handler that cannot be installed must not read as a signal received.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            return tokio::select! {
                _ = ctrl_c => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
        }
    }
    ctrl_c.await;
    "Ctrl-C"
}

/// Whether `dir` holds a run's tables (finished or not).
fn holds_run(dir: &Path) -> bool {
    ["summary.csv", "requests.parquet"]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// The run `--resume` continues under `out`: `out` itself when it holds a run (an explicit
/// run directory, or one written before run directories existed), else the latest run
/// directory under it (names sort by time); `None` when there is none. Also where a caller
/// that always resumes into one `--out` (`pilot fleet`) finds that run's files.
pub fn latest_run(out: &Path) -> Option<PathBuf> {
    if holds_run(out) {
        return Some(out.to_path_buf());
    }
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Run directories are named by their UTC start (`20261203T152258Z-f12730`), so the
        // latest sorts last; other folders (a `replaced-…` set aside) are not runs to resume.
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
                && p.is_dir()
                && holds_run(p)
        })
        .max_by_key(|p| p.file_name().map(|n| n.to_os_string()))
}

/// The directory this run writes, and whether it continues an earlier run there.
///
/// `--out` is a parent: each run gets a new `<out>/<UTC time>-<id>/`, so a rerun never
/// touches an earlier run's files. `--resume` continues instead: `--out` itself when it holds
/// a run (an explicit run directory, or one written before run directories existed), else
/// the latest run directory under it (names sort by time); with none, it starts a new one.
fn run_dir(
    out: &Path,
    resume: bool,
    started: SystemTime,
) -> Result<(PathBuf, bool), CharacterizeError> {
    let io = |path: &Path, source: std::io::Error| CharacterizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    if resume && let Some(dir) = latest_run(out) {
        return Ok((dir, true));
    }
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let stamp = humantime::format_rfc3339_seconds(started)
        .to_string()
        .replace(['-', ':'], "");
    let nanos = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Two runs started in the same second differ by process and nanoseconds; a clash left
    // is taken care of by the loop below.
    let mut id = u64::from(nanos) ^ (u64::from(std::process::id()) << 8);
    loop {
        let dir = out.join(format!("{stamp}-{:06x}", id & 0xff_ffff));
        // `create_dir`, not `create_dir_all`: a directory that exists is never reused.
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, false)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                id = id.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
            }
            Err(e) => return Err(io(&dir, e)),
        }
    }
}

/// Copies `files` into a new `<out>/replaced-<unix seconds>/` and returns it: an earlier
/// run's table or `run.json` is kept beside the new one, never deleted.
fn set_aside(out: &Path, files: &[PathBuf]) -> Result<PathBuf, CharacterizeError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut dir = out.join(format!("replaced-{secs}"));
    let mut n = 1;
    while dir.exists() {
        dir = out.join(format!("replaced-{secs}-{n}"));
        n += 1;
    }
    let io = |path: &Path, source: std::io::Error| CharacterizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    for f in files {
        let Some(name) = f.file_name() else { continue };
        std::fs::copy(f, dir.join(name)).map_err(|e| io(f, e))?;
    }
    Ok(dir)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;

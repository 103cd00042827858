//! The local backend: the plan's runs on this machine, one after another, through
//! characterize's library entry point (the same code as `pilot characterize`).
//!
//! Each run writes into `<results>/runs/<id>/` and is always started with characterize's
//! `resume`: a fresh directory starts afresh, one a killed fleet left half measured keeps its
//! finished levels and measures only the others. So a campaign stopped at any moment loses
//! at most the level in progress, and measures nothing twice.

use crate::error::FleetError;
use crate::plan::{EMBEDDED, Fleet, Run};
use crate::state::{Fate, FleetState};
use pilot_characterize::commands::{CharacterizeRequest, characterize_command};
use pilot_characterize::error::CharacterizeError;
use pilot_characterize::options::CharacterizeOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a launched engine may take to answer its health route.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

/// The directory of a run's files under the results directory.
pub fn run_dir(results: &Path, id: &str) -> PathBuf {
    results.join("runs").join(id)
}

/// What a backend did, run by run.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// (run id, fate, reason) in plan order, after this invocation.
    pub fates: Vec<(String, Fate, Option<String>)>,
    /// Runs skipped because they were done before.
    pub skipped: usize,
    /// Runs measured (or resumed) now.
    pub started: usize,
}

/// Checks that every run can be started here, before the first one starts.
pub fn check(fleet: &Fleet) -> Result<(), FleetError> {
    for r in &fleet.runs {
        let e = &r.engine;
        if e.name == EMBEDDED {
            continue;
        }
        if e.endpoint.is_none() {
            return Err(FleetError::entry(
                format!("run {}", r.id),
                format!(
                    "the local backend runs {} only at an endpoint: give the engine entry endpoint = \"http://127.0.0.1:8000/v1\" (a server already running, or one `launch` starts)",
                    e.name
                ),
            ));
        }
    }
    Ok(())
}

/// The characterize request of one run.
fn request(fleet: &Fleet, run: &Run, out: PathBuf) -> CharacterizeRequest {
    let s = &fleet.sweep;
    let embedded = run.engine.name == EMBEDDED && run.engine.endpoint.is_none();
    let options = CharacterizeOptions {
        endpoint: run.engine.endpoint.clone(),
        model: Some(run.model_name.clone()),
        out,
        resume: true,
        gpu: run.gpu.spec.as_ref().map(|g| g.name.clone()),
        gpu_count: run.gpu.spec.as_ref().map(|_| run.gpu.count),
        engine_label: (!embedded).then(|| run.engine.name.clone()),
        ..CharacterizeOptions::default()
    };
    CharacterizeRequest {
        options,
        duration: Some(s.duration),
        warmup: Some(s.warmup),
        num_prompts: None,
        quiet: false,
        users: s.users.clone(),
        rates: s.rates.clone(),
        lengths: s.lengths,
        workload: s.workload.clone(),
        slos: s.slos.clone(),
        tune: s.tune.clone(),
        // Started once for the run, or for each trial of a tuning, by characterize.
        launch: launch_command(run),
        health_timeout: HEALTH_TIMEOUT,
        dataset: Default::default(),
        tokenizer: None,
        extra_body: None,
        headers: Vec::new(),
    }
}

/// The run's `launch` command with its model filled in.
fn launch_command(run: &Run) -> Option<String> {
    run.engine
        .launch
        .as_ref()
        .map(|l| l.replace("{model}", &run.model_name))
}

/// Runs every run not done yet, one after another; a run that failed before is tried again
/// while it has fewer than `max_attempts` attempts. Progress goes to stderr as it happens.
/// A stop signal (Ctrl-C, SIGTERM) saves the run in progress as pending and ends the fleet.
///
/// `after_run` is called with each run's id once its fate is recorded (a bucket's mirror
/// uploads it then, so a campaign on a machine that dies loses at most one run's staging).
pub fn run(
    fleet: &Fleet,
    results: &Path,
    max_attempts: u32,
    after_run: &mut dyn FnMut(&str) -> Result<(), FleetError>,
) -> Result<FleetReport, FleetError> {
    check(fleet)?;
    let ids: Vec<String> = fleet.runs.iter().map(|r| r.id.clone()).collect();
    let mut state = FleetState::open(results, &fleet.name, &ids)?;
    let mut report = FleetReport::default();
    let total = fleet.runs.len();
    for (i, run) in fleet.runs.iter().enumerate() {
        let fate = state.fate(&run.id);
        let attempts = state.runs.get(&run.id).map_or(0, |r| r.attempts);
        if fate == Fate::Done {
            report.skipped += 1;
            eprintln!("[{}/{total}] {}: done before, skipped", i + 1, run.id);
            continue;
        }
        if fate.is_failure() && attempts >= max_attempts {
            eprintln!(
                "[{}/{total}] {}: failed {attempts} time(s), not tried again (--max-attempts {max_attempts})",
                i + 1,
                run.id
            );
            continue;
        }
        eprintln!(
            "[{}/{total}] {}: {} on {} under {}{}",
            i + 1,
            run.id,
            run.model.id,
            run.gpu.label(),
            run.engine.name,
            if fate == Fate::Pending && attempts == 0 {
                String::new()
            } else {
                format!(" (resuming: it was {})", fate.name())
            }
        );
        state.set(&run.id, Fate::Running, None)?;
        report.started += 1;
        let out = run_dir(results, &run.id);
        match characterize_command(request(fleet, run, out)) {
            Ok(output) => {
                eprintln!("{}", output.text.trim_end());
                match output.failure {
                    None => state.set(&run.id, Fate::Done, None)?,
                    Some(why) => {
                        let fate = Fate::of_failure(&why);
                        eprintln!("[{}/{total}] {}: {}: {why}", i + 1, run.id, fate.name());
                        state.set(&run.id, fate, Some(why))?;
                    }
                }
            }
            Err(e @ CharacterizeError::Interrupted { .. }) => {
                state.set(&run.id, Fate::Pending, Some(e.to_string()))?;
                after_run(&run.id)?;
                return Err(FleetError::Backend(format!(
                    "{e}; `pilot fleet run` again resumes the fleet where it stopped"
                )));
            }
            Err(e) => {
                let why = e.to_string();
                eprintln!("[{}/{total}] {}: failed: {why}", i + 1, run.id);
                let fate = Fate::of_failure(&why);
                state.set(&run.id, fate, Some(why))?;
            }
        }
        after_run(&run.id)?;
    }
    report.fates = state.fates(fleet.runs.iter().map(|r| r.id.as_str()));
    Ok(report)
}

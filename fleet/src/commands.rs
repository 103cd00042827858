//! The clap-free entry points of `pilot fleet plan|run|collect`: paths and options in, the
//! text to print out ([`Output`]).

use crate::collect::collect;
use crate::error::FleetError;
use crate::plan::{self, Fleet};
use crate::state::Fate;
use pilot_core::command::Output;
use std::path::{Path, PathBuf};

/// Where a fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// This machine, one run after another.
    Local,
    /// One Kubernetes Job per run, on the cluster of the current kubeconfig.
    K8s,
}

/// The results directory of a plan when none is given: `pilot-fleet/<name>`.
pub fn default_results(fleet: &Fleet) -> PathBuf {
    Path::new("pilot-fleet").join(pilot_recommend::deploy::dns_label(&fleet.name))
}

/// The kubeconfig in effect: `$KUBECONFIG` (its first file), else `~/.kube/config`, when it
/// exists.
pub fn kubeconfig() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&v).find(|p| p.is_file());
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".kube").join("config")).filter(|p| p.is_file())
}

/// `pilot fleet plan PLAN`: the expanded matrix and what it will cost, before anything runs.
pub fn plan_command(path: &Path) -> Result<Output, FleetError> {
    let fleet = plan::load(path)?;
    Ok(Output {
        text: format!("{}\n{}", plan::matrix_table(&fleet), plan::totals(&fleet)),
        notes: fleet.notes.clone(),
        ..Output::default()
    })
}

/// `pilot fleet run PLAN`, as typed.
pub struct RunRequest {
    pub plan: PathBuf,
    pub backend: Backend,
    /// The results directory (default [`default_results`]).
    pub results: Option<PathBuf>,
    /// Kubernetes: write the manifests to `out` instead of applying them.
    pub dry_run: bool,
    pub out: Option<PathBuf>,
    /// Attempts a failed run gets, over every `fleet run`, before it is left failed.
    pub max_attempts: u32,
}

/// `pilot fleet run`: runs the plan's runs not done yet on the backend; or, with `--dry-run`
/// on Kubernetes, writes their Jobs' manifests.
pub fn run_command(req: RunRequest) -> Result<Output, FleetError> {
    let fleet = plan::load(&req.plan)?;
    let results = req
        .results
        .clone()
        .unwrap_or_else(|| default_results(&fleet));
    let mut notes = fleet.notes.clone();
    let mut backend = req.backend;
    if backend == Backend::K8s && req.dry_run {
        let dir = req.out.clone().ok_or_else(|| {
            FleetError::Backend("--dry-run writes the manifests into --out DIR: give one".into())
        })?;
        let written = crate::k8s::write_manifests(&fleet, &dir)?;
        return Ok(Output {
            text: format!(
                "{} Job manifest(s) written to {} (apply with `kubectl apply -f {}`)",
                written.len(),
                dir.display(),
                dir.display()
            ),
            notes,
            log: written
                .iter()
                .map(|p| format!("wrote {}", p.display()))
                .collect(),
            failure: None,
        });
    }
    if backend == Backend::K8s {
        match kubeconfig() {
            None => {
                notes.push(
                    "no kubeconfig ($KUBECONFIG or ~/.kube/config): running on the local backend"
                        .into(),
                );
                backend = Backend::Local;
            }
            Some(path) => {
                return Err(FleetError::Backend(format!(
                    "applying Jobs to the cluster of {} is not implemented yet: write the manifests with --dry-run --out DIR and apply them with kubectl",
                    path.display()
                )));
            }
        }
    }
    debug_assert_eq!(backend, Backend::Local);
    let report = crate::local::run(&fleet, &results, req.max_attempts)?;
    let rows = report.fates.iter().map(|(id, fate, reason)| {
        vec![
            id.clone(),
            fate.name().to_string(),
            reason.clone().unwrap_or_default(),
        ]
    });
    let text = pilot_core::table::table(&["run", "fate", "reason"], rows);
    let done = report.fates.iter().filter(|f| f.1 == Fate::Done).count();
    let failed: Vec<&str> = report
        .fates
        .iter()
        .filter(|f| f.1 != Fate::Done)
        .map(|f| f.0.as_str())
        .collect();
    Ok(Output {
        text,
        notes,
        log: vec![
            format!(
                "{done} of {} runs done ({} measured now, {} done before); results in {}",
                report.fates.len(),
                report.started,
                report.skipped,
                results.display()
            ),
            format!(
                "collect them with `pilot fleet collect {} --results {} --out dataset.parquet`",
                req.plan.display(),
                results.display()
            ),
        ],
        failure: (!failed.is_empty()).then(|| {
            format!(
                "{} run(s) not done: {}; what they measured is kept, and `pilot fleet run` again retries them",
                failed.len(),
                failed.join(", ")
            )
        }),
    })
}

/// `pilot fleet collect PLAN --out FILE`.
pub fn collect_command(
    plan_path: &Path,
    results: Option<PathBuf>,
    out: &Path,
) -> Result<Output, FleetError> {
    let fleet = plan::load(plan_path)?;
    let results = results.unwrap_or_else(|| default_results(&fleet));
    let c = collect(&fleet, &results, out)?;
    let text = format!(
        "{} rows from {} run(s) written to {}",
        c.rows,
        c.runs_with_rows,
        c.dataset.display()
    );
    let mut log = Vec::new();
    if let Some(p) = &c.requests_path {
        log.push(format!(
            "{} requests written to {}",
            c.requests,
            p.display()
        ));
    }
    log.push(format!(
        "train on it with `pilot train --data {}`",
        c.dataset.display()
    ));
    Ok(Output {
        text,
        notes: c.notes,
        log,
        failure: None,
    })
}

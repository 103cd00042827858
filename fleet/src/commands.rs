//! The clap-free entry points of `pilot fleet plan|run|collect`: paths and options in, the
//! text to print out ([`Output`]).

use crate::bucket::{self, Bucket, BucketUrl, Moved};
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

/// Where a fleet's results are, as `--results` gave them.
struct Results {
    /// The directory runs are written to and read from here: the results themselves, or a
    /// bucket's staging copy ([`default_results`]).
    dir: PathBuf,
    /// The bucket, opened (with the AWS variables' credentials) only when something moves:
    /// `--dry-run` needs its URL alone.
    bucket: Option<BucketUrl>,
}

impl Results {
    /// A directory, or object storage (`s3://bucket/prefix`) staged in [`default_results`].
    /// A URL of another scheme is refused before anything runs, not taken for a directory
    /// named `gs:`.
    fn of(given: Option<PathBuf>, fleet: &Fleet) -> Result<Results, FleetError> {
        let Some(given) = given else {
            return Ok(Results {
                dir: default_results(fleet),
                bucket: None,
            });
        };
        match BucketUrl::parse(&given.to_string_lossy())? {
            Some(url) => Ok(Results {
                dir: default_results(fleet),
                bucket: Some(url),
            }),
            None => Ok(Results {
                dir: given,
                bucket: None,
            }),
        }
    }

    /// Where the results are, as the user named them.
    fn name(&self) -> String {
        match &self.bucket {
            Some(url) => url.to_string(),
            None => self.dir.display().to_string(),
        }
    }

    /// Brings the bucket's copy here (every file this side lacks or holds older).
    fn pull(&self) -> Result<Option<Moved>, FleetError> {
        self.bucket
            .as_ref()
            .map(|url| bucket::block_on("pull", Bucket::open(url)?.pull("", &self.dir)))
            .transpose()
    }

    /// Sends `rel` (a file or a directory below the results; "" for all) to the bucket.
    fn push(&self, rel: &str) -> Result<Option<Moved>, FleetError> {
        let Some(url) = &self.bucket else {
            return Ok(None);
        };
        let path = rel.split('/').fold(self.dir.clone(), |p, c| p.join(c));
        let moved = bucket::block_on("push", Bucket::open(url)?.push(&path, rel))?;
        Ok(Some(moved))
    }
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
    /// Kubernetes: time between two looks at the active Jobs.
    pub poll: std::time::Duration,
}

/// `pilot fleet run`: runs the plan's runs not done yet on the backend; or, with `--dry-run`
/// on Kubernetes, writes their Jobs' manifests.
pub fn run_command(req: RunRequest) -> Result<Output, FleetError> {
    let fleet = plan::load(&req.plan)?;
    let results = Results::of(req.results.clone(), &fleet)?;
    let job_results = results.bucket.as_ref().map_or(
        crate::k8s::JobResults::Volume,
        crate::k8s::JobResults::Bucket,
    );
    let mut notes = fleet.notes.clone();
    let mut backend = req.backend;
    if backend == Backend::K8s && req.dry_run {
        let dir = req.out.clone().ok_or_else(|| {
            FleetError::Backend("--dry-run writes the manifests into --out DIR: give one".into())
        })?;
        let written = crate::k8s::write_manifests(&fleet, &dir, job_results)?;
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
    // Runs measured elsewhere (another machine, the cluster's pods) are resumed or skipped
    // from the bucket's copy.
    if let Some(m) = results.pull()? {
        notes.push(format!(
            "{} file(s) pulled from {} into {}",
            m.files,
            results.name(),
            results.dir.display()
        ));
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
                let opts = crate::cluster::ClusterOptions {
                    kubeconfig: path,
                    poll: req.poll,
                    max_attempts: req.max_attempts,
                    parallel: fleet.kubernetes.parallel,
                    bucket: results.bucket.clone(),
                };
                if let (Some(url), Some(file)) = (&results.bucket, &fleet.sweep.workload) {
                    let name = file
                        .file_name()
                        .map_or_else(|| "workload".into(), |n| n.to_string_lossy().into_owned());
                    let b = Bucket::open(url)?;
                    bucket::block_on("push", b.push(file, &format!("workload/{name}")))?;
                }
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| FleetError::Io {
                        what: "start the async runtime for",
                        path: opts.kubeconfig.clone(),
                        source,
                    })?;
                let report = runtime.block_on(crate::cluster::run(&fleet, &results.dir, &opts));
                results.push(crate::state::STATE_FILE)?;
                return Ok(report_output(&req, &results, report?, notes));
            }
        }
    }
    debug_assert_eq!(backend, Backend::Local);
    let report = crate::local::run(&fleet, &results.dir, req.max_attempts, &mut |id| {
        results.push(&format!("runs/{id}"))?;
        results.push(crate::state::STATE_FILE).map(|_| ())
    })?;
    Ok(report_output(&req, &results, report, notes))
}

/// The fates table and the lines under it, from either backend.
fn report_output(
    req: &RunRequest,
    results: &Results,
    report: crate::local::FleetReport,
    notes: Vec<String>,
) -> Output {
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
    Output {
        text,
        notes,
        log: vec![
            format!(
                "{done} of {} runs done ({} measured now, {} done before); results in {}",
                report.fates.len(),
                report.started,
                report.skipped,
                results.name()
            ),
            format!(
                "collect them with `pilot fleet collect {} --results {} --out dataset.parquet`",
                req.plan.display(),
                results.name()
            ),
        ],
        failure: (!failed.is_empty()).then(|| {
            format!(
                "{} run(s) not done: {}; what they measured is kept, and `pilot fleet run` again retries them",
                failed.len(),
                failed.join(", ")
            )
        }),
    }
}

/// `pilot fleet collect PLAN --out FILE`.
pub fn collect_command(
    plan_path: &Path,
    results: Option<PathBuf>,
    out: &Path,
) -> Result<Output, FleetError> {
    let fleet = plan::load(plan_path)?;
    let results = Results::of(results, &fleet)?;
    let pulled = results.pull()?;
    let mut c = collect(&fleet, &results.dir, out)?;
    if let Some(m) = pulled {
        c.notes.push(format!(
            "{} file(s) pulled from {} into {} first",
            m.files,
            results.name(),
            results.dir.display()
        ));
    }
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

/// `pilot fleet push DIR URL`: uploads a directory (or a file) to object storage, what the
/// bucket lacks or holds older. A Job's pilot container mirrors its run with it.
pub fn push_command(local: &Path, url: &str) -> Result<Output, FleetError> {
    let url = bucket_url(url)?;
    if !local.exists() {
        return Err(FleetError::Backend(format!(
            "{} does not exist: nothing to push to {url}",
            local.display()
        )));
    }
    let b = Bucket::open(&url)?;
    let m = bucket::block_on("push", b.push(local, ""))?;
    Ok(Output {
        text: format!(
            "{} file(s), {} bytes, pushed from {} to {url}",
            m.files,
            m.bytes,
            local.display()
        ),
        ..Output::default()
    })
}

/// `pilot fleet pull URL DIR`: downloads what object storage holds below URL into DIR, what
/// DIR lacks or holds older. Nothing in DIR is deleted.
pub fn pull_command(url: &str, local: &Path) -> Result<Output, FleetError> {
    let url = bucket_url(url)?;
    let b = Bucket::open(&url)?;
    let m = bucket::block_on("pull", b.pull("", local))?;
    Ok(Output {
        text: format!(
            "{} file(s), {} bytes, pulled from {url} into {}",
            m.files,
            m.bytes,
            local.display()
        ),
        ..Output::default()
    })
}

fn bucket_url(text: &str) -> Result<BucketUrl, FleetError> {
    BucketUrl::parse(text)?.ok_or_else(|| {
        FleetError::Backend(format!(
            "'{text}' is not an object-storage URL; write s3://bucket/prefix"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_a_store_pilot_cannot_write_to_are_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.toml");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet-local.toml"),
            &plan,
        )
        .unwrap();
        let e = collect_command(
            &plan,
            Some("gs://bucket/fleet".into()),
            &dir.path().join("x.csv"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("gs://bucket/fleet") && e.contains("s3://"),
            "{e}"
        );
        assert!(!Path::new("gs:").exists());
    }
}

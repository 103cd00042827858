//! The Kubernetes backend's calls: the runs' Jobs ([`crate::k8s`]) created on the API server
//! of a kubeconfig, watched until each is done, failed, out of memory or unschedulable, and
//! every fate recorded in the same `fleet-state.json` as the local backend's.
//!
//! Why polling, not a watch stream: a campaign lasts days, through API-server restarts and
//! expired watch bookmarks; a `get` of each active Job's status every few seconds is a few
//! requests a minute, survives any of that, and a process killed in between loses nothing:
//! the next `fleet run` finds its Jobs by name (a create answered 409 adopts the Job already
//! there) and keeps watching them.
//!
//! Bounded retries: a Job retries its pod `backoffLimit` times itself; a Job that failed is
//! created again by a later `fleet run` while the run has attempts left, and resumes (pilot
//! runs `characterize --resume` into the same run directory). A pod that stays unschedulable
//! past the plan's `schedule_timeout` has its Job deleted and the run recorded with the
//! scheduler's reason from the pod's events.

use crate::error::FleetError;
use crate::k8s::{self, JobManifest};
use crate::local::FleetReport;
use crate::plan::Fleet;
use crate::state::{Fate, FleetState};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Lines of the pilot container's log kept in a failed run's reason.
const LOG_LINES: i64 = 5;

/// Failed status reads in a row (about this many polls) before the watch gives up: an API
/// server restart or a dropped connection must not end a week-long campaign.
const MAX_FAILED_LOOKS: u32 = 20;

/// How the backend runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub kubeconfig: PathBuf,
    /// Time between two looks at the active Jobs.
    pub poll: Duration,
    /// Attempts a run gets, over every `fleet run`.
    pub max_attempts: u32,
    /// Jobs active at once (the others wait their turn here, not in the cluster's queue,
    /// so a shared cluster is not flooded).
    pub parallel: usize,
    /// Where the Jobs write their results: the plan's volume (`None`) or a bucket.
    pub bucket: Option<crate::bucket::BucketUrl>,
}

fn api_error(what: &str, e: kube::Error) -> FleetError {
    FleetError::Backend(format!("Kubernetes API: {what}: {e}"))
}

/// A client for the current context of the kubeconfig at `path`.
pub async fn connect(path: &Path) -> Result<Client, FleetError> {
    let bad = |e: &dyn std::fmt::Display| {
        FleetError::Backend(format!(
            "cannot use the kubeconfig {}: {e}; fix it, or pass --backend local",
            path.display()
        ))
    };
    let kc = Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(&e))?;
    Client::try_from(config).map_err(|e| bad(&e))
}

/// The APIs the backend uses, in the plan's namespace.
struct Apis {
    jobs: Api<Job>,
    pods: Api<Pod>,
    events: Api<Event>,
    config_maps: Api<ConfigMap>,
}

/// What one look at a Job found.
#[derive(Debug, PartialEq)]
enum Seen {
    Active,
    Ended(Fate, Option<String>),
}

/// The run's objects for its `attempt`-th Job: the first keeps the manifest's name, later
/// ones add `-<attempt>`, so a retry never collides with the failed Job it replaces (which
/// stays, with its pods' logs, until someone deletes it).
fn for_attempt(m: &JobManifest, attempt: u32) -> JobManifest {
    if attempt <= 1 {
        return m.clone();
    }
    let suffix = format!("-{attempt}");
    let base = &m.name[..m.name.len().min(63 - suffix.len())];
    let name = format!("{}{suffix}", base.trim_end_matches('-'));
    let mut out = m.clone();
    for o in &mut out.objects {
        if o["kind"] == "Job" {
            o["metadata"]["name"] = serde_json::json!(name);
        }
    }
    out.name = name;
    out
}

/// Creates a run's objects; a Job already there (a `fleet run` stopped while it ran) is
/// adopted. Returns whether the Job was created now.
async fn submit(apis: &Apis, m: &JobManifest) -> Result<bool, FleetError> {
    let pp = PostParams::default();
    let mut created = false;
    for o in &m.objects {
        let exists = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 409);
        match o["kind"].as_str() {
            Some("ConfigMap") => {
                let cm: ConfigMap = serde_json::from_value(o.clone())
                    .map_err(|e| FleetError::Backend(format!("ConfigMap of {}: {e}", m.run)))?;
                if let Err(e) = apis.config_maps.create(&pp, &cm).await
                    && !exists(&e)
                {
                    return Err(api_error(&format!("create the ConfigMap of {}", m.run), e));
                }
            }
            Some("Job") => {
                let job: Job = serde_json::from_value(o.clone())
                    .map_err(|e| FleetError::Backend(format!("Job of {}: {e}", m.run)))?;
                match apis.jobs.create(&pp, &job).await {
                    Ok(_) => created = true,
                    Err(e) if exists(&e) => {}
                    Err(e) => return Err(api_error(&format!("create the Job {}", m.name), e)),
                }
            }
            _ => {}
        }
    }
    Ok(created)
}

/// Looks at a Job: done, failed (out of memory when a container was OOMKilled), stuck
/// unschedulable for longer than `schedule_timeout` since `since` (then deleted), or active.
async fn observe(
    apis: &Apis,
    m: &JobManifest,
    since: Instant,
    schedule_timeout: Duration,
) -> Result<Seen, FleetError> {
    let job = apis
        .jobs
        .get_status(&m.name)
        .await
        .map_err(|e| api_error(&format!("read the Job {}", m.name), e))?;
    let status = job.status.unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
            .cloned()
    };
    if status.succeeded.unwrap_or(0) > 0 || condition("Complete").is_some() {
        return Ok(Seen::Ended(Fate::Done, None));
    }
    let pods = apis
        .pods
        .list(&ListParams::default().labels(&format!("job-name={}", m.name)))
        .await
        .map_err(|e| api_error(&format!("list the pods of {}", m.name), e))?;
    if let Some(failed) = condition("Failed") {
        let mut reason = format!(
            "{}: {}",
            failed.reason.unwrap_or_else(|| "Failed".into()),
            failed.message.unwrap_or_default()
        );
        let oom = pods.items.iter().find_map(oom_killed);
        if let Some(container) = &oom {
            reason = format!("container {container} was OOMKilled; {reason}");
        }
        if let Some(pod) = pods.items.last().and_then(|p| p.metadata.name.clone()) {
            let lp = LogParams {
                container: Some("pilot".into()),
                tail_lines: Some(LOG_LINES),
                ..LogParams::default()
            };
            // The log is a courtesy: a pod already gone has none, and that is no error.
            if let Ok(log) = apis.pods.logs(&pod, &lp).await {
                let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
                if !tail.is_empty() {
                    reason.push_str(&format!("; pilot's log ends: {}", tail.join(" | ")));
                }
            }
        }
        // The kernel's OOMKilled, or the engine's own out-of-memory error in pilot's log.
        let fate = if oom.is_some() {
            Fate::OutOfMemory
        } else {
            Fate::of_failure(&reason)
        };
        return Ok(Seen::Ended(fate, Some(reason)));
    }
    let unschedulable = pods.items.iter().find(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    });
    if let Some(pod) = unschedulable
        && since.elapsed() >= schedule_timeout
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let events = apis
            .events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .map_err(|e| api_error(&format!("list the events of {name}"), e))?;
        let why = events
            .items
            .iter()
            .rev()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| "the scheduler gave no reason".into());
        apis.jobs
            .delete(&m.name, &DeleteParams::background())
            .await
            .map_err(|e| api_error(&format!("delete the Job {}", m.name), e))?;
        return Ok(Seen::Ended(
            Fate::Unschedulable,
            Some(format!(
                "not scheduled within {}: {why}",
                humantime::format_duration(schedule_timeout)
            )),
        ));
    }
    Ok(Seen::Active)
}

/// The first container of a pod that was OOMKilled (in its current or last state).
fn oom_killed(p: &Pod) -> Option<String> {
    let s = p.status.as_ref()?;
    s.init_container_statuses
        .iter()
        .flatten()
        .chain(s.container_statuses.iter().flatten())
        .find(|c| {
            [c.state.as_ref(), c.last_state.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|st| st.terminated.as_ref())
                .any(|t| t.reason.as_deref() == Some("OOMKilled"))
        })
        .map(|c| c.name.clone())
}

/// Runs the fleet's runs not done yet as Jobs and watches them to their end.
pub async fn run(
    fleet: &Fleet,
    results: &Path,
    opts: &ClusterOptions,
) -> Result<FleetReport, FleetError> {
    let results_at = opts
        .bucket
        .as_ref()
        .map_or(k8s::JobResults::Volume, k8s::JobResults::Bucket);
    let manifests = k8s::manifests(fleet, results_at)?;
    let schedule_timeout = fleet.kubernetes.schedule_timeout;
    let client = connect(&opts.kubeconfig).await?;
    let ns = &fleet.kubernetes.namespace;
    let apis = Apis {
        jobs: Api::namespaced(client.clone(), ns),
        pods: Api::namespaced(client.clone(), ns),
        events: Api::namespaced(client.clone(), ns),
        config_maps: Api::namespaced(client, ns),
    };
    let ids: Vec<String> = fleet.runs.iter().map(|r| r.id.clone()).collect();
    let mut state = FleetState::open(results, &fleet.name, &ids)?;
    let mut report = FleetReport::default();
    let mut queue: VecDeque<JobManifest> = VecDeque::new();
    for m in &manifests {
        let fate = state.fate(&m.run);
        let attempts = state.runs.get(&m.run).map_or(0, |r| r.attempts);
        if fate == Fate::Done {
            report.skipped += 1;
        } else if fate.is_failure() && attempts >= opts.max_attempts {
            eprintln!(
                "{}: {} {attempts} time(s), not tried again (--max-attempts {})",
                m.run,
                fate.name(),
                opts.max_attempts
            );
        } else if fate == Fate::Running {
            // Its Job may still run: watched again under the name of the attempt it is on.
            queue.push_back(for_attempt(m, attempts));
        } else {
            queue.push_back(for_attempt(m, attempts + 1));
        }
    }
    let total = manifests.len();
    let progress = Progress::new(total, &state, &ids);
    let mut active: Vec<(JobManifest, Instant)> = Vec::new();
    let mut failed_looks = 0u32;
    loop {
        while active.len() < opts.parallel.max(1)
            && let Some(m) = queue.pop_front()
        {
            let created = submit(&apis, &m).await?;
            if created || state.fate(&m.run) != Fate::Running {
                state.set(&m.run, Fate::Running, None)?;
            }
            report.started += 1;
            progress.line(format!(
                "{}: Job {} {} in {ns}",
                m.run,
                m.name,
                if created {
                    "created"
                } else {
                    "already there, watched"
                }
            ));
            active.push((m, Instant::now()));
        }
        if active.is_empty() {
            break;
        }
        progress.show(&state, &ids, active.len(), queue.len());
        tokio::time::sleep(opts.poll).await;
        let mut still = Vec::new();
        for (m, since) in active {
            // One failed look (an API server restarting) is not the Job's fate: it is
            // looked at again next poll; only many failures in a row end the watch.
            let seen = match observe(&apis, &m, since, schedule_timeout).await {
                Ok(seen) => {
                    failed_looks = 0;
                    seen
                }
                Err(e) if failed_looks < MAX_FAILED_LOOKS => {
                    failed_looks += 1;
                    progress.line(format!(
                        "{}: cannot read the Job's status now ({e}); retrying",
                        m.run
                    ));
                    still.push((m, since));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match seen {
                Seen::Active => still.push((m, since)),
                Seen::Ended(fate, reason) => {
                    state.set(&m.run, fate, reason.clone())?;
                    let done = state.runs.values().filter(|r| r.fate == Fate::Done).count();
                    progress.line(format!(
                        "{}: {}{} ({done} of {total} done, {} waiting)",
                        m.run,
                        fate.name(),
                        reason.map(|r| format!(": {r}")).unwrap_or_default(),
                        queue.len()
                    ));
                }
            }
        }
        active = still;
    }
    progress.bar.finish_and_clear();
    report.fates = state.fates(fleet.runs.iter().map(|r| r.id.as_str()));
    Ok(report)
}

/// The watch's progress on a terminal: a bar of the runs that ended, with how many are done,
/// active, waiting their turn and failed; every event is also a line, on a terminal or not.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(total: usize, state: &FleetState, ids: &[String]) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} ended, {elapsed} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix("fleet");
        let p = Progress { bar };
        p.show(state, ids, 0, 0);
        p
    }

    /// Redraws the bar from the fates.
    fn show(&self, state: &FleetState, ids: &[String], active: usize, waiting: usize) {
        let count = |f: fn(Fate) -> bool| ids.iter().filter(|id| f(state.fate(id))).count();
        let done = count(|f| f == Fate::Done);
        let failed = count(Fate::is_failure);
        self.bar.set_position((done + failed) as u64);
        self.bar.set_message(format!(
            "{done} done, {active} active, {waiting} waiting, {failed} failed"
        ));
    }

    /// An event, printed above the bar (or alone where stderr is not a terminal).
    fn line(&self, text: String) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}

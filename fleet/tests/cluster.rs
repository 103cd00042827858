//! The Kubernetes backend's API calls (create, status, pods, logs, events, delete) against an
//! in-process HTTP server that answers the subset of the API server's REST API the backend
//! uses, shaped from the Kubernetes API reference (batch/v1 Job and its status subresource,
//! core/v1 Pod list and log, Event list with a field selector, Status on 409). No cluster is
//! reached: the kubeconfig written here points at the server on 127.0.0.1.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pilot_fleet::cluster::{ClusterOptions, run};
use pilot_fleet::plan;
use pilot_fleet::state::{Fate, FleetState, STATE_FILE};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake API server holds and saw.
#[derive(Default)]
struct Mock {
    jobs: BTreeMap<String, Value>,
    created: Vec<String>,
    deleted: Vec<String>,
    logs_read: Vec<String>,
    events_read: Vec<String>,
    /// Every request's method and path, to check nothing else is called.
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Mock>>;

/// How a Job behaves, by the model in its name.
enum Behaviour {
    Succeeds,
    OutOfMemory,
    Unschedulable,
}

fn behaviour(job: &str) -> Behaviour {
    if job.contains("mistral") {
        Behaviour::OutOfMemory
    } else if job.contains("qwen") {
        Behaviour::Unschedulable
    } else {
        Behaviour::Succeeds
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message, "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn log_call(m: &Shared, call: String) {
    m.lock().unwrap().calls.push(call);
}

async fn create_job(
    State(m): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    body: Bytes,
) -> Response {
    log_call(&m, format!("POST jobs in {ns}"));
    let mut job: Value = serde_json::from_slice(&body).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let mut mock = m.lock().unwrap();
    if mock.jobs.contains_key(&name) {
        return status(
            409,
            "AlreadyExists",
            &format!("jobs.batch \"{name}\" already exists"),
        );
    }
    job["metadata"]["uid"] = json!(format!("uid-{name}"));
    job["metadata"]["namespace"] = json!(ns);
    mock.jobs.insert(name.clone(), job.clone());
    mock.created.push(name);
    (StatusCode::CREATED, axum::Json(job)).into_response()
}

async fn job_status(
    State(m): State<Shared>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Response {
    log_call(&m, format!("GET job {name} status in {ns}"));
    let mock = m.lock().unwrap();
    let Some(job) = mock.jobs.get(&name) else {
        return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
    };
    let mut job = job.clone();
    job["status"] = match behaviour(&name) {
        Behaviour::Succeeds => json!({
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }),
        Behaviour::OutOfMemory => json!({
            "failed": 3,
            "conditions": [{
                "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }],
        }),
        Behaviour::Unschedulable => json!({"active": 1}),
    };
    axum::Json(job).into_response()
}

async fn delete_job(
    State(m): State<Shared>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Response {
    log_call(&m, format!("DELETE job {name} in {ns}"));
    let mut mock = m.lock().unwrap();
    if mock.jobs.remove(&name).is_none() {
        return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
    }
    mock.deleted.push(name);
    status(200, "", "")
}

fn decoded(q: Option<String>) -> String {
    q.unwrap_or_default()
        .replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%2F", "/")
}

async fn list_pods(
    State(m): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = decoded(q);
    log_call(&m, format!("GET pods in {ns}?{q}"));
    let job = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector=job-name="))
        .expect("pods are listed by their Job's label")
        .to_string();
    let pod = format!("{job}-abcde");
    let status = match behaviour(&job) {
        Behaviour::Succeeds => json!({"phase": "Succeeded"}),
        Behaviour::OutOfMemory => json!({
            "phase": "Failed",
            "initContainerStatuses": [{
                "name": "engine", "image": "vllm/vllm-openai:latest", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }],
            "containerStatuses": [{
                "name": "pilot", "image": "pilot", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}},
            }],
        }),
        Behaviour::Unschedulable => json!({
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available",
            }],
        }),
    };
    axum::Json(json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {},
        "items": [{
            "metadata": {"name": pod, "namespace": ns, "labels": {"job-name": job}},
            "status": status,
        }],
    }))
    .into_response()
}

async fn pod_log(
    State(m): State<Shared>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = decoded(q);
    log_call(&m, format!("GET log {pod} in {ns}?{q}"));
    assert!(q.contains("container=pilot"), "{q}");
    m.lock().unwrap().logs_read.push(pod);
    "note: resumed: 0 levels already measured are kept\nerror: no measured request succeeded; the first error: connection refused\n".into_response()
}

async fn list_events(
    State(m): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = decoded(q);
    log_call(&m, format!("GET events in {ns}?{q}"));
    let pod = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldSelector=involvedObject.name="))
        .expect("events are listed for one object")
        .to_string();
    m.lock().unwrap().events_read.push(pod.clone());
    axum::Json(json!({
        "kind": "EventList", "apiVersion": "v1", "metadata": {},
        "items": [
            {"metadata": {"name": "e1", "namespace": ns}, "involvedObject": {"kind": "Pod", "name": pod},
             "reason": "Scheduled", "message": "an older event", "type": "Normal"},
            {"metadata": {"name": "e2", "namespace": ns}, "involvedObject": {"kind": "Pod", "name": pod},
             "reason": "FailedScheduling", "type": "Warning",
             "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."},
        ],
    }))
    .into_response()
}

/// A route the fake server does not answer: recorded, so the test fails on it.
async fn unknown_route(
    State(m): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    log_call(&m, format!("UNKNOWN {method} {uri}"));
    status(
        404,
        "NotFound",
        "the fake API server does not answer this route",
    )
}

/// Starts the fake API server; returns its address.
async fn serve(mock: Shared) -> std::net::SocketAddr {
    let app = Router::new()
        .route("/apis/batch/v1/namespaces/{ns}/jobs", post(create_job))
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            get(job_status),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            axum::routing::delete(delete_job),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .route("/api/v1/namespaces/{ns}/pods/{pod}/log", get(pod_log))
        .route("/api/v1/namespaces/{ns}/events", get(list_events))
        .fallback(unknown_route)
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn write_kubeconfig(dir: &Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://{addr}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
users:
- name: fake
  user:
    token: fake-token
"
        ),
    )
    .unwrap();
    path
}

fn write_plan(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(
        &path,
        r#"
name = "k8s-test"
duration = "30s"
warmup = "5s"
[load]
users = [1, 8]
[workload]
input_tokens = 512
output_tokens = 128
[[llms]]
model = "llama-3.1-8b"
[[llms]]
model = "mistral-7b"
[[llms]]
model = "qwen2.5-7b"
[[gpus]]
gpu = "H100"
[[engines]]
name = "vllm"
[kubernetes]
namespace = "bench"
schedule_timeout = "0s"
parallel = 2
"#,
    )
    .unwrap();
    path
}

fn fates(results: &Path) -> BTreeMap<String, (Fate, u32, Option<String>)> {
    FleetState::read(&results.join(STATE_FILE))
        .unwrap()
        .unwrap()
        .runs
        .into_iter()
        .map(|(k, r)| (k, (r.fate, r.attempts, r.reason)))
        .collect()
}

/// A fleet of three runs: one Job succeeds, one is OOMKilled past its backoff limit (its
/// pilot log read), one never schedules (its events read, its Job deleted). A second
/// `fleet run` skips the done run and retries the others under new Job names; a third, past
/// the attempts allowed, creates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_created_watched_and_their_fates_recorded_and_retried_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mock: Shared = Arc::default();
    let addr = serve(mock.clone()).await;
    let fleet = plan::load(&write_plan(dir.path())).unwrap();
    let results = dir.path().join("results");
    let opts = ClusterOptions {
        kubeconfig: write_kubeconfig(dir.path(), addr),
        poll: Duration::from_millis(20),
        max_attempts: 2,
        parallel: 2,
        bucket: None,
    };
    let report = run(&fleet, &results, &opts).await.unwrap();
    assert_eq!(report.fates.len(), 3);
    let f = fates(&results);
    let by_model = |m: &str| {
        f.iter()
            .find(|(k, _)| k.contains(m))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let (fate, attempts, _) = by_model("llama");
    assert_eq!((fate, attempts), (Fate::Done, 1));
    let (fate, _, reason) = by_model("mistral");
    assert_eq!(fate, Fate::OutOfMemory);
    let reason = reason.unwrap();
    assert!(
        reason.contains("engine was OOMKilled")
            && reason.contains("BackoffLimitExceeded")
            && reason.contains("connection refused"),
        "{reason}"
    );
    let (fate, _, reason) = by_model("qwen");
    assert_eq!(fate, Fate::Unschedulable);
    let reason = reason.unwrap();
    assert!(
        reason.contains("Insufficient nvidia.com/gpu") && !reason.contains("older event"),
        "{reason}"
    );
    {
        let m = mock.lock().unwrap();
        assert_eq!(m.created.len(), 3, "{:?}", m.created);
        assert!(m.created.iter().all(|n| n.starts_with("k8s-test-")));
        assert_eq!(m.deleted.len(), 1);
        assert!(m.deleted[0].contains("qwen"), "{:?}", m.deleted);
        assert_eq!(m.logs_read.len(), 1);
        assert!(m.logs_read[0].contains("mistral"));
        assert!(m.events_read[0].contains("qwen"));
        // The Job sent is the manifest the dry run writes: both containers, in the namespace.
        let job = m
            .jobs
            .values()
            .find(|j| j["metadata"]["name"].as_str().unwrap().contains("llama"))
            .unwrap();
        assert_eq!(
            job["spec"]["template"]["spec"]["initContainers"][0]["name"],
            "engine"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["name"],
            "pilot"
        );
        assert_eq!(job["metadata"]["namespace"], "bench");
    }

    // Again: the done run is skipped; the two failures are retried as new Jobs.
    run(&fleet, &results, &opts).await.unwrap();
    {
        let m = mock.lock().unwrap();
        assert_eq!(m.created.len(), 5, "{:?}", m.created);
        let retried = &m.created[3..];
        assert!(retried.iter().all(|n| n.ends_with("-2")), "{retried:?}");
        assert!(!retried.iter().any(|n| n.contains("llama")), "{retried:?}");
    }
    let f = fates(&results);
    assert!(f.values().filter(|v| v.1 == 2).count() == 2, "{f:?}");

    // A third time: no run has attempts left, nothing is created.
    run(&fleet, &results, &opts).await.unwrap();
    assert_eq!(mock.lock().unwrap().created.len(), 5);
    let calls = mock.lock().unwrap().calls.clone();
    assert!(!calls.iter().any(|c| c.starts_with("UNKNOWN")), "{calls:?}");
    // No secret reaches the state file.
    let text = std::fs::read_to_string(results.join(STATE_FILE)).unwrap();
    assert!(!text.contains("fake-token"), "{text}");
}

/// A kubeconfig that cannot be read is one clear error naming it, not a panic.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = plan::load(&write_plan(dir.path())).unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "this: [is not a kubeconfig").unwrap();
    let opts = ClusterOptions {
        kubeconfig: kc.clone(),
        poll: Duration::from_millis(20),
        max_attempts: 2,
        parallel: 2,
        bucket: None,
    };
    let e = run(&fleet, &dir.path().join("r"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&kc.display().to_string()) && e.contains("--backend local"),
        "{e}"
    );
}

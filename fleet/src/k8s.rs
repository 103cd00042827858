//! The Kubernetes backend's manifests: one `batch/v1` Job per run.
//!
//! A run's pod holds the engine and pilot side by side. The engine is a native sidecar (an
//! init container with `restartPolicy: Always`, Kubernetes 1.29+): the kubelet starts it
//! first, waits for its startup probe on the engine's health route before it starts pilot,
//! and stops it when pilot's container ends, so the Job completes when the benchmark does.
//! pilot runs `pilot characterize --endpoint http://localhost:PORT/v1 --resume` into the run's
//! directory on the results PersistentVolumeClaim, laid out as the local backend lays it out
//! (`<fleet>/runs/<run>/`), so `pilot fleet collect --results <mount>/<fleet>` reads either.
//!
//! With `--results s3://...` the run's directory is an `emptyDir` instead, mirrored to the
//! bucket: pulled before characterize starts (a retried pod resumes what the last one
//! measured), pushed every minute while it runs and once at its end ([`BUCKET_SCRIPT`]),
//! with the store's credentials from a Secret (`kubernetes.s3_secret`).
//!
//! The engine's command, GPU requests, node selector, probes and Hub token (from a Secret,
//! never a file) are `pilot recommend --emit k8s`'s: [`pilot_recommend::deploy`] writes them
//! from the engine table for both.

use crate::bucket::BucketUrl;
use crate::error::FleetError;
use crate::plan::{CPU, EMBEDDED, FILE_LENGTHS, Fleet, Run};
use pilot_core::layout::Serving;
use pilot_core::units::Tokens;
use pilot_predict::scenario::{Scenario, default_dtype};
use pilot_recommend::deploy::{self, Plan};
use pilot_recommend::search::candidate;
use pilot_recommend::space::Profile;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the results PersistentVolumeClaim is mounted in the pilot container.
pub const RESULTS_MOUNT: &str = "/results";
/// Where a weights PersistentVolumeClaim is mounted (read-only) in the engine container.
pub const WEIGHTS_MOUNT: &str = "/models";
/// The label every object of a fleet carries, with the fleet's name as its value.
pub const FLEET_LABEL: &str = "pilot.dev/fleet";
/// The label naming the run a Job measures.
pub const RUN_LABEL: &str = "pilot.dev/run";

/// The pilot container's shell when results go to a bucket: the run's directory is pulled
/// from the bucket, characterize (the arguments after the script) runs, and the directory is
/// pushed back every minute and at the end, whatever characterize's exit. The locations come
/// from the container's environment (`PILOT_RUN_DIR`, `PILOT_RESULTS_URL`, and
/// `PILOT_WORKLOAD_URL`/`PILOT_WORKLOAD_DIR` where the run reads a workload file).
pub const BUCKET_SCRIPT: &str = r#"set -u
pilot fleet pull "$PILOT_RESULTS_URL" "$PILOT_RUN_DIR" || exit 1
if [ -n "${PILOT_WORKLOAD_URL:-}" ]; then
  pilot fleet pull "$PILOT_WORKLOAD_URL" "$PILOT_WORKLOAD_DIR" || exit 1
fi
( while sleep 60; do pilot fleet push "$PILOT_RUN_DIR" "$PILOT_RESULTS_URL"; done ) </dev/null >/dev/null 2>&1 &
sync=$!
rc=0
"$@" || rc=$?
kill "$sync" 2>/dev/null
pilot fleet push "$PILOT_RUN_DIR" "$PILOT_RESULTS_URL" || exit 1
exit "$rc"
"#;

/// Where a Job's pilot container writes the run's results.
#[derive(Debug, Clone, Copy)]
pub enum JobResults<'a> {
    /// The plan's results PersistentVolumeClaim (`kubernetes.results_pvc`).
    Volume,
    /// Object storage: the fleet's results URL (its runs under `runs/<run>`).
    Bucket(&'a BucketUrl),
}

/// One run's objects (a ConfigMap where the engine reads a config file, and the Job).
#[derive(Debug, Clone)]
pub struct JobManifest {
    pub run: String,
    /// The Job's name.
    pub name: String,
    pub objects: Vec<Value>,
    /// What a person must do before applying it (a checkpoint to prepare, a file to copy).
    pub notes: Vec<String>,
}

/// The fleet's name as a label value and a directory name.
pub fn fleet_label(fleet: &Fleet) -> String {
    deploy::dns_label(&fleet.name)
}

/// The Job of a run: `<fleet>-<run>`, at most 63 characters (a label value's limit, which
/// the Job's pods' `job-name` label must meet).
pub fn job_name(fleet: &Fleet, run: &Run) -> String {
    let f = fleet_label(fleet);
    let f = f[..f.len().min(20)].trim_end_matches('-');
    let name = format!("{f}-{}", run.id);
    name[..name.len().min(63)].trim_end_matches('-').to_string()
}

/// The run's directory as the pilot container sees it.
pub fn run_path(fleet: &Fleet, run: &Run) -> String {
    format!("{RESULTS_MOUNT}/{}/runs/{}", fleet_label(fleet), run.id)
}

/// The workload file's directory as the pilot container sees it.
fn workload_dir(fleet: &Fleet) -> String {
    format!("{RESULTS_MOUNT}/{}/workload", fleet_label(fleet))
}

fn text_of(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// `pilot characterize`'s command line in the pilot container.
fn characterize_argv(
    fleet: &Fleet,
    run: &Run,
    endpoint: Option<String>,
    results: JobResults<'_>,
) -> (Vec<String>, Vec<String>) {
    let s = &fleet.sweep;
    let mut notes = Vec::new();
    let mut argv: Vec<String> = ["pilot", "characterize", "--out"]
        .map(String::from)
        .to_vec();
    argv.push(run_path(fleet, run));
    argv.push("--resume".into());
    match endpoint {
        Some(url) => argv.extend(["--endpoint".into(), url]),
        None => argv.extend(["--model".into(), run.model_name.clone()]),
    }
    argv.extend(["--duration".into(), text_of(s.duration)]);
    argv.extend(["--warmup".into(), text_of(s.warmup)]);
    let join = |v: Vec<String>| v.join(",");
    if !s.users.is_empty() {
        argv.extend([
            "--users".into(),
            join(s.users.iter().map(u32::to_string).collect()),
        ]);
    }
    if !s.rates.is_empty() {
        argv.extend(["--rate".into(), join(s.rates.clone())]);
    }
    if let Some((i, o)) = s.lengths {
        argv.extend([
            "--input-tokens".into(),
            i.to_string(),
            "--output-tokens".into(),
            o.to_string(),
        ]);
    }
    if let Some(file) = &s.workload {
        let name = file
            .file_name()
            .map_or_else(|| "workload".into(), |n| n.to_string_lossy().into_owned());
        let inside = format!("{}/{name}", workload_dir(fleet));
        notes.push(match results {
            JobResults::Volume => format!(
                "copy {} to {inside} on the results volume before applying",
                file.display()
            ),
            JobResults::Bucket(url) => format!(
                "upload {} to {} before applying (`pilot fleet run` does it)",
                file.display(),
                url.join("workload").join(&name)
            ),
        });
        argv.extend(["--workload".into(), inside]);
    }
    if !s.slos.is_empty() {
        argv.extend(["--slo".into(), join(s.slos.clone())]);
    }
    if let Some(g) = &run.gpu.spec {
        argv.extend([
            "--gpu".into(),
            g.name.clone(),
            "--gpu-count".into(),
            run.gpu.count.to_string(),
        ]);
    }
    if run.engine.name != EMBEDDED {
        argv.extend(["--engine-label".into(), run.engine.name.clone()]);
    }
    (argv, notes)
}

/// The pilot container: characterize's command line as is on the results volume; wrapped
/// in [`BUCKET_SCRIPT`] with a bucket.
fn pilot_container(fleet: &Fleet, run: &Run, argv: Vec<String>, results: JobResults<'_>) -> Value {
    let mut c = json!({
        "name": "pilot",
        "image": fleet.kubernetes.pilot_image,
        "command": argv,
        "volumeMounts": [{"name": "results", "mountPath": RESULTS_MOUNT}],
    });
    if let JobResults::Bucket(url) = results {
        let mut command: Vec<String> = ["sh", "-c", BUCKET_SCRIPT, "pilot-run"]
            .map(String::from)
            .to_vec();
        command.extend(argv);
        c["command"] = json!(command);
        let mut env = vec![
            json!({"name": "PILOT_RUN_DIR", "value": run_path(fleet, run)}),
            json!({"name": "PILOT_RESULTS_URL", "value": url.join("runs").join(&run.id).url}),
        ];
        if fleet.sweep.workload.is_some() {
            env.push(json!({"name": "PILOT_WORKLOAD_URL", "value": url.join("workload").url}));
            env.push(json!({"name": "PILOT_WORKLOAD_DIR", "value": workload_dir(fleet)}));
        }
        c["env"] = json!(env);
        // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ENDPOINT): from the
        // Secret, never from the manifest.
        c["envFrom"] = json!([{"secretRef": {"name": fleet.kubernetes.s3_secret}}]);
    }
    c
}

/// The Job's metadata labels.
fn labels(fleet: &Fleet, run: &Run) -> Value {
    json!({
        "app.kubernetes.io/name": "pilot-fleet",
        "app.kubernetes.io/managed-by": "pilot",
        FLEET_LABEL: fleet_label(fleet),
        RUN_LABEL: run.id,
    })
}

/// NVIDIA's GPU operator taints GPU nodes `nvidia.com/gpu:NoSchedule` so that only pods
/// asking for GPUs land there; a pod that asks must tolerate the taint, whichever engine runs.
fn tolerate_gpu_taint(pod_spec: &mut Value, gpu: &pilot_core::gpu::GpuSpec) {
    if gpu.vendor.to_ascii_lowercase().contains("nvidia") {
        pod_spec["tolerations"] =
            json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]);
    }
}

/// The Job of one run, and the objects it needs.
pub fn job(fleet: &Fleet, run: &Run, results: JobResults<'_>) -> Result<JobManifest, FleetError> {
    let k = &fleet.kubernetes;
    let name = job_name(fleet, run);
    let labels = labels(fleet, run);
    let what = || format!("run {}", run.id);
    let mut objects = Vec::new();
    let mut notes = Vec::new();
    let results_volume = match results {
        JobResults::Volume => {
            json!({"name": "results", "persistentVolumeClaim": {"claimName": k.results_pvc}})
        }
        JobResults::Bucket(_) => json!({"name": "results", "emptyDir": {}}),
    };
    let pod = if run.engine.name == EMBEDDED {
        // pilot's own engine runs inside the pilot container: one container.
        let (argv, n) = characterize_argv(fleet, run, None, results);
        notes.extend(n);
        let mut c = pilot_container(fleet, run, argv, results);
        let mut spec = json!({"restartPolicy": "Never", "volumes": [results_volume]});
        if let Some(g) = &run.gpu.spec {
            let (key, value, resource, _) = deploy::gpu_scheduling(g);
            let n = run.gpu.count.to_string();
            c["resources"] = json!({"limits": {resource: n}, "requests": {resource: n}});
            spec["nodeSelector"] = json!({key: value});
            tolerate_gpu_taint(&mut spec, g);
        }
        spec["containers"] = json!([c]);
        json!({"metadata": {"labels": labels}, "spec": spec})
    } else {
        let Some(gpu) = &run.gpu.spec else {
            return Err(FleetError::entry(
                what(),
                format!("{} needs a GPU profile, not '{CPU}'", run.engine.name),
            ));
        };
        let serving =
            Serving::tensor_parallel(run.gpu.count).map_err(|e| FleetError::entry(what(), e))?;
        let profile = Profile {
            gpu: gpu.clone(),
            engine: Some(run.engine.name.clone()),
            quantization: default_dtype(&run.model).into(),
            kv_cache: None,
            serving,
        };
        let (input, output) = fleet.sweep.lengths.unwrap_or(FILE_LENGTHS);
        let mut sc = Scenario::new(
            run.model.clone(),
            gpu.clone(),
            run.gpu.count,
            pilot_core::Load::Users(1),
            Tokens(u64::from(input)),
            Tokens(u64::from(output)),
        );
        sc.engine = profile.engine.clone();
        let cand = candidate(&profile, &sc);
        let plan = Plan::new(
            &cand,
            &run.model,
            gpu,
            Tokens(u64::from(input)),
            Tokens(u64::from(output)),
        )
        .map_err(|e| FleetError::entry(what(), e))?;
        let role = deploy::roles(cand.profile.serving)[0];
        let mut cmd = deploy::worker_command(&plan, &role);
        notes.extend(cmd.notes.iter().cloned());
        cmd.argv.extend(run.engine.args.iter().cloned());
        let config_map = (!cmd.config.is_empty()).then(|| format!("{name}-config"));
        if let Some(cm) = &config_map {
            objects.push(deploy::config_map_of(
                cm,
                &labels,
                &cmd.config_file(),
                deploy::to_yaml(&deploy::nested(&cmd.config)),
            ));
        }
        let mut template = deploy::pod_template(
            &plan,
            &labels,
            &cmd.argv,
            run.gpu.count,
            config_map.as_deref(),
            &k.hf_token_secret,
        );
        let spec = &mut template["spec"];
        let mut engine = spec["containers"][0].take();
        if let Some(image) = &run.engine.image {
            engine["image"] = json!(image);
        }
        // A native sidecar: started first, gated by its startup probe, stopped with the Job.
        engine["restartPolicy"] = json!("Always");
        if let Some(w) = &k.weights_pvc {
            engine["volumeMounts"]
                .as_array_mut()
                .expect("the engine has mounts")
                .push(json!({"name": "weights", "mountPath": WEIGHTS_MOUNT, "readOnly": true}));
            engine["env"]
                .as_array_mut()
                .expect("the engine has env")
                .push(json!({"name": "HF_HOME", "value": WEIGHTS_MOUNT}));
            spec["volumes"]
                .as_array_mut()
                .expect("the pod has volumes")
                .push(json!({"name": "weights", "persistentVolumeClaim": {"claimName": w, "readOnly": true}}));
        }
        let port = plan.launch.port;
        let (argv, n) = characterize_argv(
            fleet,
            run,
            Some(format!("http://localhost:{port}/v1")),
            results,
        );
        notes.extend(n);
        spec["initContainers"] = json!([engine]);
        spec["containers"] = json!([pilot_container(fleet, run, argv, results)]);
        spec["volumes"]
            .as_array_mut()
            .expect("the pod has volumes")
            .push(results_volume);
        spec["restartPolicy"] = json!("Never");
        tolerate_gpu_taint(spec, gpu);
        template
    };
    let mut pod = pod;
    if !run.gpu.node_selector.is_empty() {
        pod["spec"]["nodeSelector"] = json!(run.gpu.node_selector);
    }
    let deadline = k
        .deadline
        .unwrap_or(run.expected * 3 + Duration::from_secs(3600));
    objects.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": k.namespace, "labels": labels},
        "spec": {
            "backoffLimit": k.backoff_limit,
            "activeDeadlineSeconds": deadline.as_secs().max(1),
            "template": pod,
        }
    }));
    Ok(JobManifest {
        run: run.id.clone(),
        name,
        objects,
        notes,
    })
}

/// Every run's Job, or the first run that cannot have one.
pub fn manifests(fleet: &Fleet, results: JobResults<'_>) -> Result<Vec<JobManifest>, FleetError> {
    if fleet.sweep.tune.is_some() {
        return Err(FleetError::entry(
            "tune",
            "tuning restarts the engine with each batch limit, which a Job's engine container cannot do yet; run the tuning with the local backend (characterize --launch --tune), or drop `tune` for Kubernetes",
        ));
    }
    fleet.runs.iter().map(|r| job(fleet, r, results)).collect()
}

/// `fleet run --backend k8s --dry-run --out DIR`: one YAML file per run, `<job>.yaml`.
pub fn write_manifests(
    fleet: &Fleet,
    dir: &Path,
    results: JobResults<'_>,
) -> Result<Vec<PathBuf>, FleetError> {
    let jobs = manifests(fleet, results)?;
    std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for j in jobs {
        let run = fleet
            .runs
            .iter()
            .find(|r| r.id == j.run)
            .expect("a run of the plan");
        let mut text = format!(
            "# written by pilot fleet run --backend k8s --dry-run: fleet {}, run {} ({} on {} under {})\n",
            fleet.name,
            run.id,
            run.model.id,
            run.gpu.label(),
            run.engine.name
        );
        if let Some(g) = &run.gpu.spec {
            let (key, label, _, known) = deploy::gpu_scheduling(g);
            if !known && run.gpu.node_selector.is_empty() {
                let _ = writeln!(
                    text,
                    "# the node selector {key}={label} is a guess: check it with `kubectl get nodes -L {key}`, or give the plan's node_selector"
                );
            }
        }
        for n in &j.notes {
            let _ = writeln!(text, "# NOTE: {n}");
        }
        for o in &j.objects {
            text.push_str("---\n");
            text.push_str(&deploy::to_yaml(o));
        }
        let path = dir.join(format!("{}.yaml", j.name));
        std::fs::write(&path, text).map_err(|source| FleetError::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanFile, expand};

    fn fleet(engines: &str, gpus: &str) -> Fleet {
        let text = format!(
            r#"
name = "Sweep One"
duration = "2m"
warmup = "10s"
slos = ["ttft=500ms"]
[load]
users = [1, 8]
rates = ["2/s"]
[workload]
input_tokens = 1024
output_tokens = 256
[[llms]]
model = "llama-3.1-8b"
{gpus}
{engines}
[kubernetes]
namespace = "bench"
hf_token_secret = "my-token"
weights_pvc = "weights"
"#
        );
        let file: PlanFile = toml::from_str(&text).unwrap();
        expand(file, Path::new(".")).unwrap()
    }

    fn arg_after<'a>(argv: &'a Value, flag: &str) -> Option<&'a str> {
        let a = argv.as_array().unwrap();
        a.iter()
            .position(|v| v == flag)
            .and_then(|i| a.get(i + 1))
            .and_then(Value::as_str)
    }

    #[test]
    fn a_run_is_a_job_with_the_engine_as_a_sidecar_and_pilot_measuring_it() {
        let f = fleet(
            "[[engines]]\nname = \"vllm\"\nimage = \"vllm/vllm-openai:v0.11.0\"\nargs = [\"--enable-prefix-caching\"]",
            "[[gpus]]\ngpu = \"H100\"\ncount = 2",
        );
        let j = job(&f, &f.runs[0], JobResults::Volume).unwrap();
        let job = j.objects.last().unwrap();
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["namespace"], "bench");
        assert!(
            j.name.starts_with("sweep-one-") && j.name.len() <= 63,
            "{}",
            j.name
        );
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let engine = &pod["initContainers"][0];
        assert_eq!(engine["restartPolicy"], "Always");
        assert_eq!(engine["image"], "vllm/vllm-openai:v0.11.0");
        assert_eq!(engine["resources"]["limits"]["nvidia.com/gpu"], "2");
        assert_eq!(
            arg_after(&engine["command"], "--tensor-parallel-size"),
            Some("2")
        );
        assert!(
            engine["command"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--enable-prefix-caching")
        );
        assert_eq!(engine["startupProbe"]["httpGet"]["path"], "/health");
        assert_eq!(
            engine["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "my-token"
        );
        assert!(pod["nodeSelector"]["nvidia.com/gpu.product"].is_string());
        let pilot = &pod["containers"][0];
        assert_eq!(
            arg_after(&pilot["command"], "--endpoint"),
            Some("http://localhost:8000/v1")
        );
        assert_eq!(arg_after(&pilot["command"], "--users"), Some("1,8"));
        assert_eq!(arg_after(&pilot["command"], "--rate"), Some("2/s"));
        assert_eq!(arg_after(&pilot["command"], "--duration"), Some("2m"));
        assert_eq!(arg_after(&pilot["command"], "--gpu-count"), Some("2"));
        assert_eq!(
            arg_after(&pilot["command"], "--out"),
            Some(run_path(&f, &f.runs[0]).as_str())
        );
        assert!(
            pilot["command"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--resume")
        );
        // No secret value anywhere: only the Secret's name.
        let text = deploy::to_yaml(job);
        assert!(!text.contains("hf_"), "{text}");
    }

    #[test]
    fn the_plans_node_selector_replaces_the_derived_one() {
        let f = fleet(
            "[[engines]]\nname = \"sglang\"",
            "[[gpus]]\ngpu = \"L40S\"\nnode_selector = { \"cloud.google.com/gke-accelerator\" = \"nvidia-l40s\" }",
        );
        let j = job(&f, &f.runs[0], JobResults::Volume).unwrap();
        let sel = &j.objects.last().unwrap()["spec"]["template"]["spec"]["nodeSelector"];
        assert_eq!(
            sel,
            &json!({"cloud.google.com/gke-accelerator": "nvidia-l40s"})
        );
    }

    #[test]
    fn an_engine_without_launch_facts_is_named() {
        let f = fleet("[[engines]]\nname = \"tgis\"", "[[gpus]]\ngpu = \"H100\"");
        let e = job(&f, &f.runs[0], JobResults::Volume)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tgis") && e.contains("vllm"), "{e}");
    }

    #[test]
    fn tgi_runs_as_its_launcher_with_shards() {
        let f = fleet(
            "[[engines]]\nname = \"tgi\"",
            "[[gpus]]\ngpu = \"H100\"\ncount = 2",
        );
        let text = serde_json::to_string(&job(&f, &f.runs[0], JobResults::Volume).unwrap().objects)
            .unwrap();
        for want in [
            "text-generation-launcher",
            "--model-id",
            "--num-shard",
            "/health",
        ] {
            assert!(text.contains(want), "{want} missing: {text}");
        }
    }
}

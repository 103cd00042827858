//! Helpers the end-to-end tests share.

use std::path::{Path, PathBuf};

/// Validates every object of the YAML files in `dir` against the Kubernetes OpenAPI schema
/// (kubernetes-validate, strict: unknown fields are errors). A LeaderWorkerSet is a custom
/// resource the schema does not know: its fields are checked here, and its leader and worker
/// pod templates against the core schema as PodTemplates. Returns the kinds seen.
pub fn validate_manifests(dir: &Path) -> Vec<String> {
    let script = r#"
import sys, glob, yaml, kubernetes_validate as kv
kinds = []
def check(doc):
    kv.validate(doc, "1.37.0", strict=True)
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if doc is None:
            continue
        kinds.append(doc["kind"])
        if doc["kind"] == "LeaderWorkerSet":
            assert doc["apiVersion"] == "leaderworkerset.x-k8s.io/v1", doc["apiVersion"]
            spec = doc["spec"]
            assert set(spec) <= {"replicas", "leaderWorkerTemplate", "startupPolicy", "rolloutStrategy", "networkConfig"}, spec.keys()
            lwt = spec["leaderWorkerTemplate"]
            assert set(lwt) <= {"size", "leaderTemplate", "workerTemplate", "restartPolicy", "subGroupPolicy"}, lwt.keys()
            assert isinstance(lwt["size"], int) and lwt["size"] >= 1
            for t in ("leaderTemplate", "workerTemplate"):
                check({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": lwt[t]})
        else:
            check(doc)
print(" ".join(kinds))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .expect("python3 runs (./scripts/setup.sh installs what the tests need)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named"),
        "kubernetes-validate is missing: run ./scripts/setup.sh ({err})"
    );
    assert!(
        out.status.success(),
        "manifests in {dir:?} do not validate: {err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A plan of two tiny LLMs x two closed-loop levels of `seconds` each on the embedded engine.
pub fn local_plan(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "e2e"
duration = "{seconds}s"
warmup = "0s"
[load]
users = [1, 2]
[workload]
input_tokens = 16
output_tokens = 4
[[llms]]
model = "tiny-llama"
[[llms]]
model = "tiny-gpt2"
[[gpus]]
gpu = "cpu"
[[engines]]
name = "pilot"
"#
        ),
    )
    .unwrap();
    path
}

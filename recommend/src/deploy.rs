//! What to run for a chosen recommendation: each worker's launch command (`--emit cmd`) and
//! Kubernetes manifests (`--emit k8s DIR`), written from the engine table's launch facts
//! ([`pilot_core::engine::Launch`]) and the candidate's layout, batch limit and KV dtype.
//!
//! Why the batch limit is on the command line: the prediction assumed the engine runs at most
//! [`Candidate::batch_limit`] requests at once (its KV budget, capped by the engine's default);
//! a server started with a larger limit queues less and pages more, and the prediction no
//! longer describes it.
//!
//! A worker is one engine instance (tensor x pipeline x attention-DP GPUs). A worker wider
//! than the GPU's node (pipeline stages across nodes) becomes a LeaderWorkerSet of one pod per
//! node; a narrower one a Deployment. Every role (the aggregated workers, or the prefill and
//! decode workers and the router in front of them) gets its own Service. Access tokens come
//! from a Secret (`hf-token`, key `token`) and are never written into a manifest.

use crate::search::Candidate;
use pilot_core::engine::{self, Flag, Launch};
use pilot_core::gpu::GpuSpec;
use pilot_core::layout::{Layout, Serving};
use pilot_core::llm::LlmSpec;
use pilot_core::quant::Quantization;
use pilot_core::units::Tokens;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::path::Path;

/// Why a deployment cannot be written; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "row {row} does not exist: the table has {rows} feasible row(s); pass --row 1..={rows}"
    )]
    NoRow { row: usize, rows: usize },
    #[error("nothing meets the SLOs, so there is no row to emit; relax an SLO or widen the search")]
    NothingFeasible,
    #[error("the chosen row names no engine; pass --engine vllm, sglang or tensorrt-llm")]
    NoEngine,
    #[error(
        "pilot has no launch facts for {engine}; --emit writes commands for {known}. Choose one with --engine"
    )]
    NoLaunch { engine: String, known: String },
    #[error(
        "{engine} across {nodes} nodes is started by MPI or Slurm, which pilot does not write; \
         choose a worker within one node (--max-gpus {node}) or another engine"
    )]
    MultiNode {
        engine: String,
        nodes: u32,
        node: u32,
    },
    #[error("--emit '{0}': use cmd, or k8s DIR")]
    Kind(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which workers a replica has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Role {
    /// `worker` (aggregated), `prefill` or `decode`.
    pub name: &'static str,
    /// Workers of this role per replica.
    pub workers: u32,
    pub layout: Layout,
}

/// The roles of one replica.
pub fn roles(s: Serving) -> Vec<Role> {
    match s {
        Serving::Aggregated(layout) => vec![Role {
            name: "worker",
            workers: 1,
            layout,
        }],
        Serving::Disaggregated { prefill, decode } => vec![
            Role {
                name: "prefill",
                workers: prefill.count(),
                layout: prefill.layout(),
            },
            Role {
                name: "decode",
                workers: decode.count(),
                layout: decode.layout(),
            },
        ],
    }
}

/// Everything a deployment is written from.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub candidate: &'a Candidate,
    pub model: &'a LlmSpec,
    pub gpu: &'a GpuSpec,
    pub engine: &'static str,
    pub launch: &'static Launch,
    /// The longest request the server accepts ([`max_model_len`]).
    pub max_model_len: u64,
}

impl<'a> Plan<'a> {
    /// The plan of a feasible candidate, or why none can be written.
    pub fn new(
        candidate: &'a Candidate,
        model: &'a LlmSpec,
        gpu: &'a GpuSpec,
        input: Tokens,
        output: Tokens,
    ) -> Result<Plan<'a>, DeployError> {
        let name = candidate
            .profile
            .engine
            .as_deref()
            .ok_or(DeployError::NoEngine)?;
        let traits = engine::traits(name).ok_or(DeployError::NoEngine)?;
        let launch = traits
            .launch
            .as_ref()
            .ok_or_else(|| DeployError::NoLaunch {
                engine: traits.name.to_string(),
                known: engine::TABLE
                    .iter()
                    .filter(|t| t.launch.is_some())
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let plan = Plan {
            candidate,
            model,
            gpu,
            engine: traits.name,
            launch,
            max_model_len: max_model_len(model, input, output),
        };
        let nodes = roles(candidate.profile.serving)
            .iter()
            .map(|r| plan.nodes(r.layout))
            .max()
            .unwrap_or(1);
        if plan.launch.program.starts_with("trtllm") && nodes > 1 {
            return Err(DeployError::MultiNode {
                engine: traits.name.into(),
                nodes,
                node: plan.node(),
            });
        }
        Ok(plan)
    }

    /// GPUs per node of the GPU type (8 where the catalog does not say).
    fn node(&self) -> u32 {
        self.gpu.gpus_per_node.unwrap_or(8).max(1)
    }

    /// Nodes one worker of this layout spans.
    fn nodes(&self, l: Layout) -> u32 {
        l.gpus().div_ceil(self.node())
    }
}

/// The longest request (prompt plus output) the server is told to accept: the smallest power
/// of two at least twice the mean request, within the model's context. Why twice: the
/// prediction is for the mean lengths, and requests longer than the limit are refused by the
/// engine, so the limit leaves room for the spread around the mean without reserving the
/// model's whole context (which some engines check fits the KV cache at start-up).
pub fn max_model_len(model: &LlmSpec, input: Tokens, output: Tokens) -> u64 {
    let want = (2 * (input.0 + output.0)).next_power_of_two();
    model.max_positions.map_or(want, |m| want.min(m))
}

/// One worker's command line, and the keys of the engine's YAML file where it reads some
/// settings from one (TensorRT-LLM's `--config`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCommand {
    pub role: &'static str,
    pub argv: Vec<String>,
    /// (dotted key, value) of the YAML file given with [`WorkerCommand::config_flag`].
    pub config: Vec<(String, Value)>,
    pub config_flag: Option<&'static str>,
    /// What a person must know to start it (a checkpoint to prepare).
    pub notes: Vec<String>,
}

impl WorkerCommand {
    /// The YAML file's name for this role.
    pub fn config_file(&self) -> String {
        format!("{}-config.yaml", self.role)
    }
}

/// Sets a launch option: a flag on the command line, or a key of the YAML file.
fn set(cmd: &mut WorkerCommand, flag: Option<Flag>, value: Value) {
    let text = match &value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    match flag {
        Some(Flag::Value(f)) => cmd.argv.extend([f.to_string(), text]),
        Some(Flag::Switch(f)) => cmd.argv.push(f.to_string()),
        Some(Flag::SwitchAndValue(s, f)) => cmd.argv.extend([s.to_string(), f.to_string(), text]),
        Some(Flag::ConfigKey { file_flag, key }) => {
            cmd.config_flag = Some(file_flag);
            cmd.config.push((key.to_string(), value));
        }
        None => {}
    }
}

/// The command of one worker of `role`.
pub fn worker_command(plan: &Plan, role: &Role) -> WorkerCommand {
    let l = plan.launch;
    let c = plan.candidate;
    let layout = role.layout;
    let mut cmd = WorkerCommand {
        role: role.name,
        argv: l.program.split(' ').map(String::from).collect(),
        config: Vec::new(),
        config_flag: None,
        notes: Vec::new(),
    };
    match l.model_flag {
        Some(f) => cmd.argv.extend([f.to_string(), plan.model.id.clone()]),
        None => cmd.argv.push(plan.model.id.clone()),
    }
    cmd.argv.extend(["--port".to_string(), l.port.to_string()]);
    // TensorRT-LLM spells its port flag the same; SGLang and vLLM too (`--port`).
    let tensor = if l.tensor_flag_counts_attention_dp {
        layout.tensor() * layout.attention_dp()
    } else {
        layout.tensor()
    };
    if tensor > 1 {
        set(&mut cmd, l.tensor_parallel, json!(tensor));
    }
    if layout.pipeline() > 1 {
        set(&mut cmd, l.pipeline_parallel, json!(layout.pipeline()));
    }
    if layout.attention_dp() > 1 {
        let v = match l.attention_dp {
            Some(Flag::ConfigKey { .. }) => json!(true),
            _ => json!(layout.attention_dp()),
        };
        set(&mut cmd, l.attention_dp, v);
    }
    if layout.expert() > 1 {
        set(&mut cmd, l.expert_parallel, json!(layout.expert()));
    }
    // The batch limit is the decode side's: a prefill worker's batches are its prompts.
    if let (Some(b), false) = (c.batch_limit, role.name == "prefill") {
        set(&mut cmd, l.max_sequences, json!(b));
    }
    set(&mut cmd, l.max_model_len, json!(plan.max_model_len));
    if c.profile.kv_cache.is_some() {
        set(&mut cmd, l.kv_cache_dtype, json!(c.kv_cache.name()));
    }
    // A format other than the checkpoint's: fp8 is quantized while loading where the engine
    // can; anything else needs a checkpoint in that format.
    let checkpoint = plan.model.checkpoint.as_ref().map(|k| k.weights);
    let native = checkpoint.unwrap_or_else(|| Quantization::from(plan.model.dtype));
    let is_16_bit = |q: Quantization| matches!(q, Quantization::Bf16 | Quantization::Fp16);
    if c.profile.quantization != native && !(is_16_bit(c.profile.quantization) && is_16_bit(native))
    {
        match (c.profile.quantization, l.quantize_on_load) {
            (Quantization::Fp8, Some(f)) if checkpoint.is_none_or(is_16_bit) => {
                cmd.argv.extend([f.to_string(), "fp8".to_string()])
            }
            (q, _) => cmd.notes.push(format!(
                "{} serves {q} weights from a checkpoint already in {q}: point it at one \
                 (e.g. quantized with NVIDIA ModelOpt) instead of {}",
                plan.engine, plan.model.id
            )),
        }
    }
    if role.name != "worker"
        && let Some(d) = l.disaggregation
    {
        let args = if role.name == "prefill" {
            d.prefill_args
        } else {
            d.decode_args
        };
        cmd.argv.extend(args.iter().map(|a| a.to_string()));
        for (key, value) in d.config {
            cmd.config_flag = Some("--config");
            cmd.config.push((key.to_string(), json!(value)));
        }
    }
    if let Some(f) = cmd.config_flag {
        cmd.argv.extend([f.to_string(), cmd.config_file()]);
    }
    cmd
}

/// Quotes an argument for a POSIX shell where it needs it.
fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Nested YAML of dotted keys (`kv_cache_config.dtype: fp8` as a mapping in a mapping).
pub fn nested(config: &[(String, Value)]) -> Value {
    let mut root = Map::new();
    for (key, value) in config {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut node = &mut root;
        for p in parts {
            node = node
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("dotted keys nest mappings");
        }
        node.insert(last.to_string(), value.clone());
    }
    Value::Object(root)
}

/// YAML text of a JSON value: block mappings and sequences, scalars quoted as JSON strings
/// (valid YAML), so that no value is read back as another type.
pub fn to_yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => serde_json::to_string(s).expect("a string serializes"),
            other => other.to_string(),
        }
    }
    fn write(out: &mut String, v: &Value, indent: usize) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) if m.is_empty() => out.push_str(" {}\n"),
            Value::Array(a) if a.is_empty() => out.push_str(" []\n"),
            Value::Object(m) => {
                out.push('\n');
                for (k, x) in m {
                    let _ = write!(out, "{pad}{}:", scalar(&Value::String(k.clone())));
                    write(out, x, indent + 2);
                }
            }
            Value::Array(a) => {
                out.push('\n');
                for x in a {
                    let _ = write!(out, "{pad}-");
                    match x {
                        Value::Object(m) if !m.is_empty() => {
                            // The first key on the dash's line, the rest aligned under it.
                            let mut inner = String::new();
                            write(&mut inner, x, indent + 2);
                            out.push(' ');
                            out.push_str(inner.trim_start());
                        }
                        _ => write(out, x, indent + 2),
                    }
                }
            }
            s => {
                let _ = writeln!(out, " {}", scalar(s));
            }
        }
    }
    let mut out = String::new();
    write(&mut out, v, 0);
    out.trim_start().to_string()
}

/// `--emit cmd`: the commands that start one replica, role by role, as a shell script.
pub fn emit_cmd(plan: &Plan, row: usize) -> String {
    let c = plan.candidate;
    let mut text = format!(
        "# pilot: row {row}: {} x {} {} {} under {}, {} replica(s); each replica:\n",
        c.profile.serving.gpus(),
        c.profile.gpu.name,
        c.profile.serving,
        c.profile.quantization,
        plan.engine,
        c.replicas.unwrap_or(1)
    );
    text.push_str("# (the Hugging Face token, where the model needs one, comes from HF_TOKEN in the environment)\n");
    for role in roles(c.profile.serving) {
        let cmd = worker_command(plan, &role);
        let _ = writeln!(
            text,
            "\n# {} {} ({} GPU(s) each{})",
            role.workers,
            match (role.name, role.workers) {
                ("worker", 1) => "worker".to_string(),
                ("worker", _) => "workers".to_string(),
                (r, 1) => format!("{r} worker"),
                (r, _) => format!("{r} workers"),
            },
            role.layout.gpus(),
            if plan.nodes(role.layout) > 1 {
                format!(", across {} nodes", plan.nodes(role.layout))
            } else {
                String::new()
            }
        );
        for n in &cmd.notes {
            let _ = writeln!(text, "# NOTE: {n}");
        }
        if !cmd.config.is_empty() {
            let _ = write!(
                text,
                "cat > {} <<'EOF'\n{}EOF\n",
                cmd.config_file(),
                to_yaml(&nested(&cmd.config))
            );
        }
        text.push_str(
            &cmd.argv
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        text.push('\n');
    }
    if c.profile.serving.is_disaggregated() {
        text.push('\n');
        text.push_str(&router_text(plan));
    }
    text
}

/// How requests reach a disaggregated replica.
fn router_text(plan: &Plan) -> String {
    let port = plan.launch.port;
    match plan.launch.disaggregation.and_then(|d| d.router) {
        Some(r) => format!(
            "# the front that sends each request to a prefill and a decode worker:\n{}\n",
            r.replace("{prefill}", &format!("http://PREFILL_HOST:{port}"))
                .replace("{decode}", &format!("http://DECODE_HOST:{port}"))
        ),
        None => format!(
            "# {} ships no router for disaggregated serving: put a prefill/decode-aware router \
             (NVIDIA Dynamo, llm-d) in front of the workers above\n",
            plan.engine
        ),
    }
}

/// A name Kubernetes accepts (RFC 1123 label): lower case, digits and dashes.
pub fn dns_label(text: &str) -> String {
    let mut s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    s[..s.len().min(40)].trim_end_matches('-').to_string()
}

/// The node label that names a GPU model, and its value for this GPU; the GPU resource name.
/// NVIDIA's GPU Feature Discovery labels nodes `nvidia.com/gpu.product` with the device name,
/// spaces as dashes (`NVIDIA-H100-80GB-HBM3`); AMD's node labeller `amd.com/gpu.product-name`.
pub fn gpu_scheduling(gpu: &GpuSpec) -> (&'static str, String, &'static str, bool) {
    let known = [
        ("H100-SXM-80GB", "NVIDIA-H100-80GB-HBM3"),
        ("H100-PCIe-80GB", "NVIDIA-H100-PCIe"),
        ("H100-NVL-94GB", "NVIDIA-H100-NVL"),
        ("H200-SXM-141GB", "NVIDIA-H200"),
        ("GH200-96GB", "NVIDIA-GH200-480GB"),
        ("A100-SXM-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("A100-SXM-40GB", "NVIDIA-A100-SXM4-40GB"),
        ("A100-PCIe-80GB", "NVIDIA-A100-80GB-PCIe"),
        ("A100-PCIe-40GB", "NVIDIA-A100-PCIE-40GB"),
        ("L40S", "NVIDIA-L40S"),
        ("L40", "NVIDIA-L40"),
        ("L4", "NVIDIA-L4"),
        ("A10G", "NVIDIA-A10G"),
        ("A10", "NVIDIA-A10"),
        ("T4", "Tesla-T4"),
    ];
    let vendor = gpu.vendor.to_ascii_lowercase();
    if vendor.contains("amd") {
        return (
            "amd.com/gpu.product-name",
            format!(
                "AMD_Instinct_{}",
                gpu.name.split('-').next().unwrap_or(&gpu.name)
            ),
            "amd.com/gpu",
            false,
        );
    }
    if vendor.contains("intel") {
        return (
            "habana.ai/gaudi",
            gpu.name.clone(),
            "habana.ai/gaudi",
            false,
        );
    }
    match known.iter().find(|(n, _)| *n == gpu.name) {
        Some((_, label)) => (
            "nvidia.com/gpu.product",
            label.to_string(),
            "nvidia.com/gpu",
            true,
        ),
        None => (
            "nvidia.com/gpu.product",
            format!("NVIDIA-{}", gpu.name.split('-').next().unwrap_or(&gpu.name)),
            "nvidia.com/gpu",
            false,
        ),
    }
}

/// The Secret (key `token`) `--emit k8s` reads the Hub token from.
pub const HF_TOKEN_SECRET: &str = "hf-token";

/// The pod template of one worker's pod (or its leader's), running `argv`: the engine
/// container with its GPU requests, node selector, probes on the health route and the Hub
/// token from the Secret `hf_secret` (key `token`). `pilot fleet` adds its benchmark
/// container beside it.
pub fn pod_template(
    plan: &Plan,
    labels: &Value,
    argv: &[String],
    gpus: u32,
    config_map: Option<&str>,
    hf_secret: &str,
) -> Value {
    let (label_key, label_value, resource, _) = gpu_scheduling(plan.gpu);
    let launch = plan.launch;
    let mut container = json!({
        "name": "engine",
        "image": launch.image,
        "command": argv,
        "ports": [{"name": "http", "containerPort": launch.port}],
        "env": [{
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": "token", "optional": true}}
        }],
        "resources": {"limits": {resource: gpus.to_string()}, "requests": {resource: gpus.to_string()}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    });
    if let Some(h) = launch.health {
        container["readinessProbe"] = json!({
            "httpGet": {"path": h, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        });
        // Loading weights takes minutes: the startup probe waits up to an hour before the
        // readiness probe judges the pod.
        container["startupProbe"] = json!({
            "httpGet": {"path": h, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 360,
        });
    }
    let mut volumes = vec![json!({"name": "dshm", "emptyDir": {"medium": "Memory"}})];
    if let Some(cm) = config_map {
        container["volumeMounts"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"name": "engine-config", "mountPath": "/config"}));
        container["workingDir"] = json!("/config");
        volumes.push(json!({"name": "engine-config", "configMap": {"name": cm}}));
    }
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "nodeSelector": {label_key: label_value},
            "containers": [container],
            "volumes": volumes,
        }
    })
}

/// A Service on the pods `selector` picks, at the engine's port.
fn service(name: &str, labels: &Value, selector: &Value, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        }
    })
}

/// A Deployment of `replicas` pods of `template`, selected by `labels`.
fn deployment(name: &str, labels: &Value, replicas: u32, template: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template,
        }
    })
}

/// A ConfigMap holding one file.
pub fn config_map_of(name: &str, labels: &Value, file: &str, text: String) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {file: text},
    })
}

/// One manifest file: a name and the objects in it.
pub type Manifest = (String, Vec<Value>);

/// `--emit k8s DIR`: the manifests of the whole deployment (every replica).
pub fn k8s_manifests(plan: &Plan) -> Vec<Manifest> {
    let c = plan.candidate;
    let replicas = c.replicas.unwrap_or(1);
    let app = format!("pilot-{}", dns_label(&plan.model.id));
    let mut out = Vec::new();
    let mut router_targets = Vec::new();
    for role in roles(c.profile.serving) {
        let cmd = worker_command(plan, &role);
        let name = dns_label(&format!("{app}-{}", role.name));
        let labels = json!({
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/component": role.name,
            "app.kubernetes.io/managed-by": "pilot",
        });
        let mut objects = Vec::new();
        let config_map = (!cmd.config.is_empty()).then(|| format!("{name}-config"));
        if let Some(cm) = &config_map {
            objects.push(config_map_of(
                cm,
                &labels,
                &cmd.config_file(),
                to_yaml(&nested(&cmd.config)),
            ));
        }
        let nodes = plan.nodes(role.layout);
        let count = replicas * role.workers;
        if nodes <= 1 {
            let template = pod_template(
                plan,
                &labels,
                &cmd.argv,
                role.layout.gpus(),
                config_map.as_deref(),
                HF_TOKEN_SECRET,
            );
            objects.push(deployment(&name, &labels, count, template));
        } else {
            let (leader, worker) = multi_node_commands(plan, &cmd.argv, nodes);
            let per_pod = plan.node();
            objects.push(json!({
                "apiVersion": "leaderworkerset.x-k8s.io/v1",
                "kind": "LeaderWorkerSet",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": count,
                    "leaderWorkerTemplate": {
                        "size": nodes,
                        "leaderTemplate": pod_template(plan, &labels, &leader, per_pod, config_map.as_deref(), HF_TOKEN_SECRET),
                        "workerTemplate": pod_template(plan, &labels, &worker, per_pod, config_map.as_deref(), HF_TOKEN_SECRET),
                    }
                }
            }));
        }
        let mut selector = labels.clone();
        if nodes > 1 {
            // Only the leader serves HTTP.
            selector["leaderworkerset.sigs.k8s.io/worker-index"] = json!("0");
        }
        objects.push(service(&name, &labels, &selector, plan.launch.port));
        router_targets.push((role.name, format!("http://{name}:{}", plan.launch.port)));
        out.push((format!("{name}.yaml"), objects));
    }
    if c.profile.serving.is_disaggregated()
        && let Some(router) = plan.launch.disaggregation.and_then(|d| d.router)
    {
        out.push(router_manifest(plan, &app, router, &router_targets));
    }
    out
}

/// The leader's and the other pods' commands of a worker spanning `nodes` nodes: vLLM joins
/// them in a Ray cluster; SGLang passes node rank and the leader's address.
fn multi_node_commands(plan: &Plan, argv: &[String], nodes: u32) -> (Vec<String>, Vec<String>) {
    let line = argv
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    if plan.launch.program.starts_with("vllm") {
        (
            vec![
                "bash".into(),
                "-c".into(),
                format!(
                    "ray start --head --port=6379 && {line} --distributed-executor-backend ray"
                ),
            ],
            vec![
                "bash".into(),
                "-c".into(),
                "ray start --address=$(LWS_LEADER_ADDRESS):6379 --block".into(),
            ],
        )
    } else {
        let with_rank = format!(
            "{line} --nnodes {nodes} --node-rank $(LWS_WORKER_INDEX) --dist-init-addr $(LWS_LEADER_ADDRESS):20000"
        );
        (
            vec!["bash".into(), "-c".into(), with_rank.clone()],
            vec!["bash".into(), "-c".into(), with_rank],
        )
    }
}

/// The router in front of disaggregated workers, with its Service.
fn router_manifest(plan: &Plan, app: &str, router: &str, targets: &[(&str, String)]) -> Manifest {
    let url = |role: &str| {
        targets
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(String::new(), |(_, u)| u.clone())
    };
    let name = dns_label(&format!("{app}-router"));
    let labels = json!({
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": "router",
        "app.kubernetes.io/managed-by": "pilot",
    });
    let line = router
        .replace("{prefill}", &url("prefill"))
        .replace("{decode}", &url("decode"));
    let mut objects = Vec::new();
    let mut container = json!({
        "name": "router",
        "image": plan.launch.image,
        "command": ["bash", "-c", line],
        "ports": [{"name": "http", "containerPort": plan.launch.port}],
    });
    let mut volumes = Vec::new();
    if line.contains("disagg.yaml") {
        // TensorRT-LLM's front reads the workers' URLs from a file.
        let file = json!({
            "hostname": "0.0.0.0",
            "port": plan.launch.port,
            "context_servers": {"num_instances": 1, "urls": [url("prefill").trim_start_matches("http://")]},
            "generation_servers": {"num_instances": 1, "urls": [url("decode").trim_start_matches("http://")]},
        });
        objects.push(config_map_of(
            &format!("{name}-config"),
            &labels,
            "disagg.yaml",
            to_yaml(&file),
        ));
        container["workingDir"] = json!("/config");
        container["volumeMounts"] = json!([{"name": "router-config", "mountPath": "/config"}]);
        volumes.push(
            json!({"name": "router-config", "configMap": {"name": format!("{name}-config")}}),
        );
    }
    let template = json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [container], "volumes": volumes},
    });
    objects.push(deployment(&name, &labels, 1, template));
    objects.push(service(&name, &labels, &labels, plan.launch.port));
    (format!("{name}.yaml"), objects)
}

/// Writes the manifests into `dir` (created if missing), one file per role, and returns the
/// paths written.
pub fn write_k8s(plan: &Plan, dir: &Path) -> Result<Vec<String>, DeployError> {
    let io = |path: &Path, source| DeployError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let (_, label, _, known) = gpu_scheduling(plan.gpu);
    let mut written = Vec::new();
    for (file, objects) in k8s_manifests(plan) {
        let mut text = format!(
            "# written by pilot recommend --emit k8s: {} on {} x {}\n",
            plan.model.id,
            plan.candidate.profile.serving.gpus(),
            plan.candidate.profile.gpu.name
        );
        if !known {
            let _ = writeln!(
                text,
                "# the node selector's GPU label '{label}' is a guess: check it with \
                 `kubectl get nodes -L nvidia.com/gpu.product -L amd.com/gpu.product-name`"
            );
        }
        for o in &objects {
            text.push_str("---\n");
            text.push_str(&to_yaml(o));
        }
        let path = dir.join(&file);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::candidate;
    use crate::space::{Profile, ServingModes, SpaceOptions};
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::layout::Workers;
    use pilot_core::llm::ModelCatalog;
    use pilot_core::units::Dtype;
    use pilot_predict::Load;

    struct Case {
        model: LlmSpec,
        gpu: GpuSpec,
    }

    fn case(model: &str, gpu: &str) -> Case {
        Case {
            model: ModelCatalog::builtin().resolve(model).unwrap(),
            gpu: GpuCatalog::builtin().resolve(gpu).unwrap().clone(),
        }
    }

    fn cand(
        k: &Case,
        engine: &str,
        serving: Serving,
        q: Quantization,
        kv: Option<Dtype>,
    ) -> Candidate {
        let p = Profile {
            gpu: k.gpu.clone(),
            engine: Some(engine.into()),
            quantization: q,
            kv_cache: kv,
            serving,
        };
        let gpus = [k.gpu.clone()];
        let opts = SpaceOptions {
            model: &k.model,
            gpus: &gpus,
            max_gpus: 16,
            quantizations: &[],
            kv_caches: &[],
            engines: &[],
            serving: ServingModes::Both,
            input_tokens: Tokens(1024),
            output_tokens: Tokens(256),
            demand: Load::Users(1),
        };
        let s = p.scenario(&opts, Load::Users(1));
        let mut c = candidate(&p, &s);
        c.batch_limit = Some(96);
        c.replicas = Some(3);
        c
    }

    fn agg(t: u32, p: u32, e: u32, a: u32) -> Serving {
        Serving::Aggregated(Layout::new(t, p, e, a).unwrap())
    }

    fn plan<'a>(k: &'a Case, c: &'a Candidate) -> Plan<'a> {
        Plan::new(c, &k.model, &k.gpu, Tokens(1024), Tokens(256)).unwrap()
    }

    fn has(argv: &[String], seq: &[&str]) -> bool {
        argv.windows(seq.len())
            .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
    }

    /// vLLM's command carries the layout, the batch limit the prediction assumed, the
    /// request limit and a chosen KV dtype, each as vLLM spells it.
    #[test]
    fn vllm_command_has_the_layout_and_limits() {
        let k = case("llama-3.1-70b", "H100");
        let c = cand(
            &k,
            "vllm",
            agg(4, 1, 1, 1),
            Quantization::Bf16,
            Some(Dtype::Fp8),
        );
        let p = plan(&k, &c);
        let cmd = worker_command(&p, &roles(c.profile.serving)[0]);
        assert!(
            has(&cmd.argv, &["vllm", "serve", &k.model.id]),
            "{:?}",
            cmd.argv
        );
        assert!(
            has(&cmd.argv, &["--tensor-parallel-size", "4"]),
            "{:?}",
            cmd.argv
        );
        assert!(has(&cmd.argv, &["--max-num-seqs", "96"]), "{:?}", cmd.argv);
        assert!(
            has(&cmd.argv, &["--max-model-len", "4096"]),
            "{:?}",
            cmd.argv
        );
        assert!(
            has(&cmd.argv, &["--kv-cache-dtype", "fp8"]),
            "{:?}",
            cmd.argv
        );
        assert!(
            !cmd.argv.iter().any(|a| a.contains("pipeline")),
            "{:?}",
            cmd.argv
        );
        // The engine's default KV dtype is not spelled out.
        let c = cand(&k, "vllm", agg(4, 1, 1, 1), Quantization::Bf16, None);
        let cmd = worker_command(&plan(&k, &c), &roles(c.profile.serving)[0]);
        assert!(
            !cmd.argv.iter().any(|a| a == "--kv-cache-dtype"),
            "{:?}",
            cmd.argv
        );
    }

    /// Attention data parallelism is spelled per engine: SGLang and TensorRT-LLM count every
    /// GPU in the tensor-parallel size, vLLM counts one rank's; TensorRT-LLM takes it in its
    /// YAML file.
    #[test]
    fn attention_dp_follows_each_engines_convention() {
        let k = case("deepseek-ai/DeepSeek-V3", "H200");
        let l = agg(1, 1, 8, 8);
        let c = cand(&k, "sglang", l, Quantization::Fp8Block, None);
        let cmd = worker_command(&plan(&k, &c), &roles(l)[0]);
        assert!(has(&cmd.argv, &["--tp-size", "8"]), "{:?}", cmd.argv);
        assert!(
            has(&cmd.argv, &["--enable-dp-attention", "--dp-size", "8"]),
            "{:?}",
            cmd.argv
        );
        assert!(has(&cmd.argv, &["--ep-size", "8"]), "{:?}", cmd.argv);
        let c = cand(&k, "vllm", l, Quantization::Fp8Block, None);
        let cmd = worker_command(&plan(&k, &c), &roles(l)[0]);
        assert!(
            has(&cmd.argv, &["--data-parallel-size", "8"]),
            "{:?}",
            cmd.argv
        );
        assert!(cmd.argv.iter().any(|a| a == "--enable-expert-parallel"));
        assert!(!cmd.argv.iter().any(|a| a == "--tensor-parallel-size"));
        let c = cand(
            &k,
            "tensorrt-llm",
            l,
            Quantization::Fp8Block,
            Some(Dtype::Fp8),
        );
        let cmd = worker_command(&plan(&k, &c), &roles(l)[0]);
        assert!(has(&cmd.argv, &["--tp_size", "8"]), "{:?}", cmd.argv);
        assert!(
            has(&cmd.argv, &["--config", "worker-config.yaml"]),
            "{:?}",
            cmd.argv
        );
        let yaml = to_yaml(&nested(&cmd.config));
        assert!(yaml.contains("\"enable_attention_dp\": true"), "{yaml}");
        assert!(
            yaml.contains("\"kv_cache_config\":\n  \"dtype\": \"fp8\""),
            "{yaml}"
        );
    }

    /// Disaggregated replicas get a command per role with the engine's role arguments, a
    /// router where the engine ships one, and manifests per role plus the router's.
    #[test]
    fn disaggregated_roles_and_router() {
        let k = case("llama-3.1-8b", "H100");
        let l = Layout::new(1, 1, 1, 1).unwrap();
        let s = Serving::Disaggregated {
            prefill: Workers::new(1, l).unwrap(),
            decode: Workers::new(2, l).unwrap(),
        };
        let c = cand(&k, "sglang", s, Quantization::Bf16, None);
        let p = plan(&k, &c);
        // The batch limit is the decode workers': prefill workers batch prompts.
        let pre = worker_command(&p, &roles(s)[0]);
        assert!(
            !pre.argv.iter().any(|a| a == "--max-running-requests"),
            "{:?}",
            pre.argv
        );
        let dec = worker_command(&p, &roles(s)[1]);
        assert!(
            has(&dec.argv, &["--max-running-requests", "96"]),
            "{:?}",
            dec.argv
        );
        let text = emit_cmd(&p, 1);
        assert!(text.contains("--disaggregation-mode prefill"), "{text}");
        assert!(text.contains("--disaggregation-mode decode"), "{text}");
        assert!(
            text.contains("sglang_router.launch_router --pd-disaggregation"),
            "{text}"
        );
        let m = k8s_manifests(&p);
        let kinds: Vec<(String, u64)> = m
            .iter()
            .flat_map(|(_, objs)| objs.iter())
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o["spec"]["replicas"].as_u64().unwrap(),
                )
            })
            .collect();
        // 3 replicas x (1 prefill + 2 decode workers), one router.
        assert!(
            kinds.iter().any(|(n, r)| n.ends_with("prefill") && *r == 3),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|(n, r)| n.ends_with("decode") && *r == 6),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|(n, r)| n.ends_with("router") && *r == 1),
            "{kinds:?}"
        );
        // vLLM has no router of its own: the script says so rather than inventing one.
        let c = cand(&k, "vllm", s, Quantization::Bf16, None);
        let text = emit_cmd(&plan(&k, &c), 1);
        assert!(
            text.contains("NixlConnector") && text.contains("ships no router"),
            "{text}"
        );
    }

    /// A worker wider than a node is a LeaderWorkerSet of one pod per node, each requesting
    /// a node's GPUs, on the GPU's product label; TensorRT-LLM across nodes is refused.
    #[test]
    fn a_worker_across_nodes_is_a_leader_worker_set() {
        let k = case("deepseek-ai/DeepSeek-V3", "H100");
        let l = agg(8, 2, 1, 1);
        let c = cand(&k, "vllm", l, Quantization::Fp8Block, None);
        let m = k8s_manifests(&plan(&k, &c));
        let lws = m
            .iter()
            .flat_map(|(_, o)| o.iter())
            .find(|o| o["kind"] == "LeaderWorkerSet")
            .expect("an LWS");
        assert_eq!(lws["spec"]["leaderWorkerTemplate"]["size"], 2);
        let pod = &lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"];
        assert_eq!(
            pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            "8"
        );
        assert_eq!(
            pod["nodeSelector"]["nvidia.com/gpu.product"],
            "NVIDIA-H100-80GB-HBM3"
        );
        let c = cand(&k, "tensorrt-llm", l, Quantization::Fp8Block, None);
        let e = Plan::new(&c, &k.model, &k.gpu, Tokens(1024), Tokens(256)).unwrap_err();
        assert!(e.to_string().contains("--max-gpus 8"), "{e}");
    }

    /// A format other than the checkpoint's is quantized on load where the engine can (fp8
    /// from 16-bit), and otherwise the command says which checkpoint it needs.
    #[test]
    fn other_formats_are_quantized_on_load_or_named() {
        let k = case("llama-3.1-8b", "B200");
        let c = cand(&k, "vllm", agg(1, 1, 1, 1), Quantization::Fp8, None);
        let cmd = worker_command(&plan(&k, &c), &roles(c.profile.serving)[0]);
        assert!(has(&cmd.argv, &["--quantization", "fp8"]), "{:?}", cmd.argv);
        let c = cand(
            &k,
            "tensorrt-llm",
            agg(1, 1, 1, 1),
            Quantization::Nvfp4,
            None,
        );
        let cmd = worker_command(&plan(&k, &c), &roles(c.profile.serving)[0]);
        assert!(
            cmd.notes.iter().any(|n| n.contains("nvfp4")),
            "{:?}",
            cmd.notes
        );
    }

    #[test]
    fn yaml_quotes_every_string_and_nests() {
        let v = json!({"a": {"b": "on", "c": [1, {"d": "x y", "e": true}]}, "f": []});
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "\"a\":\n  \"b\": \"on\"\n  \"c\":\n    - 1\n    - \"d\": \"x y\"\n      \"e\": true\n\"f\": []\n"
        );
    }
}

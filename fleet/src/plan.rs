//! The plan file of a characterization campaign (TOML, see `examples/fleet.toml`) and its
//! expansion into runs: one run per (LLM, GPU profile, engine), each sweeping the same load
//! levels.
//!
//! Why everything is checked here, before any backend starts: a campaign runs for days on a
//! shared cluster, and a typo in the tenth model, an engine that cannot start on a GPU type,
//! or a model that cannot fit its GPUs must not surface as a failed Job on day three. Names
//! are resolved through the catalogs' own lookups (which name the closest valid entries), the
//! memory fit through the physics model `pilot predict` and `pilot recommend` use.

use crate::error::FleetError;
use pilot_characterize::options::parse_tune_range;
use pilot_core::engine;
use pilot_core::gpu::{GpuCatalog, GpuSpec};
use pilot_core::llm::{LlmSpec, ModelCatalog};
use pilot_core::load::Load;
use pilot_core::price::PriceCatalog;
use pilot_core::slo::parse_slo;
use pilot_core::units::{Tokens, UsdPerHour};
use pilot_core::validate;
use pilot_predict::PhysicsModel;
use pilot_predict::scenario::{Fit, Scenario};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The GPU profile name that means "this machine, no GPU": the embedded engine on CPU.
pub const CPU: &str = "cpu";

/// The engine name of pilot's embedded engine.
pub const EMBEDDED: &str = "pilot";

/// How long an engine takes to start before its first level, in the cost estimate: loading
/// weights onto GPUs and compiling graphs takes minutes; the embedded engine on CPU seconds.
const GPU_STARTUP: Duration = Duration::from_secs(10 * 60);
const CPU_STARTUP: Duration = Duration::from_secs(5);

/// Request lengths assumed when the workload is a file: for the memory fit at plan time and
/// for the request length a Kubernetes Job's engine is started with, so that what the plan
/// says fits is what is deployed.
pub const FILE_LENGTHS: (u32, u32) = (4096, 1024);

/// The plan file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The campaign's name: Job names, labels and the results directory derive from it.
    pub name: String,
    /// Measurement window of each level (`120s`, `2m`).
    pub duration: String,
    /// Warm-up before each level's window (default `10s`).
    #[serde(default)]
    pub warmup: Option<String>,
    pub load: LoadEntry,
    pub workload: WorkloadEntry,
    /// Objectives for goodput (`ttft=200ms`).
    #[serde(default)]
    pub slos: Vec<String>,
    /// `max_batch=LO..HI`: tune the engine's batch limit as `characterize --tune` does.
    #[serde(default)]
    pub tune: Option<String>,
    pub llms: Vec<LlmEntry>,
    pub gpus: Vec<GpuEntry>,
    pub engines: Vec<EngineEntry>,
    /// Where and how the Kubernetes backend runs the Jobs.
    #[serde(default)]
    pub kubernetes: KubernetesEntry,
}

/// The load sweep every run makes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadEntry {
    /// Closed-loop levels (concurrent users).
    #[serde(default)]
    pub users: Vec<u32>,
    /// Open-loop levels (`2/s`, `8`).
    #[serde(default)]
    pub rates: Vec<String>,
}

/// Request lengths: fixed, or from a workload file characterize reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEntry {
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    /// fmperf histogram CSV, Azure trace CSV or ShareGPT JSON.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmEntry {
    /// A catalog id or alias, a Hugging Face id, or a path to a config.json.
    pub model: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuEntry {
    /// A GPU catalog name (`H100`, `A100-SXM-80GB`), or `cpu` for this machine without a GPU.
    pub gpu: String,
    /// GPUs per run (one tensor-parallel group).
    #[serde(default = "one")]
    pub count: u32,
    /// Node labels the pods must match, in place of the GPU product label pilot derives.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// vllm, sglang, tensorrt-llm, tgi, or pilot (the embedded engine).
    pub name: String,
    /// The container image (default: the engine's published image).
    #[serde(default)]
    pub image: Option<String>,
    /// Arguments added to the engine's command line.
    #[serde(default)]
    pub args: Vec<String>,
    /// Local backend: the command that starts this engine here, serving at `endpoint`
    /// (`{model}` is filled in; with `tune`, `{max_batch}` too). Started before the run and
    /// stopped after it.
    #[serde(default)]
    pub launch: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The Kubernetes side of a plan: what the Jobs run in and where their results go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesEntry {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The image of the pilot container (built from the repository's Dockerfile).
    #[serde(default = "default_pilot_image")]
    pub pilot_image: String,
    /// The PersistentVolumeClaim the results are written to.
    #[serde(default = "default_pvc")]
    pub results_pvc: String,
    /// With `--results s3://...`: the Secret whose keys become the pilot container's
    /// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT
    /// for a store other than AWS).
    #[serde(default = "default_s3_secret")]
    pub s3_secret: String,
    /// A PersistentVolumeClaim holding model weights (mounted read-only at /models); without
    /// it, engines download from the Hub with the token of `hf_token_secret`.
    #[serde(default)]
    pub weights_pvc: Option<String>,
    /// The Secret (key `token`) holding the Hugging Face token.
    #[serde(default = "default_secret")]
    pub hf_token_secret: String,
    /// Retries of a failed pod before the run is recorded as failed.
    #[serde(default = "default_backoff")]
    pub backoff_limit: u32,
    /// How long a Job may stay unscheduled before it is given up with its events' reason
    /// (written "30m"; read when the plan is, so a typo stops `fleet plan`, not a campaign).
    #[serde(
        default = "default_schedule_timeout",
        deserialize_with = "duration_text"
    )]
    pub schedule_timeout: Duration,
    /// The longest a Job may run (default: its estimated time, tripled, plus an hour).
    #[serde(default, deserialize_with = "some_duration_text")]
    pub deadline: Option<Duration>,
    /// Jobs active at once; the others wait in pilot, so a shared cluster is not flooded.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_pilot_image() -> String {
    format!("ghcr.io/pilot/pilot:{}", env!("CARGO_PKG_VERSION"))
}
fn default_pvc() -> String {
    "pilot-results".into()
}
fn default_s3_secret() -> String {
    "pilot-s3".into()
}
fn default_secret() -> String {
    pilot_recommend::deploy::HF_TOKEN_SECRET.into()
}
fn default_backoff() -> u32 {
    2
}
fn default_parallel() -> usize {
    4
}
fn default_schedule_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

/// A duration the plan writes as text ("90s", "30m", "2h").
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration ({e}); write e.g. 30s, 2m or 1h"
        ))
    })
}

fn some_duration_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    duration_text(d).map(Some)
}

impl Default for KubernetesEntry {
    fn default() -> Self {
        KubernetesEntry {
            namespace: default_namespace(),
            pilot_image: default_pilot_image(),
            results_pvc: default_pvc(),
            s3_secret: default_s3_secret(),
            weights_pvc: None,
            hf_token_secret: default_secret(),
            backoff_limit: default_backoff(),
            schedule_timeout: default_schedule_timeout(),
            deadline: None,
            parallel: default_parallel(),
        }
    }
}

/// A GPU profile, resolved.
#[derive(Debug, Clone)]
pub struct GpuProfile {
    /// `None`: this machine's CPU (the embedded engine without a GPU).
    pub spec: Option<GpuSpec>,
    pub count: u32,
    pub node_selector: BTreeMap<String, String>,
}

impl GpuProfile {
    /// The GPU label of the rows (`cpu`, or the catalog name).
    pub fn label(&self) -> String {
        self.spec
            .as_ref()
            .map_or_else(|| CPU.to_string(), |g| g.name.clone())
    }
}

/// An engine, resolved.
#[derive(Debug, Clone)]
pub struct EngineChoice {
    /// The canonical name in the engine table.
    pub name: String,
    pub image: Option<String>,
    pub args: Vec<String>,
    pub launch: Option<String>,
    pub endpoint: Option<String>,
}

/// The levels, lengths and objectives every run shares, checked.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub users: Vec<u32>,
    /// Rates as written (checked by [`validate::rate_text`]); characterize takes them so.
    pub rates: Vec<String>,
    pub duration: Duration,
    pub warmup: Duration,
    pub lengths: Option<(u32, u32)>,
    pub workload: Option<PathBuf>,
    pub slos: Vec<String>,
    pub tune: Option<String>,
}

impl Sweep {
    /// Levels each sweep measures.
    pub fn levels(&self) -> usize {
        self.users.len() + self.rates.len()
    }

    /// Whole sweeps a run makes: one, or one per trial of the batch-limit search (a binary
    /// search over LO..HI makes at most log2 of the range's width, plus one, trials).
    pub fn sweeps(&self) -> u32 {
        match self.tune.as_deref().map(parse_tune_range) {
            Some(Ok((lo, hi))) => (hi - lo + 1).ilog2() + 2,
            _ => 1,
        }
    }
}

/// One run of the campaign: an LLM on a GPU profile under an engine, sweeping the levels.
#[derive(Debug, Clone)]
pub struct Run {
    /// Unique in the plan, a Kubernetes name: the run's directory and Job name.
    pub id: String,
    /// The model as the plan names it (what the engine is told to serve).
    pub model_name: String,
    pub model: LlmSpec,
    pub gpu: GpuProfile,
    pub engine: EngineChoice,
    /// The longest it is expected to take (start-up, every sweep's levels).
    pub expected: Duration,
    /// The cheapest on-demand price of the profile's GPUs (`None`: none listed, or CPU).
    pub price: Option<UsdPerHour>,
}

impl Run {
    /// GPU-hours the run holds its GPUs for.
    pub fn gpu_hours(&self) -> GpuHours {
        let count = if self.gpu.spec.is_some() {
            self.gpu.count
        } else {
            0
        };
        GpuHours(self.expected.as_secs_f64() / 3600.0 * f64::from(count))
    }

    /// What the run costs at its price.
    pub fn cost(&self) -> Option<Usd> {
        self.price
            .map(|p| Usd(p.0 * self.expected.as_secs_f64() / 3600.0))
    }
}

/// GPU time: GPUs held times hours.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct GpuHours(pub f64);

/// An amount of US dollars.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Usd(pub f64);

/// A plan, checked and expanded.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub name: String,
    pub sweep: Sweep,
    pub runs: Vec<Run>,
    pub kubernetes: KubernetesEntry,
    /// What was assumed (lengths for the fit check, missing prices).
    pub notes: Vec<String>,
}

/// Reads and expands a plan file.
pub fn load(path: &Path) -> Result<Fleet, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|source| FleetError::ReadPlan {
        path: path.to_path_buf(),
        source,
    })?;
    let file: PlanFile = toml::from_str(&text).map_err(|e| FleetError::ParsePlan {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    expand(file, base)
}

fn duration(entry: &str, text: &str) -> Result<Duration, FleetError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        FleetError::entry(
            entry,
            format!("'{text}' is not a duration ({e}); write e.g. 30s, 2m or 1h"),
        )
    })
}

/// Checks a plan and expands it into runs; `base` is where relative paths in it start.
pub fn expand(file: PlanFile, base: &Path) -> Result<Fleet, FleetError> {
    let mut notes = Vec::new();
    let name = validate::name("name", &file.name)
        .map_err(|e| FleetError::entry("name", e))?
        .to_string();
    if pilot_recommend::deploy::dns_label(&name).is_empty() {
        return Err(FleetError::entry(
            "name",
            format!("'{name}' has no letter or digit; name the campaign, e.g. \"llama-sweep\""),
        ));
    }
    let sweep = sweep(&file, base)?;
    if file.llms.is_empty() || file.gpus.is_empty() || file.engines.is_empty() {
        return Err(FleetError::entry(
            "matrix",
            "a plan needs at least one [[llms]], one [[gpus]] and one [[engines]] entry",
        ));
    }
    let models = file
        .llms
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let what = format!("llms[{}] model '{}'", i + 1, validate::shorten(&l.model));
            ModelCatalog::builtin()
                .resolve(relative(base, &l.model).as_str())
                .map(|spec| (l.model.clone(), spec))
                .map_err(|e| FleetError::entry(what, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gpus = file
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| gpu_profile(i, g))
        .collect::<Result<Vec<_>, _>>()?;
    let engines = file
        .engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = validate::engine(&e.name, &[])
                .map_err(|err| FleetError::entry(format!("engines[{}]", i + 1), err))?;
            Ok(EngineChoice {
                name: engine::traits(&name).map_or(name, |t| t.name.to_string()),
                image: e.image.clone(),
                args: e.args.clone(),
                launch: e.launch.clone(),
                endpoint: e.endpoint.clone(),
            })
        })
        .collect::<Result<Vec<_>, FleetError>>()?;
    let (input, output) = sweep.lengths.unwrap_or(FILE_LENGTHS);
    if sweep.lengths.is_none() {
        notes.push(format!(
            "the memory fit is checked at {input} input and {output} output tokens (the workload file's lengths are read when the runs start)"
        ));
    }
    let physics = PhysicsModel::default();
    let most_users = sweep.users.iter().copied().max().unwrap_or(1);
    let mut runs = Vec::new();
    let mut misfits = Vec::new();
    for (model_name, model) in &models {
        for gpu in &gpus {
            for e in &engines {
                let id = unique_id(&runs, model, gpu, &e.name);
                let what = format!("run {id}");
                if gpu.spec.is_none() && e.name != EMBEDDED {
                    return Err(FleetError::entry(
                        what,
                        format!(
                            "{} needs a GPU; on a '{CPU}' profile only pilot's embedded engine runs (engine \"{EMBEDDED}\")",
                            e.name
                        ),
                    ));
                }
                if let Some(spec) = &gpu.spec {
                    let mut sc = Scenario::new(
                        model.clone(),
                        spec.clone(),
                        gpu.count,
                        Load::Users(most_users),
                        Tokens(u64::from(input)),
                        Tokens(u64::from(output)),
                    );
                    sc.engine = Some(e.name.clone());
                    sc.check_deployable()
                        .map_err(|err| FleetError::entry(&what, err))?;
                    match physics.estimate(&sc) {
                        Ok((_, Fit::DoesNotFit { reason })) => {
                            misfits.push(format!("{id}: {reason}"))
                        }
                        Ok(_) => {}
                        Err(err) => return Err(FleetError::entry(&what, err)),
                    }
                }
                let startup = if gpu.spec.is_some() {
                    GPU_STARTUP
                } else {
                    CPU_STARTUP
                };
                let per_sweep = (sweep.duration + sweep.warmup) * sweep.levels() as u32;
                let expected = startup + per_sweep * sweep.sweeps();
                let price = gpu.spec.as_ref().and_then(|g| {
                    PriceCatalog::builtin()
                        .cheapest(&g.name, gpu.count, None, false)
                        .and_then(|p| p.on_demand)
                });
                if gpu.spec.is_some() && price.is_none() {
                    let note = format!(
                        "no on-demand price is listed for {} x {}: its runs are not in the dollar total",
                        gpu.count,
                        gpu.label()
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                runs.push(Run {
                    id,
                    model_name: model_name.clone(),
                    model: model.clone(),
                    gpu: gpu.clone(),
                    engine: e.clone(),
                    expected,
                    price,
                });
            }
        }
    }
    if !misfits.is_empty() {
        return Err(FleetError::DoesNotFit { reasons: misfits });
    }
    Ok(Fleet {
        name,
        sweep,
        runs,
        kubernetes: file.kubernetes,
        notes,
    })
}

/// A path in the plan, relative to the plan's directory, when it names a file there; other
/// text (a catalog name) as written.
fn relative(base: &Path, text: &str) -> String {
    let p = base.join(text);
    if Path::new(text).is_relative() && p.exists() {
        p.display().to_string()
    } else {
        text.to_string()
    }
}

fn sweep(file: &PlanFile, base: &Path) -> Result<Sweep, FleetError> {
    let users = file
        .load
        .users
        .iter()
        .map(|&u| {
            validate::count("load.users", f64::from(u)).map_err(|e| FleetError::entry("load", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for r in &file.load.rates {
        validate::rate_text("load.rates", r).map_err(|e| FleetError::entry("load", e))?;
    }
    if users.is_empty() && file.load.rates.is_empty() {
        return Err(FleetError::entry(
            "load",
            "no levels: give users = [1, 8, 32] and/or rates = [\"2/s\", \"8/s\"]",
        ));
    }
    let d = duration("duration", &file.duration)?;
    if d.is_zero() {
        return Err(FleetError::entry("duration", "must be positive, e.g. 120s"));
    }
    let warmup = match &file.warmup {
        Some(w) => duration("warmup", w)?,
        None => Duration::from_secs(10),
    };
    let w = &file.workload;
    let lengths = match (w.input_tokens, w.output_tokens, &w.file) {
        (Some(i), Some(o), None) => {
            for (what, n) in [("workload.input_tokens", i), ("workload.output_tokens", o)] {
                validate::count(what, f64::from(n))
                    .map_err(|e| FleetError::entry("workload", e))?;
            }
            Some((i, o))
        }
        (None, None, Some(_)) => None,
        _ => {
            return Err(FleetError::entry(
                "workload",
                "give input_tokens and output_tokens, or a file (fmperf CSV, Azure trace, ShareGPT JSON), not both",
            ));
        }
    };
    let workload = w.file.as_ref().map(|f| base.join(f));
    if let Some(f) = &workload
        && !f.is_file()
    {
        return Err(FleetError::entry(
            "workload.file",
            format!("{} does not exist", f.display()),
        ));
    }
    for s in &file.slos {
        parse_slo(s).map_err(|e| FleetError::entry("slos", e))?;
    }
    if let Some(t) = &file.tune {
        parse_tune_range(t).map_err(|e| FleetError::entry("tune", e))?;
    }
    Ok(Sweep {
        users,
        rates: file.load.rates.clone(),
        duration: d,
        warmup,
        lengths,
        workload,
        slos: file.slos.clone(),
        tune: file.tune.clone(),
    })
}

fn gpu_profile(i: usize, g: &GpuEntry) -> Result<GpuProfile, FleetError> {
    let what = format!("gpus[{}]", i + 1);
    let count =
        validate::count("count", f64::from(g.count)).map_err(|e| FleetError::entry(&what, e))?;
    if g.gpu.trim().eq_ignore_ascii_case(CPU) {
        if count != 1 {
            return Err(FleetError::entry(
                what,
                format!("the '{CPU}' profile is this machine: count must be 1"),
            ));
        }
        return Ok(GpuProfile {
            spec: None,
            count,
            node_selector: g.node_selector.clone(),
        });
    }
    let spec = GpuCatalog::builtin()
        .resolve(&g.gpu)
        .map_err(|e| FleetError::entry(&what, e))?;
    Ok(GpuProfile {
        spec: Some(spec.clone()),
        count,
        node_selector: g.node_selector.clone(),
    })
}

/// `model-COUNTxGPU-engine` as a Kubernetes name, with a number added when two runs would
/// share one (names are shortened to fit a label).
fn unique_id(runs: &[Run], model: &LlmSpec, gpu: &GpuProfile, engine: &str) -> String {
    let short = model.id.rsplit('/').next().unwrap_or(&model.id);
    let gpu_text = match &gpu.spec {
        Some(g) => format!("{}x{}", gpu.count, g.name),
        None => CPU.to_string(),
    };
    let base = pilot_recommend::deploy::dns_label(&format!("{short}-{gpu_text}-{engine}"));
    let mut id = base.clone();
    let mut n = 2;
    while runs.iter().any(|r| r.id == id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// The plan's table: one line per run, with its expected time, GPU-hours and cost.
pub fn matrix_table(fleet: &Fleet) -> String {
    let rows = fleet.runs.iter().map(|r| {
        vec![
            r.id.clone(),
            r.model.id.clone(),
            match &r.gpu.spec {
                Some(g) => format!("{} x {}", r.gpu.count, g.name),
                None => CPU.to_string(),
            },
            r.engine.name.clone(),
            (fleet.sweep.levels() as u32 * fleet.sweep.sweeps()).to_string(),
            humantime::format_duration(Duration::from_secs(r.expected.as_secs())).to_string(),
            format!("{:.2}", r.gpu_hours().0),
            r.cost().map_or("-".into(), |c| format!("{:.2}", c.0)),
        ]
    });
    pilot_core::table::table(
        &[
            "run", "model", "GPUs", "engine", "levels", "time", "GPU-h", "USD",
        ],
        rows,
    )
}

/// The totals line under the table.
pub fn totals(fleet: &Fleet) -> String {
    let hours: f64 = fleet.runs.iter().map(|r| r.gpu_hours().0).sum();
    // A fold from +0.0: an empty f64 sum is -0.0, printed "$-0.00".
    let dollars = fleet
        .runs
        .iter()
        .filter_map(|r| r.cost())
        .fold(0.0, |total, c| total + c.0);
    let time: Duration = fleet.runs.iter().map(|r| r.expected).sum();
    let unpriced = fleet
        .runs
        .iter()
        .filter(|r| r.gpu.spec.is_some() && r.price.is_none())
        .count();
    format!(
        "{} runs of {} level(s) each, about {} one after another, {:.1} GPU-hours, ${:.2} at the cheapest on-demand prices{}",
        fleet.runs.len(),
        fleet.sweep.levels(),
        humantime::format_duration(Duration::from_secs(time.as_secs())),
        hours,
        dollars,
        if unpriced > 0 {
            format!(" ({unpriced} run(s) without a listed price)")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(llms: &str, gpus: &str, engines: &str) -> String {
        format!(
            r#"
name = "t"
duration = "10s"
warmup = "0s"
[load]
users = [1, 4]
[workload]
input_tokens = 512
output_tokens = 128
{llms}
{gpus}
{engines}
"#
        )
    }

    fn parse(text: &str) -> Result<Fleet, FleetError> {
        let file: PlanFile = toml::from_str(text).unwrap();
        expand(file, Path::new("."))
    }

    #[test]
    fn the_matrix_is_every_llm_on_every_profile_under_every_engine() {
        let f = parse(&plan(
            "[[llms]]\nmodel = \"llama-3.1-8b\"\n[[llms]]\nmodel = \"mistral-7b\"",
            "[[gpus]]\ngpu = \"H100\"\n[[gpus]]\ngpu = \"A100-SXM-80GB\"\ncount = 2",
            "[[engines]]\nname = \"vllm\"\n[[engines]]\nname = \"sglang\"",
        ))
        .unwrap();
        assert_eq!(f.runs.len(), 8);
        let mut ids: Vec<&str> = f.runs.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "run ids are unique: {ids:?}");
        // Two 10 s levels plus ten minutes of start-up; twice the GPU-hours on two GPUs.
        let one = f.runs.iter().find(|r| r.gpu.count == 1).unwrap();
        let two = f.runs.iter().find(|r| r.gpu.count == 2).unwrap();
        assert_eq!(one.expected, Duration::from_secs(620));
        assert!((one.gpu_hours().0 - 620.0 / 3600.0).abs() < 1e-9);
        assert!((two.gpu_hours().0 - 2.0 * 620.0 / 3600.0).abs() < 1e-9);
        if let (Some(p), Some(c)) = (one.price, one.cost()) {
            assert!((c.0 - p.0 * 620.0 / 3600.0).abs() < 1e-9);
        }
        let text = matrix_table(&f);
        assert!(text.contains(&one.id), "{text}");
        assert!(
            totals(&f).starts_with("8 runs of 2 level(s)"),
            "{}",
            totals(&f)
        );
    }

    #[test]
    fn unknown_names_are_named_with_the_closest_valid_ones() {
        let gpu = parse(&plan(
            "[[llms]]\nmodel = \"llama-3.1-8b\"",
            "[[gpus]]\ngpu = \"H10O\"",
            "[[engines]]\nname = \"vllm\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            gpu.contains("gpus[1]") && gpu.contains("H10O") && gpu.contains("did you mean"),
            "{gpu}"
        );
        let engine = parse(&plan(
            "[[llms]]\nmodel = \"llama-3.1-8b\"",
            "[[gpus]]\ngpu = \"H100\"",
            "[[engines]]\nname = \"vlmm\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            engine.contains("engines[1]") && engine.contains("vllm"),
            "{engine}"
        );
        let model = parse(&plan(
            "[[llms]]\nmodel = \"llama-3.1-8c\"",
            "[[gpus]]\ngpu = \"H100\"",
            "[[engines]]\nname = \"vllm\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            model.contains("llms[1]") && model.contains("llama-3.1-8b"),
            "{model}"
        );
    }

    #[test]
    fn a_model_that_cannot_fit_its_gpus_is_refused_at_plan_time() {
        let e = parse(&plan(
            "[[llms]]\nmodel = \"llama-3.1-70b\"",
            "[[gpus]]\ngpu = \"L4\"",
            "[[engines]]\nname = \"vllm\"",
        ))
        .unwrap_err();
        assert!(matches!(e, FleetError::DoesNotFit { .. }), "{e}");
        assert!(e.to_string().contains("L4"), "{e}");
    }

    #[test]
    fn the_cpu_profile_runs_only_the_embedded_engine() {
        let f = parse(&plan(
            "[[llms]]\nmodel = \"tiny-llama\"",
            "[[gpus]]\ngpu = \"cpu\"",
            "[[engines]]\nname = \"pilot\"",
        ))
        .unwrap();
        assert_eq!(f.runs.len(), 1);
        assert_eq!(f.runs[0].gpu_hours(), GpuHours(0.0));
        let e = parse(&plan(
            "[[llms]]\nmodel = \"tiny-llama\"",
            "[[gpus]]\ngpu = \"cpu\"",
            "[[engines]]\nname = \"vllm\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a GPU"), "{e}");
    }

    #[test]
    fn tuning_multiplies_the_sweeps() {
        let mut f = parse(&plan(
            "[[llms]]\nmodel = \"tiny-llama\"",
            "[[gpus]]\ngpu = \"cpu\"",
            "[[engines]]\nname = \"pilot\"",
        ))
        .unwrap();
        assert_eq!(f.sweep.sweeps(), 1);
        f.sweep.tune = Some("max_batch=1..8".into());
        // Trials of 4, 6, 7, 8 at most (or 4, 2, 3, 1): four sweeps, and one more for slack.
        assert!(f.sweep.sweeps() >= 4, "{}", f.sweep.sweeps());
    }
}

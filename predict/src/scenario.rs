//! Scenarios (what to predict) and predictions (what comes back), and their CSV files.
//!
//! A scenario file is either of two things:
//! - a short scenario CSV: the columns `model, gpu, gpu_count, mode` and one load column for
//!   the mode (`users` for closed, `rate_rps` for open, `batch_size` for offline), then
//!   `input_tokens, output_tokens`, and optionally `engine`, `quantization`,
//!   `kv_cache_dtype` and the layout columns of the measurement schema
//!   ([`pilot_core::layout::COLUMNS`]: `tensor_parallel`, `attention_dp`, `prefill_workers`,
//!   ...; none = one tensor-parallel group over `gpu_count`);
//! - any measurement file (CSV or Parquet, [`pilot_core::schema`]), told apart by its
//!   `input_tokens_mean` column: each row is the scenario it describes
//!   ([`Scenario::from_row`]) and what was measured there is ignored, so a dataset can be
//!   predicted row for row, in order.
//!
//! A prediction file
//! repeats those columns (with every layout column filled in) and adds the schema's metric columns (the same names as a
//! measurement file), `<metric>_lower` / `<metric>_upper` for each predicted target,
//! `out_of_domain`, `fits`, `max_batch`, `kv_cache_tokens` and `does_not_fit_reason`.

use crate::PredictError;
use pilot_core::engine::{self, EngineTraits};
use pilot_core::gpu::{GpuCatalog, GpuSpec};
use pilot_core::layout::{self, LayoutCells, Serving};
use pilot_core::llm::{LlmSpec, ModelCatalog};
use pilot_core::metrics::Summary;
use pilot_core::quant::Quantization;
use pilot_core::schema::{Measurement, Mode, metric_columns, metric_value};
use pilot_core::units::{Dtype, Tokens};
use pilot_core::validate::{self, InvalidValue};
use std::collections::HashMap;
use std::path::Path;

/// The load of a scenario: core's one [`Load`], re-exported so `pilot_predict::Load` still
/// names it.
pub use pilot_core::load::Load;

/// One operating point to predict: an LLM on `gpu_count` GPUs (tensor-parallel) under a load.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub model: LlmSpec,
    pub gpu: GpuSpec,
    /// GPUs of the whole deployment (`serving.gpus()`).
    pub gpu_count: u32,
    /// How the GPUs are used: one tensor-parallel group over `gpu_count` unless a scenario
    /// says otherwise. The physics model does not read it yet: it predicts every scenario as
    /// one tensor-parallel group over `gpu_count`.
    pub serving: Serving,
    /// Serving engine (`vllm`, `tgis`, `tensorrt-llm`, ...); `None` = unknown.
    pub engine: Option<String>,
    /// Weight format served (the physics model reads its width, [`Quantization::storage`]).
    pub quantization: Quantization,
    /// KV-cache format; `None` = fp8 when the weights are fp8, else the 16-bit type.
    pub kv_cache: Option<Dtype>,
    pub load: Load,
    /// Mean input (prompt) tokens per request.
    pub input_tokens: Tokens,
    /// Mean output tokens per request.
    pub output_tokens: Tokens,
}

/// The 16-bit type a model is served in when nothing says otherwise: bf16 checkpoints stay
/// bf16, everything else (fp16, and fp32 checkpoints, which engines cast down) runs fp16.
pub fn default_dtype(m: &LlmSpec) -> Dtype {
    if m.dtype == Dtype::Bf16 {
        Dtype::Bf16
    } else {
        Dtype::F16
    }
}

impl Scenario {
    /// A scenario with the model's default 16-bit dtype and no engine.
    pub fn new(
        model: LlmSpec,
        gpu: GpuSpec,
        gpu_count: u32,
        load: Load,
        input: Tokens,
        output: Tokens,
    ) -> Scenario {
        Scenario {
            quantization: default_dtype(&model).into(),
            model,
            gpu,
            gpu_count,
            // A count of 0 is refused where scenarios are made (`validate::count`).
            serving: Serving::tensor_parallel(gpu_count.max(1))
                .expect("one tensor-parallel group of at least one GPU is a valid layout"),
            engine: None,
            kv_cache: None,
            load,
            input_tokens: input,
            output_tokens: output,
        }
    }

    /// The engine's entry in the engine table ([`pilot_core::engine`]); `None` when no engine
    /// is named or pilot knows nothing about it (predicted as paged and next-step).
    pub fn engine_traits(&self) -> Option<&'static EngineTraits> {
        self.engine.as_deref().and_then(engine::traits)
    }

    /// Whether the engine serves this architecture with padded batches (Hugging Face
    /// transformers-style kernels) rather than flash/paged attention
    /// ([`engine::KvCache::PaddedUnlessFlash`]: TGI and TGIS outside their flash
    /// architectures).
    ///
    /// Why it matters: a padded batch runs every prompt at the batch's longest length and
    /// re-pads the KV cache whenever a request joins, so prefill and the growth of TTFT with
    /// load are several times costlier than on paged engines.
    pub fn padded_batching(&self) -> bool {
        self.engine_traits()
            .is_some_and(|t| t.pads(&self.model.model_type))
    }

    /// Whether the engine's router sends prompts in waves ([`engine::Scheduling::WaveRouter`]:
    /// TGI and IBM's TGIS): closed-loop users fall into waves, and a request waits for the
    /// prefills of those that arrived with it. vLLM, SGLang, TensorRT-LLM and an unknown engine
    /// schedule waiting prompts at the next step.
    pub fn tgi_router(&self) -> bool {
        self.engine_traits()
            .is_some_and(|t| t.scheduling == engine::Scheduling::WaveRouter)
    }

    /// Whether this deployment can run at all, so that pilot refuses rather than predicts a
    /// deployment nobody can start: every worker's tensor-parallel degree splits the model's
    /// heads ([`LlmSpec::shards_heads`]), expert parallelism is used only on a mixture of
    /// experts and divides its experts, and a named engine the engine table knows runs this
    /// layout and this weight format on this GPU's architecture ([`EngineTraits::supports`]).
    ///
    /// Checked where a user describes a deployment (scenario files, one-shot flags). Measured
    /// rows are facts: a test checks every shipped one passes, which keeps the table honest.
    pub fn check_deployable(&self) -> Result<(), PredictError> {
        let m = &self.model;
        let layouts = match self.serving {
            Serving::Aggregated(l) => vec![("", l)],
            Serving::Disaggregated { prefill, decode } => {
                vec![("prefill ", prefill.layout()), ("decode ", decode.layout())]
            }
        };
        let traits = self.engine_traits();
        let uneven = traits.is_some_and(|t| t.uneven_heads);
        for (role, l) in layouts {
            if !uneven && !m.shards_heads(l.tensor()) {
                return Err(PredictError::Scenario(format!(
                    "{}: a {role}tensor-parallel degree of {} does not split its {} attention \
                     heads ({} K/V heads); use a degree that divides the heads, or attention data \
                     parallelism",
                    m.id,
                    l.tensor(),
                    m.heads,
                    m.kv_heads
                )));
            }
            let ep = l.expert();
            if ep > 1 && (m.experts <= 1 || !m.experts.is_multiple_of(ep)) {
                return Err(PredictError::Scenario(format!(
                    "{}: an {role}expert-parallel degree of {ep} does not divide its {} routed \
                     expert(s); use a divisor of {} (or 1 for a dense model)",
                    m.id, m.experts, m.experts
                )));
            }
        }
        if let Some(t) = traits {
            t.supports_layout(&self.serving.parallelism())?;
            if let Ok(arch) = engine::GpuArch::from_catalog(&self.gpu.architecture) {
                t.supports(self.quantization, arch)?;
            }
        }
        Ok(())
    }

    /// The engine's documented default batch limits on this scenario's GPU (the engine table's
    /// tier for its memory and architecture); `None` where the engine or its defaults are not
    /// in the table.
    pub fn engine_batch_defaults(&self) -> Option<&'static engine::BatchDefaults> {
        let batching = self.engine_traits()?.batching.as_ref()?;
        let arch = engine::GpuArch::from_catalog(&self.gpu.architecture).ok()?;
        batching.defaults_for(self.gpu.memory, arch)
    }

    /// The KV-cache dtype in effect.
    pub fn kv_dtype(&self) -> Dtype {
        self.kv_cache.unwrap_or(match self.quantization.storage() {
            Dtype::Fp8 => Dtype::Fp8,
            Dtype::Bf16 => Dtype::Bf16,
            _ => Dtype::F16,
        })
    }

    /// The scenario's identifying columns as a measurement row (no metrics).
    pub fn to_row(&self, source: &str) -> Measurement {
        let engine = self.engine.as_deref().unwrap_or("");
        let mut r = Measurement::new(
            &self.model.id,
            &self.gpu.name,
            self.gpu_count,
            engine,
            self.load,
        );
        r.quantization = Some(self.quantization);
        r.kv_cache_dtype = self.kv_cache.map(Quantization::from);
        r.serving = self.serving;
        r.metrics.input_tokens_mean = Some(self.input_tokens.0 as f64);
        r.metrics.output_tokens_mean = Some(self.output_tokens.0 as f64);
        r.source = source.to_string();
        r
    }

    /// The scenario a measurement row describes (its model, GPUs, engine, load and mean
    /// lengths). Fails when the model or GPU is not in the catalogs, the load is not a valid
    /// one ([`Load::validate`]) or a mean length is missing.
    pub fn from_row(row: &Measurement, cache: &mut Resolver) -> Result<Scenario, PredictError> {
        let model = cache.model(&row.model)?;
        let gpu = cache.gpu(&row.gpu)?;
        let invalid = |e: InvalidValue| {
            PredictError::Scenario(format!(
                "row {} on {} x {} ({} mode): {e}",
                row.model,
                row.gpu_count,
                row.gpu,
                row.load.mode()
            ))
        };
        let load = row.load.validate("load").map_err(invalid)?;
        validate::count("gpu_count", f64::from(row.gpu_count)).map_err(invalid)?;
        let len = |v: Option<f64>, what: &str| {
            v.filter(|x| x.is_finite() && *x > 0.0)
                .map(|x| Tokens(x.round().max(1.0) as u64))
                .ok_or_else(|| missing(row, what))
        };
        let mut s = Scenario::new(
            model,
            gpu,
            row.gpu_count,
            load,
            len(row.metrics.input_tokens_mean, "input_tokens_mean")?,
            len(row.metrics.output_tokens_mean, "output_tokens_mean")?,
        );
        if let Some(q) = row.quantization {
            s.quantization = q;
        }
        s.kv_cache = row.kv_cache_dtype.map(Quantization::storage);
        s.serving = row.serving;
        s.engine = (!row.engine.is_empty()).then(|| row.engine.clone());
        Ok(s)
    }
}

fn missing(row: &Measurement, what: &str) -> PredictError {
    PredictError::Scenario(format!(
        "row {} on {} x {} ({} mode) has no {what}",
        row.model,
        row.gpu_count,
        row.gpu,
        row.load.mode()
    ))
}

/// Resolves model and GPU names once each (the catalogs' fuzzy matching is not free).
#[derive(Default)]
pub struct Resolver {
    models: HashMap<String, LlmSpec>,
    gpus: HashMap<String, GpuSpec>,
}

impl Resolver {
    pub fn model(&mut self, name: &str) -> Result<LlmSpec, PredictError> {
        if let Some(m) = self.models.get(name) {
            return Ok(m.clone());
        }
        let m = ModelCatalog::builtin().resolve(name)?;
        self.models.insert(name.to_string(), m.clone());
        Ok(m)
    }
    pub fn gpu(&mut self, name: &str) -> Result<GpuSpec, PredictError> {
        if let Some(g) = self.gpus.get(name) {
            return Ok(g.clone());
        }
        let g = GpuCatalog::builtin().resolve(name)?.clone();
        self.gpus.insert(name.to_string(), g.clone());
        Ok(g)
    }
}

/// Whether a configuration can run at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// It runs: the KV cache holds this many tokens and this many sequences fit a batch.
    Fits {
        kv_cache_tokens: Tokens,
        max_batch: u32,
    },
    /// It cannot run, and why (with the numbers).
    DoesNotFit { reason: String },
}

/// A predicted operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The scenario as a row with the predicted metrics filled (TTFT, nTTFT, ITL, TPOT, E2E
    /// statistics and throughputs); `max_batch` is the predicted batch budget.
    pub row: Measurement,
    /// Lower and upper ends of the prediction interval (90% by default), per metric.
    pub lower: Summary,
    pub upper: Summary,
    /// The scenario lies outside what the predictor was trained on (an unseen engine, or a
    /// model size, GPU, load or length beyond the training ranges): trust the interval less.
    pub out_of_domain: bool,
    pub fit: Fit,
}

/// What to say when scenarios name no engine: they are predicted with the physics model's
/// default constants, which are vLLM's published defaults (see [`crate::PhysicsParams`]), and
/// with no engine's measured corrections. `why` says why no engine is known (`x.csv has no
/// engine column`).
pub fn unnamed_engine_note(why: &str) -> String {
    format!(
        "{why}; predicted as vLLM with its published defaults (not its calibrated constants \
         or any engine's measured corrections); to choose, name the engine (an `engine` column \
         in a scenario file, `--engine` on the command line), e.g. {}",
        engine::TABLE[..4]
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Scenarios read from a file, with notes on what was assumed for them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioFile {
    pub scenarios: Vec<Scenario>,
    /// Assumptions made (an engine nobody named), to print on stderr.
    pub notes: Vec<String>,
}

/// Reads a scenario CSV (see the module doc for the columns). Every value is checked with
/// [`pilot_core::validate`] and a bad one is an error naming its line: nothing is coerced.
/// `engines` are engine names known beyond the engine table (those a trained predictor
/// measured).
pub fn read_scenarios(path: &Path, engines: &[String]) -> Result<ScenarioFile, PredictError> {
    let p = path.display().to_string();
    let io = |reason: String| PredictError::Io {
        path: p.clone(),
        reason,
    };
    let unreadable = |what: String, e: csv::Error| PredictError::File {
        path: p.clone(),
        what,
        source: pilot_core::csv_cause(e),
    };
    let parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if parquet {
        return read_measurement_scenarios(path, engines);
    }
    let mut rdr =
        csv::Reader::from_path(path).map_err(|e| unreadable("cannot open it".into(), e))?;
    let headers = rdr
        .headers()
        .map_err(|e| unreadable("cannot read the CSV header".into(), e))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    if col("input_tokens").is_none() && col("input_tokens_mean").is_some() {
        return read_measurement_scenarios(path, engines);
    }
    for required in ["model", "gpu", "input_tokens", "output_tokens"] {
        if col(required).is_none() {
            return Err(io(format!(
                "no column '{required}'; a scenario file needs model, gpu, gpu_count, mode, users | rate_rps | batch_size, input_tokens, output_tokens (engine and quantization optional)"
            )));
        }
    }
    let mut resolver = Resolver::default();
    let mut out = Vec::new();
    let mut unnamed = 0;
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| unreadable(format!("line {} cannot be parsed", i + 2), e))?;
        let line = i as u64 + 2;
        let get = |name: &str| {
            col(name)
                .and_then(|c| rec.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let at = |e: InvalidValue| io(e.at_line(line).to_string());
        let on_line = |e: PredictError| io(format!("line {line}: {e}"));
        let model = resolver
            .model(get("model").unwrap_or_default())
            .map_err(on_line)?;
        let gpu = resolver
            .gpu(get("gpu").unwrap_or_default())
            .map_err(on_line)?;
        let mut cells = LayoutCells::default();
        for c in layout::COLUMNS {
            if let Some(v) = get(c) {
                cells.set(c, Some(validate::count_text(c, v).map_err(at)?));
            }
        }
        let given_count = match get("gpu_count") {
            Some(v) => Some(validate::count_text("gpu_count", v).map_err(at)?),
            None => None,
        };
        // Without gpu_count, the layout says how many GPUs (one when there is none).
        let serving = cells
            .serving(given_count)
            .map_err(|e| io(format!("line {line}: {e}")))?;
        let count = serving.gpus();
        let mode = match get("mode") {
            Some(m) => Some(
                m.parse::<Mode>()
                    .map_err(|e| io(format!("line {line}: {e}")))?,
            ),
            None => None,
        };
        let load = match (mode, get("users"), get("rate_rps"), get("batch_size")) {
            (Some(Mode::Closed) | None, Some(u), _, _) => {
                Load::Users(validate::count_text("users", u).map_err(at)?)
            }
            (Some(Mode::Open) | None, _, Some(r), _) => {
                Load::Rate(validate::rate_text("rate_rps", r).map_err(at)?)
            }
            (Some(Mode::Offline) | None, _, _, Some(b)) => {
                Load::Batch(validate::count_text("batch_size", b).map_err(at)?)
            }
            (m, ..) => {
                return Err(io(format!(
                    "line {line}: mode {} needs its load column (users for closed, rate_rps for open, batch_size for offline)",
                    m.map_or("(none)".into(), |m| m.to_string())
                )));
            }
        };
        let tokens = |name: &str| -> Result<Tokens, PredictError> {
            let v = get(name).unwrap_or_default();
            Ok(Tokens(validate::count_text(name, v).map_err(at)?.into()))
        };
        let mut s = Scenario::new(
            model,
            gpu,
            count,
            load,
            tokens("input_tokens")?,
            tokens("output_tokens")?,
        );
        s.serving = serving;
        s.engine = match get("engine") {
            Some(e) => Some(validate::engine(e, engines).map_err(at)?),
            None => {
                unnamed += 1;
                None
            }
        };
        let format = |name: &str| -> Result<Option<Quantization>, PredictError> {
            get(name)
                .map(|q| {
                    q.parse::<Quantization>()
                        .map_err(|e| io(format!("line {line}: {name}: {e}")))
                })
                .transpose()
        };
        if let Some(q) = format("quantization")? {
            s.quantization = q;
        }
        s.kv_cache = format("kv_cache_dtype")?.map(Quantization::storage);
        s.check_deployable()
            .map_err(|e| io(format!("line {line}: {e}")))?;
        out.push(s);
    }
    let mut notes = Vec::new();
    if unnamed > 0 {
        let which = if col("engine").is_none() {
            format!("{p} has no engine column")
        } else {
            format!("{unnamed} scenarios of {p} have an empty engine cell")
        };
        notes.push(unnamed_engine_note(&which));
    }
    Ok(ScenarioFile {
        scenarios: out,
        notes,
    })
}

/// The scenarios of a measurement file, one per row in order ([`Scenario::from_row`]; the
/// measured columns are not read), with the same engine check as a scenario CSV (every
/// measurement row names its engine, so no note is needed).
fn read_measurement_scenarios(
    path: &Path,
    engines: &[String],
) -> Result<ScenarioFile, PredictError> {
    let p = path.display().to_string();
    let rows = pilot_core::schema::read_measurements(path)?;
    let mut resolver = Resolver::default();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let on_row = |e: String| PredictError::Io {
            path: p.clone(),
            reason: format!("row {i}: {e}"),
        };
        let mut s = Scenario::from_row(row, &mut resolver).map_err(|e| on_row(e.to_string()))?;
        if let Some(e) = s.engine.take() {
            s.engine = Some(validate::engine(&e, engines).map_err(|e| on_row(e.to_string()))?);
        }
        s.check_deployable().map_err(|e| on_row(e.to_string()))?;
        out.push(s);
    }
    Ok(ScenarioFile {
        scenarios: out,
        notes: Vec::new(),
    })
}

/// Writes predictions (see the module doc for the columns) as CSV or Parquet, by the
/// extension of `path` (another extension is an error naming those two). `targets` are the
/// metric columns that carry intervals.
pub fn write_predictions(
    preds: &[Prediction],
    targets: &[String],
    path: &Path,
) -> Result<(), PredictError> {
    let p = path.display().to_string();
    let io = |reason: String| PredictError::Io {
        path: p.clone(),
        reason,
    };
    pilot_core::schema::check_table_path(path)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let metrics = metric_columns();
    let mut header: Vec<String> = [
        "model",
        "gpu",
        "gpu_count",
        "engine",
        "quantization",
        "kv_cache_dtype",
        "mode",
        "users",
        "rate_rps",
        "batch_size",
        "input_tokens",
        "output_tokens",
    ]
    .map(String::from)
    .to_vec();
    header.extend(layout::COLUMNS.map(String::from));
    header.extend(metrics.iter().cloned());
    for t in targets {
        header.push(format!("{t}_lower"));
        header.push(format!("{t}_upper"));
    }
    header.extend(
        [
            "out_of_domain",
            "fits",
            "max_batch",
            "kv_cache_tokens",
            "does_not_fit_reason",
        ]
        .map(String::from),
    );
    w.write_record(&header).map_err(|e| io(e.to_string()))?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for pr in preds {
        let r = &pr.row;
        let mut rec = vec![
            r.model.clone(),
            r.gpu.clone(),
            r.gpu_count.to_string(),
            r.engine.clone(),
            r.quantization.map(|q| q.to_string()).unwrap_or_default(),
            r.kv_cache_dtype.map(|q| q.to_string()).unwrap_or_default(),
            r.load.mode().to_string(),
            r.load.users().map(|u| u.to_string()).unwrap_or_default(),
            r.load.rate().map(|x| x.0.to_string()).unwrap_or_default(),
            r.load
                .batch_size()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            opt(r.metrics.input_tokens_mean),
            opt(r.metrics.output_tokens_mean),
        ];
        let cells = LayoutCells::of(r.serving);
        rec.extend(
            layout::COLUMNS.map(|c| cells.get(c).map(|v| v.to_string()).unwrap_or_default()),
        );
        rec.extend(metrics.iter().map(|c| opt(metric_value(r, c))));
        let lo = Measurement {
            metrics: pr.lower.clone(),
            ..r.clone()
        };
        let hi = Measurement {
            metrics: pr.upper.clone(),
            ..r.clone()
        };
        for t in targets {
            rec.push(opt(metric_value(&lo, t)));
            rec.push(opt(metric_value(&hi, t)));
        }
        let (fits, mb, kv, reason) = match &pr.fit {
            Fit::Fits {
                kv_cache_tokens,
                max_batch,
            } => (
                "true",
                max_batch.to_string(),
                kv_cache_tokens.0.to_string(),
                String::new(),
            ),
            Fit::DoesNotFit { reason } => ("false", String::new(), String::new(), reason.clone()),
        };
        rec.extend([
            pr.out_of_domain.to_string(),
            fits.to_string(),
            mb,
            kv,
            reason,
        ]);
        w.write_record(&rec).map_err(|e| io(e.to_string()))?;
    }
    let text = w.into_inner().map_err(|e| io(e.to_string()))?;
    Ok(pilot_core::schema::write_csv_table(text, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "model,gpu,gpu_count,mode,users,rate_rps,batch_size,input_tokens,output_tokens,engine";

    fn read(body: &str) -> Result<ScenarioFile, PredictError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, body).unwrap();
        read_scenarios(&p, &[])
    }

    /// Padding and waves come from the engine table, by name or alias in any case: TGI and
    /// TGIS pad T5 but not Llama and send prompts in waves; other and unknown engines do
    /// neither.
    #[test]
    fn padding_and_waves_follow_the_engine_table() {
        let mut r = Resolver::default();
        let gpu = r.gpu("H100-SXM-80GB").unwrap();
        let on = |model: &str, engine: Option<&str>| {
            let mut s = Scenario::new(
                Resolver::default().model(model).unwrap(),
                gpu.clone(),
                1,
                Load::Users(8),
                Tokens(512),
                Tokens(128),
            );
            s.engine = engine.map(String::from);
            (s.padded_batching(), s.tgi_router())
        };
        for engine in ["tgis", "TGI", "text-generation-inference"] {
            assert_eq!(on("flan-t5-xl", Some(engine)), (true, true), "{engine}");
            assert_eq!(on("llama-2-13b", Some(engine)), (false, true), "{engine}");
        }
        for engine in [Some("vllm"), Some("my-fork"), None] {
            assert_eq!(on("flan-t5-xl", engine), (false, false), "{engine:?}");
        }
    }

    /// Every coercion the reader used to make is now an error naming the line and the value.
    #[test]
    fn bad_values_are_errors_with_their_line() {
        let good = "mistral-7b,H100,1,closed,8,,,512,256,vllm";
        assert_eq!(
            read(&format!("{HEADER}\n{good}\n")).unwrap().scenarios[0].load,
            Load::Users(8)
        );
        for (bad, what) in [
            ("mistral-7b,H100,1,closed,-5,,,512,256,vllm", "users '-5'"),
            ("mistral-7b,H100,1,closed,0,,,512,256,vllm", "users '0'"),
            ("mistral-7b,H100,1,closed,NaN,,,512,256,vllm", "users 'NaN'"),
            ("mistral-7b,H100,1,closed,2.5,,,512,256,vllm", "users '2.5'"),
            ("mistral-7b,H100,1,open,,-3,,512,256,vllm", "rate_rps '-3'"),
            (
                "mistral-7b,H100,1,open,,inf,,512,256,vllm",
                "rate_rps 'inf'",
            ),
            (
                "mistral-7b,H100,1,offline,,,0,512,256,vllm",
                "batch_size '0'",
            ),
            (
                "mistral-7b,H100,-4,closed,8,,,512,256,vllm",
                "gpu_count '-4'",
            ),
            (
                "mistral-7b,H100,2.7,closed,8,,,512,256,vllm",
                "gpu_count '2.7'",
            ),
            (
                "mistral-7b,H100,1,closed,8,,,0,256,vllm",
                "input_tokens '0'",
            ),
            (
                "mistral-7b,H100,1,closed,8,,,512,12.5,vllm",
                "output_tokens '12.5'",
            ),
            (
                "mistral-7b,H100,1,closed,8,,,512,256,vlmm",
                "did you mean vllm",
            ),
        ] {
            let e = read(&format!("{HEADER}\n{good}\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 3") && e.contains(what), "{bad}: {e}");
        }
    }

    /// A file without an engine column is predicted for vLLM's defaults, and a note says so.
    #[test]
    fn an_unnamed_engine_is_noted() {
        let f = read("model,gpu,users,input_tokens,output_tokens\nmistral-7b,H100,4,512,256\n")
            .unwrap();
        assert_eq!(f.scenarios[0].engine, None);
        let note = f.notes.join(" ");
        assert!(
            note.contains("no engine column") && note.contains("vLLM") && note.contains("engine"),
            "{note}"
        );
        let f = read(&format!(
            "{HEADER}\nmistral-7b,H100,1,closed,8,,,512,256,TGIS\n"
        ))
        .unwrap();
        assert_eq!(f.scenarios[0].engine.as_deref(), Some("tgis"));
        assert!(f.notes.is_empty(), "{:?}", f.notes);
    }

    /// A runaway name fails at once with a short message, before any fuzzy matching.
    #[test]
    fn huge_names_fail_fast_and_short() {
        let name = "m".repeat(5_000_000);
        let t = std::time::Instant::now();
        let e = read(&format!(
            "{HEADER}\n{name},H100,1,closed,8,,,512,256,vllm\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
        assert!(
            e.len() < 1000 && e.contains("line 2") && e.contains("5000000 characters"),
            "{} bytes: {}",
            e.len(),
            validate::shorten(&e)
        );
    }

    /// The short scenario CSV takes the schema's layout columns: none is one tensor-parallel
    /// group over gpu_count, a layout without gpu_count gives it, and one that disagrees with
    /// gpu_count is an error naming the line and both numbers.
    #[test]
    fn scenario_csv_reads_layout_columns() {
        let h = "model,gpu,gpu_count,users,input_tokens,output_tokens,engine,tensor_parallel,attention_dp,expert_parallel,prefill_workers,prefill_tensor_parallel,decode_workers,quantization";
        let f = read(&format!(
            "{h}\n\
             mistral-7b,H100,4,8,512,256,vllm,,,,,,,\n\
             mixtral-8x7b,H100,,8,512,256,vllm,1,8,8,,,,fp8_block\n\
             mistral-7b,H100,,8,512,256,vllm,8,,,2,4,1,nvfp4\n"
        ))
        .unwrap();
        let s = &f.scenarios;
        assert_eq!(s[0].serving, Serving::tensor_parallel(4).unwrap());
        assert_eq!(s[1].gpu_count, 8);
        assert_eq!(s[1].serving.decode_layout().attention_dp(), 8);
        assert_eq!(s[1].quantization, Quantization::Fp8Block);
        assert_eq!(s[2].gpu_count, 2 * 4 + 8);
        assert!(s[2].serving.is_disaggregated());
        assert_eq!(s[2].quantization, Quantization::Nvfp4);
        let e = read(&format!(
            "{h}\nmistral-7b,H100,4,8,512,256,vllm,,,,,,,\nmistral-7b,H100,4,8,512,256,vllm,2,,,,,,\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 3") && e.contains("gpu_count 4") && e.contains("2 GPUs"),
            "{e}"
        );
    }

    /// A measurement file is a scenario file: its rows in order, measured columns ignored, the
    /// layout kept; CSV or Parquet. A misspelt engine is an error naming the row.
    #[test]
    fn measurement_files_are_scenarios_row_for_row() {
        use pilot_core::layout::{Layout, Workers};
        let mut r = Resolver::default();
        let base = Scenario::new(
            r.model("mistral-7b").unwrap(),
            r.gpu("H100").unwrap(),
            1,
            Load::Users(8),
            Tokens(512),
            Tokens(128),
        );
        let mut rows = Vec::new();
        for (i, users) in [32, 1, 7].into_iter().enumerate() {
            let mut row = base.to_row("test");
            row.load = Load::Users(users);
            row.engine = "vllm".into();
            row.metrics.ttft.p50 = Some(pilot_core::units::Millis(1000.0 + i as f64));
            rows.push(row);
        }
        rows[1].set_serving(Serving::Disaggregated {
            prefill: Workers::new(2, Layout::new(1, 1, 1, 1).unwrap()).unwrap(),
            decode: Workers::new(1, Layout::new(4, 1, 1, 1).unwrap()).unwrap(),
        });
        rows[2].engine = "TGIS".into();
        let dir = tempfile::tempdir().unwrap();
        for name in ["m.csv", "m.parquet"] {
            let path = dir.path().join(name);
            pilot_core::schema::write_measurements(&rows, &path).unwrap();
            let f = read_scenarios(&path, &[]).unwrap();
            let loads: Vec<Load> = f.scenarios.iter().map(|s| s.load).collect();
            assert_eq!(
                loads,
                [Load::Users(32), Load::Users(1), Load::Users(7)],
                "{name}"
            );
            assert_eq!(f.scenarios[1].serving, rows[1].serving, "{name}");
            assert_eq!(f.scenarios[1].gpu_count, 6, "{name}");
            assert_eq!(f.scenarios[0].input_tokens, Tokens(512));
            // Engine names are checked and made canonical, as in a scenario CSV.
            assert_eq!(f.scenarios[2].engine.as_deref(), Some("tgis"), "{name}");
        }
        rows[0].engine = "vlmm".into();
        let path = dir.path().join("bad.csv");
        pilot_core::schema::write_measurements(&rows, &path).unwrap();
        let e = read_scenarios(&path, &[]).unwrap_err().to_string();
        assert!(
            e.contains("row 0") && e.contains("did you mean vllm"),
            "{e}"
        );
    }

    /// Predictions are written as CSV or Parquet by extension, and nothing else.
    #[test]
    fn predictions_are_written_by_extension() {
        let f = read(&format!(
            "{HEADER}\nmistral-7b,H100,1,closed,8,,,512,256,vllm\n"
        ))
        .unwrap();
        let p = crate::PhysicsModel::default();
        let preds: Vec<Prediction> = f
            .scenarios
            .iter()
            .map(|s| crate::LatencyModel::predict(&p, s).unwrap())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["itl_ms_p50".to_string()];
        for name in ["p.csv", "p.parquet"] {
            let path = dir.path().join(name);
            write_predictions(&preds, &targets, &path).unwrap();
            let frame = pilot_core::schema::read_frame(&path).unwrap();
            assert_eq!(frame.height(), 1, "{name}");
        }
        let parquet = std::fs::read(dir.path().join("p.parquet")).unwrap();
        assert_eq!(&parquet[..4], b"PAR1");
        let e = write_predictions(&preds, &targets, &dir.path().join("p.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(".csv") && e.contains(".parquet"), "{e}");
        assert!(!dir.path().join("p.txt").exists());
    }

    /// A deployment no engine can start is refused with the numbers that disagree.
    #[test]
    fn undeployable_layouts_and_formats_are_refused() {
        let h = "model,gpu,gpu_count,users,input_tokens,output_tokens,engine,tensor_parallel,expert_parallel,quantization";
        for (row, says) in [
            (
                "mistral-7b,H100,3,8,512,256,vllm,3,,",
                "does not split its 32 attention",
            ),
            (
                "mixtral-8x7b,H100,4,8,512,256,vllm,4,3,",
                "does not divide its 8 routed",
            ),
            (
                "mistral-7b,H100,2,8,512,256,vllm,2,2,",
                "does not divide its 1 routed",
            ),
            (
                "mistral-7b,H100,1,8,512,256,tensorrt-llm,1,,nvfp4",
                "cannot serve nvfp4",
            ),
        ] {
            let err = read(&format!("{h}\n{row}\n")).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains("line 2"), "{row}: {err}");
        }
        let ok = read(&format!(
            "{h}\nmixtral-8x7b,B200,8,8,512,256,vllm,8,8,nvfp4\n"
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    /// Every measured row pilot ships is a deployment the checks allow: a measurement is a
    /// fact, so a refusal here means the engine table or a model's shape is wrong.
    #[test]
    fn every_shipped_measurement_is_deployable() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor");
        let mut resolver = Resolver::default();
        for file in [
            "llm-pilot.csv",
            "llm-inference-bench.csv",
            "aiconfigurator.csv",
        ] {
            let rows = pilot_core::schema::read_measurements(&dir.join(file)).unwrap();
            for (i, r) in rows.iter().enumerate() {
                let Ok(s) = Scenario::from_row(r, &mut resolver) else {
                    continue;
                };
                if let Err(e) = s.check_deployable() {
                    panic!(
                        "{file} row {i} ({} on {} x {}, {}): {e}",
                        r.model, r.gpu_count, r.gpu, r.engine
                    );
                }
            }
        }
    }
}

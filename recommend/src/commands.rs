//! Clap-free entry points for the `pilot` binary: one function per command, taking the
//! values as typed and returning the text to print. The binary only parses flags and calls
//! these; every value is checked here, in the order the flags are documented.
//!
//! - `pilot recommend --model M --slo ttft=200ms --users 200 ...` → [`recommend_command`]
//! - `pilot eval recommend --data <file> [--margin M] [--seeds N]` → [`eval_command`]
//!   (LLM-Pilot's benchmark); with `--benchmark aiconfigurator --data <file>...
//!   [--models A,B]`, the same protocol on today's stacks ([`crate::eval_stacks`])

use crate::deploy::{self, DeployError, Plan};
use crate::eval::{EvalOptions, Scores, evaluate, evaluate_seeds};
use crate::eval_stacks::{self, StacksError, StacksOptions, StacksReport};
use crate::render::{self, ReportOptions};
use crate::search::{Margin, RecommendError, RecommendOptions, recommend};
use crate::space::{KvChoice, ServingModes};
use pilot_core::command::Output;
use pilot_core::gpu::{GpuCatalog, GpuError, GpuSpec};
use pilot_core::llm::{LlmSpec, ModelCatalog, ModelError};
use pilot_core::load::Load;
use pilot_core::metrics::UnknownName;
use pilot_core::price::{LLM_PILOT_CLOUD, PriceCatalog, PriceError};
use pilot_core::quant::Quantization;
use pilot_core::schema::{SchemaError, read_measurements};
use pilot_core::slo::{Slo, SloError, parse_slo_at};
use pilot_core::table::table;
use pilot_core::units::{DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, Dtype, Tokens};
use pilot_core::validate::{self, InvalidValue};
use pilot_predict::scenario::default_dtype;
use pilot_predict::{LatencyModel, OverLengths, PhysicsModel, PredictError, Predictor};
use std::path::PathBuf;

/// The engine `pilot recommend` plans for when `--engine` is not given: vLLM, the most used
/// OpenAI-compatible server, whose physics constants the shipped predictor calibrates on
/// LLM-Inference-Bench's vLLM runs.
pub const DEFAULT_ENGINE: &str = "vllm";

/// The length distribution of a workload file for a model with this context length
/// (`None`: unlimited): (input tokens, output tokens, probability) per request shape. The
/// binary supplies it, because reading workloads belongs to the load generator, which
/// recommend does not depend on.
pub type WorkloadLengths<'a> = &'a dyn Fn(Option<u32>) -> anyhow::Result<Vec<(u64, u64, f64)>>;

/// `pilot recommend`, as typed.
pub struct RecommendRequest<'a> {
    /// A catalog name, a Hub id or a path to config.json.
    pub model: String,
    /// `--slo` values (`ttft=200ms`, `itl:p99=50ms`, `tokens_per_s=20`).
    pub slos: Vec<String>,
    /// The statistic for SLOs that name none (`p50`, `p90`, `p95`, `p99`, `mean`).
    pub percentile: String,
    /// Closed-loop users, used when `rate` is `None`.
    pub users: u32,
    /// An open-loop request rate (`10/s`).
    pub rate: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// Lengths from a workload file, instead of `input_tokens` / `output_tokens`.
    pub workload: Option<WorkloadLengths<'a>>,
    /// Also find the cheapest fleet mixing GPU types by request length.
    pub mix: bool,
    /// GPU names or families (empty: every catalog GPU with a price).
    pub gpus: Vec<String>,
    pub max_gpus: u32,
    /// Weight formats (empty: the checkpoint's own).
    pub quantization: Vec<String>,
    /// KV-cache dtypes: `auto` or a dtype (empty: the default, plus fp8 where it runs).
    pub kv_cache_dtype: Vec<String>,
    /// `aggregated`, `disaggregated` or `both`.
    pub serving: String,
    /// Engines (empty: [`DEFAULT_ENGINE`]).
    pub engine: Vec<String>,
    pub cloud: Option<String>,
    pub spot: bool,
    /// A price list (CSV, or JSON by extension) instead of the shipped one.
    pub prices: Option<PathBuf>,
    /// `upper`, `none` or a fraction (`0.2`).
    pub margin: String,
    /// A trained predictor instead of the shipped one.
    pub predictor: Option<PathBuf>,
    pub physics_only: bool,
    /// Where to export the whole frontier as CSV.
    pub csv: Option<PathBuf>,
    /// Where to write the HTML report (the frontier plotted, the answer, the rejections).
    pub report: Option<PathBuf>,
    pub json: bool,
    pub explain: bool,
    pub top: usize,
    /// `--emit cmd` or `--emit k8s DIR` (empty: neither).
    pub emit: Vec<String>,
    /// The feasible row `--emit` writes (`None`: row 1, the cheapest, and a note saying so).
    pub row: Option<usize>,
}

/// What went wrong in a command, with the value and the fix; wrapped errors stay the source.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Recommend(#[from] RecommendError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Price(#[from] PriceError),
    #[error(transparent)]
    Slo(#[from] SloError),
    #[error(transparent)]
    Statistic(#[from] UnknownName),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Workload(anyhow::Error),
    #[error("no prices for cloud '{cloud}'; clouds: {clouds}")]
    UnknownCloud { cloud: String, clouds: String },
    #[error("{0}")]
    Quantization(String),
    #[error("{0}")]
    Serving(String),
    #[error("--margin '{0}': use upper, none, or a fraction like 0.2")]
    Margin(String),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("cannot write the report to {path}")]
    Report {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plot(#[from] pilot_report::plot::PlotError),
    #[error("cannot print JSON")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Stacks(#[from] StacksError),
    #[error("{0}")]
    Usage(String),
}

/// `pilot recommend`: the cheapest configurations meeting the SLOs, as a table with its
/// evidence (or JSON); writes the frontier CSV when asked.
pub fn recommend_command(req: &RecommendRequest) -> Result<Output, CommandError> {
    // A malformed --emit fails before the search, not after it.
    match req.emit.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["cmd"] | ["k8s", _] => {}
        _ => return Err(DeployError::Kind(req.emit.join(" ")).into()),
    }
    let model = ModelCatalog::builtin().resolve(&req.model)?;
    let slos = req
        .slos
        .iter()
        .map(|s| slo_with_percentile(s, &req.percentile))
        .collect::<Result<Vec<_>, _>>()?;
    let demand = match &req.rate {
        Some(r) => Load::Rate(validate::rate_text("--rate", r)?),
        None => Load::Users(validate::count("--users", req.users.into())?),
    };
    validate::count("--max-gpus", req.max_gpus.into())?;
    let (input, output, distribution) = lengths(req, &model)?;
    let loaded_prices;
    let prices = match &req.prices {
        Some(p) => {
            loaded_prices = PriceCatalog::from_path(p)?;
            &loaded_prices
        }
        None => PriceCatalog::builtin(),
    };
    if let Some(c) = &req.cloud
        && !prices.clouds().iter().any(|x| x.eq_ignore_ascii_case(c))
    {
        return Err(CommandError::UnknownCloud {
            cloud: c.clone(),
            clouds: prices.clouds().join(", "),
        });
    }
    let gpus = gpus(req, prices)?;
    // The checkpoint's own format unless asked: re-quantizing changes the model's answers,
    // which is the user's call, not the search's.
    let quantizations = if req.quantization.is_empty() {
        vec![
            model
                .checkpoint
                .as_ref()
                .map_or(default_dtype(&model).into(), |c| c.weights),
        ]
    } else {
        req.quantization
            .iter()
            .map(|q| {
                q.parse::<Quantization>()
                    .map_err(CommandError::Quantization)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let kv_caches = req
        .kv_cache_dtype
        .iter()
        .map(|k| kv_choice(k))
        .collect::<Result<Vec<_>, _>>()?;
    let serving = req
        .serving
        .parse::<ServingModes>()
        .map_err(CommandError::Serving)?;
    let margin = parse_margin(&req.margin)?;
    let physics = PhysicsModel::default();
    let loaded_predictor;
    let trained: Option<&Predictor> = if req.physics_only {
        None
    } else if let Some(p) = &req.predictor {
        loaded_predictor = Predictor::load(p)?;
        Some(&loaded_predictor)
    } else {
        Some(Predictor::shipped()?)
    };
    // An engine is one pilot knows or one the predictor measured; a typo is an error.
    let measured = trained.map(Predictor::engines).unwrap_or_default();
    let engines = if req.engine.is_empty() {
        vec![Some(DEFAULT_ENGINE.to_string())]
    } else {
        req.engine
            .iter()
            .map(|e| validate::engine(e, &measured).map(Some))
            .collect::<Result<Vec<_>, _>>()?
    };
    let at_one_length: &dyn LatencyModel = match trained {
        Some(p) => p,
        None => &physics,
    };
    // A workload of many lengths is judged over its buckets (its p99 is its long requests'),
    // not at its mean lengths; `--mix` splits the buckets itself and keeps the plain model.
    let buckets = crate::mix::buckets(&distribution);
    let over_lengths = (buckets.len() > 1)
        .then(|| OverLengths::new(at_one_length, buckets.clone()))
        .transpose()?;
    let predictor: &dyn LatencyModel = match &over_lengths {
        Some(o) => o,
        None => at_one_length,
    };
    let opts = RecommendOptions {
        model,
        slos,
        demand,
        input_tokens: input,
        output_tokens: output,
        gpus,
        max_gpus: req.max_gpus,
        quantizations,
        kv_caches,
        serving,
        engines,
        cloud: req.cloud.clone(),
        spot: req.spot,
        margin,
        explain: req.explain,
    };
    let rec = recommend(&opts, predictor, prices)?;
    let mut out = Output::default();
    if let Some(o) = &over_lengths {
        out.log.push(format!(
            "latency over the workload's {} length buckets ({}), not its mean lengths: TTFT and \
             end-to-end percentiles mix the buckets' predictions; ITL, TPOT and throughput are \
             the server's at the mean lengths",
            o.buckets().len(),
            pilot_predict::over_lengths::describe(&buckets)
        ));
    }
    if let Some(path) = &req.csv {
        render::write_frontier_csv(&rec, &opts.slos, path).map_err(|source| {
            CommandError::Write {
                path: path.display().to_string(),
                source,
            }
        })?;
        out.log.push(format!(
            "wrote {} candidates to {}",
            rec.candidates.len(),
            path.display()
        ));
    }
    if let Some(path) = &req.report {
        let html = crate::html_report::recommendation_html(&rec, &opts, req.top)?;
        std::fs::write(path, html).map_err(|source| CommandError::Report {
            path: path.display().to_string(),
            source,
        })?;
        out.log
            .push(format!("wrote the report to {}", path.display()));
    }
    if !req.emit.is_empty() {
        emit(req, &rec, &opts, &mut out)?;
        if req.emit[0] == "cmd" {
            return Ok(out);
        }
    }
    let mix = if req.mix {
        if req.workload.is_none() {
            out.log.push(
                "--mix without --workload: every request has the same length, so a mix can only \
                 split the load, not the lengths; pass --workload FILE for the length distribution"
                    .to_string(),
            );
        }
        let space = opts.space();
        let mo = crate::mix::MixOptions {
            space: &space,
            slos: &opts.slos,
            margin: opts.margin,
            cloud: opts.cloud.as_deref(),
            spot: opts.spot,
        };
        Some(crate::mix::cheapest_mix(
            &rec,
            &buckets,
            at_one_length,
            prices,
            &mo,
        ))
    } else {
        None
    };
    out.text = if req.json {
        serde_json::to_string_pretty(&render::frontier_json(&rec, &opts))?
    } else {
        let r = ReportOptions {
            trained,
            top: req.top,
        };
        let mut text = render::report(&rec, &opts, &r);
        if let Some(m) = &mix {
            text.push_str(&render::mix(m.as_ref(), rec.demand));
        }
        text
    };
    Ok(out)
}

/// `--emit cmd` (the launch commands become the output) or `--emit k8s DIR` (manifests
/// written, the table printed as usual), for `--row` or row 1.
fn emit(
    req: &RecommendRequest,
    rec: &crate::search::Recommendation,
    opts: &RecommendOptions,
    out: &mut Output,
) -> Result<(), CommandError> {
    let feasible: Vec<_> = rec.feasible().collect();
    if feasible.is_empty() {
        return Err(DeployError::NothingFeasible.into());
    }
    let row = match req.row {
        Some(r) => r,
        None => {
            out.log
                .push("--emit without --row: writing row 1, the cheapest".to_string());
            1
        }
    };
    let Some(c) = row.checked_sub(1).and_then(|i| feasible.get(i)) else {
        return Err(DeployError::NoRow {
            row,
            rows: feasible.len(),
        }
        .into());
    };
    let plan = Plan::new(
        c,
        &opts.model,
        &c.profile.gpu,
        opts.input_tokens,
        opts.output_tokens,
    )?;
    match (req.emit[0].as_str(), req.emit.get(1)) {
        ("cmd", None) => out.text = deploy::emit_cmd(&plan, row),
        ("k8s", Some(dir)) => {
            for path in deploy::write_k8s(&plan, std::path::Path::new(dir))? {
                out.log.push(format!("wrote {path}"));
            }
        }
        _ => return Err(DeployError::Kind(req.emit.join(" ")).into()),
    }
    Ok(())
}

/// One `--kv-cache-dtype` value: `auto` (the engine's default for the weights) or a dtype.
fn kv_choice(text: &str) -> Result<KvChoice, CommandError> {
    match text.to_ascii_lowercase().as_str() {
        "auto" | "default" => Ok(None),
        t => t.parse::<Dtype>().map(Some).map_err(|e| {
            CommandError::Quantization(format!(
                "--kv-cache-dtype '{text}': {e}; use auto, fp8, bf16 or fp16"
            ))
        }),
    }
}

/// Parses one `--slo`, applying `--percentile` where the SLO names no statistic (and
/// `tokens_per_s=X` per user as `tpot <= 1000/X ms`: [`pilot_core::slo`]).
fn slo_with_percentile(text: &str, percentile: &str) -> Result<Slo, CommandError> {
    Ok(parse_slo_at(text, percentile.parse()?)?)
}

/// A length distribution: (input tokens, output tokens, probability) per request shape.
type Distribution = Vec<(u64, u64, f64)>;

/// Mean input and output tokens and their distribution: from the workload when one is given,
/// else the flags or pilot's defaults (one length, probability 1).
fn lengths(
    req: &RecommendRequest,
    model: &LlmSpec,
) -> Result<(Tokens, Tokens, Distribution), CommandError> {
    if let Some(read) = req.workload {
        let dist = read(model.max_positions.map(|m| m as u32)).map_err(CommandError::Workload)?;
        let (i, o) = dist.iter().fold((0.0, 0.0), |(i, o), &(a, b, w)| {
            (i + w * a as f64, o + w * b as f64)
        });
        return Ok((
            Tokens(i.round().max(1.0) as u64),
            Tokens(o.round().max(1.0) as u64),
            dist,
        ));
    }
    let count = |what: &str, given: Option<u64>, default: Tokens| {
        validate::count(what, given.unwrap_or(default.0) as f64).map(|n| Tokens(n.into()))
    };
    let (i, o) = (
        count("--input-tokens", req.input_tokens, DEFAULT_INPUT_TOKENS)?,
        count("--output-tokens", req.output_tokens, DEFAULT_OUTPUT_TOKENS)?,
    );
    Ok((i, o, vec![(i.0, o.0, 1.0)]))
}

/// The GPU types to consider: the named ones (a family name means all its SKUs), or every
/// catalog GPU with a price on the chosen cloud (LLM-Pilot's own price list excluded).
fn gpus(req: &RecommendRequest, prices: &PriceCatalog) -> Result<Vec<GpuSpec>, CommandError> {
    let catalog = GpuCatalog::builtin();
    if req.gpus.is_empty() {
        return Ok(catalog
            .all()
            .iter()
            .filter(|g| {
                prices.entries().iter().any(|e| {
                    e.gpu == g.name
                        && e.cloud != LLM_PILOT_CLOUD
                        && req
                            .cloud
                            .as_deref()
                            .is_none_or(|c| e.cloud.eq_ignore_ascii_case(c))
                })
            })
            .cloned()
            .collect());
    }
    let mut chosen: Vec<GpuSpec> = Vec::new();
    for name in &req.gpus {
        for g in catalog.resolve_family(name)? {
            if !chosen.iter().any(|c| c.name == g.name) {
                chosen.push(g.clone());
            }
        }
    }
    Ok(chosen)
}

/// `--margin`: `upper`, `none`, or a fraction added to the point prediction (`0.1`).
pub fn parse_margin(m: &str) -> Result<Margin, CommandError> {
    Ok(match m {
        "upper" => Margin::Upper,
        "none" => Margin::None,
        f => match f.parse::<f64>() {
            Ok(k) if k.is_finite() && k > -1.0 => Margin::Factor(k),
            _ => return Err(CommandError::Margin(f.to_string())),
        },
    })
}

/// `pilot eval recommend`, as typed.
pub struct EvalRecommendRequest {
    /// [`BENCHMARKS`]: `llm-pilot` or `aiconfigurator`.
    pub benchmark: String,
    /// `llm-pilot`: LLM-Pilot's dataset in pilot's schema (one file). `aiconfigurator`: the
    /// training files, AIConfigurator's import among them (its rows are the cases).
    pub data: Vec<PathBuf>,
    /// `none`, `upper`, a fraction, or `nested` (LLM-Pilot's benchmark only).
    pub margin: String,
    /// Training seeds (42, 43, ...) to rerun the benchmark with.
    pub seeds: u32,
    /// `aiconfigurator` only: the held-out LLMs to run (empty: all).
    pub models: Vec<String>,
    /// `aiconfigurator` only: cross-conformal folds per training (`None`: 5, as shipped).
    pub conformal_folds: Option<u32>,
}

/// The benchmarks `pilot eval recommend` runs.
pub const BENCHMARKS: [&str; 2] = ["llm-pilot", "aiconfigurator"];

/// LLM-Pilot's published recommendation scores, transcribed from
/// `../shared/data/llm-pilot/published/recommendation_scores.csv`.
const PUBLISHED: [(&str, f64, f64, f64); 4] = [
    ("LLM-Pilot", 80.0, 19.859954617845506, 0.800699614549604),
    ("Static policy", 50.0, 6.772875816993467, 0.6509041127146198),
    ("PARIS", 80.0, 49.93055555555556, 0.6159103043246129),
    ("Selecta", 70.0, 57.06349206349206, 0.5322557976106816),
];

/// `pilot eval recommend`: LLM-Pilot's recommendation benchmark, leave-one-LLM-out, with
/// pilot's outcome per LLM and its scores beside the published ones.
pub fn eval_command(req: &EvalRecommendRequest) -> Result<Output, CommandError> {
    match req.benchmark.as_str() {
        "llm-pilot" => {}
        "aiconfigurator" => return eval_stacks_command(req),
        other => {
            return Err(CommandError::Usage(format!(
                "--benchmark '{other}': use {}",
                BENCHMARKS.join(" or ")
            )));
        }
    }
    let [data] = &req.data[..] else {
        return Err(CommandError::Usage(format!(
            "LLM-Pilot's benchmark reads one --data file (LLM-Pilot's dataset), not {}",
            req.data.len()
        )));
    };
    if !req.models.is_empty() || req.conformal_folds.is_some() {
        return Err(CommandError::Usage(
            "--models and --conformal-folds are for --benchmark aiconfigurator; LLM-Pilot's benchmark holds out each of its LLMs and trains without folds".into(),
        ));
    }
    let rows = read_measurements(data)?;
    if !rows.is_empty()
        && rows
            .iter()
            .all(|r| r.source.starts_with(eval_stacks::SOURCE_PREFIX))
    {
        return Err(CommandError::Usage(format!(
            "{} is AIConfigurator's import, not LLM-Pilot's dataset: run it with --benchmark aiconfigurator",
            data.display()
        )));
    }
    let opts = EvalOptions {
        margin: if req.margin == "nested" {
            Margin::Nested
        } else {
            parse_margin(&req.margin)?
        },
        ..EvalOptions::default()
    };
    let report = evaluate(&rows, &opts, PriceCatalog::builtin())?;
    let header = [
        "held-out LLM",
        "margin",
        "recommended",
        "cost USD/h",
        "cheapest true",
        "cost USD/h",
        "meets 200 users",
    ];
    let body = report.outcomes.iter().map(|o| {
        vec![
            o.model.clone(),
            o.margin
                .map_or("-".into(), |k| format!("{:+.0}%", k * 100.0)),
            o.chosen
                .as_ref()
                .map_or("-".into(), |(p, n)| format!("{n} pods of {p}")),
            o.chosen_cost.map_or("-".into(), |c| format!("{c:.2}")),
            o.best
                .as_ref()
                .map_or("-".into(), |(p, n)| format!("{n} pods of {p}")),
            o.best_cost.map_or("-".into(), |c| format!("{c:.2}")),
            if o.success { "yes" } else { "no" }.into(),
        ]
    });
    let mut text = table(&header, body);
    text.push_str("\n\nLLM-Pilot's recommendation benchmark (200 users, median nTTFT <= 100 ms/token, median ITL <= 50 ms):\n");
    let score_row = |label: String, s: &Scores| {
        vec![
            label,
            format!("{:.1}", s.success_rate),
            format!("{:.1}", s.overspend),
            format!("{:.3}", s.so_score),
        ]
    };
    let mut score_rows = vec![
        score_row(format!("pilot (margin {})", req.margin), &report.scores),
        score_row(
            format!("pilot (margin {}, continuous capacity)", req.margin),
            &report.scores_continuous,
        ),
    ];
    if req.seeds > 1 {
        // The first seed's run is the report above; only the others are run again.
        let base = opts.train.seed;
        let more: Vec<u64> = (1..u64::from(req.seeds)).map(|k| base + k).collect();
        let mut runs = vec![(report.scores, report.scores_continuous)];
        runs.extend(evaluate_seeds(
            &rows,
            &opts,
            PriceCatalog::builtin(),
            &more,
        )?);
        let last = base + u64::from(req.seeds) - 1;
        for (label, continuous) in [("", false), (", continuous capacity", true)] {
            let s: Vec<Scores> = runs
                .iter()
                .map(|r| if continuous { r.1 } else { r.0 })
                .collect();
            score_rows.push(vec![
                format!(
                    "pilot (margin {}{label}), seeds {base}-{last}: median [range]",
                    req.margin
                ),
                spread(s.iter().map(|x| x.success_rate).collect(), 0),
                spread(s.iter().map(|x| x.overspend).collect(), 1),
                spread(s.iter().map(|x| x.so_score).collect(), 3),
            ]);
        }
    }
    for (name, s, o, so) in PUBLISHED {
        score_rows.push(vec![
            format!("{name} (published)"),
            format!("{s:.1}"),
            format!("{o:.1}"),
            format!("{so:.3}"),
        ]);
    }
    text.push_str(&table(
        &["recommender", "success %", "overspend %", "S/O"],
        score_rows,
    ));
    Ok(Output::text(text))
}

/// `pilot eval recommend --benchmark aiconfigurator`: LLM-Pilot's protocol on AIConfigurator's
/// measured deployments ([`crate::eval_stacks`]), per LLM, per engine and overall.
fn eval_stacks_command(req: &EvalRecommendRequest) -> Result<Output, CommandError> {
    let margin = match req.margin.as_str() {
        "nested" => return Err(StacksError::Nested.into()),
        m => parse_margin(m)?,
    };
    let mut rows = Vec::new();
    let mut files = Vec::new();
    for path in &req.data {
        let mut r = read_measurements(path)?;
        files.push(format!("{} ({} rows)", path.display(), r.len()));
        rows.append(&mut r);
    }
    let mut opts = StacksOptions {
        margin,
        models: req.models.clone(),
        ..StacksOptions::default()
    };
    if let Some(k) = req.conformal_folds {
        if margin == Margin::Upper && k < 3 {
            return Err(CommandError::Usage(format!(
                "--conformal-folds {k}: --margin upper needs intervals from at least 3 folds"
            )));
        }
        opts.train.conformal_folds = k;
    }
    let prices = PriceCatalog::builtin();
    let report = eval_stacks::evaluate(&rows, &opts, prices)?;
    let mut text = format!(
        "AIConfigurator's measured deployments, leave-one-LLM-out: {} concurrent users; {}; \
         profiles = the held-out LLM's measured aggregated deployments at each input/output \
         length; cost = ceil({} / capacity) x GPUs x cheapest on-demand price per GPU-hour.\n\
         Training: {} (each held-out LLM's rows, its quantized checkpoints included, left out), \
         {} conformal folds.\n\n",
        opts.users,
        opts.slo_pairs
            .iter()
            .map(|p| format!("({})", p.label()))
            .collect::<Vec<_>>()
            .join(", "),
        opts.users,
        files.join(", "),
        opts.training().conformal_folds,
    );
    let all = report.of_engine(None);
    let trained: std::collections::HashMap<&str, usize> = report
        .trainings
        .iter()
        .map(|(l, n)| (l.as_str(), *n))
        .collect();
    let pct = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.1}"));
    text.push_str(&table(
        &[
            "held-out LLM",
            "training rows",
            "cases",
            "successes",
            "success %",
            "mean overspend %",
        ],
        eval_stacks::per_llm(&all).into_iter().map(|s| {
            vec![
                s.llm.clone(),
                trained
                    .get(s.llm.as_str())
                    .map_or("-".into(), |n| n.to_string()),
                s.cases.to_string(),
                s.successes.to_string(),
                format!("{:.1}", 100.0 * s.successes as f64 / s.cases.max(1) as f64),
                pct(s.mean_overspend),
            ]
        }),
    ));
    text.push_str("\n\nPer engine (the same cases with only that engine's profiles, scored against its own optimum):\n");
    let score_cells = |n: usize, s: &Scores| {
        vec![
            n.to_string(),
            format!("{:.1}", s.success_rate),
            format!("{:.1}", s.overspend),
            format!("{:.3}", s.so_score),
        ]
    };
    text.push_str(&table(
        &["engine", "cases", "success %", "overspend %", "S/O"],
        report.engines().into_iter().map(|e| {
            let mine = report.of_engine(Some(&e));
            let mut row = vec![e.clone()];
            row.extend(score_cells(mine.len(), &eval_stacks::scores(&mine)));
            row
        }),
    ));
    text.push_str("\n\nScores (target of issue 15: success >= 95%, overspend <= 10%):\n");
    let mut score_rows = vec![{
        let mut row = vec![format!("pilot (margin {})", req.margin)];
        row.extend(score_cells(all.len(), &report.scores()));
        row
    }];
    if req.seeds > 1 {
        let base = opts.train.seed;
        let mut runs = vec![report.scores()];
        for seed in (1..u64::from(req.seeds)).map(|k| base + k) {
            let mut o = opts.clone();
            o.train.seed = seed;
            runs.push(eval_stacks::evaluate(&rows, &o, prices)?.scores());
        }
        score_rows.push(vec![
            format!(
                "pilot (margin {}), seeds {base}-{}: median [range]",
                req.margin,
                base + u64::from(req.seeds) - 1
            ),
            all.len().to_string(),
            spread(runs.iter().map(|x| x.success_rate).collect(), 0),
            spread(runs.iter().map(|x| x.overspend).collect(), 1),
            spread(runs.iter().map(|x| x.so_score).collect(), 3),
        ]);
    }
    text.push_str(&table(
        &["recommender", "cases", "success %", "overspend %", "S/O"],
        score_rows,
    ));
    text.push_str(&stacks_notes(&report));
    let failures: Vec<Vec<String>> = all
        .iter()
        .filter(|o| !o.score.success)
        .map(|o| {
            let s = &o.score;
            vec![
                o.llm.clone(),
                format!("{}/{}", o.input_tokens, o.output_tokens),
                o.slo.label(),
                s.chosen
                    .as_ref()
                    .map_or("none predicted to meet the SLOs".into(), |c| {
                        format!(
                            "{} x {} (predicted {}, true {})",
                            c.replicas,
                            c.profile.label_for(&o.llm),
                            c.predicted_capacity,
                            c.true_capacity
                        )
                    }),
                format!(
                    "{} x {} (true {})",
                    s.best.replicas,
                    s.best.profile.label_for(&o.llm),
                    s.best.true_capacity
                ),
            ]
        })
        .collect();
    if !failures.is_empty() {
        text.push_str(&format!(
            "\n\nFailures ({}): the recommendation's replicas do not truly serve {} users:\n",
            failures.len(),
            opts.users
        ));
        text.push_str(&table(
            &[
                "LLM",
                "input/output",
                "SLOs",
                "recommended (capacity per replica)",
                "cheapest true",
            ],
            failures,
        ));
    }
    Ok(Output::text(text))
}

/// What the benchmark left out, in words.
fn stacks_notes(r: &StacksReport) -> String {
    let mut lines = Vec::new();
    if let Some(s) = r.skipped.get(&None) {
        lines.push(format!(
            "Skipped cases (no optimum): {} where no priced profile meets the SLOs at its lowest measured concurrency, {} with every profile on a GPU without a price.",
            s.infeasible, s.unpriced
        ));
    }
    if !r.unpriced.is_empty() {
        lines.push(format!(
            "Excluded from both sides, no price in pilot's catalog: {} (profiles, counted once per input/output length).",
            r.unpriced
                .iter()
                .map(|(g, n)| format!("{n} on {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let n = &r.rows;
    let mut rows = format!(
        "Rows: {} made profiles; not profiles: {} disaggregated, {} of other sources (training only)",
        n.used, n.disaggregated, n.other_source
    );
    if n.not_closed_loop > 0 {
        rows.push_str(&format!(", {} not closed-loop", n.not_closed_loop));
    }
    for (why, k) in &n.excluded {
        rows.push_str(&format!(", {k} {why}"));
    }
    rows.push('.');
    lines.push(rows);
    if r.prediction_errors > 0 {
        lines.push(format!(
            "Predictions pilot could not make (counted as violations): {}; the first: {}.",
            r.prediction_errors,
            r.first_prediction_error.as_deref().unwrap_or("-")
        ));
    }
    format!("\n\n{}", lines.join("\n"))
}

/// `median [min-max]` of values, with `digits` decimals.
fn spread(mut v: Vec<f64>, digits: usize) -> String {
    v.sort_by(f64::total_cmp);
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "{med:.digits$} [{:.digits$}-{:.digits$}]",
        v[0],
        v[v.len() - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::slo::{Metric, Stat};

    #[test]
    fn spreads_give_the_median_and_the_range() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0], 0), "2 [1-3]");
        assert_eq!(spread(vec![0.5, 0.7, 0.6, 0.9], 2), "0.65 [0.50-0.90]");
    }

    #[test]
    fn percentile_applies_only_where_no_statistic_is_named() {
        assert_eq!(
            slo_with_percentile("ttft=200ms", "p90").unwrap().stat,
            Stat::P90
        );
        assert_eq!(
            slo_with_percentile("ttft:p99=200ms", "p90").unwrap().stat,
            Stat::P99
        );
        let t = slo_with_percentile("tokens_per_s=20", "p50").unwrap();
        assert_eq!((t.metric, t.threshold.0), (Metric::Tpot, 50.0));
        assert!(slo_with_percentile("tokens_per_s=fast", "p50").is_err());
    }

    #[test]
    fn margins_are_upper_none_or_a_fraction_above_minus_one() {
        assert_eq!(parse_margin("upper").unwrap(), Margin::Upper);
        assert_eq!(parse_margin("none").unwrap(), Margin::None);
        assert_eq!(parse_margin("0.2").unwrap(), Margin::Factor(0.2));
        for bad in ["-1", "nan", "inf", "x"] {
            let e = parse_margin(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("upper"), "{e}");
        }
    }
}

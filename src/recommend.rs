//! `pilot recommend` and `pilot eval recommend`: flags to [`pilot_recommend`] and back to text.

use crate::output::{emit, table};
use anyhow::{Context, bail};
use clap::Args;
use pilot_characterize::workload::LoadedWorkload;
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::price::PriceCatalog;
use pilot_core::schema::metric_value;
use pilot_core::slo::{Slo, parse_slo_at};
use pilot_core::units::{
    DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, Dtype, RequestsPerSec, Tokens,
};
use pilot_core::validate;
use pilot_predict::{LatencyModel, PhysicsModel, Predictor, scenario::default_dtype};
use pilot_recommend::eval::{EvalOptions, Scores, evaluate, evaluate_seeds};
use pilot_recommend::{
    Candidate, Demand, Margin, RecommendOptions, Recommendation, Verdict, recommend,
};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub struct RecommendArgs {
    /// The LLM: a catalog name (`pilot catalog models`), a Hub id, or a path to config.json.
    #[arg(long)]
    model: String,
    /// A latency objective, e.g. `ttft=200ms`, `itl=50ms`, `e2e=2s`, `nttft=1ms`, `tpot:p99=80ms`,
    /// `tokens_per_s=20` (per user); repeat or comma-separate for several.
    #[arg(long = "slo", value_delimiter = ',', required = true)]
    slos: Vec<String>,
    /// The statistic SLOs without one are checked at.
    #[arg(long, default_value = "p50", value_parser = ["p50", "p90", "p95", "p99", "mean"])]
    percentile: String,
    /// Concurrent users (closed loop).
    #[arg(long, conflicts_with = "rate", default_value_t = 200)]
    users: u32,
    /// Request rate, e.g. `10/s` or `10` (Poisson arrivals).
    #[arg(long)]
    rate: Option<String>,
    /// Mean input tokens per request.
    #[arg(long, conflicts_with = "workload")]
    input_tokens: Option<u64>,
    /// Mean output tokens per request.
    #[arg(long, conflicts_with = "workload")]
    output_tokens: Option<u64>,
    /// Take the mean lengths from a workload file (fmperf histogram CSV, Azure trace CSV, ShareGPT JSON).
    #[arg(long)]
    workload: Option<PathBuf>,
    /// GPU types to consider; a family name (`a100`) means all its SKUs (default: every
    /// catalog GPU with a price).
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<String>,
    /// The largest tensor-parallel group to consider.
    #[arg(long, default_value_t = 8)]
    max_gpus: u32,
    /// Weight formats to consider, e.g. `fp16,fp8,int4` (default: the model's own).
    #[arg(long, value_delimiter = ',')]
    quantization: Vec<String>,
    /// Serving engines to consider, e.g. `vllm,tensorrt-llm,tgis` (default: vllm).
    #[arg(long, value_delimiter = ',')]
    engine: Vec<String>,
    /// Only this cloud's prices (`pilot catalog prices` lists them).
    #[arg(long)]
    cloud: Option<String>,
    /// Use spot prices.
    #[arg(long)]
    spot: bool,
    /// Your own price list: a CSV with the columns of `datasets/prices.csv`, or the JSON that
    /// `pilot catalog prices --json` prints (by extension: `.json` is JSON).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Safety margin: `upper` (the predictor's interval's upper end), `none`, or a fraction like `0.2`.
    #[arg(long, default_value = "upper")]
    margin: String,
    /// A predictor trained with `pilot train` (default: the shipped one).
    #[arg(long, conflicts_with = "physics_only")]
    predictor: Option<PathBuf>,
    /// Use the physics model alone, without learned corrections.
    #[arg(long)]
    physics_only: bool,
    /// Export the whole frontier (every candidate, feasible or not) as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Print the whole frontier as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Show each top candidate's latency-vs-load curve.
    #[arg(long)]
    explain: bool,
    /// How many feasible candidates to show.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Parses one `--slo`, applying `--percentile` where the SLO names no statistic (and
/// `tokens_per_s=X` per user as `tpot <= 1000/X ms`: [`pilot_core::slo`]).
fn slo_with_percentile(text: &str, percentile: &str) -> anyhow::Result<Slo> {
    Ok(parse_slo_at(text, percentile.parse()?)?)
}

/// Parses a request rate (`10/s`, `10rps`, `10`); the one `--rate` parser of the binary
/// (finite and positive, by [`pilot_core::validate::rate_text`]).
pub fn parse_rate(text: &str) -> anyhow::Result<RequestsPerSec> {
    Ok(validate::rate_text("--rate", text)?)
}

pub fn run(a: RecommendArgs) -> anyhow::Result<()> {
    let model = ModelCatalog::builtin().resolve(&a.model)?;
    let slos = a
        .slos
        .iter()
        .map(|s| slo_with_percentile(s, &a.percentile))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let demand = match &a.rate {
        Some(r) => Demand::Rate(parse_rate(r)?),
        None => Demand::Users(validate::count("--users", a.users.into())?),
    };
    validate::count("--max-gpus", a.max_gpus.into())?;
    let (input, output) = match &a.workload {
        Some(path) => {
            let w = crate::workload_arg(path)?;
            let loaded = LoadedWorkload::load(&w, model.max_positions.map(|m| m as u32))?;
            let (i, o) = loaded.mean();
            (i.round().max(1.0) as u64, o.round().max(1.0) as u64)
        }
        None => (
            u64::from(validate::count(
                "--input-tokens",
                a.input_tokens.unwrap_or(DEFAULT_INPUT_TOKENS.0) as f64,
            )?),
            u64::from(validate::count(
                "--output-tokens",
                a.output_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS.0) as f64,
            )?),
        ),
    };
    let loaded_prices;
    let prices = match &a.prices {
        Some(p) => {
            loaded_prices = PriceCatalog::from_path(p)?;
            &loaded_prices
        }
        None => PriceCatalog::builtin(),
    };
    if let Some(c) = &a.cloud
        && !prices.clouds().iter().any(|x| x.eq_ignore_ascii_case(c))
    {
        bail!(
            "no prices for cloud '{c}'; clouds: {}",
            prices.clouds().join(", ")
        );
    }
    let catalog = GpuCatalog::builtin();
    let gpus = if a.gpus.is_empty() {
        catalog
            .all()
            .iter()
            .filter(|g| {
                prices.entries().iter().any(|e| {
                    e.gpu == g.name
                        && e.cloud != pilot_core::price::LLM_PILOT_CLOUD
                        && a.cloud
                            .as_deref()
                            .is_none_or(|c| e.cloud.eq_ignore_ascii_case(c))
                })
            })
            .cloned()
            .collect()
    } else {
        let mut chosen: Vec<pilot_core::gpu::GpuSpec> = Vec::new();
        for name in &a.gpus {
            for g in catalog.resolve_family(name)? {
                if !chosen.iter().any(|c| c.name == g.name) {
                    chosen.push(g.clone());
                }
            }
        }
        chosen
    };
    let quantizations = if a.quantization.is_empty() {
        vec![default_dtype(&model)]
    } else {
        a.quantization
            .iter()
            .map(|q| q.parse::<Dtype>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let margin = parse_margin(&a.margin)?;
    let physics = PhysicsModel::default();
    let loaded_predictor;
    let trained: Option<&Predictor> = if a.physics_only {
        None
    } else if let Some(p) = &a.predictor {
        loaded_predictor = Predictor::load(p)?;
        Some(&loaded_predictor)
    } else {
        Some(Predictor::shipped()?)
    };
    // An engine is one pilot knows or one the predictor measured; a typo is an error.
    let measured = trained.map(Predictor::engines).unwrap_or_default();
    let engines = if a.engine.is_empty() {
        vec![Some(DEFAULT_ENGINE.to_string())]
    } else {
        a.engine
            .iter()
            .map(|e| validate::engine(e, &measured).map(Some))
            .collect::<Result<Vec<_>, _>>()?
    };
    let predictor: &dyn LatencyModel = match trained {
        Some(p) => p,
        None => &physics,
    };
    let opts = RecommendOptions {
        model: model.clone(),
        slos: slos.clone(),
        demand,
        input_tokens: Tokens(input),
        output_tokens: Tokens(output),
        gpus,
        max_gpus: a.max_gpus,
        quantizations,
        engines,
        cloud: a.cloud.clone(),
        spot: a.spot,
        margin,
        explain: a.explain,
    };
    let rec = recommend(&opts, predictor, prices)?;
    if let Some(path) = &a.csv {
        write_frontier_csv(&rec.candidates, &slos, path)?;
        eprintln!(
            "wrote {} candidates to {}",
            rec.candidates.len(),
            path.display()
        );
    }
    if a.json {
        let v: Vec<_> = rec
            .candidates
            .iter()
            .map(|c| candidate_json(c, &slos))
            .collect();
        return emit(&serde_json::to_string_pretty(&json!({
            "model": model.id,
            "demand": demand.to_string(),
            "input_tokens": input,
            "output_tokens": output,
            "slos": slos.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "candidates": v,
        }))?);
    }
    let mut text = format!(
        "{} for {demand}, {input} input / {output} output tokens, SLOs {}{}\n",
        model.id,
        slos.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if a.physics_only {
            " (physics model only)"
        } else {
            ""
        },
    );
    let feasible: Vec<&Candidate> = rec.feasible().take(a.top).collect();
    let demand_level = match demand {
        Demand::Users(u) => u as f64,
        Demand::Rate(r) => r.0,
    };
    let meeting = rec.feasible().count();
    if feasible.is_empty() {
        text.push_str(&nothing_shown(&rec, &opts, meeting));
    } else {
        let header = [
            "#",
            "GPU",
            "n",
            "quant",
            "engine",
            "replicas",
            "capacity/replica",
            "TTFT p50 ms",
            "ITL p50 ms",
            "headroom",
            "USD/h",
            "USD/Mtok out",
            "price from",
        ];
        let rows = feasible.iter().enumerate().map(|(i, c)| {
            let row = c.at_load.as_ref().map(|p| &p.row);
            let f = |col: &str| {
                row.and_then(|r| metric_value(r, col))
                    .map_or("-".into(), |v| format!("{v:.1}"))
            };
            vec![
                (i + 1).to_string(),
                c.gpu.clone(),
                c.gpu_count.to_string(),
                c.quantization.to_string(),
                c.engine.clone().unwrap_or_else(|| "-".into()),
                c.replicas.map_or("-".into(), |r| r.to_string()),
                c.capacity.map_or("-".into(), |x| {
                    // The search stops at the demand: one replica serving all of it may hold more.
                    let capped = (x - demand_level).abs() < 1e-9;
                    format!("{}{x:.1}", if capped { ">=" } else { "" })
                }),
                f("ttft_ms_p50"),
                f("itl_ms_p50"),
                c.headroom
                    .map_or("-".into(), |h| format!("{:.0}%", h * 100.0)),
                c.cost.map_or("-".into(), |x| format!("{:.2}", x.0)),
                c.cost_per_million_output_tokens
                    .map_or("-".into(), |x| format!("{:.2}", x.0)),
                c.price
                    .as_ref()
                    .map_or("-".into(), |p| format!("{} {}", p.cloud, p.instance_type)),
            ]
        });
        text.push_str(&table(&header, rows));
        if let Some(p) = trained {
            text.push('\n');
            text.push_str(&evidence(p, &opts.engines, demand));
        }
        text.push_str("\nCheaper options rejected:\n");
    }
    // Why cheaper (or all, when none is feasible) options were rejected: one line per profile.
    let best_cost = rec
        .best()
        .and_then(|b| b.cost)
        .map_or(f64::INFINITY, |c| c.0);
    let mut rejected: Vec<&Candidate> = rec
        .candidates
        .iter()
        .filter(|c| c.verdict != Verdict::Feasible)
        .filter(|c| {
            c.price
                .as_ref()
                .and_then(|p| p.price(a.spot))
                .is_none_or(|p| p.0 < best_cost)
        })
        .collect();
    rejected.sort_by(|x, y| {
        let p = |c: &Candidate| {
            c.price
                .as_ref()
                .and_then(|p| p.price(a.spot))
                .map_or(f64::INFINITY, |p| p.0)
        };
        p(x).total_cmp(&p(y))
    });
    let shown = if feasible.is_empty() {
        rejected.len()
    } else {
        rejected.len().min(15)
    };
    for c in rejected
        .iter()
        .filter(|c| !matches!(c.verdict, Verdict::NoPrice(_)))
        .take(shown)
    {
        let price = c
            .price
            .as_ref()
            .and_then(|p| p.price(a.spot))
            .map_or("-".into(), |p| format!("{:.2} USD/h", p.0));
        // The engine where several were asked for: otherwise two lines read the same.
        let engine = match (&c.engine, opts.engines.len() > 1) {
            (Some(e), true) => format!(" {e}"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "  {} x {} {}{engine} ({price}): {}\n",
            c.gpu_count,
            c.gpu,
            c.quantization,
            c.verdict.reason()
        ));
    }
    let no_price = rec
        .candidates
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::NoPrice(_)))
        .count();
    if no_price > 0 {
        text.push_str(&format!(
            "  ({no_price} GPU/count combinations have no price on the chosen cloud(s))\n"
        ));
    }
    if a.explain {
        for c in &feasible {
            text.push_str(&format!(
                "\n{} x {} {}: latency vs load per replica\n",
                c.gpu_count, c.gpu, c.quantization
            ));
            let header = [
                "load",
                "TTFT p50 ms",
                "ITL p50 ms",
                "E2E p50 ms",
                "out tok/s",
                "meets SLOs",
            ];
            let rows = c.curve.iter().map(|(level, p)| {
                let f =
                    |col: &str| metric_value(&p.row, col).map_or("-".into(), |v| format!("{v:.1}"));
                vec![
                    format!("{level:.2}"),
                    f("ttft_ms_p50"),
                    f("itl_ms_p50"),
                    f("e2e_ms_p50"),
                    f("output_throughput_tok_s"),
                    if pilot_recommend::search::violation(&slos, p, margin).is_none() {
                        "yes"
                    } else {
                        "no"
                    }
                    .into(),
                ]
            });
            text.push_str(&table(&header, rows));
            text.push('\n');
        }
    }
    emit(text.trim_end())
}

/// Why the table is empty, in words that match what happened: rows hidden by `--top 0`, no
/// price for any candidate (on this cloud, or no spot price with `--spot`), or no candidate
/// meeting the SLOs.
fn nothing_shown(rec: &Recommendation, opts: &RecommendOptions, meeting: usize) -> String {
    if meeting > 0 {
        return format!(
            "\n--top 0 shows no rows; {meeting} configurations meet the SLOs (pass --top N to list the N cheapest).\n\nCheaper options rejected:\n"
        );
    }
    if rec
        .candidates
        .iter()
        .all(|c| matches!(c.verdict, Verdict::NoPrice(_)))
    {
        let mut gpus: Vec<&str> = Vec::new();
        for c in &rec.candidates {
            if !gpus.contains(&c.gpu.as_str()) {
                gpus.push(&c.gpu);
            }
        }
        let kind = if opts.spot { "spot" } else { "on-demand" };
        let cloud = opts
            .cloud
            .as_ref()
            .map_or(String::new(), |c| format!(" on {c}"));
        let fix = if opts.spot {
            "drop --spot, choose other --gpus or --cloud, or pass --prices FILE with spot prices"
        } else {
            "choose other --gpus or --cloud, or pass --prices FILE"
        };
        return format!(
            "\nNo {kind} prices{cloud} for these GPUs: {}; nothing could be priced ({fix}).\n",
            gpus.join(", ")
        );
    }
    "\nNo configuration meets the SLOs. Why each was rejected:\n".to_string()
}

fn candidate_json(c: &Candidate, slos: &[Slo]) -> serde_json::Value {
    let row = c.at_load.as_ref().map(|p| &p.row);
    let mut metrics = serde_json::Map::new();
    for col in slos.iter().map(|s| s.column()).chain(
        [
            "ttft_ms_p50",
            "itl_ms_p50",
            "e2e_ms_p50",
            "output_throughput_tok_s",
        ]
        .map(String::from),
    ) {
        metrics.insert(col.clone(), json!(row.and_then(|r| metric_value(r, &col))));
    }
    json!({
        "gpu": c.gpu,
        "gpu_count": c.gpu_count,
        "quantization": c.quantization.name(),
        "engine": c.engine,
        "feasible": c.verdict == Verdict::Feasible,
        "rejection_reason": c.verdict.reason(),
        "replicas": c.replicas,
        "capacity_per_replica": c.capacity,
        "cost_usd_per_hour": c.cost.map(|x| x.0),
        "price_usd_per_hour": c.price.as_ref().and_then(|p| p.on_demand.or(p.spot)).map(|x| x.0),
        "cloud": c.price.as_ref().map(|p| p.cloud.clone()),
        "instance_type": c.price.as_ref().map(|p| p.instance_type.clone()),
        "usd_per_million_output_tokens": c.cost_per_million_output_tokens.map(|x| x.0),
        "headroom": c.headroom,
        "out_of_domain": c.at_load.as_ref().map(|p| p.out_of_domain),
        "predicted_at_load": metrics,
    })
}

fn write_frontier_csv(cands: &[Candidate], slos: &[Slo], path: &PathBuf) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    let metric_cols: Vec<String> = {
        let mut v: Vec<String> = slos.iter().map(|s| s.column()).collect();
        for c in [
            "ttft_ms_p50",
            "itl_ms_p50",
            "e2e_ms_p50",
            "output_throughput_tok_s",
        ] {
            if !v.iter().any(|x| x == c) {
                v.push(c.into());
            }
        }
        v
    };
    let mut header: Vec<String> = [
        "gpu",
        "gpu_count",
        "quantization",
        "engine",
        "feasible",
        "replicas",
        "capacity_per_replica",
        "cost_usd_per_hour",
        "cloud",
        "instance_type",
        "usd_per_million_output_tokens",
        "headroom",
        "out_of_domain",
        "rejection_reason",
    ]
    .map(String::from)
    .to_vec();
    header.extend(metric_cols.iter().cloned());
    w.write_record(&header)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for c in cands {
        let row = c.at_load.as_ref().map(|p| &p.row);
        let mut rec = vec![
            c.gpu.clone(),
            c.gpu_count.to_string(),
            c.quantization.name().to_string(),
            c.engine.clone().unwrap_or_default(),
            (c.verdict == Verdict::Feasible).to_string(),
            c.replicas.map_or(String::new(), |r| r.to_string()),
            opt(c.capacity),
            opt(c.cost.map(|x| x.0)),
            c.price.as_ref().map_or(String::new(), |p| p.cloud.clone()),
            c.price
                .as_ref()
                .map_or(String::new(), |p| p.instance_type.clone()),
            opt(c.cost_per_million_output_tokens.map(|x| x.0)),
            opt(c.headroom),
            c.at_load
                .as_ref()
                .map_or(String::new(), |p| p.out_of_domain.to_string()),
            c.verdict.reason(),
        ];
        rec.extend(
            metric_cols
                .iter()
                .map(|col| opt(row.and_then(|r| metric_value(r, col)))),
        );
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// The engine `pilot recommend` plans for when `--engine` is not given: vLLM, the most used
/// OpenAI-compatible server, whose physics constants the shipped predictor calibrates on
/// LLM-Inference-Bench's vLLM runs.
const DEFAULT_ENGINE: &str = "vllm";

/// What the predictions under the table rest on, per engine: measurements of that engine in
/// this load mode (physics + trained corrections), or only the physics model (calibrated on
/// the engine's other measurements, or its published defaults).
fn evidence(p: &Predictor, engines: &[Option<String>], demand: Demand) -> String {
    let mode = match demand {
        Demand::Users(u) => pilot_predict::Load::Users(u),
        Demand::Rate(r) => pilot_predict::Load::Rate(r),
    }
    .mode()
    .name();
    let mut out = String::new();
    for e in engines {
        let name = e.as_deref().unwrap_or("an unnamed engine");
        let line = if p.measured(e.as_deref(), mode) {
            format!(
                "{name}: physics model corrected by measurements of {name} under {mode}-loop load"
            )
        } else if e.as_deref().is_some_and(|x| p.calibrated_for(x)) {
            format!(
                "{name}: no {mode}-loop measurements of {name} in the predictor's data; physics model \
                 with {name}'s constants calibrated on its other runs (interval: that model's error there)"
            )
        } else {
            format!(
                "{name}: not in the predictor's data; physics model with published constants \
                 (interval: its error on the training data)"
            )
        };
        out.push_str(&format!("evidence: {line}\n"));
    }
    out
}

/// `--margin`: `upper`, `none`, or a fraction added to the point prediction (`0.1`).
fn parse_margin(m: &str) -> anyhow::Result<Margin> {
    Ok(match m {
        "upper" => Margin::Upper,
        "none" => Margin::None,
        f => match f.parse::<f64>() {
            Ok(k) if k.is_finite() && k > -1.0 => Margin::Factor(k),
            _ => anyhow::bail!("--margin '{f}': use upper, none, or a fraction like 0.2"),
        },
    })
}

#[derive(Args)]
pub struct EvalRecommendArgs {
    /// LLM-Pilot's dataset in pilot's schema (`pilot dataset import llm-pilot ...`).
    #[arg(long)]
    data: PathBuf,
    /// `none`: LLM-Pilot's exact protocol (point predictions); `upper`: the SLOs must hold at
    /// the upper end of the predictor's interval, as `pilot recommend` does by default; a
    /// fraction (`0.1`): at the point prediction plus that fraction; `nested`: a fraction
    /// chosen per held-out LLM by the same benchmark on the other LLMs (never on it).
    #[arg(long, default_value = "none")]
    margin: String,
    /// Also rerun the benchmark with this many training seeds (42, 43, ...) and print the
    /// median and range of each score: one seed's score is one draw.
    #[arg(long, default_value_t = 1)]
    seeds: u32,
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

/// LLM-Pilot's published recommendation scores, transcribed from
/// `../shared/data/llm-pilot/published/recommendation_scores.csv`.
const PUBLISHED: [(&str, f64, f64, f64); 4] = [
    ("LLM-Pilot", 80.0, 19.859954617845506, 0.800699614549604),
    ("Static policy", 50.0, 6.772875816993467, 0.6509041127146198),
    ("PARIS", 80.0, 49.93055555555556, 0.6159103043246129),
    ("Selecta", 70.0, 57.06349206349206, 0.5322557976106816),
];

pub fn eval(a: EvalRecommendArgs) -> anyhow::Result<()> {
    let rows = pilot_core::schema::read_measurements(&a.data)?;
    let opts = EvalOptions {
        margin: if a.margin == "nested" {
            Margin::Nested
        } else {
            parse_margin(&a.margin)?
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
    let mut score_rows = vec![
        vec![
            format!("pilot (margin {})", a.margin),
            format!("{:.1}", report.scores.success_rate),
            format!("{:.1}", report.scores.overspend),
            format!("{:.3}", report.scores.so_score),
        ],
        vec![
            format!("pilot (margin {}, continuous capacity)", a.margin),
            format!("{:.1}", report.scores_continuous.success_rate),
            format!("{:.1}", report.scores_continuous.overspend),
            format!("{:.3}", report.scores_continuous.so_score),
        ],
    ];
    if a.seeds > 1 {
        // The first seed's run is the report above; only the others are run again.
        let base = opts.train.seed;
        let more: Vec<u64> = (1..u64::from(a.seeds)).map(|k| base + k).collect();
        let mut runs = vec![(report.scores, report.scores_continuous)];
        runs.extend(evaluate_seeds(
            &rows,
            &opts,
            PriceCatalog::builtin(),
            &more,
        )?);
        let last = base + u64::from(a.seeds) - 1;
        for (label, continuous) in [("", false), (", continuous capacity", true)] {
            let s: Vec<Scores> = runs
                .iter()
                .map(|r| if continuous { r.1 } else { r.0 })
                .collect();
            score_rows.push(vec![
                format!(
                    "pilot (margin {}{label}), seeds {base}-{last}: median [range]",
                    a.margin
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
    emit(&text)
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
        assert!(
            parse_rate("10/s").is_ok() && parse_rate("-1").is_err() && parse_rate("x").is_err()
        );
    }
}

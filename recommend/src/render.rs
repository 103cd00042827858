//! A recommendation as people and programs read it: the ranked table with the evidence it
//! rests on and the cheaper options rejected, the `--json` frontier, and the frontier CSV
//! for capacity planning.
//!
//! The table shows the cheapest feasible candidates; the rejected list shows only the
//! options that would have been cheaper than the best one (all of them when none is
//! feasible), because a costlier option's rejection does not change the answer.

use crate::search::{Candidate, RecommendOptions, Recommendation, Verdict, violation};
use pilot_core::layout::{COLUMNS, LayoutCells};
use pilot_core::load::Load;
use pilot_core::schema::metric_value;
use pilot_core::slo::Slo;
use pilot_core::table::table;
use pilot_predict::Predictor;
use serde_json::json;
use std::path::Path;

/// The metric columns every candidate reports besides those its SLOs name.
const REPORTED: [&str; 4] = [
    "ttft_ms_p50",
    "itl_ms_p50",
    "e2e_ms_p50",
    "output_throughput_tok_s",
];

/// How rejected options are listed under the table when some candidate is feasible.
const MAX_REJECTED_SHOWN: usize = 15;

/// What the text report needs besides the recommendation itself.
pub struct ReportOptions<'a> {
    /// The trained predictor behind the answer, for its evidence lines (`None`: physics only).
    pub trained: Option<&'a Predictor>,
    /// How many feasible candidates to list.
    pub top: usize,
}

/// The text `pilot recommend` prints: the question, the cheapest feasible candidates, the
/// evidence per engine, the cheaper options rejected and why, and (with `--explain`) each
/// shown candidate's latency-vs-load curve.
pub fn report(rec: &Recommendation, opts: &RecommendOptions, r: &ReportOptions) -> String {
    let mut text = format!(
        "{} for {}, {} input / {} output tokens, SLOs {}{}\n",
        opts.model.id,
        opts.demand.demand_text(),
        opts.input_tokens.0,
        opts.output_tokens.0,
        slo_list(&opts.slos),
        if r.trained.is_none() {
            " (physics model only)"
        } else {
            ""
        },
    );
    let feasible: Vec<&Candidate> = rec.feasible().take(r.top).collect();
    let meeting = rec.feasible().count();
    if feasible.is_empty() {
        text.push_str(&nothing_shown(rec, opts, meeting));
    } else {
        text.push_str(&ranking(&feasible, opts.demand));
        if let Some(p) = r.trained {
            text.push('\n');
            text.push_str(&evidence(p, &opts.engines, opts.demand));
        }
        text.push_str("\nCheaper options rejected:\n");
    }
    text.push_str(&rejected(rec, opts, !feasible.is_empty()));
    if opts.explain {
        for c in &feasible {
            text.push_str(&curve(c, opts));
        }
    }
    text.trim_end().to_string()
}

fn slo_list(slos: &[Slo]) -> String {
    slos.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table of feasible candidates, cheapest first.
fn ranking(feasible: &[&Candidate], demand: Load) -> String {
    let (header, rows) = ranking_cells(feasible, demand);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header, rows)
}

/// The ranking's header and cells, for the text table and the HTML report alike.
pub fn ranking_cells(feasible: &[&Candidate], demand: Load) -> (Vec<String>, Vec<Vec<String>>) {
    let demand_level = demand.level();
    let header = [
        "#",
        "GPU",
        "GPUs",
        "layout",
        "quant",
        "KV",
        "engine",
        "replicas",
        "capacity/replica",
        "TTFT p50 ms",
        "ITL p50 ms",
        "headroom",
        "USD/h",
        "USD/Mtok out",
        "price from",
    ]
    .map(String::from)
    .to_vec();
    let rows = feasible
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let row = c.at_load.as_ref().map(|p| &p.row);
            let f = |col: &str| {
                row.and_then(|r| metric_value(r, col))
                    .map_or("-".into(), |v| format!("{v:.1}"))
            };
            vec![
                (i + 1).to_string(),
                c.profile.gpu.name.clone(),
                c.profile.serving.gpus().to_string(),
                c.profile.serving.to_string(),
                c.profile.quantization.to_string(),
                c.kv_cache.name().to_string(),
                c.profile.engine.clone().unwrap_or_else(|| "-".into()),
                c.replicas.map_or("-".into(), |r| r.to_string()),
                c.capacity.map_or("-".into(), |x| {
                    let x = x.level();
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
        })
        .collect();
    (header, rows)
}

/// Why cheaper (or all, when none is feasible) options were rejected: one line per profile,
/// cheapest first, and a count of the combinations that had no price.
fn rejected(rec: &Recommendation, opts: &RecommendOptions, any_shown: bool) -> String {
    let (lines, footnotes) = rejected_lines(rec, opts, any_shown);
    let mut text = String::new();
    for r in &lines {
        text.push_str(&format!("  {} ({}): {}\n", r.profile, r.price, r.reason));
    }
    for f in footnotes {
        text.push_str(&format!("  {f}\n"));
    }
    text
}

/// One line of the rejected list: a profile, its price per hour, and why it was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    pub profile: String,
    pub price: String,
    pub reason: String,
}

/// The rejected list's lines, and what it left out in words (more rejections, combinations
/// without a price or not searched), for the text report and the HTML report alike.
pub fn rejected_lines(
    rec: &Recommendation,
    opts: &RecommendOptions,
    any_shown: bool,
) -> (Vec<RejectedLine>, Vec<String>) {
    let price_of = |c: &Candidate| c.replica_price.map(|p| p.0).filter(|p| p.is_finite());
    let best_cost = rec
        .best()
        .and_then(|b| b.cost)
        .map_or(f64::INFINITY, |c| c.0);
    let mut rejected: Vec<&Candidate> = rec
        .candidates
        .iter()
        .filter(|c| !matches!(c.verdict, Verdict::Feasible | Verdict::NoPrice(_)))
        .filter(|c| price_of(c).is_none_or(|p| p < best_cost))
        .collect();
    rejected.sort_by(|x, y| {
        let p = |c: &Candidate| price_of(c).unwrap_or(f64::INFINITY);
        p(x).total_cmp(&p(y))
    });
    // One line per GPU type and reason: the cheapest layout that failed for it, and how many
    // other layouts failed the same way (a model too big for one GPU fails every
    // disaggregated split of that GPU too, and twenty such lines say one thing).
    // (first candidate, its reason, the reason's cause, how many more)
    let mut groups: Vec<(&Candidate, String, String, usize)> = Vec::new();
    for c in rejected {
        let reason = c.verdict.reason();
        let core = reason_core(&reason);
        match groups
            .iter_mut()
            .find(|(g, _, k, _)| g.profile.gpu.name == c.profile.gpu.name && *k == core)
        {
            Some((_, _, _, n)) => *n += 1,
            None => groups.push((c, reason, core, 0)),
        }
    }
    let shown = if any_shown {
        groups.len().min(MAX_REJECTED_SHOWN)
    } else {
        groups.len()
    };
    let lines = groups
        .iter()
        .take(shown)
        .map(|(c, reason, _, more)| {
            let more = match more {
                0 => String::new(),
                n => format!(" [and {n} other layout(s) of this GPU, for the same reason]"),
            };
            RejectedLine {
                profile: profile_text(c, opts.engines.len() > 1),
                price: price_of(c).map_or("-".into(), |p| format!("{p:.2} USD/h")),
                reason: format!("{reason}{more}"),
            }
        })
        .collect();
    let mut footnotes = Vec::new();
    if groups.len() > shown {
        footnotes.push(format!(
            "... {} more (--csv FILE lists every candidate)",
            groups.len() - shown
        ));
    }
    let no_price = rec
        .candidates
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::NoPrice(_)))
        .count();
    if no_price > 0 {
        footnotes.push(format!(
            "({no_price} GPU/count combinations have no price on the chosen cloud(s))"
        ));
    }
    if rec.skipped > 0 {
        footnotes.push(format!(
            "({} combinations the engines cannot run were not searched)",
            rec.skipped
        ));
    }
    (lines, footnotes)
}

/// A rejection reason without the worker role and the numbers that differ between layouts
/// of one GPU (how many GPUs the weights were spread over), so that one cause groups.
fn reason_core(reason: &str) -> String {
    let r = reason
        .replace("decode workers: ", "")
        .replace("prefill workers: ", "");
    // Memory reasons differ only in the per-GPU numbers; the first clause names the cause.
    match r.split_once(" needs ") {
        Some((head, _)) if r.starts_with("memory:") => head.to_string(),
        _ => r,
    }
}

/// A candidate's profile in words: `8 x H200-SXM-141GB tp8 ep8 fp8 kv fp8 sglang`; the
/// engine only where several were asked for (otherwise two lines would read the same), the
/// KV dtype only where it was chosen rather than the engine's default.
pub fn profile_text(c: &Candidate, with_engine: bool) -> String {
    let mut t = format!(
        "{} x {} {} {}",
        c.profile.serving.gpus(),
        c.profile.gpu.name,
        c.profile.serving,
        c.profile.quantization
    );
    if c.profile.kv_cache.is_some() {
        t.push_str(&format!(" kv {}", c.kv_cache.name()));
    }
    if let (Some(e), true) = (&c.profile.engine, with_engine) {
        t.push_str(&format!(" {e}"));
    }
    t
}

/// One candidate's predicted latency against the load on one replica (`--explain`).
fn curve(c: &Candidate, opts: &RecommendOptions) -> String {
    let mut text = format!(
        "\n{}: latency vs load per replica\n",
        profile_text(c, opts.engines.len() > 1)
    );
    let header = [
        "load",
        "TTFT p50 ms",
        "ITL p50 ms",
        "E2E p50 ms",
        "out tok/s",
        "meets SLOs",
    ];
    let rows = c.curve.iter().map(|(level, p)| {
        let f = |col: &str| metric_value(&p.row, col).map_or("-".into(), |v| format!("{v:.1}"));
        vec![
            format!("{level:.2}"),
            f("ttft_ms_p50"),
            f("itl_ms_p50"),
            f("e2e_ms_p50"),
            f("output_throughput_tok_s"),
            if violation(&opts.slos, p, opts.margin).is_none() {
                "yes"
            } else {
                "no"
            }
            .into(),
        ]
    });
    text.push_str(&table(&header, rows));
    text.push('\n');
    text
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
            if !gpus.contains(&c.profile.gpu.name.as_str()) {
                gpus.push(&c.profile.gpu.name);
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
    let mut text = "\nNo configuration meets the SLOs.".to_string();
    text.push_str(&binding(rec));
    text.push_str(" Why each was rejected:\n");
    text
}

/// Which SLO binds when nothing meets them, and what the closest candidate reaches: the
/// SLO most candidates miss by the most, and the candidate whose worst miss is smallest.
fn binding(rec: &Recommendation) -> String {
    let misses: Vec<(&Candidate, &crate::search::Shortfall)> = rec
        .candidates
        .iter()
        .filter_map(|c| c.shortfall.as_ref().map(|f| (c, f)))
        .collect();
    let Some((closest, f)) = misses
        .iter()
        .min_by(|a, b| a.1.ratio().total_cmp(&b.1.ratio()))
    else {
        return String::new();
    };
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, f) in &misses {
        match counts.iter_mut().find(|(s, _)| *s == f.slo) {
            Some((_, n)) => *n += 1,
            None => counts.push((&f.slo, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let (slo, n) = counts[0];
    format!(
        " {slo} binds: it is the worst miss of {n} of the {} candidates that fit and miss an SLO \
         even at one user (or the smallest rate). The closest is {}: {:.1} ms as checked (the margin included) \
         against {} ({:.0}% over); relax that SLO by that much, or shorten the requests.",
        misses.len(),
        profile_text(closest, true),
        f.predicted,
        f.slo,
        100.0 * (f.ratio() - 1.0)
    )
}

/// What the predictions under the table rest on, per engine: measurements of that engine in
/// this load mode (physics + trained corrections), or only the physics model (calibrated on
/// the engine's other measurements, or its published defaults).
pub fn evidence(p: &Predictor, engines: &[Option<String>], demand: Load) -> String {
    let mode = demand.mode().name();
    let mut out = String::new();
    for e in engines {
        let name = e.as_deref().unwrap_or("an unnamed engine");
        let line = if p.measured(e.as_deref(), mode) {
            let ev = p.evidence_for(e.as_deref(), mode);
            let mut from = ev
                .sources
                .iter()
                .map(|(d, n)| format!("{d}: {n} runs"))
                .collect::<Vec<_>>()
                .join(", ");
            // A dataset that measured only some statistics (AIConfigurator: mean TTFT and
            // TPOT) corrects the rest through them: say which were measured.
            if !ev.measured.is_empty() && ev.measured.len() < p.targets.len() {
                from.push_str(&format!(
                    "; measured {}, the rest follow them",
                    ev.measured.join(", ")
                ));
            }
            if !ev.physics_only.is_empty() {
                from.push_str(&format!(
                    "; {} from the physics alone, which erred less on held-out LLMs",
                    ev.physics_only.join(", ")
                ));
            }
            let from = if from.is_empty() {
                String::new()
            } else {
                format!(" ({from})")
            };
            format!(
                "{name}: physics model corrected by measurements of {name} under {mode}-loop load{from}"
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

/// The whole frontier as JSON (`--json`): the question and every candidate, feasible or not.
pub fn frontier_json(rec: &Recommendation, opts: &RecommendOptions) -> serde_json::Value {
    let pareto = rec.pareto(&opts.slos);
    let v: Vec<_> = rec
        .candidates
        .iter()
        .zip(&pareto)
        .map(|(c, &p)| candidate_json(c, &opts.slos, p))
        .collect();
    json!({
        "model": opts.model.id,
        "demand": opts.demand.demand_text(),
        "input_tokens": opts.input_tokens.0,
        "output_tokens": opts.output_tokens.0,
        "slos": opts.slos.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "candidates": v,
    })
}

fn candidate_json(c: &Candidate, slos: &[Slo], pareto: bool) -> serde_json::Value {
    let row = c.at_load.as_ref().map(|p| &p.row);
    let mut metrics = serde_json::Map::new();
    for col in slos
        .iter()
        .map(|s| s.column())
        .chain(REPORTED.map(String::from))
    {
        metrics.insert(col.clone(), json!(row.and_then(|r| metric_value(r, &col))));
    }
    let cells = LayoutCells::of(c.profile.serving);
    let mut layout = serde_json::Map::new();
    for col in COLUMNS {
        layout.insert(col.into(), json!(cells.get(col)));
    }
    json!({
        "gpu": c.profile.gpu.name,
        "gpu_count": c.profile.serving.gpus(),
        "serving": c.profile.serving.to_string(),
        "layout": layout,
        "quantization": c.profile.quantization.name(),
        "kv_cache_dtype": c.kv_cache.name(),
        "engine": c.profile.engine,
        "batch_limit": c.batch_limit,
        "feasible": c.verdict == Verdict::Feasible,
        "pareto_optimal": pareto,
        "rejection_reason": c.verdict.reason(),
        "replicas": c.replicas,
        "capacity_per_replica": c.capacity.map(Load::level),
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

/// Writes every candidate, feasible or not, as one CSV row (`--csv`): the columns a capacity
/// plan needs, then the SLOs' metric columns and the [`REPORTED`] ones.
pub fn write_frontier_csv(
    rec: &Recommendation,
    slos: &[Slo],
    path: &Path,
) -> Result<(), csv::Error> {
    let cands = &rec.candidates;
    let pareto = rec.pareto(slos);
    let mut w = csv::Writer::from_path(path)?;
    let mut metric_cols: Vec<String> = slos.iter().map(|s| s.column()).collect();
    for c in REPORTED {
        if !metric_cols.iter().any(|x| x == c) {
            metric_cols.push(c.into());
        }
    }
    let mut header: Vec<String> = ["gpu", "gpu_count", "serving"].map(String::from).to_vec();
    header.extend(COLUMNS.map(String::from));
    header.extend(
        [
            "quantization",
            "kv_cache_dtype",
            "engine",
            "batch_limit",
            "feasible",
            "pareto_optimal",
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
        .map(String::from),
    );
    header.extend(metric_cols.iter().cloned());
    w.write_record(&header)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for (c, pareto) in cands.iter().zip(pareto) {
        let row = c.at_load.as_ref().map(|p| &p.row);
        let cells = LayoutCells::of(c.profile.serving);
        let mut rec = vec![
            c.profile.gpu.name.clone(),
            c.profile.serving.gpus().to_string(),
            c.profile.serving.to_string(),
        ];
        rec.extend(COLUMNS.map(|col| cells.get(col).map_or(String::new(), |v| v.to_string())));
        rec.extend([
            c.profile.quantization.name().to_string(),
            c.kv_cache.name().to_string(),
            c.profile.engine.clone().unwrap_or_default(),
            c.batch_limit.map_or(String::new(), |b| b.to_string()),
            (c.verdict == Verdict::Feasible).to_string(),
            pareto.to_string(),
            c.replicas.map_or(String::new(), |r| r.to_string()),
            opt(c.capacity.map(Load::level)),
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
        ]);
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

/// The mixed-fleet section (`--mix`): each GPU type's part, the lengths it serves and its
/// cost, beside the best single type.
pub fn mix(m: Option<&crate::mix::Mix>, demand: Load) -> String {
    let Some(m) = m else {
        return "\n\nMixed fleet: none found (no GPU type serves every length bucket within the SLOs).\n"
            .to_string();
    };
    let mut text = format!(
        "\n\nMixed fleet (--mix), the {} split into {} length bucket(s) by prompt + output tokens:\n",
        demand.demand_text(),
        m.buckets.len()
    );
    let header = [
        "GPU",
        "profile",
        "serves (prompt+output tokens)",
        "share",
        "load",
        "replicas",
        "USD/h",
    ];
    let rows = m.parts.iter().map(|p| {
        let ranges = p
            .buckets
            .iter()
            .map(|&b| {
                let x = &m.buckets[b];
                format!("{}..{}", x.range.0, x.range.1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let share: f64 = p.buckets.iter().map(|&b| m.buckets[b].share).sum();
        vec![
            p.candidate.profile.gpu.name.clone(),
            profile_text(&p.candidate, true),
            ranges,
            format!("{:.0}%", 100.0 * share),
            format!("{:.1}", p.load),
            p.replicas.to_string(),
            format!("{:.2}", p.cost.0),
        ]
    });
    text.push_str(&table(&header, rows));
    let single = m.single.map(|s| s.0);
    text.push_str(&match single {
        Some(s) if m.is_mixed() && m.cost.0 < s - 1e-9 => format!(
            "\nmix: {:.2} USD/h, {:.0}% less than the best single type ({s:.2} USD/h)\n",
            m.cost.0,
            100.0 * (1.0 - m.cost.0 / s)
        ),
        Some(s) => format!(
            "\nno mix is cheaper than the best single type ({s:.2} USD/h; this split costs {:.2})\n",
            m.cost.0
        ),
        None => format!("\nmix: {:.2} USD/h\n", m.cost.0),
    });
    text
}

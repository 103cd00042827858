//! `pilot recommend --report FILE`: the recommendation as one self-contained HTML page.
//!
//! Its figures are the cost-vs-latency frontier, one per SLO: every evaluated candidate that
//! has a cost and a prediction, as a point ($/h against its predicted value of the SLO's
//! statistic at its share of the demand), the Pareto frontier
//! ([`Recommendation::pareto`], the same flags the `--csv` export writes) as a line, the
//! chosen candidate ([`Recommendation::best`]) highlighted, and the SLO's threshold as a
//! dashed line. Below: the answer table and the rejected alternatives with their reasons,
//! the same rows as the text report ([`render::ranking_cells`], [`render::rejected_lines`]).
//! Plots and page come from `pilot_report`, shared with `pilot report`.

use crate::render::{self, RejectedLine};
use crate::search::{Candidate, RecommendOptions, Recommendation, Verdict};
use pilot_core::metrics::Metric;
use pilot_core::slo::Slo;
use pilot_report::html::Page;
use pilot_report::plot::{self, Chart, Marker, PlotError, Rgb, Series, Threshold};

/// Colours of the frontier's roles: rejected candidates grey, feasible ones, the Pareto line,
/// the chosen answer, the SLO threshold.
const REJECTED: Rgb = (170, 170, 170);
const SLO_LINE: Rgb = (60, 60, 60);
/// The feasible candidates', the frontier's and the chosen one's colours, from the shared
/// palette so that a screenshot check knows them.
pub const FEASIBLE: usize = 0;
pub const FRONTIER: usize = 3;
pub const CHOSEN: usize = 1;

/// (predicted value of `slo`, cost in $/h) of a candidate that has both.
fn point(c: &Candidate, slo: &Slo) -> Option<(f64, f64)> {
    Some((slo.value_in(&c.at_load.as_ref()?.row.metrics)?, c.cost?.0))
}

/// The frontier chart of one SLO.
fn frontier_chart(rec: &Recommendation, slos: &[Slo], slo: &Slo, pareto: &[bool]) -> Chart {
    let pick = |keep: &dyn Fn(&Candidate, bool) -> bool| -> Vec<(f64, f64)> {
        rec.candidates
            .iter()
            .zip(pareto)
            .filter(|(c, p)| keep(c, **p))
            .filter_map(|(c, _)| point(c, slo))
            .collect()
    };
    let feasible = |c: &Candidate| c.verdict == Verdict::Feasible;
    let mut frontier = pick(&|_, p| p);
    frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chosen: Vec<(f64, f64)> = rec.best().and_then(|b| point(b, slo)).into_iter().collect();
    let mut series = vec![
        Series::points(
            Some("rejected".into()),
            REJECTED,
            pick(&|c, _| !feasible(c)),
            Marker::Cross,
            3,
        ),
        Series::points(
            Some("feasible".into()),
            plot::color(FEASIBLE),
            pick(&|c, _| feasible(c)),
            Marker::Circle,
            4,
        ),
        Series::line(
            Some("Pareto frontier".into()),
            plot::color(FRONTIER),
            frontier,
            Marker::None,
        ),
    ];
    series.push(Series::points(
        Some("chosen".into()),
        plot::color(CHOSEN),
        chosen,
        Marker::Circle,
        8,
    ));
    let other = if slos.len() > 1 {
        " (the frontier weighs every SLO's metric, so it can bend here)"
    } else {
        ""
    };
    Chart {
        title: format!("Cost vs predicted {}{other}", slo.column()),
        x_label: format!(
            "predicted {} ({})",
            slo.column(),
            if slo.metric == Metric::Nttft {
                "ms/token"
            } else {
                "ms"
            }
        ),
        y_label: "cost (USD/h, all replicas)".into(),
        series,
        x_lines: vec![Threshold {
            label: format!("SLO {slo}"),
            value: slo.threshold.0,
            color: SLO_LINE,
        }],
        ..Chart::default()
    }
}

/// The page of `--report`: the question, the frontier per SLO, the answer, the rejections.
pub fn recommendation_html(
    rec: &Recommendation,
    opts: &RecommendOptions,
    top: usize,
) -> Result<String, PlotError> {
    let mut page = Page::new(&format!(
        "pilot recommend: {} for {}",
        opts.model.id,
        opts.demand.demand_text()
    ));
    let slos: Vec<String> = opts.slos.iter().map(ToString::to_string).collect();
    page.definitions(&[
        ("model".into(), opts.model.id.clone()),
        ("demand".into(), opts.demand.demand_text()),
        ("input tokens".into(), opts.input_tokens.0.to_string()),
        ("output tokens".into(), opts.output_tokens.0.to_string()),
        ("SLOs".into(), slos.join(", ")),
        (
            "candidates evaluated".into(),
            rec.candidates.len().to_string(),
        ),
    ]);
    match rec.best() {
        Some(b) => page.paragraph(&format!(
            "Chosen: {}, {} replica(s), {} (the cheapest that meets every SLO).",
            render::profile_text(b, true),
            b.replicas.map_or("-".into(), |r| r.to_string()),
            b.cost.map_or("-".into(), |c| format!("{:.2} USD/h", c.0)),
        )),
        None => page.warning("No candidate meets the SLOs: nothing is chosen."),
    };

    page.heading(2, "Cost vs latency frontier");
    let unplotted = rec
        .candidates
        .iter()
        .filter(|c| opts.slos.iter().all(|s| point(c, s).is_none()))
        .count();
    page.note(&format!(
        "Each point is a candidate at its share of the demand; the line joins the Pareto frontier \
         (no other feasible candidate is cheaper and faster); the large point is the chosen one; the \
         dashed line is the SLO. {unplotted} candidate(s) have no cost or no prediction (no price, \
         does not fit) and are listed below instead."
    ));
    let pareto = rec.pareto(&opts.slos);
    for slo in &opts.slos {
        page.figure(&plot::svg(&frontier_chart(rec, &opts.slos, slo, &pareto))?);
    }

    page.heading(2, "Answer");
    let feasible: Vec<&Candidate> = rec.feasible().take(top).collect();
    if feasible.is_empty() {
        page.paragraph("No feasible candidate to list.");
    } else {
        let (header, rows) = render::ranking_cells(&feasible, opts.demand);
        page.table(&header, &rows);
    }

    page.heading(2, "Rejected alternatives");
    let (lines, footnotes) = render::rejected_lines(rec, opts, !feasible.is_empty());
    if lines.is_empty() {
        page.paragraph("No cheaper alternative was rejected.");
    } else {
        let rows: Vec<Vec<String>> = lines
            .into_iter()
            .map(
                |RejectedLine {
                     profile,
                     price,
                     reason,
                 }| vec![profile, price, reason],
            )
            .collect();
        page.table(
            &["profile", "price", "why rejected"].map(String::from),
            &rows,
        );
    }
    for f in footnotes {
        page.note(&f);
    }
    Ok(page.to_html())
}

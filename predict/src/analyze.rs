//! LLM-Pilot's factor analysis (Łazuka et al., §4): how strongly each factor (users or batch
//! size, input length, output length, model size, GPU count) drives each metric.
//!
//! - **Pearson correlation** of each factor with each metric over the usable rows.
//! - **Permutation importance** of a trained predictor: shuffle one factor across the rows
//!   (in the scenario, so the physics estimate moves with it), predict again, and report how
//!   much the MAPE rises. A factor the predictor ignores scores ~0.
//!
//! Output: a table, CSV, and one SVG bar chart per metric in a plot directory.

use crate::predictor::Predictor;
use crate::rows::exclusion_reason;
use crate::scenario::{Load, Scenario};
use crate::train::{TrainOptions, train};
use crate::{LatencyModel, PredictError};
use pilot_core::schema::{Measurement, metric_value};
use pilot_core::table::table;
use pilot_core::units::RequestsPerSec;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The factors analysed, in table order.
pub const FACTORS: [&str; 5] = [
    "load",
    "input_tokens",
    "output_tokens",
    "model_params_b",
    "gpu_count",
];

/// Analysis settings.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    /// The predictor whose importance is measured; `None` = train one on the data.
    pub predictor: Option<Predictor>,
    pub train: TrainOptions,
    /// Write SVG charts here.
    pub plot_dir: Option<PathBuf>,
    /// Metrics to analyse; `None` = p50 latencies and throughputs the data has.
    pub metrics: Option<Vec<String>>,
}

/// One (factor, metric) result.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorScore {
    pub factor: String,
    pub metric: String,
    pub n: usize,
    pub pearson: f64,
    /// MAPE increase (percentage points) when the factor is permuted; NaN if not measured.
    pub importance: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeReport {
    pub scores: Vec<FactorScore>,
    /// SVG files written.
    pub charts: Vec<PathBuf>,
}

fn factor_value(s: &Scenario, f: &str) -> f64 {
    match f {
        "load" => s.load.level(),
        "input_tokens" => s.input_tokens.0 as f64,
        "output_tokens" => s.output_tokens.0 as f64,
        "model_params_b" => s.model.params_total().billions(),
        _ => s.gpu_count as f64,
    }
}

fn set_factor(s: &mut Scenario, f: &str, from: &Scenario) {
    match f {
        "load" => {
            s.load = match (s.load, from.load.level()) {
                (Load::Users(_), v) => Load::Users(v as u32),
                (Load::Batch(_), v) => Load::Batch(v as u32),
                (Load::Rate(_), v) => Load::Rate(RequestsPerSec(v)),
            }
        }
        "input_tokens" => s.input_tokens = from.input_tokens,
        "output_tokens" => s.output_tokens = from.output_tokens,
        "model_params_b" => s.model = from.model.clone(),
        _ => s.gpu_count = from.gpu_count,
    }
}

/// Runs the analysis over `rows`.
pub fn analyze(rows: &[Measurement], opts: &AnalyzeOptions) -> Result<AnalyzeReport, PredictError> {
    let predictor = match &opts.predictor {
        Some(p) => p.clone(),
        None => train(
            rows,
            &TrainOptions {
                conformal_folds: 0,
                ..opts.train.clone()
            },
        )?,
    };
    let mut resolver = crate::scenario::Resolver::default();
    let usable: Vec<(&Measurement, Scenario)> = rows
        .iter()
        .filter(|r| exclusion_reason(r).is_none())
        .filter_map(|r| Scenario::from_row(r, &mut resolver).ok().map(|s| (r, s)))
        .collect();
    let metrics: Vec<String> = opts.metrics.clone().unwrap_or_else(|| {
        [
            "ttft_ms_p50",
            "nttft_ms_per_token_p50",
            "itl_ms_p50",
            "e2e_ms_p50",
            "output_throughput_tok_s",
            "total_throughput_tok_s",
        ]
        .iter()
        .filter(|m| {
            usable
                .iter()
                .filter(|(r, _)| metric_value(r, m).is_some())
                .count()
                >= 10
        })
        .map(|m| m.to_string())
        .collect()
    });
    let mut scores = Vec::new();
    for m in &metrics {
        let pts: Vec<&(&Measurement, Scenario)> = usable
            .iter()
            .filter(|(r, _)| metric_value(r, m).is_some_and(|v| v > 0.0))
            .collect();
        let actual: Vec<f64> = pts
            .iter()
            .map(|(r, _)| metric_value(r, m).unwrap())
            .collect();
        let mape = |scen: &[Scenario]| -> f64 {
            let mut sum = 0.0;
            let mut n = 0usize;
            for (s, a) in scen.iter().zip(&actual) {
                if let Ok(p) = predictor.predict(s)
                    && let Some(v) = metric_value(&p.row, m)
                {
                    sum += (v - a).abs() / a * 100.0;
                    n += 1;
                }
            }
            if n == 0 { f64::NAN } else { sum / n as f64 }
        };
        let base: Vec<Scenario> = pts.iter().map(|(_, s)| s.clone()).collect();
        let base_mape = mape(&base);
        for (fi, f) in FACTORS.iter().enumerate() {
            let x: Vec<f64> = base.iter().map(|s| factor_value(s, f)).collect();
            let r = crate::eval::pearson(&x, &actual);
            let mut perm: Vec<usize> = (0..base.len()).collect();
            pilot_core::rng::shuffle(&mut perm, predictor.options.seed.wrapping_add(fi as u64));
            let shuffled: Vec<Scenario> = base
                .iter()
                .zip(&perm)
                .map(|(s, &j)| {
                    let mut t = s.clone();
                    set_factor(&mut t, f, &base[j]);
                    t
                })
                .collect();
            let imp = mape(&shuffled) - base_mape;
            scores.push(FactorScore {
                factor: f.to_string(),
                metric: m.clone(),
                n: base.len(),
                pearson: r,
                importance: imp,
            });
        }
    }
    let mut charts = Vec::new();
    if let Some(dir) = &opts.plot_dir {
        std::fs::create_dir_all(dir).map_err(|e| PredictError::File {
            path: dir.display().to_string(),
            what: "cannot create the directory".into(),
            source: e.into(),
        })?;
        for m in &metrics {
            let rows: Vec<&FactorScore> = scores.iter().filter(|s| &s.metric == m).collect();
            let path = dir.join(format!("factors_{m}.svg"));
            std::fs::write(&path, svg_chart(m, &rows)).map_err(|e| PredictError::File {
                path: path.display().to_string(),
                what: "cannot write it".into(),
                source: e.into(),
            })?;
            charts.push(path);
        }
    }
    Ok(AnalyzeReport { scores, charts })
}

/// Two bar panels (Pearson r in [-1, 1]; importance in MAPE points) for one metric.
fn svg_chart(metric: &str, rows: &[&FactorScore]) -> String {
    let (w, row_h, left) = (720.0, 28.0, 150.0);
    let h = 70.0 + row_h * rows.len() as f64;
    let panel = 250.0;
    let max_imp = rows
        .iter()
        .map(|r| r.importance.abs())
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14">{metric}: Pearson r (left) and permutation importance, MAPE points (right)</text>"#
    );
    let (x0, x1) = (left + panel / 2.0, left + panel + 60.0);
    for (i, r) in rows.iter().enumerate() {
        let y = 45.0 + row_h * i as f64;
        let _ = writeln!(s, r#"<text x="10" y="{}">{}</text>"#, y + 14.0, r.factor);
        let p = if r.pearson.is_finite() {
            r.pearson
        } else {
            0.0
        };
        let bw = p.abs() * panel / 2.0;
        let bx = if p >= 0.0 { x0 } else { x0 - bw };
        let color = if p >= 0.0 { "#3b75af" } else { "#c0504d" };
        let _ = writeln!(
            s,
            r#"<rect x="{bx:.1}" y="{y}" width="{bw:.1}" height="18" fill="{color}"/><text x="{:.1}" y="{}">{:.2}</text>"#,
            x0 + panel / 2.0 + 4.0,
            y + 14.0,
            r.pearson
        );
        let imp = if r.importance.is_finite() {
            r.importance.max(0.0)
        } else {
            0.0
        };
        let iw = imp / max_imp * (panel - 40.0);
        let _ = writeln!(
            s,
            r##"<rect x="{x1}" y="{y}" width="{iw:.1}" height="18" fill="#6a9f58"/><text x="{:.1}" y="{}">{:.1}</text>"##,
            x1 + iw + 4.0,
            y + 14.0,
            r.importance
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{x0}" y1="40" x2="{x0}" y2="{h}" stroke="black"/></svg>"#
    );
    s
}

impl AnalyzeReport {
    pub fn table(&self) -> String {
        let rows = self.scores.iter().map(|x| {
            vec![
                x.metric.clone(),
                x.factor.clone(),
                x.n.to_string(),
                format!("{:.3}", x.pearson),
                format!("{:.1}", x.importance),
            ]
        });
        let header = ["metric", "factor", "n", "pearson", "importance_pp"];
        table(&header, rows) + "\n"
    }
    pub fn to_csv(&self) -> String {
        let mut s = String::from("metric,factor,n,pearson,permutation_importance_mape_pp\n");
        for x in &self.scores {
            let _ = writeln!(
                s,
                "{},{},{},{:.4},{:.3}",
                x.metric, x.factor, x.n, x.pearson, x.importance
            );
        }
        s
    }
}

//! Clap-free entry points for the `pilot` binary: one function per command, taking paths and
//! options and returning the text to print. The binary only parses flags and calls these.
//!
//! - `pilot train --data <file>... --out <predictor>` → [`train_files`]
//! - `pilot predict --predictor <file> --scenarios <csv> --out <csv>` → [`predict_file`]
//! - `pilot predict --model M --gpu G --gpu-count N --users U ...` → [`predict_one`]
//! - `pilot eval predict --data <file>... --group-by model|gpu|engine` → [`eval_files`]
//! - `pilot analyze --data <file>... [--plot <dir>] [--csv]` → [`analyze_files`]

use crate::scenario::{Load, Resolver, Scenario, ScenarioFile, read_scenarios, write_predictions};
use crate::train::{Predictor, TrainOptions, train};
use crate::{
    AnalyzeOptions, EvalOptions, GroupBy, LatencyModel, PredictError, analyze, leave_one_group_out,
};
use pilot_core::quant::Quantization;
use pilot_core::schema::{Measurement, metric_value, read_measurements};
use pilot_core::units::Tokens;
use pilot_core::validate;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use pilot_core::command::Output;

/// Reads and concatenates measurement files (CSV or Parquet in pilot's schema; make them
/// with `pilot dataset import`).
pub fn read_datasets(paths: &[PathBuf]) -> Result<Vec<Measurement>, PredictError> {
    let mut rows = Vec::new();
    for p in paths {
        rows.extend(read_measurements(p)?);
    }
    Ok(rows)
}

/// `pilot train`: trains on the datasets and writes the predictor; returns a summary, and as
/// notes the predictor's notes: what it was trained on and every row or target it dropped.
pub fn train_files(
    data: &[PathBuf],
    out: &Path,
    opts: &TrainOptions,
) -> Result<Output, PredictError> {
    let rows = read_datasets(data)?;
    let t0 = std::time::Instant::now();
    let p = train(&rows, opts)?;
    let secs = t0.elapsed().as_secs_f64();
    p.save(out)?;
    let mut s = format!(
        "trained {} targets in {secs:.1} s -> {}\n",
        p.targets.len(),
        out.display()
    );
    for t in &p.targets {
        let _ = writeln!(
            s,
            "  {:<26} {:>5} rows, {:>4} trees, 90% interval x{:.2} .. x{:.2}",
            t.target,
            t.rows,
            t.ensemble.trees.len(),
            t.lower.exp(),
            t.upper.exp()
        );
        // Per engine/mode where the rows hold several (with one, it is the interval above).
        for (pair, (lo, hi)) in t
            .by_engine_mode
            .iter()
            .filter(|_| t.by_engine_mode.len() > 1)
        {
            let alone = if t.physics_only.contains(pair) {
                "  (physics alone: it erred less on held-out LLMs)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "    {pair:<36} x{:.2} .. x{:.2}{alone}",
                lo.exp(),
                hi.exp()
            );
        }
    }
    Ok(Output {
        text: s,
        notes: p.notes.clone(),
        ..Output::default()
    })
}

fn load_predictor(
    path: Option<&Path>,
) -> Result<std::borrow::Cow<'static, Predictor>, PredictError> {
    Ok(match path {
        Some(p) => std::borrow::Cow::Owned(Predictor::load(p)?),
        None => std::borrow::Cow::Borrowed(Predictor::shipped()?),
    })
}

/// `pilot predict --scenarios`: predicts every scenario of a scenario CSV or a measurement
/// file (in its row order; see [`crate::scenario`]) and writes the predictions (CSV or
/// Parquet, by the extension of `out`).
pub fn predict_file(
    predictor: Option<&Path>,
    scenarios: &Path,
    out: &Path,
) -> Result<Output, PredictError> {
    // A wrong extension is found before the predictions are paid for.
    pilot_core::schema::check_table_path(out)?;
    let p = load_predictor(predictor)?;
    let ScenarioFile {
        scenarios: sc,
        notes,
    } = read_scenarios(scenarios, &p.engines())?;
    let preds = p
        .predict_many(&sc)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    write_predictions(&preds, &p.target_names(), out)?;
    let ood = preds.iter().filter(|x| x.out_of_domain).count();
    let nofit = preds
        .iter()
        .filter(|x| matches!(x.fit, crate::Fit::DoesNotFit { .. }))
        .count();
    Ok(Output {
        text: format!(
            "{} scenarios predicted ({nofit} do not fit, {ood} out of domain) -> {}\n",
            preds.len(),
            out.display()
        ),
        notes,
        ..Output::default()
    })
}

/// One scenario given on the command line, as typed: [`predict_one`] checks every value.
#[derive(Debug, Clone)]
pub struct OneShot {
    pub model: String,
    pub gpu: String,
    /// All GPUs; `None`: what the layout uses (one GPU without a layout).
    pub gpu_count: Option<u32>,
    /// The parallel layout as the schema's columns ([`pilot_core::layout::COLUMNS`]): empty
    /// is one tensor-parallel group over `gpu_count`.
    pub layout: pilot_core::layout::LayoutCells,
    pub load: Load,
    pub input_tokens: Tokens,
    pub output_tokens: Tokens,
    /// A workload's length distribution, (input, output, probability) per request shape,
    /// instead of `input_tokens` / `output_tokens`: predicted over its buckets
    /// ([`crate::OverLengths`]).
    pub lengths: Option<Vec<(u64, u64, f64)>>,
    pub engine: Option<String>,
    pub quantization: Option<Quantization>,
}

/// The flag each load came from, for errors.
fn load_flag(load: Load) -> &'static str {
    match load {
        Load::Users(_) => "--users",
        Load::Rate(_) => "--rate",
        Load::Batch(_) => "--batch-size",
    }
}

/// `pilot predict --model ... --gpu ...`: one scenario, as a readable block.
pub fn predict_one(predictor: Option<&Path>, one: &OneShot) -> Result<Output, PredictError> {
    let p = load_predictor(predictor)?;
    let count = |flag: &str, n: u64| validate::count(flag, n as f64);
    let gpu_count = match one.gpu_count {
        Some(n) => Some(count("--gpu-count", n.into())?),
        None => None,
    };
    let mut cells = pilot_core::layout::LayoutCells::default();
    for c in pilot_core::layout::COLUMNS {
        if let Some(v) = one.layout.get(c) {
            let flag = format!("--{}", c.replace('_', "-"));
            cells.set(c, Some(count(&flag, v.into())?));
        }
    }
    // Without --gpu-count the layout says how many GPUs (one without a layout).
    let serving = cells
        .serving(gpu_count)
        .map_err(|e| PredictError::Scenario(e.to_string()))?;
    let load = one.load.validate(load_flag(one.load))?;
    let buckets = one
        .lengths
        .as_deref()
        .map(crate::over_lengths::buckets)
        .unwrap_or_default();
    // The workload's mean lengths are the server's state; one shape is just its lengths.
    let (input, output) = match buckets.as_slice() {
        [] => (one.input_tokens.0, one.output_tokens.0),
        b => {
            let (i, o) = crate::over_lengths::mean_lengths(b);
            (i.0, o.0)
        }
    };
    let input = count("--input-tokens", input)?;
    let output = count("--output-tokens", output)?;
    let engine = match &one.engine {
        Some(e) => Some(validate::engine(e, &p.engines())?),
        None => None,
    };
    let mut r = Resolver::default();
    let mut s = Scenario::new(
        r.model(&one.model)?,
        r.gpu(&one.gpu)?,
        serving.gpus(),
        load,
        Tokens(input.into()),
        Tokens(output.into()),
    );
    s.serving = serving;
    s.engine = engine;
    if let Some(q) = one.quantization {
        s.quantization = q;
    }
    s.check_deployable()?;
    let mut notes = Vec::new();
    if s.engine.is_none() {
        notes.push(crate::scenario::unnamed_engine_note("no --engine given"));
    }
    let pr = if buckets.len() > 1 {
        notes.push(format!(
            "over the workload's {} length buckets ({}): TTFT and end-to-end percentiles mix them; ITL, TPOT and throughput are at the mean lengths",
            buckets.len(),
            crate::over_lengths::describe(&buckets)
        ));
        crate::OverLengths::new(p.as_ref(), buckets)?.predict(&s)?
    } else {
        p.predict(&s)?
    };
    // The layout, where it is more than one tensor-parallel group over all the GPUs.
    let layout = match pilot_core::layout::Serving::tensor_parallel(s.gpu_count) {
        Ok(plain) if plain == s.serving => String::new(),
        _ => format!(", {}", s.serving),
    };
    let mut out = format!(
        "{} on {} x {} ({}{}{layout}), {}, {} in / {} out\n",
        s.model.id,
        s.gpu_count,
        s.gpu.name,
        s.quantization,
        s.engine
            .as_deref()
            .map_or(String::new(), |e| format!(", {e}")),
        s.load,
        s.input_tokens.0,
        s.output_tokens.0
    );
    match &pr.fit {
        crate::Fit::DoesNotFit { reason } => {
            let _ = writeln!(out, "does not fit: {reason}");
            return Ok(Output {
                text: out,
                notes,
                ..Output::default()
            });
        }
        crate::Fit::Fits {
            kv_cache_tokens,
            max_batch,
        } => {
            let _ = writeln!(
                out,
                "fits: KV cache {} tokens, batch budget {max_batch}",
                kv_cache_tokens.0
            );
        }
    }
    let lo = Measurement {
        metrics: pr.lower.clone(),
        ..pr.row.clone()
    };
    let hi = Measurement {
        metrics: pr.upper.clone(),
        ..pr.row.clone()
    };
    for t in p.target_names() {
        if let Some(v) = metric_value(&pr.row, &t) {
            let _ = writeln!(
                out,
                "  {:<26} {:>12.2}   [{:.2} .. {:.2}]",
                t,
                v,
                metric_value(&lo, &t).unwrap_or(f64::NAN),
                metric_value(&hi, &t).unwrap_or(f64::NAN)
            );
        }
    }
    if pr.out_of_domain {
        let _ = writeln!(
            out,
            "out of domain: this scenario lies outside what the predictor was trained on; the interval may be too narrow"
        );
    }
    Ok(Output {
        text: out,
        notes,
        ..Output::default()
    })
}

/// `pilot eval predict`: leave-one-group-out; returns the table (or CSV).
pub fn eval_files(
    data: &[PathBuf],
    group_by: GroupBy,
    published: Option<PathBuf>,
    csv: bool,
    rows_out: Option<&Path>,
    train: &TrainOptions,
) -> Result<String, PredictError> {
    let rows = read_datasets(data)?;
    let r = leave_one_group_out(
        &rows,
        &EvalOptions {
            group_by,
            published,
            train: train.clone(),
            ..EvalOptions::default()
        },
    )?;
    if let Some(path) = rows_out {
        std::fs::write(path, r.rows_csv()).map_err(|e| PredictError::File {
            path: path.display().to_string(),
            what: "cannot write it".into(),
            source: e.into(),
        })?;
    }
    Ok(if csv { r.to_csv() } else { r.table() })
}

/// `pilot analyze`: correlations and permutation importance; returns the table (or CSV).
pub fn analyze_files(
    data: &[PathBuf],
    predictor: Option<&Path>,
    plot: Option<PathBuf>,
    csv: bool,
) -> Result<String, PredictError> {
    let rows = read_datasets(data)?;
    let predictor = match predictor {
        Some(p) => Some(Predictor::load(p)?),
        None => None,
    };
    let r = analyze(
        &rows,
        &AnalyzeOptions {
            predictor,
            plot_dir: plot,
            ..AnalyzeOptions::default()
        },
    )?;
    let mut s = if csv { r.to_csv() } else { r.table() };
    for c in &r.charts {
        let _ = writeln!(s, "chart: {}", c.display());
    }
    Ok(s)
}

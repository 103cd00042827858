//! Leave-one-group-out evaluation: hold out every rows of one LLM (or one GPU type), train on
//! the rest, predict the held-out rows; repeat for every group and score all predictions.
//!
//! Methods compared on the same points:
//! - `pilot`: physics + LightGBM correction (the predictor pilot ships);
//! - `physics`: the physics model alone (no training);
//! - `lightgbm-raw`: LightGBM on raw features without physics (what LLM-Pilot's XGBoost is);
//! - on LLM-Pilot's data grouped by model, the published leave-one-LLM-out predictions of
//!   LLM-Pilot and its six baselines (`published/predictions_<method>.csv`), matched to rows by
//!   LLM, GPU profile and users. They cover median nTTFT and median ITL.
//!
//! Scores per target: MAPE, median APE, R² (of the values) and Spearman's rank correlation.

use crate::PredictError;
use crate::physics::PhysicsModel;
use crate::rows::{Prepared, prepare};
use crate::train::{TrainOptions, all_targets, main_physics, physics_for, train_prepared};
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::metrics::percentile;
use pilot_core::schema::{Measurement, metric_value};
use pilot_core::table::table;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a held-out group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One LLM at a time.
    Model,
    /// One GPU type at a time (all counts of it).
    Gpu,
    /// One serving engine at a time: how well the others' measurements carry over to it.
    Engine,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<GroupBy, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "model" | "llm" => Ok(GroupBy::Model),
            "gpu" => Ok(GroupBy::Gpu),
            "engine" => Ok(GroupBy::Engine),
            o => Err(format!("unknown group '{o}': use model, gpu or engine")),
        }
    }
}

impl GroupBy {
    fn key<'a>(&self, r: &'a Measurement) -> &'a str {
        match self {
            GroupBy::Model => &r.model,
            GroupBy::Gpu => &r.gpu,
            GroupBy::Engine => &r.engine,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Gpu => "gpu",
            GroupBy::Engine => "engine",
        }
    }
}

/// A way of slicing the held-out predictions after the fact, so the weak spots show: the
/// median error per GPU count, per engine and per GPU type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facet {
    /// GPUs per deployment (the tensor-parallel size for plain tensor-parallel rows).
    GpuCount,
    Engine,
    Gpu,
    /// Aggregated or disaggregated prefill and decode.
    Serving,
}

impl Facet {
    pub const ALL: [Facet; 4] = [Facet::GpuCount, Facet::Engine, Facet::Gpu, Facet::Serving];

    fn key(self, r: &Measurement) -> String {
        match self {
            Facet::GpuCount => r.gpu_count.to_string(),
            Facet::Engine => r.engine.clone(),
            Facet::Gpu => r.gpu.clone(),
            Facet::Serving => if r.serving.is_disaggregated() {
                "disaggregated"
            } else {
                "aggregated"
            }
            .to_string(),
        }
    }

    /// The table title and the key column's header.
    fn title(self) -> (&'static str, &'static str) {
        match self {
            Facet::GpuCount => ("median APE by GPUs per deployment", "GPUs"),
            Facet::Engine => ("median APE by engine", "engine"),
            Facet::Gpu => ("median APE by GPU type", "GPU"),
            Facet::Serving => ("median APE by serving mode", "serving"),
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub group_by: GroupBy,
    /// Training settings for each fold (conformal folds are turned off: intervals are not scored).
    pub train: TrainOptions,
    /// Targets to score; `None` = every target the data has.
    pub targets: Option<Vec<String>>,
    /// LLM-Pilot's `published/` folder, to score its predictions on the same points.
    pub published: Option<PathBuf>,
    /// Also run the LightGBM-without-physics ablation.
    pub ablation: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            group_by: GroupBy::Model,
            train: TrainOptions::default(),
            targets: None,
            published: None,
            ablation: true,
        }
    }
}

/// Scores of one method on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub target: String,
    pub method: String,
    pub n: usize,
    pub mape: f64,
    pub median_ape: f64,
    pub r2: f64,
    pub spearman: f64,
}

/// Median APE of `pilot` and `physics` over the held-out rows of one slice ([`Facet`] and
/// its value: a GPU count, an engine, a GPU type), per target.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceScore {
    pub facet: Facet,
    /// The slice's value (`4`, `vllm`, `H200-SXM-141GB`).
    pub key: String,
    pub target: String,
    pub n: usize,
    pub pilot_median_ape: f64,
    pub physics_median_ape: f64,
}

/// The result of [`leave_one_group_out`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub group_by: GroupBy,
    pub groups: usize,
    pub scores: Vec<Score>,
    /// Per target, by GPU count, by engine, by GPU type and by serving mode; a facet with one
    /// value in the data (one engine, aggregated rows only) is left out beyond GPU count.
    pub slices: Vec<SliceScore>,
    /// Every held-out prediction, for inspecting where a method misses.
    pub rows: Vec<RowPrediction>,
    pub notes: Vec<String>,
}

/// One held-out prediction of one target by one method.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPrediction {
    pub model: String,
    pub gpu: String,
    pub gpu_count: u32,
    pub engine: String,
    /// The load level (users, rate or batch size) as the dataset states it.
    pub load: f64,
    pub target: String,
    pub method: String,
    pub actual: f64,
    pub predicted: f64,
}

/// Mean, median APE (percent), R², Spearman of predictions against actual values.
pub fn score(actual: &[f64], pred: &[f64]) -> (f64, f64, f64, f64) {
    let n = actual.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    }
    let mut ape: Vec<f64> = actual
        .iter()
        .zip(pred)
        .map(|(a, p)| (p - a).abs() / a.abs() * 100.0)
        .collect();
    let mape = ape.iter().sum::<f64>() / n as f64;
    let mdape = percentile(&mut ape, 50.0).unwrap_or(f64::NAN);
    let mean = actual.iter().sum::<f64>() / n as f64;
    let ss_tot: f64 = actual.iter().map(|a| (a - mean).powi(2)).sum();
    let ss_res: f64 = actual.iter().zip(pred).map(|(a, p)| (a - p).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    };
    (mape, mdape, r2, spearman(actual, pred))
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation (NaN when a side is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Spearman's rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// One held-out prediction: the row index and per-method values of a target.
type Preds = HashMap<(usize, String, &'static str), f64>;

/// Runs leave-one-group-out over `rows` (see the module doc).
pub fn leave_one_group_out(
    rows: &[Measurement],
    opts: &EvalOptions,
) -> Result<EvalReport, PredictError> {
    let mut topts = opts.train.clone();
    // Each fold trains as `pilot train` does, with its inner folds by LLM: they choose per
    // engine/mode between the corrections and the physics alone (intervals are not scored).
    topts.use_physics = true;
    let physics = PhysicsModel::new(topts.physics.clone());
    let (with, mut notes) = prepare(rows, &physics, true);
    let (without, _) = prepare(rows, &physics, false);
    let targets: Vec<String> = opts
        .targets
        .clone()
        .unwrap_or_else(all_targets)
        .into_iter()
        .filter(|t| {
            with.iter()
                .filter(|p| metric_value(&p.row, t).is_some())
                .count()
                >= topts.min_rows
        })
        .collect();
    topts.targets = Some(targets.clone());
    let groups: BTreeSet<String> = with
        .iter()
        .map(|p| opts.group_by.key(&p.row).to_string())
        .collect();
    if groups.len() < 2 {
        return Err(PredictError::Train(format!(
            "leave-one-{}-out needs 2 or more groups; the data has {}",
            opts.group_by.name(),
            groups.len()
        )));
    }
    let mut preds: Preds = HashMap::new();
    // Held-out rows of a fold: indices into `with` (the same rows in the same order in every
    // preparation: calibration moves no memory constant, so no row changes fit).
    let held = |g: &str| -> Vec<usize> {
        (0..with.len())
            .filter(|&i| opts.group_by.key(&with[i].row) == g)
            .collect()
    };
    for g in &groups {
        let train_rows: Vec<Measurement> = with
            .iter()
            .filter(|p| opts.group_by.key(&p.row) != g)
            .map(|p| p.row.clone())
            .collect();
        // Physics calibrated on this fold's training rows only.
        let calibrated_g = physics_for(&train_rows, &topts);
        let physics_g = main_physics(&calibrated_g, &topts);
        // Without calibration the fold's physics is the default one `with` was prepared with.
        let prepared_g;
        let with_g: &[Prepared] = if topts.calibrate {
            prepared_g = prepare(rows, &physics_g, true).0;
            &prepared_g
        } else {
            &with
        };
        if with_g.len() != with.len() {
            return Err(PredictError::Train(format!(
                "calibrated physics changed which rows fit ({} vs {})",
                with_g.len(),
                with.len()
            )));
        }
        for i in held(g) {
            insert_physics(&mut preds, i, &with_g[i], &targets, "physics");
        }
        let run = |prep: &[Prepared],
                   physics: &PhysicsModel,
                   use_physics: bool,
                   method: &'static str,
                   preds: &mut Preds|
         -> Result<(), PredictError> {
            let owned: Vec<Prepared> = prep
                .iter()
                .filter(|p| opts.group_by.key(&p.row) != g)
                .map(|p| Prepared {
                    row: p.row.clone(),
                    scenario: p.scenario.clone(),
                    estimate: p.estimate,
                    physics: p.physics.clone(),
                    features: p.features.clone(),
                })
                .collect();
            let mut o = topts.clone();
            o.use_physics = use_physics;
            let mut n = Vec::new();
            let Ok(pred) = train_prepared(&owned, &o, physics, &mut n) else {
                return Ok(());
            };
            for i in held(g) {
                let p = &prep[i];
                let out = pred.finish(
                    &p.scenario,
                    &p.estimate,
                    crate::scenario::Fit::DoesNotFit {
                        reason: String::new(),
                    },
                    &p.features,
                );
                for t in &targets {
                    if let Some(v) = metric_value(&out.row, t) {
                        preds.insert((i, t.clone(), method), v);
                    }
                }
            }
            Ok(())
        };
        run(with_g, &calibrated_g, true, "pilot", &mut preds)?;
        if opts.ablation {
            run(&without, &physics, false, "lightgbm-raw", &mut preds)?;
        }
    }
    if topts.calibrate {
        for (i, p) in with.iter().enumerate() {
            insert_physics(&mut preds, i, p, &targets, "physics-defaults");
        }
    }
    // Published predictions (LLM-Pilot data, leave-one-LLM-out).
    let mut published: BTreeMap<String, HashMap<usize, (f64, f64)>> = BTreeMap::new();
    if let (Some(dir), GroupBy::Model) = (&opts.published, opts.group_by) {
        match read_published(dir, &with) {
            Ok(p) => published = p,
            Err(e) => notes.push(format!("published predictions not used: {e}")),
        }
    }
    let mut methods: Vec<String> = vec!["pilot".into(), "physics".into()];
    if topts.calibrate {
        methods.push("physics-defaults".into());
    }
    if opts.ablation {
        methods.push("lightgbm-raw".into());
    }
    let mut scores = Vec::new();
    for t in &targets {
        let pub_col = match t.as_str() {
            "nttft_ms_per_token_p50" => Some(0),
            "itl_ms_p50" => Some(1),
            _ => None,
        };
        // Points: rows with an actual value; restricted to published points when those exist.
        let common: Vec<usize> = (0..with.len())
            .filter(|&i| metric_value(&with[i].row, t).is_some_and(|v| v > 0.0))
            .filter(|&i| {
                pub_col.is_none()
                    || published.is_empty()
                    || published.values().all(|m| m.contains_key(&i))
            })
            .collect();
        let mut push = |method: &str, pred: &dyn Fn(usize) -> Option<f64>| {
            let (mut a, mut p) = (Vec::new(), Vec::new());
            for &i in &common {
                if let Some(v) = pred(i) {
                    a.push(metric_value(&with[i].row, t).unwrap());
                    p.push(v);
                }
            }
            let (mape, mdape, r2, sp) = score(&a, &p);
            scores.push(Score {
                target: t.clone(),
                method: method.to_string(),
                n: a.len(),
                mape,
                median_ape: mdape,
                r2,
                spearman: sp,
            });
        };
        for m in &methods {
            let key = m.as_str();
            push(key, &|i| {
                preds.get(&(i, t.clone(), static_method(key))).copied()
            });
        }
        if let Some(c) = pub_col {
            for (name, m) in &published {
                push(&format!("{name} (published)"), &|i| {
                    m.get(&i).map(|v| if c == 0 { v.0 } else { v.1 })
                });
            }
        }
    }
    let slices = slice_scores(&with, &targets, &preds);
    notes.insert(
        0,
        format!(
            "{} usable rows, {} {} groups",
            with.len(),
            groups.len(),
            opts.group_by.name()
        ),
    );
    let mut rows_out = Vec::new();
    for ((i, t, method), v) in &preds {
        let r = &with[*i].row;
        if let Some(a) = metric_value(r, t) {
            rows_out.push(RowPrediction {
                model: r.model.clone(),
                gpu: r.gpu.clone(),
                gpu_count: r.gpu_count,
                engine: r.engine.clone(),
                load: with[*i].scenario.load.level(),
                target: t.clone(),
                method: method.to_string(),
                actual: a,
                predicted: *v,
            });
        }
    }
    rows_out.sort_by(|a, b| {
        (&a.target, &a.method, &a.model, &a.gpu, a.gpu_count)
            .cmp(&(&b.target, &b.method, &b.model, &b.gpu, b.gpu_count))
            .then(a.load.total_cmp(&b.load))
    });
    Ok(EvalReport {
        group_by: opts.group_by,
        groups: groups.len(),
        scores,
        slices,
        rows: rows_out,
        notes,
    })
}

/// Median APE of `pilot` and `physics` per [`Facet`] value, per target (see [`SliceScore`]).
fn slice_scores(with: &[Prepared], targets: &[String], preds: &Preds) -> Vec<SliceScore> {
    let mut out = Vec::new();
    for facet in Facet::ALL {
        let keys: BTreeSet<String> = with.iter().map(|p| facet.key(&p.row)).collect();
        if facet != Facet::GpuCount && keys.len() < 2 {
            continue;
        }
        // GPU counts sort as numbers, names as text.
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort_by_key(|k| (k.parse::<u32>().unwrap_or(u32::MAX), k.clone()));
        for t in targets {
            for key in &keys {
                let (mut ap, mut aph) = (Vec::new(), Vec::new());
                for (i, p) in with.iter().enumerate() {
                    if facet.key(&p.row) != *key {
                        continue;
                    }
                    let Some(a) = metric_value(&p.row, t).filter(|v| *v > 0.0) else {
                        continue;
                    };
                    if let (Some(x), Some(y)) = (
                        preds.get(&(i, t.clone(), "pilot")),
                        preds.get(&(i, t.clone(), "physics")),
                    ) {
                        ap.push((x - a).abs() / a * 100.0);
                        aph.push((y - a).abs() / a * 100.0);
                    }
                }
                if ap.is_empty() {
                    continue;
                }
                let med = |v: &mut Vec<f64>| percentile(v, 50.0).unwrap_or(f64::NAN);
                out.push(SliceScore {
                    facet,
                    key: key.clone(),
                    target: t.clone(),
                    n: ap.len(),
                    pilot_median_ape: med(&mut ap),
                    physics_median_ape: med(&mut aph),
                });
            }
        }
    }
    out
}

/// Records the physics estimate of row `i` (prepared with some physics model) as `method`.
fn insert_physics(
    preds: &mut Preds,
    i: usize,
    p: &Prepared,
    targets: &[String],
    method: &'static str,
) {
    let row = Measurement {
        metrics: p.physics.clone(),
        ..p.row.clone()
    };
    for t in targets {
        if let Some(v) = metric_value(&row, t) {
            preds.insert((i, t.clone(), method), v);
        }
    }
}

fn static_method(m: &str) -> &'static str {
    match m {
        "pilot" => "pilot",
        "physics" => "physics",
        "physics-defaults" => "physics-defaults",
        _ => "lightgbm-raw",
    }
}

/// Published predictions: method → row index → (nTTFT, ITL).
type Published = BTreeMap<String, HashMap<usize, (f64, f64)>>;

/// Reads `predictions_<method>.csv` files and maps them to prepared rows.
fn read_published(dir: &Path, rows: &[Prepared]) -> Result<Published, String> {
    let models = ModelCatalog::builtin();
    let gpus = GpuCatalog::builtin();
    let mut gpu_names: HashMap<String, String> = HashMap::new();
    for (name, mem, bw, sxm) in pilot_import::llm_pilot::DOCUMENTED_GPUS {
        let c = gpus
            .resolve_documented(
                name,
                pilot_core::units::Gigabytes(mem),
                pilot_core::units::GigabytesPerSec(bw),
                Some(sxm),
            )
            .map_err(|e| e.to_string())?;
        gpu_names.insert(name.to_string(), c.spec.name.clone());
    }
    let index: HashMap<(String, String, u32, u32), usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            Some((
                (
                    p.row.model.clone(),
                    p.row.gpu.clone(),
                    p.row.gpu_count,
                    p.row.load.users()?,
                ),
                i,
            ))
        })
        .collect();
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files {
        let Some(method) = f
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("predictions_"))
            .and_then(|n| n.strip_suffix(".csv"))
        else {
            continue;
        };
        let mut rdr = csv::Reader::from_path(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let h = rdr.headers().map_err(|e| e.to_string())?.clone();
        let col = |n: &str| {
            h.iter()
                .position(|x| x == n)
                .ok_or_else(|| format!("{}: no column {n}", f.display()))
        };
        let (cm, cg, cu, cn, ci) = (
            col("model")?,
            col("gpu")?,
            col("num_users")?,
            col("prediction_median_nttft")?,
            col("prediction_median_itl")?,
        );
        let mut map = HashMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| e.to_string())?;
            let Ok(m) = models.resolve(&rec[cm]) else {
                continue;
            };
            let Some((count, g)) = rec[cg].split_once(" x ") else {
                continue;
            };
            let (Ok(count), Some(g)) = (count.trim().parse::<u32>(), gpu_names.get(g.trim()))
            else {
                continue;
            };
            let Ok(users) = rec[cu].parse::<u32>() else {
                continue;
            };
            let (Ok(n), Ok(it)) = (rec[cn].parse::<f64>(), rec[ci].parse::<f64>()) else {
                continue;
            };
            if let Some(&i) = index.get(&(m.id.clone(), g.clone(), count, users)) {
                map.insert(i, (n, it));
            }
        }
        out.insert(method.to_string(), map);
    }
    Ok(out)
}

impl EvalReport {
    /// A printable table: one line per target and method.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "leave-one-{}-out over {} groups",
            self.group_by.name(),
            self.groups
        );
        let scores = self.scores.iter().map(|x| {
            vec![
                x.target.clone(),
                x.method.clone(),
                x.n.to_string(),
                format!("{:.1}", x.mape),
                format!("{:.1}", x.median_ape),
                format!("{:.3}", x.r2),
                format!("{:.3}", x.spearman),
            ]
        });
        let header = ["target", "method", "n", "MAPE%", "MdAPE%", "R2", "Spearman"];
        let _ = writeln!(s, "{}", table(&header, scores));
        for facet in Facet::ALL {
            let slices: Vec<&SliceScore> =
                self.slices.iter().filter(|x| x.facet == facet).collect();
            if slices.is_empty() {
                continue;
            }
            let (title, key) = facet.title();
            let _ = writeln!(s, "\n{title}");
            let body = slices.iter().map(|x| {
                vec![
                    x.target.clone(),
                    x.key.clone(),
                    x.n.to_string(),
                    format!("{:.1}", x.pilot_median_ape),
                    format!("{:.1}", x.physics_median_ape),
                ]
            });
            let header = ["target", key, "n", "pilot MdAPE%", "physics MdAPE%"];
            let _ = writeln!(s, "{}", table(&header, body));
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// The scores as CSV text.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("group_by,target,method,n,mape_pct,median_ape_pct,r2,spearman\n");
        for x in &self.scores {
            let _ = writeln!(
                s,
                "{},{},{},{},{:.3},{:.3},{:.4},{:.4}",
                self.group_by.name(),
                x.target,
                x.method,
                x.n,
                x.mape,
                x.median_ape,
                x.r2,
                x.spearman
            );
        }
        s
    }

    /// The score of one target and method.
    /// The held-out predictions as CSV (one row per point, target and method).
    pub fn rows_csv(&self) -> String {
        let mut s = String::from(
            "model,gpu,gpu_count,engine,load,target,method,actual,predicted,ape_pct\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{:.3}\n",
                r.model,
                r.gpu,
                r.gpu_count,
                r.engine,
                r.load,
                r.target,
                r.method,
                r.actual,
                r.predicted,
                (r.predicted - r.actual).abs() / r.actual.abs().max(1e-12) * 100.0
            ));
        }
        s
    }

    pub fn get(&self, target: &str, method: &str) -> Option<&Score> {
        self.scores
            .iter()
            .find(|s| s.target == target && s.method == method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_right_on_small_cases() {
        let (mape, md, r2, sp) = score(&[1.0, 2.0, 4.0], &[1.0, 2.0, 4.0]);
        assert_eq!((mape, md, r2, sp), (0.0, 0.0, 1.0, 1.0));
        let (mape, md, _, sp) = score(&[1.0, 2.0, 4.0], &[2.0, 3.0, 5.0]);
        assert!((mape - (100.0 + 50.0 + 25.0) / 3.0).abs() < 1e-9);
        assert_eq!(md, 50.0);
        assert!((sp - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn leave_one_llm_out_on_llm_pilot_reports_numbers() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/predictor/llm-pilot.csv");
        let rows =
            pilot_core::schema::read_measurements(&p).expect("datasets/predictor/llm-pilot.csv");
        let published = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/llm-pilot/published");
        let opts = EvalOptions {
            group_by: GroupBy::Model,
            train: TrainOptions {
                num_iterations: 60,
                ..TrainOptions::default()
            },
            targets: Some(vec![
                "nttft_ms_per_token_p50".into(),
                "itl_ms_p50".into(),
                "output_throughput_tok_s".into(),
            ]),
            published: published.exists().then_some(published),
            ablation: true,
        };
        let r = leave_one_group_out(&rows, &opts).unwrap();
        println!("{}", r.table());
        assert_eq!(r.groups, 10);
        for m in ["pilot", "physics", "lightgbm-raw"] {
            for t in [
                "nttft_ms_per_token_p50",
                "itl_ms_p50",
                "output_throughput_tok_s",
            ] {
                let s = r
                    .get(t, m)
                    .unwrap_or_else(|| panic!("no score for {t} / {m}"));
                assert!(
                    s.n > 400 && s.mape.is_finite() && s.median_ape.is_finite(),
                    "{s:?}"
                );
            }
        }
        if opts.published.is_some() {
            let s = r
                .get("itl_ms_p50", "LLM-Pilot (published)")
                .expect("published LLM-Pilot scores");
            assert!(s.n > 400, "{s:?}");
            // pilot beats LLM-Pilot's own predictor on its data, held-out LLMs both.
            for t in ["nttft_ms_per_token_p50", "itl_ms_p50"] {
                let (ours, theirs) = (
                    r.get(t, "pilot").unwrap(),
                    r.get(t, "LLM-Pilot (published)").unwrap(),
                );
                assert!(ours.mape < theirs.mape, "{t}: {ours:?} vs {theirs:?}");
            }
        }
        // The slices partition the held-out points: by GPU count and by GPU type they add up
        // to the same total; one engine in the data means no engine table.
        let total = |f: Facet| -> usize {
            r.slices
                .iter()
                .filter(|x| x.facet == f && x.target == "itl_ms_p50")
                .map(|x| x.n)
                .sum()
        };
        assert!(total(Facet::GpuCount) >= r.get("itl_ms_p50", "pilot").unwrap().n);
        assert_eq!(total(Facet::GpuCount), total(Facet::Gpu));
        assert_eq!(total(Facet::Engine), 0);
        assert_eq!(total(Facet::Serving), 0);
        assert!(r.table().contains("median APE by GPU type"));
        // Every held-out prediction is exported, one CSV line each, with its error.
        let itl: Vec<&RowPrediction> = r
            .rows
            .iter()
            .filter(|x| x.target == "itl_ms_p50" && x.method == "pilot")
            .collect();
        assert!(itl.len() >= r.get("itl_ms_p50", "pilot").unwrap().n);
        assert!(
            itl.iter()
                .all(|x| x.actual > 0.0 && x.predicted.is_finite())
        );
        let csv = r.rows_csv();
        assert_eq!(csv.lines().count(), r.rows.len() + 1);
        assert!(
            csv.starts_with(
                "model,gpu,gpu_count,engine,load,target,method,actual,predicted,ape_pct"
            )
        );
    }
}

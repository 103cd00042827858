//! Training the predictor. The trained model, its file and prediction with it are
//! [`crate::predictor`]; the rows it learns from are [`crate::rows`].
//!
//! One LightGBM regressor per target column. With physics (the default) the label is
//! `ln(measured / physics)`, the correction factor's logarithm, and the features include the
//! physics estimate's parts; without physics (the ablation `eval` reports) the label is
//! `ln(measured)` on architecture, hardware, engine and workload features only.
//!
//! - **Monotone constraints**: latency corrections are non-decreasing in the load (users,
//!   rate or batch size). The physics estimate is itself monotone in load (tested in
//!   `physics`), so the product is too: more users never predict a lower latency.
//! - **Intervals**: cross-conformal over LLMs. The rows are split into `conformal_folds`
//!   groups *by model*; each fold's rows are predicted by a model trained without that LLM, and
//!   the (1 − coverage)/2 and (1 + coverage)/2 quantiles of those log-residuals become the
//!   interval around every prediction. They describe the error on an LLM never measured, which
//!   is the question pilot answers. An engine/mode pair with enough held-out residuals of its
//!   own gets its own quantiles (Mondrian conformal): datasets differ in how well they are
//!   predicted, and one interval for all would carry the worst one's spread to every engine.
//! - **Out of domain**: a scenario whose engine or mode was never seen, or whose load, lengths,
//!   model size, GPU count, bandwidth or peak lie outside the training range (by more than
//!   10%), is flagged.
//! - **Determinism**: LightGBM runs with `deterministic`, `force_row_wise`, a fixed thread count
//!   and the seed; folds come from the seed too. Same data + same seed = same file.
//!
//! Training rows: a row is skipped (and counted in [`Predictor::notes`]) when it is flagged
//! `implausible_latency` (faster than the memory-bandwidth floor) or
//! `throughput_latency_mismatch` (llama.cpp rows of LLM-Inference-Bench: their latency falls as
//! the batch grows and their throughput is one sequence's, so they are not batch latencies);
//! when most of its requests failed (out-of-memory runs on small GPUs: the surviving requests
//! are not the operating point); or when its model or GPU is not in the catalogs.

use crate::PredictError;
use crate::features;
use crate::gbdt::Ensemble;
use crate::physics::{PhysicsModel, PhysicsParams};
use crate::predictor::{
    DOMAIN_FEATURES, Domain, FORMAT_VERSION, TargetModel, pair_key, scenario_pair,
};
use crate::rows::{Prepared, prepare};
use crate::scenario::Scenario;
use pilot_core::metrics::percentile;
use pilot_core::schema::{Measurement, metric_value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

// The paths from before the predictor and the row preparation had modules of their own.
pub use crate::predictor::Predictor;
pub use crate::rows::exclusion_reason;

/// Every target pilot can learn, in output order. A dataset trains those it has values for.
pub fn all_targets() -> Vec<String> {
    // Every metric column of the schema (each latency metric at every statistic, means and
    // TPOT included: AIConfigurator reports mean TTFT and TPOT only), except the request rate,
    // which follows from output throughput and the output length.
    pilot_core::schema::metric_columns()
        .into_iter()
        .filter(|c| c != "request_throughput_rps")
        .collect()
}

/// Median of the absolute values (0 for none).
fn median_abs(v: &[f64]) -> f64 {
    let mut a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    percentile(&mut a, 50.0).unwrap_or(0.0)
}

/// Held-out residuals an engine/mode pair needs for an interval of its own
/// ([`TargetModel::by_engine_mode`]); fewer and it takes the interval over all rows.
const MIN_PAIR_RESIDUALS: usize = 100;

fn is_latency(target: &str) -> bool {
    !target.contains("throughput")
}

/// Training settings. `Default` is what the shipped predictor uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub seed: u64,
    /// LightGBM objective on the log labels. `huber` (the default) is L2 near zero and L1 for
    /// large residuals, so a few runs far off their neighbours do not drag the correction.
    /// (`regression_l1` cannot be combined with monotone constraints in LightGBM.)
    pub objective: String,
    /// Learn corrections to physics (true) or raw values from raw features (false).
    pub use_physics: bool,
    pub num_iterations: u32,
    pub learning_rate: f64,
    pub num_leaves: u32,
    pub min_data_in_leaf: u32,
    /// Folds (grouped by LLM) for conformal intervals; 0 or 1 = no held-out residuals
    /// (intervals then come from training residuals and are too narrow).
    pub conformal_folds: u32,
    /// Interval coverage (0.9 = 5th to 95th percentile of held-out residuals).
    pub coverage: f64,
    /// LightGBM threads.
    pub threads: u32,
    /// Targets to train; `None` = every target in [`all_targets`] with at least
    /// `min_rows` values.
    pub targets: Option<Vec<String>>,
    pub min_rows: usize,
    pub physics: PhysicsParams,
    /// Fit the physics constants per engine to the training rows first
    /// ([`crate::calibrate`]); `physics` is then the starting point and the fallback for
    /// engines without enough rows. Off by default: it halves the physics model's own error,
    /// but the trees correct the published constants as well as the fitted ones, and on
    /// LLM-Inference-Bench held-out LLMs do better without it (see `datasets/README.md`).
    #[serde(default)]
    pub calibrate: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 42,
            objective: "huber".into(),
            use_physics: true,
            num_iterations: 70,
            learning_rate: 0.15,
            num_leaves: 15,
            min_data_in_leaf: 8,
            conformal_folds: 5,
            coverage: 0.9,
            threads: 2,
            targets: None,
            min_rows: 30,
            physics: PhysicsParams::default(),
            calibrate: false,
        }
    }
}

/// Monotone constraints of latency corrections: +1 on the load and on every physics feature
/// that rises with load, -1 on those that fall with it. Every feature that moves with the load
/// is constrained, so the correction (and hence the prediction) cannot fall as load grows.
const LATENCY_MONOTONE: [(&str, i32); 11] = [
    ("log_load", 1),
    ("phys_log_decode_step_ms", 1),
    ("phys_log_in_flight", 1),
    ("phys_log_load_ratio", 1),
    ("phys_log_compute_to_memory", 1),
    ("phys_prefill_gap_fraction", 1),
    ("phys_log_ttft_ms", 1),
    ("phys_log_itl_ms", 1),
    ("phys_log_e2e_ms", 1),
    ("phys_log_burst_prefill_ms", 1),
    ("log_users_per_attention_rank", 1),
];

fn lgbm_params(o: &TrainOptions, target: &str, names: &[String]) -> serde_json::Value {
    let mut mono = vec![0i32; names.len()];
    if is_latency(target) {
        for (name, dir) in LATENCY_MONOTONE {
            if let Some(j) = names.iter().position(|n| n == name) {
                mono[j] = dir;
            }
        }
    }
    serde_json::json!({
        "objective": o.objective,
        "num_iterations": o.num_iterations,
        "learning_rate": o.learning_rate,
        "num_leaves": o.num_leaves,
        "min_data_in_leaf": o.min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "monotone_constraints": mono,
        "seed": o.seed,
        "deterministic": true,
        "force_row_wise": true,
        "num_threads": o.threads,
        "verbose": -1,
    })
}

/// Trains one ensemble on (features, label) rows.
fn fit(
    x: &[f64],
    y: &[f32],
    n_features: usize,
    params: &serde_json::Value,
) -> Result<Ensemble, PredictError> {
    let ds = lightgbm3::Dataset::from_slice(x, y, n_features as i32, true)
        .map_err(|e| PredictError::LightGbm(e.to_string()))?;
    let b =
        lightgbm3::Booster::train(ds, params).map_err(|e| PredictError::LightGbm(e.to_string()))?;
    let text = b
        .save_string()
        .map_err(|e| PredictError::LightGbm(e.to_string()))?;
    Ensemble::from_lightgbm(&text).map_err(PredictError::LightGbm)
}

/// The label for a target: `ln(measured / physics)` or `ln(measured)`.
fn label(p: &Prepared, target: &str, use_physics: bool) -> Option<f64> {
    labelled(p, target, use_physics).ok().flatten()
}

/// [`label`] (`None` where the row has no value: a dataset that does not measure the target),
/// or why a value cannot be used, which is reported as dropped data.
fn labelled(p: &Prepared, target: &str, use_physics: bool) -> Result<Option<f64>, &'static str> {
    let Some(v) = metric_value(&p.row, target) else {
        return Ok(None);
    };
    if !v.is_finite() {
        return Err("the measured value is NaN or infinite");
    }
    if v <= 0.0 {
        return Err("the measured value is 0 or negative");
    }
    if use_physics {
        let ph = physics_value(p, target).ok_or("the physics model has no finite estimate")?;
        Ok(Some((v / ph).ln()))
    } else {
        Ok(Some(v.ln()))
    }
}

fn physics_value(p: &Prepared, target: &str) -> Option<f64> {
    let tmp = Measurement {
        metrics: p.physics.clone(),
        ..p.row.clone()
    };
    metric_value(&tmp, target).filter(|v| v.is_finite() && *v > 0.0)
}

/// Trains a predictor on measurement rows (see the module doc).
pub fn train(rows: &[Measurement], opts: &TrainOptions) -> Result<Predictor, PredictError> {
    let calibrated = physics_for(rows, opts);
    let physics = main_physics(&calibrated, opts);
    let (prepared, mut notes) = prepare(rows, &physics, opts.use_physics);
    train_prepared(&prepared, opts, &calibrated, &mut notes)
}

/// Engines with fewer usable rows than this keep the default physics constants.
const MIN_CALIBRATION_ROWS: usize = 20;

/// The physics constants calibrated per engine on `rows` ([`crate::calibrate`]), starting
/// from the options' constants. They answer for the engine and load modes the corrections
/// were not trained on (see [`Predictor::corrects`]), and with [`TrainOptions::calibrate`]
/// they are also what the corrections correct.
pub(crate) fn physics_for(rows: &[Measurement], opts: &TrainOptions) -> PhysicsModel {
    let mut physics = PhysicsModel::new(opts.physics.clone());
    if opts.use_physics {
        let (base, _) = prepare(rows, &physics, false);
        let pairs: Vec<(&Scenario, &Measurement)> =
            base.iter().map(|p| (&p.scenario, &p.row)).collect();
        physics.per_engine =
            crate::calibrate::calibrate_engines(&opts.physics, &pairs, MIN_CALIBRATION_ROWS);
    }
    physics
}

/// The physics the corrections are trained on: the calibrated one with
/// [`TrainOptions::calibrate`], else the options' constants.
pub(crate) fn main_physics(calibrated: &PhysicsModel, opts: &TrainOptions) -> PhysicsModel {
    if opts.calibrate {
        calibrated.clone()
    } else {
        PhysicsModel::new(opts.physics.clone())
    }
}

pub(crate) fn train_prepared(
    prepared: &[Prepared],
    opts: &TrainOptions,
    calibrated: &PhysicsModel,
    notes: &mut Vec<String>,
) -> Result<Predictor, PredictError> {
    if prepared.is_empty() {
        return Err(PredictError::Train(
            "no usable rows (every row was skipped; see the notes of `pilot dataset show`)".into(),
        ));
    }
    let mut feature_names = features::base_names();
    if opts.use_physics {
        feature_names.extend(features::physics_names());
    }
    let nf = feature_names.len();
    // Folds by model, from the seed.
    let mut models: Vec<&str> = prepared
        .iter()
        .map(|p| p.row.model.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    pilot_core::rng::shuffle(&mut models, opts.seed);
    let k = (opts.conformal_folds as usize).min(models.len());
    let fold_of: BTreeMap<&str, usize> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, i % k.max(1)))
        .collect();

    let wanted = opts.targets.clone().unwrap_or_else(all_targets);
    // The calibrated physics model's answer for every row, once: its error is the interval
    // where it answers alone.
    let calibrated_rows: Vec<Option<Measurement>> = prepared
        .iter()
        .map(|p| {
            if !opts.use_physics {
                return None;
            }
            let (est, _) = calibrated.estimate(&p.scenario).ok()?;
            Some(Measurement {
                metrics: calibrated.summary(&p.scenario, &est),
                ..p.row.clone()
            })
        })
        .collect();
    let mut targets = Vec::new();
    for t in &wanted {
        let mut idx: Vec<usize> = Vec::new();
        let mut dropped: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in prepared.iter().enumerate() {
            match labelled(p, t, opts.use_physics) {
                Ok(Some(_)) => idx.push(i),
                Ok(None) => {}
                Err(why) => *dropped.entry(why).or_default() += 1,
            }
        }
        for (why, n) in &dropped {
            notes.push(format!("{t}: {n} rows dropped: {why}"));
        }
        if idx.len() < opts.min_rows.max(2) {
            // A target the data never measures is not news unless it was asked for; one
            // whose values were too few (or dropped) is.
            if opts.targets.is_some() || !dropped.is_empty() || !idx.is_empty() {
                notes.push(format!(
                    "{t}: only {} rows with usable values (at least {} needed), not trained",
                    idx.len(),
                    opts.min_rows.max(2)
                ));
            }
            continue;
        }
        let params = lgbm_params(opts, t, &feature_names);
        let xy = |ids: &[usize]| {
            let mut x = Vec::with_capacity(ids.len() * nf);
            let mut y = Vec::with_capacity(ids.len());
            for &i in ids {
                x.extend_from_slice(&prepared[i].features);
                y.push(label(&prepared[i], t, opts.use_physics).unwrap() as f32);
            }
            (x, y)
        };
        let (x, y) = xy(&idx);
        let ensemble = fit(&x, &y, nf, &params)?;
        // Residuals: held out by model when there are folds, else in-sample.
        let mut resid = Vec::with_capacity(idx.len());
        // The same residuals by the row's engine/mode pair, for intervals per pair.
        let mut resid_by_pair: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        // The physics model's own log-errors on the same held-out rows (its residual is the
        // label itself), to choose per pair between it and the corrections.
        let mut physics_by_pair: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let pair = |i: usize| scenario_pair(&prepared[i].scenario);
        let groups: BTreeSet<usize> = idx
            .iter()
            .map(|&i| fold_of[prepared[i].row.model.as_str()])
            .collect();
        if k >= 2 && groups.len() >= 2 {
            for f in groups {
                let (test, train): (Vec<usize>, Vec<usize>) = idx
                    .iter()
                    .partition(|&&i| fold_of[prepared[i].row.model.as_str()] == f);
                if train.len() < opts.min_data_in_leaf as usize * 2 {
                    continue;
                }
                let (xt, yt) = xy(&train);
                let e = fit(&xt, &yt, nf, &params)?;
                for &i in &test {
                    let y = label(&prepared[i], t, opts.use_physics).unwrap();
                    let z = y - e.predict(&prepared[i].features);
                    resid.push(z);
                    resid_by_pair.entry(pair(i)).or_default().push(z);
                    physics_by_pair.entry(pair(i)).or_default().push(y);
                }
            }
        } else {
            for (j, &i) in idx.iter().enumerate() {
                let z = y[j] as f64 - ensemble.predict(&prepared[i].features);
                resid.push(z);
                resid_by_pair.entry(pair(i)).or_default().push(z);
            }
        }
        let a = (1.0 - opts.coverage) / 2.0;
        // The interval's ends as percentiles; no residuals give a zero-width interval.
        let (lower_pct, upper_pct) = (a * 100.0, (1.0 - a) * 100.0);
        let lower = percentile(&mut resid.clone(), lower_pct).unwrap_or(0.0);
        let upper = percentile(&mut resid, upper_pct).unwrap_or(0.0);
        // Mondrian conformal: a pair with enough held-out residuals of its own gets its own
        // interval (AIConfigurator's held-out vLLM TTFTs spread x0.38 .. x1.58, its SGLang
        // and TensorRT-LLM ones up to x3.2: one interval for all would widen vLLM's twofold).
        //
        // Model selection per pair, on the same held-out rows: where the physics alone missed
        // the held-out LLMs by less (median absolute log error) than the corrected
        // predictions, the pair keeps the physics (AIConfigurator's TPOT: trees learned on
        // other LLMs' MoE and MLA quirks add error to an unseen LLM's).
        // Not with `calibrate`: the constants were fitted to every row, the held-out ones
        // included, so the physics' errors there are in-sample and would win unfairly.
        let physics_only: BTreeSet<String> = if opts.use_physics && !opts.calibrate {
            physics_by_pair
                .iter()
                .filter(|(k, y)| {
                    let z = &resid_by_pair[k.as_str()];
                    y.len() >= MIN_PAIR_RESIDUALS && median_abs(y) < median_abs(z)
                })
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            BTreeSet::new()
        };
        let by_engine_mode = resid_by_pair
            .into_iter()
            .filter(|(_, r)| r.len() >= MIN_PAIR_RESIDUALS)
            .map(|(k, r)| {
                let mut r = if physics_only.contains(&k) {
                    physics_by_pair.remove(&k).unwrap_or(r)
                } else {
                    r
                };
                let lo = percentile(&mut r.clone(), lower_pct).unwrap_or(0.0);
                let hi = percentile(&mut r, upper_pct).unwrap_or(0.0);
                (k, (lo, hi))
            })
            .collect();
        // The calibrated physics model's own error: the interval where it answers alone.
        let (physics_lower, physics_upper) = if opts.use_physics {
            let mut e: Vec<f64> = idx
                .iter()
                .filter_map(|&i| {
                    let m = calibrated_rows[i].as_ref()?;
                    let (a, b) = (metric_value(&prepared[i].row, t)?, metric_value(m, t)?);
                    (a > 0.0 && b > 0.0 && b.is_finite()).then(|| (a / b).ln())
                })
                .collect();
            (
                percentile(&mut e.clone(), lower_pct).unwrap_or(0.0),
                percentile(&mut e, upper_pct).unwrap_or(0.0),
            )
        } else {
            (0.0, 0.0)
        };
        let engine_modes = idx.iter().map(|&i| pair(i)).collect();
        targets.push(TargetModel {
            target: t.clone(),
            ensemble,
            lower,
            upper,
            rows: idx.len(),
            physics_lower,
            physics_upper,
            engine_modes,
            by_engine_mode,
            physics_only,
        });
    }
    if targets.is_empty() {
        return Err(PredictError::Train(format!(
            "no target has {} or more rows with values among {} usable rows",
            opts.min_rows,
            prepared.len()
        )));
    }
    // Domain.
    let mut domain = Domain::default();
    for name in DOMAIN_FEATURES {
        let j = feature_names
            .iter()
            .position(|f| f == name)
            .expect("domain features are base features");
        let (lo, hi) = prepared
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.features[j]), hi.max(p.features[j]))
            });
        domain.ranges.push((j, lo, hi));
    }
    for p in prepared {
        domain.engines.insert(p.row.engine.to_ascii_lowercase());
        domain.modes.insert(p.row.load.mode().to_string());
        let engine_mode = scenario_pair(&p.scenario);
        domain.engine_modes.insert(engine_mode.clone());
        domain
            .vendor_engines
            .insert(pair_key(&p.scenario.gpu.vendor, &p.row.engine));
        let dataset = p.row.source.split(':').next().unwrap_or("").to_string();
        *domain
            .engine_mode_sources
            .entry(engine_mode)
            .or_default()
            .entry(dataset)
            .or_default() += 1;
    }
    let n_models = models.len();
    let mut gpus: Vec<String> = prepared
        .iter()
        .map(|p| p.row.gpu.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    gpus.dedup();
    notes.insert(
        0,
        format!(
            "trained on {} rows: {} LLMs, {} GPU types ({}), engines {}",
            prepared.len(),
            n_models,
            gpus.len(),
            gpus.join(", "),
            domain
                .engines
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(Predictor {
        format_version: FORMAT_VERSION,
        options: opts.clone(),
        feature_names,
        targets,
        domain,
        notes: notes.clone(),
        calibrated: calibrated.per_engine.clone(),
        memo: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatencyModel;
    use crate::scenario::{Prediction, Resolver};
    use pilot_core::schema::read_measurements;
    use std::path::Path;

    /// LLM-Pilot's rows as imported (shipped beside the predictor).
    pub(crate) fn llm_pilot_rows() -> Vec<Measurement> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor/llm-pilot.csv");
        read_measurements(&p).expect("datasets/predictor/llm-pilot.csv (see datasets/README.md)")
    }

    fn small_opts() -> TrainOptions {
        TrainOptions {
            num_iterations: 30,
            conformal_folds: 3,
            targets: Some(vec![
                "itl_ms_p50".into(),
                "nttft_ms_per_token_p50".into(),
                "output_throughput_tok_s".into(),
            ]),
            ..TrainOptions::default()
        }
    }

    /// A row every predictor can predict (an H100 run: the physics says it fits).
    fn base_scenario(r: &mut Resolver) -> Scenario {
        let row = subset()
            .into_iter()
            .find(|x| x.gpu == "H100-SXM-80GB" && x.load == crate::Load::Users(1))
            .unwrap();
        Scenario::from_row(&row, r).unwrap()
    }

    fn subset() -> Vec<Measurement> {
        llm_pilot_rows()
            .into_iter()
            .filter(|r| r.gpu_count <= 2)
            .collect()
    }

    #[test]
    fn training_is_deterministic_given_a_seed_and_predicts_finite_values() {
        let rows = subset();
        let a = train(&rows, &small_opts()).unwrap();
        let b = train(&rows, &small_opts()).unwrap();
        assert_eq!(a, b, "same data and seed gave different predictors");
        let c = train(
            &rows,
            &TrainOptions {
                seed: 7,
                ..small_opts()
            },
        )
        .unwrap();
        assert_ne!(a.targets, c.targets, "the seed changes nothing");
        let mut r = Resolver::default();
        let s = base_scenario(&mut r);
        let p1 = a.predict(&s).unwrap();
        let p2 = b.predict(&s).unwrap();
        assert_eq!(p1, p2);
        for t in a.target_names() {
            let v = metric_value(&p1.row, &t).unwrap();
            let lo = metric_value(
                &Measurement {
                    metrics: p1.lower.clone(),
                    ..p1.row.clone()
                },
                &t,
            )
            .unwrap();
            let hi = metric_value(
                &Measurement {
                    metrics: p1.upper.clone(),
                    ..p1.row.clone()
                },
                &t,
            )
            .unwrap();
            assert!(
                v.is_finite() && v > 0.0 && lo <= v && v <= hi,
                "{t}: {lo} <= {v} <= {hi}"
            );
        }
    }

    /// NaN and infinite values are dropped with a count and a reason, per target, and a
    /// target left with too few rows says so; none of it silently.
    #[test]
    fn dropped_rows_and_targets_are_reported() {
        let mut rows = subset();
        for (i, r) in rows.iter_mut().enumerate().take(8) {
            r.metrics.itl.p50 = Some(pilot_core::units::Millis(if i < 5 {
                f64::NAN
            } else {
                f64::INFINITY
            }));
        }
        // Every TTFT but the first ten is missing: too few to train that target.
        for r in rows.iter_mut().skip(10) {
            r.metrics.ttft.p50 = None;
        }
        rows[0].add_flag(pilot_core::schema::FLAG_NON_FINITE);
        let opts = TrainOptions {
            targets: Some(vec!["itl_ms_p50".into(), "ttft_ms_p50".into()]),
            ..small_opts()
        };
        let p = train(&rows, &opts).unwrap();
        let notes = p.notes.join("\n");
        // Row 0 is skipped for its flag, before the per-target check.
        assert!(
            notes.contains("itl_ms_p50: 7 rows dropped: the measured value is NaN or infinite"),
            "{notes}"
        );
        assert!(
            notes.contains("1 rows skipped: flagged non_finite_value"),
            "{notes}"
        );
        assert!(
            notes.contains("ttft_ms_p50: only 9 rows with usable values"),
            "{notes}"
        );
        assert_eq!(p.target_names(), vec!["itl_ms_p50".to_string()]);
    }

    #[test]
    fn save_load_round_trips_exactly() {
        let p = train(&subset(), &small_opts()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        p.save(&f).unwrap();
        let q = Predictor::load(&f).unwrap();
        assert_eq!(p, q);
        std::fs::write(&f, "{\"format_version\": 9}").unwrap();
        let e = Predictor::load(&f).unwrap_err().to_string();
        assert!(e.contains("p.json"), "{e}");
    }

    /// A file trained on another feature list (an older pilot's) is refused by name rather
    /// than read with its splits on the wrong columns.
    #[test]
    fn a_predictor_with_another_feature_list_is_refused() {
        let mut p = train(&subset(), &small_opts()).unwrap();
        p.feature_names.swap(0, 1);
        let text = serde_json::to_string(&p).unwrap();
        let e = Predictor::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("position 0") && e.contains("pilot train"), "{e}");
        p.feature_names.pop();
        let e = Predictor::from_json(&serde_json::to_string(&p).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("features but this pilot computes"), "{e}");
    }

    #[test]
    fn more_users_never_predict_lower_latency() {
        let p = train(&subset(), &small_opts()).unwrap();
        let mut r = Resolver::default();
        let base = base_scenario(&mut r);
        let mut last = (0.0, 0.0);
        for u in [1, 2, 4, 8, 16, 32, 64, 128] {
            let s = Scenario {
                load: crate::Load::Users(u),
                ..base.clone()
            };
            let pr = p.predict(&s).unwrap();
            let itl = metric_value(&pr.row, "itl_ms_p50").unwrap();
            let nttft = metric_value(&pr.row, "nttft_ms_per_token_p50").unwrap();
            assert!(
                itl >= last.0 * (1.0 - 1e-9) && nttft >= last.1 * (1.0 - 1e-9),
                "{u} users: {itl} {nttft} after {last:?}"
            );
            last = (itl, nttft);
        }
    }

    #[test]
    fn unseen_engines_and_huge_models_are_out_of_domain() {
        let p = train(&subset(), &small_opts()).unwrap();
        let mut r = Resolver::default();
        let base = base_scenario(&mut r);
        assert!(!p.predict(&base).unwrap().out_of_domain);
        let other_engine = Scenario {
            engine: Some("sglang".into()),
            ..base.clone()
        };
        assert!(p.predict(&other_engine).unwrap().out_of_domain);
        let big = Scenario {
            model: r.model("llama-3.1-405b").unwrap(),
            gpu: r.gpu("H200-SXM-141GB").unwrap(),
            gpu_count: 8,
            quantization: pilot_core::quant::Quantization::Fp8,
            ..base
        };
        assert!(p.predict(&big).unwrap().out_of_domain);
    }

    #[test]
    fn corrections_apply_only_to_the_engine_and_mode_they_were_measured_in() {
        // Trained on TGIS under closed-loop users only.
        let p = train(&subset(), &small_opts()).unwrap();
        let mut r = Resolver::default();
        let base = base_scenario(&mut r);
        assert!(p.corrects(&base) && p.measured(Some("tgis"), "closed"));
        let itl = |pr: &Prediction| metric_value(&pr.row, "itl_ms_p50").unwrap();
        // Constants calibrated on TGIS's rows, none for vLLM.
        assert!(p.calibrated_for("tgis") && !p.calibrated_for("vllm"));
        let calibrated = p.physics_model(true);
        // vLLM under users, never measured: the physics model answers alone (vLLM's published
        // constants), with the physics model's error on the training rows as interval.
        let s = Scenario {
            engine: Some("vllm".into()),
            load: crate::Load::Users(8),
            ..base.clone()
        };
        assert!(!p.corrects(&s));
        let pr = p.predict(&s).unwrap();
        assert!(pr.out_of_domain);
        let ph = calibrated.predict(&s).unwrap();
        assert!((itl(&pr) - itl(&ph)).abs() < 1e-9 * itl(&ph));
        let (lo, hi) = (pr.lower.itl.p50.unwrap().0, pr.upper.itl.p50.unwrap().0);
        assert!(lo < itl(&pr) && itl(&pr) < hi, "{lo} {} {hi}", itl(&pr));
        // TGIS under a rate, never measured: answered from TGIS's corrected closed loop at the
        // population with that throughput (crate::open_loop), not by the physics alone.
        let rate = Scenario {
            engine: Some("tgis".into()),
            load: crate::Load::Rate(pilot_core::units::RequestsPerSec(2.0)),
            ..base.clone()
        };
        assert!(!p.corrects(&rate) && p.corrects(&base));
        let pr = p.predict(&rate).unwrap();
        let budget = pr.row.max_batch.unwrap();
        let closed: Vec<f64> = (1..=budget)
            .map(|u| {
                let s = Scenario {
                    load: crate::Load::Users(u),
                    ..rate.clone()
                };
                itl(&p.predict(&s).unwrap())
            })
            .collect();
        let (lo, hi) = closed
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(a, b), v| (a.min(*v), b.max(*v)));
        assert!(lo <= itl(&pr) && itl(&pr) <= hi, "{lo} {} {hi}", itl(&pr));
        let ph = calibrated.predict(&rate).unwrap();
        assert!((itl(&pr) / itl(&ph) - 1.0).abs() > 1e-3);
        assert_eq!(
            metric_value(&pr.row, "request_throughput_rps"),
            Some(2.0),
            "the open loop serves what arrives"
        );
        // The measured engine and mode on another vendor's GPU (ROCm, not CUDA): physics alone.
        let amd = Scenario {
            gpu: pilot_core::gpu::GpuCatalog::builtin()
                .resolve("MI300X")
                .unwrap()
                .clone(),
            load: crate::Load::Users(8),
            ..base.clone()
        };
        assert!(p.measured(Some("tgis"), "closed") && !p.corrects(&amd));
        assert!(p.predict(&amd).unwrap().out_of_domain);
        // Where they were measured, the corrections move the physics estimate.
        let s = Scenario {
            load: crate::Load::Users(8),
            ..base
        };
        let (pr, ph) = (p.predict(&s).unwrap(), p.physics().predict(&s).unwrap());
        assert!((itl(&pr) / itl(&ph) - 1.0).abs() > 1e-3);
    }

    /// AIConfigurator measures only mean TTFT and TPOT; TGIS p50s. Trained on both, a vLLM
    /// closed-loop scenario takes its mean's correction for the p50 and ITL (which recommend's
    /// SLOs read) instead of trees that never saw vLLM, or none at all.
    #[test]
    fn a_statistic_a_dataset_lacks_follows_its_measured_sibling() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor/aiconfigurator.csv");
        let ai: Vec<Measurement> = read_measurements(&p)
            .unwrap()
            .into_iter()
            .filter(|r| r.engine == "vllm")
            .collect();
        let mut rows = subset();
        rows.extend(ai.iter().cloned());
        let opts = TrainOptions {
            targets: Some(vec![
                "ttft_ms_p50".into(),
                "ttft_ms_mean".into(),
                "itl_ms_p50".into(),
                "tpot_ms_mean".into(),
            ]),
            ..small_opts()
        };
        let pred = train(&rows, &opts).unwrap();
        let p50 = pred
            .targets
            .iter()
            .find(|t| t.target == "ttft_ms_p50")
            .unwrap();
        assert!(
            !p50.engine_modes.contains("vllm/closed"),
            "{:?}",
            p50.engine_modes
        );
        let mut r = Resolver::default();
        let s = Scenario::from_row(
            ai.iter()
                .find(|x| x.load == crate::Load::Users(64))
                .unwrap(),
            &mut r,
        )
        .unwrap();
        let got = pred.predict(&s).unwrap().row;
        let phys = pred.physics().predict(&s).unwrap().row;
        let k = |m: &Measurement, c: &str| metric_value(m, c).unwrap();
        let ttft = k(&got, "ttft_ms_mean") / k(&phys, "ttft_ms_mean");
        let itl = k(&got, "tpot_ms_mean") / k(&phys, "tpot_ms_mean");
        // TTFT is corrected; TPOT may answer with the physics alone (where that erred less on
        // the held-out folds), and ITL then follows it as well.
        assert!((ttft - 1.0).abs() > 1e-3, "{ttft} {itl}");
        let rel = |a: f64, b: f64| ((a - b) / b).abs();
        assert!(rel(k(&got, "ttft_ms_p50") / k(&phys, "ttft_ms_p50"), ttft) < 1e-9);
        assert!(rel(k(&got, "itl_ms_p50") / k(&phys, "itl_ms_p50"), itl) < 1e-9);
        // A TGIS scenario keeps its own p50 trees.
        let t = pred.predict(&base_scenario(&mut r)).unwrap().row;
        assert!(k(&t, "ttft_ms_p50") > 0.0);
        // Each engine/mode pair with enough held-out residuals has its own interval, and a
        // scenario of that pair gets it (Mondrian conformal), not the one over all rows.
        let mean = pred
            .targets
            .iter()
            .find(|t| t.target == "ttft_ms_mean")
            .unwrap();
        let (lo, hi) = mean.by_engine_mode["vllm/closed"];
        assert!((lo, hi) != (mean.lower, mean.upper) && lo < 0.0 && hi > 0.0);
        let full = pred.predict(&s).unwrap();
        let up = metric_value(
            &Measurement {
                metrics: full.upper,
                ..got.clone()
            },
            "ttft_ms_mean",
        )
        .unwrap();
        assert!(rel(up / k(&got, "ttft_ms_mean"), hi.exp()) < 1e-9);
    }

    /// Where the physics alone misses held-out LLMs by less than the corrected predictions,
    /// the pair answers with the physics: here vLLM's TPOTs are the physics' own times 20%
    /// noise, which trees can only overfit, while TGIS keeps its corrections.
    #[test]
    fn a_pair_the_trees_do_not_help_keeps_the_physics() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor/aiconfigurator.csv");
        let mut r = Resolver::default();
        let physics = PhysicsModel::default();
        let mut rng = pilot_core::rng::SplitMix64::new(7);
        let mut rows = subset();
        for mut row in read_measurements(&p).unwrap() {
            if row.engine != "vllm" || crate::rows::exclusion_reason(&row).is_some() {
                continue;
            }
            let Ok(s) = Scenario::from_row(&row, &mut r) else {
                continue;
            };
            let Ok(pr) = physics.predict(&s) else {
                continue;
            };
            let Some(t) = metric_value(&pr.row, "tpot_ms_mean") else {
                continue;
            };
            let noise = 0.4 * (rng.next_f64() - 0.5);
            pilot_core::schema::set_metric_value(&mut row, "tpot_ms_mean", Some(t * noise.exp()));
            rows.push(row);
        }
        let opts = TrainOptions {
            targets: Some(vec!["tpot_ms_mean".into(), "itl_ms_p50".into()]),
            ..small_opts()
        };
        let pred = train(&rows, &opts).unwrap();
        let tpot = pred
            .targets
            .iter()
            .find(|t| t.target == "tpot_ms_mean")
            .unwrap();
        assert!(
            tpot.physics_only.contains("vllm/closed"),
            "{:?}",
            tpot.physics_only
        );
        assert!(
            !tpot.physics_only.contains("tgis/closed"),
            "{:?}",
            tpot.physics_only
        );
        // A vLLM scenario then predicts the physics' TPOT exactly.
        let row = rows.iter().rev().find(|x| x.engine == "vllm").unwrap();
        let s = Scenario::from_row(row, &mut r).unwrap();
        let got = metric_value(&pred.predict(&s).unwrap().row, "tpot_ms_mean").unwrap();
        let phys = metric_value(&pred.physics().predict(&s).unwrap().row, "tpot_ms_mean").unwrap();
        assert!(((got - phys) / phys).abs() < 1e-9, "{got} vs {phys}");
    }

    #[test]
    fn the_shipped_predictor_loads_and_predicts() {
        let p = Predictor::shipped().unwrap();
        assert!(p.target_names().contains(&"itl_ms_p50".to_string()));
        let mut r = Resolver::default();
        let s = Scenario::new(
            r.model("mistral-7b").unwrap(),
            r.gpu("h100").unwrap(),
            2,
            crate::Load::Users(64),
            pilot_core::units::Tokens(512),
            pilot_core::units::Tokens(256),
        );
        let pr = p.predict(&s).unwrap();
        assert!(metric_value(&pr.row, "itl_ms_p50").unwrap() > 0.0);
    }
}

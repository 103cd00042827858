//! The trained predictor: physics plus one LightGBM correction per target, its file (load,
//! save, the shipped one), the domain it was trained on, and prediction with it, including
//! when its corrections apply ([`Predictor::corrects`]) and when the physics answers alone.
//!
//! How it is trained is [`crate::train`]; the rows it learns from are [`crate::rows`].

use crate::features;
use crate::gbdt::Ensemble;
use crate::physics::{Estimate, PhysicsModel, PhysicsParams};
use crate::scenario::{Fit, Prediction, Scenario};
use crate::train::TrainOptions;
use crate::{LatencyModel, PredictError};
use pilot_core::schema::{Measurement, metric_value, set_metric_value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

/// The shipped predictor, trained by `pilot train` on the public data (datasets/README.md).
const SHIPPED: &str = include_str!("../../datasets/predictor/predictor.json");

/// Version of the predictor file format.
pub const FORMAT_VERSION: u32 = 1;

/// One target's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetModel {
    pub target: String,
    pub ensemble: Ensemble,
    /// Interval ends as log-residual quantiles.
    pub lower: f64,
    pub upper: f64,
    pub rows: usize,
    /// The same quantiles of the physics model's own log-error over the training rows: the
    /// interval when the corrections do not apply (see [`Predictor::corrects`]).
    #[serde(default)]
    pub physics_lower: f64,
    #[serde(default)]
    pub physics_upper: f64,
    /// `engine/mode` pairs among the rows this target was trained on ([`pair_key`]). Datasets
    /// measure different statistics (TGIS runs p50s, AIConfigurator means only), so a target's
    /// trees may never have seen an engine the predictor knows: there its correction is not
    /// applied, and the metric follows its family's corrected sibling instead (see
    /// [`harmonize`]). Empty (older files): every pair the predictor measured.
    #[serde(default)]
    pub engine_modes: BTreeSet<String>,
}

impl TargetModel {
    /// Whether this target's trees were trained on the scenario's engine in its load mode.
    fn trained_on(&self, s: &Scenario) -> bool {
        self.engine_modes.is_empty()
            || self.engine_modes.contains(&pair_key(
                s.engine.as_deref().unwrap_or(""),
                s.load.mode().name(),
            ))
    }
}

/// The training domain, for the out-of-domain flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Domain {
    /// (feature index, min, max) of the checked features.
    pub ranges: Vec<(usize, f64, f64)>,
    pub engines: BTreeSet<String>,
    pub modes: BTreeSet<String>,
    /// `engine/mode` pairs measured (`tgis/closed`, `vllm/offline`, ...).
    #[serde(default)]
    pub engine_modes: BTreeSet<String>,
    /// `vendor/engine` pairs measured (`nvidia/vllm`, `amd/vllm`, ...).
    #[serde(default)]
    pub vendor_engines: BTreeSet<String>,
}

/// The key of a pair of names in [`Domain::engine_modes`] (engine, load mode) and
/// [`Domain::vendor_engines`] (GPU vendor, engine): both lower-cased, `a/b`.
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    format!("{}/{}", a.to_ascii_lowercase(), b.to_ascii_lowercase())
}

/// Features checked for the domain (log-scale ones; 10% = 0.1 in log units is allowed).
pub(crate) const DOMAIN_FEATURES: [&str; 7] = [
    "log_load",
    "log_input_tokens",
    "log_output_tokens",
    "log_params_active",
    "log_memory_bandwidth",
    "log_peak_tflops",
    "gpu_count",
];

/// A trained predictor: physics + one LightGBM correction per target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictor {
    pub format_version: u32,
    pub options: TrainOptions,
    pub feature_names: Vec<String>,
    pub targets: Vec<TargetModel>,
    pub domain: Domain,
    /// What it was trained on, and what was skipped.
    pub notes: Vec<String>,
    /// Physics constants calibrated per engine (see [`TrainOptions::calibrate`]).
    #[serde(default)]
    pub calibrated: BTreeMap<String, PhysicsParams>,
    /// Which predictor this is, for the open-loop memo of closed-loop predictions
    /// ([`crate::open_loop::MemoId`]); not part of the file, nor of equality.
    #[serde(skip)]
    pub(crate) memo: crate::open_loop::MemoId,
}

impl Predictor {
    /// The predictor shipped in the binary (`datasets/predictor/predictor.json`), parsed once.
    pub fn shipped() -> Result<&'static Predictor, PredictError> {
        static P: OnceLock<Result<Predictor, String>> = OnceLock::new();
        P.get_or_init(|| {
            Predictor::from_json(SHIPPED).map_err(|e| match e {
                PredictError::PredictorFile { reason, .. } => reason,
                e => e.to_string(),
            })
        })
        .as_ref()
        .map_err(|e| PredictError::PredictorFile {
            path: "(shipped) datasets/predictor/predictor.json".into(),
            reason: e.clone(),
            source: None,
        })
    }

    /// Parses a predictor file's text.
    pub fn from_json(text: &str) -> Result<Predictor, PredictError> {
        let bad = |reason: String| PredictError::PredictorFile {
            path: "(text)".into(),
            reason,
            source: None,
        };
        let p: Predictor = serde_json::from_str(text).map_err(|e| PredictError::PredictorFile {
            path: "(text)".into(),
            reason: "not a pilot predictor (write one with `pilot train`)".into(),
            source: Some(e.into()),
        })?;
        if p.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} but this pilot reads {FORMAT_VERSION}; retrain with `pilot train`",
                p.format_version
            )));
        }
        if p.targets.is_empty() {
            return Err(bad(
                "it has no trained targets; rebuild it as datasets/README.md says".into(),
            ));
        }
        // The trees index features by position: a file trained on another feature list would
        // read every split on the wrong column and answer nonsense without an error.
        let mut expected = features::base_names();
        if p.options.use_physics {
            expected.extend(features::physics_names());
        }
        if p.feature_names != expected {
            let first = p
                .feature_names
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(p.feature_names.len().min(expected.len()));
            return Err(bad(format!(
                "it was trained on {} features but this pilot computes {} (first difference at \
                 position {first}: '{}' vs '{}'); retrain it with `pilot train`",
                p.feature_names.len(),
                expected.len(),
                p.feature_names.get(first).map_or("(none)", String::as_str),
                expected.get(first).map_or("(none)", String::as_str),
            )));
        }
        Ok(p)
    }

    /// Loads a predictor file written by [`Predictor::save`].
    pub fn load(path: &Path) -> Result<Predictor, PredictError> {
        let text = std::fs::read_to_string(path).map_err(|e| PredictError::PredictorFile {
            path: path.display().to_string(),
            reason: "cannot read it".into(),
            source: Some(e.into()),
        })?;
        Predictor::from_json(&text).map_err(|e| match e {
            PredictError::PredictorFile { reason, source, .. } => PredictError::PredictorFile {
                path: path.display().to_string(),
                reason,
                source,
            },
            e => e,
        })
    }

    /// Writes the predictor as JSON (compact: it is embedded in the binary).
    pub fn save(&self, path: &Path) -> Result<(), PredictError> {
        let io = |reason: &str, e: pilot_core::BoxError| PredictError::PredictorFile {
            path: path.display().to_string(),
            reason: reason.into(),
            source: Some(e),
        };
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| io("cannot create its directory", e.into()))?;
        }
        let text = serde_json::to_string(self).map_err(|e| io("cannot serialize it", e.into()))?;
        std::fs::write(path, text).map_err(|e| io("cannot write it", e.into()))
    }

    /// The targets this predictor predicts (metric column names).
    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.target.clone()).collect()
    }

    /// The physics model the corrections apply to.
    pub(crate) fn physics(&self) -> PhysicsModel {
        self.physics_model(self.options.calibrate)
    }

    /// The physics model with the per-engine constants (`calibrated`) or the options' only.
    /// With them it answers alone where the corrections do not apply.
    pub(crate) fn physics_model(&self, calibrated: bool) -> PhysicsModel {
        PhysicsModel {
            params: self.options.physics.clone(),
            per_engine: if calibrated {
                self.calibrated.clone()
            } else {
                Default::default()
            },
        }
    }

    /// Whether the trained corrections apply to this scenario: they do when its engine was
    /// measured in its load mode. A correction learned from TGIS under closed-loop users says
    /// nothing about vLLM under closed-loop users, nor one learned from vLLM's offline batches:
    /// there the physics model's answer (with the physics model's measured error as interval)
    /// is the honest one. Predictors without the pair list (older files) always correct.
    ///
    /// The same holds across GPU vendors: an engine's corrections learned on NVIDIA GPUs say
    /// nothing about the same engine on ROCm or oneAPI, where it reaches another fraction of
    /// the peaks (held out, Max-1550 given NVIDIA and AMD vLLM corrections was off by 4x).
    pub fn corrects(&self, s: &Scenario) -> bool {
        let engine = s.engine.as_deref();
        self.measured(engine, s.load.mode().name())
            && (self.domain.vendor_engines.is_empty()
                || self
                    .domain
                    .vendor_engines
                    .contains(&pair_key(&s.gpu.vendor, engine.unwrap_or(""))))
    }

    /// Whether the training data measured this engine in this load mode (`closed`, `open`,
    /// `offline`), so that its corrections apply (see [`Predictor::corrects`]).
    pub fn measured(&self, engine: Option<&str>, mode: &str) -> bool {
        if !self.options.use_physics || self.domain.engine_modes.is_empty() {
            return true;
        }
        self.domain
            .engine_modes
            .contains(&pair_key(engine.unwrap_or(""), mode))
    }

    /// The engines its training data measured (lower-case): names that
    /// [`pilot_core::validate::engine`] accepts beside the built-in list, because a user's
    /// own `pilot characterize --engine my-label` rows make `my-label` a known engine.
    pub fn engines(&self) -> Vec<String> {
        self.domain
            .engines
            .iter()
            .filter(|e| !e.is_empty())
            .cloned()
            .collect()
    }

    /// Whether the physics constants were calibrated on this engine's measurements.
    pub fn calibrated_for(&self, engine: &str) -> bool {
        self.calibrated.contains_key(&engine.to_ascii_lowercase())
    }

    fn out_of_domain(&self, s: &Scenario, f: &[f64]) -> bool {
        let engine = s.engine.as_deref().unwrap_or("").to_ascii_lowercase();
        if !self.domain.engines.contains(&engine)
            || !self.domain.modes.contains(s.load.mode().name())
            || !self.corrects(s)
        {
            return true;
        }
        self.domain.ranges.iter().any(|&(j, lo, hi)| {
            let tol = if self.feature_names[j] == "gpu_count" {
                0.0
            } else {
                0.1
            };
            f[j] < lo - tol || f[j] > hi + tol
        })
    }

    /// Predicts from an estimate and feature vector (shared by `predict`, `predict_many` and
    /// the evaluation).
    pub(crate) fn finish(&self, s: &Scenario, e: &Estimate, fit: Fit, f: &[f64]) -> Prediction {
        let corrects = self.corrects(s);
        // Where the corrections do not apply, the engine's calibrated physics answers alone.
        let physics = self.physics_model(self.options.calibrate || !corrects);
        let own;
        let e = if corrects || self.options.calibrate {
            e
        } else {
            match physics.estimate(s) {
                Ok((x, _)) => {
                    own = x;
                    &own
                }
                Err(_) => e,
            }
        };
        let mut row = s.to_row("pilot-predict:predictor");
        row.max_batch = Some(e.max_batch as u32);
        let phys = physics.summary(s, e);
        let phys_row = Measurement {
            metrics: phys.clone(),
            ..row.clone()
        };
        row.metrics = phys.clone();
        let mut lo = row.clone();
        let mut hi = row.clone();
        let mut corrected: Vec<&str> = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            if corrects && !t.trained_on(s) {
                // Left to its family's corrected sibling (a p50 from a mean) in `harmonize`.
                continue;
            }
            corrected.push(&t.target);
            let (z, lower, upper) = if corrects {
                (t.ensemble.predict(f), t.lower, t.upper)
            } else {
                // The physics model's own error over the training rows, widened to hold the
                // point itself: that error may be one-sided (physics too fast throughout).
                (0.0, t.physics_lower.min(0.0), t.physics_upper.max(0.0))
            };
            let base = if self.options.use_physics {
                metric_value(&phys_row, &t.target).map(f64::ln)
            } else {
                Some(0.0)
            };
            let Some(base) = base else { continue };
            set_metric_value(&mut row, &t.target, Some((base + z).exp()));
            set_metric_value(&mut lo, &t.target, Some((base + z + lower).exp()));
            set_metric_value(&mut hi, &t.target, Some((base + z + upper).exp()));
        }
        for r in [&mut row, &mut lo, &mut hi] {
            harmonize(r, &phys_row, &corrected);
        }
        Prediction {
            out_of_domain: self.out_of_domain(s, f),
            row,
            lower: lo.metrics,
            upper: hi.metrics,
            fit,
        }
    }
}

/// Keeps a predicted row coherent: metrics without their own correction here (`corrected`
/// names those with one) scale with their family's correction, and percentiles never
/// decrease. A family's correction comes from the first corrected column of its sources: its
/// p50, else another of its statistics (a mean, where a dataset measured only means), else
/// the same quantity's other family (ITL and TPOT; TTFT and TTFT per prompt token). E2E with
/// none of its own follows TTFT plus the output's TPOTs.
fn harmonize(r: &mut Measurement, phys: &Measurement, corrected: &[&str]) {
    let trained = |c: &str| corrected.contains(&c);
    let ratio = |r: &Measurement, c: &str| match (metric_value(r, c), metric_value(phys, c)) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => 1.0,
    };
    // Column names spelled out: this runs for every prediction, so no `format!`.
    const TTFT: [&str; 5] = [
        "ttft_ms_p50",
        "ttft_ms_p90",
        "ttft_ms_p95",
        "ttft_ms_p99",
        "ttft_ms_mean",
    ];
    const NTTFT: [&str; 5] = [
        "nttft_ms_per_token_p50",
        "nttft_ms_per_token_p90",
        "nttft_ms_per_token_p95",
        "nttft_ms_per_token_p99",
        "nttft_ms_per_token_mean",
    ];
    const ITL: [&str; 5] = [
        "itl_ms_p50",
        "itl_ms_p90",
        "itl_ms_p95",
        "itl_ms_p99",
        "itl_ms_mean",
    ];
    const E2E: [&str; 5] = [
        "e2e_ms_p50",
        "e2e_ms_p90",
        "e2e_ms_p95",
        "e2e_ms_p99",
        "e2e_ms_mean",
    ];
    const TPOT: [&str; 5] = [
        "tpot_ms_p50",
        "tpot_ms_p90",
        "tpot_ms_p95",
        "tpot_ms_p99",
        "tpot_ms_mean",
    ];
    // (members, sources in order of preference after the first member, the p50).
    let families: [(&[&str; 5], [&[&str]; 2]); 5] = [
        (&TTFT, [&TTFT, &NTTFT]),
        (&NTTFT, [&NTTFT, &TTFT]),
        (&ITL, [&ITL, &TPOT]),
        (&E2E, [&E2E, &[]]),
        // TPOT has followed ITL's p50 since before TPOT had trees of its own.
        (&TPOT, [&["itl_ms_p50"], &TPOT]),
    ];
    for (cols, sources) in families {
        let src = sources.iter().flat_map(|s| s.iter()).find(|c| trained(c));
        let k = match src {
            Some(c) => ratio(r, c),
            None if std::ptr::eq(cols, &E2E) => e2e_ratio(r, phys),
            None => ratio(r, sources[0][0]),
        };
        let mut last = 0.0_f64;
        for c in cols {
            if let Some(v) = metric_value(r, c) {
                let mut v = if trained(c) {
                    v
                } else {
                    metric_value(phys, c).unwrap_or(v) * k
                };
                if !c.ends_with("mean") {
                    v = v.max(last);
                    last = v;
                }
                set_metric_value(r, c, Some(v));
            }
        }
    }
    let k = ratio(r, "output_throughput_tok_s");
    if let Some(v) = metric_value(phys, "request_throughput_rps") {
        set_metric_value(r, "request_throughput_rps", Some(v * k));
    }
}

/// The correction of an E2E latency with no trees of its own: a request's E2E is its TTFT
/// plus (output − 1) TPOTs, so it scales as their corrected sum over the physics' (1 where
/// either mean or the output length is missing).
fn e2e_ratio(r: &Measurement, phys: &Measurement) -> f64 {
    let parts = |m: &Measurement| {
        let o = m.metrics.output_tokens_mean?;
        Some(
            metric_value(m, "ttft_ms_mean")?
                + (o - 1.0).max(0.0) * metric_value(m, "tpot_ms_mean")?,
        )
    };
    match (parts(r), parts(phys)) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => 1.0,
    }
}

impl LatencyModel for Predictor {
    /// Splits the scenarios over the machine's cores (tree evaluation dominates; each
    /// scenario is independent).
    fn predict_many(&self, s: &[Scenario]) -> Vec<Result<Prediction, PredictError>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16);
        if threads <= 1 || s.len() < 256 {
            return s.iter().map(|x| self.predict(x)).collect();
        }
        let chunk = s.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = s
                .chunks(chunk)
                .map(|c| scope.spawn(move || c.iter().map(|x| self.predict(x)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a prediction thread panicked"))
                .collect()
        })
    }

    fn predict(&self, s: &Scenario) -> Result<Prediction, PredictError> {
        let physics = self.physics();
        let (e, fit) = physics.estimate(s)?;
        if let Fit::DoesNotFit { .. } = fit {
            return physics.predict(s);
        }
        if let crate::Load::Rate(rate) = s.load {
            // Corrections learned only under closed-loop users answer rates through the
            // closed loop with the same throughput (see [`crate::open_loop`]).
            let closed = Scenario {
                load: crate::Load::Users(1),
                ..s.clone()
            };
            if !self.corrects(s) && self.corrects(&closed) {
                return crate::open_loop::via_closed_loop(self, &self.memo, s, rate, e.max_batch);
            }
        }
        let mut f = Vec::with_capacity(self.feature_names.len());
        features::push(&mut f, s, self.options.use_physics.then_some(&e));
        Ok(self.finish(s, &e, fit, &f))
    }
}

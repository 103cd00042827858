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
use pilot_core::metrics::{Metric, Stat, Summary};
use pilot_core::schema::MetricColumn;
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
    /// Interval ends (log-residual quantiles, as `lower`/`upper`) for the `engine/mode` pairs
    /// with enough held-out residuals of their own; other pairs use `lower`/`upper`.
    #[serde(default)]
    pub by_engine_mode: BTreeMap<String, (f64, f64)>,
    /// `engine/mode` pairs where, held out by LLM, the physics alone erred less than with the
    /// correction: there the correction is not applied (and `by_engine_mode` holds the
    /// physics' own interval).
    #[serde(default)]
    pub physics_only: BTreeSet<String>,
}

impl TargetModel {
    /// Whether this target's trees were trained on the engine/mode `pair` ([`scenario_pair`]).
    fn trained_on(&self, pair: &str) -> bool {
        self.engine_modes.is_empty() || self.engine_modes.contains(pair)
    }

    /// The log-correction for a scenario of `pair` with features `f`: the trees', or none
    /// where the pair answers with the physics alone ([`TargetModel::physics_only`]).
    fn correction(&self, pair: &str, f: &[f64]) -> f64 {
        if self.physics_only.contains(pair) {
            0.0
        } else {
            self.ensemble.predict(f)
        }
    }

    /// The interval ends for a scenario of `pair`: the pair's own, else the overall ones.
    fn interval(&self, pair: &str) -> (f64, f64) {
        self.by_engine_mode
            .get(pair)
            .copied()
            .unwrap_or((self.lower, self.upper))
    }
}

/// What one engine in one load mode rests on ([`Predictor::evidence_for`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    /// The datasets its training rows came from, with their row counts.
    pub sources: Vec<(String, usize)>,
    /// The targets trained on its rows.
    pub measured: Vec<String>,
    /// Those that answer with the physics alone ([`TargetModel::physics_only`]).
    pub physics_only: Vec<String>,
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
    /// Per `engine/mode` pair, the training rows by the dataset they came from (the `source`
    /// column up to its first `:`, e.g. `aiconfigurator`), so an answer can say which
    /// measurements it rests on.
    #[serde(default)]
    pub engine_mode_sources: BTreeMap<String, BTreeMap<String, usize>>,
}

/// A scenario's `engine/mode` key ([`pair_key`]), the one key training and prediction use.
pub(crate) fn scenario_pair(s: &Scenario) -> String {
    pair_key(s.engine.as_deref().unwrap_or(""), s.load.mode().name())
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

    /// What the corrections for `engine` in load `mode` rest on (empty when that pair was
    /// never measured).
    pub fn evidence_for(&self, engine: Option<&str>, mode: &str) -> Evidence {
        let key = pair_key(engine.unwrap_or(""), mode);
        let targets = |keep: &dyn Fn(&TargetModel) -> bool| {
            self.targets
                .iter()
                .filter(|t| keep(t))
                .map(|t| t.target.clone())
                .collect()
        };
        Evidence {
            sources: self
                .domain
                .engine_mode_sources
                .get(&key)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default(),
            measured: targets(&|t| t.engine_modes.contains(&key)),
            physics_only: targets(&|t| t.physics_only.contains(&key)),
        }
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

    /// Whether `s` (with feature vector `f`) lies outside the training domain; `corrects` is
    /// [`Predictor::corrects`] of `s`.
    fn out_of_domain(&self, s: &Scenario, f: &[f64], corrects: bool) -> bool {
        let engine = s.engine.as_deref().unwrap_or("").to_ascii_lowercase();
        if !self.domain.engines.contains(&engine)
            || !self.domain.modes.contains(s.load.mode().name())
            || !corrects
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

    /// Whether the corrections apply to `s`, and the physics model and estimate the
    /// prediction starts from: where the corrections do not apply, the engine's calibrated
    /// physics answers alone (with its own estimate unless `e` already is one).
    fn base_estimate(&self, s: &Scenario, e: &Estimate) -> (bool, PhysicsModel, Estimate) {
        let corrects = self.corrects(s);
        let physics = self.physics_model(self.options.calibrate || !corrects);
        let e = if corrects || self.options.calibrate {
            *e
        } else {
            physics.estimate(s).map_or(*e, |(x, _)| x)
        };
        (corrects, physics, e)
    }

    /// Each target's column, read once per prediction (`None`: a name that is no metric
    /// column, which prediction skips, as `set_metric_value` would).
    fn target_columns(&self) -> Vec<Option<MetricColumn>> {
        self.targets
            .iter()
            .map(|t| MetricColumn::parse(&t.target))
            .collect()
    }

    /// A target's log-space base (the physics value's log, or 0 without physics), `None`
    /// when the physics lacks the metric (the target is then left as the physics has it).
    fn base(&self, phys: &Summary, c: MetricColumn) -> Option<f64> {
        if self.options.use_physics {
            c.get(phys).map(f64::ln)
        } else {
            Some(0.0)
        }
    }

    /// Predicts from an estimate and feature vector (shared by `predict`, `predict_many` and
    /// the evaluation).
    pub(crate) fn finish(&self, s: &Scenario, e: &Estimate, fit: Fit, f: &[f64]) -> Prediction {
        let (corrects, physics, e) = self.base_estimate(s, e);
        let pair = scenario_pair(s);
        let mut row = s.to_row("pilot-predict:predictor");
        row.max_batch = Some(e.max_batch as u32);
        let phys = physics.summary(s, &e);
        let columns = self.target_columns();
        let mut point = phys.clone();
        let mut lo = phys.clone();
        let mut hi = phys.clone();
        let mut corrected: Vec<MetricColumn> = Vec::with_capacity(columns.len());
        for (t, &c) in self.targets.iter().zip(&columns) {
            let Some(c) = c else { continue };
            if corrects && !t.trained_on(&pair) {
                // Left to its family's corrected sibling (a p50 from a mean) in `harmonize`.
                continue;
            }
            corrected.push(c);
            let Some(base) = self.base(&phys, c) else {
                continue;
            };
            let (z, lower, upper) = if corrects {
                let (lower, upper) = t.interval(&pair);
                (t.correction(&pair, f), lower, upper)
            } else {
                // The physics model's own error over the training rows, widened to hold the
                // point itself: that error may be one-sided (physics too fast throughout).
                (0.0, t.physics_lower.min(0.0), t.physics_upper.max(0.0))
            };
            c.set(&mut point, Some((base + z).exp()));
            c.set(&mut lo, Some((base + z + lower).exp()));
            c.set(&mut hi, Some((base + z + upper).exp()));
        }
        let trained = |c: MetricColumn| corrected.contains(&c);
        for r in [&mut point, &mut lo, &mut hi] {
            harmonize(r, &phys, trained);
        }
        row.metrics = point;
        Prediction {
            out_of_domain: self.out_of_domain(s, f, corrects),
            row,
            lower: lo,
            upper: hi,
            fit,
        }
    }

    /// The `request_throughput_rps` of [`LatencyModel::predict`]'s row for a closed-loop
    /// scenario (0 where it has none), bit for bit, without the rest of the prediction: the
    /// open loop's search for the population that reaches a rate reads only this number
    /// ([`crate::open_loop`]). Only the throughput targets' trees run, and no interval.
    pub(crate) fn closed_loop_rps(&self, s: &Scenario) -> Result<f64, PredictError> {
        debug_assert!(!matches!(s.load, crate::Load::Rate(_)));
        let rps = |m: &Summary| MetricColumn::RequestThroughput.get(m).unwrap_or(0.0);
        let physics = self.physics();
        let (e, fit) = physics.estimate(s)?;
        if let Fit::DoesNotFit { .. } = fit {
            return Ok(rps(&physics.predict(s)?.row.metrics));
        }
        let (corrects, physics, own) = self.base_estimate(s, &e);
        let pair = scenario_pair(s);
        // The same steps as `finish`, for the two columns the request throughput reads:
        // `harmonize` scales the physics' request throughput by the output throughput's
        // correction (and a trained request-throughput target counts only without physics).
        let phys = physics.summary(s, &own);
        let mut point = phys.clone();
        let mut f = Vec::new();
        for t in &self.targets {
            let Some(c) = MetricColumn::parse(&t.target) else {
                continue;
            };
            if c != MetricColumn::OutputThroughput && c != MetricColumn::RequestThroughput
                || corrects && !t.trained_on(&pair)
            {
                continue;
            }
            let Some(base) = self.base(&phys, c) else {
                continue;
            };
            let z = if corrects {
                if f.is_empty() {
                    f.reserve(self.feature_names.len());
                    features::push(&mut f, s, self.options.use_physics.then_some(&e));
                }
                t.correction(&pair, &f)
            } else {
                0.0
            };
            c.set(&mut point, Some((base + z).exp()));
        }
        harmonize_request_throughput(&mut point, &phys);
        Ok(rps(&point))
    }
}

/// Keeps a predicted summary coherent: metrics without their own correction here (`trained`
/// says which have one) scale with their family's correction, and percentiles never decrease.
/// A family's correction comes from the first corrected column of its sources: its p50
/// (TPOT: ITL's p50, which it followed before it had trees of its own), else another of its
/// statistics (a mean, where a dataset measured only means), else the same quantity's other
/// family (ITL and TPOT; TTFT and TTFT per prompt token). E2E with none of its own follows
/// TTFT plus the output's TPOTs.
fn harmonize(r: &mut Summary, phys: &Summary, trained: impl Fn(MetricColumn) -> bool) {
    let ratio = |r: &Summary, c: MetricColumn| match (c.get(r), c.get(phys)) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => 1.0,
    };
    use Metric::{E2e, Itl, Nttft, Tpot, Ttft};
    // (family, the metric whose p50 is its first source, the metrics scanned after it).
    const FAMILIES: [(Metric, Metric, &[Metric]); 5] = [
        (Ttft, Ttft, &[Ttft, Nttft]),
        (Nttft, Nttft, &[Nttft, Ttft]),
        (Itl, Itl, &[Itl, Tpot]),
        (E2e, E2e, &[E2e]),
        (Tpot, Itl, &[Tpot, Itl]),
    ];
    for (metric, first, scan) in FAMILIES {
        let p50 = MetricColumn::Latency(first, Stat::P50);
        let src = std::iter::once(p50)
            .chain(scan.iter().flat_map(|&m| {
                Stat::ALL
                    .iter()
                    .map(move |&st| MetricColumn::Latency(m, st))
            }))
            .find(|&c| trained(c));
        let k = match src {
            Some(c) => ratio(r, c),
            None if metric == E2e => e2e_ratio(r, phys),
            None => ratio(r, p50),
        };
        let mut last = 0.0_f64;
        for stat in Stat::ALL {
            let c = MetricColumn::Latency(metric, stat);
            if let Some(v) = c.get(r) {
                let mut v = if trained(c) {
                    v
                } else {
                    c.get(phys).unwrap_or(v) * k
                };
                if stat != Stat::Mean {
                    v = v.max(last);
                    last = v;
                }
                c.set(r, Some(v));
            }
        }
    }
    harmonize_request_throughput(r, phys);
}

/// The last step of [`harmonize`]: request throughput scales with the output throughput's
/// correction.
fn harmonize_request_throughput(r: &mut Summary, phys: &Summary) {
    let k = match (
        MetricColumn::OutputThroughput.get(r),
        MetricColumn::OutputThroughput.get(phys),
    ) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => 1.0,
    };
    if let Some(v) = MetricColumn::RequestThroughput.get(phys) {
        MetricColumn::RequestThroughput.set(r, Some(v * k));
    }
}

impl Predictor {
    /// [`LatencyModel::predict_many`] on `threads` threads, answers in the scenarios' order.
    ///
    /// The scenarios are taken profile by profile (sorted by LLM, GPU, count, engine and
    /// lengths, a stable sort), so that the rates of one profile meet the open loop's memo of
    /// its closed-loop predictions ([`crate::open_loop`]) while it is still there; the threads
    /// take blocks of that order as they free up (profiles cost very differently: one that
    /// does not fit is nearly free). Each prediction depends only on its scenario, so neither
    /// the order nor the split changes an answer.
    fn predict_on(&self, s: &[Scenario], threads: usize) -> Vec<Result<Prediction, PredictError>> {
        type Profile<'a> = (
            &'a str,
            &'a str,
            u32,
            Option<&'a str>,
            u64,
            u64,
            &'static str,
        );
        fn profile(x: &Scenario) -> Profile<'_> {
            (
                &x.model.id,
                &x.gpu.name,
                x.gpu_count,
                x.engine.as_deref(),
                x.input_tokens.0,
                x.output_tokens.0,
                x.load.mode().name(),
            )
        }
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| profile(&s[a]).cmp(&profile(&s[b])));
        let mut out: Vec<Option<Result<Prediction, PredictError>>> =
            std::iter::repeat_with(|| None).take(s.len()).collect();
        if threads <= 1 || s.len() < 2 {
            for i in order {
                out[i] = Some(self.predict(&s[i]));
            }
        } else {
            /// Scenarios a thread takes at a time.
            const BLOCK: usize = 32;
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = || {
                let mut mine = Vec::new();
                loop {
                    let b = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
                    let Some(block) = order.get(b..(b + BLOCK).min(order.len())) else {
                        break;
                    };
                    if block.is_empty() {
                        break;
                    }
                    mine.extend(block.iter().map(|&i| (i, self.predict(&s[i]))));
                }
                mine
            };
            let parts: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads.min(s.len()))
                    .map(|_| scope.spawn(work))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a prediction thread panicked"))
                    .collect()
            });
            for (i, r) in parts.into_iter().flatten() {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.expect("every scenario is predicted once"))
            .collect()
    }
}

/// The correction of an E2E latency with no trees of its own: a request's E2E is its TTFT
/// plus (output − 1) TPOTs, so it scales as their corrected sum over the physics' (1 where
/// either mean or the output length is missing).
fn e2e_ratio(r: &Summary, phys: &Summary) -> f64 {
    let parts = |m: &Summary| {
        let o = m.output_tokens_mean?;
        let ttft = MetricColumn::Latency(Metric::Ttft, Stat::Mean).get(m)?;
        let tpot = MetricColumn::Latency(Metric::Tpot, Stat::Mean).get(m)?;
        Some(ttft + (o - 1.0).max(0.0) * tpot)
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
        if s.len() < 256 {
            return self.predict_on(s, 1);
        }
        self.predict_on(s, threads)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Load;
    use crate::scenario::Resolver;
    use pilot_core::schema::metric_value;
    use pilot_core::units::{RequestsPerSec, Tokens};

    /// Closed loops, offline batches and open-loop rates over LLMs, GPUs, GPU counts and
    /// engines, some that do not fit, some the corrections do not cover, some answered
    /// through the closed loop.
    fn mixed(n: usize) -> Vec<Scenario> {
        let mut r = Resolver::default();
        let models = [
            "llama-2-7b",
            "llama-2-70b",
            "mixtral-8x7b",
            "flan-t5-xl",
            "Qwen/Qwen3-32B",
            "deepseek-ai/DeepSeek-V3",
        ];
        let gpus = ["A10", "A100-SXM-80GB", "H100", "MI300X", "L40S"];
        let engines = [Some("vllm"), Some("tgis"), Some("tensorrt-llm"), None];
        (0..n)
            .map(|i| {
                let load = match i % 3 {
                    0 => Load::Users(1 << (i % 8)),
                    1 => Load::Batch(1 << (i % 7)),
                    _ => Load::Rate(RequestsPerSec(0.5 * (1 + i % 16) as f64)),
                };
                let mut s = Scenario::new(
                    r.model(models[i % models.len()]).unwrap(),
                    r.gpu(gpus[(i / models.len()) % gpus.len()]).unwrap(),
                    1 << (i % 4),
                    load,
                    Tokens(128 << (i % 4)),
                    Tokens(64 << (i % 5)),
                );
                s.engine = engines[i % engines.len()].map(str::to_string);
                s
            })
            .collect()
    }

    /// Exact equality, NaN included: the `Debug` text of an `f64` reads back to its bits.
    fn same(a: &Result<Prediction, PredictError>, b: &Result<Prediction, PredictError>) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn predict_many_is_predict_one_by_one() {
        let p = Predictor::shipped().unwrap();
        let s = mixed(300);
        let one: Vec<_> = s.iter().map(|x| p.predict(x)).collect();
        let kinds = |k: fn(&Load) -> bool| s.iter().filter(|x| k(&x.load)).count();
        assert!(kinds(|l| matches!(l, Load::Rate(_))) >= 90);
        assert!(one.iter().any(|x| x.is_ok()));
        for (name, got) in [
            ("predict_many", p.predict_many(&s)),
            ("3 threads", p.predict_on(&s, 3)),
            ("7 threads", p.predict_on(&s, 7)),
        ] {
            assert_eq!(got.len(), s.len(), "{name}");
            for (i, (a, b)) in one.iter().zip(&got).enumerate() {
                assert!(
                    same(a, b),
                    "{name}, scenario {i}: {a:?}\nvs one by one {b:?}"
                );
            }
        }
    }

    #[test]
    fn closed_loop_throughput_is_the_predictions_bit_for_bit() {
        let p = Predictor::shipped().unwrap();
        let mut checked = 0;
        for mut s in mixed(120) {
            if let Load::Rate(_) = s.load {
                s.load = Load::Users(3);
            }
            let Ok(full) = p.predict(&s) else {
                assert!(p.closed_loop_rps(&s).is_err());
                continue;
            };
            let want = metric_value(&full.row, "request_throughput_rps").unwrap_or(0.0);
            let got = p.closed_loop_rps(&s).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s:?}: {got} vs {want}");
            checked += 1;
        }
        assert!(checked > 100);
    }
}

//! The capacity search over the candidate profiles, and the ranking by cost.
//!
//! The profiles (GPU type x engine x weight format x KV-cache dtype x serving layout) come
//! from [`crate::space`]. For each the search:
//! 1. asks the model whether it fits at all (weights plus the KV cache one request needs);
//! 2. finds the largest load one replica sustains with every SLO met ([`capacity`]): an
//!    exponential then binary search on the model's predictions (integers for users,
//!    continuous for request rates), not a power-of-two grid; latency grows with load, so the
//!    first violation bounds the search;
//! 3. replicas = ceil(demand / capacity), cost = replicas x the price of one replica: the
//!    cheapest offer of each worker's GPUs on the chosen cloud(s) ([`replica_price`]);
//! 4. predicts the latency each replica sees at its share of the demand, and the headroom
//!    left under each SLO there; a candidate is feasible only if that prediction meets every
//!    SLO (the search's answer is checked, not trusted), with at most [`MAX_REPLICAS`].
//!
//! The demand is a [`Load`]: closed-loop users or an open-loop rate. Demands, lengths and
//! counts are checked by [`pilot_core::validate`] first: an infinite rate, zero users or an
//! offline batch (which has no steady traffic to size replicas for) is an error, not a
//! search.
//!
//! With [`Margin::Upper`] (the default) an SLO is met only if the upper end of the
//! predictor's interval meets it, so uncertainty costs money instead of violations.

use crate::space::{KvChoice, Profile, ServingModes, SpaceOptions, space};
use pilot_core::gpu::GpuSpec;
use pilot_core::layout::Serving;
use pilot_core::llm::LlmSpec;
use pilot_core::price::{PriceCatalog, PriceEntry};
use pilot_core::quant::Quantization;
use pilot_core::slo::Slo;
use pilot_core::units::{Dtype, Tokens, UsdPerHour, UsdPerMillionTokens};
use pilot_core::validate::{self, InvalidValue};
use pilot_predict::{Fit, LatencyModel, Load, PredictError, Prediction, Scenario};
use rayon::prelude::*;

/// How prediction uncertainty is turned into safety.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Margin {
    /// Compare the point prediction with the SLO.
    None,
    /// Compare the upper end of the prediction interval (default).
    Upper,
    /// Compare the point prediction times (1 + this fraction).
    Factor(f64),
    /// Only in `pilot eval recommend`: a [`Margin::Factor`] chosen per held-out LLM by the
    /// same benchmark run on the other LLMs (nested cross-validation).
    Nested,
}

/// What to recommend for.
#[derive(Debug, Clone)]
pub struct RecommendOptions {
    pub model: LlmSpec,
    pub slos: Vec<Slo>,
    /// The traffic to serve: [`Load::Users`] (a closed loop) or [`Load::Rate`] (Poisson
    /// arrivals); a [`Load::Batch`] is refused with [`RecommendError::Demand`].
    pub demand: Load,
    pub input_tokens: Tokens,
    pub output_tokens: Tokens,
    /// GPU types to consider (all the catalog's priced GPUs when the caller passes them all).
    pub gpus: Vec<GpuSpec>,
    /// The widest worker considered (GPUs per engine instance).
    pub max_gpus: u32,
    /// Weight formats to consider.
    pub quantizations: Vec<Quantization>,
    /// KV-cache dtypes (`None` = the engine's default); empty = the default plus fp8 where the
    /// GPU and engine have it.
    pub kv_caches: Vec<KvChoice>,
    /// Aggregated, disaggregated or both.
    pub serving: ServingModes,
    /// Engines to consider (`None` = the predictor's default).
    pub engines: Vec<Option<String>>,
    /// Only this cloud's prices (`None` = the cheapest anywhere).
    pub cloud: Option<String>,
    pub spot: bool,
    pub margin: Margin,
    /// Predict a latency-vs-load curve for every feasible candidate (`--explain`).
    pub explain: bool,
}

impl RecommendOptions {
    /// The search space these options describe.
    pub fn space(&self) -> SpaceOptions<'_> {
        SpaceOptions {
            model: &self.model,
            gpus: &self.gpus,
            max_gpus: self.max_gpus,
            quantizations: &self.quantizations,
            kv_caches: &self.kv_caches,
            engines: &self.engines,
            serving: self.serving,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            demand: self.demand,
        }
    }
}

/// Why a candidate cannot serve the demand, or that it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Serves the demand with this many replicas.
    Feasible,
    /// Weights plus KV cache do not fit.
    DoesNotFit(String),
    /// Even one user / the smallest rate breaks an SLO.
    SloUnmet(String),
    /// No price for this GPU count on the chosen cloud(s).
    NoPrice(String),
    /// The model could not predict it.
    Error(String),
}

/// A [`Verdict`] with its candidate's profile, before the search fills the rest.
pub fn candidate(p: &Profile, s: &Scenario) -> Candidate {
    Candidate {
        profile: p.clone(),
        kv_cache: s.kv_dtype(),
        batch_limit: None,
        verdict: Verdict::Feasible,
        capacity: None,
        replicas: None,
        price: None,
        replica_price: None,
        cost: None,
        cost_per_million_output_tokens: None,
        at_load: None,
        headroom: None,
        curve: Vec::new(),
        shortfall: None,
    }
}

impl Verdict {
    pub fn reason(&self) -> String {
        match self {
            Verdict::Feasible => String::new(),
            Verdict::DoesNotFit(r) => format!("memory: {r}"),
            Verdict::SloUnmet(r) => format!("SLO: {r}"),
            Verdict::NoPrice(r) => format!("price: {r}"),
            Verdict::Error(r) => format!("prediction: {r}"),
        }
    }
}

/// One profile and what it would take to serve the demand with it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The replica's shape: GPU, serving layout (`serving.gpus()` GPUs, all its workers),
    /// weight format, engine, and the KV-cache dtype when one is chosen (an engine flag).
    pub profile: Profile,
    /// The KV-cache dtype in effect (the engine's default, or the one chosen).
    pub kv_cache: Dtype,
    /// The most requests one worker (the decode workers, when disaggregated) runs at once in
    /// the prediction: its KV-cache budget, capped by the engine's default sequence limit. A
    /// deployment must be started with it (`--emit cmd`) for the prediction to hold.
    pub batch_limit: Option<u32>,
    pub verdict: Verdict,
    /// The largest load one replica sustains within the SLOs.
    pub capacity: Option<Load>,
    pub replicas: Option<u32>,
    pub price: Option<PriceEntry>,
    /// One replica's price per hour (every worker's GPUs).
    pub replica_price: Option<UsdPerHour>,
    pub cost: Option<UsdPerHour>,
    pub cost_per_million_output_tokens: Option<UsdPerMillionTokens>,
    /// The prediction at each replica's share of the demand.
    pub at_load: Option<Prediction>,
    /// min over SLOs of (threshold - predicted) / threshold at that load.
    pub headroom: Option<f64>,
    /// (load, prediction) pairs, with `explain`.
    pub curve: Vec<(f64, Prediction)>,
    /// For a candidate that misses an SLO even at the smallest load: the SLO that binds
    /// hardest there (the largest predicted / threshold).
    pub shortfall: Option<Shortfall>,
}

/// How far a candidate is from an SLO at the smallest load.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// The SLO, as written (`ttft:p50<=200ms`).
    pub slo: String,
    /// What was held against it (the interval's upper end under [`Margin::Upper`]).
    pub predicted: f64,
    pub threshold: f64,
}

impl Shortfall {
    /// predicted / threshold: above 1 misses.
    pub fn ratio(&self) -> f64 {
        self.predicted / self.threshold
    }
}

/// The SLO a prediction misses by the largest factor; `None` when none is missed or none
/// could be read.
fn shortfall(slos: &[Slo], p: &Prediction, margin: Margin) -> Option<Shortfall> {
    slos.iter()
        .filter_map(|s| {
            checked_value(s, p, margin).map(|v| Shortfall {
                slo: s.to_string(),
                predicted: v,
                threshold: s.threshold.0,
            })
        })
        .filter(|f| f.ratio() > 1.0)
        .max_by(|a, b| a.ratio().total_cmp(&b.ratio()))
}

/// The ranked answer.
#[derive(Debug, Clone)]
pub struct Recommendation {
    /// Feasible candidates cheapest first, then the rejected ones.
    pub candidates: Vec<Candidate>,
    pub demand: Load,
    /// Combinations asked for that no engine can start, left out of the search.
    pub skipped: usize,
}

impl Recommendation {
    pub fn feasible(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.verdict == Verdict::Feasible)
    }
    pub fn best(&self) -> Option<&Candidate> {
        self.feasible().next()
    }

    /// Which candidates are on the cost-vs-latency Pareto frontier, aligned with
    /// [`Recommendation::candidates`]: feasible, and no other feasible candidate costs no more
    /// and predicts no worse on every SLO's metric (point predictions at each one's share of
    /// the demand) while being better on one. The cheapest cost is always on it (by the
    /// cheapest candidate or one costing the same that is faster); a dearer one is there only
    /// because it buys lower latency.
    pub fn pareto(&self, slos: &[Slo]) -> Vec<bool> {
        let point = |c: &Candidate| -> Option<Vec<f64>> {
            let p = c.at_load.as_ref()?;
            let mut v = vec![c.cost?.0];
            for s in slos {
                v.push(s.value_in(&p.row.metrics)?);
            }
            Some(v)
        };
        let points: Vec<Option<Vec<f64>>> = self
            .candidates
            .iter()
            .map(|c| (c.verdict == Verdict::Feasible).then(|| point(c)).flatten())
            .collect();
        let dominates = |a: &[f64], b: &[f64]| {
            a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
        };
        points
            .iter()
            .map(|p| {
                p.as_ref()
                    .is_some_and(|p| !points.iter().flatten().any(|q| dominates(q, p)))
            })
            .collect()
    }
}

/// Why recommending failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("no SLO given: pass at least one, e.g. --slo ttft=200ms --slo itl=50ms")]
    NoSlo,
    #[error("no GPU type to consider: {0}")]
    NoGpu(String),
    #[error(
        "no engine can start what was asked: {reasons}. Widen --engine, --quantization, --gpus or --max-gpus"
    )]
    NothingDeployable { reasons: String },
    #[error("demand: {0}")]
    Demand(InvalidValue),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Predict(#[from] PredictError),
}

/// The value an SLO is checked against: point prediction, or its upper interval end (where
/// the interval has one; never below the point).
fn checked_value(slo: &Slo, p: &Prediction, margin: Margin) -> Option<f64> {
    let point = slo.value_in(&p.row.metrics)?;
    Some(match margin {
        Margin::None => point,
        Margin::Factor(k) => point * (1.0 + k),
        Margin::Nested => point,
        Margin::Upper => slo.value_in(&p.upper).unwrap_or(point).max(point),
    })
}

/// One SLO held against a prediction: the value checked (see [`checked_value`]), `None`
/// where the model does not predict the SLO's metric.
struct Check<'s> {
    slo: &'s Slo,
    value: Option<f64>,
}

impl Check<'_> {
    /// Met: predicted, and within the threshold. The one comparison [`judge`] and
    /// [`violation`] make, so they cannot disagree.
    fn met(&self) -> bool {
        self.value.is_some_and(|v| v <= self.slo.threshold.0)
    }

    /// Checked value / threshold; infinite where not predicted.
    fn ratio(&self) -> f64 {
        self.value
            .map_or(f64::INFINITY, |v| v / self.slo.threshold.0)
    }
}

/// Each SLO held against `p`, in the order given.
fn checks<'s>(slos: &'s [Slo], p: &Prediction, margin: Margin) -> impl Iterator<Item = Check<'s>> {
    slos.iter().map(move |slo| Check {
        slo,
        value: checked_value(slo, p, margin),
    })
}

/// Whether a prediction meets every SLO (exactly when [`violation`] is `None`), and how far
/// it is from the one that binds: the largest checked value / threshold (infinite where the
/// model does not fit or does not predict an SLO's metric). The capacity search interpolates
/// on that ratio; the text of a violation is built only for the answer.
fn judge(slos: &[Slo], p: &Prediction, margin: Margin) -> (bool, f64) {
    if matches!(p.fit, Fit::DoesNotFit { .. }) {
        return (false, f64::INFINITY);
    }
    checks(slos, p, margin).fold((true, 0.0), |(ok, worst), c| {
        (ok && c.met(), worst.max(c.ratio()))
    })
}

/// The first SLO a prediction breaks, as text with both numbers; `None` if all are met.
/// A missing prediction for an SLO's metric counts as broken.
pub fn violation(slos: &[Slo], p: &Prediction, margin: Margin) -> Option<String> {
    if let Fit::DoesNotFit { reason } = &p.fit {
        return Some(reason.clone());
    }
    let broken = checks(slos, p, margin).find(|c| !c.met())?;
    let s = broken.slo;
    Some(match broken.value {
        Some(v) => format!(
            "{} {} > {}",
            s.column(),
            compared(s, p, margin, v),
            s.threshold.0
        ),
        None => format!("{} not predicted", s.column()),
    })
}

/// What was held against an SLO, in words: the point prediction, or the point and the
/// margin's value when the margin raised it (a rejection must not show the interval's upper
/// end as if it were the prediction).
fn compared(slo: &Slo, p: &Prediction, margin: Margin, checked: f64) -> String {
    let point = slo.value_in(&p.row.metrics).unwrap_or(checked);
    match margin {
        Margin::Upper if checked > point => {
            format!("predicted {point:.1}, interval upper end {checked:.1}")
        }
        Margin::Factor(k) if k != 0.0 => {
            format!(
                "predicted {point:.1}, {:+.0}% margin {checked:.1}",
                100.0 * k
            )
        }
        _ => format!("predicted {point:.1}"),
    }
}

/// min over SLOs of (threshold - value) / threshold.
fn headroom(slos: &[Slo], p: &Prediction, margin: Margin) -> Option<f64> {
    slos.iter()
        .map(|s| checked_value(s, p, margin).map(|v| (s.threshold.0 - v) / s.threshold.0))
        .try_fold(f64::INFINITY, |acc, h| h.map(|h| acc.min(h)))
        .filter(|h| h.is_finite())
}

/// The largest load up to `demand` (in its mode) one replica of `base` sustains within the
/// SLOs, by exponential then binary search on the model; `Ok(None)` if even the smallest load
/// fails. Users are searched over integers; rates to 1% relative precision.
pub fn capacity(
    model: &dyn LatencyModel,
    base: &Scenario,
    demand: Load,
    slos: &[Slo],
    margin: Margin,
) -> Result<Option<Load>, PredictError> {
    largest_level(model, base, demand, slos, margin, None).map(|l| l.map(|l| demand.with_level(l)))
}

/// [`capacity`] as a level of `demand`'s mode; `known`, a prediction the caller already has
/// at a level, saves predicting the smallest level again when it is that one.
///
/// The answer is what a bisection between the smallest level and the demand finds (the
/// largest level that meets the SLOs, to one user or within 1% of a rate, latency growing
/// with load), in fewer predictions: the demand itself is tried first (a replica that
/// serves it all needs no search), then each probe interpolates where the binding SLO's
/// predicted/threshold ratio crosses 1 (regula falsi on log level and log ratio, Illinois'
/// variant), falling back to bisection where the ratio is not finite or a probe did not
/// halve the bracket. Why: the search runs for each of thousands of candidates per call.
fn largest_level(
    model: &dyn LatencyModel,
    base: &Scenario,
    demand: Load,
    slos: &[Slo],
    margin: Margin,
    known: Option<(f64, &Prediction)>,
) -> Result<Option<f64>, PredictError> {
    let limit = demand.level();
    let integer = !matches!(demand, Load::Rate(_));
    let mut s = base.clone();
    let mut probe = |level: f64| -> Result<(bool, f64), PredictError> {
        s.load = demand.with_level(level);
        Ok(judge(slos, &model.predict(&s)?, margin))
    };
    let smallest = if integer {
        1.0
    } else {
        (limit / 1024.0).min(0.01)
    };
    let (ok, mut good_ratio) = match known {
        Some((level, p)) if level == smallest => judge(slos, p, margin),
        _ => probe(smallest)?,
    };
    if !ok {
        return Ok(None);
    }
    if smallest >= limit {
        return Ok(Some(limit));
    }
    let (ok, mut bad_ratio) = probe(limit)?;
    if ok {
        return Ok(Some(limit));
    }
    let (mut good, mut bad) = (smallest, limit);
    let done = |good: f64, bad: f64| {
        if integer {
            bad - good <= 1.0
        } else {
            bad - good <= 0.01 * good
        }
    };
    // Which end the last probe moved: when one end moves twice running, the other end's log
    // ratio is halved (Illinois), so that the interpolation stops creeping from one side.
    let mut last_moved_good: Option<bool> = None;
    let mut bisect_next = false;
    while !done(good, bad) {
        let width = bad - good;
        let interpolated =
            (!bisect_next && good_ratio > 0.0 && bad_ratio.is_finite() && bad_ratio > good_ratio)
                .then(|| {
                    let (lg, lb) = (good.ln(), bad.ln());
                    let (yg, yb) = (good_ratio.ln(), bad_ratio.ln());
                    (lg + (0.0 - yg) * (lb - lg) / (yb - yg)).exp()
                })
                .filter(|x| x.is_finite());
        // Bisection: of users, or of a rate's logarithm (the bracket can span 1,024x).
        let mut mid = interpolated.unwrap_or(if integer {
            (good + bad) / 2.0
        } else {
            (good * bad).sqrt()
        });
        if integer {
            mid = mid.round().clamp(good + 1.0, bad - 1.0);
        } else {
            // Not closer to an end than a tenth of the precision asked for.
            let eps = 0.001 * good;
            mid = mid.clamp(good + eps, bad - eps);
        }
        let (ok, ratio) = probe(mid)?;
        if ok {
            good = mid;
            good_ratio = ratio;
            if last_moved_good == Some(true) {
                bad_ratio = bad_ratio.sqrt();
            }
            last_moved_good = Some(true);
        } else {
            bad = mid;
            bad_ratio = ratio;
            if last_moved_good == Some(false) {
                good_ratio = good_ratio.sqrt();
            }
            last_moved_good = Some(false);
        }
        bisect_next = !bisect_next && bad - good > 0.5 * width;
    }
    Ok(Some(good))
}

/// The most requests one worker runs at once in a prediction: the predicted KV budget per
/// worker (the decode workers' when disaggregated), capped by the engine's default limit.
fn batch_limit(s: &Scenario, p: &Prediction) -> Option<u32> {
    let workers = match s.serving {
        Serving::Aggregated(_) => 1,
        Serving::Disaggregated { decode, .. } => decode.count(),
    };
    let budget = p.row.max_batch.map(|b| (b / workers).max(1));
    let cap = s.engine_batch_defaults().and_then(|d| d.max_sequences);
    match (budget, cap) {
        (Some(b), Some(c)) => Some(b.min(c)),
        (b, c) => b.or(c),
    }
}

/// The most replicas of one profile pilot recommends. Why a bound: a replica count is a
/// `u32`, and `demand / capacity` of an absurd demand saturates it into 4,294,967,295; far
/// below that no deployment is a real answer, so the candidate is rejected instead.
pub const MAX_REPLICAS: u32 = 1_000_000;

/// Replicas that serve `demand` at `capacity` each (`ceil`, less a rounding tolerance), or
/// `None` when that is more than [`MAX_REPLICAS`] or not a number.
fn replicas_for(demand: f64, capacity: f64) -> Option<u32> {
    let n = (demand / capacity - 1e-9).ceil().max(1.0);
    (n.is_finite() && n <= f64::from(MAX_REPLICAS)).then_some(n as u32)
}

/// Enumerates, evaluates and ranks every candidate.
pub fn recommend(
    opts: &RecommendOptions,
    model: &dyn LatencyModel,
    prices: &PriceCatalog,
) -> Result<Recommendation, RecommendError> {
    if opts.slos.is_empty() {
        return Err(RecommendError::NoSlo);
    }
    if opts.gpus.is_empty() {
        return Err(RecommendError::NoGpu(
            "the GPU list is empty; see `pilot catalog gpus`".into(),
        ));
    }
    // The one validation every road into pilot takes: an infinite rate or zero users would
    // otherwise be searched, priced and ranked as if it were a load.
    match opts.demand {
        Load::Users(_) => opts.demand.validate("users").map(|_| ()),
        Load::Rate(_) => opts.demand.validate("rate").map(|_| ()),
        Load::Batch(_) => Err(offline_demand(opts.demand)),
    }
    .map_err(RecommendError::Demand)?;
    validate::count("input tokens", opts.input_tokens.0 as f64)?;
    validate::count("output tokens", opts.output_tokens.0 as f64)?;
    validate::count("max GPUs", f64::from(opts.max_gpus))?;
    let space_opts = opts.space();
    let space = space(&space_opts);
    if space.profiles.is_empty() {
        return Err(RecommendError::NothingDeployable {
            reasons: space.skipped.iter().cloned().collect::<Vec<_>>().join("; "),
        });
    }
    // Each candidate's search is independent: in parallel, collected in the space's order
    // (the sort below is stable, so ties rank as before).
    let mut out: Vec<Candidate> = space
        .profiles
        .par_iter()
        .map(|p| evaluate(opts, &space_opts, model, prices, p))
        .collect();
    out.sort_by(|a, b| {
        let key = |c: &Candidate| {
            (
                c.verdict != Verdict::Feasible,
                c.cost.map_or(f64::INFINITY, |x| x.0),
            )
        };
        let (fa, ca) = key(a);
        let (fb, cb) = key(b);
        fa.cmp(&fb)
            .then(ca.total_cmp(&cb))
            .then(
                b.headroom
                    .unwrap_or(-1.0)
                    .total_cmp(&a.headroom.unwrap_or(-1.0)),
            )
            .then(a.profile.serving.gpus().cmp(&b.profile.serving.gpus()))
    });
    Ok(Recommendation {
        candidates: out,
        demand: opts.demand,
        skipped: space.skipped_count,
    })
}

/// Why an offline batch is no demand: replicas are sized for traffic that keeps coming
/// (users who keep asking, or a rate); one batch submitted once has no steady state to serve.
fn offline_demand(load: Load) -> InvalidValue {
    InvalidValue {
        what: "load".into(),
        value: load.to_string(),
        reason: "recommend sizes replicas for steady traffic, and an offline batch is sent \
                 once; give concurrent users (--users) or a request rate (--rate)"
            .into(),
        line: None,
    }
}

/// The price of one worker of `gpus` GPUs: the cheapest offer of exactly that many, or, for
/// a worker spanning nodes (pipeline stages), that many whole nodes; with how many offers it
/// takes. `None` when nobody sells it.
fn worker_price<'p>(
    prices: &'p PriceCatalog,
    gpu: &GpuSpec,
    gpus: u32,
    cloud: Option<&str>,
    spot: bool,
) -> Option<(&'p PriceEntry, u32)> {
    if let Some(e) = prices.cheapest(&gpu.name, gpus, cloud, spot) {
        return Some((e, 1));
    }
    let node = gpu.gpus_per_node?;
    (gpus > node && gpus.is_multiple_of(node))
        .then(|| prices.cheapest(&gpu.name, node, cloud, spot))
        .flatten()
        .map(|e| (e, gpus / node))
}

/// The price of one replica: each worker at its own offer (a disaggregated replica's prefill
/// and decode workers are separate machines), and the offer of the widest worker, to cite.
pub fn replica_price<'p>(
    prices: &'p PriceCatalog,
    gpu: &GpuSpec,
    serving: Serving,
    cloud: Option<&str>,
    spot: bool,
) -> Result<(UsdPerHour, &'p PriceEntry), String> {
    let workers: Vec<(u32, u32)> = match serving {
        Serving::Aggregated(l) => vec![(1, l.gpus())],
        Serving::Disaggregated { prefill, decode } => vec![
            (prefill.count(), prefill.layout().gpus()),
            (decode.count(), decode.layout().gpus()),
        ],
    };
    let mut total = 0.0;
    let mut cited: Option<(&PriceEntry, u32)> = None;
    for (count, gpus) in workers {
        let Some((e, offers)) = worker_price(prices, gpu, gpus, cloud, spot) else {
            return Err(format!(
                "no {} price for {gpus} x {}{}",
                if spot { "spot" } else { "on-demand" },
                gpu.name,
                cloud.map_or(String::new(), |cl| format!(" on {cl}"))
            ));
        };
        total += f64::from(count * offers) * e.price(spot).map_or(f64::NAN, |p| p.0);
        if cited.is_none_or(|(_, g)| gpus > g) {
            cited = Some((e, gpus));
        }
    }
    let (e, _) = cited.expect("a replica has at least one worker");
    Ok((UsdPerHour(total), e))
}

fn evaluate(
    opts: &RecommendOptions,
    space_opts: &SpaceOptions,
    model: &dyn LatencyModel,
    prices: &PriceCatalog,
    profile: &Profile,
) -> Candidate {
    let base = profile.scenario(space_opts, opts.demand.with_level(1.0));
    let mut c = candidate(profile, &base);
    let unit_price = match replica_price(
        prices,
        &profile.gpu,
        profile.serving,
        opts.cloud.as_deref(),
        opts.spot,
    ) {
        Ok((total, entry)) => {
            c.price = Some(entry.clone());
            c.replica_price = Some(total);
            total
        }
        Err(why) => {
            c.verdict = Verdict::NoPrice(why);
            return c;
        }
    };
    // Does it fit at all? (At one user, or the rate of one: the load `base` carries.)
    let first = match model.predict(&base) {
        Ok(p) => {
            if let Fit::DoesNotFit { reason } = &p.fit {
                c.verdict = Verdict::DoesNotFit(reason.clone());
                return c;
            }
            c.batch_limit = batch_limit(&base, &p);
            p
        }
        Err(e) => {
            c.verdict = Verdict::Error(e.to_string());
            return c;
        }
    };
    let known = Some((1.0, &first));
    let cap = match largest_level(model, &base, opts.demand, &opts.slos, opts.margin, known) {
        Ok(Some(level)) => opts.demand.with_level(level),
        Ok(None) => {
            c.shortfall = shortfall(&opts.slos, &first, opts.margin);
            let why = violation(&opts.slos, &first, opts.margin)
                .unwrap_or_else(|| "unmet at the smallest load".into());
            c.verdict = Verdict::SloUnmet(format!("{why} at {}", opts.demand.with_level(1.0)));
            return c;
        }
        Err(e) => {
            c.verdict = Verdict::Error(e.to_string());
            return c;
        }
    };
    c.capacity = Some(cap);
    let cap = cap.level();
    let Some(replicas) = replicas_for(opts.demand.level(), cap) else {
        c.verdict = Verdict::SloUnmet(format!(
            "{} at {cap:.3} per replica needs more than {MAX_REPLICAS} replicas",
            opts.demand.demand_text()
        ));
        return c;
    };
    c.replicas = Some(replicas);
    c.cost = Some(UsdPerHour(unit_price.0 * replicas as f64));
    let mut at = base.clone();
    at.load = opts.demand.share(replicas);
    match model.predict(&at) {
        Ok(p) => {
            c.headroom = headroom(&opts.slos, &p, opts.margin);
            if let (Some(tput), Some(cost)) = (p.row.metrics.output_throughput, c.cost) {
                let tokens_per_hour = tput.0 * replicas as f64 * 3600.0;
                if tokens_per_hour > 0.0 {
                    c.cost_per_million_output_tokens =
                        Some(UsdPerMillionTokens(cost.0 / (tokens_per_hour / 1e6)));
                }
            }
            // The invariant: feasible means the prediction at each replica's actual share
            // meets every SLO, whatever the capacity search concluded.
            if let Some(why) = violation(&opts.slos, &p, opts.margin) {
                c.verdict = Verdict::SloUnmet(format!("{why} at {}", at.load));
            }
            c.at_load = Some(p);
        }
        Err(e) => c.verdict = Verdict::Error(e.to_string()),
    }
    if opts.explain {
        let mut level = if matches!(opts.demand, Load::Rate(_)) {
            cap / 16.0
        } else {
            1.0
        };
        while level <= (cap * 2.0).max(1.0) {
            let mut s = base.clone();
            s.load = opts.demand.with_level(level);
            if let Ok(p) = model.predict(&s) {
                c.curve.push((level, p));
            }
            level *= 2.0;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;
    use pilot_core::metrics::Stats;
    use pilot_core::slo::parse_slos;
    use pilot_core::units::RequestsPerSec;
    use pilot_predict::PhysicsModel;

    fn base(model: &str, gpu: &str, tp: u32) -> Scenario {
        Scenario::new(
            ModelCatalog::builtin().resolve(model).unwrap(),
            GpuCatalog::builtin().resolve(gpu).unwrap().clone(),
            tp,
            Load::Users(1),
            Tokens(512),
            Tokens(256),
        )
    }

    fn slos(text: &str) -> Vec<Slo> {
        parse_slos(text).unwrap()
    }

    /// The interpolating search finds exactly what a linear scan finds, for SLOs that bind
    /// at one user, in between, or never, with the point prediction and the interval.
    #[test]
    fn capacity_search_matches_a_linear_scan() {
        let physics = PhysicsModel::default();
        let shipped = pilot_predict::Predictor::shipped().unwrap();
        let models: [&dyn LatencyModel; 2] = [&physics, shipped];
        let mut between = 0;
        for text in ["ttft=300ms,itl=40ms", "ttft=80ms", "itl=15ms", "e2e=5s"] {
            let slos = slos(text);
            for (model, gpu, tp) in [
                ("mistral-7b", "L40S", 1),
                ("llama-2-13b", "A100-SXM-80GB", 2),
                ("mistral-7b", "H100", 1),
            ] {
                for (m, margin) in models.iter().zip([Margin::None, Margin::Upper]) {
                    let b = base(model, gpu, tp);
                    let found = capacity(*m, &b, Load::Users(300), &slos, margin).unwrap();
                    let mut scan = None;
                    for u in 1..=300u32 {
                        let mut s = b.clone();
                        s.load = Load::Users(u);
                        if violation(&slos, &m.predict(&s).unwrap(), margin).is_some() {
                            break;
                        }
                        scan = Some(Load::Users(u));
                    }
                    assert_eq!(found, scan, "{text}: {model} on {tp} x {gpu}");
                    between += usize::from(scan.is_some_and(|l| l.level() < 300.0));
                }
            }
        }
        assert!(
            between >= 6,
            "only {between} searches ended between 1 and 300 users"
        );
    }

    /// Under a rate the search brackets the capacity to 1%: the rate found meets the SLOs
    /// and 1% more does not (or it is the demand itself).
    #[test]
    fn rate_capacity_is_bracketed_to_one_percent() {
        let physics = PhysicsModel::default();
        let slos = slos("ttft=300ms,itl=40ms");
        let ok = |b: &Scenario, r: f64| {
            let mut s = b.clone();
            s.load = Load::Rate(RequestsPerSec(r));
            violation(&slos, &physics.predict(&s).unwrap(), Margin::None).is_none()
        };
        for (model, gpu, tp) in [("mistral-7b", "L40S", 1), ("llama-2-13b", "H100", 2)] {
            let b = base(model, gpu, tp);
            let demand = Load::Rate(RequestsPerSec(200.0));
            let Some(Load::Rate(found)) =
                capacity(&physics, &b, demand, &slos, Margin::None).unwrap()
            else {
                panic!("{model} on {gpu}: no capacity")
            };
            assert!(
                found.0 < 200.0,
                "{model} on {gpu} serves all of {}",
                found.0
            );
            assert!(ok(&b, found.0), "{model} on {gpu} at {}", found.0);
            assert!(
                !ok(&b, found.0 * 1.0101),
                "{model} on {gpu} past {}",
                found.0
            );
        }
    }

    #[test]
    fn recommends_the_cheapest_feasible_and_explains_rejections() {
        let physics = PhysicsModel::default();
        let catalog = GpuCatalog::builtin();
        let opts = RecommendOptions {
            model: ModelCatalog::builtin().resolve("llama-2-70b").unwrap(),
            slos: slos("ttft=1s,itl=80ms"),
            demand: Load::Users(64),
            input_tokens: Tokens(512),
            output_tokens: Tokens(128),
            gpus: ["L4", "A100-SXM-80GB", "H100"]
                .iter()
                .map(|g| catalog.resolve(g).unwrap().clone())
                .collect(),
            max_gpus: 8,
            quantizations: vec![Quantization::Fp16, Quantization::Int4W4a16],
            kv_caches: vec![],
            serving: ServingModes::Both,
            engines: vec![None],
            cloud: None,
            spot: false,
            margin: Margin::None,
            explain: true,
        };
        let rec = recommend(&opts, &physics, PriceCatalog::builtin()).unwrap();
        let feasible: Vec<&Candidate> = rec.feasible().collect();
        assert!(!feasible.is_empty());
        let costs: Vec<f64> = feasible.iter().map(|c| c.cost.unwrap().0).collect();
        assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
        for c in &feasible {
            assert!(c.capacity.unwrap().level() * c.replicas.unwrap() as f64 >= 64.0);
            assert!(!c.curve.is_empty(), "--explain gives a curve");
            assert!(
                c.headroom.unwrap() >= 0.0,
                "at its share of the load every SLO holds"
            );
        }
        // 140 GB of fp16 weights do not fit one 80 GB GPU: rejected for memory, not silently dropped.
        assert!(
            rec.candidates
                .iter()
                .any(|c| c.profile.gpu.name == "A100-SXM-80GB"
                    && c.profile.serving.gpus() == 1
                    && c.profile.quantization == Quantization::Fp16
                    && matches!(c.verdict, Verdict::DoesNotFit(_)))
        );
        // Llama-2-70B has 64 heads and 8 KV heads: no TP of 3, 5, 6 or 7.
        assert!(
            rec.candidates
                .iter()
                .all(|c| [1, 2, 4, 8].contains(&c.profile.serving.gpus()))
        );
    }

    /// A rejection names what broke the SLO: under `Margin::Upper` the interval's upper end,
    /// beside the point prediction, never the upper end passed off as the prediction.
    #[test]
    fn rejections_name_the_point_and_the_margin() {
        let g = GpuCatalog::builtin().resolve("H100").unwrap().clone();
        let m = ModelCatalog::builtin().resolve("mistral-7b").unwrap();
        let s = Scenario::new(m, g, 1, Load::Users(1), Tokens(512), Tokens(64));
        let mut p = PhysicsModel::default().predict(&s).unwrap();
        let point = p.row.metrics.itl.p50.unwrap().0;
        p.upper.itl.p50 = Some(pilot_core::units::Millis(point * 2.0));
        let slo = slos(&format!("itl={}ms", point * 1.5));
        assert_eq!(violation(&slo, &p, Margin::None), None);
        let why = violation(&slo, &p, Margin::Upper).expect("the upper end breaks it");
        assert!(
            why.contains(&format!(
                "predicted {point:.1}, interval upper end {:.1}",
                point * 2.0
            )),
            "{why}"
        );
        let why = violation(&slo, &p, Margin::Factor(0.6)).expect("+60% breaks it");
        assert!(why.contains("+60% margin"), "{why}");
    }

    /// `judge` passes a prediction exactly when `violation` finds nothing, and its ratio is
    /// the binding SLO's: met, broken by the point or only by a margin, a metric not
    /// predicted, a configuration that does not fit.
    #[test]
    fn judge_and_violation_agree() {
        let g = GpuCatalog::builtin().resolve("H100").unwrap().clone();
        let m = ModelCatalog::builtin().resolve("mistral-7b").unwrap();
        let s = Scenario::new(m, g, 1, Load::Users(1), Tokens(512), Tokens(64));
        let p = PhysicsModel::default().predict(&s).unwrap();
        let itl = p.row.metrics.itl.p50.unwrap().0;
        let ttft = p.row.metrics.ttft.p50.unwrap().0;
        let mut no_ttft = p.clone();
        no_ttft.row.metrics.ttft = Stats::empty();
        let mut no_fit = p.clone();
        no_fit.fit = Fit::DoesNotFit {
            reason: "weights larger than memory".into(),
        };
        let met = slos(&format!("itl={}ms,ttft={}ms", itl * 2.0, ttft * 4.0));
        let broken = slos(&format!("itl={}ms,ttft={}ms", itl * 2.0, ttft / 2.0));
        let margins = [Margin::None, Margin::Factor(1.5), Margin::Upper];
        let cases = [
            (&met, &p, Margin::None, true, 0.5),
            (&met, &p, Margin::Factor(1.5), false, 2.5 / 2.0),
            (&broken, &p, Margin::None, false, 2.0),
            (&met, &no_ttft, Margin::None, false, f64::INFINITY),
            (&met, &no_fit, Margin::None, false, f64::INFINITY),
        ];
        for (slos, p, margin, ok, ratio) in cases {
            let (judged, worst) = judge(slos, p, margin);
            assert_eq!(judged, ok, "{slos:?} {margin:?}");
            assert!(
                (worst - ratio).abs() < 1e-9 || worst == ratio,
                "{worst} vs {ratio}"
            );
        }
        for slos in [&met, &broken] {
            for p in [&p, &no_ttft, &no_fit] {
                for margin in margins {
                    assert_eq!(
                        judge(slos, p, margin).0,
                        violation(slos, p, margin).is_none(),
                        "{slos:?} {margin:?}"
                    );
                }
            }
        }
        assert!(
            violation(&met, &no_ttft, Margin::None)
                .unwrap()
                .contains("not predicted")
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        let physics = PhysicsModel::default();
        let mut opts = one_h100(Load::Users(10), "ttft=1s");
        opts.slos.clear();
        assert!(matches!(
            recommend(&opts, &physics, PriceCatalog::builtin()),
            Err(RecommendError::NoSlo)
        ));
        opts.slos = slos("ttft=1s");
        for bad in [
            Load::Rate(RequestsPerSec(0.0)),
            Load::Rate(RequestsPerSec(f64::INFINITY)),
            Load::Rate(RequestsPerSec(f64::NAN)),
            Load::Rate(RequestsPerSec(-3.0)),
            Load::Users(0),
            Load::Batch(8),
        ] {
            opts.demand = bad;
            assert!(
                matches!(
                    recommend(&opts, &physics, PriceCatalog::builtin()),
                    Err(RecommendError::Demand(_))
                ),
                "{bad:?}"
            );
        }
        // An offline batch is refused in words, not searched (nor a panic).
        opts.demand = Load::Batch(8);
        let e = recommend(&opts, &physics, PriceCatalog::builtin()).unwrap_err();
        assert!(
            e.to_string().contains("batch of 8") && e.to_string().contains("--users"),
            "{e}"
        );
        opts.demand = Load::Users(10);
        opts.input_tokens = Tokens(0);
        let e = recommend(&opts, &physics, PriceCatalog::builtin()).unwrap_err();
        assert!(e.to_string().contains("input tokens"), "{e}");
        opts.input_tokens = Tokens(512);
        opts.max_gpus = 0;
        let e = recommend(&opts, &physics, PriceCatalog::builtin()).unwrap_err();
        assert!(e.to_string().contains("max GPUs"), "{e}");
    }

    fn one_h100(demand: Load, slo: &str) -> RecommendOptions {
        RecommendOptions {
            model: ModelCatalog::builtin().resolve("mistral-7b").unwrap(),
            slos: slos(slo),
            demand,
            input_tokens: Tokens(512),
            output_tokens: Tokens(256),
            gpus: vec![GpuCatalog::builtin().resolve("H100").unwrap().clone()],
            max_gpus: 1,
            quantizations: vec![Quantization::Bf16],
            kv_caches: vec![],
            serving: ServingModes::Both,
            engines: vec![None],
            cloud: None,
            spot: false,
            margin: Margin::None,
            explain: false,
        }
    }

    /// A demand no number of replicas serves (a finite but absurd rate) is rejected, never
    /// answered with a saturated `u32` of replicas that each miss the SLOs.
    #[test]
    fn absurd_demand_needs_too_many_replicas() {
        let opts = one_h100(Load::Rate(RequestsPerSec(1e300)), "ttft=200ms,itl=50ms");
        let rec = recommend(&opts, &PhysicsModel::default(), PriceCatalog::builtin()).unwrap();
        assert_eq!(rec.feasible().count(), 0);
        let c = &rec.candidates[0];
        assert!(c.replicas.is_none(), "{:?}", c.replicas);
        assert!(c.verdict.reason().contains("replicas"), "{:?}", c.verdict);
    }

    /// Physics, but the SLO breaks at 50 users and from 64 up: a load the capacity search
    /// (1, 2, 4, ..., 32, 64, then 48, 56, 60, 62, 63) never probes.
    struct BreaksAtFifty(PhysicsModel);

    impl LatencyModel for BreaksAtFifty {
        fn predict(&self, s: &Scenario) -> Result<Prediction, PredictError> {
            let mut p = self.0.predict(s)?;
            if matches!(s.load, Load::Users(u) if u == 50 || u >= 64) {
                p.row.metrics.ttft.p50 = Some(pilot_core::units::Millis(1e9));
            }
            Ok(p)
        }
    }

    /// Feasible means the prediction at each replica's share meets every SLO, even where
    /// the capacity search concluded otherwise.
    #[test]
    fn a_candidate_missing_an_slo_at_its_share_is_not_feasible() {
        let model = BreaksAtFifty(PhysicsModel::default());
        let opts = one_h100(Load::Users(100), "ttft=1000s");
        let rec = recommend(&opts, &model, PriceCatalog::builtin()).unwrap();
        let c = &rec.candidates[0];
        assert_eq!((c.capacity, c.replicas), (Some(Load::Users(63)), Some(2)));
        assert!(
            matches!(&c.verdict, Verdict::SloUnmet(why) if why.contains("50 users")),
            "{:?}",
            c.verdict
        );
        // Without the break at 50 the same candidate is feasible.
        let rec = recommend(&opts, &PhysicsModel::default(), PriceCatalog::builtin()).unwrap();
        assert_eq!(rec.feasible().count(), 1);
    }
}

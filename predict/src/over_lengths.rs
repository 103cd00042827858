//! Latency over a length distribution, not at its mean lengths.
//!
//! A workload's p99 TTFT is set by its long prompts: a server that meets a 200 ms p99 at the
//! mean prompt length may miss it badly when one request in ten is eight times longer. Every
//! predictor answers for one (input, output) pair, so [`OverLengths`] asks it once per length
//! bucket and mixes the answers:
//!
//! - **the server's state** (batch, step time, throughput, ITL, TPOT) is the one the whole mix
//!   puts it in: the inner model's prediction at the distribution's mean lengths, under the
//!   same load;
//! - **what depends on a request's own length** (TTFT, normalized TTFT, end-to-end latency)
//!   is the mix's, shifted by the bucket's own service: a request waits as the mix makes it
//!   wait, and is served as its own length needs. The shift is the difference between the
//!   bucket's and the mean lengths' p50 TTFT on an otherwise idle server (one user), plus,
//!   for end-to-end latency, the bucket's extra output tokens at the mix's TPOT; no request
//!   is faster than its length alone on an idle server. (Predicting a bucket as if every
//!   user sent its lengths would charge a long prompt the queue of a server full of long
//!   prompts: ten times the wait a mix with one long prompt in ten has.)
//! - the statistics are those of the mixture: each bucket's distribution is taken as the
//!   log-normal through its p50 and p99 (p90 where p99 is missing), weighted by the bucket's
//!   share of the requests, and the mixture's percentiles are found by bisection on its CDF.
//!   Its mean is the shares' weighted mean.
//!
//! A configuration that cannot serve a bucket (its longest requests overflow the KV cache)
//! cannot serve the workload: the prediction is then the bucket's [`Fit::DoesNotFit`].

use crate::physics::percentiles::{Z, normal_cdf};
use crate::scenario::{Fit, Load, Prediction, Scenario};
use crate::{LatencyModel, PredictError};
use pilot_core::metrics::{Stat, Stats, Summary};
use pilot_core::units::{Millis, MsPerToken, Tokens};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

/// How many length buckets a distribution is cut into: enough to separate a workload's short
/// and long requests, few enough that judging a fleet over them costs a few predictions.
pub const MAX_BUCKETS: usize = 4;

/// Requests of similar lengths: their mean lengths and their share of all requests.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthBucket {
    pub input: Tokens,
    pub output: Tokens,
    /// Fraction of the requests, in (0, 1]; the buckets' shares sum to 1.
    pub share: f64,
    /// Prompt-plus-output lengths it covers (`..1,024`, `1,025..8,192`).
    pub range: (u64, u64),
}

/// Cuts a length distribution (input, output, probability) into at most [`MAX_BUCKETS`]
/// buckets of about equal probability by total length, each with its probability-weighted
/// mean lengths. An empty distribution gives no bucket.
pub fn buckets(lengths: &[(u64, u64, f64)]) -> Vec<LengthBucket> {
    let mut sorted: Vec<&(u64, u64, f64)> = lengths.iter().filter(|l| l.2 > 0.0).collect();
    sorted.sort_by_key(|(i, o, _)| i + o);
    let total: f64 = sorted.iter().map(|l| l.2).sum();
    if sorted.is_empty() || total <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<LengthBucket> = Vec::new();
    let mut acc = (0.0, 0.0, 0.0);
    let mut lo = None;
    let mut seen = 0.0;
    for (k, &&(i, o, w)) in sorted.iter().enumerate() {
        let w = w / total;
        seen += w;
        acc = (acc.0 + w * i as f64, acc.1 + w * o as f64, acc.2 + w);
        lo.get_or_insert(i + o);
        let last = k + 1 == sorted.len();
        // Close the bucket at its quantile, but never between two requests of one length.
        let boundary = seen >= (out.len() + 1) as f64 / MAX_BUCKETS as f64 - 1e-9
            && !last
            && sorted[k + 1].0 + sorted[k + 1].1 != i + o;
        if boundary || last {
            out.push(LengthBucket {
                input: Tokens((acc.0 / acc.2).round().max(1.0) as u64),
                output: Tokens((acc.1 / acc.2).round().max(1.0) as u64),
                share: acc.2,
                range: (lo.take().unwrap_or(i + o), i + o),
            });
            acc = (0.0, 0.0, 0.0);
        }
    }
    out
}

/// The buckets' share-weighted mean lengths (at least one token each).
pub fn mean_lengths(buckets: &[LengthBucket]) -> (Tokens, Tokens) {
    let (i, o, w) = buckets.iter().fold((0.0, 0.0, 0.0), |(i, o, w), b| {
        (
            i + b.share * b.input.0 as f64,
            o + b.share * b.output.0 as f64,
            w + b.share,
        )
    });
    let w = if w > 0.0 { w } else { 1.0 };
    (
        Tokens((i / w).round().max(1.0) as u64),
        Tokens((o / w).round().max(1.0) as u64),
    )
}

/// The buckets in words: `90% at 256 in / 128 out, 10% at 6144 in / 128 out`.
pub fn describe(buckets: &[LengthBucket]) -> String {
    buckets
        .iter()
        .map(|b| {
            format!(
                "{:.0}% at {} in / {} out",
                b.share * 100.0,
                b.input.0,
                b.output.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A latency model over a length distribution: see the module's documentation.
pub struct OverLengths<'a> {
    inner: &'a dyn LatencyModel,
    buckets: Vec<LengthBucket>,
    /// The inner model's answers for idle scenarios (one user), which do not depend on the
    /// load asked about: a capacity search asks one configuration at a dozen loads, and
    /// without it would predict the same 1 + buckets idle scenarios at each. A `Mutex`: the
    /// search asks from several threads (`LatencyModel` is `Sync`); it is held only to look
    /// up and to store, never while predicting. Errors are not kept (asked again).
    idle: Mutex<HashMap<IdleKey, Arc<Prediction>>>,
}

/// An idle scenario as a cache key: hashed by its discrete fields (names, counts, formats,
/// lengths), equal when the whole scenario is. A spec holding a NaN is unequal to itself
/// and is then only predicted again, never confused with another.
struct IdleKey(Scenario);

impl Hash for IdleKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let s = &self.0;
        s.model.id.hash(h);
        s.gpu.name.hash(h);
        s.gpu_count.hash(h);
        s.serving.hash(h);
        s.engine.hash(h);
        s.quantization.hash(h);
        s.kv_cache.hash(h);
        s.input_tokens.hash(h);
        s.output_tokens.hash(h);
    }
}

impl PartialEq for IdleKey {
    fn eq(&self, other: &IdleKey) -> bool {
        self.0 == other.0
    }
}

impl Eq for IdleKey {}

/// Where a scenario's idle prediction comes from: the cache, or the `n`th of those asked.
enum Idle {
    Known(Arc<Prediction>),
    Asked(usize),
}

impl<'a> OverLengths<'a> {
    /// `buckets` with a positive share, renormalized to sum to 1; none is an error.
    pub fn new(
        inner: &'a dyn LatencyModel,
        buckets: Vec<LengthBucket>,
    ) -> Result<OverLengths<'a>, PredictError> {
        let buckets: Vec<LengthBucket> = buckets
            .into_iter()
            .filter(|b| b.share.is_finite() && b.share > 0.0)
            .collect();
        let total: f64 = buckets.iter().map(|b| b.share).sum();
        if buckets.is_empty() || total <= 0.0 {
            return Err(PredictError::Scenario(
                "a length distribution needs at least one request shape with a positive share"
                    .into(),
            ));
        }
        Ok(OverLengths {
            buckets: buckets
                .into_iter()
                .map(|b| LengthBucket {
                    share: b.share / total,
                    ..b
                })
                .collect(),
            inner,
            idle: Mutex::new(HashMap::new()),
        })
    }

    pub fn buckets(&self) -> &[LengthBucket] {
        &self.buckets
    }

    /// The prediction at the mean lengths (`at_mean`, under the scenario's load) with its
    /// length-dependent metrics mixed over the buckets; `idle_mean` and `idle` are the mean
    /// lengths' and each bucket's predictions with one user.
    fn mixed(
        &self,
        at_mean: Prediction,
        idle_mean: &Prediction,
        idle: &[Arc<Prediction>],
    ) -> Prediction {
        if !matches!(at_mean.fit, Fit::Fits { .. }) {
            return at_mean;
        }
        if let Some(no) = idle
            .iter()
            .find(|p| matches!(p.fit, Fit::DoesNotFit { .. }))
        {
            let mut out = at_mean;
            out.fit = no.fit.clone();
            out.row.metrics = Summary::default();
            return out;
        }
        let p50 =
            |p: &Prediction, f: fn(&Summary) -> &Stats<Millis>| f(&p.row.metrics).p50.map(|m| m.0);
        let (Some(ttft_idle_mean), Some(tpot)) = (
            p50(idle_mean, |m| &m.ttft),
            at_mean
                .row
                .metrics
                .tpot
                .mean
                .or(at_mean.row.metrics.tpot.p50)
                .map(|m| m.0),
        ) else {
            return at_mean;
        };
        let output_mean = at_mean.row.metrics.output_tokens_mean.unwrap_or(0.0);
        // Per bucket: (share, TTFT shift, end-to-end shift, idle TTFT, idle E2E, input).
        let shifts: Vec<(f64, f64, f64, f64, f64, f64)> = self
            .buckets
            .iter()
            .zip(idle)
            .filter_map(|(b, p)| {
                let ttft = p50(p, |m| &m.ttft)?;
                let e2e = p50(p, |m| &m.e2e).unwrap_or(ttft);
                let d = ttft - ttft_idle_mean;
                let extra_out = b.output.0 as f64 - output_mean;
                Some((
                    b.share,
                    d,
                    d + extra_out * tpot,
                    ttft,
                    e2e,
                    b.input.0.max(1) as f64,
                ))
            })
            .collect();
        if shifts.len() != self.buckets.len() {
            return at_mean;
        }
        let shares: Vec<f64> = shifts.iter().map(|x| x.0).collect();
        let mut out = at_mean;
        out.out_of_domain |= idle.iter().any(|p| p.out_of_domain);
        let mix_into = |m: &mut Summary| {
            let ttft: Vec<Stats<Millis>> =
                shifts.iter().map(|x| shifted(&m.ttft, x.1, x.3)).collect();
            let nttft: Vec<Stats<MsPerToken>> = ttft
                .iter()
                .zip(&shifts)
                .map(|(t, x)| t.map(|v| MsPerToken(v.0 / x.5)))
                .collect();
            let e2e: Vec<Stats<Millis>> =
                shifts.iter().map(|x| shifted(&m.e2e, x.2, x.4)).collect();
            m.ttft = mixture(&shares, ttft.iter(), |v| v.0, Millis);
            m.nttft = mixture(&shares, nttft.iter(), |v| v.0, MsPerToken);
            m.e2e = mixture(&shares, e2e.iter(), |v| v.0, Millis);
        };
        mix_into(&mut out.row.metrics);
        mix_into(&mut out.lower);
        mix_into(&mut out.upper);
        out
    }

    /// The scenarios predicted besides `s`: the mean lengths with one user, then each bucket
    /// with one user. They keep nothing of `s`'s load, so one is the same at every load and
    /// is predicted once (the `idle` cache).
    fn idle_scenarios(&self, s: &Scenario) -> Vec<Scenario> {
        let idle = |input: Tokens, output: Tokens| {
            let mut x = s.clone();
            x.load = Load::Users(1);
            x.input_tokens = input;
            x.output_tokens = output;
            x
        };
        std::iter::once(idle(s.input_tokens, s.output_tokens))
            .chain(self.buckets.iter().map(|b| idle(b.input, b.output)))
            .collect()
    }
}

/// `stats` moved by `by` milliseconds, none below `floor`.
fn shifted(stats: &Stats<Millis>, by: f64, floor: f64) -> Stats<Millis> {
    stats.map(|v| Millis((v.0 + by).max(floor)))
}

impl LatencyModel for OverLengths<'_> {
    /// `s` carries the distribution's mean lengths (the server's state under the mix).
    fn predict(&self, s: &Scenario) -> Result<Prediction, PredictError> {
        let mut many = self.predict_many(std::slice::from_ref(s));
        many.pop().expect("one answer per scenario")
    }

    /// Each scenario and, once for the batch, each of its idle scenarios not in the cache.
    fn predict_many(&self, s: &[Scenario]) -> Vec<Result<Prediction, PredictError>> {
        let mut ask: Vec<Scenario> = s.to_vec();
        let mut sources: Vec<Vec<Idle>> = Vec::with_capacity(s.len());
        {
            let cache = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let mut asked: HashMap<IdleKey, usize> = HashMap::new();
            for x in s {
                let mut these = Vec::with_capacity(self.buckets.len() + 1);
                for idle in self.idle_scenarios(x) {
                    let key = IdleKey(idle);
                    these.push(match cache.get(&key) {
                        Some(p) => Idle::Known(Arc::clone(p)),
                        None => Idle::Asked(*asked.entry(key).or_insert_with_key(|k| {
                            ask.push(k.0.clone());
                            ask.len() - s.len() - 1
                        })),
                    });
                }
                sources.push(these);
            }
        }
        let mut answers = self.inner.predict_many(&ask);
        let asked = ask.split_off(s.len());
        let mut fresh: Vec<Option<Result<Arc<Prediction>, PredictError>>> = {
            let mut cache = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            answers
                .split_off(s.len())
                .into_iter()
                .zip(&asked)
                .map(|(answer, idle)| {
                    let answer = answer.map(Arc::new);
                    if let Ok(p) = &answer {
                        cache.insert(IdleKey(idle.clone()), Arc::clone(p));
                    }
                    Some(answer)
                })
                .collect()
        };
        answers
            .into_iter()
            .zip(sources)
            .map(|(at_mean, sources)| {
                let at_mean = at_mean?;
                let mut idle = sources
                    .into_iter()
                    .map(|source| match source {
                        Idle::Known(p) => Ok(p),
                        Idle::Asked(n) => match &mut fresh[n] {
                            Some(Ok(p)) => Ok(Arc::clone(p)),
                            // An error cannot be cloned: the first scenario that needs it
                            // takes it, any other asks again.
                            failed => failed
                                .take()
                                .unwrap_or_else(|| self.inner.predict(&asked[n]).map(Arc::new)),
                        },
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let buckets = idle.split_off(1);
                Ok(self.mixed(at_mean, &idle[0], &buckets))
            })
            .collect()
    }
}

/// One bucket's distribution as a log-normal: ln-median and ln-spread. Taken through p50 and
/// p99 (p90 without p99); a bucket with only a median is a point.
fn log_normal<T: Copy>(s: &Stats<T>, value: fn(T) -> f64) -> Option<(f64, f64)> {
    let p50 = s.p50.map(value).filter(|v| *v > 0.0)?;
    let z = |stat: Stat| Z.iter().find(|(n, _)| *n == stat).map_or(0.0, |(_, z)| *z);
    let tail = s
        .p99
        .map(|v| (value(v), z(Stat::P99)))
        .or_else(|| s.p90.map(|v| (value(v), z(Stat::P90))))
        .filter(|(v, _)| *v > 0.0);
    let sigma = tail.map_or(0.0, |(v, z)| ((v.ln() - p50.ln()) / z).max(0.0));
    Some((p50.ln(), sigma))
}

/// The statistics of a mixture of distributions (`shares` sum to 1). Buckets without a
/// median are left out (and the shares of the rest renormalized); none left gives no value.
fn mixture<'s, T: Copy + 's>(
    shares: &[f64],
    parts: impl Iterator<Item = &'s Stats<T>>,
    value: fn(T) -> f64,
    wrap: fn(f64) -> T,
) -> Stats<T> {
    let mut comps: Vec<(f64, f64, f64)> = Vec::new();
    let mut mean = 0.0;
    let mut mean_weight = 0.0;
    for (w, s) in shares.iter().zip(parts) {
        if let Some((mu, sigma)) = log_normal(s, value) {
            comps.push((*w, mu, sigma));
            if let Some(m) = s.mean.map(value) {
                mean += w * m;
                mean_weight += w;
            }
        }
    }
    let total: f64 = comps.iter().map(|c| c.0).sum();
    let mut out = Stats::empty();
    if comps.is_empty() || total <= 0.0 {
        return out;
    }
    let cdf = |ln_x: f64| -> f64 {
        comps
            .iter()
            .map(|&(w, mu, sigma)| {
                let p = if sigma > 0.0 {
                    normal_cdf((ln_x - mu) / sigma)
                } else if ln_x >= mu {
                    1.0
                } else {
                    0.0
                };
                w * p
            })
            .sum::<f64>()
            / total
    };
    let lo = comps
        .iter()
        .map(|c| c.1 - 6.0 * c.2)
        .fold(f64::INFINITY, f64::min);
    let hi = comps
        .iter()
        .map(|c| c.1 + 6.0 * c.2)
        .fold(f64::NEG_INFINITY, f64::max);
    for (stat, z) in Z {
        let q = normal_cdf(z);
        // The smallest ln x with CDF >= q: bisection, 60 halvings of at most 12 ln-units.
        let (mut a, mut b) = (lo, hi);
        for _ in 0..60 {
            let m = 0.5 * (a + b);
            if cdf(m) >= q {
                b = m;
            } else {
                a = m;
            }
        }
        out.set(stat, Some(wrap(b.exp())));
    }
    if mean_weight > 0.0 {
        out.mean = Some(wrap(mean / mean_weight));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PhysicsModel;
    use crate::scenario::Load;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;

    fn stats(p50: f64, p99: f64) -> Stats<Millis> {
        Stats {
            p50: Some(Millis(p50)),
            p99: Some(Millis(p99)),
            mean: Some(Millis(p50)),
            ..Default::default()
        }
    }

    #[test]
    fn buckets_split_by_length_with_equal_shares() {
        let lengths: Vec<(u64, u64, f64)> = (1..=100).map(|k| (k * 100, k * 10, 1.0)).collect();
        let b = buckets(&lengths);
        assert_eq!(b.len(), MAX_BUCKETS);
        let total: f64 = b.iter().map(|x| x.share).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        for x in &b {
            assert!((x.share - 0.25).abs() < 0.02, "{b:?}");
            let len = x.input.0 + x.output.0;
            assert!(x.range.0 <= len && len <= x.range.1, "{x:?}");
        }
        assert!(b.windows(2).all(|w| w[0].range.1 < w[1].range.0), "{b:?}");
        // One length is one bucket, whatever its count.
        let b = buckets(&[(512, 256, 0.3), (512, 256, 0.7)]);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].input, b[0].output), (Tokens(512), Tokens(256)));
        assert!(buckets(&[]).is_empty());
    }

    #[test]
    fn a_mixture_of_one_distribution_gives_back_its_percentiles() {
        let s = stats(100.0, 400.0);
        let m = mixture(&[1.0], [&s].into_iter(), |m| m.0, Millis);
        assert!((m.p50.unwrap().0 - 100.0).abs() < 1e-6, "{m:?}");
        assert!((m.p99.unwrap().0 - 400.0).abs() < 1e-6, "{m:?}");
        let p90 = m.p90.unwrap().0;
        assert!(100.0 < p90 && p90 < 400.0);
    }

    #[test]
    fn one_request_in_ten_being_long_sets_the_p99_but_not_the_median() {
        let short = stats(50.0, 80.0);
        let long = stats(800.0, 1200.0);
        let m = mixture(&[0.9, 0.1], [&short, &long].into_iter(), |m| m.0, Millis);
        let (p50, p99) = (m.p50.unwrap().0, m.p99.unwrap().0);
        assert!(p50 < 80.0, "the median is a short request's: {p50}");
        assert!(
            p99 > 800.0 && p99 <= 1200.0,
            "the p99 is a long request's: {p99}"
        );
        assert!((m.mean.unwrap().0 - (0.9 * 50.0 + 0.1 * 800.0)).abs() < 1e-9);
    }

    fn scenario(input: u64, output: u64) -> Scenario {
        Scenario::new(
            ModelCatalog::builtin().resolve("mistral-7b").unwrap(),
            GpuCatalog::builtin().resolve("H100").unwrap().clone(),
            1,
            Load::Users(32),
            Tokens(input),
            Tokens(output),
        )
    }

    /// Against the physics model: a bimodal mix (90% 256-token prompts, 10% 4,096) is
    /// predicted with its median below the mean lengths' and its p99 above it, at least a
    /// long prompt's TTFT on an idle server, and below the p99 of a server where every user
    /// sends long prompts (the mix queues behind one long prompt in ten, not ten in ten); ITL
    /// and throughput stay the mean state's.
    #[test]
    fn the_physics_models_p99_ttft_over_a_bimodal_mix_is_the_long_prompts() {
        let physics = PhysicsModel::default();
        let over = OverLengths::new(&physics, bimodal()).unwrap();
        let mean = scenario(640, 128);
        let at_mean = physics.predict(&mean).unwrap();
        let mixed = over.predict(&mean).unwrap();
        let all_long = physics.predict(&scenario(4096, 128)).unwrap();
        let mut idle_long = scenario(4096, 128);
        idle_long.load = Load::Users(1);
        let idle_long = physics.predict(&idle_long).unwrap();
        let p99 = |p: &Prediction| p.row.metrics.ttft.p99.unwrap().0;
        let p50 = |p: &Prediction| p.row.metrics.ttft.p50.unwrap().0;
        assert!(
            p99(&mixed) > p99(&at_mean),
            "{} vs {}",
            p99(&mixed),
            p99(&at_mean)
        );
        assert!(
            p50(&mixed) < p50(&at_mean),
            "{} vs {}",
            p50(&mixed),
            p50(&at_mean)
        );
        assert!(
            p99(&mixed) >= p50(&idle_long),
            "{} vs {}",
            p99(&mixed),
            p50(&idle_long)
        );
        assert!(
            p99(&mixed) < p99(&all_long),
            "{} vs {}",
            p99(&mixed),
            p99(&all_long)
        );
        assert_eq!(mixed.row.metrics.itl, at_mean.row.metrics.itl);
        assert_eq!(
            mixed.row.metrics.output_throughput,
            at_mean.row.metrics.output_throughput
        );
        // The batched path gives the same answers.
        let many = over.predict_many(&[mean.clone(), mean]);
        assert_eq!(many.len(), 2);
        assert_eq!(
            many[1].as_ref().unwrap().row.metrics.ttft,
            mixed.row.metrics.ttft
        );
    }

    /// The physics model, counting the scenarios it is asked about and their loads.
    #[derive(Default)]
    struct Counting {
        physics: PhysicsModel,
        asked: Mutex<Vec<Load>>,
    }

    impl LatencyModel for Counting {
        fn predict(&self, s: &Scenario) -> Result<Prediction, PredictError> {
            self.asked.lock().unwrap().push(s.load);
            self.physics.predict(s)
        }
    }

    /// 90% 256-token and 10% 4,096-token prompts, 128 tokens out each.
    fn bimodal() -> Vec<LengthBucket> {
        vec![
            LengthBucket {
                input: Tokens(256),
                output: Tokens(128),
                share: 0.9,
                range: (384, 384),
            },
            LengthBucket {
                input: Tokens(4096),
                output: Tokens(128),
                share: 0.1,
                range: (4224, 4224),
            },
        ]
    }

    /// A capacity search's pattern: one configuration at many loads, one at a time and in a
    /// batch. The idle predictions (the mean lengths' and each bucket's, one user) are made
    /// once, the loaded one at each load, and every answer is the one an uncached model
    /// gives (a fresh `OverLengths` per scenario).
    #[test]
    fn the_idle_predictions_are_made_once_across_loads() {
        let counting = Counting::default();
        let over = OverLengths::new(&counting, bimodal()).unwrap();
        let loads = [1, 2, 8, 32, 64, 128];
        let at = |users: u32| {
            let mut s = scenario(640, 128);
            s.load = Load::Users(users);
            s
        };
        let uncached = |s: &Scenario| {
            OverLengths::new(&counting.physics, bimodal())
                .unwrap()
                .predict(s)
                .unwrap()
        };
        for users in loads {
            assert_eq!(over.predict(&at(users)).unwrap(), uncached(&at(users)));
        }
        let batch: Vec<Scenario> = loads.iter().map(|&u| at(u * 3)).collect();
        for (p, s) in over.predict_many(&batch).into_iter().zip(&batch) {
            assert_eq!(p.unwrap(), uncached(s));
        }
        let asked = counting.asked.lock().unwrap().clone();
        let idle = asked.iter().filter(|l| **l == Load::Users(1)).count();
        // Three idle scenarios (the mean, two buckets), plus the loaded one at one user.
        assert_eq!(idle, 3 + 1, "{asked:?}");
        assert_eq!(asked.len(), 3 + loads.len() * 2, "{asked:?}");
        // A batch of unseen lengths asks each idle scenario once, however often it recurs.
        counting.asked.lock().unwrap().clear();
        let mut other = at(16);
        other.input_tokens = Tokens(700);
        let many = over.predict_many(&[other.clone(), other.clone(), other.clone()]);
        assert_eq!(many.len(), 3);
        // The buckets' idle scenarios are known; only the new mean lengths' is asked.
        assert_eq!(counting.asked.lock().unwrap().len(), 3 + 1);
    }

    #[test]
    fn a_bucket_that_cannot_run_makes_the_mix_unable_to_run() {
        let physics = PhysicsModel::default();
        let over = OverLengths::new(
            &physics,
            vec![
                LengthBucket {
                    input: Tokens(256),
                    output: Tokens(128),
                    share: 0.99,
                    range: (384, 384),
                },
                LengthBucket {
                    input: Tokens(30_000_000),
                    output: Tokens(128),
                    share: 0.01,
                    range: (30_000_128, 30_000_128),
                },
            ],
        )
        .unwrap();
        let p = over.predict(&scenario(300, 128)).unwrap();
        assert!(matches!(p.fit, Fit::DoesNotFit { .. }), "{:?}", p.fit);
        assert!(OverLengths::new(&physics, vec![]).is_err());
    }
}

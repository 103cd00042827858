//! Open-loop predictions from closed-loop ones, for a predictor that learned only closed loops.
//!
//! Why: by Little's law an open loop at rate λ and the closed loop whose throughput is λ hold
//! the same steady state (the same requests in flight, the same batch, the same step times);
//! the arrivals' randomness adds only the wait for a free slot when the batch is full. A
//! predictor whose corrections were learned under closed-loop users (TGIS, in LLM-Pilot's
//! data) but never under rates would otherwise answer rates with the bare physics model and
//! closed loops with its corrections, and the two would contradict each other. So a rate is
//! answered from the corrected closed-loop predictions at the population whose predicted
//! throughput is that rate ([`crate::physics::closed_population`], the search the physics
//! model runs for itself), interpolated between the two neighbouring user counts, plus the
//! Erlang-C wait of [`crate::physics::erlang_c_wait`].
//!
//! A capacity search asks one profile for many rates, and each rate's bisection visits the
//! same user counts again: the closed-loop predictions are memoised per thread, by predictor
//! and profile ([`MemoId`]), for the last few profiles. (Without the memo one TGIS recommend
//! call at 20 requests/s over the catalog took 1.7 s.) The bisection reads only each user
//! count's request throughput, which [`Predictor::closed_loop_rps`] gives without the other
//! targets' trees or the intervals; only the two counts around the answer and the saturated
//! one are predicted in full.

use crate::physics::{closed_population, erlang_c_wait};
use crate::scenario::{Load, Prediction, Scenario};
use crate::{LatencyModel, PredictError, Predictor};
use pilot_core::metrics::{Metric, Summary};
use pilot_core::schema::MetricColumn;
use pilot_core::schema::{Measurement, metric_value, set_metric_value};
use pilot_core::units::RequestsPerSec;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which model a memo entry belongs to: unique per predictor value (a clone gets a new one,
/// as it may be changed), never saved, and equal to every other (a predictor loaded from its
/// file equals the one saved).
#[derive(Debug)]
pub(crate) struct MemoId(u64);

impl Default for MemoId {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        MemoId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl Clone for MemoId {
    fn clone(&self) -> Self {
        MemoId::default()
    }
}

impl PartialEq for MemoId {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What is known of one user count's closed loop: its request throughput, and the whole
/// prediction once asked for.
#[derive(Default)]
struct Closed {
    rps: f64,
    full: Option<Prediction>,
}

/// Closed-loop predictions by user count, per (model, profile).
type Memo = BTreeMap<u32, Closed>;

/// Profiles memoised per thread.
const MEMO_PROFILES: usize = 8;

thread_local! {
    /// Keyed by the predictor and the profile: the scenario with `Load::Users(0)`.
    static MEMO: RefCell<Vec<((u64, Scenario), Memo)>> = const { RefCell::new(Vec::new()) };
}

/// Predicts `s` (an open loop at `rate`) from `closed`'s closed-loop predictions of the same
/// profile, for a server that batches at most `budget` sequences. `id` names `closed` for
/// the memo.
pub(crate) fn via_closed_loop(
    closed: &Predictor,
    id: &MemoId,
    s: &Scenario,
    rate: RequestsPerSec,
    budget: f64,
) -> Result<Prediction, PredictError> {
    // The profile's memo, found without cloning the scenario (only a new profile's key is
    // built), comparing the fields that tell profiles apart before the model and GPU.
    let (key, memo) = MEMO.with(|m| {
        let mut m = m.borrow_mut();
        match m
            .iter()
            .position(|((owner, k), _)| *owner == id.0 && same_profile(k, s))
        {
            Some(i) => m.remove(i),
            None => (
                (
                    id.0,
                    Scenario {
                        load: Load::Users(0),
                        ..s.clone()
                    },
                ),
                Memo::default(),
            ),
        }
    });
    let cache = RefCell::new(memo);
    let result = predict_open(closed, s, rate, budget, &cache);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        m.insert(0, (key, cache.into_inner()));
        m.truncate(MEMO_PROFILES);
    });
    result
}

/// Whether two scenarios are the same profile (everything but the load), cheapest fields
/// first: the memo compares every call's scenario with up to [`MEMO_PROFILES`] others that
/// usually share the model and GPU. (Destructured, so that a new field must be placed here.)
fn same_profile(a: &Scenario, b: &Scenario) -> bool {
    let Scenario {
        model,
        gpu,
        gpu_count,
        serving,
        engine,
        quantization,
        kv_cache,
        load: _,
        input_tokens,
        output_tokens,
    } = a;
    *gpu_count == b.gpu_count
        && *serving == b.serving
        && *quantization == b.quantization
        && *kv_cache == b.kv_cache
        && *input_tokens == b.input_tokens
        && *output_tokens == b.output_tokens
        && *engine == b.engine
        && *gpu == b.gpu
        && *model == b.model
}

/// [`via_closed_loop`] with the memo of `s`'s profile.
fn predict_open(
    closed: &Predictor,
    s: &Scenario,
    rate: RequestsPerSec,
    budget: f64,
    cache: &RefCell<Memo>,
) -> Result<Prediction, PredictError> {
    let budget = budget.floor().max(1.0);
    let error: RefCell<Option<PredictError>> = RefCell::new(None);
    let rps = |p: &Prediction| metric_value(&p.row, "request_throughput_rps").unwrap_or(0.0);
    let at_users = |users: u32| Scenario {
        load: Load::Users(users),
        ..s.clone()
    };
    // Requests per second at a user count, predicted once per count (the search reads only
    // this number, so nothing is cloned per step).
    let rps_at = |users: u32| -> Option<f64> {
        if let Some(c) = cache.borrow().get(&users) {
            return Some(c.rps);
        }
        match closed.closed_loop_rps(&at_users(users)) {
            Ok(x) => {
                cache
                    .borrow_mut()
                    .insert(users, Closed { rps: x, full: None });
                Some(x)
            }
            Err(e) => {
                error.borrow_mut().get_or_insert(e);
                None
            }
        }
    };
    // ... and at a real-valued population: linear between the user counts.
    let throughput = |users: f64| -> f64 {
        let (lo, hi) = (users.floor().max(1.0), users.ceil().max(1.0));
        let (Some(a), Some(b)) = (rps_at(lo as u32), rps_at(hi as u32)) else {
            return f64::INFINITY;
        };
        let t = users - lo;
        (1.0 - t) * a + t * b
    };
    let lambda = rate.0;
    let users = closed_population(lambda, budget, throughput);
    let (lo, hi) = (users.floor().max(1.0), users.ceil().max(1.0));
    // The whole prediction at a user count (its throughput is known by now).
    let at = |users: f64| -> Option<Prediction> {
        let users = users as u32;
        rps_at(users)?;
        if let Some(p) = cache.borrow().get(&users).and_then(|c| c.full.clone()) {
            return Some(p);
        }
        match closed.predict(&at_users(users)) {
            Ok(p) => {
                debug_assert_eq!(rps(&p).to_bits(), cache.borrow()[&users].rps.to_bits());
                cache.borrow_mut().entry(users).or_default().full = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                error.borrow_mut().get_or_insert(e);
                None
            }
        }
    };
    let (Some(a), Some(b), Some(saturated)) = (at(lo), at(hi), at(budget)) else {
        return Err(error
            .borrow_mut()
            .take()
            .unwrap_or_else(|| PredictError::Scenario("no closed-loop prediction".into())));
    };
    if let Some(e) = error.borrow_mut().take() {
        return Err(e);
    }
    let x_max = rps(&saturated).max(1e-12);
    // ms: the same wait as the physics model's open loop, at the predictor's capacity.
    let wait = erlang_c_wait(budget, (lambda / x_max).min(0.99), x_max / 1e3);
    let t = users - lo;
    let served = lambda.min(x_max);
    let (i, o) = (
        s.input_tokens.0.max(1) as f64,
        s.output_tokens.0.max(1) as f64,
    );
    // The open loop's summary from the two closed-loop ones around it: blended, the wait
    // added, and the throughput the arrivals offer (up to what the server completes).
    let open = |a: &Measurement, b: &Measurement| -> Summary {
        let mut r = Measurement {
            metrics: blend(a, b, t),
            ..a.clone()
        };
        add_wait(&mut r, wait, i);
        set_metric_value(&mut r, "request_throughput_rps", Some(served));
        set_metric_value(&mut r, "output_throughput_tok_s", Some(served * o));
        set_metric_value(&mut r, "total_throughput_tok_s", Some(served * (i + o)));
        r.metrics
    };
    let bound = |p: &Prediction, m: &Summary| Measurement {
        metrics: m.clone(),
        ..p.row.clone()
    };
    let mut row = s.to_row(&a.row.source);
    row.max_batch = a.row.max_batch;
    row.metrics = open(&a.row, &b.row);
    Ok(Prediction {
        lower: open(&bound(&a, &a.lower), &bound(&b, &b.lower)),
        upper: open(&bound(&a, &a.upper), &bound(&b, &b.upper)),
        out_of_domain: a.out_of_domain || b.out_of_domain,
        fit: a.fit.clone(),
        row,
    })
}

/// Every metric of `a` and `b` mixed `1 - t : t` (a metric either lacks is left out).
fn blend(a: &Measurement, b: &Measurement, t: f64) -> Summary {
    let mut out = a.metrics.clone();
    for &c in MetricColumn::all() {
        let v = match (c.get(&a.metrics), c.get(&b.metrics)) {
            (Some(x), Some(y)) => Some((1.0 - t) * x + t * y),
            _ => None,
        };
        c.set(&mut out, v);
    }
    out
}

/// Adds a queueing wait (ms) to every TTFT and E2E statistic, and its share per prompt token
/// to normalised TTFT.
fn add_wait(r: &mut Measurement, wait_ms: f64, input_tokens: f64) {
    for &c in MetricColumn::all() {
        let MetricColumn::Latency(metric, _) = c else {
            continue;
        };
        let per = match metric {
            Metric::Ttft | Metric::E2e => wait_ms,
            Metric::Nttft => wait_ms / input_tokens,
            _ => continue,
        };
        if let Some(v) = c.get(&r.metrics) {
            c.set(&mut r.metrics, Some(v + per));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Load, Resolver, Scenario};
    use crate::{LatencyModel, PhysicsModel, Predictor};
    use pilot_core::schema::metric_value;
    use pilot_core::units::{RequestsPerSec, Tokens};

    fn value(p: &crate::Prediction, c: &str) -> f64 {
        metric_value(&p.row, c).unwrap_or_else(|| panic!("{c} predicted"))
    }

    /// The property of issue 12: an open loop at the throughput a closed loop of N users
    /// reaches describes the same steady state, up to what Poisson arrivals add. That is at
    /// most the M/M/1 wait at the same utilisation (Erlang C's probability of waiting never
    /// exceeds ρ, so one server of the whole capacity bounds it), and nothing for ITL.
    ///
    /// Where a model's closed-loop throughput is not monotone in users (the trained
    /// predictor's can dip by a few percent past its knee), several populations reach the same
    /// throughput and each is a steady state Little's law allows: the open loop must then
    /// agree with one of them, so it is held to the range they span.
    fn check(model: &dyn LatencyModel, name: &str, s: &Scenario, failures: &mut Vec<String>) {
        let base = model.predict(s).unwrap();
        let crate::Fit::Fits {
            max_batch: budget, ..
        } = base.fit
        else {
            return;
        };
        let closed: Vec<crate::Prediction> = (1..=budget)
            .map(|u| {
                model
                    .predict(&Scenario {
                        load: Load::Users(u),
                        ..s.clone()
                    })
                    .unwrap()
            })
            .collect();
        let rps: Vec<f64> = closed
            .iter()
            .map(|p| value(p, "request_throughput_rps"))
            .collect();
        let x_max = rps[rps.len() - 1];
        for users in [1u32, 2, 4, 8, 16, 32, 64, 128, 256] {
            if users > budget {
                break;
            }
            let x = rps[users as usize - 1];
            let rho = x / x_max;
            if rho > 0.9 {
                break;
            }
            let open = model
                .predict(&Scenario {
                    load: Load::Rate(RequestsPerSec(x)),
                    ..s.clone()
                })
                .unwrap();
            // Populations whose throughput is x: within 1%, or either side of a crossing.
            let same: Vec<usize> = (0..closed.len())
                .filter(|&k| {
                    (rps[k] / x - 1.0).abs() <= 0.01
                        || (k + 1 < closed.len() && (rps[k] - x) * (rps[k + 1] - x) <= 0.0)
                        || (k > 0 && (rps[k - 1] - x) * (rps[k] - x) <= 0.0)
                })
                .collect();
            let range = |c: &str| {
                same.iter()
                    .map(|&k| value(&closed[k], c))
                    .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
                        (lo.min(v), hi.max(v))
                    })
            };
            let poisson_ms = rho / (1.0 - rho) / x_max * 1e3;
            let (t_lo, t_hi) = range("ttft_ms_p50");
            let (i_lo, i_hi) = range("itl_ms_p50");
            let (to, io) = (value(&open, "ttft_ms_p50"), value(&open, "itl_ms_p50"));
            let what = format!(
                "{name} {} on {} x {} ({}), {users} users = {x:.2} req/s (ρ {rho:.2})",
                s.model.id,
                s.gpu_count,
                s.gpu.name,
                s.engine.as_deref().unwrap_or("-")
            );
            if to < 0.97 * t_lo || to > 1.03 * t_hi + poisson_ms {
                failures.push(format!(
                    "{what}: TTFT p50 open {to:.1} ms vs closed {t_lo:.1}-{t_hi:.1} ms (+ Poisson at most {poisson_ms:.1})"
                ));
            }
            if io < 0.97 * i_lo || io > 1.03 * i_hi {
                failures.push(format!(
                    "{what}: ITL p50 open {io:.2} ms vs closed {i_lo:.2}-{i_hi:.2} ms"
                ));
            }
            let xo = value(&open, "request_throughput_rps");
            if (xo / x - 1.0).abs() > 1e-6 {
                failures.push(format!("{what}: open loop serves {xo:.3} req/s of {x:.3}"));
            }
        }
    }

    #[test]
    fn open_and_closed_loops_agree_up_to_poisson_arrivals() {
        let mut r = Resolver::default();
        let predictor = Predictor::shipped().unwrap();
        let physics = PhysicsModel::default();
        let mut failures = Vec::new();
        let mut checked = 0;
        for (model, gpu, count) in [
            ("mistral-7b", "H100-SXM-80GB", 1),
            ("llama-2-13b", "A100-SXM-80GB", 1),
            ("llama-3-70b", "H100-SXM-80GB", 4),
            ("flan-t5-xl", "A100-SXM-40GB", 1),
            ("gpt-neox-20b", "L40S", 2),
        ] {
            for engine in [None, Some("vllm"), Some("tgis")] {
                let s = Scenario {
                    engine: engine.map(str::to_string),
                    ..Scenario::new(
                        r.model(model).unwrap(),
                        r.gpu(gpu).unwrap(),
                        count,
                        Load::Users(1),
                        Tokens(512),
                        Tokens(256),
                    )
                };
                check(predictor, "predictor", &s, &mut failures);
                check(&physics, "physics", &s, &mut failures);
                checked += 1;
            }
        }
        assert_eq!(checked, 15);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_rate_below_a_closed_loops_throughput_is_no_slower_than_it() {
        // The operator's case: Mistral-7B on one H100 under vLLM. Whatever 40 users reach,
        // half that rate must not read a higher TTFT (beyond the Poisson wait, tiny there).
        let mut r = Resolver::default();
        let p = Predictor::shipped().unwrap();
        let s = Scenario {
            engine: Some("vllm".into()),
            ..Scenario::new(
                r.model("mistral-7b").unwrap(),
                r.gpu("h100").unwrap(),
                1,
                Load::Users(40),
                Tokens(512),
                Tokens(256),
            )
        };
        let closed = p.predict(&s).unwrap();
        let x = value(&closed, "request_throughput_rps");
        let open = p
            .predict(&Scenario {
                load: Load::Rate(RequestsPerSec(x / 2.0)),
                ..s
            })
            .unwrap();
        let (tc, to) = (value(&closed, "ttft_ms_p50"), value(&open, "ttft_ms_p50"));
        assert!(
            to <= tc * 1.01,
            "{to} ms at {} req/s vs {tc} ms at 40 users",
            x / 2.0
        );
    }
}

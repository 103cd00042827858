//! The steady state a load settles into on a server that fits: closed-loop users, open-loop
//! Poisson arrivals (the closed loop of equal throughput plus an Erlang-C wait) and offline
//! batches in waves.

use super::PhysicsModel;
use super::steps::{Shape, Step};
use crate::scenario::Load;
use pilot_core::units::RequestsPerSec;

/// A steady state of the server: in flight, the decode step at that batch, the share of
/// inter-token gaps holding a prefill and its length, mean TTFT and E2E, and throughput.
/// Times in ms (crate-internal, as [`super::Estimate`]).
pub(super) struct SteadyState {
    pub(super) n: f64,
    pub(super) step: Step,
    pub(super) gap_fraction: f64,
    pub(super) prefill_event_ms: f64,
    pub(super) ttft_ms: f64,
    pub(super) e2e_ms: f64,
    pub(super) requests_per_ms: f64,
}

/// A server that fits: the physics of one scenario's model on its GPUs, with its batch budget
/// and mean request lengths (ms and tokens as plain numbers, crate-internal).
pub(super) struct Server<'a> {
    pub(super) physics: &'a PhysicsModel,
    pub(super) shape: &'a Shape,
    /// The engine holds prompts back for waves (TGI's router).
    pub(super) wave_router: bool,
    /// Mean input and output tokens.
    pub(super) input: f64,
    pub(super) output: f64,
    /// Mean context of a decode step: the prompt and half the output.
    pub(super) ctx: f64,
    /// Requests in flight at most.
    pub(super) budget: f64,
}

impl Server<'_> {
    /// The steady state of `load`, and the load over capacity (closed: users / batch budget;
    /// open: rate / the saturated rate; offline: batch / budget).
    pub(super) fn steady_state(&self, load: Load) -> (SteadyState, f64) {
        match load {
            Load::Users(users) => {
                let users = users.max(1) as f64;
                (self.closed(users), users / self.budget)
            }
            Load::Rate(rate) => self.open(rate),
            Load::Batch(b) => self.offline(b),
        }
    }

    /// The closed-loop cycle for `n` in flight: (the decode step, the fraction of gaps with a
    /// prefill, one prefill event's ms, the cycle's ms). In the time the batch produces its
    /// output, `n` prompts are prefilled in `min(n, O)` steps that stall decoding.
    fn cycle(&self, n: f64) -> (Step, f64, f64, f64) {
        let (s, i, o) = (self.shape, self.input, self.output);
        let step = self.physics.decode_step(s, n, self.ctx, i);
        let events = n.min(o).max(1.0);
        let t_pe = self.physics.prefill(s, n / events, i);
        let cycle = o * step.total + events * t_pe;
        (step, events / o, t_pe, cycle)
    }

    /// The closed-loop steady state with `users` (real-valued, so that the open loop can
    /// solve for it) in flight or queued.
    fn closed(&self, users: f64) -> SteadyState {
        let p = &self.physics.params;
        let (s, i, o, budget) = (self.shape, self.input, self.output, self.budget);
        let n = users.min(budget);
        let (step, f, t_pe, cyc) = self.cycle(n);
        let itl_mean = step.total + f * t_pe;
        // A new request is prefilled with those that arrived in the same step; behind a
        // TGI-style router it also waits for a share of the other in-flight requests'
        // prefills (one batched prefill step either way), and so it does elsewhere where
        // users arrive in bursts (`burst_queue_share`).
        let share = if self.wave_router {
            p.prefill_queue_share
        } else {
            p.burst_queue_share
        };
        let together = (n / n.min(o).max(1.0)).max(1.0 + share * (n - 1.0));
        let t_first = self.physics.prefill(s, together, i);
        let ttft0 = p.request_overhead_ms + t_first + 0.5 * step.total;
        // Each user's cycle includes the per-request overhead and the prefill queue
        // (host side or waiting, overlapped with other users' GPU work), so it bounds
        // throughput as well as the GPU does.
        let own = ttft0 + (o - 1.0) * itl_mean;
        let x = (n / cyc).min(n / own); // requests per ms
        let (ttft, e2e) = if users <= budget {
            (ttft0, own)
        } else {
            let e2e = users / x;
            (e2e - (o - 1.0) * itl_mean, e2e)
        };
        SteadyState {
            n,
            step,
            gap_fraction: f,
            prefill_event_ms: t_pe,
            ttft_ms: ttft,
            e2e_ms: e2e,
            requests_per_ms: x,
        }
    }

    /// The open-loop steady state at `rate`, and the rate over the saturated rate.
    fn open(&self, rate: RequestsPerSec) -> (SteadyState, f64) {
        let budget = self.budget;
        let lambda = rate.0.max(1e-9) / 1e3; // per ms
        let x_max = self.closed(budget).requests_per_ms;
        let rho = lambda / x_max;
        // By Little's law an open loop at rate λ holds the same steady state as the
        // closed loop whose throughput is λ: solve for that population.
        let users = closed_population(lambda, budget, |u| self.closed(u).requests_per_ms);
        let mut st = self.closed(users);
        // What Poisson arrivals add: a request that finds every one of the `budget`
        // slots busy waits for one to free (M/M/c, Erlang C). Overload keeps ρ at
        // 0.99, so it shows as very long TTFTs rather than an error.
        let wait = erlang_c_wait(budget, rho.min(0.99), x_max);
        st.ttft_ms += wait;
        st.e2e_ms += wait;
        st.requests_per_ms = lambda.min(x_max);
        (st, rho)
    }

    /// An offline batch of `b`: `ceil(b / budget)` waves, each a batched prefill then the
    /// decode steps at the wave's batch size; and the batch over the budget.
    fn offline(&self, b: u32) -> (SteadyState, f64) {
        let (s, i, o, budget) = (self.shape, self.input, self.output, self.budget);
        let b = b.max(1) as f64;
        let waves = (b / budget).ceil();
        let m = b / waves;
        let step = self.physics.decode_step(s, m, self.ctx, i);
        let t_pe = self.physics.prefill(s, m, i);
        let wave = t_pe + (o - 1.0) * step.total;
        let e2e = waves * wave;
        let state = SteadyState {
            n: m,
            step,
            gap_fraction: 0.0,
            prefill_event_ms: t_pe,
            ttft_ms: t_pe,
            e2e_ms: e2e,
            requests_per_ms: b / e2e,
        };
        (state, b / budget)
    }
}

/// The closed-loop population (1 to `budget` users, real-valued) whose throughput
/// `throughput(users)` is `lambda`: the closed loop an open loop at rate `lambda` matches by
/// Little's law. Below one user's throughput it is one user (a request mostly runs alone);
/// at or past the saturated throughput, the whole budget.
///
/// Found to 0.1% of the population by regula falsi with Illinois' modification (throughput
/// grows with the population, concave and smooth or piecewise linear, so interpolating
/// converges in a few evaluations where bisection takes a dozen; each evaluation can be a
/// whole prediction), bisecting whenever an interpolated step fails to halve the bracket.
pub(crate) fn closed_population(lambda: f64, budget: f64, throughput: impl Fn(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (1.0, budget);
    if budget <= 1.0 {
        return 1.0;
    }
    let mut f_lo = throughput(lo) - lambda;
    if f_lo >= 0.0 {
        return 1.0;
    }
    let mut f_hi = throughput(hi) - lambda;
    if f_hi <= 0.0 {
        return budget;
    }
    let mut side = 0i8;
    let mut bisect = false;
    for _ in 0..60 {
        if hi - lo < 1e-3 * lo {
            break;
        }
        let width = hi - lo;
        let interpolated = lo - f_lo * (hi - lo) / (f_hi - f_lo);
        let mid = if bisect || !interpolated.is_finite() {
            0.5 * (lo + hi)
        } else {
            // Never closer to an end than the precision asked for.
            let eps = 2e-4 * lo;
            interpolated.clamp(lo + eps, hi - eps)
        };
        let f = throughput(mid) - lambda;
        if f == 0.0 {
            return mid;
        }
        if f < 0.0 {
            lo = mid;
            f_lo = f;
            if side == -1 {
                f_hi *= 0.5;
            }
            side = -1;
        } else {
            hi = mid;
            f_hi = f;
            if side == 1 {
                f_lo *= 0.5;
            }
            side = 1;
        }
        bisect = !bisect && hi - lo > 0.5 * width;
    }
    0.5 * (lo + hi)
}

/// Mean wait for a free slot under Poisson arrivals at utilisation `rho` of `slots` slots
/// that together complete `capacity_per_ms` requests per ms (M/M/c: Erlang C probability of
/// waiting over the spare capacity), in ms. A continuous-batching server admits a request at
/// its next step while a slot is free, so with many slots this stays near zero until the
/// server is nearly full, then grows steeply.
pub(crate) fn erlang_c_wait(slots: f64, rho: f64, capacity_per_ms: f64) -> f64 {
    let c = slots.floor().max(1.0);
    let rho = rho.clamp(0.0, 0.99);
    if rho <= 0.0 || capacity_per_ms <= 0.0 {
        return 0.0;
    }
    let b = erlang_b(c, rho * c);
    let wait_probability = b / (1.0 - rho * (1.0 - b));
    wait_probability / (capacity_per_ms * (1.0 - rho))
}

/// Erlang B, the blocking probability of `c` slots under `a` erlangs, by its stable
/// recursion `B(k) = a B(k−1) / (k + a B(k−1))`, in O(√a) steps instead of `c`.
///
/// Why not all `c` steps: a recommend search asks for this with `c` in the tens of
/// thousands (every decode slot of a wide deployment), for many rates and candidates. The
/// recursion contracts toward its value by a factor of about `k/a` per step below `a` and
/// `a/k` above, so it can start 8 standard deviations (`8√a`) below `a` from the value it
/// tends to there (`1 − k/a`), the start's error damped below 1e-13 by `a` (or by `c`, where
/// there are fewer slots than erlangs); and above `a`
/// the probability falls faster than geometrically, so once it is below 1e-30 (a wait of
/// nothing at all) the remaining steps are skipped.
fn erlang_b(c: f64, a: f64) -> f64 {
    let start = (a.min(c) - 8.0 * a.sqrt() - 50.0).floor().max(0.0);
    let mut b = if start > 0.0 { 1.0 - start / a } else { 1.0 };
    let mut k = start + 1.0;
    while k <= c {
        b = a * b / (k + a * b);
        if b < 1e-30 {
            return b;
        }
        k += 1.0;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::{closed_population, erlang_b};

    #[test]
    fn the_population_inverts_the_throughput_to_a_tenth_of_a_percent() {
        // Smooth and saturating, piecewise linear between whole users (as the predictor's
        // closed loop is read), and nearly flat before saturation.
        let smooth = |u: f64| 2.0 * u / (1.0 + u / 40.0);
        let steps = |u: f64| {
            let (lo, t) = (u.floor(), u - u.floor());
            let at = |n: f64| (n * 3.0).sqrt() + 0.01 * (n % 3.0);
            (1.0 - t) * at(lo) + t * at(lo + 1.0)
        };
        let flat = |u: f64| 10.0 * (1.0 - (-u / 3.0).exp());
        let curves: [(&str, &dyn Fn(f64) -> f64); 3] =
            [("smooth", &smooth), ("steps", &steps), ("flat", &flat)];
        for (name, f) in curves {
            let budget = 500.0;
            for share in [0.001, 0.3, 0.7, 0.95, 0.999, 1.2] {
                let lambda = f(1.0) + share * (f(budget) - f(1.0));
                let u = closed_population(lambda, budget, f);
                if share >= 1.0 {
                    assert_eq!(u, budget, "{name} past saturation");
                    continue;
                }
                // The exact population by a long bisection.
                let (mut lo, mut hi) = (1.0, budget);
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if f(mid) < lambda { lo = mid } else { hi = mid }
                }
                assert!(
                    (u - lo).abs() <= 1e-3 * lo,
                    "{name} at {share}: {u} users vs {lo}"
                );
            }
        }
        assert_eq!(closed_population(0.5, 500.0, smooth), 1.0);
    }

    #[test]
    fn erlang_b_from_near_the_load_matches_the_whole_recursion() {
        let whole = |c: f64, a: f64| {
            let mut b = 1.0;
            for k in 1..=(c as u64) {
                b = a * b / (k as f64 + a * b);
            }
            b
        };
        let mut shortened = 0;
        for c in [1.0, 2.0, 7.0, 64.0, 500.0, 4_000.0, 60_000.0] {
            for rho in [0.01, 0.3, 0.7, 0.9, 0.99, 1.5] {
                let a = rho * c;
                let (got, want) = (erlang_b(c, a), whole(c, a));
                if want < 1e-30 {
                    assert!(got < 1e-29, "c {c}, ρ {rho}: {got} vs {want}");
                } else {
                    assert!(
                        (got - want).abs() <= 1e-12 * want,
                        "c {c}, ρ {rho}: {got} vs {want}"
                    );
                }
                shortened += usize::from(a.min(c) - 8.0 * a.sqrt() - 50.0 > 1.0);
            }
        }
        assert!(
            shortened >= 6,
            "only {shortened} cases start past the first slot"
        );
    }
}

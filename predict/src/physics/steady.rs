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
pub(crate) fn closed_population(lambda: f64, budget: f64, throughput: impl Fn(f64) -> f64) -> f64 {
    if budget <= 1.0 || lambda <= throughput(1.0) {
        return 1.0;
    }
    if lambda >= throughput(budget) {
        return budget;
    }
    let (mut lo, mut hi) = (1.0, budget);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if throughput(mid) < lambda {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-3 * lo {
            break;
        }
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
    let a = rho * c;
    // Erlang B by its stable recursion, then Erlang C from it.
    let mut b = 1.0;
    for k in 1..=(c as u64) {
        b = a * b / (k as f64 + a * b);
    }
    let wait_probability = b / (1.0 - rho * (1.0 - b));
    wait_probability / (capacity_per_ms * (1.0 - rho))
}

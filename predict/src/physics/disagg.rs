//! Disaggregated serving: prefill workers hand each request's KV cache to decode workers
//! (NVIDIA Dynamo, SGLang's PD mode, TensorRT-LLM's disaggregated serving).
//!
//! A request queues for a prefill worker (its own layout), is prefilled there, its prompt's
//! KV cache crosses to a decode worker (over NVLink when one NVLink domain holds both
//! workers, else over the scale-out network), then decodes at that worker's batch. Decode
//! workers never run a prefill, so no inter-token gap holds one. The steady state is a
//! closed loop of two stations: the users' throughput is the least of what their own cycles
//! (TTFT, then `O − 1` decode steps) allow, what the prefill workers and what the decode
//! workers can serve; the decode batch follows from that throughput by Little's law.

use super::steady::{SteadyState, erlang_c_wait};
use super::steps::{Link, Shape};
use super::{Estimate, PhysicsModel};
use crate::PredictError;
use crate::scenario::{Fit, Load, Scenario};
use pilot_core::layout::Workers;
use pilot_core::units::Tokens;

/// The two sides of a disaggregated deployment that fits (ms, tokens and counts as plain
/// numbers, crate-internal).
struct Disaggregated<'a> {
    physics: &'a PhysicsModel,
    decode: &'a Shape,
    /// Prefill and decode workers.
    prefill_workers: f64,
    decode_workers: f64,
    input: f64,
    output: f64,
    ctx: f64,
    /// Sequences one decode worker holds at most.
    decode_budget: f64,
    /// Sending one prompt's KV cache to its decode worker.
    transfer_ms: f64,
    /// One prompt's prefill alone, ms.
    lone_prefill_ms: f64,
    /// Prompts per ms one prefill worker serves at its full step (`prefill_batch` prompts per
    /// step: the engine's token budget per step, and the prompts whose KV the worker holds
    /// until it is sent).
    prefill_rate: f64,
    /// Requests per ms the decode workers serve at their full batch.
    decode_rate: f64,
}

impl PhysicsModel {
    /// The physics of a disaggregated deployment (see the module doc): each side's memory
    /// fit, then the two-station steady state.
    pub(super) fn estimate_disaggregated(
        &self,
        sc: &Scenario,
        prefill: Workers,
        decode: Workers,
    ) -> Result<(Estimate, Fit), PredictError> {
        let p = &self.params;
        let i = sc.input_tokens.0.max(1) as f64;
        let o = sc.output_tokens.0.max(1) as f64;
        let ps = self.shape(sc, prefill.layout());
        let ds = self.shape(sc, decode.layout());
        // The decode side holds the weights and the KV of its batch; the prefill side the
        // weights, one prefill's activations and the KV of the prompts in prefill.
        let dmem = self.memory(sc, &ds, i);
        let mut est = Estimate::unfitted(dmem.weights / dmem.usable.max(1.0));
        let pmem = self.memory(sc, &ps, i);
        for (side, s, m) in [("decode", &ds, &dmem), ("prefill", &ps, &pmem)] {
            if m.free <= 0.0 {
                let reason = format!("{side} workers: {}", self.weights_do_not_fit(sc, s, m));
                return Ok((est, Fit::DoesNotFit { reason }));
            }
        }
        let pkv = self.kv_budget(sc, &ps, pmem.free, i, 0.0);
        let dkv = self.kv_budget(sc, &ds, dmem.free, i, o);
        for (side, kv, m) in [("prefill", &pkv, &pmem), ("decode", &dkv, &dmem)] {
            if kv.batch < 1.0 {
                let reason = format!("{side} workers: {}", kv.request_does_not_fit(sc, m.weights));
                return Ok((est, Fit::DoesNotFit { reason }));
            }
        }
        let wd = f64::from(decode.count().max(1));
        est.fits = true;
        est.kv_cache_tokens = dkv.tokens * wd;
        est.max_batch = dkv.batch * wd;
        // Each attention-DP rank takes its own chunk of prompts per step.
        let prefill_batch =
            ((p.activation_tokens / i).floor().max(1.0) * ps.dp).clamp(1.0, pkv.batch);
        let ctx = i + o / 2.0;
        let full = self.decode_step(&ds, dkv.batch, ctx, i);
        let server = Disaggregated {
            physics: self,
            decode: &ds,
            prefill_workers: f64::from(prefill.count().max(1)),
            decode_workers: wd,
            input: i,
            output: o,
            ctx,
            decode_budget: dkv.batch,
            transfer_ms: self.kv_transfer_ms(sc, &ps, &ds, prefill, decode, i),
            lone_prefill_ms: self.prefill(&ps, 1.0, i),
            prefill_rate: prefill_batch / self.prefill(&ps, prefill_batch, i),
            decode_rate: wd * dkv.batch / ((o - 1.0).max(1.0) * full.total),
        };
        let step1 = self.decode_step(&ds, 1.0, server.ctx, i);
        est.decode_step1_ms = step1.total;
        est.prefill_ms = self.prefill(&ps, 1.0, i);
        let (state, load_ratio) = server.steady_state(sc.load);
        est.load_ratio = load_ratio;
        est.settle(state, &step1, i, o);
        let per_worker = est.in_flight / f64::from(prefill.count().max(1));
        est.wave_prefill_ms = self.prefill(&ps, per_worker.max(1.0), i);
        let fit = Fit::Fits {
            kv_cache_tokens: Tokens(est.kv_cache_tokens as u64),
            max_batch: est.max_batch as u32,
        };
        Ok((est, fit))
    }

    /// Sending one prompt's KV cache (`i` tokens, every layer) from a prefill worker to a
    /// decode worker, ms. Each GPU of a prefill DP rank sends its shard to its counterpart
    /// at once, so as many links as the narrower side's tensor x pipeline GPUs carry it:
    /// NVLink when one NVLink domain holds both workers (GB200/GB300 NVL72), else the
    /// scale-out network.
    fn kv_transfer_ms(
        &self,
        sc: &Scenario,
        ps: &Shape,
        ds: &Shape,
        prefill: Workers,
        decode: Workers,
        i: f64,
    ) -> f64 {
        let both = f64::from(prefill.layout().gpus() + decode.layout().gpus());
        let link = Link::new(&sc.gpu, both, &self.params);
        let lanes = (ps.tp * ps.pp).min(ds.tp * ds.pp).max(1.0);
        let bytes = i * (ps.kv_bytes_per_token + ps.cross_kv_bytes_per_token);
        link.latency_ms() + bytes / (lanes * link.ring_bw()) * 1e3
    }
}

impl Disaggregated<'_> {
    fn steady_state(&self, load: Load) -> (SteadyState, f64) {
        let capacity = self.decode_workers * self.decode_budget;
        match load {
            Load::Users(u) => {
                let users = f64::from(u.max(1));
                (self.closed(users), users / capacity)
            }
            Load::Rate(rate) => {
                // As the aggregated open loop: the closed loop of equal throughput (Little's
                // law), plus the Erlang-C wait for a free decode slot.
                let lambda = rate.0.max(1e-9) / 1e3;
                let saturated = self.closed(capacity);
                let x_max = saturated.requests_per_ms;
                let rho = lambda / x_max;
                let mut st = if lambda >= x_max {
                    saturated
                } else {
                    self.closed(self.population(lambda, capacity))
                };
                let wait = erlang_c_wait(capacity, rho.min(0.99), x_max);
                st.ttft_ms += wait;
                st.e2e_ms += wait;
                st.requests_per_ms = lambda.min(x_max);
                (st, rho)
            }
            // An offline batch keeps every request in the loop until done: the closed loop of
            // that many users (waves are not modelled apart).
            Load::Batch(b) => {
                let b = f64::from(b.max(1));
                (self.closed(b), b / capacity)
            }
        }
    }

    /// The closed-loop population (1 to `capacity` users) whose throughput is `lambda`
    /// requests per ms, below the saturated throughput: what
    /// [`closed_population`](super::steady::closed_population) finds by bisection, solved
    /// directly. Why: a bisection runs the closed loop's fixed point a
    /// dozen times or more per prediction, and an open-loop capacity search predicts many
    /// rates for each of thousands of candidates.
    ///
    /// At throughput `λ` the decode batch is Little's `n = λ (O − 1) ITL(n) / W` (one fixed
    /// point), the prefill wait is M/M/1 at `λ` (no longer than the users ahead of a request
    /// make it), and the population is Little's law on the whole cycle:
    /// `U = λ (TTFT₀ + wait + (O − 1) ITL)`; with the wait capped by `(U/P − 1)/μ` that is
    /// linear in `U` too.
    fn population(&self, lambda: f64, capacity: f64) -> f64 {
        let p = &self.physics.params;
        let (i, o) = (self.input, self.output);
        if capacity <= 1.0 || lambda <= self.closed(1.0).requests_per_ms {
            return 1.0;
        }
        let decodes = (o - 1.0).max(1.0);
        let mut n = 1.0;
        let mut itl = 0.0;
        for _ in 0..60 {
            itl = self.physics.decode_step(self.decode, n, self.ctx, i).total;
            let next =
                (lambda * decodes * itl / self.decode_workers).clamp(1.0, self.decode_budget);
            if (next - n).abs() <= 1e-9 * n {
                break;
            }
            n = 0.5 * (n + next);
        }
        let mu = self.prefill_rate;
        let rho = (lambda / (self.prefill_workers * mu)).clamp(0.0, 0.99);
        let mm1 = rho / (mu * (1.0 - rho));
        let cycle =
            p.request_overhead_ms + self.lone_prefill_ms + self.transfer_ms + (o - 1.0) * itl;
        let users = lambda * (cycle + mm1);
        let ahead_cap = |u: f64| (u / self.prefill_workers - 1.0).max(0.0) / mu;
        let users = if ahead_cap(users) >= mm1 {
            users
        } else {
            // The wait is the users ahead: U = λ (cycle + (U/P − 1)/μ).
            let k = lambda / (self.prefill_workers * mu);
            (lambda * (cycle - 1.0 / mu) / (1.0 - k)).max(lambda * cycle)
        };
        users.clamp(1.0, capacity)
    }

    /// The closed loop with `users`: a fixed point of the decode batch (Little's law on the
    /// throughput) and the throughput (the least of the users' cycles and the two sides'
    /// capacities, [`Disaggregated::throughput`]).
    fn closed(&self, users: f64) -> SteadyState {
        let phys = self.physics;
        let p = &phys.params;
        let (i, o) = (self.input, self.output);
        let decodes = (o - 1.0).max(1.0);
        let per_decode = (users / self.decode_workers).min(self.decode_budget);
        let ttft0 = p.request_overhead_ms + self.lone_prefill_ms + self.transfer_ms;
        let mut n = per_decode.max(1.0);
        let mut state = None;
        for _ in 0..30 {
            let step = phys.decode_step(self.decode, n, self.ctx, i);
            let itl = step.total;
            let (x, wait) = self.throughput(users, ttft0 + (o - 1.0) * itl);
            let e2e = (ttft0 + wait + (o - 1.0) * itl).max(users / x);
            let next_n = (x * decodes * itl / self.decode_workers).clamp(1.0, per_decode.max(1.0));
            let done = (next_n - n).abs() <= 1e-6 * n;
            state = Some(SteadyState {
                n,
                step,
                gap_fraction: 0.0,
                prefill_event_ms: self.lone_prefill_ms,
                ttft_ms: e2e - (o - 1.0) * itl,
                e2e_ms: e2e,
                requests_per_ms: x,
            });
            if done {
                break;
            }
            n = 0.5 * (n + next_n);
        }
        state.expect("the loop runs at least once")
    }

    /// The throughput (requests per ms) of `users` whose own cycle without queueing takes
    /// `cycle_ms`, and the prefill wait it causes: the `x` with `x · (cycle + wait(x)) =
    /// users`, capped by what the decode and the prefill workers serve. The wait for a busy
    /// prefill worker is M/M/1 per worker on its share of the arrivals (`ρ/(μ(1 − ρ))`, with
    /// `ρ` at most 0.99), no longer than the users ahead of a request could make it.
    ///
    /// Why in closed form: the recommend search asks for thousands of these per call, and
    /// the equation is a quadratic in `x` within each piece of the wait, so no iteration is
    /// needed (the root is unique: the left side grows with `x`).
    fn throughput(&self, users: f64, cycle_ms: f64) -> (f64, f64) {
        let mu = self.prefill_rate;
        let k = self.prefill_workers * mu;
        let ahead = (users / self.prefill_workers - 1.0).max(0.0);
        let wait_cap = ahead / mu;
        let mm1 = |x: f64| {
            let rho = (x / k).clamp(0.0, 0.99);
            rho / (mu * (1.0 - rho))
        };
        let wait_of = |x: f64| mm1(x).min(wait_cap);
        // The root where the wait is capped by the users ahead; else the M/M/1 wait holds
        // there, and the root is the quadratic's, x²(1/(Kμ) − A/K) + x(A + U/K) − U = 0
        // (A the cycle, U the users, K all prefill workers' rate), while ρ = x/K < 0.99, or
        // the one at ρ's clamp past it.
        let capped = users / (cycle_ms + wait_cap);
        let root = if mm1(capped) >= wait_cap {
            capped
        } else {
            let a2 = (1.0 / mu - cycle_ms) / k;
            let a1 = cycle_ms + users / k;
            let q = 2.0 * users / (a1 + (a1 * a1 + 4.0 * a2 * users).max(0.0).sqrt());
            if q < 0.99 * k {
                q
            } else {
                users / (cycle_ms + 0.99 / (mu * 0.01))
            }
        };
        let x = root.min(self.decode_rate).min(k);
        (x, wait_of(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatencyModel;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::layout::{Layout, Serving};
    use pilot_core::llm::ModelCatalog;
    use pilot_core::quant::Quantization;

    /// DeepSeek-V3 in fp8 on `gpu`: `pw` prefill workers of TP 8 and `dw` decode workers of
    /// TP 8, or one aggregated TP 8 worker when `pw` is 0.
    fn ds(gpu: &str, pw: u32, dw: u32, users: u32, input: u64) -> Scenario {
        let m = ModelCatalog::builtin()
            .resolve("deepseek-ai/DeepSeek-V3")
            .unwrap();
        let g = GpuCatalog::builtin().resolve(gpu).unwrap().clone();
        let mut s = Scenario::new(m, g, 8, Load::Users(users), Tokens(input), Tokens(512));
        s.quantization = Quantization::Fp8Block;
        let tp8 = Layout::new(8, 1, 8, 1).unwrap();
        if pw > 0 {
            s.serving = Serving::Disaggregated {
                prefill: Workers::new(pw, tp8).unwrap(),
                decode: Workers::new(dw, tp8).unwrap(),
            };
        } else {
            s.serving = Serving::Aggregated(tp8);
        }
        s.gpu_count = s.serving.gpus();
        s
    }

    fn est(s: &Scenario) -> Estimate {
        let (e, fit) = PhysicsModel::default().estimate(s).unwrap();
        assert!(matches!(fit, Fit::Fits { .. }), "{fit:?}");
        e
    }

    /// The decode side of DeepSeek-V3 on H200 workers of TP 8, and a disaggregated server on
    /// it with 4,096-token prompts, 512-token outputs, a 48-sequence decode budget, a 3 ms
    /// transfer and the given prefill side; its decode rate follows from the shape.
    fn decode_shape(physics: &PhysicsModel) -> Shape {
        let s = ds("H200", 2, 3, 64, 4096);
        let Serving::Disaggregated { decode, .. } = s.serving else {
            unreachable!()
        };
        physics.shape(&s, decode.layout())
    }

    fn server<'a>(
        physics: &'a PhysicsModel,
        decode: &'a Shape,
        (prefill_workers, decode_workers): (f64, f64),
        lone_prefill_ms: f64,
        prefill_rate: f64,
    ) -> Disaggregated<'a> {
        let (input, output, budget) = (4096.0, 512.0, 48.0);
        let ctx = input + output / 2.0;
        let full = physics.decode_step(decode, budget, ctx, input).total;
        Disaggregated {
            physics,
            decode,
            prefill_workers,
            decode_workers,
            input,
            output,
            ctx,
            decode_budget: budget,
            transfer_ms: 3.0,
            lone_prefill_ms,
            prefill_rate,
            decode_rate: decode_workers * budget / ((output - 1.0) * full),
        }
    }

    #[test]
    fn the_closed_form_throughput_solves_the_users_cycle_equation() {
        // Against bisection on x · (cycle + wait(x)) = users, in every piece of the wait:
        // no queue (users ≤ workers), capped by the users ahead, M/M/1, and ρ's clamp.
        let physics = PhysicsModel::default();
        let dsh = decode_shape(&physics);
        let mut checked = 0;
        for workers in [1.0, 3.0] {
            for mu in [1e-3, 0.05, 10.0] {
                for cycle in [10.0, 1_000.0, 50_000.0] {
                    for users in [1.0, 2.0, 7.0, 60.0, 600.0, 6_000.0] {
                        let mut server = server(&physics, &dsh, (workers, 1.0), 100.0, mu);
                        server.decode_rate = f64::INFINITY;
                        let k = workers * mu;
                        let cap = (users / workers - 1.0).max(0.0) / mu;
                        let wait = |x: f64| {
                            let rho = (x / k).clamp(0.0, 0.99);
                            (rho / (mu * (1.0 - rho))).min(cap)
                        };
                        let (mut lo, mut hi) = (0.0, users / cycle);
                        for _ in 0..200 {
                            let mid = 0.5 * (lo + hi);
                            if mid * (cycle + wait(mid)) < users {
                                lo = mid;
                            } else {
                                hi = mid;
                            }
                        }
                        let want = lo.min(k);
                        let (x, w) = server.throughput(users, cycle);
                        assert!(
                            (x - want).abs() <= 1e-9 * want,
                            "{workers} workers, μ {mu}, cycle {cycle}, {users} users: \
                             {x} vs {want}"
                        );
                        assert!((w - wait(x)).abs() <= 1e-9 * (1.0 + w));
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 108);
    }

    #[test]
    fn the_open_loop_population_is_the_one_bisection_finds() {
        // The closed loop whose throughput is λ, solved directly, against bisection on the
        // closed loop itself, from light load to near saturation, with few and many prefill
        // workers and slow and fast prefill.
        let physics = PhysicsModel::default();
        let dsh = decode_shape(&physics);
        let mut checked = 0;
        for (prefill_workers, decode_workers) in [(1.0, 1.0), (2.0, 3.0), (6.0, 1.0)] {
            for lone_prefill_ms in [20.0, 400.0] {
                let server = server(
                    &physics,
                    &dsh,
                    (prefill_workers, decode_workers),
                    lone_prefill_ms,
                    2.0 / (1.5 * lone_prefill_ms),
                );
                let budget = server.decode_budget;
                let capacity = decode_workers * budget;
                let x_max = server.closed(capacity).requests_per_ms;
                for share in [0.01, 0.2, 0.5, 0.8, 0.95, 0.995] {
                    let lambda = share * x_max;
                    let want = super::super::steady::closed_population(lambda, capacity, |u| {
                        server.closed(u).requests_per_ms
                    });
                    let got = server.population(lambda, capacity);
                    assert!(
                        (got - want).abs() <= 2e-3 * want,
                        "{prefill_workers}P{decode_workers}D, prefill {lone_prefill_ms} ms, \
                         {share} of saturation: {got} users vs {want} by bisection"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 36);
    }

    #[test]
    fn decode_workers_never_stall_for_a_prefill() {
        let (agg, dis) = (
            est(&ds("H200", 0, 1, 64, 4096)),
            est(&ds("H200", 1, 1, 64, 4096)),
        );
        assert!(agg.prefill_gap_fraction > 0.0);
        assert_eq!(dis.prefill_gap_fraction, 0.0);
        assert_eq!(dis.itl_mean_ms, dis.decode_step_ms);
        assert!(
            dis.itl_mean_ms < agg.itl_mean_ms,
            "{} vs {}",
            dis.itl_mean_ms,
            agg.itl_mean_ms
        );
    }

    #[test]
    fn ttft_is_the_prefill_plus_the_kv_transfer_and_grows_with_the_prompt() {
        let p = PhysicsModel::default();
        let one = ds("H200", 1, 1, 1, 1024);
        let e = est(&one);
        let floor = p.params.request_overhead_ms + e.prefill_ms;
        assert!(e.ttft_ms > floor, "{} vs {floor}", e.ttft_ms);
        // No decode step in it: a lone request's TTFT is prefill + transfer + overhead.
        assert!(e.ttft_ms < floor + 5.0, "{} vs {floor}", e.ttft_ms);
        let mut last = 0.0;
        for input in [512, 2048, 8192] {
            let t = est(&ds("H200", 1, 1, 16, input)).ttft_ms;
            assert!(t > last, "TTFT at {input}: {t} after {last}");
            last = t;
        }
    }

    #[test]
    fn the_kv_cache_crosses_nvlink_inside_an_nvl72_rack_and_the_network_between_hgx_nodes() {
        let p = PhysicsModel::default();
        let time = |gpu: &str| {
            let s = ds(gpu, 1, 1, 1, 8192);
            let Serving::Disaggregated { prefill, decode } = s.serving else {
                unreachable!()
            };
            let (ps, dsh) = (p.shape(&s, prefill.layout()), p.shape(&s, decode.layout()));
            p.kv_transfer_ms(&s, &ps, &dsh, prefill, decode, 8192.0)
        };
        // GB300's 900 GB/s NVLink against 50 GB/s per GPU of network between two B300 nodes.
        assert!(
            time("B300") > 10.0 * time("GB300"),
            "{} vs {}",
            time("B300"),
            time("GB300")
        );
    }

    #[test]
    fn more_prefill_workers_cut_queued_ttft_and_more_decode_workers_cut_tpot() {
        let base = est(&ds("H200", 1, 1, 128, 8192));
        let more_prefill = est(&ds("H200", 3, 1, 128, 8192));
        let more_decode = est(&ds("H200", 1, 3, 128, 8192));
        assert!(
            more_prefill.ttft_ms < base.ttft_ms,
            "{} vs {}",
            more_prefill.ttft_ms,
            base.ttft_ms
        );
        assert!(more_decode.itl_mean_ms < base.itl_mean_ms);
        // Throughput: no more than either side can serve.
        assert!(more_prefill.request_rps >= base.request_rps);
        for e in [base, more_prefill, more_decode] {
            assert!(e.ttft_ms.is_finite() && e.request_rps > 0.0);
        }
    }

    #[test]
    fn more_users_never_lower_ttft_itl_or_throughput() {
        let mut last = (0.0, 0.0, 0.0);
        for u in [1, 4, 16, 64, 256, 1024, 4096] {
            let e = est(&ds("H200", 2, 3, u, 2048));
            let now = (e.ttft_ms, e.itl_mean_ms, e.request_rps);
            assert!(
                now.0 >= last.0 * (1.0 - 1e-6) && now.1 >= last.1 * (1.0 - 1e-6),
                "{u} users: {now:?} after {last:?}"
            );
            assert!(
                now.2 >= last.2 * (1.0 - 1e-6),
                "{u} users: {now:?} after {last:?}"
            );
            last = now;
        }
    }

    #[test]
    fn each_side_must_fit_its_own_gpus() {
        // Prefill on one H200 cannot hold DeepSeek-V3's weights; the decode side can.
        let mut s = ds("H200", 1, 1, 8, 1024);
        let Serving::Disaggregated { decode, .. } = s.serving else {
            unreachable!()
        };
        s.serving = Serving::Disaggregated {
            prefill: Workers::new(1, Layout::new(1, 1, 1, 1).unwrap()).unwrap(),
            decode,
        };
        let pred = PhysicsModel::default().predict(&s).unwrap();
        let Fit::DoesNotFit { reason } = pred.fit else {
            panic!("fits: {:?}", pred.fit)
        };
        assert!(reason.starts_with("prefill workers"), "{reason}");
    }
}

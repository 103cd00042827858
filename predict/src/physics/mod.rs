//! The physics model: serving latency from FLOPs, bytes and links, no training.
//!
//! Roofline step times (as in Vidur's and LLMCompass' analytic predictors, and NVIDIA's
//! AIConfigurator without its measured kernel tables), then an analytic steady state of a
//! continuous-batching server. Every constant is in [`PhysicsParams`] with its reason; none
//! is fitted to the public data (the trained [`crate::Predictor`] learns what they miss).
//!
//! Per GPU of one worker whose [`Layout`] is `TP` x `PP` x `DP` (tensor x pipeline x
//! attention data parallel; a file without layout columns is one TP group over its GPU count,
//! which gives exactly the numbers of the model before layouts):
//!
//! - **Layout.** Attention runs tensor-parallel over `TP` inside each of `DP` ranks that hold
//!   different sequences (the batch splits evenly over them); the attention and dense weights
//!   (and shared experts) are split over `TP` and copied on every rank (TensorRT-LLM's
//!   attention DP runs the dense MLPs data-parallel too); the routed experts are spread over
//!   all `TP · DP` GPUs of a stage (expert x MoE-tensor parallelism), since that is where the
//!   engines put them. `PP` stages each hold `1/PP` of the layers. So weights per GPU =
//!   `(dense/TP + routed/(TP·DP)) / PP`, and one token's KV is spread over `TP · DP · PP` GPUs
//!   (`DP · PP` for MLA, whose latent has no heads for TP to split). GEMMs run at the peak of
//!   the quantization's math ([`pilot_core::gpu::GpuSpec::peak_for`]: fp8 at the fp8 rate,
//!   nvfp4/mxfp4 at the fp4 rate where the GPU has fp4 tensor cores, else 16-bit, as int4
//!   w4a16 always), with the format's bytes per weight.
//! - **Links.** A group inside the GPU's NVLink domain (8 on HGX, 72 in a GB200/GB300 NVL72
//!   rack; a PCIe card's server) talks at `intra_node_bandwidth`; a wider group (TP 16 on
//!   8-GPU nodes) crosses the scale-out network, [`PhysicsParams::network_bandwidth_gbps`]
//!   per GPU: a ring then runs at the network's pace, an all-to-all sends the share bound for
//!   other domains over it.
//! - **Decode step** at batch `n`, mean context `c`:
//!   `max(bytes / (bw · η_mem), flops / (peak · mfu_decode)) + all-reduce + overhead`, where
//!   bytes = weights read this step (dense weights, plus the experts the `n` tokens touch for
//!   MoE) / TP + `n · c ·` KV bytes per token / TP (+ cross-attention K/V for encoder-decoder),
//!   flops = `n ·` FLOPs per token / TP. With attention DP, each rank runs `n/DP` sequences'
//!   attention (weights/TP plus its own KV) while the MoE layers see all `n` tokens of the
//!   worker and each GPU reads its `1/(TP·DP)` of the experts they touch; fewer sequences than
//!   ranks leave ranks idle and the busy ones set the pace. The all-reduce is two per layer,
//!   each `α + 2 (TP−1)/TP · n · hidden · 2 B / link_bw` (ring), over the TP group only.
//!   With attention DP, a MoE layer instead sends each token to the GPUs of its `k` experts
//!   and back (dispatch and combine: an all-to-all over the `TP · DP` GPUs, each GPU sending
//!   its `1/G` of the tokens to the `G (1 − (1 − 1/G)^k)` GPUs the experts sit on), which
//!   grows with the expert group and the batch. With `PP` stages the batch runs as
//!   `min(n, PP)` micro-batches and a token passes every stage in turn: the step is `PP`
//!   stage times (each the stage's bytes and FLOPs at the micro-batch) plus the hand-offs of
//!   `hidden` activations between stages, so a batch below `PP` leaves a bubble. The overhead (per step and per
//!   layer: scheduling, sampling, kernel launches) does **not** shrink with TP, which is why
//!   measured decode steps speed up far less than linearly from 2 to 8 GPUs.
//! - **Prefill** of `T` tokens (requests of length `I`): `max(T · flops(I/2) / (peak ·
//!   mfu_prefill), weights / bw) / TP` + all-reduces of `T · hidden` + overhead. For
//!   encoder-decoder models the prompt runs through the encoder only. With attention DP the
//!   prompts spread over the ranks (attention over each rank's TP, the experts over all
//!   `TP · DP` GPUs, plus the MoE all-to-all); with `PP` stages, `mb = min(requests, PP)`
//!   micro-batches take `PP + mb − 1` stage times (one prompt gains nothing from stages).
//! - **KV capacity**: `memory · util − weights per GPU − activations/TP − runtime` per GPU,
//!   times the GPUs one token's KV is spread over (see Layout), over KV bytes per token. A request reserves `input + output` tokens (TGIS and vLLM
//!   admission both budget the full length), so the batch budget is capacity / (I + O),
//!   capped by the engine's sequence limit (per attention-DP rank: each schedules its own).
//! - **Closed loop** (N users): `n = min(N, B)` in flight. In the time the batch produces `O`
//!   tokens each, `n` prompts are prefilled, in `min(n, O)` prefill steps that stall decoding
//!   (TGIS and vLLM's default both run prefill as its own step). So a cycle lasts
//!   `O · t_decode + min(n, O) · t_prefill`, throughput is `n` requests per cycle, and a
//!   fraction `min(n, O)/O` of inter-token gaps contain a prefill (ITL is a two-point
//!   mixture, which gives its percentiles). With N > B the rest queue: E2E = N / X (Little's
//!   law, zero think time) and the wait lands in TTFT.
//! - **Open loop** (rate λ): by Little's law the same steady state as the closed loop whose
//!   throughput is λ, so the model solves for that population (bisection over the closed-loop
//!   throughput) and answers its step times and TTFT. What Poisson arrivals add on top is the
//!   wait for a free slot when all `B` are busy (M/M/c, Erlang C), with the load capped at
//!   0.99 so overload shows as very long TTFTs rather than an error. (It used to solve
//!   `n = λ · R(n)` on its own, with an M/M/1 wait: Mistral-7B on an H100 then read a TTFT
//!   at 5 requests/s nearly three times the one at 40 closed-loop users, twice the load.)
//! - **Disaggregated serving** (`disagg`): prefill workers and decode workers, each with its
//!   own layout and memory fit (the prefill side: weights, one prefill's activations and the
//!   prompts' KV; the decode side: weights and its batch's KV). TTFT = request overhead + the
//!   wait for a busy prefill worker (M/M/1 on its share of the arrivals, at most the users
//!   ahead) + the prefill + sending the prompt's KV to a decode worker (over NVLink when one
//!   NVLink domain holds both workers, else the network, one link per GPU of the narrower
//!   side's TP x PP). TPOT = decode steps at the decode worker's batch, with no prefill in
//!   any gap (the point of disaggregating). Throughput = the least of the users' own cycles,
//!   the prefill side's capacity (batches of the engine's token budget) and the decode side's
//!   (its full batches); the decode batch follows from it by Little's law (a fixed point),
//!   and a saturated side's queue lands in TTFT as in the aggregated closed loop.
//! - **Offline batch** of b: `ceil(b / B)` waves, each a batched prefill then `O − 1` decode
//!   steps at the wave's batch size.
//!
//! Percentile spread of TTFT and E2E (request lengths vary; the model sees only means) uses a
//! fixed log-normal width; the trained predictor corrects each percentile separately.
//!
//! In files: `params` (the constants and their reasons), `steps` (roofline step times, the
//! layout's shape and links), `disagg` (disaggregated serving),
//! `memory` (what fits: memory per GPU and the KV budget), `steady` (the steady state a load
//! settles into) and `percentiles` (from mean estimates to percentiles).

mod disagg;
mod memory;
mod params;
pub(crate) mod percentiles;
mod steady;
mod steps;

pub use params::PhysicsParams;
pub(crate) use steady::{closed_population, erlang_c_wait};

use crate::LatencyModel;
use crate::PredictError;
use crate::scenario::{Fit, Prediction, Scenario};
use pilot_core::layout::{Layout, Serving};
use pilot_core::schema::Measurement;
use pilot_core::units::Tokens;
use steady::{Server, SteadyState};
use steps::{Shape, Step};

/// The physics model (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct PhysicsModel {
    pub params: PhysicsParams,
    /// Constants calibrated per serving engine (lower-case name), used instead of `params`
    /// for scenarios on that engine (see [`crate::calibrate`]).
    pub per_engine: std::collections::BTreeMap<String, PhysicsParams>,
}

/// Everything the physics derives for one scenario, exposed for features and tests.
/// Times in ms, memory in bytes, counts as plain numbers (internal to the crate's features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub fits: bool,
    /// Total KV-cache tokens across the GPUs.
    pub kv_cache_tokens: f64,
    /// Batch budget: sequences in flight at most.
    pub max_batch: f64,
    /// Sequences in flight at steady state.
    pub in_flight: f64,
    /// One decode step at the steady-state batch.
    pub decode_step_ms: f64,
    /// One decode step at batch 1.
    pub decode_step1_ms: f64,
    /// Prefill of one request.
    pub prefill_ms: f64,
    /// Prefill of every in-flight request's prompt as one batch (per prefill worker when
    /// disaggregated): what a burst of users arriving together waits for at most.
    pub wave_prefill_ms: f64,
    /// Fraction of the batch-1 decode step that is all-reduce.
    pub comm_fraction: f64,
    /// Fraction of the batch-1 decode step that is fixed overhead.
    pub overhead_fraction: f64,
    /// Compute time over memory time of the decode step (> 1: compute bound).
    pub compute_to_memory: f64,
    /// Fraction of usable memory the weights take.
    pub weight_memory_fraction: f64,
    /// Fraction of ITL gaps that contain a prefill.
    pub prefill_gap_fraction: f64,
    /// Offered load over capacity (closed: users / batch budget; open: rate / max rate).
    pub load_ratio: f64,
    pub ttft_ms: f64,
    pub itl_mean_ms: f64,
    pub e2e_ms: f64,
    pub output_tok_s: f64,
    pub total_tok_s: f64,
    pub request_rps: f64,
}

impl PhysicsModel {
    pub fn new(params: PhysicsParams) -> PhysicsModel {
        PhysicsModel {
            params,
            per_engine: Default::default(),
        }
    }

    /// The model with one engine's calibrated constants, when it has them.
    fn for_engine(&self, sc: &Scenario) -> Option<PhysicsModel> {
        let engine = sc.engine.as_deref()?.to_ascii_lowercase();
        self.per_engine
            .get(&engine)
            .map(|p| PhysicsModel::new(p.clone()))
    }

    /// The physics estimate of a scenario, with the intermediate quantities. In steps, each
    /// of which can end the answer: the memory left per GPU after weights and activations
    /// ([`PhysicsModel::memory`]), the requests its KV cache holds
    /// ([`PhysicsModel::kv_budget`]), then the steady state the load settles into on that
    /// budget ([`Server::steady_state`]).
    pub fn estimate(&self, sc: &Scenario) -> Result<(Estimate, Fit), PredictError> {
        if let Some(m) = self.for_engine(sc) {
            return m.estimate(sc);
        }
        if let Serving::Disaggregated { prefill, decode } = sc.serving {
            return self.estimate_disaggregated(sc, prefill, decode);
        }
        let i = sc.input_tokens.0.max(1) as f64;
        let o = sc.output_tokens.0.max(1) as f64;
        let s = self.shape(sc, aggregated_layout(sc));
        let memory = self.memory(sc, &s, i);
        let mut est = Estimate::unfitted(memory.weights / memory.usable.max(1.0));
        if memory.free <= 0.0 {
            let reason = self.weights_do_not_fit(sc, &s, &memory);
            return Ok((est, Fit::DoesNotFit { reason }));
        }
        let kv = self.kv_budget(sc, &s, memory.free, i, o);
        est.kv_cache_tokens = kv.tokens;
        est.max_batch = kv.batch;
        if kv.batch < 1.0 {
            let reason = kv.request_does_not_fit(sc, memory.weights);
            return Ok((est, Fit::DoesNotFit { reason }));
        }
        est.fits = true;
        let server = Server {
            physics: self,
            shape: &s,
            wave_router: sc.tgi_router(),
            input: i,
            output: o,
            ctx: i + o / 2.0,
            budget: kv.batch,
        };
        let step1 = self.decode_step(&s, 1.0, server.ctx, i);
        est.decode_step1_ms = step1.total;
        est.prefill_ms = self.prefill(&s, 1.0, i);
        let (state, load_ratio) = server.steady_state(sc.load);
        est.load_ratio = load_ratio;
        est.settle(state, &step1, i, o);
        est.wave_prefill_ms = self.prefill(&s, est.in_flight.max(1.0), i);
        Ok((
            est,
            Fit::Fits {
                kv_cache_tokens: Tokens(kv.tokens as u64),
                max_batch: kv.batch as u32,
            },
        ))
    }
}

/// The layout of an aggregated scenario's worker. A plain tensor-parallel layout whose GPU
/// count disagrees with `gpu_count` is the default a caller left in place when it changed
/// `gpu_count` alone (sweeps and what-ifs do): `gpu_count` then says the TP degree, as it
/// did before layouts.
fn aggregated_layout(sc: &Scenario) -> Layout {
    let l = sc.serving.decode_layout();
    let plain = l.pipeline() == 1 && l.expert() == 1 && l.attention_dp() == 1;
    if plain && l.gpus() != sc.gpu_count {
        return Layout::tensor_parallel(sc.gpu_count.max(1)).unwrap_or(l);
    }
    l
}

impl PhysicsModel {
    /// The shape of one worker of `layout` serving the scenario's model.
    fn shape(&self, sc: &Scenario, layout: Layout) -> Shape {
        let mut s = Shape::of_layout(
            &sc.model,
            &sc.gpu,
            layout,
            sc.quantization,
            sc.kv_dtype(),
            &self.params,
        );
        s.padded = sc.padded_batching();
        s
    }
}

impl Estimate {
    /// An estimate with nothing derived yet but the weights' share of memory, which is what a
    /// configuration that does not fit still reports.
    fn unfitted(weight_memory_fraction: f64) -> Estimate {
        Estimate {
            fits: false,
            kv_cache_tokens: 0.0,
            max_batch: 0.0,
            in_flight: 0.0,
            decode_step_ms: 0.0,
            decode_step1_ms: 0.0,
            prefill_ms: 0.0,
            wave_prefill_ms: 0.0,
            comm_fraction: 0.0,
            overhead_fraction: 0.0,
            compute_to_memory: 0.0,
            weight_memory_fraction,
            prefill_gap_fraction: 0.0,
            load_ratio: 0.0,
            ttft_ms: f64::NAN,
            itl_mean_ms: f64::NAN,
            e2e_ms: f64::NAN,
            output_tok_s: 0.0,
            total_tok_s: 0.0,
            request_rps: 0.0,
        }
    }

    /// Fills the latencies and throughputs of the steady state, with the batch-1 step's
    /// shares of communication and overhead: those are properties of the model and GPUs, not
    /// of the load, so the predictor's monotone constraints cover every feature that moves
    /// with load.
    fn settle(&mut self, state: SteadyState, step1: &Step, i: f64, o: f64) {
        let SteadyState {
            n,
            step,
            gap_fraction: gap_frac,
            prefill_event_ms: t_pe,
            ttft_ms: ttft,
            e2e_ms: e2e,
            requests_per_ms,
        } = state;
        let x = requests_per_ms * 1e3;
        self.in_flight = n;
        self.decode_step_ms = step.total;
        self.comm_fraction = step1.comm / step1.total;
        self.overhead_fraction = step1.overhead / step1.total;
        self.compute_to_memory = step.compute_to_memory;
        self.prefill_gap_fraction = gap_frac;
        self.ttft_ms = ttft;
        self.itl_mean_ms = step.total + gap_frac * t_pe;
        self.e2e_ms = e2e;
        self.request_rps = x;
        self.output_tok_s = x * o;
        self.total_tok_s = x * (i + o);
    }
}

impl LatencyModel for PhysicsModel {
    fn predict(&self, sc: &Scenario) -> Result<Prediction, PredictError> {
        let (e, fit) = self.estimate(sc)?;
        let mut row: Measurement = sc.to_row("pilot-predict:physics");
        row.max_batch = e.fits.then_some(e.max_batch as u32);
        row.metrics = self.summary(sc, &e);
        Ok(Prediction {
            lower: row.metrics.clone(),
            upper: row.metrics.clone(),
            row,
            out_of_domain: false,
            fit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::percentiles::poisson_quantile;
    use super::*;
    use crate::scenario::Load;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;
    use pilot_core::units::Tokens;
    use pilot_core::units::{Dtype, RequestsPerSec};

    fn sc(model: &str, gpu: &str, count: u32, load: Load) -> Scenario {
        let m = ModelCatalog::builtin().resolve(model).unwrap();
        let g = GpuCatalog::builtin().resolve(gpu).unwrap().clone();
        Scenario::new(m, g, count, load, Tokens(512), Tokens(256))
    }

    fn est(s: &Scenario) -> Estimate {
        PhysicsModel::default().estimate(s).unwrap().0
    }

    #[test]
    fn bigger_model_is_slower() {
        let small = est(&sc("llama-2-7b", "A100-SXM-80GB", 1, Load::Users(8)));
        let big = est(&sc("llama-2-13b", "A100-SXM-80GB", 1, Load::Users(8)));
        assert!(
            big.decode_step_ms > small.decode_step_ms,
            "{big:?} vs {small:?}"
        );
        assert!(big.ttft_ms > small.ttft_ms);
        assert!(big.output_tok_s < small.output_tok_s);
    }

    #[test]
    fn more_bandwidth_is_faster_decode() {
        // H100 SXM vs PCIe: same generation, 3350 vs 2000 GB/s.
        let fast = est(&sc("llama-2-7b", "H100-SXM-80GB", 1, Load::Users(1)));
        let slow = est(&sc("llama-2-7b", "H100-PCIe-80GB", 1, Load::Users(1)));
        assert!(
            fast.decode_step_ms < slow.decode_step_ms,
            "{} vs {}",
            fast.decode_step_ms,
            slow.decode_step_ms
        );
    }

    #[test]
    fn poisson_quantile_is_continuous_and_monotone_in_the_mean() {
        // Below ln 2 the median count is 0; it then rises without jumps.
        assert_eq!(poisson_quantile(0.5, 0.5), 0.0);
        let mut last = 0.0;
        let mut lambda = 0.0;
        while lambda < 6.0 {
            let q = poisson_quantile(lambda, 0.5);
            assert!(q >= last - 1e-12, "median fell at {lambda}: {q} < {last}");
            assert!(q - last < 0.05, "median jumped at {lambda}: {last} -> {q}");
            last = q;
            lambda += 0.01;
        }
        // The p99 lies above the mean, the p10 below it.
        assert!(poisson_quantile(3.0, 0.99) > 3.0 && poisson_quantile(3.0, 0.1) < 3.0);
    }

    #[test]
    fn closed_loop_ttft_queues_behind_other_prefills_before_the_cache_is_full() {
        // 16 users fit in the batch budget; behind TGIS their TTFT still grows with the
        // prefills queued ahead (measured TTFT grows about linearly with users), unless no
        // share of them is waited for; an engine that schedules prompts at the next step
        // (vLLM) does not hold them back.
        let tgis = |u| {
            let mut s = sc("llama-2-7b", "A100-SXM-80GB", 1, Load::Users(u));
            s.engine = Some("tgis".into());
            s
        };
        let e16 = est(&tgis(16));
        assert!(e16.max_batch >= 16.0, "budget {}", e16.max_batch);
        assert!(e16.ttft_ms > 2.0 * est(&tgis(1)).ttft_ms);
        let none = PhysicsModel::new(PhysicsParams {
            prefill_queue_share: 0.0,
            ..PhysicsParams::default()
        });
        let flat = none.estimate(&tgis(16)).unwrap().0.ttft_ms;
        assert!(flat < e16.ttft_ms / 2.0, "{flat} vs {}", e16.ttft_ms);
        let mut vllm = tgis(16);
        vllm.engine = Some("vllm".into());
        assert!((est(&vllm).ttft_ms - flat).abs() < 1e-9);
        // Users in step (a fixed-length benchmark) queue behind each other's prompts on vLLM
        // too, by the burst share; TGIS keeps its router's share.
        let bursts = PhysicsModel::new(PhysicsParams {
            burst_queue_share: 0.5,
            ..PhysicsParams::default()
        });
        let burst = bursts.estimate(&vllm).unwrap().0.ttft_ms;
        assert!(burst > 2.0 * flat, "{burst} vs {flat}");
        assert!((bursts.estimate(&tgis(16)).unwrap().0.ttft_ms - e16.ttft_ms).abs() < 1e-9);
    }

    #[test]
    fn decode_steps_grow_with_the_batch_by_the_host_time_per_sequence() {
        // Short contexts on an H100: the GPU part of a 64-sequence step barely grows, the host
        // part grows by 63 x the per-sequence time.
        let step = |p: &PhysicsParams, u: u32| {
            let mut s = sc("llama-2-7b", "H100-SXM-80GB", 1, Load::Users(u));
            s.input_tokens = Tokens(120);
            s.output_tokens = Tokens(20);
            PhysicsModel::new(p.clone())
                .estimate(&s)
                .unwrap()
                .0
                .decode_step_ms
        };
        let with = PhysicsParams::default();
        let without = PhysicsParams {
            sequence_overhead_ms: 0.0,
            ..PhysicsParams::default()
        };
        let host = (step(&with, 64) - step(&with, 1)) - (step(&without, 64) - step(&without, 1));
        let want = 63.0 * with.sequence_overhead_ms;
        assert!((host - want).abs() < 1e-6 * want, "{host} vs {want}");
    }

    #[test]
    fn padded_engines_reserve_whole_sequences_and_pay_for_padding() {
        // Short requests (LLM-Pilot's: ~120 in, ~20 out), so the reservation decides.
        let mut paged = sc("flan-t5-xl", "A100-PCIe-40GB", 1, Load::Users(8));
        paged.input_tokens = Tokens(120);
        paged.output_tokens = Tokens(20);
        paged.engine = Some("vllm".into());
        let mut padded = paged.clone();
        padded.engine = Some("tgis".into());
        assert!(padded.padded_batching() && !paged.padded_batching());
        let (a, b) = (est(&paged), est(&padded));
        assert!(
            b.max_batch < a.max_batch,
            "{} vs {}",
            b.max_batch,
            a.max_batch
        );
        assert!(b.ttft_ms > a.ttft_ms);
        // T5's trained 512 positions do not cap the server's 2048-token reservation (relative
        // position buckets have no table): halving it would double the padded batch.
        let shorter = PhysicsParams {
            padded_sequence_tokens: 512.0,
            ..PhysicsParams::default()
        };
        let (b512, _) = PhysicsModel::new(shorter).estimate(&padded).unwrap();
        assert!(
            b.max_batch * 3.0 < b512.max_batch,
            "{} vs {}",
            b.max_batch,
            b512.max_batch
        );
        // The padded cache is held twice at its peak (rebuilt whole as requests join and
        // leave): one copy would admit about twice the sequences.
        let one_copy = PhysicsParams {
            padded_kv_copies: 1.0,
            ..PhysicsParams::default()
        };
        let (b1, _) = PhysicsModel::new(one_copy).estimate(&padded).unwrap();
        assert!(
            (b1.max_batch / b.max_batch - 2.0).abs() < 0.1,
            "{} with one copy vs {} with two",
            b1.max_batch,
            b.max_batch
        );
        // Each decode step pays the eager modules' per-layer host time on top of the bytes.
        let no_eager = PhysicsParams {
            padded_layer_overhead_ms: 0.0,
            ..PhysicsParams::default()
        };
        let (c, _) = PhysicsModel::new(no_eager).estimate(&padded).unwrap();
        let layers = padded.model.decoder_layers as f64;
        let extra = b.decode_step_ms - c.decode_step_ms;
        assert!(
            (extra - PhysicsParams::default().padded_layer_overhead_ms * layers).abs() < 1e-9,
            "{extra} ms for {layers} layers"
        );
        // Flash-attention architectures are paged on TGIS too.
        let mut llama = sc("llama-2-7b", "A100-PCIe-40GB", 1, Load::Users(8));
        llama.engine = Some("tgis".into());
        assert!(!llama.padded_batching());
    }

    #[test]
    fn more_users_never_lower_itl_or_ttft() {
        let mut last = (0.0, 0.0, 0.0);
        for u in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
            let e = est(&sc("llama-2-13b", "A10", 2, Load::Users(u)));
            assert!(e.fits);
            assert!(
                e.itl_mean_ms >= last.0 - 1e-9,
                "ITL fell at {u} users: {} < {}",
                e.itl_mean_ms,
                last.0
            );
            assert!(e.ttft_ms >= last.1 - 1e-9, "TTFT fell at {u} users");
            assert!(e.e2e_ms >= last.2 - 1e-9, "E2E fell at {u} users");
            last = (e.itl_mean_ms, e.ttft_ms, e.e2e_ms);
        }
        // And the median ITL of the summary too.
        let p = PhysicsModel::default();
        let mut last = 0.0;
        for u in [1, 4, 16, 64, 256] {
            let pred = p
                .predict(&sc("mistral-7b", "L4", 1, Load::Users(u)))
                .unwrap();
            let itl = pred.row.metrics.itl.p50.unwrap().0;
            assert!(itl >= last, "p50 ITL fell at {u} users");
            last = itl;
        }
    }

    #[test]
    fn seventy_b_fp16_does_not_fit_one_24gb_gpu() {
        let p = PhysicsModel::default();
        let s = sc("llama-2-70b", "A10", 1, Load::Users(1));
        let pred = p.predict(&s).unwrap();
        let Fit::DoesNotFit { reason } = &pred.fit else {
            panic!("70B fp16 fits a 24 GB GPU? {:?}", pred.fit)
        };
        assert!(reason.contains("A10") && reason.contains("GB"), "{reason}");
        assert_eq!(pred.row.metrics.itl.p50, None);
        // ... but 70B at int4 on 2 x H100 does.
        let mut s = sc("llama-2-70b", "H100", 2, Load::Users(1));
        s.quantization = Dtype::Int4.into();
        assert!(matches!(p.predict(&s).unwrap().fit, Fit::Fits { .. }));
    }

    #[test]
    fn smaller_dtypes_are_faster_and_hold_more_kv() {
        let mut a = sc("llama-3-8b", "H100", 1, Load::Users(1));
        a.quantization = Dtype::F16.into();
        let mut b = a.clone();
        b.quantization = Dtype::Int4.into();
        let (ea, eb) = (est(&a), est(&b));
        assert!(eb.decode_step_ms < ea.decode_step_ms);
        assert!(eb.kv_cache_tokens > ea.kv_cache_tokens);
        let mut c = a.clone();
        c.kv_cache = Some(Dtype::Fp8);
        assert!((est(&c).kv_cache_tokens / ea.kv_cache_tokens - 2.0).abs() < 0.01);
    }

    #[test]
    fn moe_decode_reads_active_not_total_params() {
        // Mixtral-8x7B (46.7B total, 12.9B active) at batch 1 decodes much faster than a dense
        // model of its total size, and a bit slower than a dense 13B.
        let mix = est(&sc("mixtral-8x7b", "H100", 2, Load::Users(1)));
        let dense70 = est(&sc("llama-2-70b", "H100", 2, Load::Users(1)));
        let dense13 = est(&sc("llama-2-13b", "H100", 2, Load::Users(1)));
        assert!(
            mix.decode_step1_ms < 0.5 * dense70.decode_step1_ms,
            "{} vs {}",
            mix.decode_step1_ms,
            dense70.decode_step1_ms
        );
        assert!(mix.decode_step1_ms < 1.3 * dense13.decode_step1_ms);
        // Large batches touch every expert: the step grows toward the total's cost.
        let mix64 = est(&sc("mixtral-8x7b", "H100", 2, Load::Batch(64)));
        assert!(mix64.decode_step_ms > 1.5 * mix.decode_step1_ms);
    }

    #[test]
    fn moe_shapes_route_only_the_moe_layers_at_the_expert_width() {
        // Mixtral: every layer routes, experts as wide as `intermediate`: the expert-width
        // accounting gives what the per-layer MLP did.
        let mix = sc("mixtral-8x7b", "H100", 2, Load::Users(1)).model;
        assert_eq!(mix.moe_layers(), mix.layers as usize);
        assert_eq!(
            mix.expert_params().0,
            3.0 * f64::from(mix.hidden) * f64::from(mix.intermediate)
        );
        // DeepSeek-V3: 3 dense layers of width 18432, 58 MoE layers of 256 experts of width
        // 2048 (plus one shared): a batch-1 decode streams about the 37B active parameters,
        // not 61 layers x 8 experts of the dense width.
        let ds = sc("deepseek-ai/DeepSeek-V3", "H200", 8, Load::Users(1));
        let active = ds.model.params_active().0;
        let s = Shape::new(
            &ds.model,
            &ds.gpu,
            8,
            Dtype::Fp8,
            Dtype::Fp8,
            &PhysicsParams::default(),
        );
        let streamed = s.dense_bytes + s.experts_per_token * s.expert_bytes;
        assert!(
            (streamed / active - 1.0).abs() < 0.03,
            "streams {:.1}B at batch 1 vs {:.1}B active",
            streamed / 1e9,
            active / 1e9
        );
    }

    #[test]
    fn mla_cache_is_spread_by_attention_data_parallelism_not_tensor_parallelism() {
        use pilot_core::layout::{Layout, Serving};
        let with = |model: &str, tensor: u32, adp: u32, users: u32, input: u64| {
            let mut s = sc(model, "H200", 8, Load::Users(users));
            s.serving = Serving::Aggregated(Layout::new(tensor, 1, 1, adp).unwrap());
            s.quantization = Dtype::Fp8.into(); // DeepSeek-V3 as published; bf16 does not fit
            s.input_tokens = Tokens(input);
            s
        };
        let ds = "deepseek-ai/DeepSeek-V3";
        // DeepSeek-V3's latent has no heads to split: 8 tensor-parallel ranks each hold the
        // whole cache of every sequence, 8 attention-DP ranks each hold an eighth, so a byte
        // of free memory holds 8x the tokens...
        let shape = |t: &Scenario| PhysicsModel::default().shape(t, t.serving.decode_layout());
        let (tp8, adp8) = (with(ds, 8, 1, 256, 512), with(ds, 1, 8, 256, 512));
        assert_eq!(shape(&adp8).kv_split / shape(&tp8).kv_split, 8.0);
        // ... though each rank also holds a copy of the attention and dense weights (a
        // sixth of the model's 16B non-expert parameters per GPU more than TP 8's eighth),
        // so the whole cache holds 4-8x, not 8x.
        let ratio = est(&adp8).kv_cache_tokens / est(&tp8).kv_cache_tokens;
        assert!(ratio > 4.0 && ratio < 8.0, "KV capacity ratio {ratio}");
        // Where the cache dominates the bytes a step reads (long contexts), attention-DP
        // decodes faster: each GPU reads an eighth of the latents, not all of them.
        let (tp8, adp8) = (
            est(&with(ds, 8, 1, 128, 8192)),
            est(&with(ds, 1, 8, 128, 8192)),
        );
        assert_eq!(tp8.in_flight, adp8.in_flight);
        assert!(
            adp8.decode_step_ms < tp8.decode_step_ms,
            "{} vs {}",
            adp8.decode_step_ms,
            tp8.decode_step_ms
        );
        // A GQA model's heads split under TP too: the same split per byte, and attention-DP
        // (eight copies of a dense model) leaves less memory for the cache.
        let (a, b) = (
            with("llama-2-70b", 8, 1, 256, 512),
            with("llama-2-70b", 1, 8, 256, 512),
        );
        assert_eq!(shape(&a).kv_split, shape(&b).kv_split);
        assert!(est(&a).kv_cache_tokens > est(&b).kv_cache_tokens);
    }

    #[test]
    fn each_attention_dp_rank_batches_up_to_the_engines_cap() {
        use pilot_core::layout::{Layout, Serving};
        // Short requests: the cache holds far more than the cap either way.
        let with = |tensor: u32, adp: u32| {
            let mut s = sc("deepseek-ai/DeepSeek-V3", "H200", 8, Load::Users(4096));
            s.serving = Serving::Aggregated(Layout::new(tensor, 1, 8, adp).unwrap());
            s.quantization = Dtype::Fp8.into();
            s.input_tokens = Tokens(128);
            s.output_tokens = Tokens(128);
            est(&s)
        };
        let cap = f64::from(PhysicsParams::default().max_sequences);
        let (tp8, adp8) = (with(8, 1), with(1, 8));
        assert_eq!(tp8.max_batch, cap);
        assert!(adp8.max_batch > 4.0 * cap, "{}", adp8.max_batch);
        // More in flight, so less of the 4096 users' time queued.
        assert!(adp8.ttft_ms < tp8.ttft_ms);
    }

    #[test]
    fn a_wave_of_prompts_prefills_no_slower_than_one_after_another() {
        // Batched, the prompts share the weight reads and the step overheads: the wave grows
        // with the users in flight but stays under their prefills back to back.
        let at = |u| est(&sc("llama-2-13b", "H100-SXM-80GB", 1, Load::Users(u)));
        let (one, many) = (at(1), at(32));
        assert!((one.wave_prefill_ms - one.prefill_ms).abs() < 1e-9);
        assert!(many.wave_prefill_ms > 4.0 * one.wave_prefill_ms);
        assert!(many.wave_prefill_ms < many.in_flight * many.prefill_ms);
    }

    #[test]
    fn the_sequence_cap_is_the_engines_default_for_the_gpu() {
        // Short requests of a small model on an H200: the KV cache holds thousands, so the
        // cap decides. vLLM's API server defaults to 1024 sequences on 70 GB and up, SGLang
        // sizes its limit from the KV pool, an engine outside the table gets `max_sequences`.
        let on = |engine: Option<&str>| {
            let mut s = sc("llama-3-8b", "H200", 1, Load::Users(4096));
            s.input_tokens = Tokens(128);
            s.output_tokens = Tokens(128);
            s.engine = engine.map(String::from);
            est(&s).max_batch
        };
        let (vllm, sglang, other) = (on(Some("vllm")), on(Some("sglang")), on(None));
        assert_eq!(vllm, 1024.0);
        assert!(sglang > vllm, "{sglang} vs {vllm}");
        assert_eq!(other, f64::from(PhysicsParams::default().max_sequences));
    }

    #[test]
    fn changing_gpu_count_alone_still_means_tensor_parallel_over_it() {
        // What-ifs and sweeps set gpu_count on a scenario built for another count.
        let mut moved = sc("llama-2-70b", "H100", 2, Load::Users(8));
        moved.gpu_count = 8;
        let fresh = sc("llama-2-70b", "H100", 8, Load::Users(8));
        assert_eq!(est(&moved), est(&fresh));
    }

    #[test]
    fn encoder_decoder_prefills_with_the_encoder() {
        let t5 = sc("flan-t5-xl", "A10", 1, Load::Users(4));
        let e = est(&t5);
        assert!(e.fits && e.prefill_ms > 0.0 && e.decode_step_ms > 0.0);
        // Decoding reads the decoder's weights only: faster than a decoder-only model of the
        // same total size would be.
        let full = t5.model.weight_bytes(Dtype::F16).0 / (600e9 * 0.75) * 1e3;
        assert!(e.decode_step1_ms - PhysicsModel::default().params.step_overhead_ms < full);
    }

    #[test]
    fn tensor_parallel_speedup_is_sublinear() {
        let one = est(&sc("llama-2-70b", "H100", 2, Load::Users(1))).decode_step1_ms;
        let eight = est(&sc("llama-2-70b", "H100", 8, Load::Users(1))).decode_step1_ms;
        let speedup = one / eight;
        assert!(
            speedup > 1.3 && speedup < 3.5,
            "2 -> 8 GPUs speedup {speedup}"
        );
    }

    #[test]
    fn offline_and_open_loop_give_finite_numbers() {
        let p = PhysicsModel::default();
        for load in [
            Load::Batch(1),
            Load::Batch(64),
            Load::Batch(1000),
            Load::Rate(RequestsPerSec(0.5)),
            Load::Rate(RequestsPerSec(1e4)),
        ] {
            let pred = p.predict(&sc("mistral-7b", "H100", 1, load)).unwrap();
            for c in [
                "ttft_ms_p50",
                "itl_ms_p99",
                "e2e_ms_p50",
                "output_throughput_tok_s",
            ] {
                let v = pilot_core::schema::metric_value(&pred.row, c).unwrap();
                assert!(v.is_finite() && v > 0.0, "{load:?} {c} = {v}");
            }
        }
        // Overload is very slow, not an error.
        let calm = est(&sc(
            "mistral-7b",
            "H100",
            1,
            Load::Rate(RequestsPerSec(0.5)),
        ));
        let flood = est(&sc(
            "mistral-7b",
            "H100",
            1,
            Load::Rate(RequestsPerSec(1e4)),
        ));
        assert!(flood.ttft_ms > 10.0 * calm.ttft_ms);
    }
}

//! The search space: every deployment of one LLM that an engine can start on a GPU type.
//!
//! A [`Profile`] is what one replica is: GPU type x engine x weight format x KV-cache dtype x
//! serving layout. The layouts are those a platform engineer would try, and only those the
//! engine runs ([`EngineTraits::parallelism`], the one per-engine table):
//!
//! - **tensor parallelism** over 1..=`max_gpus` GPUs per worker, where the degree splits the
//!   attention heads and fits in one node (a tensor-parallel all-reduce per layer across the
//!   network is what no engine's documentation recommends);
//! - **pipeline parallelism across nodes** only where the worker is wider than the GPU's node
//!   (`gpus_per_node`): tensor-parallel inside a node, one stage per node;
//! - for a mixture of experts, **expert parallelism** over the worker's GPUs (where it divides
//!   the routed experts), with tensor-parallel attention or with **attention data
//!   parallelism** (each GPU its own requests and KV cache, DeepSeek-style);
//! - **disaggregated** prefill and decode (xPyD: `x` prefill workers hand their KV caches to
//!   `y` decode workers), each side with one of the worker layouts above, for engines that
//!   run it.
//!
//! A KV-cache dtype is the engine's default (the weights' 16-bit type, or fp8 for fp8
//! weights) or, where the GPU computes in fp8 and the engine has a flag for it, an fp8 cache.
//! Every profile is checked with [`Scenario::check_deployable`] before it is searched, so a
//! combination no engine can start is never ranked; [`Space::skipped`] keeps why each was
//! left out, for the error when nothing is left.

use pilot_core::engine::{self, EngineTraits, Parallelism};
use pilot_core::gpu::GpuSpec;
use pilot_core::layout::{Layout, Serving, Workers};
use pilot_core::llm::LlmSpec;
use pilot_core::quant::Quantization;
use pilot_core::units::{Dtype, Tokens};
use pilot_predict::{Load, Scenario};
use std::collections::BTreeSet;

/// The prefill:decode worker ratios searched for disaggregated serving, as (prefill workers,
/// decode workers) of one replica. Why these: the measured disaggregated deployments (NVIDIA
/// Dynamo's and SGLang's, in AIConfigurator's sample) use 1-3 workers a side; ratios, not
/// sizes, are what differ, because whole replicas scale the deployment.
pub const WORKER_RATIOS: [(u32, u32); 7] = [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)];

/// Which serving modes to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingModes {
    Aggregated,
    Disaggregated,
    Both,
}

impl ServingModes {
    fn aggregated(self) -> bool {
        self != ServingModes::Disaggregated
    }
    fn disaggregated(self) -> bool {
        self != ServingModes::Aggregated
    }
}

impl std::str::FromStr for ServingModes {
    type Err = String;
    fn from_str(s: &str) -> Result<ServingModes, String> {
        match s.to_ascii_lowercase().as_str() {
            "aggregated" | "agg" => Ok(ServingModes::Aggregated),
            "disaggregated" | "disagg" => Ok(ServingModes::Disaggregated),
            "both" | "any" => Ok(ServingModes::Both),
            other => Err(format!(
                "--serving '{other}': use aggregated, disaggregated or both"
            )),
        }
    }
}

/// A KV-cache choice: the engine's default for the weights, or a stated dtype.
pub type KvChoice = Option<Dtype>;

/// What the space is built from.
#[derive(Debug, Clone)]
pub struct SpaceOptions<'a> {
    pub model: &'a LlmSpec,
    pub gpus: &'a [GpuSpec],
    /// The widest worker (GPUs per engine instance).
    pub max_gpus: u32,
    pub quantizations: &'a [Quantization],
    /// KV-cache dtypes; `None` in the list is the engine's default. Empty: the default, plus
    /// fp8 where the GPU and engine have it.
    pub kv_caches: &'a [KvChoice],
    pub engines: &'a [Option<String>],
    pub serving: ServingModes,
    pub input_tokens: Tokens,
    pub output_tokens: Tokens,
    pub demand: Load,
}

/// One replica's shape.
#[derive(Debug, Clone)]
pub struct Profile {
    pub gpu: GpuSpec,
    pub engine: Option<String>,
    pub quantization: Quantization,
    pub kv_cache: KvChoice,
    pub serving: Serving,
}

impl Profile {
    /// The scenario of one replica at `load`.
    pub fn scenario(&self, opts: &SpaceOptions, load: Load) -> Scenario {
        let mut s = Scenario::new(
            opts.model.clone(),
            self.gpu.clone(),
            self.serving.gpus(),
            load,
            opts.input_tokens,
            opts.output_tokens,
        );
        s.serving = self.serving;
        s.quantization = self.quantization;
        s.kv_cache = self.kv_cache;
        s.engine = self.engine.clone();
        s
    }
}

/// The profiles to search, and what was left out and why.
#[derive(Debug, Clone, Default)]
pub struct Space {
    pub profiles: Vec<Profile>,
    /// Distinct reasons a combination asked for was left out (an engine that does not serve
    /// a format on an architecture, a degree that does not split the heads).
    pub skipped: BTreeSet<String>,
    /// How many combinations were left out.
    pub skipped_count: usize,
}

/// The worker layouts of `g` GPUs an engine can run for this model on this GPU (unchecked
/// against the engine's formats; [`space`] checks whole profiles).
pub fn worker_layouts(
    model: &LlmSpec,
    gpu: &GpuSpec,
    traits: Option<&EngineTraits>,
    max_gpus: u32,
) -> Vec<Layout> {
    // No engine named: the physics' default, one tensor-parallel group.
    let spreads = |p: Parallelism| match traits {
        Some(t) => t.spreads(p),
        None => p == Parallelism::Tensor,
    };
    let uneven = traits.is_some_and(|t| t.uneven_heads);
    let node = gpu.gpus_per_node.unwrap_or(8).max(1);
    let moe = model.experts > 1;
    let mut out = Vec::new();
    let mut push = |l: Result<Layout, _>| {
        if let Ok(l) = l
            && !out.contains(&l)
        {
            out.push(l);
        }
    };
    for g in 1..=max_gpus.max(1) {
        // Tensor inside a node, pipeline stages across nodes.
        let (tensor, pipeline) = if g <= node {
            (g, 1)
        } else if g.is_multiple_of(node) && spreads(Parallelism::Pipeline) {
            (node, g / node)
        } else {
            continue;
        };
        if tensor > 1 && !spreads(Parallelism::Tensor) {
            continue;
        }
        let splits = uneven || model.shards_heads(tensor);
        let ep_fits = |ep: u32| ep > 1 && model.experts.is_multiple_of(ep);
        if splits {
            push(Layout::new(tensor, pipeline, 1, 1));
            if moe && spreads(Parallelism::Expert) && ep_fits(g) {
                push(Layout::new(tensor, pipeline, g, 1));
            }
        }
        // Attention data parallelism: one attention rank per GPU of a node, the experts
        // spread over all of them.
        if moe && g > 1 && g <= node && spreads(Parallelism::AttentionData) {
            let ep = if spreads(Parallelism::Expert) && ep_fits(g) {
                g
            } else {
                1
            };
            push(Layout::new(1, 1, ep, g));
        }
    }
    out
}

/// KV-cache choices for a profile: the engine's default, and fp8 where the GPU computes in
/// fp8, the engine has a KV-dtype flag, and the default is not already fp8.
fn kv_choices(
    opts: &SpaceOptions,
    gpu: &GpuSpec,
    traits: Option<&EngineTraits>,
    q: Quantization,
) -> Vec<KvChoice> {
    if !opts.kv_caches.is_empty() {
        return opts.kv_caches.to_vec();
    }
    let mut out = vec![None];
    let fp8_default = q.storage() == Dtype::Fp8;
    let has_flag = traits
        .and_then(|t| t.launch)
        .is_some_and(|l| l.kv_cache_dtype.is_some());
    if gpu.fp8.is_some() && has_flag && !fp8_default {
        out.push(Some(Dtype::Fp8));
    }
    out
}

/// Every profile of the options that an engine can start, and why the rest were left out.
pub fn space(opts: &SpaceOptions) -> Space {
    let mut out = Space::default();
    for gpu in opts.gpus {
        for engine_name in opts.engines {
            let traits = engine_name.as_deref().and_then(engine::traits);
            let layouts = worker_layouts(opts.model, gpu, traits, opts.max_gpus);
            let disagg = opts.serving.disaggregated()
                && traits.is_some_and(|t| t.spreads(Parallelism::Disaggregated));
            let mut servings: Vec<Serving> = Vec::new();
            if opts.serving.aggregated() {
                servings.extend(layouts.iter().map(|&l| Serving::Aggregated(l)));
            }
            if disagg {
                for &l in &layouts {
                    for (p, d) in WORKER_RATIOS {
                        if let (Ok(prefill), Ok(decode)) = (Workers::new(p, l), Workers::new(d, l))
                        {
                            servings.push(Serving::Disaggregated { prefill, decode });
                        }
                    }
                }
            }
            for &q in opts.quantizations {
                // bf16 on a GPU without bf16 math (V100, T4) is served as fp16, as engines do.
                let q = if q == Quantization::Bf16 && gpu.bf16.is_none() {
                    Quantization::Fp16
                } else {
                    q
                };
                for kv in kv_choices(opts, gpu, traits, q) {
                    for &serving in &servings {
                        let p = Profile {
                            gpu: gpu.clone(),
                            engine: engine_name.clone(),
                            quantization: q,
                            kv_cache: kv,
                            serving,
                        };
                        match p
                            .scenario(opts, opts.demand.with_level(1.0))
                            .check_deployable()
                        {
                            Ok(()) => out.profiles.push(p),
                            Err(e) => {
                                out.skipped_count += 1;
                                out.skipped.insert(e.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::gpu::GpuCatalog;
    use pilot_core::llm::ModelCatalog;

    fn gpu(name: &str) -> GpuSpec {
        GpuCatalog::builtin().resolve(name).unwrap().clone()
    }

    fn opts<'a>(
        model: &'a LlmSpec,
        gpus: &'a [GpuSpec],
        q: &'a [Quantization],
        engines: &'a [Option<String>],
        max_gpus: u32,
    ) -> SpaceOptions<'a> {
        SpaceOptions {
            model,
            gpus,
            max_gpus,
            quantizations: q,
            kv_caches: &[],
            engines,
            serving: ServingModes::Both,
            input_tokens: Tokens(1024),
            output_tokens: Tokens(256),
            demand: Load::Users(64),
        }
    }

    /// A dense model gets tensor-parallel workers only (no expert or attention-DP layouts),
    /// every degree splitting its heads.
    #[test]
    fn a_dense_model_gets_tensor_parallel_workers() {
        let m = ModelCatalog::builtin().resolve("llama-2-70b").unwrap();
        let g = gpu("H100");
        let vllm = engine::traits("vllm");
        let ls = worker_layouts(&m, &g, vllm, 8);
        let tps: Vec<u32> = ls.iter().map(|l| l.tensor()).collect();
        assert_eq!(tps, vec![1, 2, 4, 8], "{ls:?}");
        assert!(ls.iter().all(|l| l.expert() == 1 && l.attention_dp() == 1));
    }

    /// A MoE model adds expert parallelism and attention data parallelism where the engine
    /// runs them, and a worker wider than a node becomes pipeline stages of one node each.
    #[test]
    fn a_moe_model_gets_expert_and_attention_dp_layouts() {
        let m = ModelCatalog::builtin()
            .resolve("deepseek-ai/DeepSeek-V3")
            .unwrap();
        let g = gpu("H100");
        let sglang = engine::traits("sglang");
        let ls = worker_layouts(&m, &g, sglang, 16);
        assert!(ls.contains(&Layout::new(8, 1, 8, 1).unwrap()), "{ls:?}");
        assert!(ls.contains(&Layout::new(1, 1, 8, 8).unwrap()), "{ls:?}");
        assert!(ls.contains(&Layout::new(8, 2, 1, 1).unwrap()), "{ls:?}");
        assert!(
            ls.iter().all(|l| l.tensor() <= 8),
            "no tensor group spans nodes: {ls:?}"
        );
        // An engine that runs tensor parallelism only gets none of them.
        let tgi = engine::traits("tgi");
        assert!(
            worker_layouts(&m, &g, tgi, 16)
                .iter()
                .all(|l| l.expert() == 1 && l.attention_dp() == 1 && l.pipeline() == 1)
        );
    }

    /// Profiles an engine cannot start are left out with the engine table's reason:
    /// TensorRT-LLM serves no nvfp4 on Hopper, so asking only for that leaves nothing, and
    /// the reason says what it serves instead.
    #[test]
    fn combinations_no_engine_starts_are_skipped_with_reasons() {
        let m = ModelCatalog::builtin().resolve("llama-3.1-8b").unwrap();
        let gpus = [gpu("H100")];
        let q = [Quantization::Nvfp4];
        let e = [Some("tensorrt-llm".to_string())];
        let s = space(&opts(&m, &gpus, &q, &e, 2));
        assert!(s.profiles.is_empty(), "{:?}", s.profiles.len());
        assert!(s.skipped_count > 0);
        assert!(
            s.skipped
                .iter()
                .any(|r| r.contains("nvfp4") && r.contains("Hopper")),
            "{:?}",
            s.skipped
        );
        // On Blackwell it runs.
        let gpus = [gpu("B200")];
        let s = space(&opts(&m, &gpus, &q, &e, 2));
        assert!(!s.profiles.is_empty(), "{:?}", s.skipped);
    }

    /// Disaggregated profiles exist only for engines that run disaggregation, and an fp8 KV
    /// cache is offered only where the GPU has fp8 and the weights are not already fp8.
    #[test]
    fn disaggregation_and_fp8_kv_follow_engine_and_gpu() {
        let m = ModelCatalog::builtin().resolve("llama-3.1-8b").unwrap();
        let q = [Quantization::Bf16];
        let gpus = [gpu("H100"), gpu("A100-SXM-80GB")];
        let vllm = [Some("vllm".to_string())];
        let s = space(&opts(&m, &gpus, &q, &vllm, 1));
        assert!(s.profiles.iter().any(|p| p.serving.is_disaggregated()));
        for p in &s.profiles {
            if p.kv_cache == Some(Dtype::Fp8) {
                assert!(p.gpu.fp8.is_some(), "{}", p.gpu.name);
            }
        }
        assert!(s.profiles.iter().any(|p| p.kv_cache == Some(Dtype::Fp8)));
        let tgi = [Some("tgi".to_string())];
        let s = space(&opts(&m, &gpus, &q, &tgi, 1));
        assert!(!s.profiles.is_empty());
        assert!(s.profiles.iter().all(|p| !p.serving.is_disaggregated()));
        let tgi_kv_flag = engine::traits("tgi")
            .and_then(|t| t.launch)
            .is_some_and(|l| l.kv_cache_dtype.is_some());
        assert_eq!(
            s.profiles.iter().any(|p| p.kv_cache.is_some()),
            tgi_kv_flag,
            "an fp8 cache only where the engine can be told to use one"
        );
    }
}

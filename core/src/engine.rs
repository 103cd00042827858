//! What pilot knows about each serving engine, as one table: teaching pilot a new engine is one
//! [`EngineTraits`] entry in [`TABLE`].
//!
//! Why a table: the same facts used to be scattered as name matches (the list of known names
//! in [`crate::validate`], the TGI-family match and its flash-architecture list in predict's
//! scenarios), so a new engine or a new alias meant finding every match. The calibrated
//! constants of each engine are not here: they are learned data and live in the trained
//! predictor.
//!
//! Each entry's `source` says where its facts come from. The quantizations and parallel
//! layouts are recorded as far as the engines' documentation says today; the prediction and the
//! search do not consult them yet (recommend still offers every dtype on every engine), so that
//! filtering on them is a deliberate change with its own test, not a side effect of this table.

use crate::units::Dtype;
use Dtype::{Bf16, F16, F32, Fp8, Int4, Int8};
use Parallelism::{Data, Expert, Pipeline, Tensor};

/// How an engine lays out the KV cache of a batch, as far as latency is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCache {
    /// Allocated per token (vLLM's PagedAttention, block or per-sequence caches): a request
    /// holds only the tokens it has, and joining a batch costs nothing extra.
    Paged,
    /// Padded batches (Hugging Face transformers-style kernels) except for the architectures
    /// listed, which have flash/paged implementations. A padded batch runs every prompt at the
    /// batch's longest length and re-pads the cache whenever a request joins.
    PaddedUnlessFlash {
        /// `model_type` values (from the HF `config.json`) with a flash implementation.
        flash: &'static [&'static str],
    },
}

/// When an engine lets waiting prompts into the running batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// Iteration-level continuous batching: waiting prompts are scheduled at the next step.
    NextStep,
    /// TGI's router: new requests are held back until enough wait (`waiting_served_ratio`) or
    /// 20 decode steps pass (`max_waiting_tokens`), then prefilled as one batch, so closed-loop
    /// users fall into waves and a request waits for the prefills of those that came with it.
    WaveRouter,
}

/// A way of spreading one model over several GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// Every layer's matrices split across the GPUs (Megatron-LM style); what pilot's
    /// predictions assume for `gpu_count > 1`.
    Tensor,
    /// Consecutive layers on consecutive GPUs.
    Pipeline,
    /// The experts of a mixture-of-experts model spread across GPUs.
    Expert,
    /// Whole replicas behind one endpoint.
    Data,
}

/// One serving engine's traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTraits {
    /// The canonical lower-case name (what rows and predictors carry).
    pub name: &'static str,
    /// Other lower-case names users and datasets give the same engine.
    pub aliases: &'static [&'static str],
    pub kv_cache: KvCache,
    pub scheduling: Scheduling,
    /// Weight formats it serves, as far as its documentation says.
    pub quantizations: &'static [Dtype],
    /// How it spreads a model over GPUs, as far as its documentation says (empty: one device).
    pub parallelism: &'static [Parallelism],
    /// Where the facts above come from.
    pub source: &'static str,
}

impl EngineTraits {
    /// Whether `name` (any case) is this engine's name or one of its aliases.
    pub fn is_called(&self, name: &str) -> bool {
        self.names().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The name, then the aliases.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }

    /// Whether this engine batches a model of this `model_type` (HF `config.json`) with padding
    /// rather than a paged/flash KV cache.
    pub fn pads(&self, model_type: &str) -> bool {
        match self.kv_cache {
            KvCache::Paged => false,
            KvCache::PaddedUnlessFlash { flash } => !flash.contains(&model_type),
        }
    }

    /// Whether it serves weights in `dtype`, as far as known.
    pub fn serves(&self, dtype: Dtype) -> bool {
        self.quantizations.contains(&dtype)
    }

    /// Whether it can spread a model over GPUs this way, as far as known.
    pub fn spreads(&self, p: Parallelism) -> bool {
        self.parallelism.contains(&p)
    }
}

/// Architectures TGI and IBM's TGIS fork serve with flash attention (2023,
/// `server/text_generation_server/models/__init__.py`): the Llama family, GPT-NeoX,
/// GPT-BigCode (StarCoder), Falcon and their successors. T5, mT5, MPT, CodeGen, BLOOM, OPT and
/// GPT-2/J go through the padded `CausalLM` / `Seq2SeqLM` paths (in LLM-Pilot's TGIS data
/// flan-t5-xl, 3B, queues more per user than llama-13b).
pub const TGI_FLASH: &[&str] = &[
    "llama",
    "aquila",
    "deci",
    "mistral",
    "mixtral",
    "gpt_neox",
    "gpt_bigcode",
    "falcon",
    "RefinedWeb",
    "RefinedWebModel",
    "gemma2",
    "phi3",
    "qwen2",
];

/// Every serving engine pilot knows, in the order users see them listed: those
/// `pilot characterize` measures (vLLM, SGLang, TGI, TensorRT-LLM, llama.cpp, Ollama, pilot's
/// own), IBM's TGIS fork that LLM-Pilot measured, and the LLM-Inference-Bench frameworks.
pub const TABLE: &[EngineTraits] = &[
    EngineTraits {
        name: "vllm",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16, Fp8, Int8, Int4],
        parallelism: &[Tensor, Pipeline, Expert, Data],
        source: "PagedAttention and iteration-level scheduling: Kwon et al., SOSP 2023; dtypes \
                 (--dtype, fp8, W8A8 int8, AWQ/GPTQ int4) and --tensor/--pipeline/\
                 --data-parallel-size, --enable-expert-parallel: docs.vllm.ai",
    },
    EngineTraits {
        name: "sglang",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F16, Bf16, Fp8, Int8, Int4],
        parallelism: &[Tensor, Pipeline, Expert, Data],
        source: "RadixAttention over a token-level KV pool, continuous batching: Zheng et al., \
                 2024; --quantization fp8/w8a8_int8/awq/gptq and --tp/--pp/--ep/--dp-size: \
                 docs.sglang.ai server arguments",
    },
    EngineTraits {
        name: "tgi",
        aliases: &["text-generation-inference"],
        kv_cache: KvCache::PaddedUnlessFlash { flash: TGI_FLASH },
        scheduling: Scheduling::WaveRouter,
        quantizations: &[F16, Bf16, Fp8, Int8, Int4],
        parallelism: &[Tensor],
        source: "flash architectures: server/text_generation_server/models/__init__.py; router: \
                 router/src/infer (waiting_served_ratio, max_waiting_tokens); --quantize fp8/\
                 eetq/bitsandbytes/awq/gptq and --num-shard: huggingface/text-generation-inference",
    },
    EngineTraits {
        name: "tgis",
        aliases: &[],
        kv_cache: KvCache::PaddedUnlessFlash { flash: TGI_FLASH },
        scheduling: Scheduling::WaveRouter,
        quantizations: &[F16, Bf16, Int4],
        parallelism: &[Tensor],
        source: "IBM's 2023 fork of TGI (IBM/text-generation-inference): TGI's model paths and \
                 router; --quantize gptq and --num-shard; what LLM-Pilot (Łazuka et al., SC 2024) \
                 measured",
    },
    EngineTraits {
        name: "tensorrt-llm",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16, Fp8, Int8, Int4],
        parallelism: &[Tensor, Pipeline, Expert],
        source: "paged KV cache and in-flight batching, FP8/SmoothQuant/INT8 and INT4 weight-only/\
                 AWQ, tp_size/pp_size/moe_ep_size: nvidia.github.io/TensorRT-LLM",
    },
    EngineTraits {
        name: "deepspeed-mii",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F16, Bf16],
        parallelism: &[Tensor, Data],
        source: "blocked KV cache and Dynamic SplitFuse: DeepSpeed-FastGen, Holmes et al., 2024; \
                 tensor_parallel and replica_num: microsoft/DeepSpeed-MII",
    },
    EngineTraits {
        name: "deepspeed",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16, Int8],
        parallelism: &[Tensor],
        source: "DeepSpeed-Inference as LLM-Inference-Bench ran it (Chitty-Venkata et al., 2024); \
                 init_inference dtype and tensor_parallel: deepspeed.readthedocs.io. Its cache \
                 layout and scheduling are not modelled apart: pilot treats it as paged and \
                 next-step like the rest",
    },
    EngineTraits {
        name: "llama.cpp",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16, Int8, Int4],
        parallelism: &[Tensor, Pipeline],
        source: "one KV cache of token cells shared by the server's slots, continuous batching \
                 (--cont-batching, on by default); GGUF F32/F16/BF16/Q8_0/Q4 types; --split-mode \
                 row (tensor) or layer (pipeline): ggml-org/llama.cpp tools/server README",
    },
    EngineTraits {
        name: "ollama",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16, Int8, Int4],
        parallelism: &[Pipeline],
        source: "llama.cpp underneath with OLLAMA_NUM_PARALLEL slots; GGUF types; layers split \
                 across GPUs: ollama/ollama docs/faq.md",
    },
    EngineTraits {
        name: "pilot",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        quantizations: &[F32, F16, Bf16],
        parallelism: &[],
        source: "pilot's embedded engine (engine/): a per-sequence KV cache, an iteration-level \
                 continuous-batching scheduler, f32/bf16/f16 compute, one device",
    },
];

/// The traits of the engine called `name` (its name or an alias, any case); `None` for an
/// engine pilot knows nothing about (a user's own label), which is predicted as paged and
/// next-step.
pub fn traits(name: &str) -> Option<&'static EngineTraits> {
    TABLE.iter().find(|t| t.is_called(name))
}

/// Every name and alias, each engine's name followed by its aliases, in [`TABLE`] order.
pub fn known_names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().flat_map(EngineTraits::names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_find_their_engine_in_any_case() {
        assert_eq!(traits("vLLM").unwrap().name, "vllm");
        assert_eq!(traits("TGIS").unwrap().name, "tgis");
        assert_eq!(traits("Text-Generation-Inference").unwrap().name, "tgi");
        assert!(traits("my-fork").is_none());
        assert!(traits("").is_none());
    }

    /// Every name is lower-case and belongs to one engine only, so a lookup is never ambiguous.
    #[test]
    fn names_are_lower_case_and_unique() {
        let names: Vec<&str> = known_names().collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(*n, n.to_ascii_lowercase());
            assert!(!names[..i].contains(n), "{n} twice");
        }
    }

    /// TGI and TGIS pad the architectures they have no flash path for, and hold prompts back
    /// for waves; the paged engines do neither.
    #[test]
    fn tgi_family_pads_and_waves_others_page() {
        for name in ["tgi", "tgis", "text-generation-inference"] {
            let t = traits(name).unwrap();
            assert_eq!(t.scheduling, Scheduling::WaveRouter);
            assert!(t.pads("t5") && t.pads("gpt2") && !t.pads("llama"), "{name}");
        }
        for t in TABLE.iter().filter(|t| !["tgi", "tgis"].contains(&t.name)) {
            assert_eq!(t.scheduling, Scheduling::NextStep, "{}", t.name);
            assert!(!t.pads("t5"), "{}", t.name);
        }
    }

    #[test]
    fn every_entry_says_where_its_facts_come_from() {
        for t in TABLE {
            assert!(
                !t.source.is_empty() && !t.quantizations.is_empty(),
                "{}",
                t.name
            );
        }
        assert!(traits("vllm").unwrap().serves(Dtype::Fp8));
        assert!(!traits("pilot").unwrap().serves(Dtype::Int4));
        assert!(traits("tgi").unwrap().spreads(Parallelism::Tensor));
        assert!(!traits("pilot").unwrap().spreads(Parallelism::Tensor));
    }
}

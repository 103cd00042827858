//! What pilot knows about each serving engine, as one table: teaching pilot a new engine is one
//! [`EngineTraits`] entry in [`TABLE`].
//!
//! Why a table: the same facts used to be scattered as name matches (the list of known names
//! in [`crate::validate`], the TGI-family match and its flash-architecture list in predict's
//! scenarios), so a new engine or a new alias meant finding every match. The calibrated
//! constants of each engine (its host overhead per step, its efficiency) are not here: they are
//! learned from measurements and live in the trained predictor. What is here are the facts the
//! physics and the search read to know *which* physics applies: how the KV cache is laid out,
//! whether a decode step carries pieces of waiting prompts ([`Batching`]), which weight formats
//! run on which GPU architectures and whether natively or weight-only ([`QuantSupport`]), which
//! parallel layouts an engine can run ([`Parallelism`]), and how it is launched and watched
//! ([`Launch`]), so that launch commands can be written from the table.
//!
//! Each entry's `source` says where its facts come from: a documentation page or a repository
//! path, as read in 2026 (vLLM V1, SGLang, TensorRT-LLM 1.x with its PyTorch backend). Facts
//! an engine's documentation does not state are left out (`None`, an empty list) rather than
//! guessed. The prediction and the search do not consult the quantization and layout facts yet
//! (recommend still offers every dtype on every engine), so that filtering on them is a
//! deliberate change with its own test, not a side effect of this table.

use crate::quant::Quantization;
use crate::units::{Gigabytes, Tokens};
use GpuArch::{
    Ada, Ampere, Blackwell, Cdna2, Cdna3, Cdna4, Gaudi2, Gaudi3, Hopper, Turing, Volta, XeHpc,
};
use Parallelism::{AttentionData, Data, Disaggregated, Expert, Pipeline, Tensor};
use Quantization::{Bf16, Fp8, Fp8Block, Fp16, Fp32, Int4W4a16, Int8, Mxfp4, Nvfp4};
use std::fmt;

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

/// What one step of a continuous-batching engine holds when prompts wait while others decode.
/// This decides the shape of the physics: whether inter-token latency carries prefill work and
/// whether a waiting prompt queues behind decodes or decodes behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPriority {
    /// Running requests are scheduled first (one token each) and waiting prompts, or chunks of
    /// them, fill the rest of the step's token budget: decode steps carry prefill pieces, so
    /// inter-token latency rises with arriving prompts and a prompt waits for no decode.
    DecodeFirstMixed,
    /// A step is either a batch of prefills or one decode of every running request, and a
    /// waiting prompt goes first: running requests stall for whole prefill steps and their
    /// decode steps carry no prompt tokens.
    PrefillFirst,
}

/// An engine's default per-step limits on GPUs of at least some memory (see
/// [`Batching::defaults`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchDefaults {
    /// Applies to GPUs with at least this much memory (the catalog's nominal size, which is
    /// what the engines' own tier comments map to: an 80 GB H100 in the "80 GB" tier).
    pub min_memory: Gigabytes,
    /// ...except on this architecture (vLLM keeps the small defaults on A100s: its code tests
    /// the device name, which pilot reads as the Ampere architecture).
    pub except: Option<GpuArch>,
    /// The most tokens (decode tokens plus prompt tokens) one step processes.
    pub token_budget: Tokens,
    /// The most requests running at once; `None` where the engine sizes it from the KV pool at
    /// start-up (SGLang) or its default is not recorded (TensorRT-LLM's comes from its build
    /// config, which the documentation gives inconsistently).
    pub max_sequences: Option<u32>,
}

/// How an engine batches prompts and decodes, by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batching {
    /// Whether a prompt longer than the step's free token budget is split over several steps
    /// by default (chunked prefill / chunked context).
    pub chunked_prefill: bool,
    pub priority: StepPriority,
    /// Default limits by GPU memory, largest tier first; the first tier the GPU reaches
    /// applies. Empty: not documented.
    pub defaults: &'static [BatchDefaults],
}

impl Batching {
    /// Whether a decode step also processes tokens of waiting prompts: what the physics needs
    /// to know to add prefill work to inter-token latency.
    pub fn decode_steps_carry_prefill(&self) -> bool {
        self.priority == StepPriority::DecodeFirstMixed
    }

    /// The default limits on a GPU with `memory` of architecture `arch`; `None` where the
    /// engine documents none for it.
    pub fn defaults_for(&self, memory: Gigabytes, arch: GpuArch) -> Option<&'static BatchDefaults> {
        self.defaults
            .iter()
            .find(|d| memory.0 >= d.min_memory.0 && d.except != Some(arch))
    }
}

/// A way of spreading one model over several GPUs, or of serving it from several workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parallelism {
    /// Every layer's matrices split across the GPUs (Megatron-LM style); what pilot's
    /// predictions assume for `gpu_count > 1`.
    Tensor,
    /// Consecutive layers on consecutive GPUs.
    Pipeline,
    /// The experts of a mixture-of-experts model spread across GPUs (tokens travel to their
    /// experts by all-to-all).
    Expert,
    /// Attention data parallelism: each GPU runs attention (and holds the KV cache) for its own
    /// requests while the MoE layers are shared by expert or tensor parallelism across them
    /// (DeepSeek-style MLA serving).
    AttentionData,
    /// Whole replicas behind one endpoint.
    Data,
    /// Prefill and decode on separate workers, the KV cache sent from one to the other.
    Disaggregated,
}

impl Parallelism {
    pub const ALL: [Parallelism; 6] =
        [Tensor, Pipeline, Expert, AttentionData, Data, Disaggregated];

    /// The name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Tensor => "tensor parallelism",
            Pipeline => "pipeline parallelism",
            Expert => "expert parallelism",
            AttentionData => "attention data parallelism",
            Data => "data parallelism (replicas)",
            Disaggregated => "disaggregated prefill/decode serving",
        }
    }
}

impl fmt::Display for Parallelism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GPU (or accelerator) architecture, as far as an engine's kernels care: the weight
/// formats with hardware support and the kernels that exist differ by architecture, not by
/// SKU. Parsed from the GPU catalog's `architecture` column ([`GpuArch::from_catalog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuArch {
    /// NVIDIA sm70 (V100).
    Volta,
    /// NVIDIA sm75 (T4).
    Turing,
    /// NVIDIA sm80/sm86 (A100, A10, A40): bf16 and int8 tensor cores, no fp8.
    Ampere,
    /// NVIDIA sm89 (L4, L40S, RTX 4090): the first fp8 tensor cores.
    Ada,
    /// NVIDIA sm90 (H100, H200, GH200).
    Hopper,
    /// NVIDIA sm100/sm103 (B200, B300, GB200, GB300): the first fp4 tensor cores.
    Blackwell,
    /// AMD gfx90a (MI250).
    Cdna2,
    /// AMD gfx942 (MI300X, MI325X): fp8, no fp4.
    Cdna3,
    /// AMD gfx950 (MI355X): mxfp4 in hardware.
    Cdna4,
    /// Intel Gaudi 2.
    Gaudi2,
    /// Intel Gaudi 3.
    Gaudi3,
    /// Intel Data Center GPU Max (Ponte Vecchio).
    XeHpc,
}

impl GpuArch {
    pub const ALL: [GpuArch; 12] = [
        Volta, Turing, Ampere, Ada, Hopper, Blackwell, Cdna2, Cdna3, Cdna4, Gaudi2, Gaudi3, XeHpc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Volta => "Volta",
            Turing => "Turing",
            Ampere => "Ampere",
            Ada => "Ada Lovelace",
            Hopper => "Hopper",
            Blackwell => "Blackwell",
            Cdna2 => "CDNA2",
            Cdna3 => "CDNA3",
            Cdna4 => "CDNA4",
            Gaudi2 => "Gaudi2",
            Gaudi3 => "Gaudi3",
            XeHpc => "Xe-HPC",
        }
    }

    /// The architecture a GPU catalog row names (`Ampere (GA100)`, `Ada Lovelace (AD102)`,
    /// `Hopper (Grace Hopper superchip)`, `CDNA3`, `Gaudi2`, `Xe-HPC (Ponte Vecchio)`): the
    /// first word that names one decides, so die names and superchip notes do not matter.
    pub fn from_catalog(text: &str) -> Result<GpuArch, UnknownArch> {
        let words: Vec<String> = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_lowercase())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let next = words.get(i + 1).map(String::as_str);
            let arch = match (w.as_str(), next) {
                ("volta", _) => Volta,
                ("turing", _) => Turing,
                ("ampere", _) => Ampere,
                ("ada" | "lovelace", _) => Ada,
                ("hopper", _) => Hopper,
                ("blackwell", _) => Blackwell,
                ("cdna2", _) | ("cdna", Some("2")) => Cdna2,
                ("cdna3", _) | ("cdna", Some("3")) => Cdna3,
                ("cdna4", _) | ("cdna", Some("4")) => Cdna4,
                ("gaudi2", _) | ("gaudi", Some("2")) => Gaudi2,
                ("gaudi3", _) | ("gaudi", Some("3")) => Gaudi3,
                ("xe", Some("hpc")) | ("ponte", Some("vecchio")) => XeHpc,
                _ => continue,
            };
            return Ok(arch);
        }
        Err(UnknownArch {
            text: crate::validate::shorten(text.trim()),
        })
    }
}

impl fmt::Display for GpuArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GPU architecture text that names none pilot knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown GPU architecture '{text}': name one of {known} in the GPU catalog's architecture \
     column",
    known = list(&GpuArch::ALL)
)]
pub struct UnknownArch {
    pub text: String,
}

/// How a weight format's matrix math runs on an architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// In the format itself: fp8 or int8 W8A8 on 8-bit tensor cores, nvfp4/mxfp4 W4A4 on fp4
    /// tensor cores, 16-bit formats on 16-bit ones, and int4 w4a16, whose math is 16-bit by
    /// definition, through its own dequantizing kernels.
    Native,
    /// The weights are stored in the format but dequantized to 16 bits for the math (e.g.
    /// fp8 or fp4 through Marlin kernels on GPUs without fp8/fp4 tensor cores): the memory
    /// traffic of the format, the compute rate of 16 bits.
    WeightOnly,
}

/// Where an engine serves one weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSupport {
    pub quantization: Quantization,
    /// The architectures it runs on at all, natively or weight-only. A list, not a minimum,
    /// because support has gaps (TensorRT-LLM's w4a16 kernels run on Ampere to Hopper, not on
    /// Blackwell).
    pub runs_on: &'static [GpuArch],
    /// Those of `runs_on` where the math runs in the format itself ([`Kernel::Native`]).
    pub native_on: &'static [GpuArch],
}

const fn q(
    quantization: Quantization,
    runs_on: &'static [GpuArch],
    native_on: &'static [GpuArch],
) -> QuantSupport {
    QuantSupport {
        quantization,
        runs_on,
        native_on,
    }
}

/// A format that runs natively wherever it runs.
const fn native(quantization: Quantization, on: &'static [GpuArch]) -> QuantSupport {
    q(quantization, on, on)
}

/// Default limits from `min_gb` of GPU memory up, on every architecture.
const fn tier(min_gb: f64, token_budget: u64, max_sequences: Option<u32>) -> BatchDefaults {
    BatchDefaults {
        min_memory: Gigabytes(min_gb),
        except: None,
        token_budget: Tokens(token_budget),
        max_sequences,
    }
}

/// How to set one launch option on an engine's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--flag N`.
    Value(&'static str),
    /// A switch whose width follows from other flags (vLLM's `--enable-expert-parallel`: the
    /// expert-parallel width is tensor x data parallel).
    Switch(&'static str),
    /// A switch plus the flag that sets the width (SGLang's `--enable-dp-attention` with
    /// `--dp-size N`).
    SwitchAndValue(&'static str, &'static str),
    /// No command-line flag: a key (dotted path) of the YAML file the engine reads with
    /// `file_flag` (TensorRT-LLM's `enable_attention_dp` in `--config`).
    ConfigKey {
        file_flag: &'static str,
        key: &'static str,
    },
}

/// The Prometheus metrics an engine exposes, by what they measure (`None`: not documented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// The HTTP path they are served on.
    pub path: &'static str,
    /// The flag that turns them on, where they are off by default.
    pub enabled_by: Option<&'static str>,
    pub requests_running: Option<&'static str>,
    pub requests_waiting: Option<&'static str>,
    /// Fraction of the KV cache in use.
    pub kv_cache_usage: Option<&'static str>,
    pub ttft: Option<&'static str>,
    pub itl: Option<&'static str>,
    pub e2e: Option<&'static str>,
}

/// How an engine's OpenAI-compatible server is started and watched: what issue 15 writes
/// launch commands from. Every flag is as its engine spells it; `None` where the engine has no
/// such option or its documentation gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// The program (and subcommand) that starts the server, e.g. `vllm serve`.
    pub program: &'static str,
    /// The flag before the model (`None`: the model is the first positional argument).
    pub model_flag: Option<&'static str>,
    pub tensor_parallel: Option<Flag>,
    pub pipeline_parallel: Option<Flag>,
    pub expert_parallel: Option<Flag>,
    pub attention_dp: Option<Flag>,
    /// The most requests running at once.
    pub max_sequences: Option<Flag>,
    /// The longest request (prompt plus output) the server accepts.
    pub max_model_len: Option<Flag>,
    /// The per-step token budget.
    pub max_batched_tokens: Option<Flag>,
    pub kv_cache_dtype: Option<Flag>,
    /// Turns chunked prefill on where it is off by default.
    pub chunked_prefill: Option<Flag>,
    /// The route that answers 200 once the server can serve.
    pub health: Option<&'static str>,
    pub metrics: Option<Metrics>,
    /// The port the server listens on by default.
    pub port: u16,
    /// The engine's published container image (what `--emit k8s` runs).
    pub image: &'static str,
    /// Whether the tensor-parallel flag counts every GPU of the worker, attention-DP ranks
    /// included (SGLang's `--tp-size 8 --enable-dp-attention --dp-size 8` and TensorRT-LLM's
    /// `--tp_size 8` with `enable_attention_dp` are eight GPUs), rather than the GPUs of one
    /// attention rank (vLLM's `--tensor-parallel-size 1 --data-parallel-size 8`).
    pub tensor_flag_counts_attention_dp: bool,
    /// The flag that quantizes a 16-bit checkpoint to fp8 while loading (`None`: the engine
    /// serves a format only from a checkpoint already in it).
    pub quantize_on_load: Option<&'static str>,
    /// How a worker is told its role in disaggregated serving (`None`: not recorded).
    pub disaggregation: Option<DisaggLaunch>,
}

/// How an engine runs disaggregated prefill and decode workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisaggLaunch {
    /// Arguments added to a prefill worker's command line.
    pub prefill_args: &'static [&'static str],
    /// Arguments added to a decode worker's command line.
    pub decode_args: &'static [&'static str],
    /// Keys set in the engine's YAML file (`--config`) of both roles, as (dotted key, value).
    pub config: &'static [(&'static str, &'static str)],
    /// The front that sends each request to a prefill and a decode worker, with `{prefill}`
    /// and `{decode}` standing for the workers' URLs; `None` where the engine ships none.
    pub router: Option<&'static str>,
    /// Where these facts come from.
    pub source: &'static str,
}

/// One serving engine's traits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineTraits {
    /// The canonical lower-case name (what rows and predictors carry).
    pub name: &'static str,
    /// Other lower-case names users and datasets give the same engine.
    pub aliases: &'static [&'static str],
    pub kv_cache: KvCache,
    pub scheduling: Scheduling,
    /// Chunked prefill and step priority; `None` where not recorded.
    pub batching: Option<Batching>,
    /// Weight formats it serves and on which architectures.
    pub quantizations: &'static [QuantSupport],
    /// How it spreads a model over GPUs or workers (empty: one device).
    pub parallelism: &'static [Parallelism],
    /// How its server is started and watched; `None` for engines pilot does not launch.
    pub launch: Option<Launch>,
    /// Whether its tensor parallelism runs a model whose attention heads the degree does not
    /// divide. vLLM, SGLang, TensorRT-LLM and TGI shard whole heads and refuse such a degree;
    /// DeepSpeed ran Qwen2-7B (28 heads) on 8 Gaudi2 in LLM-Inference-Bench, and llama.cpp
    /// (and Ollama on it) splits rows in any proportion (`--tensor-split`).
    pub uneven_heads: bool,
    /// Where the facts above come from.
    pub source: &'static str,
}

/// What an engine cannot do that was asked of it, and what it can do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error(
        "{engine} cannot serve {quantization} weights on {arch} GPUs: there it serves {}; \
         {quantization} runs under {engine} on {}. Choose one of those formats, another GPU or \
         another engine",
        list(served),
        if needs.is_empty() { "no GPU pilot knows".to_string() } else { list(needs) }
    )]
    Quantization {
        engine: &'static str,
        quantization: Quantization,
        arch: GpuArch,
        /// What it serves on that architecture instead.
        served: Vec<Quantization>,
        /// Where it would serve the requested format.
        needs: Vec<GpuArch>,
    },
    #[error(
        "{engine} cannot run {layout}: it supports {}. Choose a layout from those or another \
         engine",
        if supported.is_empty() { "one device only".to_string() } else { list(supported) }
    )]
    Layout {
        engine: &'static str,
        layout: Parallelism,
        supported: Vec<Parallelism>,
    },
}

/// `a, b, c`.
fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

    /// Whether it serves weights in `quantization` on `arch`, and how the math runs there; an
    /// error names what it serves on `arch` instead and where the format would run.
    pub fn supports(
        &self,
        quantization: Quantization,
        arch: GpuArch,
    ) -> Result<Kernel, Unsupported> {
        let found = self
            .quantizations
            .iter()
            .find(|s| s.quantization == quantization && s.runs_on.contains(&arch));
        match found {
            Some(s) if s.native_on.contains(&arch) => Ok(Kernel::Native),
            Some(_) => Ok(Kernel::WeightOnly),
            None => Err(Unsupported::Quantization {
                engine: self.name,
                quantization,
                arch,
                served: self
                    .quantizations
                    .iter()
                    .filter(|s| s.runs_on.contains(&arch))
                    .map(|s| s.quantization)
                    .collect(),
                needs: self
                    .quantizations
                    .iter()
                    .filter(|s| s.quantization == quantization)
                    .flat_map(|s| s.runs_on.iter().copied())
                    .collect(),
            }),
        }
    }

    /// Whether it can spread a model over GPUs this way.
    pub fn spreads(&self, p: Parallelism) -> bool {
        self.parallelism.contains(&p)
    }

    /// Whether it can run a deployment that combines `layout` (say tensor and expert
    /// parallelism, disaggregated); the error names the first it cannot and what it supports.
    pub fn supports_layout(&self, layout: &[Parallelism]) -> Result<(), Unsupported> {
        match layout.iter().find(|p| !self.spreads(**p)) {
            None => Ok(()),
            Some(&p) => Err(Unsupported::Layout {
                engine: self.name,
                layout: p,
                supported: self.parallelism.to_vec(),
            }),
        }
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

/// NVIDIA architectures from Volta on.
const NVIDIA: &[GpuArch] = &[Volta, Turing, Ampere, Ada, Hopper, Blackwell];
/// Every architecture pilot knows: vLLM's platforms (CUDA, ROCm, Intel Gaudi and XPU).
const VLLM_ANY: &[GpuArch] = &[
    Volta, Turing, Ampere, Ada, Hopper, Blackwell, Cdna2, Cdna3, Cdna4, Gaudi2, Gaudi3, XeHpc,
];
/// SGLang's platforms: NVIDIA from Turing (its memory tiers name the T4), AMD Instinct
/// MI300X/MI325X/MI350X, Intel Gaudi.
const SGLANG_ANY: &[GpuArch] = &[
    Turing, Ampere, Ada, Hopper, Blackwell, Cdna3, Cdna4, Gaudi2, Gaudi3,
];
/// TGI's backends: CUDA, ROCm (Instinct MI210/MI250/MI300), Intel Gaudi 2 and 3.
const TGI_ANY: &[GpuArch] = &[
    Volta, Turing, Ampere, Ada, Hopper, Blackwell, Cdna2, Cdna3, Gaudi2, Gaudi3,
];
/// TensorRT-LLM's hardware support matrix: Ampere to Blackwell.
const TRTLLM_ANY: &[GpuArch] = &[Ampere, Ada, Hopper, Blackwell];
/// DeepSpeed-Inference's accelerators: CUDA, ROCm, Habana Gaudi (where LLM-Inference-Bench ran
/// it).
const DEEPSPEED_ANY: &[GpuArch] = &[Volta, Turing, Ampere, Ada, Hopper, Cdna2, Cdna3, Gaudi2];
/// The llama.cpp family's backends: CUDA, HIP, SYCL.
const GGML_ANY: &[GpuArch] = &[
    Volta, Turing, Ampere, Ada, Hopper, Blackwell, Cdna2, Cdna3, Cdna4, XeHpc,
];

/// The GGUF formats llama.cpp (and Ollama on it) serves, on every backend it builds for
/// (Q8_0 and Q4_K stand for int8 and int4).
const GGML_FORMATS: &[QuantSupport] = &[
    native(Fp32, GGML_ANY),
    native(Fp16, GGML_ANY),
    native(Bf16, GGML_ANY),
    native(Int8, GGML_ANY),
    native(Int4W4a16, GGML_ANY),
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
        batching: Some(Batching {
            chunked_prefill: true,
            priority: StepPriority::DecodeFirstMixed,
            defaults: &[
                BatchDefaults {
                    min_memory: Gigabytes(70.0),
                    except: Some(Ampere),
                    token_budget: Tokens(8192),
                    max_sequences: Some(1024),
                },
                tier(0.0, 2048, Some(256)),
            ],
        }),
        quantizations: &[
            native(Fp32, VLLM_ANY),
            native(Fp16, VLLM_ANY),
            native(Bf16, VLLM_ANY),
            q(
                Fp8,
                &[
                    Turing, Ampere, Ada, Hopper, Blackwell, Cdna3, Cdna4, Gaudi2, Gaudi3,
                ],
                &[Ada, Hopper, Blackwell, Cdna3, Cdna4, Gaudi2, Gaudi3],
            ),
            q(
                Fp8Block,
                &[Turing, Ampere, Ada, Hopper, Blackwell, Cdna3, Cdna4],
                &[Ada, Hopper, Blackwell, Cdna3, Cdna4],
            ),
            native(Int8, &[Turing, Ampere, Ada, Hopper]),
            q(Nvfp4, &[Ampere, Ada, Hopper, Blackwell], &[Blackwell]),
            q(Mxfp4, &[Ampere, Ada, Hopper, Blackwell], &[Blackwell]),
            native(
                Int4W4a16,
                &[Volta, Turing, Ampere, Ada, Hopper, Blackwell, XeHpc],
            ),
        ],
        parallelism: &[Tensor, Pipeline, Expert, AttentionData, Data, Disaggregated],
        launch: Some(Launch {
            program: "vllm serve",
            port: 8000,
            image: "vllm/vllm-openai:latest",
            tensor_flag_counts_attention_dp: false,
            quantize_on_load: Some("--quantization"),
            disaggregation: Some(DisaggLaunch {
                prefill_args: &[
                    "--kv-transfer-config",
                    r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#,
                ],
                decode_args: &[
                    "--kv-transfer-config",
                    r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#,
                ],
                config: &[],
                router: None,
                source: "vllm docs/features/disagg_prefill.md and \
                         docs/features/nixl_connector_usage.md: each instance started with \
                         --kv-transfer-config naming the NixlConnector; the proxy in front is \
                         an example script, not part of vllm serve",
            }),
            model_flag: None,
            tensor_parallel: Some(Flag::Value("--tensor-parallel-size")),
            pipeline_parallel: Some(Flag::Value("--pipeline-parallel-size")),
            expert_parallel: Some(Flag::Switch("--enable-expert-parallel")),
            attention_dp: Some(Flag::Value("--data-parallel-size")),
            max_sequences: Some(Flag::Value("--max-num-seqs")),
            max_model_len: Some(Flag::Value("--max-model-len")),
            max_batched_tokens: Some(Flag::Value("--max-num-batched-tokens")),
            kv_cache_dtype: Some(Flag::Value("--kv-cache-dtype")),
            chunked_prefill: None,
            health: Some("/health"),
            metrics: Some(Metrics {
                path: "/metrics",
                enabled_by: None,
                requests_running: Some("vllm:num_requests_running"),
                requests_waiting: Some("vllm:num_requests_waiting"),
                kv_cache_usage: Some("vllm:kv_cache_usage_perc"),
                ttft: Some("vllm:time_to_first_token_seconds"),
                itl: Some("vllm:inter_token_latency_seconds"),
                e2e: Some("vllm:e2e_request_latency_seconds"),
            }),
        }),
        uneven_heads: false,
        source: "PagedAttention: Kwon et al., SOSP 2023. V1 scheduler (vllm-project/vllm \
                 vllm/v1/core/sched/scheduler.py): running requests first, then waiting ones, \
                 from one token budget; chunked prefill on by default. Defaults \
                 (vllm/engine/arg_utils.py, API server): 8192 batched tokens and 1024 sequences \
                 on GPUs of 70 GiB or more whose name lacks 'a100', else 2048 and 256 (V0 had \
                 256 sequences and prefill-first scheduling unless --enable-chunked-prefill). \
                 Quantization: docs.vllm.ai features/quantization supported-hardware table \
                 (AWQ Turing+, GPTQ Volta+, both on Intel GPU, not AMD; INT8 W8A8 Turing to \
                 Hopper; FP8 W8A8 Ada, Hopper, AMD; INC fp8 on Gaudi) and FP8 W8A8 page (W8A8 on \
                 compute capability 8.9+ incl. Blackwell, weight-only FP8 Marlin from 7.5); \
                 nvfp4/mxfp4 weight-only through Marlin below Blackwell (marlin_utils_fp4.py \
                 warning, vllm-project/vllm#31085, #47749). Layouts: docs.vllm.ai \
                 serving/data_parallel_deployment and expert_parallel_deployment (attention DP \
                 with --data-parallel-size, --enable-expert-parallel makes EP = DP x TP), \
                 disaggregated prefill via KV connectors. Metrics: docs/design/metrics.md (V1). \
                 Blackwell for int4 is inferred from Marlin running there (the table has no \
                 Blackwell column); AMD mxfp4 is left out (not in the table)",
    },
    EngineTraits {
        name: "sglang",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: Some(Batching {
            chunked_prefill: true,
            priority: StepPriority::PrefillFirst,
            defaults: &[
                tier(160.0, 16384, None),
                tier(60.0, 8192, None),
                tier(35.0, 4096, None),
                tier(0.0, 2048, None),
            ],
        }),
        quantizations: &[
            native(Fp32, SGLANG_ANY),
            native(Fp16, SGLANG_ANY),
            native(Bf16, SGLANG_ANY),
            native(Fp8, &[Ada, Hopper, Blackwell, Cdna3, Cdna4]),
            native(Fp8Block, &[Ada, Hopper, Blackwell, Cdna3, Cdna4]),
            native(
                Int8,
                &[Turing, Ampere, Ada, Hopper, Blackwell, Cdna3, Cdna4],
            ),
            q(Nvfp4, &[Blackwell, Cdna2, Cdna3], &[Blackwell]),
            q(
                Mxfp4,
                &[Hopper, Blackwell, Cdna3, Cdna4],
                &[Blackwell, Cdna4],
            ),
            native(
                Int4W4a16,
                &[Turing, Ampere, Ada, Hopper, Blackwell, Cdna3, Cdna4],
            ),
        ],
        parallelism: &[Tensor, Pipeline, Expert, AttentionData, Data, Disaggregated],
        launch: Some(Launch {
            program: "python -m sglang.launch_server",
            port: 30000,
            image: "lmsysorg/sglang:latest",
            tensor_flag_counts_attention_dp: true,
            quantize_on_load: Some("--quantization"),
            disaggregation: Some(DisaggLaunch {
                prefill_args: &["--disaggregation-mode", "prefill"],
                decode_args: &["--disaggregation-mode", "decode"],
                config: &[],
                router: Some(
                    "python -m sglang_router.launch_router --pd-disaggregation --prefill {prefill} --decode {decode}",
                ),
                source: "sglang docs/advanced_features/pd_disaggregation.md: \
                         --disaggregation-mode prefill|decode, sglang_router's \
                         --pd-disaggregation front",
            }),
            model_flag: Some("--model-path"),
            tensor_parallel: Some(Flag::Value("--tp-size")),
            pipeline_parallel: Some(Flag::Value("--pp-size")),
            expert_parallel: Some(Flag::Value("--ep-size")),
            attention_dp: Some(Flag::SwitchAndValue("--enable-dp-attention", "--dp-size")),
            max_sequences: Some(Flag::Value("--max-running-requests")),
            max_model_len: Some(Flag::Value("--context-length")),
            max_batched_tokens: Some(Flag::Value("--chunked-prefill-size")),
            kv_cache_dtype: Some(Flag::Value("--kv-cache-dtype")),
            chunked_prefill: None,
            health: Some("/health"),
            metrics: Some(Metrics {
                path: "/metrics",
                enabled_by: Some("--enable-metrics"),
                requests_running: Some("sglang:num_running_reqs"),
                requests_waiting: Some("sglang:num_queue_reqs"),
                kv_cache_usage: Some("sglang:token_usage"),
                ttft: Some("sglang:time_to_first_token_seconds"),
                itl: Some("sglang:inter_token_latency_seconds"),
                e2e: Some("sglang:e2e_request_latency_seconds"),
            }),
        }),
        uneven_heads: false,
        source: "RadixAttention over a token-level KV pool: Zheng et al., 2024. Scheduler \
                 (sgl-project/sglang python/sglang/srt/managers/scheduler.py \
                 get_next_batch_to_run: 'Run prefill first if possible', else decode the \
                 running batch; --enable-mixed-chunk, off by default, mixes them). \
                 chunked_prefill_size by GPU memory (python/sglang/srt/server_args.py: under 35 \
                 GiB 2048, under 60 4096, under 160 8192, else 16384); max_running_requests \
                 sized from the KV pool. Quantization: docs.sglang.io \
                 advanced_features/quantization platform table (fp8, blockwise, w8a8_int8, \
                 awq, gptq on NVIDIA and AMD MI300X/MI325X/MI350X; modelopt_fp4 on \
                 Blackwell/SM100+; petit_nvfp4 on MI250/MI300X/MI325X; mxfp4 on CDNA3/CDNA4), \
                 mxfp4 on H100+ through triton kernels and natively on SM100 (server_args.py \
                 GptOss branch). Flags and metrics: docs.sglang.io server_arguments \
                 (--tp/--pp/--ep-size, --dp-size with --enable-dp-attention, \
                 --disaggregation-mode prefill|decode) and references/production_metrics",
    },
    EngineTraits {
        name: "tgi",
        aliases: &["text-generation-inference"],
        kv_cache: KvCache::PaddedUnlessFlash { flash: TGI_FLASH },
        scheduling: Scheduling::WaveRouter,
        batching: None,
        quantizations: &[
            native(Fp16, TGI_ANY),
            native(Bf16, TGI_ANY),
            native(Fp8, &[Ada, Hopper, Blackwell]),
            q(Int8, NVIDIA, &[]),
            native(Int4W4a16, NVIDIA),
        ],
        parallelism: &[Tensor],
        launch: Some(Launch {
            program: "text-generation-launcher",
            // The launcher's own default; pilot passes --port, so the image's PORT=80 does
            // not apply.
            port: 3000,
            image: "ghcr.io/huggingface/text-generation-inference:latest",
            tensor_flag_counts_attention_dp: false,
            quantize_on_load: Some("--quantize"),
            disaggregation: None,
            model_flag: Some("--model-id"),
            tensor_parallel: Some(Flag::Value("--num-shard")),
            pipeline_parallel: None,
            expert_parallel: None,
            attention_dp: None,
            // TGI bounds a batch by tokens (--max-batch-total-tokens, sized from free memory),
            // not by a sequence count; --max-batch-size applies only to padded hardware, and
            // --max-concurrent-requests refuses requests past it instead of queueing them.
            max_sequences: None,
            max_model_len: Some(Flag::Value("--max-total-tokens")),
            max_batched_tokens: Some(Flag::Value("--max-batch-prefill-tokens")),
            kv_cache_dtype: Some(Flag::Value("--kv-cache-dtype")),
            chunked_prefill: None,
            health: Some("/health"),
            metrics: Some(Metrics {
                path: "/metrics",
                enabled_by: None,
                requests_running: Some("tgi_batch_current_size"),
                requests_waiting: Some("tgi_queue_size"),
                kv_cache_usage: None,
                ttft: None,
                itl: None,
                e2e: Some("tgi_request_duration"),
            }),
        }),
        uneven_heads: false,
        source: "launcher flags (docs text-generation-inference reference/launcher: --model-id, \
                 --num-shard, --quantize, --max-total-tokens, --max-batch-prefill-tokens, \
                 --kv-cache-dtype, --port default 3000; GET /health) and metrics \
                 (reference/metrics: tgi_batch_current_size, tgi_queue_size, \
                 tgi_request_duration); flash architectures: server/text_generation_server/models/__init__.py; router: \
                 router/src/infer (waiting_served_ratio, max_waiting_tokens); --quantize fp8/\
                 eetq/bitsandbytes (8-bit weight-only)/awq/gptq and --num-shard: \
                 huggingface/text-generation-inference. 16-bit on CUDA, ROCm (Instinct MI210, \
                 MI250, MI300: huggingface.co/blog/huggingface-amd-mi300) and Gaudi 2/3 \
                 (docs text-generation-inference backends/gaudi); fp8 math needs Ada's fp8 tensor \
                 cores; quantized formats recorded for NVIDIA only",
    },
    EngineTraits {
        name: "tgis",
        aliases: &[],
        kv_cache: KvCache::PaddedUnlessFlash { flash: TGI_FLASH },
        scheduling: Scheduling::WaveRouter,
        batching: None,
        quantizations: &[
            native(Fp16, NVIDIA),
            native(Bf16, NVIDIA),
            native(Int4W4a16, NVIDIA),
        ],
        parallelism: &[Tensor],
        launch: None,
        uneven_heads: false,
        source: "IBM's 2023 fork of TGI (IBM/text-generation-inference): TGI's model paths and \
                 router; --quantize gptq and --num-shard; what LLM-Pilot (Łazuka et al., SC 2024) \
                 measured, on V100, T4, A10, A100 and H100",
    },
    EngineTraits {
        name: "tensorrt-llm",
        aliases: &["trtllm", "tensorrt_llm", "trt-llm"],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: Some(Batching {
            chunked_prefill: false,
            priority: StepPriority::DecodeFirstMixed,
            defaults: &[tier(0.0, 8192, None)],
        }),
        quantizations: &[
            native(Fp32, TRTLLM_ANY),
            native(Fp16, TRTLLM_ANY),
            native(Bf16, TRTLLM_ANY),
            native(Fp8, &[Ada, Hopper, Blackwell]),
            native(Fp8Block, &[Hopper, Blackwell]),
            native(Int8, TRTLLM_ANY),
            native(Nvfp4, &[Blackwell]),
            native(Mxfp4, &[Blackwell]),
            native(Int4W4a16, &[Ampere, Ada, Hopper]),
        ],
        parallelism: &[Tensor, Pipeline, Expert, AttentionData, Disaggregated],
        launch: Some(Launch {
            program: "trtllm-serve",
            port: 8000,
            image: "nvcr.io/nvidia/tensorrt-llm/release:latest",
            tensor_flag_counts_attention_dp: true,
            quantize_on_load: None,
            disaggregation: Some(DisaggLaunch {
                prefill_args: &[],
                decode_args: &[],
                config: &[("cache_transceiver_config.backend", "DEFAULT")],
                router: Some("trtllm-serve disaggregated -c disagg.yaml"),
                source: "NVIDIA/TensorRT-LLM docs/source/features/disagg-serving.md: context \
                         and generation servers are trtllm-serve instances with \
                         cache_transceiver_config in their --config file; \
                         `trtllm-serve disaggregated -c` lists their URLs",
            }),
            model_flag: None,
            tensor_parallel: Some(Flag::Value("--tp_size")),
            pipeline_parallel: Some(Flag::Value("--pp_size")),
            expert_parallel: Some(Flag::Value("--ep_size")),
            attention_dp: Some(Flag::ConfigKey {
                file_flag: "--config",
                key: "enable_attention_dp",
            }),
            max_sequences: Some(Flag::Value("--max_batch_size")),
            max_model_len: Some(Flag::Value("--max_seq_len")),
            max_batched_tokens: Some(Flag::Value("--max_num_tokens")),
            kv_cache_dtype: Some(Flag::ConfigKey {
                file_flag: "--config",
                key: "kv_cache_config.dtype",
            }),
            chunked_prefill: Some(Flag::Switch("--enable_chunked_prefill")),
            health: Some("/health"),
            metrics: Some(Metrics {
                path: "/prometheus/metrics",
                enabled_by: None,
                requests_running: None,
                requests_waiting: None,
                kv_cache_usage: None,
                ttft: None,
                itl: None,
                e2e: None,
            }),
        }),
        uneven_heads: false,
        source: "NVIDIA/TensorRT-LLM docs/source/features/paged-attention-ifb-scheduler.md: \
                 paged KV cache; in-flight batching runs context and generation requests in \
                 one batch, generation scheduled first; max_num_tokens 8192 by default; chunked \
                 context off unless enabled (tensorrt_llm/commands/serve.py: \
                 --enable_chunked_prefill default False, GUARANTEED_NO_EVICT capacity \
                 scheduler; --tp_size, --pp_size, --ep_size, --max_batch_size, --max_seq_len, \
                 --max_num_tokens, --config YAML for enable_attention_dp (llmapi/llm_args.py) \
                 and kv_cache_config.dtype (docs features/quantization.md); max_batch_size's \
                 default is BuildConfig's, not recorded). Quantization: \
                 docs/source/features/quantization.md hardware support matrix (NVFP4 and MXFP4 \
                 on Blackwell; FP8 per tensor Ada to Blackwell; FP8 block scales on Hopper and \
                 sm100/103, not sm120; W4A16 AWQ/GPTQ on Ampere, Ada and Hopper only); INT8 \
                 SmoothQuant on Ampere and later: ModelOpt support matrix. trtllm-serve \
                 endpoints /health, /metrics (JSON iteration stats) and /prometheus/metrics \
                 (prefix trtllm_; names not documented): nvidia.github.io/TensorRT-LLM \
                 commands/trtllm-serve and examples/prometheus_metrics",
    },
    EngineTraits {
        name: "deepspeed-mii",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: Some(Batching {
            chunked_prefill: true,
            priority: StepPriority::DecodeFirstMixed,
            defaults: &[],
        }),
        quantizations: &[
            native(Fp16, &[Ampere, Ada, Hopper]),
            native(Bf16, &[Ampere, Ada, Hopper]),
        ],
        parallelism: &[Tensor, Data],
        launch: None,
        uneven_heads: false,
        source: "blocked KV cache and Dynamic SplitFuse (long prompts split into chunks, \
                 short ones composed with running decodes to fill a token budget): \
                 DeepSpeed-FastGen, Holmes et al., 2024; tensor_parallel and replica_num: \
                 microsoft/DeepSpeed-MII; its inference-v2 kernels target Ampere and later",
    },
    EngineTraits {
        name: "deepspeed",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: None,
        quantizations: &[
            native(Fp32, DEEPSPEED_ANY),
            native(Fp16, DEEPSPEED_ANY),
            native(Bf16, DEEPSPEED_ANY),
            native(Int8, &[Volta, Turing, Ampere, Ada, Hopper]),
        ],
        parallelism: &[Tensor],
        launch: None,
        uneven_heads: true,
        source: "DeepSpeed-Inference as LLM-Inference-Bench ran it (Chitty-Venkata et al., 2024, \
                 on Gaudi2); init_inference dtype and tensor_parallel: \
                 deepspeed.readthedocs.io. Its cache layout and scheduling are not modelled \
                 apart: pilot treats it as paged and next-step like the rest",
    },
    EngineTraits {
        name: "llama.cpp",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: None,
        quantizations: GGML_FORMATS,
        parallelism: &[Tensor, Pipeline],
        launch: None,
        uneven_heads: true,
        source: "one KV cache of token cells shared by the server's slots, continuous batching \
                 (--cont-batching, on by default); GGUF F32/F16/BF16/Q8_0/Q4 types (Q8_0 and \
                 Q4_K stand for int8 and int4); --split-mode row (tensor) or layer (pipeline); \
                 CUDA, HIP and SYCL backends (measured by LLM-Inference-Bench on A100, H100, \
                 GH200, MI250, MI300X, Max-1550): ggml-org/llama.cpp tools/server README",
    },
    EngineTraits {
        name: "ollama",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: None,
        quantizations: GGML_FORMATS,
        parallelism: &[Pipeline],
        launch: None,
        uneven_heads: true,
        source: "llama.cpp underneath with OLLAMA_NUM_PARALLEL slots; GGUF types; layers split \
                 across GPUs: ollama/ollama docs/faq.md",
    },
    EngineTraits {
        name: "pilot",
        aliases: &[],
        kv_cache: KvCache::Paged,
        scheduling: Scheduling::NextStep,
        batching: None,
        quantizations: &[
            native(Fp32, NVIDIA),
            native(Fp16, NVIDIA),
            native(Bf16, NVIDIA),
        ],
        parallelism: &[],
        launch: None,
        uneven_heads: false,
        source: "pilot's embedded engine (engine/): a per-sequence KV cache, an iteration-level \
                 continuous-batching scheduler, f32/bf16/f16 compute on one CUDA device (burn), \
                 /health and /metrics routes (engine/src/server.rs)",
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
    use crate::gpu::GpuCatalog;

    #[test]
    fn names_and_aliases_find_their_engine_in_any_case() {
        assert_eq!(traits("vLLM").unwrap().name, "vllm");
        assert_eq!(traits("TGIS").unwrap().name, "tgis");
        assert_eq!(traits("Text-Generation-Inference").unwrap().name, "tgi");
        for alias in ["trtllm", "TensorRT-LLM", "tensorrt_llm", "TRT-LLM"] {
            assert_eq!(traits(alias).unwrap().name, "tensorrt-llm", "{alias}");
        }
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

    /// Every entry cites its facts, lists each format once (the first match would hide a
    /// second) and runs natively only where it runs at all.
    #[test]
    fn every_entry_is_sourced_and_consistent() {
        for t in TABLE {
            assert!(
                !t.source.is_empty() && !t.quantizations.is_empty(),
                "{}",
                t.name
            );
            for (i, s) in t.quantizations.iter().enumerate() {
                assert!(
                    t.quantizations[..i]
                        .iter()
                        .all(|o| o.quantization != s.quantization),
                    "{} lists {} twice",
                    t.name,
                    s.quantization
                );
                assert!(!s.runs_on.is_empty(), "{} {}", t.name, s.quantization);
                for a in s.native_on {
                    assert!(
                        s.runs_on.contains(a),
                        "{} {} native on {a}",
                        t.name,
                        s.quantization
                    );
                }
            }
        }
    }

    /// fp4 runs natively only on Blackwell (and mxfp4 on CDNA4), weight-only through Marlin
    /// where vLLM documents it, and not at all where an engine has no kernel.
    #[test]
    fn quantization_support_follows_the_architecture() {
        let vllm = traits("vllm").unwrap();
        let sglang = traits("sglang").unwrap();
        let trt = traits("trtllm").unwrap();
        assert_eq!(trt.supports(Nvfp4, Blackwell), Ok(Kernel::Native));
        assert!(trt.supports(Nvfp4, Hopper).is_err());
        assert_eq!(vllm.supports(Nvfp4, Hopper), Ok(Kernel::WeightOnly));
        assert_eq!(vllm.supports(Nvfp4, Blackwell), Ok(Kernel::Native));
        assert_eq!(vllm.supports(Fp8, Ampere), Ok(Kernel::WeightOnly));
        assert_eq!(vllm.supports(Fp8, Hopper), Ok(Kernel::Native));
        assert_eq!(vllm.supports(Fp8, Cdna3), Ok(Kernel::Native));
        assert!(vllm.supports(Fp8, Volta).is_err());
        assert!(vllm.supports(Fp8, Cdna2).is_err());
        assert_eq!(sglang.supports(Mxfp4, Cdna4), Ok(Kernel::Native));
        assert_eq!(sglang.supports(Mxfp4, Hopper), Ok(Kernel::WeightOnly));
        assert_eq!(trt.supports(Fp8Block, Hopper), Ok(Kernel::Native));
        assert!(trt.supports(Fp8Block, Ada).is_err());
        // A gap, not a minimum: TensorRT-LLM's w4a16 kernels stop at Hopper.
        assert_eq!(trt.supports(Int4W4a16, Hopper), Ok(Kernel::Native));
        assert!(trt.supports(Int4W4a16, Blackwell).is_err());
        assert!(
            trt.supports(Bf16, Cdna3).is_err(),
            "TensorRT-LLM is NVIDIA-only"
        );
        assert_eq!(
            traits("tgi").unwrap().supports(Int8, Ampere),
            Ok(Kernel::WeightOnly)
        );
    }

    /// The error names the engine, the request, what it serves on that GPU instead and where
    /// the format would run.
    #[test]
    fn unsupported_quantization_says_what_to_do_instead() {
        let err = traits("tensorrt-llm")
            .unwrap()
            .supports(Nvfp4, Hopper)
            .unwrap_err();
        let msg = err.to_string();
        for part in [
            "tensorrt-llm",
            "nvfp4",
            "Hopper",
            "bf16",
            "fp8_block",
            "Blackwell",
        ] {
            assert!(msg.contains(part), "{part} missing from: {msg}");
        }
        assert!(!msg.contains("serves nvfp4"), "{msg}");
        match err {
            Unsupported::Quantization { served, needs, .. } => {
                assert!(served.contains(&Fp8) && !served.contains(&Nvfp4));
                assert_eq!(needs, vec![Blackwell]);
            }
            other => panic!("{other:?}"),
        }
        let none = traits("pilot")
            .unwrap()
            .supports(Int4W4a16, Hopper)
            .unwrap_err();
        assert!(none.to_string().contains("no GPU pilot knows"), "{none}");
    }

    #[test]
    fn layouts_are_checked_against_what_the_engine_runs() {
        let sglang = traits("sglang").unwrap();
        assert_eq!(
            sglang.supports_layout(&[Tensor, Expert, AttentionData]),
            Ok(())
        );
        assert_eq!(
            traits("vllm").unwrap().supports_layout(&[Disaggregated]),
            Ok(())
        );
        assert_eq!(traits("pilot").unwrap().supports_layout(&[]), Ok(()));
        let err = traits("tgi")
            .unwrap()
            .supports_layout(&[Tensor, Expert, Pipeline])
            .unwrap_err();
        assert_eq!(
            err,
            Unsupported::Layout {
                engine: "tgi",
                layout: Expert,
                supported: vec![Tensor],
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("tgi") && msg.contains("expert") && msg.contains("tensor"),
            "{msg}"
        );
        let msg = traits("pilot")
            .unwrap()
            .supports_layout(&[Tensor])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("one device only"), "{msg}");
        assert!(
            traits("tensorrt-llm")
                .unwrap()
                .supports_layout(&[Data])
                .is_err()
        );
    }

    /// Every GPU in the catalog names an architecture pilot knows, so no GPU is left out of
    /// the support checks by a spelling.
    #[test]
    fn every_catalog_gpu_has_a_known_architecture() {
        for g in GpuCatalog::builtin().all() {
            GpuArch::from_catalog(&g.architecture).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        }
        let cases = [
            ("Ampere (GA100)", Ampere),
            ("Ada Lovelace (AD102)", Ada),
            ("Hopper (Grace Hopper superchip)", Hopper),
            ("Grace Blackwell", Blackwell),
            ("Blackwell Ultra", Blackwell),
            ("CDNA 3", Cdna3),
            ("CDNA4", Cdna4),
            ("Gaudi 3", Gaudi3),
            ("Xe-HPC (Ponte Vecchio)", XeHpc),
        ];
        for (text, arch) in cases {
            assert_eq!(GpuArch::from_catalog(text), Ok(arch), "{text}");
        }
        let err = GpuArch::from_catalog("Pascal").unwrap_err().to_string();
        assert!(err.contains("Pascal") && err.contains("Hopper"), "{err}");
    }

    /// The shipped measurements ran each engine on real GPUs, in 16 bits and tensor-parallel
    /// over several: the table must allow every one of them.
    #[test]
    fn the_table_allows_every_measured_deployment() {
        let catalog = GpuCatalog::builtin();
        for file in ["llm-pilot.csv", "llm-inference-bench.csv"] {
            let path = format!(
                "{}/../datasets/predictor/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let mut reader = csv::Reader::from_path(&path).unwrap();
            let header = reader.headers().unwrap().clone();
            let col = |name: &str| header.iter().position(|h| h == name).unwrap();
            let (engine, gpu, count) = (col("engine"), col("gpu"), col("gpu_count"));
            for row in reader.records() {
                let row = row.unwrap();
                let t = traits(&row[engine]).unwrap();
                let spec = catalog.resolve(&row[gpu]).unwrap();
                let arch = GpuArch::from_catalog(&spec.architecture).unwrap();
                assert!(
                    t.supports(Fp16, arch).is_ok() || t.supports(Bf16, arch).is_ok(),
                    "{} on {}",
                    t.name,
                    spec.name
                );
                if row[count].parse::<u32>().unwrap() > 1 {
                    assert!(
                        t.spreads(Tensor) || t.spreads(Pipeline),
                        "{} over {} GPUs",
                        t.name,
                        &row[count]
                    );
                }
            }
        }
    }

    /// vLLM and TensorRT-LLM put waiting prompts into decode steps; SGLang runs prefills as
    /// steps of their own; the token budgets follow the engines' memory tiers.
    #[test]
    fn batching_says_whether_decode_steps_carry_prefill() {
        let b = |name| traits(name).unwrap().batching.unwrap();
        assert!(b("vllm").decode_steps_carry_prefill() && b("vllm").chunked_prefill);
        assert!(
            b("tensorrt-llm").decode_steps_carry_prefill() && !b("tensorrt-llm").chunked_prefill
        );
        assert!(!b("sglang").decode_steps_carry_prefill());
        assert!(traits("tgis").unwrap().batching.is_none());

        let vllm = b("vllm");
        let h100 = vllm.defaults_for(Gigabytes(80.0), Hopper).unwrap();
        assert_eq!(
            (h100.token_budget, h100.max_sequences),
            (Tokens(8192), Some(1024))
        );
        // An 80 GB A100 keeps the small defaults: vLLM found the large ones slower there.
        let a100 = vllm.defaults_for(Gigabytes(80.0), Ampere).unwrap();
        assert_eq!(
            (a100.token_budget, a100.max_sequences),
            (Tokens(2048), Some(256))
        );
        let l4 = vllm.defaults_for(Gigabytes(24.0), Ada).unwrap();
        assert_eq!(l4.max_sequences, Some(256));

        let sglang = b("sglang");
        let budget = |gb, arch| {
            sglang
                .defaults_for(Gigabytes(gb), arch)
                .unwrap()
                .token_budget
        };
        assert_eq!(budget(180.0, Blackwell), Tokens(16384));
        assert_eq!(budget(141.0, Hopper), Tokens(8192));
        assert_eq!(budget(80.0, Hopper), Tokens(8192));
        assert_eq!(budget(40.0, Ampere), Tokens(4096));
        assert_eq!(budget(24.0, Ada), Tokens(2048));
        assert!(
            b("deepspeed-mii")
                .defaults_for(Gigabytes(80.0), Ampere)
                .is_none()
        );
    }

    /// What issue 15 needs to write a launch command for each of the three stacks.
    #[test]
    fn the_three_stacks_say_how_they_are_launched() {
        let launch = |name| traits(name).unwrap().launch.unwrap();
        assert_eq!(launch("vllm").program, "vllm serve");
        assert_eq!(launch("sglang").program, "python -m sglang.launch_server");
        assert_eq!(launch("trtllm").program, "trtllm-serve");
        for name in ["vllm", "sglang", "tensorrt-llm"] {
            let l = launch(name);
            for (what, flag) in [
                ("tp", l.tensor_parallel),
                ("pp", l.pipeline_parallel),
                ("ep", l.expert_parallel),
                ("attention dp", l.attention_dp),
                ("max sequences", l.max_sequences),
                ("max model length", l.max_model_len),
                ("kv dtype", l.kv_cache_dtype),
            ] {
                assert!(flag.is_some(), "{name} has no {what} flag");
            }
            assert_eq!(l.health, Some("/health"), "{name}");
            // A layout the launch can express is one the table says the engine runs.
            assert!(
                traits(name)
                    .unwrap()
                    .supports_layout(&[Tensor, Pipeline, Expert, AttentionData])
                    .is_ok()
            );
        }
        assert_eq!(
            launch("sglang").attention_dp,
            Some(Flag::SwitchAndValue("--enable-dp-attention", "--dp-size"))
        );
        assert!(matches!(
            launch("trtllm").attention_dp,
            Some(Flag::ConfigKey { .. })
        ));
        assert_eq!(
            launch("vllm").expert_parallel,
            Some(Flag::Switch("--enable-expert-parallel"))
        );
    }
}

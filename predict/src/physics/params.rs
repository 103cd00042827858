//! The physics model's constants: typical published efficiencies and engine defaults, each with
//! its reason, kept apart so that the model's arithmetic reads without them.

/// The physics model's constants. Defaults are typical published efficiencies, not fits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhysicsParams {
    /// Fraction of peak memory bandwidth a decode step achieves (GEMV kernels reach 70-85%).
    pub mem_efficiency: f64,
    /// Model-FLOPs utilisation of prefill (large GEMMs: 40-60% of dense peak).
    pub mfu_prefill: f64,
    /// Utilisation of the compute peak in a decode step (small, skinny GEMMs).
    pub mfu_decode: f64,
    /// Fixed time per engine step (scheduling, sampling, detokenisation), ms.
    pub step_overhead_ms: f64,
    /// Fixed time per request before its prefill (HTTP/gRPC, tokenisation, admission), ms.
    pub request_overhead_ms: f64,
    /// Fixed time per layer per step (kernel launches, norms, rotary), ms.
    pub layer_overhead_ms: f64,
    /// Latency of one all-reduce over NVLink-class links, ms.
    pub allreduce_latency_nvlink_ms: f64,
    /// Latency of one all-reduce over PCIe, ms.
    pub allreduce_latency_pcie_ms: f64,
    /// Fraction of device memory the engine may use (vLLM's gpu_memory_utilization is 0.9;
    /// TGI/TGIS fill the memory left after a warm-up, closer to 0.95).
    pub memory_utilization: f64,
    /// Memory per GPU taken by the runtime (CUDA context, workspaces), GB.
    pub runtime_overhead_gb: f64,
    /// Tokens the engine sizes its activation buffers for (a prefill chunk).
    pub activation_tokens: f64,
    /// Most sequences an engine batches (vLLM's max_num_seqs default).
    pub max_sequences: u32,
    /// Log-normal width of TTFT / E2E across requests (percentile spread).
    pub length_sigma: f64,
    /// Share of the other in-flight requests' prefills a new closed-loop request waits for
    /// before its own behind a TGI-style router (see [`Scenario::tgi_router`]; 1: all, as when
    /// the router holds arrivals and prefills them as one batch). Measured TGIS TTFT grows
    /// about linearly with users long before the KV cache is full, which a model without this
    /// queue misses by 5-10x at 64 users.
    #[serde(default = "default_prefill_queue_share")]
    pub prefill_queue_share: f64,
    /// The same share for a continuous-batching engine without such a router (vLLM, SGLang,
    /// TensorRT-LLM). In a steady stream of requests of varied lengths a prompt waits for
    /// none (0, the default). Benchmarks whose users all start at once with fixed prompt and
    /// output lengths keep them partly in step, so prompts arrive in bursts and wait for each
    /// other: AIConfigurator's measured TTFTs grow about linearly with concurrency, a tenth to
    /// a fifth of the other users' prefills at a time. Calibration fits it per engine
    /// ([`crate::calibrate`]).
    #[serde(default)]
    pub burst_queue_share: f64,
    /// Prompt tokens a padded batch computes per real prompt token (prompts run at the batch's
    /// longest length; see [`Scenario::padded_batching`]).
    #[serde(default = "default_padded_token_factor")]
    pub padded_token_factor: f64,
    /// KV-cache tokens a padded engine reserves per sequence: without paging it allocates the
    /// longest sequence it admits (capped by the model's context), whatever the request needs.
    /// TGI/TGIS default to 2048 (`--max-total-tokens`, `MAX_SEQUENCE_LENGTH`).
    #[serde(default = "default_padded_sequence_tokens")]
    pub padded_sequence_tokens: f64,
    /// Host time per sequence per decode step (sampling, stop checks, detokenisation, stream
    /// bookkeeping), ms: it makes a step grow with the batch even where the GPU does not.
    /// (TGIS 2023 runs this in Python and measures nearer 0.3-0.7 ms per user on an H100, but
    /// a TGIS-specific value here leaves the trained predictor's held-out ITL error higher,
    /// 21.9% against 19.3% MAPE: the trees correct TGIS better from the generic step.)
    #[serde(default = "default_sequence_overhead_ms")]
    pub sequence_overhead_ms: f64,
    /// Host time per decoder layer per decode step of a padded engine, ms: without flash
    /// attention TGI/TGIS run the architecture's eager Transformers modules, a dozen unfused
    /// kernel launches per layer (three attention blocks in a T5 decoder layer) for one token's
    /// work. Measured at one user, flan-t5-xl (24 decoder layers, 3B) steps in 15 ms on an H100
    /// where its bytes take 5 ms, and flan-t5-xxl (24 layers, 11B) in the same 15 ms.
    #[serde(default = "default_padded_layer_overhead_ms")]
    pub padded_layer_overhead_ms: f64,
    /// Copies of a padded batch's KV cache held at its peak. Without paging, the cache is one
    /// padded tensor per layer, rebuilt whole when a request joins (TGI/TGIS `concatenate`) or
    /// leaves (`filter`): the old and the new tensors coexist, so a server sized not to run out
    /// of memory admits half the sequences one copy would allow. In LLM-Pilot's TGIS runs, the
    /// padded LLMs that plateau (26 LLM x GPU profiles) decode a median 0.45 of the one-copy
    /// budget at once (Little's law on throughput and latencies), with 0.12 to 0.91 between
    /// profiles whose batch weights LLM-Pilot tuned.
    #[serde(default = "default_padded_kv_copies")]
    pub padded_kv_copies: f64,
    /// Per-GPU scale-out (inter-node) bandwidth, GB/s, one direction: what a tensor- or
    /// expert-parallel group wider than the GPU's NVLink domain, and a KV cache sent from a
    /// prefill to a decode worker in another domain, move data at. The GPU catalog has no
    /// network column; HGX H100/H200/B200 reference designs pair each GPU with one 400 Gb/s
    /// InfiniBand or RoCE NIC (ConnectX-7), i.e. 50 GB/s, a ninth of H100's NVLink.
    #[serde(default = "default_network_bandwidth_gbps")]
    pub network_bandwidth_gbps: f64,
    /// Latency of one collective phase (or one KV hand-off) over the scale-out network, ms:
    /// NCCL's inter-node all-reduce and all-to-all latency for small messages is tens of µs
    /// (RDMA round trips plus proxy threads), a few times NVLink's.
    #[serde(default = "default_network_latency_ms")]
    pub network_latency_ms: f64,
}

fn default_network_bandwidth_gbps() -> f64 {
    50.0
}

fn default_network_latency_ms() -> f64 {
    0.025
}

fn default_padded_kv_copies() -> f64 {
    2.0
}

fn default_padded_layer_overhead_ms() -> f64 {
    0.2
}

fn default_sequence_overhead_ms() -> f64 {
    0.03
}

fn default_padded_sequence_tokens() -> f64 {
    2048.0
}

fn default_prefill_queue_share() -> f64 {
    0.5
}

fn default_padded_token_factor() -> f64 {
    2.0
}

impl Default for PhysicsParams {
    fn default() -> Self {
        PhysicsParams {
            mem_efficiency: 0.75,
            mfu_prefill: 0.5,
            mfu_decode: 0.4,
            step_overhead_ms: 2.0,
            request_overhead_ms: 30.0,
            layer_overhead_ms: 0.03,
            allreduce_latency_nvlink_ms: 0.01,
            allreduce_latency_pcie_ms: 0.03,
            memory_utilization: 0.95,
            runtime_overhead_gb: 1.0,
            activation_tokens: 4096.0,
            max_sequences: 256,
            length_sigma: 0.5,
            prefill_queue_share: default_prefill_queue_share(),
            burst_queue_share: 0.0,
            padded_token_factor: default_padded_token_factor(),
            padded_sequence_tokens: default_padded_sequence_tokens(),
            sequence_overhead_ms: default_sequence_overhead_ms(),
            padded_layer_overhead_ms: default_padded_layer_overhead_ms(),
            padded_kv_copies: default_padded_kv_copies(),
            network_bandwidth_gbps: default_network_bandwidth_gbps(),
            network_latency_ms: default_network_latency_ms(),
        }
    }
}

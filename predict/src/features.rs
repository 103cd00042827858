//! The feature vector of a scenario: architecture, hardware, engine, workload and (optionally)
//! the physics model's estimate and its parts.
//!
//! Sizes, rates and times enter as logarithms: the trees then split on ratios, and the
//! physics features (dimensionless fractions and log-times) let a correction learned on a
//! 7B model on an A100 apply to a 70B model on an H100 with the same compute-to-memory
//! balance.

use crate::physics::Estimate;
use crate::scenario::{Load, Scenario};
use pilot_core::layout::Serving;
use pilot_core::llm::AttentionKind;

/// Engines with a one-hot column, names from the engine table ([`pilot_core::engine::TABLE`]);
/// any other engine (or none) has all zeros. This list stays apart from the table because its
/// order and contents are the shipped predictor's feature order: a new engine in the table
/// gets a column only when a predictor is retrained with one.
pub const ENGINES: [&str; 6] = [
    "tgis",
    "vllm",
    "tensorrt-llm",
    "deepspeed-mii",
    "llama.cpp",
    "sglang",
];

/// Names of the features without physics, in vector order. The vendor columns stand for
/// software stacks (CUDA, ROCm, oneAPI), which reach different fractions of the same peaks:
/// without them a held-out MI250 borrows Max-1550's vLLM efficiency (equal memory and
/// bandwidth, a tenth of the physics) instead of MI300X's.
pub fn base_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "mode_open",
        "mode_offline",
        "log_load",
        "log_input_tokens",
        "log_output_tokens",
        "log_params_total",
        "log_params_active",
        "is_moe",
        "is_encoder_decoder",
        "layers",
        "log_hidden",
        "kv_heads_over_heads",
        "log_kv_bytes_per_token",
        "weight_bytes_per_param",
        "log_memory_bandwidth",
        "log_peak_tflops",
        "log_memory_gb",
        "log_link_bandwidth",
        "gpu_count",
        "is_pcie",
        "is_nvidia",
        "is_amd",
        "is_intel",
        "padded_batching",
        "is_mla",
        "log_experts",
        "log_experts_per_token",
        "kv_bytes_per_value",
        "log_tensor_parallel",
        "log_pipeline_parallel",
        "log_expert_parallel",
        "log_attention_dp",
        "disaggregated",
        "prefill_gpu_fraction",
        "log_users_per_attention_rank",
    ]
    .map(String::from)
    .to_vec();
    v.extend(ENGINES.iter().map(|e| format!("engine_{e}")));
    v
}

/// Names of the physics features, appended after [`base_names`] when physics is used.
pub fn physics_names() -> Vec<String> {
    [
        "phys_log_decode_step_ms",
        "phys_log_decode_step1_ms",
        "phys_log_prefill_ms",
        "phys_log_max_batch",
        "phys_log_in_flight",
        "phys_log_load_ratio",
        "phys_comm_fraction",
        "phys_overhead_fraction",
        "phys_log_compute_to_memory",
        "phys_weight_memory_fraction",
        "phys_prefill_gap_fraction",
        "phys_log_ttft_ms",
        "phys_log_itl_ms",
        "phys_log_e2e_ms",
        "phys_log_burst_prefill_ms",
    ]
    .map(String::from)
    .to_vec()
}

fn ln(x: f64) -> f64 {
    x.max(1e-12).ln()
}

/// Appends the feature vector of `s` to `out` (with the physics block when `e` is given).
pub fn push(out: &mut Vec<f64>, s: &Scenario, e: Option<&Estimate>) {
    let m = &s.model;
    let g = &s.gpu;
    let engine = s.engine.as_deref().unwrap_or("");
    let decode = s.serving.decode_layout();
    // Where a disaggregated deployment puts its GPUs, and over how many decode workers its
    // users spread (an aggregated deployment is one worker doing both).
    let (prefill_gpu_fraction, decode_workers) = match s.serving {
        Serving::Aggregated(_) => (0.0, 1.0),
        Serving::Disaggregated { prefill, decode } => (
            f64::from(prefill.gpus()) / f64::from(prefill.gpus() + decode.gpus()).max(1.0),
            f64::from(decode.count()),
        ),
    };
    out.extend([
        matches!(s.load, Load::Rate(_)) as u8 as f64,
        matches!(s.load, Load::Batch(_)) as u8 as f64,
        ln(s.load.level()),
        ln(s.input_tokens.0 as f64),
        ln(s.output_tokens.0 as f64),
        ln(m.params_total().0),
        ln(m.params_active().0),
        (m.experts > 1) as u8 as f64,
        m.encoder_decoder as u8 as f64,
        (m.layers + m.encoder_layers) as f64,
        ln(m.hidden as f64),
        m.kv_heads / m.heads.max(1) as f64,
        ln(m.kv_cache_bytes_per_token(s.kv_dtype()).0),
        s.quantization.storage().bytes(),
        ln(g.memory_bandwidth.0),
        ln(g.peak_for(s.quantization)
            .or(g.peak(pilot_core::units::Dtype::F16))
            .map_or(1.0, |t| t.0)),
        ln(g.memory.0),
        ln(g.intra_node_bandwidth.0),
        s.gpu_count as f64,
        g.is_pcie_card() as u8 as f64,
        (g.vendor == "NVIDIA") as u8 as f64,
        (g.vendor == "AMD") as u8 as f64,
        (g.vendor == "Intel") as u8 as f64,
        s.padded_batching() as u8 as f64,
        (m.attention_kind() == AttentionKind::Mla) as u8 as f64,
        ln(m.experts.max(1) as f64),
        ln(m.experts_per_token.max(1) as f64),
        s.kv_dtype().bytes(),
        ln(f64::from(decode.tensor())),
        ln(f64::from(decode.pipeline())),
        ln(f64::from(decode.expert())),
        ln(f64::from(decode.attention_dp())),
        s.serving.is_disaggregated() as u8 as f64,
        prefill_gpu_fraction,
        ln(s.load.level() / (decode_workers * f64::from(decode.attention_dp()))),
    ]);
    out.extend(
        ENGINES
            .iter()
            .map(|x| (engine.eq_ignore_ascii_case(x)) as u8 as f64),
    );
    if let Some(e) = e {
        out.extend([
            ln(e.decode_step_ms),
            ln(e.decode_step1_ms),
            ln(e.prefill_ms),
            ln(e.max_batch),
            ln(e.in_flight),
            ln(e.load_ratio),
            e.comm_fraction,
            e.overhead_fraction,
            ln(e.compute_to_memory),
            e.weight_memory_fraction,
            e.prefill_gap_fraction,
            ln(e.ttft_ms),
            ln(e.itl_mean_ms),
            ln(e.e2e_ms),
            // Every in-flight request's prompt prefilled as one batch: where a benchmark's
            // users start together and keep in step (fixed lengths), TTFT lies between one
            // prefill and this, and grows with it.
            ln(e.wave_prefill_ms),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-hot engines are canonical names in the engine table, so none is refused as
    /// unknown and none is an alias (a row labelled with the alias would miss the column).
    #[test]
    fn one_hot_engines_are_in_the_engine_table() {
        for e in ENGINES {
            let t = pilot_core::engine::traits(e);
            assert_eq!(t.map(|t| t.name), Some(e), "{e}");
        }
    }
}

//! `cargo bench -p pilot-recommend`: one `recommend` call over the whole GPU catalog with the
//! physics model and the shipped predictor, under 200 closed-loop users and under 20
//! requests/s (open loop: answered through the corrected closed loop, several predictions per
//! rate):
//! - Mistral-7B, fp16/fp8/int4, workers of 1..8 GPUs, KV default or fp8, aggregated and
//!   disaggregated, for vLLM and TGIS (TGIS: tensor parallelism only);
//! - DeepSeek-V3 (MoE, MLA), fp8-block/nvfp4, workers of 1..16 GPUs with expert, attention-DP
//!   and pipeline layouts, aggregated and disaggregated, vLLM + SGLang + TensorRT-LLM in one
//!   call: today's whole space.
//!
//! Target: under 300 ms per call.

use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::price::PriceCatalog;
use pilot_core::quant::Quantization;
use pilot_core::slo::parse_slo;
use pilot_core::units::{RequestsPerSec, Tokens};
use pilot_predict::{LatencyModel, Load, PhysicsModel, Predictor};
use pilot_recommend::space::ServingModes;
use pilot_recommend::{Margin, RecommendOptions, recommend};
use std::time::Instant;

fn main() {
    let opts = RecommendOptions {
        model: ModelCatalog::builtin().resolve("mistral-7b").unwrap(),
        slos: vec![
            parse_slo("ttft=200ms").unwrap(),
            parse_slo("itl=50ms").unwrap(),
        ],
        demand: Load::Users(200),
        input_tokens: Tokens(512),
        output_tokens: Tokens(256),
        gpus: GpuCatalog::builtin().all().to_vec(),
        max_gpus: 8,
        quantizations: vec![
            Quantization::Fp16,
            Quantization::Fp8,
            Quantization::Int4W4a16,
        ],
        kv_caches: vec![],
        serving: ServingModes::Both,
        engines: vec![None],
        cloud: None,
        spot: false,
        margin: Margin::Upper,
        explain: false,
    };
    let physics = PhysicsModel::default();
    let shipped = Predictor::shipped().expect("shipped predictor");
    let today = RecommendOptions {
        model: ModelCatalog::builtin()
            .resolve("deepseek-ai/DeepSeek-V3")
            .unwrap(),
        max_gpus: 16,
        quantizations: vec![Quantization::Fp8Block, Quantization::Nvfp4],
        input_tokens: Tokens(4096),
        output_tokens: Tokens(1024),
        slos: vec![
            parse_slo("ttft=2s").unwrap(),
            parse_slo("itl=50ms").unwrap(),
        ],
        ..opts.clone()
    };
    let all = "vllm,sglang,tensorrt-llm";
    let runs: [(&str, &dyn LatencyModel, &str, &RecommendOptions); 5] = [
        ("physics", &physics, "vllm", &opts),
        ("shipped predictor", shipped, "vllm", &opts),
        ("shipped predictor", shipped, "tgis", &opts),
        ("physics", &physics, all, &today),
        ("shipped predictor", shipped, all, &today),
    ];
    println!(
        "| LLM | model | engine | demand | candidates | feasible | ms per call (median of 5) |"
    );
    println!("|---|---|---|---|---|---|---|");
    // `cargo bench -p pilot-recommend -- WORD...`: only the cases whose row contains every
    // word (e.g. `DeepSeek req/s shipped`).
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for demand in [Load::Users(200), Load::Rate(RequestsPerSec(20.0))] {
        for (name, model, engine, base) in runs {
            let row = format!("{} {name} {engine} {}", base.model.id, demand.demand_text());
            if !words.iter().all(|w| row.contains(w.as_str())) {
                continue;
            }
            let opts = RecommendOptions {
                engines: engine.split(',').map(|e| Some(e.to_string())).collect(),
                demand,
                ..base.clone()
            };
            let mut times = Vec::new();
            let mut n = (0, 0);
            for _ in 0..5 {
                let t = Instant::now();
                let rec = recommend(&opts, model, PriceCatalog::builtin()).unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                n = (rec.candidates.len(), rec.feasible().count());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| {} | {name} | {engine} | {} | {} | {} | {:.1} |",
                opts.model.id,
                demand.demand_text(),
                n.0,
                n.1,
                times[2]
            );
        }
    }
}

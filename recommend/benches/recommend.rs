//! `cargo bench -p pilot-recommend`: one `recommend` call over the whole GPU catalog (every
//! priced GPU x TP 1..8 x fp16/fp8/int4) with the physics model and the shipped predictor,
//! for vLLM (the default: calibrated physics, no closed-loop corrections) and TGIS (physics +
//! trained corrections, the costlier path), under 200 closed-loop users and under 20
//! requests/s (open loop: TGIS answers rates through its corrected closed loop, several
//! predictions per rate). Target: under 300 ms.

use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::price::PriceCatalog;
use pilot_core::slo::parse_slo;
use pilot_core::units::{Dtype, RequestsPerSec, Tokens};
use pilot_predict::{LatencyModel, Load, PhysicsModel, Predictor};
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
        quantizations: vec![Dtype::F16, Dtype::Fp8, Dtype::Int4],
        engines: vec![None],
        cloud: None,
        spot: false,
        margin: Margin::Upper,
        explain: false,
    };
    let physics = PhysicsModel::default();
    let shipped = Predictor::shipped().expect("shipped predictor");
    let runs: [(&str, &dyn LatencyModel, &str); 3] = [
        ("physics", &physics, "vllm"),
        ("shipped predictor", shipped, "vllm"),
        ("shipped predictor", shipped, "tgis"),
    ];
    println!("| model | engine | demand | candidates | feasible | ms per call (median of 5) |");
    println!("|---|---|---|---|---|---|");
    for demand in [Load::Users(200), Load::Rate(RequestsPerSec(20.0))] {
        for (name, model, engine) in runs {
            let opts = RecommendOptions {
                engines: vec![Some(engine.to_string())],
                demand,
                ..opts.clone()
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
                "| {name} | {engine} | {} | {} | {} | {:.1} |",
                demand.demand_text(),
                n.0,
                n.1,
                times[2]
            );
        }
    }
}

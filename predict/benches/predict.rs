//! Benchmarks (harness = false): training every target on the three public datasets
//! (LLM-Pilot, LLM-Inference-Bench, AIConfigurator), and 10,000 scenario predictions with the
//! trained predictor and with physics alone, today's MoE/MLA models and GPUs among them.
//! Prints a table.
//!
//! Needs the imported datasets beside the shipped predictor (`datasets/predictor/*.csv`; see
//! datasets/README.md). Run: `cargo bench -p pilot-predict --bench predict`.
use pilot_core::units::{RequestsPerSec, Tokens};
use pilot_predict::commands::read_datasets;
use pilot_predict::scenario::Resolver;
use pilot_predict::{LatencyModel, Load, PhysicsModel, Scenario, TrainOptions, train};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor");
    let data = [
        root.join("llm-pilot.csv"),
        root.join("llm-inference-bench.csv"),
        root.join("aiconfigurator.csv"),
    ];
    let rows = read_datasets(&data).expect("run the import step of datasets/README.md first");
    let mut table = vec![];

    let t = Instant::now();
    let p = train(&rows, &TrainOptions::default()).expect("training");
    table.push((
        format!(
            "train {} targets on {} rows (with conformal folds)",
            p.targets.len(),
            rows.len()
        ),
        t.elapsed().as_secs_f64(),
        60.0,
    ));

    let mut r = Resolver::default();
    let models = [
        "llama-2-7b",
        "llama-2-13b",
        "llama-2-70b",
        "mistral-7b",
        "mixtral-8x7b",
        "llama-3-8b",
        "qwen2-72b",
        "flan-t5-xl",
        "deepseek-ai/DeepSeek-V3",
        "Qwen/Qwen3-32B",
        "Qwen/Qwen3-235B-A22B",
    ];
    let gpus = [
        "A10",
        "L4",
        "A100-SXM-80GB",
        "H100",
        "H200-SXM-141GB",
        "MI300X",
        "T4",
        "L40S",
        "b200_sxm",
        "gb300",
    ];
    let mut scen = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let m = r.model(models[i % models.len()]).unwrap();
        let g = r.gpu(gpus[(i / models.len()) % gpus.len()]).unwrap();
        let load = match i % 3 {
            0 => Load::Users(1 << (i % 8)),
            1 => Load::Batch(1 << (i % 7)),
            _ => Load::Rate(RequestsPerSec(0.5 * (1 + i % 16) as f64)),
        };
        let mut s = Scenario::new(
            m,
            g,
            1 << (i % 4),
            load,
            Tokens(128 << (i % 4)),
            Tokens(64 << (i % 5)),
        );
        s.engine = Some(["vllm", "tgis", "tensorrt-llm", "sglang"][i % 4].into());
        scen.push(s);
    }
    let t = Instant::now();
    let out = p.predict_many(&scen);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), 10_000);
    table.push((
        "10,000 scenario predictions (trained predictor)".into(),
        secs,
        1.0,
    ));
    let phys = PhysicsModel::default();
    let t = Instant::now();
    let out = phys.predict_many(&scen);
    table.push((
        "10,000 scenario predictions (physics only)".into(),
        t.elapsed().as_secs_f64(),
        1.0,
    ));
    assert_eq!(out.len(), 10_000);

    println!("{:<62} {:>10} {:>10}", "benchmark", "seconds", "target s");
    for (name, s, target) in table {
        println!(
            "{name:<62} {s:>10.3} {target:>10.1}{}",
            if s <= target { "" } else { "  MISSED" }
        );
    }
}

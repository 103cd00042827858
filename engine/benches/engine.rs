//! Engine throughput on the CPU for `small-llama` (random weights, f32): prefill tokens/s and
//! decode tokens/s at batch 1 and 32, straight on the model, plus the whole engine (scheduler
//! included) serving 32 concurrent requests. `cargo bench -p pilot-engine`.

use std::time::Instant;

use pilot_core::units::Dtype;
use pilot_engine::config::{ModelConfig, resolve_model};
use pilot_engine::model::{BatchEntry, KvCache, Logits, Transformer, logits_to_rows};
use pilot_engine::weights::random_weights;
use pilot_engine::{Engine, EngineDevice, EngineOptions, SamplingParams};

const MODEL: &str = "small-llama";

fn prefill(model: &Transformer, caches: &mut [KvCache], tokens: &[u32]) {
    let mut batch: Vec<BatchEntry> = caches
        .iter_mut()
        .map(|cache| BatchEntry {
            tokens,
            cache,
            logits: Logits::Last,
        })
        .collect();
    logits_to_rows(model.forward(&mut batch).expect("logits"));
}

fn main() {
    let (_, json) = resolve_model(MODEL).expect("small-llama is in the model catalog");
    let config = ModelConfig::from_hf_json(&json, MODEL).expect("config");
    let t = Instant::now();
    let weights = random_weights(&config, 0);
    let device = EngineDevice::Cpu.burn_device().expect("cpu");
    let model = Transformer::new(config.clone(), &weights, &device, Dtype::F32).expect("model");
    drop(weights);
    let params: usize = 2 * config.vocab_size * config.hidden_size
        + config.num_layers
            * (config.hidden_size * (config.qkv_size() + config.num_heads * config.head_dim)
                + 3 * config.hidden_size * config.intermediate_size);
    println!(
        "{MODEL}: hidden {}, {} layers, {} heads / {} kv heads, intermediate {}, vocab {} \
         ({:.1}M parameters, f32, cpu/flex, {} threads); built in {:.1?}",
        config.hidden_size,
        config.num_layers,
        config.num_heads,
        config.num_kv_heads,
        config.intermediate_size,
        config.vocab_size,
        params as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        t.elapsed()
    );
    println!("{:<44} {:>12} {:>14}", "measurement", "tokens", "tokens/s");

    let prompt: Vec<u32> = (0..512)
        .map(|i| (i * 7 + 3) % config.vocab_size as u32)
        .collect();
    prefill(&model, &mut [KvCache::new()], &prompt[..32]); // warm-up
    for (batch, len) in [(1, 512), (4, 512)] {
        let mut caches: Vec<KvCache> = (0..batch).map(|_| KvCache::new()).collect();
        let t = Instant::now();
        prefill(&model, &mut caches, &prompt[..len]);
        let tokens = batch * len;
        let rate = tokens as f64 / t.elapsed().as_secs_f64();
        println!(
            "{:<44} {tokens:>12} {rate:>14.1}",
            format!("prefill {batch} x {len} tokens")
        );
    }

    let context = 128;
    let steps = 16;
    for batch in [1, 32] {
        let mut caches: Vec<KvCache> = (0..batch).map(|_| KvCache::new()).collect();
        prefill(&model, &mut caches, &prompt[..context]);
        let next = [5u32];
        let t = Instant::now();
        for _ in 0..steps {
            let mut entries: Vec<BatchEntry> = caches
                .iter_mut()
                .map(|cache| BatchEntry {
                    tokens: &next,
                    cache,
                    logits: Logits::Last,
                })
                .collect();
            logits_to_rows(model.forward(&mut entries).expect("logits"));
        }
        let tokens = batch * steps;
        let rate = tokens as f64 / t.elapsed().as_secs_f64();
        println!(
            "{:<44} {tokens:>12} {rate:>14.1}",
            format!("decode batch {batch} (context {context}, {steps} steps)")
        );
    }
    drop(model);

    // The whole engine: 32 requests at once through the scheduler.
    let engine = Engine::start(EngineOptions {
        model: MODEL.to_string(),
        max_batch: 32,
        ..Default::default()
    })
    .expect("engine");
    let (n, prompt_len, out) = (32, 128, 32);
    let t = Instant::now();
    let mut streams: Vec<_> = (0..n)
        .map(|i| {
            let p: Vec<u32> = (0..prompt_len)
                .map(|j| ((i * 131 + j) % 32000) as u32)
                .collect();
            engine
                .submit(p, SamplingParams::greedy(out))
                .expect("submit")
        })
        .collect();
    for s in &mut streams {
        pilot_engine::engine::collect_blocking(s).expect("generation");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<44} {:>12} {:>14.1}",
        format!("engine: {n} requests x ({prompt_len} in, {out} out)"),
        n * out,
        (n * out) as f64 / secs
    );
    println!(
        "  (max batch observed {}, {:.2} s wall)",
        engine.stats().max_running_observed,
        secs
    );
}

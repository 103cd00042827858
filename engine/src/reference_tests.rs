//! Correctness of the burn transformer against an independent naive implementation (plain f64
//! loops over the same HF-named weights), KV-cache decoding against full recomputation, and
//! the engine's outputs against batch composition and preemption.

use burn::tensor::Device;

use crate::config::{BUILTIN_CONFIGS, ModelConfig};
use crate::engine::{Engine, EngineOptions, FinishReason, collect_blocking};
use crate::model::{BatchEntry, KvCache, Logits, Transformer, logits_to_rows};
use crate::sampling::SamplingParams;
use crate::weights::{WeightMap, random_weights};
use pilot_core::units::Dtype;

fn config(name: &str) -> ModelConfig {
    let json = BUILTIN_CONFIGS.iter().find(|(n, _)| *n == name).unwrap().1;
    ModelConfig::from_hf_json(json, name).unwrap()
}

/// A Qwen2-style config: Llama with q/k/v biases, 1 kv head (GQA group 4), odd sizes.
fn biased_llama() -> ModelConfig {
    ModelConfig::from_hf_json(
        r#"{"model_type":"qwen2","hidden_size":48,"intermediate_size":80,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":1,"vocab_size":97,
            "max_position_embeddings":64,"rms_norm_eps":1e-6,"rope_theta":1000.0}"#,
        "qwen2-inline",
    )
    .unwrap()
}

// ---------- the naive reference: vectors, loops, f64 ----------

struct Ref<'a> {
    w: &'a WeightMap,
}

impl Ref<'_> {
    fn t(&self, name: &str) -> Vec<f64> {
        self.w[name].data.iter().map(|&x| x as f64).collect()
    }
    /// `W x` for an HF `nn.Linear` weight `[out, in]`.
    fn linear(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let t = &self.w[name];
        let (out, inp) = (t.shape[0], t.shape[1]);
        (0..out)
            .map(|o| (0..inp).map(|i| t.data[o * inp + i] as f64 * x[i]).sum())
            .collect()
    }
    /// `x W` for a GPT-2 `Conv1D` weight `[in, out]`.
    fn conv1d(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let t = &self.w[name];
        let (inp, out) = (t.shape[0], t.shape[1]);
        (0..out)
            .map(|o| (0..inp).map(|i| t.data[i * out + o] as f64 * x[i]).sum())
            .collect()
    }
}

fn add(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
}

fn layer_norm(x: &[f64], w: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .zip(w)
        .zip(b)
        .map(|((v, g), b)| (v - mean) / (var + eps).sqrt() * g + b)
        .collect()
}

/// HF `apply_rotary_pos_emb` with `rotate_half`, on one head vector at `pos`.
fn rope(x: &mut [f64], pos: usize, theta: f64) {
    let d = x.len();
    for j in 0..d / 2 {
        let angle = pos as f64 * theta.powf(-2.0 * j as f64 / d as f64);
        let (c, s) = (angle.cos(), angle.sin());
        let (a, b) = (x[j], x[j + d / 2]);
        x[j] = a * c - b * s;
        x[j + d / 2] = b * c + a * s;
    }
}

/// Causal attention of every position; `q[t]` has `heads * hd`, `k[t]`, `v[t]` `kv_heads * hd`.
fn attention(
    q: &[Vec<f64>],
    k: &[Vec<f64>],
    v: &[Vec<f64>],
    heads: usize,
    kv_heads: usize,
    hd: usize,
) -> Vec<Vec<f64>> {
    let group = heads / kv_heads;
    (0..q.len())
        .map(|t| {
            let mut out = vec![0.0; heads * hd];
            for h in 0..heads {
                let kvh = h / group;
                let qh = &q[t][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=t)
                    .map(|j| {
                        let kj = &k[j][kvh * hd..(kvh + 1) * hd];
                        qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (j, e) in exps.iter().enumerate() {
                    for d in 0..hd {
                        out[h * hd + d] += e / total * v[j][kvh * hd + d];
                    }
                }
            }
            out
        })
        .collect()
}

fn naive_llama(c: &ModelConfig, w: &WeightMap, tokens: &[u32]) -> Vec<Vec<f64>> {
    let r = Ref { w };
    let (h, hd) = (c.hidden_size, c.head_dim);
    let embed = r.t("model.embed_tokens.weight");
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| embed[t as usize * h..(t as usize + 1) * h].to_vec())
        .collect();
    for l in 0..c.num_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let (mut qs, mut ks, mut vs) = (vec![], vec![], vec![]);
        for (pos, xt) in x.iter().enumerate() {
            let xn = rms_norm(xt, &r.t(&p("input_layernorm.weight")), c.norm_eps);
            let mut q = r.linear(&p("self_attn.q_proj.weight"), &xn);
            let mut k = r.linear(&p("self_attn.k_proj.weight"), &xn);
            let mut v = r.linear(&p("self_attn.v_proj.weight"), &xn);
            if c.attention_bias {
                add(&mut q, &r.t(&p("self_attn.q_proj.bias")));
                add(&mut k, &r.t(&p("self_attn.k_proj.bias")));
                add(&mut v, &r.t(&p("self_attn.v_proj.bias")));
            }
            q.chunks_mut(hd)
                .for_each(|head| rope(head, pos, c.rope_theta));
            k.chunks_mut(hd)
                .for_each(|head| rope(head, pos, c.rope_theta));
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        let attn = attention(&qs, &ks, &vs, c.num_heads, c.num_kv_heads, hd);
        for (xt, a) in x.iter_mut().zip(&attn) {
            add(xt, &r.linear(&p("self_attn.o_proj.weight"), a));
            let xn = rms_norm(xt, &r.t(&p("post_attention_layernorm.weight")), c.norm_eps);
            let g = r.linear(&p("mlp.gate_proj.weight"), &xn);
            let u = r.linear(&p("mlp.up_proj.weight"), &xn);
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            add(xt, &r.linear(&p("mlp.down_proj.weight"), &act));
        }
    }
    let head = if c.tie_word_embeddings {
        "model.embed_tokens.weight"
    } else {
        "lm_head.weight"
    };
    x.iter()
        .map(|xt| r.linear(head, &rms_norm(xt, &r.t("model.norm.weight"), c.norm_eps)))
        .collect()
}

fn gelu_new(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

fn naive_gpt2(c: &ModelConfig, w: &WeightMap, tokens: &[u32]) -> Vec<Vec<f64>> {
    let r = Ref { w };
    let h = c.hidden_size;
    let (wte, wpe) = (r.t("wte.weight"), r.t("wpe.weight"));
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(pos, &t)| {
            (0..h)
                .map(|i| wte[t as usize * h + i] + wpe[pos * h + i])
                .collect()
        })
        .collect();
    for l in 0..c.num_layers {
        let p = |s: &str| format!("h.{l}.{s}");
        let (mut qs, mut ks, mut vs) = (vec![], vec![], vec![]);
        for xt in &x {
            let xn = layer_norm(
                xt,
                &r.t(&p("ln_1.weight")),
                &r.t(&p("ln_1.bias")),
                c.norm_eps,
            );
            let mut qkv = r.conv1d(&p("attn.c_attn.weight"), &xn);
            add(&mut qkv, &r.t(&p("attn.c_attn.bias")));
            qs.push(qkv[..h].to_vec());
            ks.push(qkv[h..2 * h].to_vec());
            vs.push(qkv[2 * h..].to_vec());
        }
        let attn = attention(&qs, &ks, &vs, c.num_heads, c.num_heads, c.head_dim);
        for (xt, a) in x.iter_mut().zip(&attn) {
            let mut o = r.conv1d(&p("attn.c_proj.weight"), a);
            add(&mut o, &r.t(&p("attn.c_proj.bias")));
            add(xt, &o);
            let xn = layer_norm(
                xt,
                &r.t(&p("ln_2.weight")),
                &r.t(&p("ln_2.bias")),
                c.norm_eps,
            );
            let mut f = r.conv1d(&p("mlp.c_fc.weight"), &xn);
            add(&mut f, &r.t(&p("mlp.c_fc.bias")));
            let f: Vec<f64> = f.into_iter().map(gelu_new).collect();
            let mut m = r.conv1d(&p("mlp.c_proj.weight"), &f);
            add(&mut m, &r.t(&p("mlp.c_proj.bias")));
            add(xt, &m);
        }
    }
    let wte_rows = |xt: &[f64]| -> Vec<f64> {
        (0..c.vocab_size)
            .map(|v| (0..h).map(|i| wte[v * h + i] * xt[i]).sum())
            .collect()
    };
    x.iter()
        .map(|xt| {
            wte_rows(&layer_norm(
                xt,
                &r.t("ln_f.weight"),
                &r.t("ln_f.bias"),
                c.norm_eps,
            ))
        })
        .collect()
}

// ---------- helpers over the burn model ----------

fn model(c: &ModelConfig, w: &WeightMap, dtype: Dtype) -> Transformer {
    Transformer::new(c.clone(), w, &Device::flex(), dtype).unwrap()
}

/// Logits of every position, computed in one forward.
fn full_logits(m: &Transformer, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = KvCache::new();
    let mut batch = [BatchEntry {
        tokens,
        cache: &mut cache,
        logits: Logits::All,
    }];
    logits_to_rows(m.forward(&mut batch).unwrap())
}

/// Largest |a - b| relative to the largest |b|.
fn rel_err(a: &[Vec<f32>], b: &[Vec<f64>]) -> f64 {
    let scale = b.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - y).abs()));
    diff / scale
}

const TOKENS: [u32; 9] = [1, 17, 300, 42, 5, 96, 511, 0, 256];

#[test]
fn llama_logits_match_the_naive_reference() {
    for c in [config("tiny-llama"), biased_llama()] {
        let w = random_weights(&c, 11);
        let tokens: Vec<u32> = TOKENS.iter().map(|t| t % c.vocab_size as u32).collect();
        let expected = naive_llama(&c, &w, &tokens);
        let got = full_logits(&model(&c, &w, Dtype::F32), &tokens);
        assert_eq!((got.len(), got[0].len()), (tokens.len(), c.vocab_size));
        let err = rel_err(&got, &expected);
        eprintln!(
            "llama (bias {}): max relative error {err:.2e}",
            c.attention_bias
        );
        assert!(err < 1e-3, "llama {c:?}: relative error {err}");
    }
}

#[test]
fn gpt2_logits_match_the_naive_reference() {
    let c = config("tiny-gpt2");
    let w = random_weights(&c, 12);
    let expected = naive_gpt2(&c, &w, &TOKENS);
    let got = full_logits(&model(&c, &w, Dtype::F32), &TOKENS);
    let err = rel_err(&got, &expected);
    eprintln!("gpt2: max relative error {err:.2e}");
    assert!(err < 1e-3, "gpt2: relative error {err}");
}

#[test]
fn half_precision_stays_close_to_f32() {
    let c = config("tiny-llama");
    let w = random_weights(&c, 13);
    let expected = naive_llama(&c, &w, &TOKENS);
    for dtype in [Dtype::Bf16, Dtype::F16] {
        let got = full_logits(&model(&c, &w, dtype), &TOKENS);
        let err = rel_err(&got, &expected);
        eprintln!("{dtype}: max relative error {err:.2e}");
        assert!(err < 5e-2, "{dtype}: relative error {err}");
    }
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    for c in [config("tiny-llama"), config("tiny-gpt2")] {
        let w = random_weights(&c, 14);
        let m = model(&c, &w, Dtype::F32);
        let full = full_logits(&m, &TOKENS);
        let mut cache = KvCache::new();
        let mut incremental = Vec::new();
        // A 3-token prefill chunk, a 2-token chunk, then one token at a time.
        let mut start = 0;
        for len in [3, 2, 1, 1, 1, 1] {
            let tokens = &TOKENS[start..start + len];
            let mut batch = [BatchEntry {
                tokens,
                cache: &mut cache,
                logits: Logits::All,
            }];
            incremental.extend(logits_to_rows(m.forward(&mut batch).unwrap()));
            start += len;
        }
        assert_eq!(cache.len(), TOKENS.len());
        let full64: Vec<Vec<f64>> = full
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect();
        let err = rel_err(&incremental, &full64);
        assert!(
            err < 1e-4,
            "{:?}: cached decoding differs by {err}",
            c.architecture
        );
    }
}

#[test]
fn batched_forward_equals_separate_forwards() {
    let c = config("tiny-llama");
    let m = model(&c, &random_weights(&c, 15), Dtype::F32);
    let (a, b) = (&TOKENS[..4], &TOKENS[2..9]);
    let alone_a = full_logits(&m, a).pop().unwrap();
    let alone_b = full_logits(&m, b).pop().unwrap();
    let (mut ca, mut cb) = (KvCache::new(), KvCache::new());
    let mut batch = [
        BatchEntry {
            tokens: b,
            cache: &mut cb,
            logits: Logits::Last,
        },
        BatchEntry {
            tokens: a,
            cache: &mut ca,
            logits: Logits::Last,
        },
    ];
    let rows = logits_to_rows(m.forward(&mut batch).unwrap());
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
    assert!(close(&rows[0], &alone_b) && close(&rows[1], &alone_a));
}

fn engine(opts: EngineOptions) -> Engine {
    Engine::start(EngineOptions {
        model: "tiny-llama".to_string(),
        seed: 5,
        ..opts
    })
    .unwrap()
}

#[test]
fn greedy_outputs_do_not_depend_on_batch_composition() {
    let e = engine(EngineOptions::default());
    let prompt: Vec<u32> = (10..30).collect();
    let alone = e
        .generate_blocking(prompt.clone(), SamplingParams::greedy(12))
        .unwrap();
    assert_eq!(
        (alone.tokens.len(), alone.reason),
        (12, FinishReason::Length)
    );
    assert_eq!(
        (alone.usage.prompt_tokens, alone.usage.completion_tokens),
        (20, 12)
    );
    // The same request among others of different lengths, arriving before and after it.
    let mut others: Vec<_> = (0..5)
        .map(|i| {
            e.submit(
                (0..3 + 7 * i).collect(),
                SamplingParams::greedy(6 + i as usize),
            )
            .unwrap()
        })
        .collect();
    let mut rx = e.submit(prompt, SamplingParams::greedy(12)).unwrap();
    others.extend((0..3).map(|i| e.submit(vec![7; 1 + i], SamplingParams::greedy(9)).unwrap()));
    let batched = collect_blocking(&mut rx).unwrap();
    for mut o in others {
        collect_blocking(&mut o).unwrap();
    }
    assert_eq!(batched, alone);
    assert!(e.stats().max_running_observed > 1, "{:?}", e.stats());
}

#[test]
fn preempted_sequences_recompute_to_the_same_output() {
    // 64 KV tokens: four 10-token prompts fit, but not their growth past 16 tokens each.
    let e = engine(EngineOptions {
        kv_cache_tokens: Some(64),
        max_batch: 4,
        ..Default::default()
    });
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| (i * 10..i * 10 + 10).collect()).collect();
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| {
            e.generate_blocking(p.clone(), SamplingParams::greedy(20))
                .unwrap()
        })
        .collect();
    let mut rxs: Vec<_> = prompts
        .iter()
        .map(|p| e.submit(p.clone(), SamplingParams::greedy(20)).unwrap())
        .collect();
    let together: Vec<_> = rxs
        .iter_mut()
        .map(|rx| collect_blocking(rx).unwrap())
        .collect();
    assert_eq!(together, alone);
    // Stats are published after each step, just after the last token is sent.
    let mut stats = e.stats();
    for _ in 0..100 {
        if stats.kv_cache_used_tokens == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        stats = e.stats();
    }
    assert!(stats.preemptions > 0, "{stats:?}");
    assert_eq!(stats.kv_cache_used_tokens, 0, "{stats:?}");
    // A request that can never fit is refused up front.
    let err = e
        .submit(vec![1; 40], SamplingParams::greedy(40))
        .unwrap_err()
        .to_string();
    assert!(err.contains("KV cache holds 64 tokens"), "{err}");
}

#[test]
fn chunked_prefill_gives_the_same_output() {
    let prompt: Vec<u32> = (0..45).map(|i| (i * 37) % 512).collect();
    let whole = engine(EngineOptions::default())
        .generate_blocking(prompt.clone(), SamplingParams::greedy(6))
        .unwrap();
    // 8 tokens a step: the 45-token prompt takes 6 steps, sharing them with a decode.
    let e = engine(EngineOptions {
        max_batch: 2,
        max_batched_tokens: 8,
        ..Default::default()
    });
    let mut other = e.submit(vec![9, 9], SamplingParams::greedy(20)).unwrap();
    let chunked = e
        .generate_blocking(prompt, SamplingParams::greedy(6))
        .unwrap();
    collect_blocking(&mut other).unwrap();
    assert_eq!(chunked, whole);
    assert!(e.stats().steps >= 6 + 5, "{:?}", e.stats());
}

#[test]
fn min_tokens_and_eos() {
    // Make the model's first greedy token its end-of-sequence token.
    let prompt: Vec<u32> = vec![3, 1, 4, 1, 5];
    let first = engine(EngineOptions::default())
        .generate_blocking(prompt.clone(), SamplingParams::greedy(1))
        .unwrap()
        .tokens[0];
    let json = BUILTIN_CONFIGS[0].1.replace(
        r#""eos_token_id": 2"#,
        &format!(r#""eos_token_id": {first}"#),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    let e = Engine::start(EngineOptions {
        model: path.display().to_string(),
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    let stop = SamplingParams {
        max_tokens: 8,
        ignore_eos: false,
        ..Default::default()
    };
    let g = e.generate_blocking(prompt.clone(), stop.clone()).unwrap();
    assert_eq!(
        (g.tokens.clone(), g.reason),
        (vec![first], FinishReason::Stop)
    );
    let g = e
        .generate_blocking(
            prompt.clone(),
            SamplingParams {
                min_tokens: 4,
                ..stop
            },
        )
        .unwrap();
    assert!(
        g.tokens.len() >= 4 && !g.tokens[..4].contains(&first),
        "{g:?}"
    );
    let g = e
        .generate_blocking(
            prompt,
            SamplingParams {
                ignore_eos: true,
                min_tokens: 0,
                ..SamplingParams::greedy(8)
            },
        )
        .unwrap();
    assert_eq!(
        (g.tokens.len(), g.tokens[0], g.reason),
        (8, first, FinishReason::Length)
    );
}

#[test]
fn temperature_sampling_is_seeded() {
    let e = engine(EngineOptions::default());
    let params = SamplingParams {
        max_tokens: 10,
        temperature: 1.0,
        seed: Some(9),
        ignore_eos: true,
        ..Default::default()
    };
    let a = e.generate_blocking(vec![1, 2, 3], params.clone()).unwrap();
    let b = e.generate_blocking(vec![1, 2, 3], params.clone()).unwrap();
    let c = e
        .generate_blocking(
            vec![1, 2, 3],
            SamplingParams {
                seed: Some(10),
                ..params
            },
        )
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a.tokens, c.tokens);
}

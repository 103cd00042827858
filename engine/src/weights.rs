//! Weights on the host, under their Hugging Face names and shapes.
//!
//! Both sources produce the same [`WeightMap`]: seeded random values (vLLM's "dummy" load
//! format: latency does not depend on weight values, and real weights cannot be downloaded
//! here) or `*.safetensors` files from a local directory. The transformer is built from the
//! map, so the tests' reference implementation can read exactly the weights the engine runs.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::EngineError;
use crate::config::{Architecture, ModelConfig};
use pilot_core::rng::SplitMix64;

/// A dense row-major f32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Tensors by HF name (`model.layers.0.self_attn.q_proj.weight`, `h.0.attn.c_attn.weight`).
pub type WeightMap = BTreeMap<String, HostTensor>;

/// Standard deviation of the random weights (HF's `initializer_range` default).
pub const INIT_STD: f32 = 0.02;

/// Every tensor the model needs, by HF name, with its HF shape (`[out, in]` for Llama's
/// `nn.Linear`, `[in, out]` for GPT-2's `Conv1D`).
pub fn expected_tensors(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let mut t = Vec::new();
    match c.architecture {
        Architecture::Llama => {
            let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
            t.push(("model.embed_tokens.weight".to_string(), vec![v, h]));
            for l in 0..c.num_layers {
                let p = format!("model.layers.{l}");
                t.push((format!("{p}.input_layernorm.weight"), vec![h]));
                t.push((format!("{p}.self_attn.q_proj.weight"), vec![q, h]));
                t.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
                t.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
                if c.attention_bias {
                    t.push((format!("{p}.self_attn.q_proj.bias"), vec![q]));
                    t.push((format!("{p}.self_attn.k_proj.bias"), vec![kv]));
                    t.push((format!("{p}.self_attn.v_proj.bias"), vec![kv]));
                }
                t.push((format!("{p}.self_attn.o_proj.weight"), vec![h, q]));
                t.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
                t.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
                t.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
                t.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
            }
            t.push(("model.norm.weight".to_string(), vec![h]));
            if !c.tie_word_embeddings {
                t.push(("lm_head.weight".to_string(), vec![v, h]));
            }
        }
        Architecture::Gpt2 => {
            t.push(("wte.weight".to_string(), vec![v, h]));
            t.push(("wpe.weight".to_string(), vec![c.max_position_embeddings, h]));
            for l in 0..c.num_layers {
                let p = format!("h.{l}");
                for (name, shape) in [
                    ("ln_1.weight", vec![h]),
                    ("ln_1.bias", vec![h]),
                    ("attn.c_attn.weight", vec![h, 3 * h]),
                    ("attn.c_attn.bias", vec![3 * h]),
                    ("attn.c_proj.weight", vec![h, h]),
                    ("attn.c_proj.bias", vec![h]),
                    ("ln_2.weight", vec![h]),
                    ("ln_2.bias", vec![h]),
                    ("mlp.c_fc.weight", vec![h, i]),
                    ("mlp.c_fc.bias", vec![i]),
                    ("mlp.c_proj.weight", vec![i, h]),
                    ("mlp.c_proj.bias", vec![h]),
                ] {
                    t.push((format!("{p}.{name}"), shape));
                }
            }
            t.push(("ln_f.weight".to_string(), vec![h]));
            t.push(("ln_f.bias".to_string(), vec![h]));
        }
    }
    t
}

fn is_norm(name: &str) -> bool {
    name.contains("norm") || name.contains(".ln_") || name.starts_with("ln_f")
}

/// Seeded random weights: N(0, 0.02) for matrices and biases, 1 + N(0, 0.02) for norm scales
/// (the small jitter keeps the reference test sensitive to norm-weight mistakes).
/// Each tensor's stream depends on `seed` and its name only.
pub fn random_weights(c: &ModelConfig, seed: u64) -> WeightMap {
    expected_tensors(c)
        .into_iter()
        .map(|(name, shape)| {
            let mut data = vec![0.0f32; shape.iter().product()];
            SplitMix64::for_name(seed, &name).fill_normal(&mut data, INIT_STD);
            if is_norm(&name) && name.ends_with(".weight") {
                data.iter_mut().for_each(|x| *x += 1.0);
            }
            (name, HostTensor { shape, data })
        })
        .collect()
}

/// Loads every `*.safetensors` file in `dir` (f32, f16 or bf16) and checks the result against
/// the config: every expected tensor present with its expected shape. HF's `transformer.`
/// prefix (GPT-2 checkpoints) is stripped; tensors the engine does not use are ignored.
pub fn load_safetensors(dir: &Path, c: &ModelConfig) -> Result<WeightMap, EngineError> {
    let err = |message: String| EngineError::Weights {
        dir: dir.to_path_buf(),
        message,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(format!("cannot list the directory: {e}")))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err(
            "no *.safetensors files: pass the directory holding the model's \
                        safetensors, or leave out --weights for random weights"
                .to_string(),
        ));
    }
    let expected: BTreeMap<String, Vec<usize>> = expected_tensors(c).into_iter().collect();
    let mut map = WeightMap::new();
    for file in &files {
        let bytes =
            std::fs::read(file).map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("{} is not a safetensors file: {e}", file.display())))?;
        for (raw_name, view) in st.tensors() {
            let name = raw_name
                .strip_prefix("transformer.")
                .unwrap_or(&raw_name)
                .to_string();
            let Some(shape) = expected.get(&name) else {
                continue;
            };
            if view.shape() != shape.as_slice() {
                return Err(err(format!(
                    "tensor {name} has shape {:?}, but the config needs {shape:?}",
                    view.shape()
                )));
            }
            let data = to_f32(view.dtype(), view.data()).ok_or_else(|| {
                err(format!(
                    "tensor {name} has dtype {:?}: use f32, f16 or bf16",
                    view.dtype()
                ))
            })?;
            map.insert(
                name,
                HostTensor {
                    shape: shape.clone(),
                    data,
                },
            );
        }
    }
    // Some checkpoints tie the head implicitly by leaving lm_head out.
    let untied = c.architecture == Architecture::Llama && !c.tie_word_embeddings;
    if let Some(e) = map
        .get("model.embed_tokens.weight")
        .filter(|_| untied)
        .cloned()
    {
        map.entry("lm_head.weight".to_string()).or_insert(e);
    }
    let missing: Vec<_> = expected.keys().filter(|k| !map.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "{} of {} tensors are missing, e.g. {}",
            missing.len(),
            expected.len(),
            missing[0]
        )));
    }
    Ok(map)
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Writes `weights` as one f32 `model.safetensors` in `dir` (used to turn random weights into
/// a checkpoint, and by the loader's tests).
pub fn save_safetensors(weights: &WeightMap, dir: &Path) -> Result<(), EngineError> {
    let err = |message: String| EngineError::Weights {
        dir: dir.to_path_buf(),
        message,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .map_err(|e| err(format!("cannot write model.safetensors: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BUILTIN_CONFIGS;

    #[test]
    fn random_weights_are_seeded_and_round_trip_through_safetensors() {
        for (name, json) in &BUILTIN_CONFIGS[..2] {
            let c = ModelConfig::from_hf_json(json, name).unwrap();
            let w = random_weights(&c, 3);
            assert_eq!(w, random_weights(&c, 3));
            assert_ne!(w, random_weights(&c, 4));
            let dir = tempfile::tempdir().unwrap();
            save_safetensors(&w, dir.path()).unwrap();
            assert_eq!(load_safetensors(dir.path(), &c).unwrap(), w, "{name}");
        }
    }

    #[test]
    fn loader_names_the_problem() {
        let c = ModelConfig::from_hf_json(BUILTIN_CONFIGS[0].1, "tiny-llama").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = load_safetensors(dir.path(), &c).unwrap_err().to_string();
        assert!(e.contains("no *.safetensors"), "{e}");
        let mut w = random_weights(&c, 0);
        w.get_mut("model.norm.weight").unwrap().shape = vec![32, 2];
        save_safetensors(&w, dir.path()).unwrap();
        let e = load_safetensors(dir.path(), &c).unwrap_err().to_string();
        assert!(e.contains("model.norm.weight has shape [32, 2]"), "{e}");
    }
}

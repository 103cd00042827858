//! The weight format a checkpoint is published in: [`CheckpointFormat`].
//!
//! Quantized checkpoints say so in two places. `config.json` may carry a
//! `quantization_config` (`quant_method`: `fp8` with a `weight_block_size` for DeepSeek's
//! 128x128 block scales, `mxfp4` for gpt-oss, `modelopt` or `compressed-tensors` for NVIDIA's
//! and others' fp4/int4 exports); NVIDIA ModelOpt exports also ship an `hf_quant_config.json`
//! beside it (`quant_algo`: `FP8`, `NVFP4`, `MIXED_PRECISION` with a per-module list;
//! `kv_cache_quant_algo`; `exclude_modules`). Both name modules that stay in 16 bits
//! (attention, routers, shared experts, the LM head are common), and a decode step streams
//! those at two bytes a weight, so the modules matter as much as the headline format.
//!
//! A format pilot does not know is refused ([`ModelError::Unsupported`]) rather than read as
//! the nearest one: the weight bytes decide what fits on a GPU.

use super::ModelError;
use crate::quant::Quantization;
use crate::units::Dtype;
use serde_json::{Map, Value};

/// Which part of a layer a weight belongs to, for deciding its stored format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Attention, latent attention, linear attention or Mamba projections.
    Mixer,
    /// A dense layer's MLP.
    DenseMlp,
    /// Routed experts.
    Experts,
    /// Shared experts.
    SharedExperts,
    /// The expert router.
    Router,
}

impl Part {
    /// Module names (after `layers.<i>.`) that the common exports give this part, so an
    /// exclusion pattern written for any of them is recognised.
    fn names(self) -> &'static [&'static str] {
        match self {
            Part::Mixer => &[
                "self_attn.q_proj",
                "self_attn.o_proj",
                "self_attn.q_a_proj",
                "self_attn.kv_a_proj_with_mqa",
                "self_attn.kv_b_proj",
                "linear_attn.in_proj_qkvz",
                "linear_attn.in_proj_qkv",
                "linear_attn.out_proj",
                "mixer.in_proj",
                "mixer.out_proj",
                "mixer.q_proj",
                "mixer.o_proj",
                "attn.wq",
            ],
            Part::DenseMlp => &[
                "mlp.up_proj",
                "mlp.down_proj",
                "mlp.gate_proj",
                "mixer.up_proj",
            ],
            Part::Experts => &[
                "mlp.experts.0.up_proj",
                "mlp.experts.0.down_proj",
                "mlp.experts",
                "block_sparse_moe.experts.0.w1",
                "mixer.experts.0.up_proj",
                "ffn.experts",
            ],
            Part::SharedExperts => &[
                "mlp.shared_experts.up_proj",
                "mlp.shared_expert.up_proj",
                "mixer.shared_experts.up_proj",
            ],
            Part::Router => &[
                "mlp.gate",
                "block_sparse_moe.gate",
                "mixer.gate",
                "mlp.router",
            ],
        }
    }
}

/// A quantized checkpoint's formats, as its files state them.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointFormat {
    /// The headline weight format (for `MIXED_PRECISION`, the one most modules use).
    pub weights: Quantization,
    /// The KV-cache dtype the checkpoint was calibrated for (`kv_cache_quant_algo`), if any.
    pub kv_cache: Option<Dtype>,
    /// Module patterns left unquantized (`ignore`, `exclude_modules`,
    /// `modules_to_not_convert`), as written.
    pub excluded_modules: Vec<String>,
    /// `MIXED_PRECISION`: module name (or prefix) to its format.
    pub per_module: Vec<(String, Quantization)>,
    /// Where the format was read: `config.json` or `hf_quant_config.json`.
    pub read_from: &'static str,
    /// The LM head stays 16-bit (excluded by name).
    pub lm_head_unquantized: bool,
}

fn unsupported(id: &str, what: String) -> ModelError {
    ModelError::Unsupported {
        source_name: id.to_string(),
        feature: what,
    }
}

/// A ModelOpt `quant_algo` (or `quant_method`) as a weight format.
fn algo(name: &str, id: &str) -> Result<Quantization, ModelError> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "FP8" | "FP8_PER_TENSOR" | "FP8_PER_CHANNEL_PER_TOKEN" => Quantization::Fp8,
        // MX fp8 keeps one 8-bit scale per 32 weights: a byte per weight, as fp8 block.
        "FP8_BLOCK" | "FP8_PB_WO" | "MXFP8" => Quantization::Fp8Block,
        "NVFP4" | "W4A16_NVFP4" | "NVFP4_AWQ" | "W4A8_NVFP4_FP8" => Quantization::Nvfp4,
        "MXFP4" | "W4A16_MXFP4" | "W4A8_MXFP4_FP8" => Quantization::Mxfp4,
        "W4A16_AWQ" | "INT4_AWQ" | "W4A8_AWQ" | "INT4_WO" => Quantization::Int4W4a16,
        "INT8_SQ" | "W8A8_SQ_PER_CHANNEL" | "INT8" => Quantization::Int8,
        other => {
            return Err(unsupported(
                id,
                format!(
                    "quantization algorithm '{other}' (pilot knows FP8, FP8 block, NVFP4, MXFP4, INT4 AWQ and INT8)"
                ),
            ));
        }
    })
}

fn kv_algo(v: Option<&Value>, id: &str) -> Result<Option<Dtype>, ModelError> {
    match v.and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => match s.to_ascii_uppercase().as_str() {
            "FP8" => Ok(Some(Dtype::Fp8)),
            "INT8" => Ok(Some(Dtype::Int8)),
            other => Err(unsupported(
                id,
                format!("KV-cache quantization '{other}' (pilot knows FP8 and INT8)"),
            )),
        },
    }
}

/// A list of module patterns, given as a list or as a JSON string holding one.
fn patterns(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => serde_json::from_str::<Vec<String>>(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `fnmatch`-style matching (`*` any run, `?` one character), as ModelOpt applies its patterns.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A written pattern as globs over `layers.<i>.<module>`: the export's prefix before
/// `layers.` (`model.`, `model.language_model.`, `backbone.`, ...) is dropped, and
/// compressed-tensors' `re:` patterns become globs (`.*` any run, `(a|b)` each alternative).
fn normalised(pattern: &str) -> Vec<String> {
    let p = match pattern.strip_prefix("re:") {
        Some(re) => re.replace(".*", "*").replace("\\.", "."),
        None => pattern.to_string(),
    };
    let p = match p.find("layers.") {
        Some(at) if !p[..at].contains('*') => p[at..].to_string(),
        _ => p,
    };
    match (p.find('('), p.find(')')) {
        (Some(a), Some(b)) if a < b => p[a + 1..b]
            .split('|')
            .map(|alt| format!("{}{alt}{}", &p[..a], &p[b + 1..]))
            .collect(),
        _ => vec![p],
    }
}

impl CheckpointFormat {
    /// Reads the format from `config.json` (`cfg`, the whole document) and, where given, the
    /// `hf_quant_config.json` beside it, which takes precedence. `None`: not quantized.
    pub fn read(
        cfg: &Value,
        hf_quant: Option<&Value>,
        id: &str,
    ) -> Result<Option<CheckpointFormat>, ModelError> {
        if let Some(hq) = hf_quant {
            let q = hq.get("quantization").unwrap_or(hq);
            return Self::from_modelopt(q, "hf_quant_config.json", id).map(Some);
        }
        let top = cfg.as_object();
        let text = top
            .and_then(|o| o.get("text_config"))
            .and_then(Value::as_object);
        let Some(qc) = top
            .and_then(|o| o.get("quantization_config"))
            .or_else(|| text.and_then(|t| t.get("quantization_config")))
            .and_then(Value::as_object)
        else {
            return Ok(None);
        };
        Self::from_quantization_config(qc, id).map(Some)
    }

    fn from_modelopt(
        q: &Value,
        read_from: &'static str,
        id: &str,
    ) -> Result<CheckpointFormat, ModelError> {
        let name =
            q.get("quant_algo")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::Malformed {
                    source_name: id.to_string(),
                    reason: format!("{read_from} names no 'quant_algo'"),
                })?;
        let mut per_module = Vec::new();
        let weights = if name.eq_ignore_ascii_case("MIXED_PRECISION") {
            let layers = match q.get("quantized_layers") {
                Some(Value::String(s)) => serde_json::from_str::<Map<String, Value>>(s).ok(),
                Some(Value::Object(o)) => Some(o.clone()),
                _ => None,
            }
            .unwrap_or_default();
            let mut tally: Vec<(Quantization, usize)> = Vec::new();
            for (module, spec) in &layers {
                let a = algo(
                    spec.get("quant_algo").and_then(Value::as_str).unwrap_or(""),
                    id,
                )?;
                per_module.push((module.clone(), a));
                match tally.iter_mut().find(|(f, _)| *f == a) {
                    Some((_, n)) => *n += 1,
                    None => tally.push((a, 1)),
                }
            }
            tally.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            tally
                .first()
                .map(|t| t.0)
                .ok_or_else(|| ModelError::Malformed {
                    source_name: id.to_string(),
                    reason: format!(
                        "{read_from} says MIXED_PRECISION but lists no quantized_layers"
                    ),
                })?
        } else {
            algo(name, id)?
        };
        let excluded = patterns(q.get("exclude_modules").or_else(|| q.get("ignore")));
        Ok(CheckpointFormat {
            weights,
            kv_cache: kv_algo(q.get("kv_cache_quant_algo"), id)?,
            lm_head_unquantized: lm_head_listed(&excluded),
            excluded_modules: excluded,
            per_module,
            read_from,
        })
    }

    fn from_quantization_config(
        qc: &Map<String, Value>,
        id: &str,
    ) -> Result<CheckpointFormat, ModelError> {
        // Exports that omit `quant_method` still say which scheme they follow by their keys.
        let method = match qc.get("quant_method").and_then(Value::as_str) {
            Some(m) => m,
            None if qc.contains_key("quant_algo") => "modelopt",
            None if qc.contains_key("config_groups") => "compressed-tensors",
            None => {
                return Err(unsupported(
                    id,
                    "a quantization_config that names no quant_method, quant_algo or \
                     config_groups"
                        .into(),
                ));
            }
        };
        let excluded = patterns(
            qc.get("ignore")
                .or_else(|| qc.get("modules_to_not_convert"))
                .or_else(|| qc.get("ignored_layers"))
                .or_else(|| qc.get("exclude_modules")),
        );
        let weights = match method {
            "fp8" => {
                if qc.get("weight_block_size").is_some_and(|b| !b.is_null()) {
                    Quantization::Fp8Block
                } else {
                    Quantization::Fp8
                }
            }
            "mxfp4" => Quantization::Mxfp4,
            "modelopt" => {
                return Self::from_modelopt(&Value::Object(qc.clone()), "config.json", id);
            }
            "compressed-tensors" => compressed_tensors(qc, id)?,
            "awq" | "gptq" => Quantization::Int4W4a16,
            other => {
                return Err(unsupported(
                    id,
                    format!(
                        "quant_method '{other}' (pilot knows fp8, mxfp4, modelopt, \
                         compressed-tensors, awq and gptq)"
                    ),
                ));
            }
        };
        Ok(CheckpointFormat {
            weights,
            kv_cache: None,
            lm_head_unquantized: lm_head_listed(&excluded),
            excluded_modules: excluded,
            per_module: Vec::new(),
            read_from: "config.json",
        })
    }

    /// The format a layer part is stored in (`None`: 16-bit), for layer `layer`.
    pub fn format_of(&self, layer: usize, part: Part) -> Option<Quantization> {
        // A pattern that names a module covers its children (`layers.*.self_attn` covers
        // `layers.0.self_attn.q_proj`), so every dotted prefix is a candidate too.
        let names: Vec<String> = part
            .names()
            .iter()
            .flat_map(|n| {
                let full = format!("layers.{layer}.{n}");
                let cuts: Vec<usize> = full
                    .match_indices('.')
                    .map(|(i, _)| i)
                    .skip(1)
                    .chain(std::iter::once(full.len()))
                    .collect();
                cuts.into_iter()
                    .map(move |i| full[..i].to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let hit = |pattern: &str| {
            normalised(pattern).iter().any(|p| {
                names
                    .iter()
                    .any(|n| glob(p, n) || glob(p, &format!("model.{n}")))
            })
        };
        if self.excluded_modules.iter().any(|p| hit(p)) {
            return None;
        }
        if self.per_module.is_empty() {
            return Some(self.weights);
        }
        self.per_module.iter().find_map(|(module, q)| {
            let m = normalised(module).into_iter().next().unwrap_or_default();
            names
                .iter()
                .any(|n| n == &m || n.starts_with(&format!("{m}.")) || glob(&m, n))
                .then_some(*q)
        })
    }
}

fn lm_head_listed(excluded: &[String]) -> bool {
    excluded.iter().any(|p| {
        let last = p.rsplit('.').next().unwrap_or(p).trim_matches('*');
        last == "lm_head" || p == "head"
    })
}

/// compressed-tensors: the first config group's weights (`num_bits`, `type`, `format`).
fn compressed_tensors(qc: &Map<String, Value>, id: &str) -> Result<Quantization, ModelError> {
    let group = qc
        .get("config_groups")
        .and_then(Value::as_object)
        .and_then(|g| g.values().next());
    let w = group.and_then(|g| g.get("weights"));
    let bits = w.and_then(|w| w.get("num_bits")).and_then(Value::as_u64);
    let kind = w.and_then(|w| w.get("type")).and_then(Value::as_str);
    let format = group
        .and_then(|g| g.get("format"))
        .or_else(|| qc.get("format"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let group_size = w.and_then(|w| w.get("group_size")).and_then(Value::as_u64);
    Ok(match (bits, kind) {
        _ if format.starts_with("mxfp4") => Quantization::Mxfp4,
        (Some(4), Some("float")) if group_size == Some(16) => Quantization::Nvfp4,
        (Some(4), Some("float")) => Quantization::Mxfp4,
        (Some(4), Some("int")) => Quantization::Int4W4a16,
        (Some(8), Some("float")) => Quantization::Fp8,
        (Some(8), Some("int")) => Quantization::Int8,
        _ => {
            return Err(unsupported(
                id,
                format!(
                    "compressed-tensors weights of {} bits, type {} (pilot knows 4-bit int and \
                     float, 8-bit int and float)",
                    bits.map_or("?".into(), |b| b.to_string()),
                    kind.unwrap_or("?")
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_prefixes_match_as_modelopt_writes_them() {
        assert!(glob("layers.0*", "layers.0.self_attn.q_proj"));
        assert!(!glob("layers.1.*", "layers.10.self_attn.q_proj"));
        assert!(glob("*.attn.*", "layers.3.attn.wq"));
        assert_eq!(
            normalised("language_model.model.layers.4.self_attn*"),
            vec!["layers.4.self_attn*"]
        );
        assert_eq!(
            normalised("re:.*mlp\\.(gate|up)_proj.*"),
            vec!["*mlp.gate_proj*", "*mlp.up_proj*"]
        );
    }

    #[test]
    fn nvfp4_exclusions_keep_attention_and_routers_in_16_bits() {
        let hq = serde_json::json!({"quantization": {
            "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
            "exclude_modules": ["lm_head", "model.layers.0.self_attn*", "model.layers.0.mlp.gate"]}});
        let f = CheckpointFormat::read(&serde_json::json!({}), Some(&hq), "x")
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.weights, f.kv_cache),
            (Quantization::Nvfp4, Some(Dtype::Fp8))
        );
        assert!(f.lm_head_unquantized);
        assert_eq!(f.format_of(0, Part::Mixer), None);
        assert_eq!(f.format_of(0, Part::Router), None);
        assert_eq!(f.format_of(0, Part::Experts), Some(Quantization::Nvfp4));
        assert_eq!(f.format_of(1, Part::Mixer), Some(Quantization::Nvfp4));
    }

    #[test]
    fn unknown_formats_are_refused_by_name() {
        let cfg = serde_json::json!({"quantization_config": {"quant_method": "bitnet"}});
        let err = CheckpointFormat::read(&cfg, None, "x").unwrap_err();
        assert!(
            matches!(err, ModelError::Unsupported { .. }) && err.to_string().contains("bitnet"),
            "{err}"
        );
    }
}

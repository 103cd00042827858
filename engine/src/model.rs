//! The decoder-only transformer, on burn.
//!
//! Llama follows Touvron et al., "LLaMA: Open and Efficient Foundation Language Models" (2023)
//! as implemented by HF `transformers`' `modeling_llama.py` (RMSNorm, rotary embeddings with
//! `rotate_half`, grouped-query attention, SwiGLU); GPT-2 follows Radford et al. (2019) as in
//! `modeling_gpt2.py` (pre-LayerNorm, learned positions, GELU-tanh, tied embeddings).
//!
//! One forward runs a *flat batch*: the new tokens of every sequence in the step, prefill
//! chunks and single decode tokens alike, concatenated into one `[tokens, hidden]` matrix.
//! Every linear layer is one matmul over all of them; attention runs per sequence against
//! that sequence's own [`KvCache`], so a sequence's result does not depend on its neighbours.
//! burn 0.22 dispatches backends at runtime through [`Device`], so the CPU (flex) and CUDA
//! run this one code path.

use burn::tensor::activation;
use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use pilot_core::units::Dtype;

use crate::EngineError;
use crate::config::{Architecture, ModelConfig};
use crate::weights::{HostTensor, WeightMap};

/// The dtypes the engine computes in: weights, activations and the KV cache. Norms and softmax
/// run in f32 whatever the dtype. The narrower formats pilot knows (fp8, int8, int4) need
/// quantized kernels burn does not have.
pub const COMPUTE_DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::F16];

/// The names of [`COMPUTE_DTYPES`], for messages.
pub fn compute_dtype_names() -> String {
    COMPUTE_DTYPES.map(|d| d.name()).join(", ")
}

/// A compute dtype from the command line: core's spellings, refused early (before a model is
/// loaded) when the engine cannot compute in it.
pub fn parse_compute_dtype(text: &str) -> Result<Dtype, String> {
    let dtype: Dtype = text.parse().map_err(|_| {
        format!(
            "unknown dtype '{}': use one of {}",
            pilot_core::validate::shorten(text),
            compute_dtype_names()
        )
    })?;
    compute_float(dtype).map_err(|e| e.to_string())?;
    Ok(dtype)
}

/// burn's float type for `dtype`, or why the engine cannot compute in it.
pub fn compute_float(dtype: Dtype) -> Result<FloatDType, EngineError> {
    match dtype {
        Dtype::F32 => Ok(FloatDType::F32),
        Dtype::Bf16 => Ok(FloatDType::BF16),
        Dtype::F16 => Ok(FloatDType::F16),
        Dtype::Fp8 | Dtype::Int8 | Dtype::Int4 => Err(EngineError::UncomputableDtype { dtype }),
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineDevice {
    /// burn's flex backend: pure-Rust CPU kernels, SIMD, all cores.
    Cpu,
    /// A CUDA GPU by index (burn-cuda; needs the crate's `cuda` feature).
    Cuda(usize),
}

impl Default for EngineDevice {
    /// The GPU when the engine is built with CUDA, else the CPU.
    fn default() -> Self {
        if cfg!(feature = "cuda") {
            EngineDevice::Cuda(0)
        } else {
            EngineDevice::Cpu
        }
    }
}

impl std::fmt::Display for EngineDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineDevice::Cpu => f.write_str("cpu"),
            EngineDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for EngineDevice {
    type Err = String;
    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(EngineDevice::Cpu),
            "cuda" | "gpu" => Ok(EngineDevice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(EngineDevice::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: use cpu, cuda or cuda:N")),
        }
    }
}

impl EngineDevice {
    pub fn burn_device(self) -> Result<Device, EngineError> {
        match self {
            EngineDevice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            EngineDevice::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            EngineDevice::Cuda(_) => Err(EngineError::Config {
                source_name: "device".to_string(),
                message: "this pilot was built without CUDA: rebuild with `--features cuda`"
                    .to_string(),
            }),
        }
    }
}

/// A dense layer `y = x W + b` with `W` stored `[in, out]`.
#[derive(Debug, Clone)]
struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.clone());
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        }
    }
}

/// RMSNorm (Llama) or LayerNorm (GPT-2); weights kept in f32, computed in f32.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per layer, never moved in a hot loop
enum Norm {
    Rms {
        weight: Tensor<1>,
        eps: f64,
    },
    Layer {
        weight: Tensor<1>,
        bias: Tensor<1>,
        eps: f64,
    },
}

impl Norm {
    /// `x`: `[tokens, hidden]`, returned in `dtype`.
    fn forward(&self, x: Tensor<2>, dtype: FloatDType) -> Tensor<2> {
        let x = x.cast(FloatDType::F32);
        let y = match self {
            Norm::Rms { weight, eps } => {
                let inv_rms = x
                    .clone()
                    .square()
                    .mean_dim(1)
                    .add_scalar(*eps)
                    .sqrt()
                    .recip();
                x * inv_rms * weight.clone().unsqueeze::<2>()
            }
            Norm::Layer { weight, bias, eps } => {
                let centred = x.clone() - x.mean_dim(1);
                let inv_std = centred
                    .clone()
                    .square()
                    .mean_dim(1)
                    .add_scalar(*eps)
                    .sqrt()
                    .recip();
                centred * inv_std * weight.clone().unsqueeze::<2>() + bias.clone().unsqueeze::<2>()
            }
        };
        y.cast(dtype)
    }
}

#[derive(Debug, Clone)]
enum Mlp {
    /// `down(silu(gate(x)) * up(x))`, gate and up fused into one `[hidden, 2 * inter]` matmul.
    SwiGlu {
        gate_up: Linear,
        down: Linear,
        inter: usize,
    },
    /// `proj(gelu_tanh(fc(x)))`.
    Gelu { fc: Linear, proj: Linear },
}

impl Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Mlp::SwiGlu {
                gate_up,
                down,
                inter,
            } => {
                let gu = gate_up.forward(x);
                let t = gu.dims()[0];
                let gate = gu.clone().slice([0..t, 0..*inter]);
                let up = gu.slice([0..t, *inter..2 * *inter]);
                down.forward(activation::silu(gate) * up)
            }
            Mlp::Gelu { fc, proj } => proj.forward(activation::gelu_approximate(fc.forward(x))),
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Norm,
    /// Fused q|k|v projection: `[hidden, (heads + 2 kv_heads) * head_dim]`.
    qkv: Linear,
    out: Linear,
    mlp_norm: Norm,
    mlp: Mlp,
}

/// The KV cache of one sequence: per layer, keys and values `[kv_heads, capacity, head_dim]`,
/// of which the first [`len`](KvCache::len) positions are filled. Owned by the sequence (the
/// scheduler); storage grows in steps of 1.5x, in multiples of [`KV_GROWTH_TOKENS`].
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
}

/// Granularity of the cache's physical growth, in tokens.
pub const KV_GROWTH_TOKENS: usize = 64;

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions already computed (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `k`, `v` (`[kv_heads, n, head_dim]`) at positions `len..len + n` of `layer` and
    /// returns the cache up to `len + n`. [`len`](Self::len) advances in [`Self::commit`], once
    /// every layer has written.
    fn append(&mut self, layer: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        if self.layers.len() <= layer {
            self.layers.resize_with(layer + 1, || None);
        }
        let [kvh, n, hd] = k.dims();
        let end = self.len + n;
        let grow_to =
            |cap: usize| (end.max(cap + cap / 2)).div_ceil(KV_GROWTH_TOKENS) * KV_GROWTH_TOKENS;
        let slot = &mut self.layers[layer];
        let (ks, vs) = match slot.take() {
            None => {
                let cap = grow_to(0);
                let options = (&k.device(), k.dtype());
                (
                    Tensor::<3>::zeros([kvh, cap, hd], options),
                    Tensor::<3>::zeros([kvh, cap, hd], options),
                )
            }
            Some((ks, vs)) if ks.dims()[1] < end => {
                let cap = ks.dims()[1];
                let extra = grow_to(cap) - cap;
                let options = (&k.device(), k.dtype());
                let pad = || Tensor::<3>::zeros([kvh, extra, hd], options);
                (
                    Tensor::cat(vec![ks, pad()], 1),
                    Tensor::cat(vec![vs, pad()], 1),
                )
            }
            Some(kv) => kv,
        };
        let ks = ks.slice_assign([0..kvh, self.len..end, 0..hd], k);
        let vs = vs.slice_assign([0..kvh, self.len..end, 0..hd], v);
        let view = (
            ks.clone().slice([0..kvh, 0..end, 0..hd]),
            vs.clone().slice([0..kvh, 0..end, 0..hd]),
        );
        *slot = Some((ks, vs));
        view
    }

    fn commit(&mut self, n: usize) {
        self.len += n;
    }
}

/// Which logits a sequence in the batch wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None (a prefill chunk that does not reach the end of the prompt).
    None,
    /// The last new token's (the next-token distribution).
    Last,
    /// Every new token's (tests).
    All,
}

/// One sequence's share of a step: its new tokens, its cache, the logits it wants.
#[derive(Debug)]
pub struct BatchEntry<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    pub logits: Logits,
}

/// The transformer on a device: weights uploaded once, forward over flat batches.
#[derive(Debug, Clone)]
pub struct Transformer {
    config: ModelConfig,
    device: Device,
    dtype: FloatDType,
    /// `[vocab, hidden]`.
    embed: Tensor<2>,
    /// GPT-2's learned positions, `[max_positions, hidden]`.
    positions: Option<Tensor<2>>,
    /// Llama's rotary tables, `cos` and `sin`, each `[max_positions, head_dim]`.
    rope: Option<(Tensor<2>, Tensor<2>)>,
    blocks: Vec<Block>,
    final_norm: Norm,
    /// `[hidden, vocab]`.
    lm_head: Tensor<2>,
}

fn get<'w>(w: &'w WeightMap, name: &str) -> Result<&'w HostTensor, EngineError> {
    w.get(name).ok_or_else(|| EngineError::Config {
        source_name: "weights".to_string(),
        message: format!("tensor {name} is missing"),
    })
}

/// `[out, in]` matrices (HF `nn.Linear`) → one `[in, sum(out)]` matrix, columns in order.
fn fuse_transposed(parts: &[&HostTensor]) -> (Vec<f32>, [usize; 2]) {
    let inp = parts[0].shape[1];
    let total: usize = parts.iter().map(|p| p.shape[0]).sum();
    let mut out = vec![0.0f32; inp * total];
    let mut col0 = 0;
    for p in parts {
        let rows = p.shape[0];
        for r in 0..rows {
            for i in 0..inp {
                out[i * total + col0 + r] = p.data[r * inp + i];
            }
        }
        col0 += rows;
    }
    (out, [inp, total])
}

impl Transformer {
    /// Uploads `weights` (HF names and shapes, see [`crate::weights::expected_tensors`]).
    pub fn new(
        config: ModelConfig,
        weights: &WeightMap,
        device: &Device,
        dtype: Dtype,
    ) -> Result<Self, EngineError> {
        let float = compute_float(dtype)?;
        if !device.supports_dtype(float) {
            return Err(EngineError::UnsupportedDtype {
                dtype: dtype.to_string(),
                device: format!("{device:?}"),
            });
        }
        let up2 = |data: Vec<f32>, shape: [usize; 2]| -> Tensor<2> {
            Tensor::from_data(TensorData::new(data, shape), (device, DType::from(float)))
        };
        let up1 = |t: &HostTensor, dt: FloatDType| -> Tensor<1> {
            Tensor::from_data(
                TensorData::new(t.data.clone(), [t.data.len()]),
                (device, DType::from(dt)),
            )
        };
        let c = &config;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let mut blocks = Vec::with_capacity(c.num_layers);
        let (embed, positions, rope, final_norm, head);
        match c.architecture {
            Architecture::Llama => {
                for l in 0..c.num_layers {
                    let p = |s: &str| format!("model.layers.{l}.{s}");
                    let rms = |s: &str| -> Result<Norm, EngineError> {
                        Ok(Norm::Rms {
                            weight: up1(get(weights, &p(s))?, FloatDType::F32),
                            eps: c.norm_eps,
                        })
                    };
                    let lin = |parts: &[&str], bias: bool| -> Result<Linear, EngineError> {
                        let ts = parts
                            .iter()
                            .map(|s| get(weights, &p(&format!("{s}.weight"))))
                            .collect::<Result<Vec<_>, _>>()?;
                        let (data, shape) = fuse_transposed(&ts);
                        let bias = if bias {
                            let mut b = Vec::new();
                            for s in parts {
                                b.extend_from_slice(&get(weights, &p(&format!("{s}.bias")))?.data);
                            }
                            Some(up1(
                                &HostTensor {
                                    shape: vec![b.len()],
                                    data: b,
                                },
                                float,
                            ))
                        } else {
                            None
                        };
                        Ok(Linear {
                            weight: up2(data, shape),
                            bias,
                        })
                    };
                    blocks.push(Block {
                        attn_norm: rms("input_layernorm.weight")?,
                        qkv: lin(
                            &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                            c.attention_bias,
                        )?,
                        out: lin(&["self_attn.o_proj"], false)?,
                        mlp_norm: rms("post_attention_layernorm.weight")?,
                        mlp: Mlp::SwiGlu {
                            gate_up: lin(&["mlp.gate_proj", "mlp.up_proj"], false)?,
                            down: lin(&["mlp.down_proj"], false)?,
                            inter: c.intermediate_size,
                        },
                    });
                }
                embed = get(weights, "model.embed_tokens.weight")?;
                positions = None;
                rope = Some(rope_tables(c, device, float));
                final_norm = Norm::Rms {
                    weight: up1(get(weights, "model.norm.weight")?, FloatDType::F32),
                    eps: c.norm_eps,
                };
                head = if c.tie_word_embeddings {
                    embed
                } else {
                    get(weights, "lm_head.weight")?
                };
            }
            Architecture::Gpt2 => {
                for l in 0..c.num_layers {
                    let p = |s: &str| format!("h.{l}.{s}");
                    let ln = |s: &str| -> Result<Norm, EngineError> {
                        Ok(Norm::Layer {
                            weight: up1(get(weights, &p(&format!("{s}.weight")))?, FloatDType::F32),
                            bias: up1(get(weights, &p(&format!("{s}.bias")))?, FloatDType::F32),
                            eps: c.norm_eps,
                        })
                    };
                    // Conv1D weights are already [in, out].
                    let conv = |s: &str| -> Result<Linear, EngineError> {
                        let w = get(weights, &p(&format!("{s}.weight")))?;
                        Ok(Linear {
                            weight: up2(w.data.clone(), [w.shape[0], w.shape[1]]),
                            bias: Some(up1(get(weights, &p(&format!("{s}.bias")))?, float)),
                        })
                    };
                    blocks.push(Block {
                        attn_norm: ln("ln_1")?,
                        qkv: conv("attn.c_attn")?,
                        out: conv("attn.c_proj")?,
                        mlp_norm: ln("ln_2")?,
                        mlp: Mlp::Gelu {
                            fc: conv("mlp.c_fc")?,
                            proj: conv("mlp.c_proj")?,
                        },
                    });
                }
                embed = get(weights, "wte.weight")?;
                let wpe = get(weights, "wpe.weight")?;
                positions = Some(up2(wpe.data.clone(), [wpe.shape[0], wpe.shape[1]]));
                rope = None;
                final_norm = Norm::Layer {
                    weight: up1(get(weights, "ln_f.weight")?, FloatDType::F32),
                    bias: up1(get(weights, "ln_f.bias")?, FloatDType::F32),
                    eps: c.norm_eps,
                };
                head = embed;
            }
        }
        let (head_data, head_shape) = fuse_transposed(&[head]);
        debug_assert_eq!(head_shape, [h, v]);
        Ok(Self {
            embed: up2(embed.data.clone(), [v, h]),
            lm_head: up2(head_data, head_shape),
            positions,
            rope,
            blocks,
            final_norm,
            config,
            device: device.clone(),
            dtype: float,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs one step over `batch` and returns the requested logits as f32 `[rows, vocab]`,
    /// rows in batch order (`Logits::All` contributes one row per new token), or `None` when
    /// no entry asked for logits. Every entry's cache grows by its token count.
    ///
    /// The caller keeps every `cache.len() + tokens.len()` within the model's
    /// `max_position_embeddings` and gives every entry at least one token.
    pub fn forward(&self, batch: &mut [BatchEntry<'_>]) -> Option<Tensor<2>> {
        let c = &self.config;
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let group = nh / nkv;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut ids = Vec::new();
        let mut pos = Vec::new();
        let mut rows = Vec::new();
        for e in batch.iter() {
            let start = e.cache.len();
            debug_assert!(!e.tokens.is_empty());
            debug_assert!(start + e.tokens.len() <= c.max_position_embeddings);
            let first_row = ids.len();
            ids.extend(e.tokens.iter().map(|&t| i64::from(t)));
            pos.extend((start..start + e.tokens.len()).map(|p| p as i64));
            match e.logits {
                Logits::None => {}
                Logits::Last => rows.push(ids.len() as i64 - 1),
                Logits::All => rows.extend(first_row as i64..ids.len() as i64),
            }
        }
        let t = ids.len();
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &self.device)
        };
        let pos_ids = int(pos);
        let mut x = self.embed.clone().select(0, int(ids));
        if let Some(wpe) = &self.positions {
            x = x + wpe.clone().select(0, pos_ids.clone());
        }
        let rope = self.rope.as_ref().map(|(cos, sin)| {
            (
                cos.clone().select(0, pos_ids.clone()).reshape([t, 1, hd]),
                sin.clone().select(0, pos_ids.clone()).reshape([t, 1, hd]),
            )
        });
        for (l, block) in self.blocks.iter().enumerate() {
            let qkv = block
                .qkv
                .forward(block.attn_norm.forward(x.clone(), self.dtype));
            let mut q = qkv.clone().slice([0..t, 0..nh * hd]).reshape([t, nh, hd]);
            let mut k = qkv
                .clone()
                .slice([0..t, nh * hd..(nh + nkv) * hd])
                .reshape([t, nkv, hd]);
            let v = qkv
                .slice([0..t, (nh + nkv) * hd..(nh + 2 * nkv) * hd])
                .reshape([t, nkv, hd]);
            if let Some((cos, sin)) = &rope {
                q = apply_rope(q, cos, sin);
                k = apply_rope(k, cos, sin);
            }
            let mut outs = Vec::with_capacity(batch.len());
            let mut row = 0;
            for e in batch.iter_mut() {
                let n = e.tokens.len();
                let start = e.cache.len();
                let r = row..row + n;
                row += n;
                // [n, heads, hd] -> [kv_heads, group * n, hd]: query heads that share a kv
                // head are adjacent, so GQA needs no copy of the cache.
                let qi = q
                    .clone()
                    .slice([r.clone(), 0..nh, 0..hd])
                    .swap_dims(0, 1)
                    .reshape([nkv, group * n, hd]);
                let ki = k.clone().slice([r.clone(), 0..nkv, 0..hd]).swap_dims(0, 1);
                let vi = v.clone().slice([r, 0..nkv, 0..hd]).swap_dims(0, 1);
                let (keys, values) = e.cache.append(l, ki, vi);
                let len = start + n;
                let mut scores = qi
                    .matmul(keys.swap_dims(1, 2))
                    .mul_scalar(scale)
                    .cast(FloatDType::F32);
                if n > 1 {
                    scores = scores + causal_bias(n, start, group, &self.device);
                }
                let probs = activation::softmax(scores, 2).cast(self.dtype);
                debug_assert_eq!(probs.dims(), [nkv, group * n, len]);
                let o = probs
                    .matmul(values)
                    .reshape([nh, n, hd])
                    .swap_dims(0, 1)
                    .reshape([n, nh * hd]);
                outs.push(o);
            }
            let attn = if outs.len() == 1 {
                outs.pop().unwrap()
            } else {
                Tensor::cat(outs, 0)
            };
            x = x + block.out.forward(attn);
            x = x.clone() + block.mlp.forward(block.mlp_norm.forward(x, self.dtype));
        }
        for e in batch.iter_mut() {
            e.cache.commit(e.tokens.len());
        }
        if rows.is_empty() {
            return None;
        }
        let n_rows = rows.len();
        let hidden = if n_rows == t {
            x
        } else {
            x.select(0, int(rows))
        };
        let logits = self
            .final_norm
            .forward(hidden, self.dtype)
            .matmul(self.lm_head.clone());
        debug_assert_eq!(logits.dims(), [n_rows, c.vocab_size]);
        Some(logits.cast(FloatDType::F32))
    }
}

/// Reads f32 logits `[rows, vocab]` back to the host, one `Vec` per row.
pub fn logits_to_rows(logits: Tensor<2>) -> Vec<Vec<f32>> {
    let [rows, vocab] = logits.dims();
    let flat: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("logits are f32 after convert");
    debug_assert_eq!(flat.len(), rows * vocab);
    flat.chunks_exact(vocab).map(<[f32]>::to_vec).collect()
}

/// HF Llama rotary tables: `inv_freq[j] = theta^(-2j / d)`, each angle duplicated across the
/// two halves of the head (`rotate_half` convention).
fn rope_tables(c: &ModelConfig, device: &Device, dtype: FloatDType) -> (Tensor<2>, Tensor<2>) {
    let (p, d) = (c.max_position_embeddings, c.head_dim);
    let mut cos = vec![0.0f32; p * d];
    let mut sin = vec![0.0f32; p * d];
    for pos in 0..p {
        for j in 0..d / 2 {
            let inv_freq = c.rope_theta.powf(-2.0 * j as f64 / d as f64);
            let angle = pos as f64 * inv_freq;
            for half in [0, d / 2] {
                cos[pos * d + half + j] = angle.cos() as f32;
                sin[pos * d + half + j] = angle.sin() as f32;
            }
        }
    }
    let up = |v: Vec<f32>| {
        Tensor::<2>::from_data(TensorData::new(v, [p, d]), (device, DType::from(dtype)))
    };
    (up(cos), up(sin))
}

/// `x * cos + rotate_half(x) * sin`, with `rotate_half([a, b]) = [-b, a]`.
/// `x`: `[tokens, heads, head_dim]`; `cos`, `sin`: `[tokens, 1, head_dim]`.
fn apply_rope(x: Tensor<3>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<3> {
    let [t, h, d] = x.dims();
    let first = x.clone().slice([0..t, 0..h, 0..d / 2]);
    let second = x.clone().slice([0..t, 0..h, d / 2..d]);
    let rotated = Tensor::cat(vec![second.neg(), first], 2);
    x * cos.clone() + rotated * sin.clone()
}

/// Additive causal mask `[1, group * n, start + n]` for `n` new tokens after `start` cached
/// ones: row `g * n + i` (query token `i`) sees keys `0..=start + i`.
fn causal_bias(n: usize, start: usize, group: usize, device: &Device) -> Tensor<3> {
    let len = start + n;
    let mut bias = vec![0.0f32; group * n * len];
    for g in 0..group {
        for i in 0..n {
            let row = (g * n + i) * len;
            bias[row + start + i + 1..row + len].fill(f32::NEG_INFINITY);
        }
    }
    Tensor::from_data(
        TensorData::new(bias, [1, group * n, len]),
        (device, DType::F32),
    )
}

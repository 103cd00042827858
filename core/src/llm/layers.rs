//! The decoder's layers one by one: what each mixes tokens with and which MLP follows it.
//!
//! Today's LLMs are not a stack of identical blocks. DeepSeek-V3 keeps its first three MLPs
//! dense and routes the rest through 256 experts; its attention is multi-head *latent*
//! attention (MLA, DeepSeek-V2 paper, arXiv:2405.04434), which caches one compressed
//! `kv_lora_rank + qk_rope_head_dim` vector per token and layer instead of K and V per head;
//! gpt-oss alternates sliding-window and full attention (`layer_types`); Qwen3.5 puts one
//! full-attention layer after every three Gated DeltaNet (linear attention) layers, and
//! Nemotron-H interleaves Mamba-2 layers (`hybrid_override_pattern`). Linear-attention and
//! Mamba layers hold a fixed state per sequence, not a cache that grows with the context.
//!
//! [`LayerPlan`] reads those facts from the config once (following the keys of the reference
//! implementations in Hugging Face `transformers`: `modeling_deepseek_v3`, `modeling_qwen3_next`,
//! `modeling_nemotron_h`, `modeling_gpt_oss`), so `spec`'s arithmetic walks the layers without
//! knowing any `model_type`. A key that changes the layout in a way pilot does not model
//! (compressed attention, hyper-connections, per-block NAS configs, latent MoE, ...) or a layer
//! type it does not know is refused with [`ModelError::Unsupported`]: a wrong parameter or KV
//! count would silently mis-size every deployment built on it.

use super::config::keys;
use super::{HfConfig, ModelError};
use serde_json::{Map, Value};

/// How one layer mixes information across tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mixer {
    /// Softmax attention over the whole context (MHA/GQA/MQA): K and V cached per token.
    Attention,
    /// Softmax attention over the last `window` tokens only: the cache stops growing there.
    SlidingAttention { window: u32 },
    /// Multi-head latent attention ([`MlaShape`]): one compressed vector cached per token.
    Latent,
    /// Linear attention (Gated DeltaNet, [`LinearAttentionShape`]): a fixed state per sequence.
    LinearAttention,
    /// A Mamba-2 state-space layer ([`MambaShape`]): a fixed state per sequence.
    Mamba,
    /// No token mixing (Nemotron-H's MLP-only layers).
    None,
}

/// The feed-forward part of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ffn {
    /// One MLP of width `intermediate` (every token runs through it).
    Dense,
    /// Routed experts ([`MoeShape`]), plus shared experts where the model has them.
    Moe,
    /// No MLP (Nemotron-H's Mamba and attention layers).
    None,
}

/// One decoder layer: its token mixer and its MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub mixer: Mixer,
    pub ffn: Ffn,
}

/// Mixture-of-experts widths and counts (every MoE layer of a model has the same shape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeShape {
    /// Routed experts per MoE layer (`n_routed_experts` / `num_experts` / `num_local_experts`).
    pub experts: u32,
    /// Routed experts each token runs through (`num_experts_per_tok`).
    pub experts_per_token: u32,
    /// One routed expert's MLP width (`moe_intermediate_size`; Mixtral-style configs, which
    /// have no such key, use `intermediate_size`).
    pub expert_intermediate: u32,
    /// Total MLP width of the shared experts every token runs through (0 if none):
    /// `n_shared_experts x moe_intermediate_size` (DeepSeek), `shared_expert_intermediate_size`
    /// (Qwen), `moe_shared_expert_intermediate_size` (Nemotron-H), `share_expert_dim` (Step).
    pub shared_intermediate: u32,
    /// Qwen's sigmoid gate on the shared expert (`hidden` weights).
    pub shared_gate: bool,
    /// A per-expert router bias (DeepSeek's `noaux_tc` score correction, gpt-oss's router).
    pub router_bias: bool,
    /// Biases on the expert projections (gpt-oss).
    pub expert_bias: bool,
    /// Latent MoE (Nemotron 3 Super/Ultra, `moe_latent_size`): the routed experts work on a
    /// projection of the hidden state to this width (one down- and one up-projection per
    /// layer, shared by the experts); `None`: they work on the hidden state.
    pub latent: Option<u32>,
}

/// Multi-head latent attention widths (DeepSeek-V2/V3, Kimi-K2, GLM-5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlaShape {
    /// Rank of the query compression (`q_lora_rank`; `None`: queries projected directly).
    pub q_lora_rank: Option<u32>,
    /// Width of the compressed K/V latent (`kv_lora_rank`), cached per token.
    pub kv_lora_rank: u32,
    /// Per-head query/key width without rotary embedding (`qk_nope_head_dim`).
    pub qk_nope_head_dim: u32,
    /// Per-head rotary width (`qk_rope_head_dim`), shared by all heads and cached per token.
    pub qk_rope_head_dim: u32,
    /// Per-head value width (`v_head_dim`).
    pub v_head_dim: u32,
    /// DeepSeek sparse attention's lightning indexer (`index_n_heads`, `index_head_dim`), which
    /// caches one `index_head_dim` key per token and layer besides the latent.
    pub indexer: Option<(u32, u32)>,
}

/// Gated DeltaNet linear-attention widths (Qwen3-Next, Qwen3.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearAttentionShape {
    /// `linear_num_key_heads`, `linear_key_head_dim`.
    pub key_heads: u32,
    pub key_head_dim: u32,
    /// `linear_num_value_heads`, `linear_value_head_dim`.
    pub value_heads: u32,
    pub value_head_dim: u32,
    /// `linear_conv_kernel_dim`: the short causal convolution before the recurrence.
    pub conv_kernel: u32,
}

/// Mamba-2 widths (Nemotron-H).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MambaShape {
    /// `mamba_num_heads` x `mamba_head_dim` = the inner width.
    pub heads: u32,
    pub head_dim: u32,
    /// `n_groups` of B/C projections, each `ssm_state_size` wide.
    pub groups: u32,
    pub state_size: u32,
    /// `conv_kernel`.
    pub conv_kernel: u32,
    /// `mamba_proj_bias`, `use_conv_bias`.
    pub proj_bias: bool,
    pub conv_bias: bool,
}

/// Every layer of a decoder, with the shapes its kinds need.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    pub layers: Vec<Layer>,
    pub moe: Option<MoeShape>,
    pub mla: Option<MlaShape>,
    pub linear: Option<LinearAttentionShape>,
    pub mamba: Option<MambaShape>,
    /// Multi-token-prediction modules (`num_nextn_predict_layers`, `mtp_num_hidden_layers`,
    /// MiniMax's `num_mtp_modules`): extra layers for speculative decoding, counted apart.
    pub mtp_layers: u32,
    /// Width of the dense layers' MLP (`intermediate_size`; 0 for a model without any).
    pub dense_intermediate: u32,
    /// The dense MLP is gated (SwiGLU, three matrices) rather than plain (Nemotron's relu2).
    pub gated: bool,
    /// Each layer's own dense MLP width, where they differ (Llama-Nemotron's NAS blocks);
    /// empty: every dense layer is `dense_intermediate` wide.
    pub dense_widths: Vec<u32>,
    /// One norm per sublayer present (NAS blocks drop a skipped sublayer's norm with it),
    /// rather than the architecture's fixed count per layer.
    pub norm_per_sublayer: bool,
}

/// Llama-Nemotron's per-layer `block_configs` (DeciLM / Puzzle NAS): attention skipped or with
/// its own K/V grouping, an MLP of its own width (`ffn_mult`) or skipped.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NasBlocks {
    pub(super) kv_heads: Vec<u32>,
    pub(super) widths: Vec<u32>,
    pub(super) mixers: Vec<Mixer>,
    pub(super) ffns: Vec<Ffn>,
}

/// Reads `block_configs` where the config has them. The MLP width follows the reference code
/// (`_ffn_mult_to_intermediate_size`): `2 x ffn_mult x hidden / 3`, rounded up to a multiple of
/// 256. A block replaced by a linear layer, sparsified or windowed is refused.
pub(super) fn nas_blocks(
    cfg: &HfConfig,
    id: &str,
    hidden: u64,
    heads: u64,
    n_layers: u64,
) -> Result<Option<NasBlocks>, ModelError> {
    let Some(blocks) = cfg
        .language_model()
        .get("block_configs")
        .and_then(Value::as_array)
    else {
        return Ok(None);
    };
    if blocks.len() as u64 != n_layers {
        return Err(malformed(
            id,
            format!(
                "'block_configs' has {} blocks but the model has {n_layers} layers",
                blocks.len()
            ),
        ));
    }
    let mut nas = NasBlocks {
        kv_heads: Vec::new(),
        widths: Vec::new(),
        mixers: Vec::new(),
        ffns: Vec::new(),
    };
    let empty = Map::new();
    for (i, b) in blocks.iter().enumerate() {
        let part = |k: &str| b.get(k).and_then(Value::as_object).unwrap_or(&empty);
        let (attn, ffn) = (part("attention"), part("ffn"));
        for (sub, o) in [("attention", attn), ("ffn", ffn)] {
            for key in [
                "replace_with_linear",
                "sparsify",
                "window_length",
                "num_sink_tokens",
            ] {
                if set(o, key) {
                    return Err(unsupported(
                        id,
                        format!(
                            "a NAS block whose {sub} sets '{key}' (block {i} of 'block_configs')"
                        ),
                    ));
                }
            }
        }
        if set(attn, "no_op") {
            nas.mixers.push(Mixer::None);
            nas.kv_heads.push(0);
        } else {
            let group = count(attn, "n_heads_in_group", id)?
                .filter(|&g| g > 0 && heads.is_multiple_of(g as u64))
                .ok_or_else(|| {
                    malformed(
                        id,
                        format!(
                            "block {i} of 'block_configs' needs an 'n_heads_in_group' that divides \
                             the {heads} heads"
                        ),
                    )
                })?;
            nas.mixers.push(Mixer::Attention);
            nas.kv_heads.push((heads / group as u64) as u32);
        }
        if set(ffn, "no_op") {
            nas.ffns.push(Ffn::None);
            nas.widths.push(0);
        } else {
            let mult = ffn.get("ffn_mult").and_then(Value::as_f64).ok_or_else(|| {
                malformed(
                    id,
                    format!("block {i} of 'block_configs' gives no 'ffn_mult'"),
                )
            })?;
            let width = (2.0 * mult * hidden as f64 / 3.0) as u64;
            nas.ffns.push(Ffn::Dense);
            nas.widths.push(width.div_ceil(256) as u32 * 256);
        }
    }
    Ok(Some(nas))
}

/// Keys whose presence changes the layer layout in ways pilot does not model, with what they
/// are. Checked before anything else is read, so such a model is refused, not mis-counted.
const UNMODELLED: &[(&str, &str)] = &[
    (
        "compress_ratios",
        "compressed sparse attention with per-layer compression ratios",
    ),
    (
        "hc_mult",
        "hyper-connections (several residual streams per layer)",
    ),
    ("o_lora_rank", "a low-rank grouped output projection"),
    (
        "linear_attn_config",
        "Kimi Delta Attention (linear attention with its own layout)",
    ),
    ("sparse_attention_config", "per-layer sparse attention"),
    (
        "hybrid_layer_pattern",
        "a hybrid layout with different head counts per layer kind",
    ),
    ("attention_k_eq_v", "attention whose keys double as values"),
    (
        "global_head_dim",
        "different head widths for global and local layers",
    ),
    (
        "num_kv_shared_layers",
        "layers that reuse another layer's K/V cache",
    ),
    (
        "dense_intermediate_size",
        "dense layers with their own MLP width beside the experts'",
    ),
];

fn unsupported(id: &str, feature: String) -> ModelError {
    ModelError::Unsupported {
        source_name: id.to_string(),
        feature,
    }
}

fn malformed(id: &str, reason: String) -> ModelError {
    ModelError::Malformed {
        source_name: id.to_string(),
        reason,
    }
}

/// A key's value as a count, `None` when absent or null.
fn count(obj: &Map<String, Value>, key: &str, id: &str) -> Result<Option<u32>, ModelError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                malformed(
                    id,
                    format!("key '{key}' should be a non-negative integer, found {v}"),
                )
            }),
    }
}

/// The first of `keys` present, as a count.
fn first_count(
    obj: &Map<String, Value>,
    names: &[&str],
    id: &str,
) -> Result<Option<u32>, ModelError> {
    for k in names {
        if let Some(n) = count(obj, k, id)? {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

fn required(obj: &Map<String, Value>, key: &str, what: &str, id: &str) -> Result<u32, ModelError> {
    count(obj, key, id)?.ok_or_else(|| malformed(id, format!("{what} needs key '{key}'")))
}

/// True when a key holds something other than null, false, 0 or an empty list/object.
fn set(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// A per-layer list of strings (`layer_types`), checked against the layer count.
fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    layers: usize,
    id: &str,
) -> Result<Option<Vec<String>>, ModelError> {
    let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| malformed(id, format!("key '{key}' should be a list, found {v}")))?;
    let list: Vec<String> = items
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| malformed(id, format!("key '{key}' should hold strings, found {x}")))
        })
        .collect::<Result<_, _>>()?;
    if list.len() != layers {
        return Err(malformed(
            id,
            format!(
                "'{key}' has {} entries but the model has {layers} layers",
                list.len()
            ),
        ));
    }
    Ok(Some(list))
}

/// Refuses a config that uses a layout pilot does not model (see `UNMODELLED`); checked
/// before anything else is read, so the error names the feature, not a key it lacks.
pub(super) fn refuse_unmodelled(cfg: &HfConfig, id: &str) -> Result<(), ModelError> {
    let obj = cfg.language_model();
    match UNMODELLED.iter().find(|(key, _)| set(obj, key)) {
        Some((key, what)) => Err(unsupported(id, format!("{what} (config key '{key}')"))),
        None => Ok(()),
    }
}

impl LayerPlan {
    /// Every layer full attention with a dense MLP: the classic decoder (and what every
    /// family but the Llama-like one is).
    pub(super) fn uniform(layers: u32, intermediate: u32, gated: bool) -> LayerPlan {
        LayerPlan {
            layers: vec![
                Layer {
                    mixer: Mixer::Attention,
                    ffn: Ffn::Dense,
                };
                layers as usize
            ],
            moe: None,
            mla: None,
            linear: None,
            mamba: None,
            mtp_layers: 0,
            dense_intermediate: intermediate,
            gated,
            dense_widths: Vec::new(),
            norm_per_sublayer: false,
        }
    }

    /// The plan of a NAS-searched decoder ([`NasBlocks`]): gated MLPs of per-layer widths.
    pub(super) fn from_blocks(nas: &NasBlocks) -> LayerPlan {
        LayerPlan {
            layers: nas
                .mixers
                .iter()
                .zip(&nas.ffns)
                .map(|(&mixer, &ffn)| Layer { mixer, ffn })
                .collect(),
            moe: None,
            mla: None,
            linear: None,
            mamba: None,
            mtp_layers: 0,
            dense_intermediate: nas.widths.iter().copied().max().unwrap_or(0),
            gated: true,
            dense_widths: nas.widths.clone(),
            norm_per_sublayer: true,
        }
    }

    /// Reads the layer layout of a Llama-like decoder (`n_layers` blocks) from its config.
    /// `intermediate` is `intermediate_size` where the config has one.
    pub(super) fn read(
        cfg: &HfConfig,
        id: &str,
        n_layers: u32,
        intermediate: Option<u32>,
    ) -> Result<LayerPlan, ModelError> {
        let obj = cfg.language_model();
        let n = n_layers as usize;
        let mt = cfg.model_type.as_deref().unwrap_or("");
        let gated = !matches!(
            obj.get("mlp_hidden_act").and_then(Value::as_str),
            Some("relu2")
        );

        // Mixture of experts: the expert count and width, shared experts, router details.
        let experts = cfg.num_experts.unwrap_or(1);
        let moe = if experts > 1 {
            let per_token = cfg.experts_per_token.unwrap_or(2).min(experts);
            let expert_intermediate =
                match count(obj, "moe_intermediate_size", id)?.or(intermediate) {
                    Some(w) if w > 0 => w,
                    _ => {
                        return Err(malformed(
                            id,
                            "a mixture-of-experts model needs the experts' MLP width: looked for \
                         'moe_intermediate_size' and 'intermediate_size'"
                                .into(),
                        ));
                    }
                };
            let n_shared =
                first_count(obj, &["n_shared_experts", "num_shared_experts"], id)?.unwrap_or(0);
            let qwen_shared = count(obj, "shared_expert_intermediate_size", id)?;
            let shared_intermediate = match (
                qwen_shared,
                count(obj, "moe_shared_expert_intermediate_size", id)?,
                count(obj, "shared_intermediate_size", id)?,
                count(obj, "share_expert_dim", id)?,
            ) {
                (Some(w), ..) | (_, Some(w), ..) | (_, _, Some(w), _) | (.., Some(w)) => w,
                // Llama 4's MoE layers hold one shared expert as wide as a routed one.
                _ if mt.starts_with("llama4") => expert_intermediate,
                _ => n_shared * expert_intermediate,
            };
            let router_bias = obj.get("topk_method").and_then(Value::as_str) == Some("noaux_tc")
                || set(obj, "use_routing_bias")
                || set(obj, "use_moe_router_bias")
                || mt == "gpt_oss"
                || mt == "nemotron_h";
            Some(MoeShape {
                experts: u32::try_from(experts)
                    .map_err(|_| malformed(id, format!("expert count {experts} is too large")))?,
                experts_per_token: per_token as u32,
                expert_intermediate,
                shared_intermediate,
                shared_gate: qwen_shared.is_some_and(|w| w > 0),
                router_bias,
                expert_bias: mt == "gpt_oss",
                latent: count(obj, "moe_latent_size", id)?.filter(|&l| l > 0),
            })
        } else {
            None
        };

        let mla = match count(obj, "kv_lora_rank", id)? {
            Some(kv_lora_rank) => Some(MlaShape {
                q_lora_rank: count(obj, "q_lora_rank", id)?,
                kv_lora_rank,
                qk_nope_head_dim: required(obj, "qk_nope_head_dim", "latent attention", id)?,
                qk_rope_head_dim: required(obj, "qk_rope_head_dim", "latent attention", id)?,
                v_head_dim: required(obj, "v_head_dim", "latent attention", id)?,
                indexer: match count(obj, "index_topk", id)? {
                    Some(_) => Some((
                        required(obj, "index_n_heads", "the sparse-attention indexer", id)?,
                        required(obj, "index_head_dim", "the sparse-attention indexer", id)?,
                    )),
                    None => None,
                },
            }),
            None => None,
        };
        let full = if mla.is_some() {
            Mixer::Latent
        } else {
            Mixer::Attention
        };

        // Token mixers, from the first per-layer description the config has.
        let mut linear = None;
        let mut mamba = None;
        let mut ffn_fixed: Option<Vec<Ffn>> = None;
        // Nemotron-H writes its layout as a pattern string; later exports as a list of names.
        let pattern: Option<String> =
            match obj.get("hybrid_override_pattern").and_then(Value::as_str) {
                Some(p) => Some(p.to_string()),
                None => string_list(obj, "layers_block_type", n, id)?
                    .map(|kinds| {
                        kinds
                            .iter()
                            .map(|k| match k.as_str() {
                                "mamba" => Ok('M'),
                                "attention" => Ok('*'),
                                "mlp" => Ok('-'),
                                "moe" => Ok('E'),
                                other => Err(unsupported(
                                    id,
                                    format!(
                                        "layer kind '{other}' in 'layers_block_type' (pilot knows \
                                     mamba, attention, mlp and moe)"
                                    ),
                                )),
                            })
                            .collect::<Result<String, _>>()
                    })
                    .transpose()?,
            };
        if pattern.is_none() && mt == "nemotron_h" {
            return Err(malformed(
                id,
                "a Nemotron-H config must give its layer layout: looked for \
                 'hybrid_override_pattern' and 'layers_block_type'"
                    .into(),
            ));
        }
        let mixers: Vec<Mixer> = if let Some(pattern) = pattern {
            // Nemotron-H: one character per layer; each layer is a mixer *or* an MLP.
            if pattern.chars().count() != n {
                return Err(malformed(
                    id,
                    format!(
                        "'hybrid_override_pattern' has {} layers but the model has {n}",
                        pattern.chars().count()
                    ),
                ));
            }
            let mut mixers = Vec::with_capacity(n);
            let mut ffns = Vec::with_capacity(n);
            for c in pattern.chars() {
                let (m, f) = match c {
                    'M' => (Mixer::Mamba, Ffn::None),
                    '*' => (full, Ffn::None),
                    '-' => (Mixer::None, Ffn::Dense),
                    'E' if moe.is_some() => (Mixer::None, Ffn::Moe),
                    other => {
                        return Err(unsupported(
                            id,
                            format!(
                                "layer kind '{other}' in 'hybrid_override_pattern' (pilot knows \
                                 M = Mamba, * = attention, - = MLP, E = experts)"
                            ),
                        ));
                    }
                };
                mixers.push(m);
                ffns.push(f);
            }
            ffn_fixed = Some(ffns);
            mixers
        } else if let Some(types) = string_list(obj, "layer_types", n, id)? {
            let window = count(obj, "sliding_window", id)?;
            types
                .iter()
                .map(|t| match t.as_str() {
                    "full_attention" | "attention" | "global_attention" => Ok(full),
                    // GLM-5.2's name for latent attention with the sparse-attention indexer.
                    "deepseek_sparse_attention" if mla.is_some_and(|m| m.indexer.is_some()) => {
                        Ok(full)
                    }
                    "sliding_attention" | "sliding_window_attention" | "local_attention" => {
                        match window {
                            Some(w) if w > 0 => Ok(Mixer::SlidingAttention { window: w }),
                            _ => Err(malformed(
                                id,
                                "'layer_types' names sliding_attention layers but \
                                 'sliding_window' gives no window"
                                    .into(),
                            )),
                        }
                    }
                    "linear_attention" => Ok(Mixer::LinearAttention),
                    other => Err(unsupported(
                        id,
                        format!(
                            "layer type '{other}' in 'layer_types' (pilot knows full_attention, \
                             sliding_attention and linear_attention)"
                        ),
                    )),
                })
                .collect::<Result<_, _>>()?
        } else if let (Some(p), Some(w)) = (
            count(obj, "sliding_window_pattern", id)?,
            count(obj, "sliding_window", id)?,
        ) {
            // Gemma-3 style: every p-th layer is global, the others slide.
            (0..n)
                .map(|i| {
                    if p > 0 && (i + 1) % p as usize == 0 {
                        full
                    } else {
                        Mixer::SlidingAttention { window: w }
                    }
                })
                .collect()
        } else if let Some(chunk) = count(obj, "attention_chunk_size", id)?.filter(|&c| c > 0) {
            // Llama 4: rotary layers attend within chunks of `attention_chunk_size` tokens (a
            // cache of at most one chunk, counted as a window of that size); the others
            // (`no_rope_layers[i] == 0`; by default every fourth) attend globally.
            let rope: Vec<bool> = match obj.get("no_rope_layers").and_then(Value::as_array) {
                Some(a) if a.len() == n => a.iter().map(|v| v.as_u64() != Some(0)).collect(),
                Some(a) => {
                    return Err(malformed(
                        id,
                        format!(
                            "'no_rope_layers' has {} entries but the model has {n} layers",
                            a.len()
                        ),
                    ));
                }
                None if mt.starts_with("llama4") => (0..n).map(|i| (i + 1) % 4 != 0).collect(),
                None => {
                    return Err(unsupported(
                        id,
                        "chunked attention without a per-layer pattern (config key \
                         'attention_chunk_size')"
                            .into(),
                    ));
                }
            };
            rope.into_iter()
                .map(|r| {
                    if r {
                        Mixer::SlidingAttention { window: chunk }
                    } else {
                        full
                    }
                })
                .collect()
        } else {
            // A bare `sliding_window` on every layer (Mistral-7B-v0.1) stays full attention,
            // as pilot has always counted it.
            vec![full; n]
        };
        if mixers.contains(&Mixer::LinearAttention) {
            let need = |k: &str| required(obj, k, "linear attention", id);
            linear = Some(LinearAttentionShape {
                key_heads: need("linear_num_key_heads")?,
                key_head_dim: need("linear_key_head_dim")?,
                value_heads: need("linear_num_value_heads")?,
                value_head_dim: need("linear_value_head_dim")?,
                conv_kernel: count(obj, "linear_conv_kernel_dim", id)?.unwrap_or(4),
            });
        }
        if mixers.contains(&Mixer::Mamba) {
            let need = |k: &str| required(obj, k, "a Mamba layer", id);
            mamba = Some(MambaShape {
                heads: need("mamba_num_heads")?,
                head_dim: need("mamba_head_dim")?,
                groups: count(obj, "n_groups", id)?.unwrap_or(1),
                state_size: need("ssm_state_size")?,
                conv_kernel: count(obj, "conv_kernel", id)?.unwrap_or(4),
                proj_bias: set(obj, "mamba_proj_bias"),
                conv_bias: obj.get("use_conv_bias").and_then(Value::as_bool) != Some(false),
            });
        }

        // Which layers route through experts.
        let ffns = match ffn_fixed {
            Some(f) => f,
            None if moe.is_none() => vec![Ffn::Dense; n],
            None => {
                let first_dense = count(obj, "first_k_dense_replace", id)?.unwrap_or(0) as usize;
                let only_dense: Vec<u64> = obj
                    .get("mlp_only_layers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                // Qwen-MoE's `decoder_sparse_step` and Llama 4's `interleave_moe_layer_step`:
                // every k-th layer (1-based) routes through experts.
                let sparse_step = first_count(
                    obj,
                    &["decoder_sparse_step", "interleave_moe_layer_step"],
                    id,
                )?
                .unwrap_or(1)
                .max(1);
                let freq = obj.get("moe_layer_freq");
                (0..n)
                    .map(|i| {
                        let by_freq = match freq {
                            Some(Value::Array(a)) => {
                                a.get(i).and_then(Value::as_u64).unwrap_or(1) != 0
                            }
                            Some(v) => v
                                .as_u64()
                                .is_none_or(|k| k == 0 || (i as u64).is_multiple_of(k)),
                            None => true,
                        };
                        let moe_layer = i >= first_dense
                            && by_freq
                            && !only_dense.contains(&(i as u64))
                            && (i + 1) % sparse_step as usize == 0;
                        if moe_layer { Ffn::Moe } else { Ffn::Dense }
                    })
                    .collect()
            }
        };
        let layers: Vec<Layer> = mixers
            .into_iter()
            .zip(ffns)
            .map(|(mixer, ffn)| Layer { mixer, ffn })
            .collect();
        // Llama 4 gives its dense layers their own width (`intermediate_size_mlp`).
        let intermediate = count(obj, "intermediate_size_mlp", id)?.or(intermediate);
        let dense_intermediate = if layers.iter().any(|l| l.ffn == Ffn::Dense) {
            match intermediate {
                Some(w) if w > 0 => w,
                _ => {
                    return Err(malformed(
                        id,
                        format!(
                            "missing MLP (intermediate) size for the dense layers: looked for \
                             key(s) {}",
                            keys::INTERMEDIATE.join(", ")
                        ),
                    ));
                }
            }
        } else {
            intermediate.unwrap_or(0)
        };
        let mtp_layers = match first_count(
            obj,
            &["num_nextn_predict_layers", "mtp_num_hidden_layers"],
            id,
        )? {
            Some(k) => k,
            None if set(obj, "use_mtp") => {
                count(obj, "num_mtp_modules", id)?.unwrap_or(1)
                    * count(obj, "mtp_transformer_layers", id)?.unwrap_or(1)
            }
            None => 0,
        };
        Ok(LayerPlan {
            layers,
            moe,
            mla,
            linear,
            mamba,
            mtp_layers,
            dense_intermediate,
            gated,
            dense_widths: Vec::new(),
            norm_per_sublayer: false,
        })
    }

    /// Layers of each mixer kind.
    pub fn count(&self, mixer: fn(&Mixer) -> bool) -> usize {
        self.layers.iter().filter(|l| mixer(&l.mixer)).count()
    }
}

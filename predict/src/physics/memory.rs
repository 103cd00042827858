//! What fits: the memory per GPU left after weights, activations and the runtime, and how many
//! requests the KV cache in it holds. Either can end the estimate with a reason the user can
//! act on ("does not fit" is an answer, not an error).

use super::PhysicsModel;
use super::steps::Shape;
use crate::scenario::Scenario;

/// Memory per GPU, bytes.
pub(super) struct Memory {
    /// What the engine may allocate: its memory-utilisation share less the runtime.
    pub(super) usable: f64,
    /// This GPU's shard of the weights.
    pub(super) weights: f64,
    /// Activation buffers for one prefill chunk.
    pub(super) activations: f64,
    /// What is left for the KV cache (negative: the weights do not fit).
    pub(super) free: f64,
}

/// How many requests the KV cache holds.
pub(super) struct KvBudget {
    /// KV-cache tokens across the GPUs.
    pub(super) tokens: f64,
    /// Tokens one request reserves.
    pub(super) per_request: f64,
    /// Requests in flight at most (below 1: not even one request fits).
    pub(super) batch: f64,
}

fn gb(b: f64) -> f64 {
    b / 1e9
}

impl PhysicsModel {
    /// Memory per GPU for a prompt of `i` tokens. Activations are sized for the larger of the
    /// engine's prefill chunk and the prompt (residual, q/k/v and the MLP intermediate, 16-bit),
    /// because the KV cache is what is left after the largest prefill's buffers.
    pub(super) fn memory(&self, sc: &Scenario, s: &Shape, i: f64) -> Memory {
        let p = &self.params;
        let usable = s.memory_per_gpu * p.memory_utilization - p.runtime_overhead_gb * 1e9;
        // The routed experts spread over the TP · DP GPUs of a stage, the rest over TP (a copy
        // per attention-DP rank); the stages split the layers.
        let weights = (s.weight_bytes - s.routed_bytes() * (1.0 - 1.0 / s.dp)) / s.tp / s.pp;
        let act = p.activation_tokens.max(i)
            * (4.0 * s.hidden + 2.0 * sc.model.intermediate as f64)
            * 2.0
            / s.tp;
        let free = usable - weights - act;
        Memory {
            usable,
            weights,
            activations: act,
            free,
        }
    }

    /// Why the weights do not fit, with both sides of the comparison and what to change.
    pub(super) fn weights_do_not_fit(&self, sc: &Scenario, s: &Shape, m: &Memory) -> String {
        let p = &self.params;
        format!(
            "{} at {} needs {:.1} GB of weights per GPU over {} GPU(s), plus {:.1} GB of activations and runtime, \
             but a {} has {:.1} GB usable ({:.0}% of {:.0} GB); use more or larger GPUs, or a smaller dtype",
            sc.model.id,
            sc.quantization,
            gb(m.weights),
            (s.tp * s.dp * s.pp) as u32,
            gb(m.activations + p.runtime_overhead_gb * 1e9),
            sc.gpu.name,
            gb(s.memory_per_gpu * p.memory_utilization),
            p.memory_utilization * 100.0,
            gb(s.memory_per_gpu),
        )
    }

    /// The KV cache that `free` bytes per GPU hold, and the requests of `i` in / `o` out tokens
    /// it admits. A request reserves its whole length (TGIS and vLLM admission both budget
    /// it), a padded engine its configured longest sequence and copies for re-padding.
    pub(super) fn kv_budget(
        &self,
        sc: &Scenario,
        s: &Shape,
        free: f64,
        i: f64,
        o: f64,
    ) -> KvBudget {
        let p = &self.params;
        let kv_tokens = free * s.kv_split / s.kv_bytes_per_token.max(1e-9);
        let reserved = if s.padded {
            // The server reserves its configured longest sequence; a decoder-only model's trained
            // context bounds what it is started with, but T5's relative position buckets have no
            // table, and TGIS serves flan-t5 (trained at 512) up to its 2048 default: capped at
            // 512, the physics gave flan-t5-xl on one A100 a batch of 256 where 5-9 were measured.
            let cap = match sc.model.max_positions {
                Some(m) if !sc.model.encoder_decoder => m as f64,
                _ => f64::INFINITY,
            };
            (i + o).max(p.padded_sequence_tokens.min(cap))
        } else {
            i + o
        };
        let mut per_request =
            reserved + i * s.cross_kv_bytes_per_token / s.kv_bytes_per_token.max(1e-9);
        if s.padded {
            per_request *= p.padded_kv_copies.max(1.0);
        }
        // Each attention-DP rank schedules its own batch, so the engine's cap is per rank. The
        // cap is the engine table's default for this GPU (vLLM: 1024 sequences on 70 GB and
        // up, 256 below), none where the engine sizes it from its KV pool (SGLang) or its
        // default is not recorded (TensorRT-LLM), and `max_sequences` for engines outside the
        // table's batching defaults.
        let cap = match sc.engine_batch_defaults() {
            Some(d) => d.max_sequences.map_or(f64::INFINITY, f64::from),
            None => p.max_sequences as f64,
        };
        let budget = (kv_tokens / per_request).floor().min(cap * s.dp);
        KvBudget {
            tokens: kv_tokens,
            per_request,
            batch: budget,
        }
    }
}

impl KvBudget {
    /// Why not even one request fits the KV cache left after `weights` bytes per GPU.
    pub(super) fn request_does_not_fit(&self, sc: &Scenario, weights: f64) -> String {
        format!(
            "the KV cache holds {:.0} tokens after {:.1} GB of weights per GPU, but one request needs {:.0} \
             ({} in + {} out); use more or larger GPUs, or shorter requests",
            self.tokens,
            gb(weights),
            self.per_request,
            sc.input_tokens.0,
            sc.output_tokens.0
        )
    }
}

//! Host memory a model needs, checked before anything is allocated.
//!
//! Why: building Mistral-7B's random weights on a 23 GB machine allocated about 29 GB and the
//! process died with an allocator abort and a backtrace, minutes in. The footprint is known
//! from the config before the first byte is allocated, so the engine refuses up front with
//! the numbers and the fix.
//!
//! Peak host memory while loading is the f32 weight map ([`crate::weights::WeightMap`]: every
//! tensor at 4 bytes per parameter, from random init or safetensors) plus, on the CPU backend,
//! the model's own copy in its compute dtype and the KV cache; the host map is dropped once
//! the model is built, but both coexist while it is.

use crate::EngineError;
use crate::config::ModelConfig;
use crate::model::EngineDevice;
use crate::weights::expected_tensors;
use pilot_core::units::Dtype;

/// What loading a model holds in host memory at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters of the model (every tensor it loads).
    pub parameters: u64,
    /// The f32 weight map built before the model.
    pub host_weights: u64,
    /// The model's weights in its compute dtype (0 when they live on a GPU).
    pub model_weights: u64,
    /// The KV cache (0 when it lives on a GPU).
    pub kv_cache: u64,
}

impl Footprint {
    /// The footprint of `config` at `dtype` with a KV cache of `kv_tokens` on `device`.
    pub fn of(config: &ModelConfig, dtype: Dtype, kv_tokens: usize, device: EngineDevice) -> Self {
        let parameters: u64 = expected_tensors(config)
            .iter()
            .map(|(_, shape)| shape.iter().map(|&d| d as u64).product::<u64>())
            .sum();
        let on_host = matches!(device, EngineDevice::Cpu);
        Footprint {
            parameters,
            host_weights: parameters * 4,
            model_weights: if on_host {
                (parameters as f64 * dtype.bytes()) as u64
            } else {
                0
            },
            kv_cache: if on_host {
                kv_tokens as u64 * config.kv_bytes_per_token(dtype)
            } else {
                0
            },
        }
    }

    /// Peak host bytes.
    pub fn peak(&self) -> u64 {
        self.host_weights + self.model_weights + self.kv_cache
    }

    /// Refuses when the peak exceeds `available` bytes, naming both and what to change.
    pub fn check(&self, model: &str, available: u64) -> Result<(), EngineError> {
        if self.peak() <= available {
            return Ok(());
        }
        let gb = |b: u64| b as f64 / 1e9;
        Err(EngineError::OutOfMemory(format!(
            "{model} ({:.2} B parameters) needs about {:.1} GB of host memory to load \
             ({:.1} GB f32 weights being built, {:.1} GB model weights, {:.1} GB KV cache), \
             but {:.1} GB is available; serve a smaller model (e.g. `small-llama`), \
             a smaller --kv-cache-tokens, or run on a machine with more memory",
            self.parameters as f64 / 1e9,
            gb(self.peak()),
            gb(self.host_weights),
            gb(self.model_weights),
            gb(self.kv_cache),
            gb(available),
        )))
    }
}

/// Bytes this process may still allocate: the system's available memory, or the cgroup's
/// free memory when a container limit is lower.
pub fn available_host_memory() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let system = sys.available_memory();
    match sys.cgroup_limits() {
        Some(c) if c.free_memory > 0 => system.min(c.free_memory),
        _ => system,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve_model;

    fn config(name: &str) -> ModelConfig {
        let (name, json) = resolve_model(name).expect("catalog model");
        ModelConfig::from_hf_json(&json, &name).expect("config")
    }

    #[test]
    fn mistral_7b_counts_its_published_parameters_and_is_refused_on_a_small_machine() {
        let c = config("mistral-7b");
        let f = Footprint::of(&c, Dtype::F32, 0, EngineDevice::Cpu);
        // Mistral-7B-v0.1 has 7.24 B parameters.
        let b = f.parameters as f64 / 1e9;
        assert!((b - 7.24).abs() < 0.05, "{b} B parameters");
        let err = f
            .check("mistral-7b", 23_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("23.0 GB is available"), "{err}");
        assert!(err.contains("57.9 GB"), "{err}");
        assert!(f.check("mistral-7b", f.peak()).is_ok());
    }

    #[test]
    fn weights_on_a_gpu_leave_only_the_host_map() {
        let c = config("tiny-llama");
        let cpu = Footprint::of(&c, Dtype::F32, 1024, EngineDevice::Cpu);
        let gpu = Footprint::of(&c, Dtype::F32, 1024, EngineDevice::Cuda(0));
        assert_eq!(gpu.peak(), cpu.host_weights);
        assert!(cpu.peak() > gpu.peak());
        assert!(cpu.kv_cache > 0);
    }
}

//! Prometheus metrics, named as vLLM names them so one scraper reads both servers.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The engine's gauges and counters, shared between the scheduler thread (writer) and the
/// HTTP server (reader). Every series carries a `model_name` label, as in vLLM.
#[derive(Debug)]
pub struct EngineMetrics {
    registry: Registry,
    pub running: Gauge,
    pub waiting: Gauge,
    /// Fraction of KV-cache blocks in use, 0 to 1 (vLLM's `kv_cache_usage_perc` convention).
    pub kv_cache_usage: Gauge<f64, AtomicU64>,
    /// Largest number of sequences one forward step has batched so far.
    pub max_running_observed: Gauge,
    pub prompt_tokens: Counter,
    pub generation_tokens: Counter,
    pub requests_finished: Counter,
    pub preemptions: Counter,
}

impl EngineMetrics {
    pub fn new(model_name: &str) -> Self {
        let labels = [(
            Cow::Borrowed("model_name"),
            Cow::Owned(model_name.to_string()),
        )];
        let mut registry = Registry::with_labels(labels.into_iter());
        let m = Self {
            running: Gauge::default(),
            waiting: Gauge::default(),
            kv_cache_usage: Gauge::default(),
            max_running_observed: Gauge::default(),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            requests_finished: Counter::default(),
            preemptions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "vllm:num_requests_running",
            "Requests in the running batch",
            m.running.clone(),
        );
        registry.register(
            "vllm:num_requests_waiting",
            "Requests waiting to be admitted",
            m.waiting.clone(),
        );
        registry.register(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage: 1 means 100 percent",
            m.kv_cache_usage.clone(),
        );
        registry.register(
            "vllm:gpu_cache_usage_perc",
            "KV-cache usage: 1 means 100 percent (older vLLM name)",
            m.kv_cache_usage.clone(),
        );
        registry.register(
            "pilot:max_num_requests_running",
            "Largest batch of sequences one step has run",
            m.max_running_observed.clone(),
        );
        // Counters get OpenMetrics' `_total` suffix on the wire: vllm:prompt_tokens_total.
        registry.register(
            "vllm:prompt_tokens",
            "Prompt tokens admitted",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "vllm:generation_tokens",
            "Tokens generated",
            m.generation_tokens.clone(),
        );
        registry.register(
            "vllm:request_success",
            "Requests finished",
            m.requests_finished.clone(),
        );
        registry.register(
            "vllm:num_preemptions",
            "Sequences preempted for KV-cache space",
            m.preemptions.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

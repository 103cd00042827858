//! What the server and the GPU were doing during a level: the server's Prometheus `/metrics`
//! (running and waiting requests, KV-cache usage) and, with the `nvml` feature on a machine
//! with an NVIDIA GPU, NVML samples (utilization, memory, power). Both are sampled once a
//! second during the measurement window and averaged into the level's row.
//!
//! Metric names: vLLM's (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
//! `vllm:kv_cache_usage_perc` / older `vllm:gpu_cache_usage_perc`, a 0..1 fraction), which
//! pilot's engine also exports, SGLang's (`sglang:num_running_reqs`, `sglang:num_queue_reqs`,
//! `sglang:token_usage`) and TGI's (`tgi_batch_current_size`, `tgi_queue_size`).

use pilot_core::units::{Gigabytes, Percent, Watts};
use std::time::Duration;

/// One scrape of the gauges we read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerSample {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    pub kv_cache_usage: Option<Percent>,
}

const RUNNING: &[&str] = &[
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "tgi_batch_current_size",
];
const WAITING: &[&str] = &[
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "tgi_queue_size",
];
const KV_FRACTION: &[&str] = &[
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
];

/// Parses a Prometheus / OpenMetrics text exposition for the gauges above. Series of one
/// name with several label sets (several models) are summed (running, waiting) or maxed (KV).
pub fn parse_prometheus(text: &str) -> ServerSample {
    let mut s = ServerSample::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = match line[name_end..].strip_prefix('{') {
            Some(r) => r.rfind('}').map_or("", |i| &r[i + 1..]),
            None => &line[name_end..],
        };
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        if RUNNING.contains(&name) {
            s.running = Some(s.running.unwrap_or(0.0) + value);
        } else if WAITING.contains(&name) {
            s.waiting = Some(s.waiting.unwrap_or(0.0) + value);
        } else if KV_FRACTION.contains(&name) {
            let pct = value * 100.0;
            s.kv_cache_usage = Some(Percent(s.kv_cache_usage.map_or(pct, |p| p.0.max(pct))));
        }
    }
    s
}

/// Means of the samples of one level.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerGauges {
    /// Mean requests in the server's running batch.
    pub running_mean: Option<f64>,
    /// Mean requests queued at the server.
    pub waiting_mean: Option<f64>,
    pub kv_cache_usage: Option<Percent>,
}

impl ServerGauges {
    pub fn mean_of(samples: &[ServerSample]) -> ServerGauges {
        let mean = |f: &dyn Fn(&ServerSample) -> Option<f64>| {
            let v: Vec<f64> = samples.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        ServerGauges {
            running_mean: mean(&|s| s.running),
            waiting_mean: mean(&|s| s.waiting),
            kv_cache_usage: mean(&|s| s.kv_cache_usage.map(|p| p.0)).map(Percent),
        }
    }
}

/// The `/metrics` URL of an OpenAI base URL (`http://h:p/v1` → `http://h:p/metrics`).
pub fn metrics_url(base_url: &str) -> String {
    format!("{}/metrics", server_root(base_url))
}

/// The server's root under its OpenAI base URL (`.../v1` less `/v1`), where `/metrics`,
/// `/health` and `/version` live.
pub fn server_root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

/// Scrapes once; `None` when the server has no usable `/metrics`.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Option<ServerSample> {
    let resp = tokio::time::timeout(Duration::from_secs(2), http.get(url).send())
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = tokio::time::timeout(Duration::from_secs(2), resp.text())
        .await
        .ok()?
        .ok()?;
    let s = parse_prometheus(&text);
    (s != ServerSample::default()).then_some(s)
}

/// One NVML sample, summed (memory, power) or averaged (utilization) over the GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuSample {
    pub utilization: Percent,
    pub memory_used: Gigabytes,
    pub power: Watts,
}

/// Means of NVML samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuGauges {
    pub utilization: Option<Percent>,
    pub memory_used: Option<Gigabytes>,
    pub power: Option<Watts>,
}

impl GpuGauges {
    pub fn mean_of(samples: &[GpuSample]) -> GpuGauges {
        if samples.is_empty() {
            return GpuGauges::default();
        }
        let n = samples.len() as f64;
        GpuGauges {
            utilization: Some(Percent(
                samples.iter().map(|s| s.utilization.0).sum::<f64>() / n,
            )),
            memory_used: Some(Gigabytes(
                samples.iter().map(|s| s.memory_used.0).sum::<f64>() / n,
            )),
            power: Some(Watts(samples.iter().map(|s| s.power.0).sum::<f64>() / n)),
        }
    }
}

/// A source of NVML samples, or the reason there is none.
pub struct GpuSampler {
    #[cfg(feature = "nvml")]
    nvml: Option<nvml_wrapper::Nvml>,
    /// Why GPU telemetry is off, when it is.
    pub unavailable: Option<String>,
}

impl GpuSampler {
    /// Opens NVML (feature `nvml`); otherwise explains why there is no GPU telemetry.
    pub fn open() -> GpuSampler {
        #[cfg(feature = "nvml")]
        {
            match nvml_wrapper::Nvml::init() {
                Ok(nvml) => match nvml.device_count() {
                    Ok(n) if n > 0 => GpuSampler {
                        nvml: Some(nvml),
                        unavailable: None,
                    },
                    _ => GpuSampler {
                        nvml: None,
                        unavailable: Some("NVML found no NVIDIA GPU".into()),
                    },
                },
                Err(e) => GpuSampler {
                    nvml: None,
                    unavailable: Some(format!("no NVIDIA GPU telemetry: NVML did not load ({e})")),
                },
            }
        }
        #[cfg(not(feature = "nvml"))]
        GpuSampler {
            unavailable: Some(
                "no GPU telemetry: this pilot was built without the `nvml` feature".to_string(),
            ),
        }
    }

    /// One sample over every local GPU.
    pub fn sample(&self) -> Option<GpuSample> {
        #[cfg(feature = "nvml")]
        {
            let nvml = self.nvml.as_ref()?;
            let n = nvml.device_count().ok()?;
            let mut s = GpuSample::default();
            for i in 0..n {
                let d = nvml.device_by_index(i).ok()?;
                s.utilization.0 += d.utilization_rates().map_or(0.0, |u| u.gpu as f64) / n as f64;
                s.memory_used.0 += d.memory_info().map_or(0.0, |m| m.used as f64 / 1e9);
                s.power.0 += d.power_usage().map_or(0.0, |mw| mw as f64 / 1e3);
            }
            Some(s)
        }
        #[cfg(not(feature = "nvml"))]
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vllm_and_sglang_gauges() {
        let text = r#"# HELP vllm:num_requests_running Requests in the running batch
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3
vllm:num_requests_running{model_name="b"} 1.0
vllm:num_requests_waiting{model_name="a"} 2
vllm:kv_cache_usage_perc{model_name="a",engine="0"} 0.25
vllm:gpu_cache_usage_perc{model_name="a"} 0.2
vllm:generation_tokens_total{model_name="a"} 128
"#;
        let s = parse_prometheus(text);
        assert_eq!(s.running, Some(4.0));
        assert_eq!(s.waiting, Some(2.0));
        assert_eq!(s.kv_cache_usage, Some(Percent(25.0)));
        let g = parse_prometheus("sglang:num_running_reqs 5\nsglang:token_usage 0.5 1700000000\n");
        assert_eq!(
            (g.running, g.kv_cache_usage),
            (Some(5.0), Some(Percent(50.0)))
        );
        let m = ServerGauges::mean_of(&[
            s,
            ServerSample {
                running: Some(2.0),
                ..Default::default()
            },
        ]);
        assert_eq!(m.running_mean, Some(3.0));
        assert_eq!(metrics_url("http://h:1/v1/"), "http://h:1/metrics");
    }
}

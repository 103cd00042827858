//! The catalogs as `pilot catalog` prints them: one table (the one style of [`crate::table`])
//! and one JSON shape per catalog, beside the data they show rather than in the binary.

use crate::gpu::GpuSpec;
use crate::llm::LlmSpec;
use crate::price::PriceEntry;
use crate::table::table;
use crate::units::Dtype;
use serde_json::json;

/// A number as stored, or `-` when the catalog has none.
fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x}"))
}

/// GPUs: memory, bandwidth, dense peaks (fp4 included), interconnect and the GPUs it joins,
/// power and aliases.
pub fn gpu_table(gpus: &[GpuSpec]) -> String {
    let rows = gpus.iter().map(|g| {
        vec![
            g.name.clone(),
            g.vendor.clone(),
            format!("{}", g.memory.0),
            format!("{}", g.memory_bandwidth.0),
            opt(g.fp16.map(|x| x.0)),
            opt(g.bf16.map(|x| x.0)),
            opt(g.fp8.map(|x| x.0)),
            opt(g.int8.map(|x| x.0)),
            opt(g.fp4.map(|x| x.0)),
            format!("{}", g.intra_node_bandwidth.0),
            g.nvlink_domain.map_or("-".into(), |n| n.to_string()),
            format!("{}", g.tdp.0),
            g.aliases.join(", "),
        ]
    });
    let header = [
        "GPU",
        "vendor",
        "mem GB",
        "BW GB/s",
        "fp16 TF",
        "bf16 TF",
        "fp8 TF",
        "int8 TOPS",
        "fp4 TF",
        "link GB/s",
        "NVLink domain",
        "TDP W",
        "aliases",
    ];
    table(&header, rows)
}

/// LLMs with the sizes pilot derives from their config.json (fp16 weights and KV cache), so
/// a reader can check the arithmetic the predictor starts from.
pub fn model_json(models: &[LlmSpec]) -> serde_json::Value {
    models
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "aliases": m.aliases,
                "model_type": m.model_type,
                "params_total": m.params_total().0,
                "params_active": m.params_active().0,
                "layers": m.layers,
                "hidden": m.hidden,
                "heads": m.heads,
                "kv_heads": m.kv_heads,
                "attention": format!("{:?}", m.attention_kind()),
                "encoder_decoder": m.encoder_decoder,
                "weight_bytes_fp16": m.weight_bytes(Dtype::F16).0,
                "kv_cache_bytes_per_token_fp16": m.kv_cache_bytes_per_token(Dtype::F16).0,
            })
        })
        .collect()
}

/// LLMs: what `--model` accepts, with parameters (active ones apart for MoE), layers,
/// attention and fp16 sizes.
/// The catalog models pilot refuses to model, one line each with what it does not know, so
/// that a user who finds a model missing from the table learns why (empty when none).
pub fn refused_models<'a>(refused: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let lines: Vec<String> = refused
        .map(|(id, feature)| format!("  {id}: {feature}"))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "In the catalog but not modelled (pilot refuses rather than guesses):\n{}",
        lines.join("\n")
    )
}

pub fn model_table(models: &[LlmSpec]) -> String {
    let rows = models.iter().map(|m| {
        let total = m.params_total().0 / 1e9;
        let active = m.params_active().0 / 1e9;
        vec![
            m.id.clone(),
            m.aliases.join(", "),
            m.model_type.clone(),
            if (total - active).abs() > 1e-3 {
                format!("{total:.2} ({active:.2} active)")
            } else {
                format!("{total:.2}")
            },
            format!("{}", m.layers),
            format!("{:?}", m.attention_kind()),
            format!("{:.0}", m.kv_cache_bytes_per_token(Dtype::F16).0 / 1024.0),
            format!("{:.1}", m.weight_bytes(Dtype::F16).0 / 1e9),
        ]
    });
    let header = [
        "model",
        "aliases",
        "type",
        "params (B)",
        "layers",
        "attention",
        "KV KiB/tok fp16",
        "weights GB fp16",
    ];
    table(&header, rows)
}

/// Prices per cloud, GPU type and count, on-demand and spot.
pub fn price_table(entries: &[&PriceEntry]) -> String {
    let rows = entries.iter().map(|e| {
        vec![
            e.cloud.clone(),
            e.gpu.clone(),
            e.gpu_count.to_string(),
            e.instance_type.clone(),
            e.region.clone(),
            opt(e.on_demand.map(|x| x.0)),
            opt(e.spot.map(|x| x.0)),
        ]
    });
    let header = [
        "cloud",
        "GPU",
        "count",
        "instance",
        "region",
        "on-demand USD/h",
        "spot USD/h",
    ];
    table(&header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuCatalog;
    use crate::llm::ModelCatalog;

    #[test]
    fn every_catalog_entry_is_a_row() {
        let gpus = GpuCatalog::builtin().all();
        let text = gpu_table(gpus);
        assert!(gpus.iter().all(|g| text.contains(&g.name)));
        let models = ModelCatalog::builtin().entries();
        let v = model_json(models);
        assert_eq!(v.as_array().map(Vec::len), Some(models.len()));
        let text = model_table(models);
        assert!(models.iter().all(|m| text.contains(&m.id)));
    }
}

//! `pilot catalog gpus|models|prices [--json]`.

use crate::output::{emit, table};
use clap::{Args, Subcommand};
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::price::PriceCatalog;
use pilot_core::units::Dtype;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// GPUs: memory, bandwidth, dense peaks, interconnect, power, aliases, source.
    Gpus(Format),
    /// LLMs: what `--model` accepts, with parameters and KV-cache size derived from config.json.
    Models(Format),
    /// GPU prices per cloud, type and count (on-demand and spot).
    Prices {
        #[command(flatten)]
        format: Format,
        /// Read prices from this file instead of the shipped catalog: a CSV with the columns
        /// of `datasets/prices.csv`, or JSON as `--json` prints it (`.json`).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Only this cloud.
        #[arg(long)]
        cloud: Option<String>,
    },
}

#[derive(Args)]
pub struct Format {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: CatalogCommand) -> anyhow::Result<()> {
    match cmd {
        CatalogCommand::Gpus(f) => gpus(f.json),
        CatalogCommand::Models(f) => models(f.json),
        CatalogCommand::Prices {
            format,
            prices,
            cloud,
        } => prices_cmd(format.json, prices, cloud),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x}"))
}

fn gpus(json: bool) -> anyhow::Result<()> {
    let all = GpuCatalog::builtin().all();
    if json {
        return emit(&serde_json::to_string_pretty(all)?);
    }
    let rows = all.iter().map(|g| {
        vec![
            g.name.clone(),
            g.vendor.clone(),
            format!("{}", g.memory.0),
            format!("{}", g.memory_bandwidth.0),
            opt(g.fp16.map(|x| x.0)),
            opt(g.bf16.map(|x| x.0)),
            opt(g.fp8.map(|x| x.0)),
            opt(g.int8.map(|x| x.0)),
            format!("{}", g.intra_node_bandwidth.0),
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
        "link GB/s",
        "TDP W",
        "aliases",
    ];
    emit(&table(&header, rows))
}

fn models(json: bool) -> anyhow::Result<()> {
    let all = ModelCatalog::builtin().entries();
    if json {
        let v: Vec<_> = all
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
            .collect();
        return emit(&serde_json::to_string_pretty(&v)?);
    }
    let rows = all.iter().map(|m| {
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
    emit(&table(&header, rows))
}

fn prices_cmd(json: bool, file: Option<PathBuf>, cloud: Option<String>) -> anyhow::Result<()> {
    let loaded;
    let catalog = match file {
        Some(p) => {
            loaded = PriceCatalog::from_path(&p)?;
            &loaded
        }
        None => PriceCatalog::builtin(),
    };
    let entries: Vec<_> = catalog
        .entries()
        .iter()
        .filter(|e| {
            cloud
                .as_deref()
                .is_none_or(|c| e.cloud.eq_ignore_ascii_case(c))
        })
        .collect();
    if let Some(c) = &cloud
        && entries.is_empty()
    {
        anyhow::bail!(
            "no prices for cloud '{c}'; clouds in this catalog: {}",
            catalog.clouds().join(", ")
        );
    }
    if json {
        return emit(&serde_json::to_string_pretty(&entries)?);
    }
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
    emit(&table(&header, rows))
}

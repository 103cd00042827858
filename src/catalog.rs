//! `pilot catalog gpus|models|prices [--json]`.

use crate::output::emit;
use clap::{Args, Subcommand};
use pilot_core::gpu::GpuCatalog;
use pilot_core::listing;
use pilot_core::llm::ModelCatalog;
use pilot_core::price::PriceCatalog;
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

fn gpus(json: bool) -> anyhow::Result<()> {
    let all = GpuCatalog::builtin().all();
    if json {
        return emit(&serde_json::to_string_pretty(all)?);
    }
    emit(&listing::gpu_table(all))
}

fn models(json: bool) -> anyhow::Result<()> {
    let catalog = ModelCatalog::builtin();
    let all = catalog.entries();
    if json {
        return emit(&serde_json::to_string_pretty(&listing::model_json(all))?);
    }
    let refused = listing::refused_models(catalog.refused());
    if refused.is_empty() {
        return emit(&listing::model_table(all));
    }
    emit(&format!("{}\n\n{refused}", listing::model_table(all)))
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
    emit(&listing::price_table(&entries))
}

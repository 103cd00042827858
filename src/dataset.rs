//! `pilot dataset import|aggregate|show|build-prices`.

use crate::output::{emit, notes, table};
use clap::{Subcommand, ValueEnum};
use pilot_core::requests::{aggregate, read_requests};
use pilot_core::schema::{
    FLAG_NON_FINITE, Measurement, non_finite_columns, read_measurements, write_measurements,
};
use pilot_import::tool::{Given, Tool};
use pilot_import::{Import, aiconfigurator, llm_inference_bench, llm_pilot};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Translate a public dataset, or benchmark tools' result files, into pilot's measurement
    /// schema (.csv or .parquet).
    Import {
        /// Which dataset or tool the files are.
        source: Source,
        /// The source files (LLM-Pilot: requests.parquet; LLM-Inference-Bench: results.csv;
        /// AIConfigurator: silicon_sample.csv, with model_configs/ beside it; one file each).
        /// A benchmark tool's result files, one or more: vllm-bench: `vllm bench serve
        /// --save-result` JSON; guidellm: `--output-path` JSON report; aiperf:
        /// profile_export_aiperf.json; inference-perf: stage_N_lifecycle_metrics.json;
        /// llmperf: *_summary.json or *_individual_responses.json (the two kept together).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Where to write the measurements (.csv or .parquet); a new file unless --overwrite.
        #[arg(short, long)]
        out: PathBuf,
        /// Replace --out when it exists (it may hold measurements: refused without this).
        #[arg(long)]
        overwrite: bool,
        /// The GPU that served, where a tool's file does not say it (any name the GPU catalog
        /// resolves: `pilot catalog gpus`).
        #[arg(long, value_name = "NAME")]
        gpu: Option<String>,
        /// How many GPUs served (one tensor-parallel group), where the file does not say it.
        #[arg(long, value_name = "N")]
        gpus: Option<u32>,
        /// The serving engine (vllm, sglang, tgi, tensorrt-llm, pilot, ...), where the file
        /// does not say it.
        #[arg(long, value_name = "NAME")]
        engine: Option<String>,
        /// The LLM, where the file does not say it or names it otherwise (any name the model
        /// catalog resolves).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
    },
    /// Turn a per-request table (requests.parquet from characterize) into measurement rows.
    Aggregate {
        /// The per-request table (.parquet or .csv).
        file: PathBuf,
        /// Where to write the measurements (.csv or .parquet).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Validate a measurement file and print its rows.
    Show {
        file: PathBuf,
        /// Print at most this many rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rebuild the shipped price catalog (datasets/prices.csv) from the public price data.
    BuildPrices {
        /// SkyPilot catalog extract (../shared/data/prices/gpu_instances.csv).
        #[arg(long)]
        skypilot: PathBuf,
        /// SkyPilot's newer catalogs, one source per row
        /// (../shared/data/prices/gpu_instances_2026.csv): B200, B300, MI300X, MI355X and more
        /// H200. Its rows replace the --skypilot ones for the same (cloud, GPU, count).
        #[arg(long, value_name = "FILE")]
        skypilot_2026: Option<PathBuf>,
        /// LLM-Pilot's prices.csv (../shared/data/llm-pilot/prices.csv).
        #[arg(long)]
        llm_pilot: PathBuf,
        #[arg(short, long, default_value = "datasets/prices.csv")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Source {
    /// LLM-Pilot (IBM, SC'24): 829k streamed requests, closed loop, TGIS.
    LlmPilot,
    /// LLM-Inference-Bench (Argonne): offline batches on 9 accelerators.
    LlmInferenceBench,
    /// NVIDIA AIConfigurator: vLLM, SGLang and TensorRT-LLM at fixed concurrency, H100 to GB300.
    Aiconfigurator,
    /// `vllm bench serve --save-result` (with --save-detailed, recomputed per request).
    VllmBench,
    /// GuideLLM's benchmarks report: one row per benchmark of the sweep.
    Guidellm,
    /// NVIDIA AIPerf's profile_export_aiperf.json.
    Aiperf,
    /// kubernetes-sigs/inference-perf's per-stage lifecycle reports.
    InferencePerf,
    /// ray-project/llmperf's summary and individual responses.
    Llmperf,
}

impl Source {
    /// The benchmark tool this source is, `None` for the public datasets.
    fn tool(self) -> Option<Tool> {
        match self {
            Source::LlmPilot | Source::LlmInferenceBench | Source::Aiconfigurator => None,
            Source::VllmBench => Some(Tool::VllmBench),
            Source::Guidellm => Some(Tool::Guidellm),
            Source::Aiperf => Some(Tool::Aiperf),
            Source::InferencePerf => Some(Tool::InferencePerf),
            Source::Llmperf => Some(Tool::Llmperf),
        }
    }
}

pub fn run(cmd: DatasetCommand) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Import {
            source,
            files,
            out,
            gpu,
            gpus,
            engine,
            model,
            overwrite,
        } => {
            // The file may be a dataset someone measured: replaced only when asked.
            if out.exists() && !overwrite {
                anyhow::bail!(
                    "{} already exists; import into a new file, or pass --overwrite to replace it",
                    out.display()
                );
            }
            let given = Given {
                gpu,
                gpu_count: gpus,
                engine,
                model,
            };
            let Import { rows, notes } = match source.tool() {
                Some(tool) => {
                    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
                    tool.import_all(&paths, &given)?
                }
                None => {
                    if given.gpu.is_some()
                        || given.gpu_count.is_some()
                        || given.engine.is_some()
                        || given.model.is_some()
                    {
                        anyhow::bail!(
                            "--gpu, --gpus, --engine and --model are for benchmark tools' files (vllm-bench, guidellm, aiperf, inference-perf, llmperf); the public datasets say their hardware themselves"
                        );
                    }
                    let [file] = files.as_slice() else {
                        anyhow::bail!(
                            "the public datasets are imported one file at a time; got {} files",
                            files.len()
                        );
                    };
                    match source {
                        Source::LlmPilot => llm_pilot::import(file)?,
                        Source::LlmInferenceBench => llm_inference_bench::import(file)?,
                        // The third public dataset (the tools were matched above).
                        _ => aiconfigurator::import(file)?,
                    }
                }
            };
            write_measurements(&rows, &out)?;
            crate::output::notes(&notes);
            eprintln!("wrote {} rows to {}", rows.len(), out.display());
            emit(&preview(&rows, 10))
        }
        DatasetCommand::Aggregate { file, out } => {
            let records = read_requests(&file)?;
            let rows = aggregate(&records, &format!("aggregate:{}", file.display()));
            write_measurements(&rows, &out)?;
            eprintln!(
                "{} requests -> {} rows in {}",
                records.len(),
                rows.len(),
                out.display()
            );
            emit(&preview(&rows, rows.len()))
        }
        DatasetCommand::Show { file, limit } => {
            let rows = read_measurements(&file)?;
            // NaN or infinite values make a row invalid: counted apart and named (the
            // reader flags them), never passed off as valid.
            let invalid: Vec<(usize, &Measurement)> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.has_flag(FLAG_NON_FINITE))
                .collect();
            eprintln!(
                "{}: {} valid rows, {} invalid (NaN or infinite values)",
                file.display(),
                rows.len() - invalid.len(),
                invalid.len()
            );
            notes(
                &invalid
                    .iter()
                    .take(10)
                    .map(|(i, r)| {
                        let cols = non_finite_columns(r);
                        format!(
                            "row {} ({} on {} x {}): NaN or infinite {}",
                            i + 1,
                            r.model,
                            r.gpu_count,
                            r.gpu,
                            if cols.is_empty() {
                                "duration_s".to_string()
                            } else {
                                cols.join(", ")
                            }
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            emit(&preview(&rows, limit))
        }
        DatasetCommand::BuildPrices {
            skypilot,
            skypilot_2026,
            llm_pilot,
            out,
        } => {
            let gpus = pilot_core::gpu::GpuCatalog::builtin();
            let (rows, notes) = pilot_core::price::build_price_rows(
                &skypilot,
                skypilot_2026.as_deref(),
                &llm_pilot,
                gpus,
            )?;
            pilot_core::price::write_csv(&rows, &out)?;
            crate::output::notes(&notes);
            eprintln!("wrote {} price rows to {}", rows.len(), out.display());
            Ok(())
        }
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The first `limit` rows as a table of the headline metrics.
fn preview(rows: &[Measurement], limit: usize) -> String {
    let header = [
        "model",
        "gpu",
        "n",
        "engine",
        "mode",
        "load",
        "TTFT p50 ms",
        "nTTFT p50",
        "ITL p50 ms",
        "ITL p99 ms",
        "E2E p50 ms",
        "out tok/s",
        "ok",
        "failed",
        "flags",
    ];
    let body = rows.iter().take(limit).map(|r| {
        let m = &r.metrics;
        vec![
            r.model.clone(),
            r.gpu.clone(),
            r.gpu_count.to_string(),
            r.engine.clone(),
            r.load.mode().to_string(),
            r.load.cell_text(),
            fmt(m.ttft.p50.map(|x| x.0), 1),
            fmt(m.nttft.p50.map(|x| x.0), 3),
            fmt(m.itl.p50.map(|x| x.0), 1),
            fmt(m.itl.p99.map(|x| x.0), 1),
            fmt(m.e2e.p50.map(|x| x.0), 0),
            fmt(m.output_throughput.map(|x| x.0), 1),
            m.requests_ok.to_string(),
            m.requests_failed.to_string(),
            r.flags.clone(),
        ]
    });
    let mut text = table(&header, body);
    if rows.len() > limit {
        text.push_str(&format!("\n... {} more rows", rows.len() - limit));
    }
    text
}

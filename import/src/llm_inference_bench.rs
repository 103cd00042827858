//! LLM-Inference-Bench (Argonne, `Plots/All_results.csv`): offline static batches of 13
//! LLMs on 9 accelerators and 5 frameworks.
//!
//! Each source row is one batch of `Batch Size` requests whose input and output lengths are
//! both `Input Output Length`; `Latency` is the seconds the whole batch took, and
//! `Throughput` counts input and output tokens (batch x (in + out) / latency). So a row
//! becomes `mode=offline`, `batch_size`, equal input/output means, `e2e_ms_p50/_mean` =
//! latency (one batch: every request ends together), `total_throughput_tok_s` = Throughput,
//! and `output_throughput_tok_s` = the output half of it.
//!
//! Rows are kept but flagged, never silently dropped or trusted:
//! - `implausible_latency`: the batch finished faster than its output tokens can be decoded
//!   even if every step only read the weights once at full memory bandwidth (the roofline
//!   floor `output_tokens x active_weight_bytes / (bandwidth x gpu_count)`). These are the ~34
//!   GH200/H100 rows with 20k-130k tokens/s the data's README calls out.
//! - `throughput_latency_mismatch`: Throughput disagrees with batch x (in+out) / latency by
//!   more than 1% (llama.cpp rows report one sequence's rate).

use crate::{Import, ImportError};
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::metrics::Stats;
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::{Dtype, Millis, TokensPerSec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Flag for rows faster than the memory-bandwidth floor.
pub const FLAG_IMPLAUSIBLE: &str = "implausible_latency";
/// Flag for rows whose throughput and latency disagree.
pub const FLAG_MISMATCH: &str = "throughput_latency_mismatch";

#[derive(Debug, Deserialize)]
struct SourceRow {
    #[serde(rename = "Hardware")]
    hardware: String,
    #[serde(rename = "Num of Hardware")]
    count: u32,
    #[serde(rename = "Framework")]
    framework: String,
    #[serde(rename = "Model")]
    model: String,
    #[serde(rename = "Input Output Length")]
    length: u32,
    #[serde(rename = "Batch Size")]
    batch: u32,
    #[serde(rename = "Latency")]
    latency_s: f64,
    #[serde(rename = "Throughput")]
    throughput: f64,
}

/// The accelerators as the benchmark names them, with the SKU its paper and the Argonne
/// systems document (Polaris: A100 40GB SXM4; the GH200 nodes: 96 GB HBM3).
const HARDWARE: [(&str, &str); 9] = [
    ("Nvidia A100 GPU", "A100-SXM-40GB"),
    ("Nvidia H100 GPU", "H100-SXM-80GB"),
    ("Nvidia GH200 GPU", "GH200-96GB"),
    ("AMD MI250 GPU", "MI250"),
    ("AMD MI300X GPU", "MI300X"),
    ("Habana Gaudi2", "Gaudi2"),
    ("Intel Max 1550", "Max-1550"),
    ("Intel PVC GPU", "Max-1550"),
    ("SambaNova SN40L", "SN40L"),
];

/// The source's columns, all required.
const COLUMNS: [&str; 8] = [
    "Hardware",
    "Num of Hardware",
    "Framework",
    "Model",
    "Input Output Length",
    "Batch Size",
    "Latency",
    "Throughput",
];

/// What an importable file is, for errors.
const EXPECTED: &str = "expected LLM-Inference-Bench's Plots/All_results.csv (../shared/data/llm-inference-bench/results.csv): a CSV with the columns Hardware, Num of Hardware, Framework, Model, Input Output Length, Batch Size, Latency, Throughput and one row per batch";

fn engine_name(framework: &str) -> String {
    match framework {
        "vLLM" => "vllm".into(),
        "TensorRT-LLM" => "tensorrt-llm".into(),
        "llama.cpp" => "llama.cpp".into(),
        "Deepspeed" => "deepspeed".into(),
        "Deepspeed-MII" => "deepspeed-mii".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Imports `results.csv`.
pub fn import(path: &Path) -> Result<Import, ImportError> {
    let p = path.display().to_string();
    let data = |reason: String| ImportError::Data {
        path: p.clone(),
        reason,
    };
    let read = |what: String, e: csv::Error| crate::read_error(&p, what, e);
    let (mut rdr, _) = crate::CsvSource {
        name: "LLM-Inference-Bench results",
        where_to_find: "LLM-Inference-Bench's results are in ../shared/data/llm-inference-bench/results.csv",
        expected: EXPECTED,
        columns: &COLUMNS,
    }
    .open(path)?;
    let gpus = GpuCatalog::builtin();
    let models = ModelCatalog::builtin();
    let mut out = Import::default();
    let mut resolved_gpu: BTreeMap<String, Option<String>> = BTreeMap::new();
    let (mut implausible, mut mismatch, mut skipped) = (0, 0, 0);
    for (i, rec) in rdr.deserialize::<SourceRow>().enumerate() {
        // Line numbers count the header as line 1.
        let r = rec.map_err(|e| read(format!("line {} cannot be parsed; {EXPECTED}", i + 2), e))?;
        let gpu = resolved_gpu
            .entry(r.hardware.clone())
            .or_insert_with(|| {
                let name = HARDWARE
                    .iter()
                    .find(|h| h.0 == r.hardware)
                    .map_or(r.hardware.as_str(), |h| h.1);
                let spec = gpus.resolve(name).ok()?;
                out.notes.push(format!(
                    "LLM-Inference-Bench '{}' -> {}",
                    r.hardware, spec.name
                ));
                Some(spec.name.clone())
            })
            .clone();
        let Some(gpu) = gpu else {
            skipped += 1;
            continue;
        };
        let spec = models.resolve(&r.model).map_err(|e| ImportError::Model {
            path: p.clone(),
            name: r.model.clone(),
            source: Box::new(e),
        })?;
        let mut row = Measurement::new(
            &spec.id,
            &gpu,
            r.count,
            &engine_name(&r.framework),
            Load::Batch(r.batch),
        );
        let latency = Millis(r.latency_s * 1e3);
        row.metrics.e2e = Stats {
            p50: Some(latency),
            mean: Some(latency),
            ..Stats::default()
        };
        let tokens = r.batch as f64 * r.length as f64;
        row.metrics.input_tokens_mean = Some(r.length as f64);
        row.metrics.output_tokens_mean = Some(r.length as f64);
        row.metrics.total_throughput = Some(TokensPerSec(r.throughput));
        row.metrics.output_throughput = Some(TokensPerSec(r.throughput / 2.0));
        row.metrics.requests_ok = r.batch as u64;
        row.source = format!("llm-inference-bench:line {}", i + 2);
        let expected = 2.0 * tokens / r.latency_s;
        if (r.throughput / expected - 1.0).abs() > 0.01 {
            row.add_flag(FLAG_MISMATCH);
            mismatch += 1;
        }
        let bandwidth = gpus
            .resolve(&gpu)
            .map(|g| g.memory_bandwidth.0)
            .unwrap_or(f64::INFINITY);
        // Each decode step reads at least the active weights once (MoE: top-k experts only).
        let weights =
            spec.weight_bytes(Dtype::F16).0 * spec.params_active().0 / spec.params_total().0;
        let floor_s = r.length as f64 * weights / (bandwidth * 1e9 * r.count as f64);
        if r.latency_s < floor_s {
            row.add_flag(FLAG_IMPLAUSIBLE);
            implausible += 1;
        }
        out.rows.push(row);
    }
    if out.rows.is_empty() {
        return Err(data(format!(
            "no rows imported ({skipped} skipped: accelerator not in the GPU catalog); {EXPECTED}"
        )));
    }
    out.notes.push(format!(
        "{} rows imported; {implausible} flagged {FLAG_IMPLAUSIBLE} (faster than the memory-bandwidth floor), {mismatch} flagged {FLAG_MISMATCH}; {skipped} skipped (accelerator not in the GPU catalog)",
        out.rows.len()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm_pilot::shared_data;

    #[test]
    fn imports_every_row_and_flags_the_implausible_ones() {
        let Some(data) = shared_data() else {
            eprintln!("skipped: ../shared/data not found");
            return;
        };
        let imported = import(&data.join("llm-inference-bench/results.csv")).unwrap();
        let n = imported.rows.len();
        assert!(n > 3700, "{n} rows");
        let flagged: Vec<&Measurement> = imported
            .rows
            .iter()
            .filter(|r| r.has_flag(FLAG_IMPLAUSIBLE))
            .collect();
        // The README's ~34 rows above 20k tokens/s with tiny latencies.
        assert!(
            (25..=60).contains(&flagged.len()),
            "{} implausible",
            flagged.len()
        );
        assert!(
            flagged
                .iter()
                .all(|r| r.metrics.total_throughput.unwrap().0 > 15_000.0)
        );
        // Plausible fast rows are not flagged (Llama-2-7B on 4 x H100 at batch 64).
        assert!(
            imported
                .rows
                .iter()
                .filter(|r| r.metrics.total_throughput.unwrap().0 > 20_000.0)
                .any(|r| !r.has_flag(FLAG_IMPLAUSIBLE))
        );
        assert!(
            imported
                .rows
                .iter()
                .any(|r| r.has_flag(FLAG_MISMATCH) && r.engine == "llama.cpp")
        );
        assert!(
            imported
                .rows
                .iter()
                .all(|r| matches!(r.load, Load::Batch(_)))
        );
    }

    #[test]
    fn wrong_columns_name_the_line_and_expected_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(&p, "Hardware,Model\nNvidia H100 GPU,gpt2\n").unwrap();
        let e = import(&p).unwrap_err().to_string();
        assert!(
            e.contains("no column Num of Hardware") && e.contains("Batch Size"),
            "{e}"
        );
        std::fs::write(
            &p,
            format!(
                "{}\nNvidia H100 GPU,1,vLLM,gpt2,128,1,fast,256\n",
                COLUMNS.join(",")
            ),
        )
        .unwrap();
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("Batch Size"), "{e}");
        let e = import(&dir.path().join("none.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    /// A file that is not this dataset is an error saying what was expected, never an
    /// import of zero rows.
    #[test]
    fn garbage_is_not_an_empty_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        for garbage in [
            "hello world\n",
            "",
            "\u{1}\u{2}binary junk without newline",
            &COLUMNS.join(","),
        ] {
            std::fs::write(&p, garbage).unwrap();
            let e = import(&p).unwrap_err().to_string();
            assert!(
                e.contains("expected LLM-Inference-Bench") && e.contains("Batch Size"),
                "{garbage:?}: {e}"
            );
        }
        // Rows of accelerators pilot does not know: nothing imported is an error too.
        std::fs::write(
            &p,
            format!("{}\nAbacus,1,vLLM,gpt2,128,1,1.0,256\n", COLUMNS.join(",")),
        )
        .unwrap();
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("no rows imported"), "{e}");
    }
}

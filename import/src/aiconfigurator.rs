//! NVIDIA AIConfigurator's silicon measurements (ai-dynamo/aiconfigurator@095f58a,
//! `silicon_sample.csv`): vLLM, SGLang and TensorRT-LLM deployments at a fixed concurrency,
//! aggregated or disaggregated, on H100, H200, B200 and GB300.
//!
//! One source row (one deployment at one concurrency) becomes one closed-loop row: users =
//! the benchmark's concurrency, `model` = `model_path` (the Hub id), the GPU through
//! [`SYSTEMS`], the engine by its name in the engine table, `engine_version` =
//! `backend_version`, the weight format from `moe_quant_mode` / `gemm_quant_mode` /
//! `precision`, the [`Serving`] from the parallel sizes, `gpu_count` = all GPUs of the
//! deployment, `isl`/`osl` as the mean input/output tokens, and `source` =
//! `aiconfigurator:<id>`.
//!
//! **Means, not medians.** The source does not label `silicon_ttft_ms` / `silicon_tpot_ms`.
//! AIConfigurator's own accuracy scripts build these columns as
//! `bench["metrics"]["mean_ttft"] * 1000` and `mean_tpot * 1000` from the serving benchmark's
//! summary, and its sflow reader takes them under the alias `silicon_ttft_avg`. So they are
//! written to `ttft_ms_mean` and `tpot_ms_mean`, and no percentile column is filled.
//!
//! **Quirks are flagged, never guessed silently** (each flag's reading is in
//! `datasets/README.md`; the import's notes count them):
//! - [`FLAG_PRECISION`]: the labelled weight format cannot have been served from the
//!   checkpoint `model_path` names (its `config.json` / `hf_quant_config.json` say another
//!   quantized format, or it is 16-bit and the label a 4-bit format no engine makes online):
//!   the run served another export of the same architecture. The label is kept.
//! - [`FLAG_TP_HEADS`]: `tp_size` does not divide the attention heads: an attention-DP width
//!   stored as tp (SGLang's `--tp N --enable-dp-attention`). Read as tensor 1 x attention-DP N.
//! - [`FLAG_WORKERS`]: a disaggregated row without worker counts: read as one prefill and one
//!   decode worker, so `gpu_count` is a lower bound.
//! - [`FLAG_CONCURRENCY`]: no concurrency at all (neither `silicon_concurrency` nor
//!   `batch_size`): read as 1 user, a placeholder.
//! - [`FLAG_BATCH`]: `batch_size` is neither the concurrency nor concurrency / attention-DP.
//! - [`FLAG_NO_VERSION`]: `backend_version` is empty.
//! - [`FLAG_EP_ZERO`]: `moe_ep_size` (or `moe_tp_size`) is 0: read as no expert parallelism.
//! - [`FLAG_NO_PRECISION`]: no weight format labelled: `quantization` left empty (the
//!   checkpoint's own format).
//! - [`FLAG_NO_CONFIG`]: no config.json for the model, so the two checks above that need it
//!   were not made.

use crate::{Import, ImportError};
use pilot_core::gpu::GpuCatalog;
use pilot_core::layout::{Layout, Serving, Workers};
use pilot_core::llm::{CheckpointFormat, HfConfig};
use pilot_core::metrics::Stats;
use pilot_core::quant::Quantization;
use pilot_core::schema::{Load, Measurement};
use pilot_core::units::Millis;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const FLAG_PRECISION: &str = "precision_differs_from_checkpoint";
pub const FLAG_TP_HEADS: &str = "tp_does_not_divide_heads";
pub const FLAG_WORKERS: &str = "disagg_workers_unknown";
pub const FLAG_CONCURRENCY: &str = "concurrency_unknown";
pub const FLAG_BATCH: &str = "batch_size_differs_from_concurrency";
pub const FLAG_NO_VERSION: &str = "engine_version_unknown";
pub const FLAG_EP_ZERO: &str = "moe_parallel_zero";
pub const FLAG_NO_PRECISION: &str = "precision_unlabelled";
pub const FLAG_NO_CONFIG: &str = "model_config_missing";

/// Every flag this importer sets, in the order the notes count them.
pub const FLAGS: [&str; 9] = [
    FLAG_PRECISION,
    FLAG_TP_HEADS,
    FLAG_WORKERS,
    FLAG_CONCURRENCY,
    FLAG_BATCH,
    FLAG_NO_VERSION,
    FLAG_EP_ZERO,
    FLAG_NO_PRECISION,
    FLAG_NO_CONFIG,
];

/// The source's `system` names and the GPU each means (the source's `systems/*.yaml`: SXM
/// parts of HGX boards; `gb300` is one Blackwell Ultra GPU of a GB300 NVL72). A name the
/// catalog resolves is written as the catalog's name; one it does not (yet) is written as
/// given here, for the catalog to resolve, and the notes say so.
pub const SYSTEMS: [(&str, &str); 4] = [
    ("h100_sxm", "H100-SXM-80GB"),
    ("h200_sxm", "H200-SXM-141GB"),
    ("b200_sxm", "B200-SXM-180GB"),
    ("gb300", "GB300"),
];

/// Models whose `config.json` is not in `model_configs/` under their own name, the file that
/// describes the same architecture, and the checkpoint's weight format where the Hub id
/// names it (NVIDIA's ModelOpt exports carry it in the name; their configs are not shipped).
const CONFIG_STAND_INS: [(&str, &str, Option<Quantization>); 5] = [
    // The instruct tune has the base model's config.json.
    (
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama--Meta-Llama-3.1-8B",
        None,
    ),
    (
        "nvidia/Llama-3.1-8B-Instruct-FP8",
        "meta-llama--Meta-Llama-3.1-8B",
        Some(Quantization::Fp8),
    ),
    // Zhipu AI publishes on the Hub as zai-org.
    ("zhipuai/GLM-5", "zai-org--GLM-5", None),
    (
        "nvidia/DeepSeek-R1-NVFP4",
        "deepseek-ai--DeepSeek-R1",
        Some(Quantization::Nvfp4),
    ),
    (
        "nvidia/Qwen3-32B-NVFP4",
        "Qwen--Qwen3-32B",
        Some(Quantization::Nvfp4),
    ),
];

/// The source columns every row needs.
const COLUMNS: [&str; 11] = [
    "id",
    "backend",
    "backend_version",
    "model_path",
    "system",
    "precision",
    "mode",
    "isl",
    "osl",
    "silicon_ttft_ms",
    "silicon_tpot_ms",
];

const EXPECTED: &str = "expected AIConfigurator's silicon_sample.csv (../shared/data/aiconfigurator/silicon_sample.csv): one row per deployment and concurrency with the columns id, backend, backend_version, model_path, system, precision, mode, isl, osl, the parallel sizes and silicon_ttft_ms, silicon_tpot_ms";

/// What a model's checkpoint is, from its config files.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Checkpoint {
    heads: Option<u64>,
    /// The stored weight format (bf16 when the config names no quantization).
    format: Quantization,
}

/// Reads a model's checkpoint facts from `dir` (`<hub id with / as -->_config.json`, and
/// `_hf_quant_config.json` beside it), through [`CONFIG_STAND_INS`] where the source's id
/// has no file of its own. `None` when there is no file.
fn read_checkpoint(dir: &Path, model: &str) -> Result<Option<Checkpoint>, ImportError> {
    let stand_in = CONFIG_STAND_INS.iter().find(|s| s.0 == model);
    let stem = stand_in.map_or_else(|| model.replace('/', "--"), |s| s.1.to_string());
    let path = dir.join(format!("{stem}_config.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let cfg = HfConfig::from_json(&text, &path.display().to_string()).map_err(|e| {
        ImportError::Model {
            path: path.display().to_string(),
            name: model.to_string(),
            source: Box::new(e),
        }
    })?;
    let hf_quant = std::fs::read_to_string(dir.join(format!("{stem}_hf_quant_config.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    // The quantized format as pilot's model catalog reads it; else the 16-bit `torch_dtype`.
    let format = match stand_in.and_then(|s| s.2) {
        Some(q) => q,
        None => CheckpointFormat::read(&cfg.raw, hf_quant.as_ref(), model)
            .map_err(|e| ImportError::Model {
                path: path.display().to_string(),
                name: model.to_string(),
                source: Box::new(e),
            })?
            .map(|c| c.weights)
            .unwrap_or_else(|| {
                cfg.torch_dtype
                    .as_deref()
                    .and_then(|d| d.parse::<Quantization>().ok())
                    .unwrap_or(Quantization::Bf16)
            }),
    };
    Ok(Some(Checkpoint {
        heads: cfg.num_heads,
        format,
    }))
}

/// fp8 per tensor and per block are one family: engines serve a block-fp8 checkpoint's dense
/// GEMMs with per-tensor fp8 kernels (the source labels DeepSeek's `gemm_quant_mode` fp8 and
/// its `moe_quant_mode` fp8_block), so the two never disagree with each other.
fn same_family(a: Quantization, b: Quantization) -> bool {
    let fam = |q: Quantization| match q {
        Quantization::Fp8Block => Quantization::Fp8,
        q => q,
    };
    fam(a) == fam(b)
}

/// Whether a labelled format cannot have been served from this checkpoint. A 16-bit
/// checkpoint can be served in another 16-bit type or in fp8, which vLLM, SGLang and
/// TensorRT-LLM quantize to online; the 4-bit formats (nvfp4, mxfp4, int4) need an offline
/// export (NVIDIA ModelOpt, AWQ, GPTQ), and a quantized checkpoint is served in its own
/// format only (a wider label would need dequantizing, another narrow one another export).
fn precision_disagrees(label: Quantization, checkpoint: Quantization) -> bool {
    if same_family(label, checkpoint) {
        return false;
    }
    let online = label.bytes_per_weight() >= 2.0 || same_family(label, Quantization::Fp8);
    !(checkpoint.bytes_per_weight() >= 2.0 && online)
}

/// One source line by column name.
struct Line<'a> {
    rec: &'a csv::StringRecord,
    cols: &'a HashMap<String, usize>,
    line: usize,
    path: &'a str,
}

impl Line<'_> {
    fn text(&self, name: &str) -> &str {
        self.cols
            .get(name)
            .and_then(|&i| self.rec.get(i))
            .map_or("", str::trim)
    }

    fn bad(&self, name: &str, why: &str) -> ImportError {
        ImportError::Data {
            path: self.path.to_string(),
            reason: format!(
                "line {}, column '{name}': '{}' {why}; {EXPECTED}",
                self.line,
                pilot_core::validate::shorten(self.text(name))
            ),
        }
    }

    /// A whole count, `None` when empty.
    fn count(&self, name: &str) -> Result<Option<u32>, ImportError> {
        let t = self.text(name);
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<u32>()
            .map(Some)
            .map_err(|_| self.bad(name, "is not a whole count"))
    }

    fn number(&self, name: &str) -> Result<f64, ImportError> {
        self.text(name)
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| self.bad(name, "is not a positive number"))
    }
}

/// The layout of one worker from its columns (`prefix` = "", "prefill_" or "decode_"), and
/// whether it needed a quirk's reading (`tp_size` not dividing the heads, a 0 MoE size).
fn worker_layout(
    l: &Line,
    prefix: &str,
    heads: Option<u64>,
    flags: &mut Vec<&'static str>,
) -> Result<Layout, ImportError> {
    let name = |n: &str| format!("{prefix}{n}");
    let mut tp = l
        .count(&name("tp_size"))?
        .ok_or_else(|| l.bad(&name("tp_size"), "is empty"))?;
    let pp = l.count(&name("pp_size"))?.unwrap_or(1);
    let mut adp = l.count(&name("attention_dp_size"))?.unwrap_or(1);
    let mut ep = l.count(&name("moe_ep_size"))?.unwrap_or(1);
    if ep == 0 || l.count(&name("moe_tp_size"))? == Some(0) {
        flags.push(FLAG_EP_ZERO);
        ep = ep.max(1);
    }
    if let Some(h) = heads
        && tp > 0
        && h % u64::from(tp) != 0
        && adp == 1
    {
        flags.push(FLAG_TP_HEADS);
        adp = tp;
        tp = 1;
    }
    Layout::new(tp, pp, ep, adp).map_err(|e| ImportError::Data {
        path: l.path.to_string(),
        reason: format!("line {}: {prefix}layout: {e}", l.line),
    })
}

/// Imports `silicon_sample.csv`; model configs are read from `model_configs/` beside it.
pub fn import(path: &Path) -> Result<Import, ImportError> {
    let p = path.display().to_string();
    let read = |what: String, e: csv::Error| crate::read_error(&p, what, e);
    let (mut rdr, headers) = crate::CsvSource {
        name: "AIConfigurator silicon data",
        where_to_find: "AIConfigurator's measurements are in ../shared/data/aiconfigurator/silicon_sample.csv",
        expected: EXPECTED,
        columns: &COLUMNS,
    }
    .open(path)?;
    let cols: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_string(), i))
        .collect();
    let config_dir: PathBuf = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("model_configs");
    let gpus = GpuCatalog::builtin();
    let mut out = Import::default();
    let mut systems: BTreeMap<String, String> = BTreeMap::new();
    let mut checkpoints: BTreeMap<String, Option<Checkpoint>> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec =
            rec.map_err(|e| read(format!("line {} cannot be parsed; {EXPECTED}", i + 2), e))?;
        let l = Line {
            rec: &rec,
            cols: &cols,
            line: i + 2,
            path: &p,
        };
        let mut flags: Vec<&'static str> = Vec::new();
        let model = l.text("model_path").to_string();
        if model.is_empty() {
            return Err(l.bad("model_path", "is empty"));
        }
        let checkpoint = match checkpoints.get(&model) {
            Some(c) => *c,
            None => {
                let c = read_checkpoint(&config_dir, &model)?;
                checkpoints.insert(model.clone(), c);
                c
            }
        };
        if checkpoint.is_none() {
            flags.push(FLAG_NO_CONFIG);
        }
        let heads = checkpoint.and_then(|c| c.heads);
        let system = l.text("system");
        let gpu = match systems.get(system) {
            Some(g) => g.clone(),
            None => {
                let Some((_, named)) = SYSTEMS.iter().find(|s| s.0 == system) else {
                    return Err(l.bad(
                        "system",
                        &format!(
                            "is not a system this importer maps ({})",
                            SYSTEMS.map(|s| s.0).join(", ")
                        ),
                    ));
                };
                let g = match gpus.resolve(named) {
                    Ok(spec) => {
                        out.notes
                            .push(format!("AIConfigurator '{system}' -> {}", spec.name));
                        spec.name.clone()
                    }
                    Err(_) => {
                        out.notes.push(format!(
                            "AIConfigurator '{system}' -> {named}, written as is: not in this build's GPU catalog"
                        ));
                        named.to_string()
                    }
                };
                systems.insert(system.to_string(), g.clone());
                g
            }
        };
        let backend = l.text("backend");
        let engine = pilot_core::engine::traits(backend)
            .map(|t| t.name)
            .ok_or_else(|| l.bad("backend", "is not an engine of pilot's engine table"))?;

        // The benchmark's concurrency; batch_size is the batch of one attention-DP rank.
        let concurrency = l
            .text("silicon_data_source")
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("silicon_concurrency="))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|c| *c > 0);
        let batch = l.count("batch_size")?.filter(|b| *b > 0);
        let users = match (concurrency, batch) {
            (Some(c), _) => c,
            (None, Some(b)) => b,
            (None, None) => {
                flags.push(FLAG_CONCURRENCY);
                1
            }
        };

        let serving = match l.text("mode") {
            "agg" => Serving::Aggregated(worker_layout(&l, "", heads, &mut flags)?),
            "disagg" => {
                let prefill = worker_layout(&l, "prefill_", heads, &mut flags)?;
                let decode = worker_layout(&l, "decode_", heads, &mut flags)?;
                let (pw, dw) = match (
                    l.count("prefill_num_workers")?,
                    l.count("decode_num_workers")?,
                ) {
                    (Some(p), Some(d)) => (p, d),
                    _ => {
                        flags.push(FLAG_WORKERS);
                        (1, 1)
                    }
                };
                let workers = |n, layout, what| {
                    Workers::new(n, layout).map_err(|e| ImportError::Data {
                        path: p.clone(),
                        reason: format!("line {}: {what}: {e}", i + 2),
                    })
                };
                Serving::Disaggregated {
                    prefill: workers(pw, prefill, "prefill_num_workers")?,
                    decode: workers(dw, decode, "decode_num_workers")?,
                }
            }
            _ => return Err(l.bad("mode", "is neither agg nor disagg")),
        };
        if let (Some(c), Some(b)) = (concurrency, batch) {
            let adp = serving.decode_layout().attention_dp();
            if b != c && b.saturating_mul(adp) != c {
                flags.push(FLAG_BATCH);
            }
        }

        // The bulk of a MoE model's weights are its experts: their format first.
        let label = ["moe_quant_mode", "gemm_quant_mode", "precision"]
            .into_iter()
            .map(|c| (c, l.text(c)))
            .find(|(_, t)| !t.is_empty());
        let quantization = match label {
            Some((c, t)) => Some(
                t.parse::<Quantization>()
                    .map_err(|e| l.bad(c, &format!("is not a weight format ({e})")))?,
            ),
            None => {
                flags.push(FLAG_NO_PRECISION);
                None
            }
        };
        if let (Some(q), Some(c)) = (quantization, checkpoint)
            && precision_disagrees(q, c.format)
        {
            flags.push(FLAG_PRECISION);
        }

        let mut row = Measurement::new(&model, &gpu, 1, engine, Load::Users(users));
        row.set_serving(serving);
        row.quantization = quantization;
        row.engine_version = Some(l.text("backend_version").to_string()).filter(|v| !v.is_empty());
        if row.engine_version.is_none() {
            flags.push(FLAG_NO_VERSION);
        }
        let isl = l
            .count("isl")?
            .filter(|v| *v > 0)
            .ok_or_else(|| l.bad("isl", "is not a positive count"))?;
        let osl = l
            .count("osl")?
            .filter(|v| *v > 0)
            .ok_or_else(|| l.bad("osl", "is not a positive count"))?;
        row.metrics.input_tokens_mean = Some(f64::from(isl));
        row.metrics.output_tokens_mean = Some(f64::from(osl));
        let mean = |v: f64| Stats {
            mean: Some(Millis(v)),
            ..Stats::default()
        };
        row.metrics.ttft = mean(l.number("silicon_ttft_ms")?);
        row.metrics.tpot = mean(l.number("silicon_tpot_ms")?);
        row.source = format!("aiconfigurator:{}", l.text("id"));
        for f in flags {
            if !row.has_flag(f) {
                *counts.entry(f).or_default() += 1;
            }
            row.add_flag(f);
        }
        out.rows.push(row);
    }
    if out.rows.is_empty() {
        return Err(ImportError::Data {
            path: p,
            reason: format!("no rows; {EXPECTED}"),
        });
    }
    let missing_configs: Vec<&String> = checkpoints
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(m, _)| m)
        .collect();
    if !missing_configs.is_empty() {
        out.notes.push(format!(
            "no config.json in {} for: {}",
            config_dir.display(),
            missing_configs
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.notes.push(format!(
        "{} rows imported (TTFT and TPOT as means); flagged: {}",
        out.rows.len(),
        FLAGS
            .iter()
            .map(|f| format!("{f} {}", counts.get(f).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm_pilot::shared_data;

    const HEADER: &str = "id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,gemm_quant_mode,moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,moe_ep_size,prefill_batch_size,prefill_num_workers,prefill_tp_size,prefill_pp_size,prefill_attention_dp_size,prefill_moe_tp_size,prefill_moe_ep_size,decode_batch_size,decode_num_workers,decode_tp_size,decode_pp_size,decode_attention_dp_size,decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms";

    /// One source line per case, in the source's own shape (`c` = silicon_data_source).
    const LINES: [&str; 11] = [
        // 0: clean: a block-fp8 MoE checkpoint served fp8 (gemm) / fp8_block (moe), 8 GPUs.
        "a,c; silicon_concurrency=64,trtllm,1.2.0,org/moe-fp8,b200_sxm,fp8,agg,1024,1024,fp8,fp8_block,64,8,1,1,1,8,,,,,,,,,,,,,,,100.5,10.25",
        // 1: the same checkpoint labelled nvfp4: another export was served.
        "b,c; silicon_concurrency=4,vllm,0.17.0,org/moe-fp8,b200_sxm,fp4,agg,1024,1024,nvfp4,nvfp4,4,8,1,1,8,1,,,,,,,,,,,,,,,74.1,7.0",
        // 2: a bf16 model labelled fp8: quantized online, fine.
        "c,c; silicon_concurrency=8,sglang,0.5.9,org/dense-bf16,h200_sxm,fp8,agg,1024,1024,fp8,fp8,8,2,1,1,2,1,,,,,,,,,,,,,,,50,8",
        // 3: tp 64 over 32 heads: an attention-DP width stored as tp.
        "d,c; silicon_concurrency=64,sglang,0.5.9,org/dense-bf16,h200_sxm,bf16,agg,1024,1024,,,64,64,1,1,8,8,,,,,,,,,,,,,,,900,30",
        // 4: disaggregated without worker counts.
        "e,c; silicon_concurrency=96,trtllm,0.8.1,org/moe-fp8,b200_sxm,fp8,disagg,8192,1024,fp8,fp8,,,,,,,,,8,1,1,8,1,,,8,1,1,8,1,2500,12.5",
        // 5: disaggregated with worker counts: 1 x 4 prefill GPUs + 4 x 8 decode GPUs.
        "f,c; silicon_concurrency=36,trtllm,0.8.1,org/moe-fp8,h100_sxm,fp8,disagg,1024,8192,fp8,fp8,,,,,,,1,1,1,1,4,1,4,9,4,8,1,1,1,8,10433,11.2",
        // 6: empty backend_version.
        "g,c; silicon_concurrency=16,sglang,,org/moe-fp8,b200_sxm,fp8,agg,1024,8192,fp8,fp8,16,8,1,1,1,8,,,,,,,,,,,,,,,120,9",
        // 7: moe_ep_size 0, and no concurrency but the batch size.
        "h,source_file=x.csv,trtllm,1.0.0rc3,org/dense-bf16,h100_sxm,,agg,4000,1000,,,32,2,1,,1,0,,,,,,,,,,,,,,,300,20",
        // 8: no config.json for the model.
        "i,c; silicon_concurrency=4,vllm,0.12.0,org/unknown,h100_sxm,fp8,agg,1024,1024,fp8,fp8,4,1,1,1,1,1,,,,,,,,,,,,,,,40,6",
        // 9: attention-DP 4 with 64 per rank: the concurrency is 256.
        "j,c; silicon_concurrency=256,vllm,0.19.0,org/moe-fp8,b200_sxm,fp8,agg,1024,1024,fp8,fp8,64,4,1,4,1,16,,,,,,,,,,,,,,,388,23.6",
        // 10: a bf16 model labelled nvfp4: no engine quantizes to fp4 online.
        "k,c; silicon_concurrency=8,sglang,0.5.9,org/dense-bf16,b200_sxm,fp4,agg,1024,1024,nvfp4,nvfp4,8,2,1,1,2,1,,,,,,,,,,,,,,,50,8",
    ];

    /// Writes the lines and two model configs (a 128-head block-fp8 MoE, a 32-head bf16 dense
    /// model) in the source's layout; returns the CSV's path.
    fn source(dir: &Path, lines: &[&str]) -> PathBuf {
        let configs = dir.join("model_configs");
        std::fs::create_dir_all(&configs).unwrap();
        std::fs::write(
            configs.join("org--moe-fp8_config.json"),
            r#"{"model_type":"deepseek_v3","num_attention_heads":128,"torch_dtype":"bfloat16","n_routed_experts":256,
               "quantization_config":{"quant_method":"fp8","weight_block_size":[128,128]}}"#,
        )
        .unwrap();
        std::fs::write(
            configs.join("org--dense-bf16_config.json"),
            r#"{"model_type":"qwen3_5","text_config":{"num_attention_heads":32},"torch_dtype":"bfloat16"}"#,
        )
        .unwrap();
        let p = dir.join("silicon_sample.csv");
        std::fs::write(&p, format!("{HEADER}\n{}\n", lines.join("\n"))).unwrap();
        p
    }

    fn flags(r: &Measurement) -> Vec<&str> {
        r.flags.split(',').filter(|f| !f.is_empty()).collect()
    }

    #[test]
    fn each_quirk_is_flagged_and_read_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let imported = import(&source(dir.path(), &LINES)).unwrap();
        let r = &imported.rows;
        assert_eq!(r.len(), LINES.len());
        // Clean row: every column mapped, TTFT/TPOT as means.
        assert_eq!(flags(&r[0]), Vec::<&str>::new());
        assert_eq!(
            (r[0].model.as_str(), r[0].engine.as_str(), r[0].gpu_count),
            ("org/moe-fp8", "tensorrt-llm", 8)
        );
        assert_eq!(r[0].load, Load::Users(64));
        assert_eq!(r[0].quantization, Some(Quantization::Fp8Block));
        assert_eq!(
            r[0].serving,
            Serving::Aggregated(Layout::new(8, 1, 8, 1).unwrap())
        );
        assert_eq!(r[0].metrics.ttft.mean, Some(Millis(100.5)));
        assert_eq!(r[0].metrics.ttft.p50, None);
        assert_eq!(r[0].metrics.tpot.mean, Some(Millis(10.25)));
        assert_eq!(r[0].metrics.input_tokens_mean, Some(1024.0));
        assert_eq!(r[0].source, "aiconfigurator:a");
        assert_eq!(r[0].engine_version.as_deref(), Some("1.2.0"));
        assert_eq!(r[0].gpu, "B200-SXM-180GB");
        // A fp4 label on a block-fp8 checkpoint disagrees; fp8 on a bf16 one does not.
        assert_eq!(flags(&r[1]), vec![FLAG_PRECISION]);
        assert_eq!(r[1].quantization, Some(Quantization::Nvfp4));
        assert_eq!(flags(&r[2]), Vec::<&str>::new());
        // tp 64 over 32 heads: attention-DP 64, the 64 GPUs kept.
        assert_eq!(flags(&r[3]), vec![FLAG_TP_HEADS]);
        assert_eq!(
            r[3].serving,
            Serving::Aggregated(Layout::new(1, 1, 8, 64).unwrap())
        );
        assert_eq!(r[3].gpu_count, 64);
        // Disaggregated without worker counts: one of each, a lower bound on the GPUs.
        assert_eq!(flags(&r[4]), vec![FLAG_WORKERS]);
        assert_eq!(r[4].gpu_count, 16);
        assert!(r[4].serving.is_disaggregated());
        assert_eq!(r[4].load, Load::Users(96));
        // With worker counts: 1 x 4 + 4 x 8.
        assert_eq!(flags(&r[5]), Vec::<&str>::new());
        assert_eq!(r[5].gpu_count, 36);
        assert_eq!(r[5].gpu, "H100-SXM-80GB");
        let Serving::Disaggregated { prefill, decode } = r[5].serving else {
            panic!("{:?}", r[5].serving)
        };
        assert_eq!(
            (prefill.count(), prefill.layout(), decode.count()),
            (1, Layout::new(1, 1, 4, 4).unwrap(), 4)
        );
        assert_eq!(flags(&r[6]), vec![FLAG_NO_VERSION]);
        assert_eq!(r[6].engine_version, None);
        // moe_ep 0 is no expert parallelism; users from batch_size; no label.
        assert_eq!(flags(&r[7]), vec![FLAG_EP_ZERO, FLAG_NO_PRECISION]);
        assert_eq!(r[7].serving.decode_layout().expert(), 1);
        assert_eq!(r[7].load, Load::Users(32));
        assert_eq!(r[7].quantization, None);
        assert_eq!(flags(&r[8]), vec![FLAG_NO_CONFIG]);
        // batch_size is per attention-DP rank: 64 x 4 = the concurrency 256.
        assert_eq!(flags(&r[9]), Vec::<&str>::new());
        assert_eq!(r[9].load, Load::Users(256));
        assert_eq!(flags(&r[10]), vec![FLAG_PRECISION]);
        // Every flag is counted in the notes.
        let notes = imported.notes.join("\n");
        assert!(
            notes.contains(&format!("{FLAG_PRECISION} 2"))
                && notes.contains(&format!("{FLAG_WORKERS} 1"))
                && notes.contains("org/unknown"),
            "{notes}"
        );
        // The rows are valid schema rows: they round-trip through a file.
        let out = dir.path().join("out.csv");
        pilot_core::schema::write_measurements(r, &out).unwrap();
        assert_eq!(&pilot_core::schema::read_measurements(&out).unwrap(), r);
    }

    #[test]
    fn bad_source_lines_are_errors_naming_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let bad_system = LINES[0].replace("b200_sxm", "tpu_v5");
        let e = import(&source(dir.path(), &[LINES[0], &bad_system]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("'system'") && e.contains("tpu_v5"),
            "{e}"
        );
        let bad_ep = LINES[0].replace(",1,8,,,", ",1,16,,,");
        let e = import(&source(dir.path(), &[&bad_ep]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("expert_parallel 16"),
            "{e}"
        );
        let p = dir.path().join("other.csv");
        std::fs::write(&p, "Hardware,Model\nx,y\n").unwrap();
        let e = import(&p).unwrap_err().to_string();
        assert!(
            e.contains("no column id") && e.contains("silicon_sample.csv"),
            "{e}"
        );
    }

    /// The real file: every source row becomes one row with its id, and every row's GPU and
    /// model resolve in pilot's catalogs.
    #[test]
    fn imports_the_real_sample() {
        let Some(data) = shared_data() else {
            eprintln!("skipped: ../shared/data not found");
            return;
        };
        let imported = import(&data.join("aiconfigurator/silicon_sample.csv")).unwrap();
        let rows = &imported.rows;
        assert_eq!(rows.len(), 3337);
        let ids: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(ids.len(), 3337, "one row per source id");
        assert!(
            rows.iter()
                .all(|r| r.metrics.ttft.mean.is_some() && r.metrics.tpot.mean.is_some())
        );
        assert!(rows.iter().all(|r| r.gpu_count == r.serving.gpus()));
        let engines: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.engine.as_str()).collect();
        assert_eq!(engines, ["sglang", "tensorrt-llm", "vllm"].into());
        for f in [
            FLAG_PRECISION,
            FLAG_TP_HEADS,
            FLAG_WORKERS,
            FLAG_NO_VERSION,
            FLAG_EP_ZERO,
        ] {
            assert!(rows.iter().any(|r| r.has_flag(f)), "no row flagged {f}");
        }
        eprintln!("{}", imported.notes.join("\n"));
        // The shipped copy is this import.
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/predictor/aiconfigurator.csv");
        let committed = pilot_core::schema::read_measurements(&shipped).unwrap();
        assert!(
            committed == imported.rows,
            "datasets/predictor/aiconfigurator.csv is stale: re-import it (datasets/README.md)"
        );
    }

    /// Every imported row names a GPU and an LLM pilot's catalogs resolve.
    #[test]
    fn every_imported_row_resolves_in_the_catalogs() {
        let Some(data) = shared_data() else {
            eprintln!("skipped: ../shared/data not found");
            return;
        };
        let imported = import(&data.join("aiconfigurator/silicon_sample.csv")).unwrap();
        let gpus = GpuCatalog::builtin();
        let models = pilot_core::llm::ModelCatalog::builtin();
        let mut unresolved = std::collections::BTreeSet::new();
        for r in &imported.rows {
            if gpus.resolve(&r.gpu).is_err() {
                unresolved.insert(format!("GPU {}", r.gpu));
            }
            if models.resolve(&r.model).is_err() {
                unresolved.insert(format!("model {}", r.model));
            }
        }
        assert!(unresolved.is_empty(), "unresolved: {unresolved:?}");
    }
}

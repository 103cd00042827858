//! What the importers of benchmark tools' result files share: the facts a file does not say
//! (the hardware, often the engine), the JSON reading, and telling one tool's file from
//! another's.
//!
//! A load generator sees an endpoint, not what serves it: `vllm bench serve`, GuideLLM,
//! AIPerf, inference-perf and LLMPerf write the model they asked for and the load they
//! offered, but never the GPU and seldom the engine. Those come from the user ([`Given`],
//! the `--gpu`, `--gpus`, `--engine`, `--model` flags of `pilot dataset import`), resolved
//! against pilot's catalogs as everywhere else, so a typo is an error with the closest
//! names rather than a row nothing else in pilot can match.

use crate::ImportError;
use pilot_core::gpu::GpuCatalog;
use pilot_core::llm::ModelCatalog;
use pilot_core::metrics::Stats;
use pilot_core::units::Millis;
use serde_json::Value;
use std::path::Path;

/// What the user says about a run, for what its file does not: the flags of
/// `pilot dataset import`. A flag wins over the file (the user may know better, e.g. a
/// served model's alias); where both say something different, the import notes it.
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `--gpu NAME`: the GPU type, any name pilot's GPU catalog resolves.
    pub gpu: Option<String>,
    /// `--gpus N`: how many GPUs served (one tensor-parallel group).
    pub gpu_count: Option<u32>,
    /// `--engine NAME`: the serving engine (vllm, sglang, tgi, tensorrt-llm, pilot, ...).
    pub engine: Option<String>,
    /// `--model NAME`: the LLM, any name pilot's model catalog resolves.
    pub model: Option<String>,
}

/// The benchmark tools whose result files pilot imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    VllmBench,
    Guidellm,
    Aiperf,
    InferencePerf,
    Llmperf,
}

impl Tool {
    /// The name in `pilot dataset import NAME` and in each row's `source` (`NAME:file`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::VllmBench => "vllm-bench",
            Tool::Guidellm => "guidellm",
            Tool::Aiperf => "aiperf",
            Tool::InferencePerf => "inference-perf",
            Tool::Llmperf => "llmperf",
        }
    }

    /// Imports one result file of this tool.
    pub fn import(self, path: &Path, given: &Given) -> Result<crate::Import, ImportError> {
        match self {
            Tool::VllmBench => crate::vllm_bench::import(path, given),
            Tool::Guidellm => crate::guidellm::import(path, given),
            Tool::Aiperf => crate::aiperf::import(path, given),
            Tool::InferencePerf => crate::inference_perf::import(path, given),
            Tool::Llmperf => crate::llmperf::import(path, given),
        }
    }

    /// Imports several result files of this tool into one set of rows; the first bad file
    /// stops the import (naming it), so no partial dataset is written.
    pub fn import_all(self, paths: &[&Path], given: &Given) -> Result<crate::Import, ImportError> {
        let mut all = crate::Import::default();
        let mut runs: Vec<std::path::PathBuf> = Vec::new();
        for path in paths {
            // LLMPerf's two files of one run import as one row: the second is skipped.
            let run = match self {
                Tool::Llmperf => crate::llmperf::run_of(path),
                _ => path.to_path_buf(),
            };
            if runs.contains(&run) {
                all.notes.push(format!(
                    "{}: skipped, the same run as a file imported before",
                    path.display()
                ));
                continue;
            }
            runs.push(run);
            let one = self.import(path, given)?;
            all.rows.extend(one.rows);
            all.notes.extend(
                one.notes
                    .into_iter()
                    .map(|n| format!("{}: {n}", path.display())),
            );
        }
        Ok(all)
    }
}

/// Which tool wrote a parsed result file, from keys only that tool writes: so that importing
/// one tool's file as another's says which command to use instead of "missing key".
pub(crate) fn detect(doc: &Value) -> Option<Tool> {
    let has = |k: &str| doc.get(k).is_some();
    if has("benchmarks") && doc["benchmarks"].is_array() {
        Some(Tool::Guidellm)
    } else if has("time_to_first_token") || has("aiperf_version") || has("input_config") {
        Some(Tool::Aiperf)
    } else if has("load_summary") && has("successes") {
        Some(Tool::InferencePerf)
    } else if has("results_ttft_s_mean")
        || has("results_ttft_s_quantiles_p50")
        || doc.as_array().is_some_and(|a| {
            a.first().is_some_and(|r| {
                r.get("ttft_s").is_some() && r.get("end_to_end_latency_s").is_some()
            })
        })
    {
        Some(Tool::Llmperf)
    } else if has("median_ttft_ms") || (has("model_id") && has("completed")) {
        Some(Tool::VllmBench)
    } else {
        None
    }
}

/// The error for a file that is not `tool`'s: what it lacks, what it looks like instead and
/// what `tool`'s file is.
pub(crate) fn not_this_tool(
    path: &Path,
    tool: Tool,
    doc: &Value,
    lack: &str,
    expected: &str,
) -> ImportError {
    let instead = match detect(doc) {
        Some(other) if other != tool => format!(
            " (it looks like a {} file: `pilot dataset import {} FILE`)",
            other.name(),
            other.name()
        ),
        _ => String::new(),
    };
    ImportError::Data {
        path: path.display().to_string(),
        reason: format!(
            "not a {} result: {lack}{instead}; expected {expected}",
            tool.name()
        ),
    }
}

/// Reads a JSON file: a missing file, unreadable text or bad JSON is an error naming the file
/// and what it should have been, with the parser's line and column.
pub(crate) fn read_json(path: &Path, expected: &str) -> Result<Value, ImportError> {
    let text = read_text(path, expected)?;
    serde_json::from_str(&text).map_err(|e| json_error(path, expected, e))
}

/// The file's text, or an error naming it.
pub(crate) fn read_text(path: &Path, expected: &str) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.display().to_string(),
        what: if e.kind() == std::io::ErrorKind::NotFound {
            format!("no such file; expected {expected}")
        } else {
            "cannot read it as text".to_string()
        },
        source: e.into(),
    })
}

/// A JSON parse error as an import error, with its line and column.
pub(crate) fn json_error(path: &Path, expected: &str, e: serde_json::Error) -> ImportError {
    ImportError::Read {
        path: path.display().to_string(),
        what: format!(
            "not JSON (line {}, column {}); expected {expected}",
            e.line(),
            e.column()
        ),
        source: e.into(),
    }
}

/// A JSON value reached by a path of keys, remembering the path for errors
/// (`benchmarks[0].metrics.time_to_first_token_ms`).
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub value: &'a Value,
    pub file: &'a Path,
}

impl<'a> At<'a> {
    pub fn new(value: &'a Value, file: &'a Path) -> At<'a> {
        At { value, file }
    }

    /// The value under `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A number under `key` (a JSON number, or a string holding one: vLLM's `--metadata`
    /// values and LLMPerf's min/max are strings). Absent or null is `None`; anything else
    /// that is not a number is an error naming `path` (the key's full path) and the value.
    pub fn num(&self, key: &str, path: &str) -> Result<Option<f64>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => as_number(v)
                .map(Some)
                .ok_or_else(|| self.bad(path, v, "a number")),
        }
    }

    /// A text under `key`; a number is written as text (a `--metadata gpus=2` may be either).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A list of numbers under `key`, `None` when absent; any element that is not a number is
    /// an error naming its index.
    pub fn nums(&self, key: &str, path: &str) -> Result<Option<Vec<f64>>, ImportError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.bad(path, v, "a list of numbers"))?;
        list.iter()
            .enumerate()
            .map(|(i, x)| {
                as_number(x).ok_or_else(|| self.bad(&format!("{path}[{i}]"), x, "a number"))
            })
            .collect::<Result<Vec<f64>, _>>()
            .map(Some)
    }

    /// The error for a value at `path` that is not `wanted`.
    pub fn bad(&self, path: &str, v: &Value, wanted: &str) -> ImportError {
        let mut shown = v.to_string();
        if shown.len() > 60 {
            shown = format!("{}...", shown.chars().take(60).collect::<String>());
        }
        ImportError::Data {
            path: self.file.display().to_string(),
            reason: format!("key '{path}' is {shown}, not {wanted}"),
        }
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A count (users, GPUs) read from a file: a whole number of at least 1, else an error naming
/// the key and the value.
pub(crate) fn whole(file: &Path, key: &str, v: f64) -> Result<u32, ImportError> {
    pilot_core::validate::count(key, v).map_err(|e| ImportError::Data {
        path: file.display().to_string(),
        reason: e.to_string(),
    })
}

/// What a file says about its run (each `None` where it is silent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Said {
    pub model: Option<String>,
    pub gpu: Option<String>,
    pub gpu_count: Option<u32>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
}

impl Said {
    /// What a run's free-form settings say (vLLM's `--metadata KEY=VALUE`, LLMPerf's
    /// `--metadata`, both written as top-level keys): `gpu`, `gpus` (or `gpu_count`,
    /// `num_gpus`), `engine`, `engine_version`; the model under `model_key`.
    pub fn from_metadata(at: &At, model_key: &str) -> Result<Said, ImportError> {
        let count = ["gpus", "gpu_count", "num_gpus"]
            .iter()
            .find_map(|k| at.num(k, k).transpose())
            .transpose()?;
        Ok(Said {
            model: at.text(model_key),
            gpu: at.text("gpu"),
            gpu_count: count.map(|n| whole(at.file, "gpus", n)).transpose()?,
            engine: at.text("engine"),
            engine_version: at.text("engine_version"),
        })
    }
}

/// The identifying columns of the rows of one file, resolved against pilot's catalogs.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub model: String,
    pub gpu: String,
    pub gpu_count: u32,
    pub engine: String,
    pub engine_version: Option<String>,
}

impl Identity {
    /// A row of this run under `load`, its `source` naming `tool` and the file.
    pub fn row(
        &self,
        load: pilot_core::schema::Load,
        tool: Tool,
        file: &Path,
    ) -> pilot_core::schema::Measurement {
        let mut row = pilot_core::schema::Measurement::new(
            &self.model,
            &self.gpu,
            self.gpu_count,
            &self.engine,
            load,
        );
        row.engine_version = self.engine_version.clone();
        row.source = source(tool, file);
        row
    }
}

/// Resolves what the file says and what the user gave into catalog names. The flag wins; a
/// fact neither gives is an error naming it and the flag that supplies it; an unknown name
/// is the catalogs' error, with the closest valid names.
pub(crate) fn identify(
    file: &Path,
    tool: Tool,
    said: &Said,
    given: &Given,
    notes: &mut Vec<String>,
) -> Result<Identity, ImportError> {
    let p = file.display().to_string();
    let pick = |what: &str,
                flag: &str,
                from_flag: Option<String>,
                from_file: Option<String>,
                notes: &mut Vec<String>| {
        match (from_flag, from_file) {
            (Some(f), Some(s)) => {
                if !f.eq_ignore_ascii_case(&s) {
                    notes.push(format!("{flag} {f} used; the file says {what} '{s}'"));
                }
                Ok(f)
            }
            (Some(f), None) => Ok(f),
            (None, Some(s)) => Ok(s),
            (None, None) => Err(ImportError::Missing {
                path: p.clone(),
                tool: tool.name(),
                what: what.to_string(),
                flag: flag.to_string(),
            }),
        }
    };
    let model_name = pick(
        "the model",
        "--model NAME",
        given.model.clone(),
        said.model.clone(),
        notes,
    )?;
    let gpu_name = pick(
        "the GPU",
        "--gpu NAME",
        given.gpu.clone(),
        said.gpu.clone(),
        notes,
    )?;
    let count = pick(
        "how many GPUs served",
        "--gpus N",
        given.gpu_count.map(|n| n.to_string()),
        said.gpu_count.map(|n| n.to_string()),
        notes,
    )?;
    let engine_name = pick(
        "the serving engine",
        "--engine NAME",
        given.engine.clone(),
        said.engine.clone(),
        notes,
    )?;

    let model = ModelCatalog::builtin()
        .resolve(&model_name)
        .map_err(|e| ImportError::Model {
            path: p.clone(),
            name: model_name.clone(),
            source: Box::new(e),
        })?
        .id;
    let gpu = GpuCatalog::builtin()
        .resolve(&gpu_name)
        .map_err(|e| ImportError::Gpu {
            path: p.clone(),
            name: gpu_name.clone(),
            reason: format!("{e} (give the GPU with --gpu NAME)"),
        })?
        .name
        .clone();
    let gpu_count =
        pilot_core::validate::count_text("--gpus", &count).map_err(|e| ImportError::Data {
            path: p.clone(),
            reason: e.to_string(),
        })?;
    let engine =
        pilot_core::validate::engine(&engine_name, &[]).map_err(|e| ImportError::Data {
            path: p.clone(),
            reason: format!("{e} (give the engine with --engine NAME)"),
        })?;
    Ok(Identity {
        model,
        gpu,
        gpu_count,
        engine,
        engine_version: said.engine_version.clone(),
    })
}

/// An engine name only if pilot knows it as one: a tool's `backend` is often a protocol
/// (`openai`, `openai-chat`) rather than the server behind it.
pub(crate) fn known_engine(name: &str) -> Option<String> {
    pilot_core::validate::engine(name, &[]).ok()
}

/// Latency statistics from a tool's summary, scaled to milliseconds by `to_ms` (1000 for
/// seconds, 1 for milliseconds, 1e-6 for nanoseconds).
pub(crate) fn stats_ms(
    mean: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    to_ms: f64,
) -> Stats<Millis> {
    let ms = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| Millis(x * to_ms));
    Stats {
        p50: ms(p50),
        p90: ms(p90),
        p95: ms(p95),
        p99: ms(p99),
        mean: ms(mean),
    }
}

/// The `source` of a row: the tool and the file name.
pub(crate) fn source(tool: Tool, file: &Path) -> String {
    format!(
        "{}:{}",
        tool.name(),
        file.file_name().and_then(|f| f.to_str()).unwrap_or("?")
    )
}

/// An open-loop load at the rate `r` read from `key`, which must be finite and positive.
pub(crate) fn rate_load(
    file: &Path,
    key: &str,
    r: f64,
) -> Result<pilot_core::schema::Load, ImportError> {
    pilot_core::validate::rate(key, r)
        .map(pilot_core::schema::Load::Rate)
        .map_err(|e| ImportError::Data {
            path: file.display().to_string(),
            reason: e.to_string(),
        })
}

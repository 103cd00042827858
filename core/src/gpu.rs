//! The GPU catalog: accelerator names to the numbers the physics model and the cost model need.
//!
//! Every source pilot reads spells accelerators its own way: LLM-Pilot profiles say `1 x H100`,
//! LLM-Inference-Bench says `Nvidia H100 GPU` and `Intel PVC GPU`, SkyPilot's cloud catalog says
//! `A100-80GB`, users type `h100`. All of them resolve here, once, to one catalog row
//! ([`GpuSpec`]), so that the rest of pilot compares like with like.
//!
//! The catalog is `datasets/gpus.csv`, embedded at compile time ([`GpuCatalog::builtin`]). Each
//! row is a SKU (memory size and form factor included, since both change what fits and how fast
//! it runs) with its `source`; numbers are **dense** peaks (no 2:4 sparsity), bandwidths in
//! decimal GB/s, intra-node bandwidth per GPU in one direction.
//!
//! # Resolving names
//! [`GpuCatalog::resolve`] compares names case-insensitively, ignoring spaces, `-` and `_`, a
//! leading vendor word (`nvidia`, `amd`, `intel`, `habana`, `tesla`, `geforce`, `instinct`) and
//! a trailing `gpu`, and strips an LLM-Pilot count prefix (`2 x `). A name matches a SKU's
//! canonical name or one of its `aliases`.
//!
//! A bare family name that several SKUs list as an alias is **ambiguous** on purpose: `A100`
//! (four SKUs), `V100`, `A100-80GB`, `GH200`. Guessing there would silently mix 40 GB PCIe
//! results with 80 GB SXM prices. The one exception is `H100`, which means `H100-SXM-80GB`: that
//! is what every hyperscaler's 8-GPU H100 instance, NVIDIA's headline figures and most papers
//! mean; the PCIe and NVL cards must be named (`H100-PCIe`, `H100-NVL`).
//!
//! Importers whose source documents which variant it used (LLM-Pilot's `gpu_features.csv`
//! gives memory, bandwidth and `is_sxm`) call [`GpuCatalog::resolve_documented`], which picks
//! the variant from those facts and records why in a [`GpuChoice`].

use crate::quant::Quantization;
use crate::units::{Dtype, Gigabytes, GigabytesPerSec, Tflops, Watts};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The embedded catalog text (`datasets/gpus.csv`).
const BUILTIN_CSV: &str = include_str!("../../datasets/gpus.csv");

/// Leading words that carry no identity ("NVIDIA H100" is "H100").
const VENDOR_WORDS: [&str; 7] = [
    "nvidia", "amd", "intel", "habana", "tesla", "geforce", "instinct",
];

/// One accelerator SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSpec {
    /// Canonical catalog name, e.g. `H100-SXM-80GB`.
    pub name: String,
    /// `NVIDIA`, `AMD`, `Intel`, `Intel (Habana)`.
    pub vendor: String,
    /// Architecture (and die where it matters), e.g. `Ampere (GA100)`.
    pub architecture: String,
    /// Device memory per GPU (per package for multi-die parts such as MI250).
    pub memory: Gigabytes,
    /// Peak device-memory bandwidth.
    pub memory_bandwidth: GigabytesPerSec,
    /// Dense fp16 tensor peak; `None` where unsupported or unknown.
    pub fp16: Option<Tflops>,
    /// Dense bf16 tensor peak (`None` on V100 and T4: no bf16 tensor cores).
    pub bf16: Option<Tflops>,
    /// Dense fp8 tensor peak (Hopper, Ada, Blackwell, MI300X, Gaudi2).
    pub fp8: Option<Tflops>,
    /// Dense int8 tensor peak in TOPS (`None` on V100: no int8 tensor cores).
    pub int8: Option<Tflops>,
    /// Dense fp4 tensor peak (NVFP4/MXFP4 on Blackwell, MXFP4 on CDNA4); `None` where the
    /// GPU has no fp4 tensor math.
    #[serde(default)]
    pub fp4: Option<Tflops>,
    /// GPUs that reach each other over the scale-up link at `intra_node_bandwidth`: 8 on an
    /// HGX board or an 8-GPU AMD/Gaudi platform, 72 in a GB200/GB300 NVL72 rack, 1 for a PCIe
    /// card without NVLink; `None` where the catalog does not know. Tensor parallelism wider
    /// than this crosses the slower scale-out network.
    #[serde(default)]
    pub nvlink_domain: Option<u32>,
    /// GPUs in one server (4 per GB200/GB300 compute tray, 8 per HGX board); `None` where
    /// servers vary (PCIe cards).
    #[serde(default)]
    pub gpus_per_node: Option<u32>,
    /// GPU-to-GPU link inside a node, in words (`nvlink4`, `pcie4 (...)`).
    pub interconnect: String,
    /// Per-GPU, one-direction GPU-to-GPU bandwidth inside a node.
    pub intra_node_bandwidth: GigabytesPerSec,
    /// Board / module maximum power.
    pub tdp: Watts,
    /// Other spellings that resolve to this SKU (see the module doc for ambiguity).
    pub aliases: Vec<String>,
    /// Where the numbers come from (repository@commit path, or "datasheet").
    pub source: String,
}

impl GpuSpec {
    /// The dense matrix-multiply peak that a model stored in `dtype` actually runs at.
    ///
    /// Serving stacks do not always compute in the storage format, so this returns the peak
    /// of the math the kernels run:
    /// - `F16` → fp16; `Bf16` → bf16, or fp16 where the GPU has no bf16 tensor cores (V100,
    ///   T4: vLLM and TGI cast bf16 checkpoints to fp16 there).
    /// - `Fp8` → fp8 (W8A8) where supported; otherwise fp8 is weight-only (dequantised to
    ///   16-bit, e.g. Marlin kernels on Ampere), so the 16-bit peak.
    /// - `Int8` → int8 (W8A8, SmoothQuant-style) where supported; otherwise weight-only →
    ///   16-bit peak.
    /// - `Int4` → always the 16-bit peak: AWQ/GPTQ are weight-only, activations stay 16-bit.
    /// - `F32` → `None`: the catalog records no fp32/tf32 figures and no serving stack pilot
    ///   models runs LLM matmuls in fp32.
    ///
    /// "16-bit peak" is fp16, else bf16.
    pub fn peak(&self, dtype: Dtype) -> Option<Tflops> {
        let half = self.fp16.or(self.bf16);
        match dtype {
            Dtype::F32 => None,
            Dtype::F16 => self.fp16,
            Dtype::Bf16 => self.bf16.or(self.fp16),
            Dtype::Fp8 => self.fp8.or(half),
            Dtype::Int8 => self.int8.or(half),
            Dtype::Int4 => half,
        }
    }

    /// The dense matrix-multiply peak a model served in the weight format `q` runs at.
    ///
    /// The formats that are only a width ([`Quantization::storage`]) answer as
    /// [`GpuSpec::peak`] does; fp8 with block scales runs at the fp8 rate. nvfp4 and mxfp4 run
    /// at the fp4 peak where the GPU has fp4 tensor math (Blackwell, CDNA4: W4A4); elsewhere
    /// serving stacks dequantize them to 16 bits (weight-only, e.g. Marlin on Hopper), so the
    /// 16-bit peak, as for int4 w4a16.
    pub fn peak_for(&self, q: Quantization) -> Option<Tflops> {
        match q {
            Quantization::Fp8Block => self.peak(Dtype::Fp8),
            Quantization::Nvfp4 | Quantization::Mxfp4 => {
                self.fp4.or_else(|| self.peak(Dtype::Int4))
            }
            other => self.peak(other.storage()),
        }
    }

    /// True for PCIe add-in cards (including NVL pairs bridged over NVLink); false for
    /// SXM/OAM modules and superchips. This is LLM-Pilot's `is_sxm` negated.
    pub fn is_pcie_card(&self) -> bool {
        self.interconnect.trim_start().starts_with("pcie")
    }
}

/// Why the catalog could not give a single GPU for a name. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No SKU or alias matches.
    #[error(
        "unknown GPU '{name}'{}; name a GPU from the catalog (datasets/gpus.csv)",
        did_you_mean(closest)
    )]
    Unknown { name: String, closest: Vec<String> },
    /// Several SKUs share this spelling; guessing would mix memory sizes or form factors.
    #[error("{name} is ambiguous: {}; name one of them", candidates.join(", "))]
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
    /// The documented memory/bandwidth/form factor match none of the candidates.
    #[error(
        "{name} documented as {wanted} matches none of {}; add the SKU to datasets/gpus.csv or fix the documented figures",
        candidates.join(", ")
    )]
    NoDocumentedMatch {
        name: String,
        wanted: String,
        candidates: Vec<String>,
    },
    /// A profile string such as `2 x A100` with a bad count.
    #[error("bad GPU profile '{profile}': {reason}; write it as 'COUNT x GPU', e.g. '2 x H100'")]
    BadProfile { profile: String, reason: String },
    /// A catalog CSV that cannot be read.
    #[error("GPU catalog line {line}: {reason}")]
    Malformed {
        line: u64,
        reason: String,
        /// The CSV reader's error, when the row could not be parsed at all.
        #[source]
        source: Option<csv::Error>,
    },
    /// A name no catalog could hold (see [`crate::validate::name`]).
    #[error("GPU {0}")]
    Invalid(#[from] crate::validate::InvalidValue),
}

fn did_you_mean(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", closest.join(", "))
    }
}

/// A SKU picked from a documented description, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuChoice<'a> {
    pub spec: &'a GpuSpec,
    /// E.g. `A100: 40 GB, 1555 GB/s, is_sxm=false → A100-PCIe-40GB`. Importers prefix their
    /// source ("LLM-Pilot gpu_features.csv: ...") and keep it with the imported rows.
    pub reason: String,
}

/// The GPU catalog: SKUs plus an index from normalised spellings to SKUs.
#[derive(Debug, Clone)]
pub struct GpuCatalog {
    specs: Vec<GpuSpec>,
    /// Normalised name or alias → indices into `specs` (deduplicated, catalog order).
    index: HashMap<String, Vec<usize>>,
}

/// One `gpus.csv` row as written on disk.
#[derive(Debug, Deserialize)]
struct GpuRow {
    name: String,
    vendor: String,
    architecture: String,
    memory_gb: f64,
    memory_bandwidth_gbps: f64,
    fp16_dense_tflops: Option<f64>,
    bf16_dense_tflops: Option<f64>,
    fp8_dense_tflops: Option<f64>,
    int8_dense_tops: Option<f64>,
    fp4_dense_tflops: Option<f64>,
    nvlink_domain: Option<u32>,
    gpus_per_node: Option<u32>,
    interconnect: String,
    intra_node_bw_gbps: f64,
    tdp_watts: f64,
    aliases: String,
    source: String,
}

impl GpuCatalog {
    /// The catalog shipped with pilot (`datasets/gpus.csv`), parsed once.
    pub fn builtin() -> &'static GpuCatalog {
        static CATALOG: OnceLock<GpuCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            GpuCatalog::from_csv_str(BUILTIN_CSV)
                .expect("datasets/gpus.csv is checked by the tests in gpu.rs")
        })
    }

    /// Parses a catalog in the `datasets/gpus.csv` format (header required; empty peak =
    /// unsupported/unknown; `aliases` separated by `;`).
    pub fn from_csv_str(text: &str) -> Result<GpuCatalog, GpuError> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut specs = Vec::new();
        for result in reader.deserialize::<GpuRow>() {
            let row = result.map_err(|e| GpuError::Malformed {
                line: e.position().map_or(0, |p| p.line()),
                reason: "not a row with the columns of datasets/gpus.csv".into(),
                source: Some(e),
            })?;
            let line = specs.len() as u64 + 2;
            let bad = |reason: String| GpuError::Malformed {
                line,
                reason,
                source: None,
            };
            if row.name.trim().is_empty() {
                return Err(bad("empty name".into()));
            }
            for (what, v) in [
                ("memory_gb", row.memory_gb),
                ("memory_bandwidth_gbps", row.memory_bandwidth_gbps),
            ] {
                if v.is_nan() || v <= 0.0 {
                    return Err(bad(format!(
                        "{} has {what} = {v}; it must be > 0",
                        row.name
                    )));
                }
            }
            let peak = |v: Option<f64>| v.map(Tflops);
            specs.push(GpuSpec {
                name: row.name.trim().to_string(),
                vendor: row.vendor,
                architecture: row.architecture,
                memory: Gigabytes(row.memory_gb),
                memory_bandwidth: GigabytesPerSec(row.memory_bandwidth_gbps),
                fp16: peak(row.fp16_dense_tflops),
                bf16: peak(row.bf16_dense_tflops),
                fp8: peak(row.fp8_dense_tflops),
                int8: peak(row.int8_dense_tops),
                fp4: peak(row.fp4_dense_tflops),
                nvlink_domain: row.nvlink_domain,
                gpus_per_node: row.gpus_per_node,
                interconnect: row.interconnect,
                intra_node_bandwidth: GigabytesPerSec(row.intra_node_bw_gbps),
                tdp: Watts(row.tdp_watts),
                aliases: row
                    .aliases
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
                source: row.source,
            });
        }
        // Canonical names must be unique even after normalisation, or no spelling could pick
        // one of them.
        let mut names: HashMap<String, &str> = HashMap::new();
        for (i, s) in specs.iter().enumerate() {
            if let Some(other) = names.insert(normalize(&s.name), &s.name) {
                return Err(GpuError::Malformed {
                    line: i as u64 + 2,
                    reason: format!("{} duplicates {other} (names compare normalised)", s.name),
                    source: None,
                });
            }
        }
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in specs.iter().enumerate() {
            for spelling in std::iter::once(&s.name).chain(&s.aliases) {
                let ids = index.entry(normalize(spelling)).or_default();
                if !ids.contains(&i) {
                    ids.push(i);
                }
            }
        }
        // A canonical name always means its own SKU, even if another SKU lists it as alias.
        for (i, s) in specs.iter().enumerate() {
            index.insert(normalize(&s.name), vec![i]);
        }
        Ok(GpuCatalog { specs, index })
    }

    /// Every SKU, in catalog order.
    pub fn all(&self) -> &[GpuSpec] {
        &self.specs
    }

    /// The SKU a name means. See the module doc for the matching rules; an LLM-Pilot count
    /// prefix (`1 x H100`) is accepted and ignored (use [`Self::parse_profile`] to keep it).
    pub fn resolve(&self, name: &str) -> Result<&GpuSpec, GpuError> {
        // Normalising and closest-name scoring cost time in proportion to the length.
        crate::validate::name("name", name)?;
        let (_, bare) = split_profile(name);
        let key = normalize(bare);
        match self.index.get(&key).map(Vec::as_slice) {
            Some([one]) => Ok(&self.specs[*one]),
            Some(many) if !many.is_empty() => Err(GpuError::Ambiguous {
                name: name.trim().to_string(),
                candidates: many.iter().map(|&i| self.specs[i].name.clone()).collect(),
            }),
            _ => Err(GpuError::Unknown {
                name: crate::validate::shorten(name.trim()),
                closest: self.closest(&key, 3),
            }),
        }
    }

    /// Every SKU a name may mean: the one [`Self::resolve`] gives, or all the candidates of an
    /// ambiguous family name (`A100`: the four A100s). For a set of GPUs to *consider* (as
    /// `pilot recommend --gpus a100,l4`), where each SKU stays its own candidate with its own
    /// memory and price, so nothing is mixed; an unknown name is still an error.
    pub fn resolve_family(&self, name: &str) -> Result<Vec<&GpuSpec>, GpuError> {
        match self.resolve(name) {
            Ok(one) => Ok(vec![one]),
            Err(GpuError::Ambiguous { candidates, .. }) => {
                candidates.iter().map(|c| self.resolve(c)).collect()
            }
            Err(e) => Err(e),
        }
    }

    /// A GPU profile: `2 x A100`, `2xH100`, `4 × T4`, or a bare name (count 1).
    pub fn parse_profile(&self, s: &str) -> Result<(u32, &GpuSpec), GpuError> {
        let (count, bare) = split_profile(s);
        let count = match count {
            None => 1,
            Some(Ok(0)) => {
                return Err(GpuError::BadProfile {
                    profile: s.trim().into(),
                    reason: "the count is 0".into(),
                });
            }
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                return Err(GpuError::BadProfile {
                    profile: s.trim().into(),
                    reason: format!("the count does not fit: {e}"),
                });
            }
        };
        Ok((count, self.resolve(bare)?))
    }

    /// Picks the variant of `name` that its source documents: memory within 10 % (marketing
    /// GB vs GiB), bandwidth within 10 % (LLM-Pilot lists T4 at 300 GB/s, the datasheet 320),
    /// and, when `sxm` is given, the form factor (`Some(false)` = PCIe card). Among matches
    /// the closest bandwidth wins; a tie on all three is still [`GpuError::Ambiguous`].
    pub fn resolve_documented(
        &self,
        name: &str,
        memory: Gigabytes,
        bandwidth: GigabytesPerSec,
        sxm: Option<bool>,
    ) -> Result<GpuChoice<'_>, GpuError> {
        let candidates: Vec<&GpuSpec> = match self.resolve(name) {
            Ok(spec) => vec![spec],
            Err(GpuError::Ambiguous { candidates, .. }) => candidates
                .iter()
                .map(|c| self.resolve(c).expect("candidates are canonical names"))
                .collect(),
            Err(e) => return Err(e),
        };
        let rel = |a: f64, b: f64| (a - b).abs() / b.max(f64::MIN_POSITIVE);
        let mut fits: Vec<(&GpuSpec, f64)> = candidates
            .iter()
            .filter(|s| rel(s.memory.0, memory.0) <= 0.10)
            .filter(|s| rel(s.memory_bandwidth.0, bandwidth.0) <= 0.10)
            .filter(|s| sxm.is_none_or(|want_sxm| want_sxm != s.is_pcie_card()))
            .map(|s| (*s, rel(s.memory_bandwidth.0, bandwidth.0)))
            .collect();
        fits.sort_by(|a, b| a.1.total_cmp(&b.1));
        let sxm_text = match sxm {
            Some(b) => format!(", is_sxm={b}"),
            None => String::new(),
        };
        let wanted = format!("{} GB, {} GB/s{sxm_text}", memory.0, bandwidth.0);
        match fits.as_slice() {
            [] => Err(GpuError::NoDocumentedMatch {
                name: name.trim().into(),
                wanted,
                candidates: candidates.iter().map(|s| s.name.clone()).collect(),
            }),
            [(best, e0), rest @ ..] => {
                let tied: Vec<String> = std::iter::once(*best)
                    .chain(rest.iter().filter(|(_, e)| e == e0).map(|(s, _)| *s))
                    .map(|s| s.name.clone())
                    .collect();
                if tied.len() > 1 {
                    return Err(GpuError::Ambiguous {
                        name: format!("{} ({wanted})", name.trim()),
                        candidates: tied,
                    });
                }
                Ok(GpuChoice {
                    spec: best,
                    reason: format!("{}: {wanted} → {}", name.trim(), best.name),
                })
            }
        }
    }

    /// Up to `n` catalog names nearest to a normalised spelling (Damerau–Levenshtein over
    /// names and aliases; ties prefer the same length, so `L4O` suggests `L40` before `L4`).
    fn closest(&self, key: &str, n: usize) -> Vec<String> {
        let mut scored: Vec<(usize, usize, usize)> = Vec::new();
        for (spelling, ids) in &self.index {
            let d = strsim::damerau_levenshtein(key, spelling);
            let dl = key.len().abs_diff(spelling.len());
            for &i in ids {
                scored.push((d, dl, i));
            }
        }
        scored.sort_by(|a, b| {
            (a.0, a.1, &self.specs[a.2].name).cmp(&(b.0, b.1, &self.specs[b.2].name))
        });
        let mut out: Vec<String> = Vec::new();
        for (_, _, i) in scored {
            let name = &self.specs[i].name;
            if !out.contains(name) {
                out.push(name.clone());
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }
}

/// Splits an LLM-Pilot style profile into its count and GPU name: `"2 x A100"` →
/// `(Some(Ok(2)), "A100")`, `"2xH100"` → `(Some(Ok(2)), "H100")`, `"H100"` → `(None, "H100")`.
/// The count is `Some` only when the text starts with digits followed by `x` or `×`.
pub fn split_profile(s: &str) -> (Option<Result<u32, std::num::ParseIntError>>, &str) {
    let t = s.trim();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return (None, t);
    }
    let rest = t[digits..].trim_start();
    for sep in ["x", "X", "×"] {
        if let Some(name) = rest.strip_prefix(sep) {
            let name = name.trim();
            if !name.is_empty() {
                return (Some(t[..digits].parse::<u32>()), name);
            }
        }
    }
    (None, t)
}

/// The comparison key: lowercase words (split on space, `-`, `_`), leading vendor words and
/// a trailing `gpu`/`gpus` dropped, joined without separators.
fn normalize(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect();
    while words.len() > 1 && VENDOR_WORDS.contains(&words[0]) {
        words.remove(0);
    }
    while words.len() > 1 && matches!(words.last(), Some(&"gpu") | Some(&"gpus")) {
        words.pop();
    }
    words.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static GpuCatalog {
        GpuCatalog::builtin()
    }

    #[test]
    fn gpu_builtin_parses_and_every_sku_resolves_to_itself() {
        let c = cat();
        assert!(c.all().len() >= 29, "{}", c.all().len());
        for s in c.all() {
            assert_eq!(c.resolve(&s.name).unwrap().name, s.name);
            assert_eq!(c.resolve(&s.name.to_lowercase()).unwrap().name, s.name);
            assert!(!s.source.is_empty(), "{} has no source", s.name);
        }
    }

    #[test]
    fn gpu_every_source_sku_is_in_the_catalog() {
        // The SKUs of shared/data/hardware/gpus.csv, plus the accelerators the public
        // datasets name (LLM-Inference-Bench: Max 1550; clouds: A40, L40, RTX A6000).
        for name in [
            "T4",
            "V100-SXM2-16GB",
            "V100-SXM2-32GB",
            "V100-PCIe-16GB",
            "V100-PCIe-32GB",
            "A10",
            "A10G",
            "L4",
            "L40S",
            "A100-PCIe-40GB",
            "A100-SXM-40GB",
            "A100-PCIe-80GB",
            "A100-SXM-80GB",
            "H100-PCIe-80GB",
            "H100-SXM-80GB",
            "H100-NVL-94GB",
            "H200-SXM-141GB",
            "GH200-96GB",
            "GH200-144GB",
            "B200-SXM-180GB",
            "RTX-4090",
            "RTX-6000-Ada",
            "MI250",
            "MI300X",
            "Gaudi2",
            "Max-1550",
            "A40",
            "L40",
            "RTX-A6000",
            "B300-SXM-288GB",
            "GB200-186GB",
            "GB300-288GB",
            "MI325X",
            "MI355X",
            "Gaudi3",
        ] {
            assert_eq!(cat().resolve(name).unwrap().name, name);
        }
    }

    #[test]
    fn gpu_aiconfigurator_system_names_resolve() {
        // The `system` names of shared/data/aiconfigurator (silicon_sample.csv, systems/*.yaml)
        // and the AMD parts they are compared with.
        for (system, want) in [
            ("h100_sxm", "H100-SXM-80GB"),
            ("h200_sxm", "H200-SXM-141GB"),
            ("b200_sxm", "B200-SXM-180GB"),
            ("b300_sxm", "B300-SXM-288GB"),
            ("gb200", "GB200-186GB"),
            ("gb300", "GB300-288GB"),
            ("mi300x", "MI300X"),
            ("mi325x", "MI325X"),
            ("mi355x", "MI355X"),
            ("gaudi3", "Gaudi3"),
            ("a100_sxm", "A100-SXM-80GB"),
            ("l40s", "L40S"),
        ] {
            match cat().resolve(system) {
                Ok(g) => assert_eq!(g.name, want, "{system}"),
                // a100_sxm is the family name (40 and 80 GB); the yaml's card is one of them.
                Err(GpuError::Ambiguous { candidates, .. }) => {
                    assert!(
                        candidates.iter().any(|c| c == want),
                        "{system}: {candidates:?}"
                    )
                }
                Err(e) => panic!("{system}: {e}"),
            }
        }
    }

    #[test]
    fn gpu_scale_up_domains_and_fp4_peaks() {
        let g = |n: &str| cat().resolve(n).unwrap();
        assert_eq!(
            (g("gb200").nvlink_domain, g("gb200").gpus_per_node),
            (Some(72), Some(4))
        );
        assert_eq!(g("gb300").nvlink_domain, Some(72));
        for n in ["h100", "h200", "b200", "b300", "mi355x"] {
            assert_eq!(
                (g(n).nvlink_domain, g(n).gpus_per_node),
                (Some(8), Some(8)),
                "{n}"
            );
        }
        assert_eq!(g("L4").nvlink_domain, Some(1));
        // fp4 where the GPU has it; the 16-bit peak (weight-only) where it does not.
        assert_eq!(
            g("b200").peak_for(Quantization::Nvfp4),
            Some(Tflops(9000.0))
        );
        assert_eq!(
            g("gb300").peak_for(Quantization::Mxfp4),
            Some(Tflops(15000.0))
        );
        assert_eq!(g("mi355x").peak_for(Quantization::Mxfp4), g("mi355x").fp4);
        let h100 = g("h100");
        assert_eq!(h100.fp4, None);
        assert_eq!(h100.peak_for(Quantization::Nvfp4), h100.peak(Dtype::F16));
        assert_eq!(g("mi300x").fp4, None);
        assert_eq!(h100.peak_for(Quantization::Fp8Block), h100.fp8);
        // Formats that are only a width answer exactly as `peak` does, on every GPU.
        for gpu in cat().all() {
            for d in Dtype::ALL {
                assert_eq!(
                    gpu.peak_for(Quantization::from(d)),
                    gpu.peak(d),
                    "{} {d}",
                    gpu.name
                );
            }
        }
    }

    #[test]
    fn gpu_h100_spellings_mean_the_sxm_card() {
        for s in [
            "H100",
            "h100-sxm",
            "H100-SXM-80GB",
            "Nvidia H100 GPU",
            "nvidia h100 gpu",
            "1 x H100",
            "H100 80GB",
            "NVIDIA_H100",
        ] {
            assert_eq!(cat().resolve(s).unwrap().name, "H100-SXM-80GB", "{s}");
        }
        assert_eq!(cat().resolve("H100 PCIe").unwrap().name, "H100-PCIe-80GB");
        assert_eq!(cat().resolve("h100-nvl").unwrap().name, "H100-NVL-94GB");
    }

    #[test]
    fn gpu_benchmark_and_cloud_spellings_resolve() {
        for (s, want) in [
            ("Intel Max 1550", "Max-1550"),
            ("Intel PVC GPU", "Max-1550"),
            ("AMD MI250 GPU", "MI250"),
            ("AMD MI300X GPU", "MI300X"),
            ("Habana Gaudi2", "Gaudi2"),
            ("A10G", "A10G"),
            ("a10", "A10"),
            ("L4", "L4"),
            ("T4", "T4"),
            ("L40S", "L40S"),
            ("H200", "H200-SXM-141GB"),
            ("RTX4090", "RTX-4090"),
            ("RTX6000-Ada", "RTX-6000-Ada"),
            ("RTXA6000", "RTX-A6000"),
            ("A100-80GB-SXM", "A100-SXM-80GB"),
        ] {
            assert_eq!(cat().resolve(s).unwrap().name, want, "{s}");
        }
    }

    #[test]
    fn families_expand_to_every_sku_only_where_asked() {
        let c = GpuCatalog::builtin();
        let a100: Vec<&str> = c
            .resolve_family("a100")
            .unwrap()
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert!(
            a100.len() >= 4 && a100.iter().all(|n| n.starts_with("A100-")),
            "{a100:?}"
        );
        assert!(c.resolve("a100").is_err(), "resolve stays strict");
        let l4 = c.resolve_family("L4").unwrap();
        assert_eq!(l4.len(), 1);
        assert!(matches!(
            c.resolve_family("a1000x"),
            Err(GpuError::Unknown { .. })
        ));
    }

    #[test]
    fn gpu_bare_family_names_are_ambiguous() {
        let err = cat().resolve("A100").unwrap_err();
        match &err {
            GpuError::Ambiguous { candidates, .. } => {
                for v in [
                    "A100-PCIe-40GB",
                    "A100-SXM-40GB",
                    "A100-PCIe-80GB",
                    "A100-SXM-80GB",
                ] {
                    assert!(candidates.iter().any(|c| c == v), "{candidates:?}");
                }
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.starts_with("A100 is ambiguous: ") && msg.ends_with("name one of them"));
        for s in ["V100", "Nvidia A100 GPU", "A100-80GB", "GH200", "V100-32GB"] {
            assert!(
                matches!(cat().resolve(s), Err(GpuError::Ambiguous { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn gpu_typos_suggest_the_nearest_name_first() {
        for (typo, first) in [
            ("H10O", "H100-SXM-80GB"),
            ("L4O", "L40"),
            ("MI300", "MI300X"),
        ] {
            match cat().resolve(typo) {
                Err(GpuError::Unknown { closest, .. }) => {
                    assert_eq!(closest.first().map(String::as_str), Some(first), "{typo}")
                }
                other => panic!("{typo}: {other:?}"),
            }
        }
        let msg = cat().resolve("H10O").unwrap_err().to_string();
        assert!(msg.contains("did you mean H100-SXM-80GB"), "{msg}");
    }

    #[test]
    fn gpu_profiles_carry_their_count() {
        let c = cat();
        assert_eq!(c.parse_profile("2xH100").unwrap().0, 2);
        let (n, spec) = c.parse_profile("4 x T4").unwrap();
        assert_eq!((n, spec.name.as_str()), (4, "T4"));
        assert_eq!(c.parse_profile("L4").unwrap().0, 1);
        assert!(matches!(
            c.parse_profile("2 x A100"),
            Err(GpuError::Ambiguous { .. })
        ));
        assert!(matches!(
            c.parse_profile("0 x H100"),
            Err(GpuError::BadProfile { .. })
        ));
    }

    #[test]
    fn gpu_resolve_documented_uses_llm_pilot_features() {
        let c = cat();
        let pick = |n, m, b, s| {
            c.resolve_documented(n, Gigabytes(m), GigabytesPerSec(b), s)
                .unwrap()
        };
        let a100 = pick("A100", 40.0, 1555.0, Some(false));
        assert_eq!(a100.spec.name, "A100-PCIe-40GB");
        assert!(a100.reason.contains("A100-PCIe-40GB") && a100.reason.contains("1555"));
        assert_eq!(
            pick("V100", 16.0, 900.0, Some(false)).spec.name,
            "V100-PCIe-16GB"
        );
        assert_eq!(
            pick("H100", 80.0, 3350.0, Some(true)).spec.name,
            "H100-SXM-80GB"
        );
        assert_eq!(pick("A10", 24.0, 600.0, Some(false)).spec.name, "A10");
        assert_eq!(pick("T4", 16.0, 300.0, Some(false)).spec.name, "T4");
        assert_eq!(pick("GH200", 96.0, 4000.0, None).spec.name, "GH200-96GB");
        // Same memory and bandwidth, form factor unknown: still ambiguous.
        assert!(matches!(
            c.resolve_documented("A100", Gigabytes(40.0), GigabytesPerSec(1555.0), None),
            Err(GpuError::Ambiguous { .. })
        ));
        assert!(matches!(
            c.resolve_documented("A100", Gigabytes(24.0), GigabytesPerSec(600.0), None),
            Err(GpuError::NoDocumentedMatch { .. })
        ));
    }

    #[test]
    fn gpu_peak_follows_the_math_the_kernels_run() {
        let c = cat();
        let v100 = c.resolve("V100-SXM2-16GB").unwrap();
        assert_eq!(v100.peak(Dtype::Bf16), v100.fp16);
        assert_eq!(v100.peak(Dtype::Int8), v100.fp16);
        let h100 = c.resolve("H100").unwrap();
        assert_eq!(h100.peak(Dtype::Fp8), Some(Tflops(1978.0)));
        assert_eq!(h100.peak(Dtype::Int4), Some(Tflops(989.0)));
        assert_eq!(h100.peak(Dtype::F32), None);
        let a100 = c.resolve("A100-SXM-80GB").unwrap();
        assert_eq!(a100.peak(Dtype::Fp8), Some(Tflops(312.0)));
    }

    #[test]
    fn gpu_malformed_csv_names_the_line() {
        let header = "name,vendor,architecture,memory_gb,memory_bandwidth_gbps,fp16_dense_tflops,bf16_dense_tflops,fp8_dense_tflops,int8_dense_tops,interconnect,intra_node_bw_gbps,tdp_watts,aliases,source\n";
        let good = "X1,V,A,16,900,100,,,,pcie4,32,300,x;y,me\n";
        let bad = "X2,V,A,lots,900,100,,,,pcie4,32,300,,me\n";
        assert_eq!(
            GpuCatalog::from_csv_str(&format!("{header}{good}"))
                .unwrap()
                .all()
                .len(),
            1
        );
        match GpuCatalog::from_csv_str(&format!("{header}{good}{bad}")) {
            Err(e @ GpuError::Malformed { line, .. }) => {
                assert_eq!(line, 3);
                let source = std::error::Error::source(&e).expect("the CSV error is kept");
                assert!(source.downcast_ref::<csv::Error>().is_some(), "{source}");
            }
            other => panic!("{other:?}"),
        }
    }
}

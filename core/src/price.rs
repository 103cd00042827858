//! The price catalog: what a given number of a given GPU costs per hour, per cloud.
//!
//! A price belongs to a **(GPU SKU, count)** pair, because that is what clouds sell: an
//! instance with exactly N GPUs. pilot never derives the price of 3 GPUs from the price of 1
//! or 8: per-GPU prices differ between instance sizes (host CPU and memory scale with them),
//! and most clouds simply do not sell every count. When a cloud has no instance with exactly
//! the wanted count, [`PriceCatalog::cheapest`] returns `None` for it. (GCP is the one cloud
//! in the snapshot that attaches GPUs by count to a VM; its rows are GPU-only prices for the
//! counts it lists, and the host VM is billed on top: see each row's `source`.)
//!
//! The builtin catalog (`datasets/prices.csv`) is made by [`build_price_rows`] from two
//! public sources, and checked against them by a test:
//! - SkyPilot's frozen cloud catalog snapshot (`shared/data/prices/gpu_instances.csv`,
//!   skypilot-org/skypilot-catalog v6), whose accelerator spellings (`A100`, `A100-80GB`,
//!   `V100`) name a family, not a SKU: [`build_price_rows`] maps them per cloud and instance
//!   type, and records the assumption in `source`.
//! - LLM-Pilot's evaluation prices (`shared/data/llm-pilot/prices.csv`), kept as the cloud
//!   `llm-pilot` so that its recommendation experiment can be reproduced. Those rows are not a
//!   real cloud: `cheapest` with `cloud: None` skips them.
//!
//! Users bring their own negotiated prices with [`PriceCatalog::from_path`]: a CSV with the
//! same columns, or the JSON `pilot catalog prices --json` prints.

use crate::gpu::{GpuCatalog, GpuError, split_profile};
use crate::units::{Gigabytes, GigabytesPerSec, UsdPerHour};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The embedded catalog text (`datasets/prices.csv`).
const BUILTIN_CSV: &str = include_str!("../../datasets/prices.csv");

/// The cloud name given to LLM-Pilot's evaluation prices.
pub const LLM_PILOT_CLOUD: &str = "llm-pilot";

/// The header pilot writes; readers need the first four columns and accept the rest missing.
pub const PRICE_HEADER: &str =
    "cloud,gpu,gpu_count,instance_type,region,on_demand_usd_per_hour,spot_usd_per_hour,source";
const REQUIRED_COLUMNS: [&str; 4] = ["cloud", "gpu", "gpu_count", "on_demand_usd_per_hour"];

/// One purchasable configuration: `gpu_count` x `gpu` on `cloud`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceEntry {
    /// Cloud (SkyPilot's short names: `aws`, `gcp`, `azure`, `lambda`, ...; or `llm-pilot`).
    pub cloud: String,
    /// Canonical GPU catalog name (`A100-SXM-40GB`).
    pub gpu: String,
    /// GPUs in the instance.
    pub gpu_count: u32,
    /// The cloud's instance type (empty for GCP's GPU-only rows; the profile for LLM-Pilot).
    pub instance_type: String,
    /// Region of the cheapest on-demand offer (empty where the source has none).
    pub region: String,
    /// On-demand price for the whole instance; `None` where the source lists spot only.
    pub on_demand: Option<UsdPerHour>,
    /// Spot / preemptible price of the same row; `None` where not offered.
    pub spot: Option<UsdPerHour>,
    /// Where the price comes from, and any mapping assumption made.
    pub source: String,
}

impl PriceEntry {
    /// The on-demand or the spot price.
    pub fn price(&self, spot: bool) -> Option<UsdPerHour> {
        if spot { self.spot } else { self.on_demand }
    }
}

/// Why prices could not be read or built. Each message names the file and what to change.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no column '{column}'; expected header: {expected}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        expected: String,
    },
    #[error("{path} line {line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error(
        "{path} entry {entry}: {reason}; expected the JSON of `pilot catalog prices --json`: an array of {{\"cloud\", \"gpu\", \"gpu_count\", \"on_demand\", ...}}"
    )]
    BadEntry {
        path: PathBuf,
        entry: usize,
        reason: String,
    },
    /// A line (or JSON entry) the CSV or JSON reader cannot parse; its error is the source.
    #[error("{path} {place} cannot be parsed; expected {expected}")]
    Unparsable {
        path: PathBuf,
        /// `line 3` or `entry 2`.
        place: String,
        expected: String,
        #[source]
        source: crate::BoxError,
    },
}

/// What the JSON of `pilot catalog prices --json` looks like, for error messages.
const PRICE_JSON: &str = "the JSON of `pilot catalog prices --json`: an array of {\"cloud\", \"gpu\", \"gpu_count\", \"on_demand\", ...}";

/// All known prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceCatalog {
    entries: Vec<PriceEntry>,
}

/// One `prices.csv` row on disk (optional columns default to empty), or one entry of the
/// JSON `pilot catalog prices --json` prints: the serialized [`PriceEntry`], whose price
/// fields are named `on_demand` and `spot` (the aliases).
#[derive(Debug, Serialize, Deserialize)]
struct PriceRow {
    cloud: String,
    gpu: String,
    gpu_count: u32,
    #[serde(default)]
    instance_type: String,
    #[serde(default)]
    region: String,
    #[serde(alias = "on_demand")]
    on_demand_usd_per_hour: Option<f64>,
    #[serde(default, alias = "spot")]
    spot_usd_per_hour: Option<f64>,
    #[serde(default)]
    source: String,
}

impl PriceRow {
    /// The entry this row means, checked the one way for CSV and JSON files: a GPU the
    /// catalog resolves, a count of at least 1, prices finite and not negative, a cloud.
    fn checked(self, gpus: &GpuCatalog) -> Result<PriceEntry, String> {
        let gpu = gpus.resolve(&self.gpu).map_err(|e| e.to_string())?;
        crate::validate::count("gpu_count", f64::from(self.gpu_count))
            .map_err(|e| e.to_string())?;
        for (what, p) in [
            ("on_demand_usd_per_hour", self.on_demand_usd_per_hour),
            ("spot_usd_per_hour", self.spot_usd_per_hour),
        ] {
            if let Some(p) = p
                && !(p.is_finite() && p >= 0.0)
            {
                return Err(format!("{what} = {p}; a price must be >= 0"));
            }
        }
        if self.cloud.trim().is_empty() {
            return Err("empty cloud".into());
        }
        Ok(PriceEntry {
            cloud: self.cloud.trim().to_string(),
            gpu: gpu.name.clone(),
            gpu_count: self.gpu_count,
            instance_type: self.instance_type,
            region: self.region,
            on_demand: self.on_demand_usd_per_hour.map(UsdPerHour),
            spot: self.spot_usd_per_hour.map(UsdPerHour),
            source: self.source,
        })
    }
}

impl From<&PriceEntry> for PriceRow {
    fn from(e: &PriceEntry) -> PriceRow {
        PriceRow {
            cloud: e.cloud.clone(),
            gpu: e.gpu.clone(),
            gpu_count: e.gpu_count,
            instance_type: e.instance_type.clone(),
            region: e.region.clone(),
            on_demand_usd_per_hour: e.on_demand.map(|p| p.0),
            spot_usd_per_hour: e.spot.map(|p| p.0),
            source: e.source.clone(),
        }
    }
}

impl PriceCatalog {
    /// The prices shipped with pilot (`datasets/prices.csv`), parsed once.
    pub fn builtin() -> &'static PriceCatalog {
        static CATALOG: OnceLock<PriceCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            PriceCatalog::parse(
                BUILTIN_CSV,
                Path::new("datasets/prices.csv"),
                GpuCatalog::builtin(),
            )
            .expect("datasets/prices.csv is checked by the tests in price.rs")
        })
    }

    /// Wraps rows (from [`build_price_rows`], say).
    pub fn new(entries: Vec<PriceEntry>) -> PriceCatalog {
        PriceCatalog { entries }
    }

    /// A user's price file (`--prices FILE`): JSON when it ends in `.json` (see
    /// [`PriceCatalog::from_json_path`]), else CSV ([`PriceCatalog::from_csv_path`]). Why both:
    /// `pilot catalog prices --json` prints the catalog as JSON, and the natural way to bring
    /// one's own prices is to edit that output and pass it back.
    pub fn from_path(path: &Path) -> Result<PriceCatalog, PriceError> {
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if json {
            PriceCatalog::from_json_path(path)
        } else {
            PriceCatalog::from_csv_path(path)
        }
    }

    /// The JSON `pilot catalog prices --json` prints: an array of objects with the fields of
    /// [`PriceEntry`] (`cloud`, `gpu`, `gpu_count`, `on_demand`; `instance_type`, `region`,
    /// `spot`, `source` may be left out), checked as the CSV rows are.
    pub fn from_json_path(path: &Path) -> Result<PriceCatalog, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |entry: usize, reason: String| PriceError::BadEntry {
            path: path.to_path_buf(),
            entry,
            reason,
        };
        let unparsable = |place: String, e: serde_json::Error| PriceError::Unparsable {
            path: path.to_path_buf(),
            place,
            expected: PRICE_JSON.into(),
            source: e.into(),
        };
        let values: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| unparsable(format!("line {}", e.line()), e))?;
        let mut entries = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            let row: PriceRow =
                serde_json::from_value(v).map_err(|e| unparsable(format!("entry {}", i + 1), e))?;
            entries.push(
                row.checked(GpuCatalog::builtin())
                    .map_err(|r| bad(i + 1, r))?,
            );
        }
        Ok(PriceCatalog { entries })
    }

    /// A user's price file in the `datasets/prices.csv` format. Required
    /// columns: `cloud, gpu, gpu_count, on_demand_usd_per_hour` (may be empty);
    /// `instance_type, region, spot_usd_per_hour, source` may be left out. GPU names may be
    /// any spelling the GPU catalog resolves (`H100`, `a100-sxm-80gb`); they are stored as
    /// canonical names, and an unknown or ambiguous one is an error naming the line.
    pub fn from_csv_path(path: &Path) -> Result<PriceCatalog, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        PriceCatalog::parse(&text, path, GpuCatalog::builtin())
    }

    fn parse(text: &str, path: &Path, gpus: &GpuCatalog) -> Result<PriceCatalog, PriceError> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let bad_line = |line: u64, reason: String| PriceError::BadLine {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let unparsable = |line: u64, e: csv::Error| PriceError::Unparsable {
            path: path.to_path_buf(),
            place: format!("line {line}"),
            expected: format!("CSV with the header {PRICE_HEADER}"),
            source: e.into(),
        };
        let headers = reader.headers().map_err(|e| unparsable(1, e))?.clone();
        for column in REQUIRED_COLUMNS {
            if !headers.iter().any(|h| h.trim() == column) {
                return Err(PriceError::MissingColumn {
                    path: path.to_path_buf(),
                    column: column.into(),
                    expected: PRICE_HEADER.into(),
                });
            }
        }
        let mut entries = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(unparsable(line, e));
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let row: PriceRow = record
                .deserialize(Some(&headers))
                .map_err(|e| unparsable(line, e))?;
            entries.push(row.checked(gpus).map_err(|r| bad_line(line, r))?);
        }
        Ok(PriceCatalog { entries })
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[PriceEntry] {
        &self.entries
    }

    /// The clouds present, sorted.
    pub fn clouds(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.entries.iter().map(|e| e.cloud.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// The cheapest offer of exactly `count` x `gpu` (a canonical catalog name, compared
    /// case-insensitively), on-demand or spot, on `cloud` or on any real cloud (`None` skips
    /// the `llm-pilot` rows, which are an experiment's assumptions, not offers). Entries
    /// without the wanted kind of price are ignored. `None` when nobody sells that count:
    /// pilot does not scale a price from another count.
    pub fn cheapest(
        &self,
        gpu: &str,
        count: u32,
        cloud: Option<&str>,
        spot: bool,
    ) -> Option<&PriceEntry> {
        self.entries
            .iter()
            .filter(|e| e.gpu.eq_ignore_ascii_case(gpu) && e.gpu_count == count)
            .filter(|e| match cloud {
                Some(c) => e.cloud.eq_ignore_ascii_case(c),
                None => e.cloud != LLM_PILOT_CLOUD,
            })
            .filter_map(|e| e.price(spot).map(|p| (p, e)))
            .min_by(|a, b| a.0.0.total_cmp(&b.0.0))
            .map(|(_, e)| e)
    }
}

/// Writes rows in the `datasets/prices.csv` format (header [`PRICE_HEADER`]).
pub fn write_csv(rows: &[PriceEntry], path: &Path) -> Result<(), PriceError> {
    let io = |e: std::io::Error| PriceError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut w = csv::Writer::from_path(path).map_err(|e| io(e.into()))?;
    for row in rows {
        w.serialize(PriceRow::from(row)).map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)
}

/// LLM-Pilot's own description of its GPU profiles (IBM/LLM-performance-prediction@3c66483
/// `predict_performance/gpu_features.csv`: memory GB, bandwidth GB/s, `gpu_is_sxm`). Facts
/// transcribed so that its bare `A100` / `V100` map to the SKUs it measured.
const LLM_PILOT_GPUS: [(&str, f64, f64, bool); 5] = [
    ("A10", 24.0, 600.0, false),
    ("A100", 40.0, 1555.0, false),
    ("H100", 80.0, 3350.0, true),
    ("T4", 16.0, 300.0, false),
    ("V100", 16.0, 900.0, false),
];

const SKYPILOT_SOURCE: &str =
    "skypilot-org/skypilot-catalog v6 (frozen snapshot, shared/data/prices/gpu_instances.csv)";
const LLM_PILOT_SOURCE: &str = "IBM/LLM-performance-prediction@3c66483 preprocess_data/prices.csv";

/// One row of `shared/data/prices/gpu_instances.csv`.
#[derive(Debug, Deserialize)]
struct SkyRow {
    cloud: String,
    #[serde(default)]
    instance_type: String,
    accelerator: String,
    accelerator_count: f64,
    price_per_hour_usd: Option<f64>,
    spot_price_per_hour_usd: Option<f64>,
    #[serde(default)]
    region: String,
}

/// Maps a SkyPilot accelerator spelling on one cloud/instance type to a catalog SKU name and
/// the assumption behind it. `Err` = deliberately not a catalog GPU, with the reason.
fn map_cloud_accelerator(
    cloud: &str,
    instance_type: &str,
    accelerator: &str,
    count: u32,
) -> Result<(&'static str, &'static str), &'static str> {
    let it = instance_type.to_ascii_lowercase();
    let has = |s: &str| it.contains(s);
    let azure_nc = cloud == "azure" && it.starts_with("standard_nc");
    Ok(match accelerator {
        "H100-SXM" => ("H100-SXM-80GB", "catalog says H100-SXM"),
        "H100-MEGA" => ("H100-SXM-80GB", "GCP a3-mega: H100 SXM"),
        "H100" if has("pcie") => ("H100-PCIe-80GB", "instance type says PCIe"),
        "H100" if has("nvl") && !has("nvlink") => ("H100-NVL-94GB", "instance type says NVL"),
        "H100" if has("sxm") || has("nvlink") => ("H100-SXM-80GB", "instance type says SXM/NVLink"),
        "H100" if cloud == "runpod" => (
            "H100-PCIe-80GB",
            "RunPod's plain H100 is its PCIe product (SXM is listed as H100-SXM)",
        ),
        "H100" if azure_nc => ("H100-NVL-94GB", "Azure NC H100 v5 uses H100 NVL 94GB"),
        "H100" if cloud == "scaleway" => ("H100-PCIe-80GB", "Scaleway H100-N-80G are PCIe"),
        "H100" => (
            "H100-SXM-80GB",
            "H100 assumed SXM (p5, a3, ND H100 v5, HGX nodes)",
        ),
        "A100" if has("pcie") => ("A100-PCIe-40GB", "instance type says PCIe"),
        "A100" if has("sxm") => ("A100-SXM-40GB", "instance type says SXM4"),
        "A100" if cloud == "lambda" && count < 8 => (
            "A100-PCIe-40GB",
            "Lambda 1x/2x/4x A100 are 40 GB PCIe (8x and _sxm4 are SXM4)",
        ),
        "A100" => (
            "A100-SXM-40GB",
            "A100 = 40 GB SXM4 (p4d, a2-highgpu, ND96asr_v4, BM.GPU4.8, Lambda 8x)",
        ),
        "A100-80GB-SXM" => ("A100-SXM-80GB", "catalog says A100-80GB-SXM"),
        "A100-80GB" if has("pcie") => ("A100-PCIe-80GB", "instance type says PCIe"),
        "A100-80GB" if cloud == "runpod" => (
            "A100-PCIe-80GB",
            "RunPod's plain A100-80GB is PCIe (SXM is listed as A100-80GB-SXM)",
        ),
        "A100-80GB" if azure_nc => ("A100-PCIe-80GB", "Azure NC A100 v4 uses A100 80GB PCIe"),
        "A100-80GB" => (
            "A100-SXM-80GB",
            "A100-80GB assumed SXM4 (p4de, a2-ultragpu, ND A100 v4, BM.GPU.A100-v2)",
        ),
        "V100" if matches!(cloud, "azure" | "ovhcloud" | "paperspace") => (
            "V100-PCIe-16GB",
            "Azure NCv3 / OVH t1 / Paperspace V100 assumed PCIe 16 GB",
        ),
        "V100" => (
            "V100-SXM2-16GB",
            "V100 assumed SXM2 16 GB (p3, GCP, OCI GPU3, Lambda)",
        ),
        "V100-32GB" if matches!(cloud, "ovhcloud" | "paperspace") => (
            "V100-PCIe-32GB",
            "OVH t2 / Paperspace V100-32G assumed PCIe",
        ),
        "V100-32GB" => ("V100-SXM2-32GB", "V100-32GB assumed SXM2 (p3dn, ND40rs_v2)"),
        "H200" => ("H200-SXM-141GB", "H200 assumed SXM 141 GB"),
        "GH200" => ("GH200-96GB", "Lambda sells the 96 GB HBM3 GH200"),
        "B200" => ("B200-SXM-180GB", "B200 assumed HGX SXM"),
        "A10G" => ("A10G", ""),
        "A10" => ("A10", ""),
        "L4" => ("L4", ""),
        "L40S" => ("L40S", ""),
        "L40" => ("L40", ""),
        "T4" => ("T4", ""),
        "A40" => ("A40", ""),
        "RTX4090" => ("RTX-4090", ""),
        "RTX6000-Ada" => ("RTX-6000-Ada", ""),
        "RTXA6000" | "A6000" => ("RTX-A6000", ""),
        "MI300X" => ("MI300X", ""),
        "RTX6000" => {
            return Err("Lambda's RTX6000 is the Turing Quadro RTX 6000, not RTX-6000-Ada");
        }
        "Gaudi HL-205" => return Err("first-generation Gaudi (dl1), not Gaudi2"),
        "T4g" => return Err("T4G (Arm-hosted g5g) is not catalogued separately"),
        _ => return Err("not in the GPU catalog"),
    })
}

/// Builds price rows from SkyPilot's catalog snapshot and LLM-Pilot's price list.
///
/// - `skypilot_csv`: `cloud,instance_type,accelerator,accelerator_count,vcpus,memory_gib,
///   price_per_hour_usd,spot_price_per_hour_usd,region`. Accelerator spellings are mapped
///   to SKUs by cloud and instance type (assumption recorded in `source`); those that are
///   not catalog GPUs (FPGAs, Inferentia, Trainium, Radeon Pro V520, K80, ...) are skipped
///   and reported in the returned notes. Per (cloud, SKU, count) the row with the lowest
///   on-demand price is kept, with that row's spot price (rows with spot only are kept when
///   there is no on-demand row). Azure's `Standard_ND96isr_H100_v5` is listed with 12 GPUs;
///   the SKU has 8, so it is corrected and the correction noted.
/// - `llm_pilot_csv`: `GPU,price` rows like `2 x A100,8.1925`, cloud `llm-pilot`, on-demand
///   only; bare names are mapped with LLM-Pilot's own `gpu_features.csv` figures.
///
/// Rows come back sorted by cloud, GPU and count, so the output is reproducible.
pub fn build_price_rows(
    skypilot_csv: &Path,
    llm_pilot_csv: &Path,
    gpus: &GpuCatalog,
) -> Result<(Vec<PriceEntry>, Vec<String>), PriceError> {
    let mut best: BTreeMap<(String, String, u32), PriceEntry> = BTreeMap::new();
    let mut skipped: BTreeMap<(String, String), (&'static str, usize)> = BTreeMap::new();
    let mut notes = Vec::new();

    let mut reader = csv::Reader::from_path(skypilot_csv).map_err(|e| PriceError::Io {
        path: skypilot_csv.to_path_buf(),
        source: e.into(),
    })?;
    for result in reader.deserialize::<SkyRow>() {
        let row = result.map_err(|e| PriceError::Unparsable {
            path: skypilot_csv.to_path_buf(),
            place: format!("line {}", e.position().map_or(0, |p| p.line())),
            expected: "SkyPilot's catalog columns (cloud, instance_type, accelerator, \
                       accelerator_count, ..., price_per_hour_usd, spot_price_per_hour_usd)"
                .into(),
            source: e.into(),
        })?;
        let mut count = row.accelerator_count.round() as u32;
        if count == 0 || row.accelerator_count.fract() != 0.0 {
            // Fractional GPUs (shared slices) are not an instance with whole GPUs.
            skipped
                .entry((
                    row.cloud.clone(),
                    format!("{} x{}", row.accelerator, row.accelerator_count),
                ))
                .or_insert(("fractional GPU count", 0))
                .1 += 1;
            continue;
        }
        let (sku, assumption) =
            match map_cloud_accelerator(&row.cloud, &row.instance_type, &row.accelerator, count) {
                Ok(m) => m,
                Err(why) => {
                    skipped
                        .entry((row.cloud.clone(), row.accelerator.clone()))
                        .or_insert((why, 0))
                        .1 += 1;
                    continue;
                }
            };
        let Ok(spec) = gpus.resolve(sku) else {
            skipped
                .entry((row.cloud.clone(), row.accelerator.clone()))
                .or_insert(("mapped SKU missing from this GPU catalog", 0))
                .1 += 1;
            continue;
        };
        let mut source = format!("{SKYPILOT_SOURCE} {}/vms.csv", row.cloud);
        if !assumption.is_empty() {
            source.push_str(&format!(
                "; {} → {}: {assumption}",
                row.accelerator, spec.name
            ));
        }
        if row.cloud == "gcp" {
            source.push_str(
                "; GPU-only price, host VM billed separately; GCP attaches GPUs by count",
            );
        }
        if row.cloud == "azure" && row.instance_type == "Standard_ND96isr_H100_v5" && count == 12 {
            count = 8;
            source.push_str("; catalog lists 12 GPUs, the SKU has 8: corrected");
        }
        let entry = PriceEntry {
            cloud: row.cloud.clone(),
            gpu: spec.name.clone(),
            gpu_count: count,
            instance_type: row.instance_type,
            region: row.region,
            on_demand: row.price_per_hour_usd.map(UsdPerHour),
            spot: row.spot_price_per_hour_usd.map(UsdPerHour),
            source,
        };
        let key = (entry.cloud.clone(), entry.gpu.clone(), count);
        match best.get(&key) {
            Some(old) if !cheaper(&entry, old) => {}
            _ => {
                best.insert(key, entry);
            }
        }
    }
    for ((cloud, accel), (why, n)) in skipped {
        notes.push(format!("skipped {cloud} '{accel}' ({n} rows): {why}"));
    }

    let text = std::fs::read_to_string(llm_pilot_csv).map_err(|source| PriceError::Io {
        path: llm_pilot_csv.to_path_buf(),
        source,
    })?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for result in reader.records() {
        let bad = |line: u64, reason: String| PriceError::BadLine {
            path: llm_pilot_csv.to_path_buf(),
            line,
            reason,
        };
        let record = result.map_err(|e| PriceError::Unparsable {
            path: llm_pilot_csv.to_path_buf(),
            place: format!("line {}", e.position().map_or(0, |p| p.line())),
            expected: "'GPU,price' rows like '2 x A100,8.1925'".into(),
            source: e.into(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let (profile, price) = match (record.get(0), record.get(1)) {
            (Some(p), Some(v)) => (p.trim(), v.trim()),
            _ => return Err(bad(line, "expected 'GPU,price'".into())),
        };
        let price: f64 = price
            .parse()
            .map_err(|e| bad(line, format!("price '{price}': {e}")))?;
        let (count, name) = match split_profile(profile) {
            (Some(Ok(n)), name) if n > 0 => (n, name),
            _ => return Err(bad(line, format!("'{profile}' is not 'COUNT x GPU'"))),
        };
        let Some(&(_, mem, bw, sxm)) = LLM_PILOT_GPUS.iter().find(|g| g.0 == name) else {
            return Err(bad(
                line,
                format!("'{name}' is not in LLM-Pilot's gpu_features.csv"),
            ));
        };
        let choice = gpus
            .resolve_documented(name, Gigabytes(mem), GigabytesPerSec(bw), Some(sxm))
            .map_err(|e: GpuError| bad(line, e.to_string()))?;
        let entry = PriceEntry {
            cloud: LLM_PILOT_CLOUD.into(),
            gpu: choice.spec.name.clone(),
            gpu_count: count,
            instance_type: profile.into(),
            region: String::new(),
            on_demand: Some(UsdPerHour(price)),
            spot: None,
            source: format!(
                "{LLM_PILOT_SOURCE}; LLM-Pilot gpu_features.csv: {}",
                choice.reason
            ),
        };
        best.insert((entry.cloud.clone(), entry.gpu.clone(), count), entry);
    }
    Ok((best.into_values().collect(), notes))
}

/// Whether `new` should replace `old` for the same (cloud, SKU, count): lower on-demand wins;
/// an on-demand price beats none; ties go to the lower spot price, then to the first row.
fn cheaper(new: &PriceEntry, old: &PriceEntry) -> bool {
    let key = |e: &PriceEntry| {
        (
            e.on_demand.map_or(f64::INFINITY, |p| p.0),
            e.spot.map_or(f64::INFINITY, |p| p.0),
        )
    };
    let (n, o) = (key(new), key(old));
    n.0 < o.0 || (n.0 == o.0 && n.1 < o.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shared/data`, or `$PILOT_SHARED_DATA`; `None` (with a note) when absent.
    fn shared_data() -> Option<PathBuf> {
        crate::shared_data_with("prices/gpu_instances.csv")
    }

    fn rebuild(dir: &Path) -> (Vec<PriceEntry>, Vec<String>) {
        build_price_rows(
            &dir.join("prices/gpu_instances.csv"),
            &dir.join("llm-pilot/prices.csv"),
            GpuCatalog::builtin(),
        )
        .unwrap()
    }

    fn committed_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/prices.csv")
    }

    /// Regenerates `datasets/prices.csv`:
    /// `cargo test -p pilot-core regenerate_prices_csv -- --ignored`.
    #[test]
    #[ignore]
    fn regenerate_prices_csv() {
        let dir = shared_data().expect("shared data is needed to regenerate prices.csv");
        let (rows, notes) = rebuild(&dir);
        write_csv(&rows, &committed_path()).unwrap();
        for n in notes {
            eprintln!("{n}");
        }
    }

    #[test]
    fn price_committed_file_matches_a_rebuild_from_sources() {
        let Some(dir) = shared_data() else { return };
        let (rows, notes) = rebuild(&dir);
        let committed = PriceCatalog::builtin().entries();
        let stale = "datasets/prices.csv is stale: run \
                     `cargo test -p pilot-core regenerate_prices_csv -- --ignored`";
        if let Some((i, (c, r))) = committed
            .iter()
            .zip(&rows)
            .enumerate()
            .find(|(_, (c, r))| c != r)
        {
            panic!("{stale}\nrow {i}: committed {c:?}\nrebuilt {r:?}");
        }
        assert_eq!(committed.len(), rows.len(), "{stale}");
        assert!(notes.iter().any(|n| n.contains("Inferentia")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("Radeon Pro V520")),
            "{notes:?}"
        );
    }

    #[test]
    fn price_builtin_gpus_are_canonical_and_llm_pilot_rows_exist() {
        let cat = PriceCatalog::builtin();
        for e in cat.entries() {
            assert_eq!(GpuCatalog::builtin().resolve(&e.gpu).unwrap().name, e.gpu);
        }
        let llm: Vec<&PriceEntry> = cat
            .entries()
            .iter()
            .filter(|e| e.cloud == LLM_PILOT_CLOUD)
            .collect();
        assert_eq!(llm.len(), 14);
        let a100 = cat
            .cheapest("A100-PCIe-40GB", 2, Some(LLM_PILOT_CLOUD), false)
            .unwrap();
        assert_eq!(a100.on_demand, Some(UsdPerHour(8.1925)));
        assert!(cat.clouds().contains(&"aws") && cat.clouds().contains(&LLM_PILOT_CLOUD));
    }

    #[test]
    fn price_cheapest_on_demand_and_spot_differ_and_counts_are_not_invented() {
        let e = |cloud: &str, od: Option<f64>, spot: Option<f64>, n: u32| PriceEntry {
            cloud: cloud.into(),
            gpu: "L4".into(),
            gpu_count: n,
            instance_type: format!("{cloud}-{n}"),
            region: String::new(),
            on_demand: od.map(UsdPerHour),
            spot: spot.map(UsdPerHour),
            source: String::new(),
        };
        let cat = PriceCatalog::new(vec![
            e("a", Some(1.0), Some(0.6), 1),
            e("b", Some(1.2), Some(0.3), 1),
            e("c", None, Some(0.2), 1),
            e(LLM_PILOT_CLOUD, Some(0.1), None, 1),
            e("a", Some(4.0), None, 4),
        ]);
        assert_eq!(cat.cheapest("l4", 1, None, false).unwrap().cloud, "a");
        assert_eq!(cat.cheapest("L4", 1, None, true).unwrap().cloud, "c");
        assert_eq!(cat.cheapest("L4", 1, Some("B"), true).unwrap().cloud, "b");
        assert_eq!(
            cat.cheapest("L4", 1, Some(LLM_PILOT_CLOUD), false)
                .unwrap()
                .cloud,
            LLM_PILOT_CLOUD
        );
        assert!(cat.cheapest("L4", 2, None, false).is_none());
        assert!(cat.cheapest("L4", 4, None, true).is_none());
    }

    #[test]
    fn price_builtin_cheapest_real_rows() {
        let cat = PriceCatalog::builtin();
        let aws_t4 = cat.cheapest("T4", 1, Some("aws"), false).unwrap();
        assert_eq!(aws_t4.instance_type, "g4dn.xlarge");
        let spot = cat.cheapest("T4", 1, Some("aws"), true).unwrap();
        assert!(spot.spot.unwrap().0 <= aws_t4.spot.unwrap().0);
        let p4d = cat
            .cheapest("A100-SXM-40GB", 8, Some("aws"), false)
            .unwrap();
        assert_eq!(p4d.instance_type, "p4d.24xlarge");
        let nd = cat
            .cheapest("H100-SXM-80GB", 8, Some("azure"), false)
            .unwrap();
        assert_eq!(nd.instance_type, "Standard_ND96isr_H100_v5");
        assert!(cat.cheapest("H100-SXM-80GB", 3, None, false).is_none());
    }

    #[test]
    fn price_user_file_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let missing = write("m.csv", "cloud,gpu,on_demand_usd_per_hour\naws,H100,1\n");
        let msg = PriceCatalog::from_csv_path(&missing)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no column 'gpu_count'") && msg.contains(PRICE_HEADER),
            "{msg}"
        );

        let bad = write(
            "b.csv",
            "cloud,gpu,gpu_count,on_demand_usd_per_hour\nmine,H100,8,20\nmine,H100,two,3\n",
        );
        let err = PriceCatalog::from_csv_path(&bad).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let source = std::error::Error::source(&err).expect("the CSV error is kept");
        assert!(source.downcast_ref::<csv::Error>().is_some(), "{source}");

        let typo = write(
            "t.csv",
            "cloud,gpu,gpu_count,on_demand_usd_per_hour\nmine,H10O,1,2\n",
        );
        let msg = PriceCatalog::from_csv_path(&typo).unwrap_err().to_string();
        assert!(
            msg.contains("line 2") && msg.contains("H100-SXM-80GB"),
            "{msg}"
        );

        let ok = write(
            "ok.csv",
            "cloud,gpu,gpu_count,on_demand_usd_per_hour,spot_usd_per_hour\nmine,h100,8,20,\n",
        );
        let cat = PriceCatalog::from_csv_path(&ok).unwrap();
        assert_eq!(cat.entries()[0].gpu, "H100-SXM-80GB");
        assert_eq!(cat.entries()[0].spot, None);

        let gone = PriceCatalog::from_csv_path(&dir.path().join("nope.csv")).unwrap_err();
        assert!(gone.to_string().contains("nope.csv"));
        let source =
            std::error::Error::source(&gone).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    /// `--prices` takes back what `pilot catalog prices --json` prints (its help says so).
    #[test]
    fn price_json_of_the_catalog_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let cat = PriceCatalog::builtin();
        let json = dir.path().join("prices.json");
        std::fs::write(&json, serde_json::to_string_pretty(cat.entries()).unwrap()).unwrap();
        assert_eq!(&PriceCatalog::from_path(&json).unwrap(), cat);
        let csv = dir.path().join("prices.csv");
        write_csv(cat.entries(), &csv).unwrap();
        assert_eq!(&PriceCatalog::from_path(&csv).unwrap(), cat);

        std::fs::write(
            &json,
            r#"[{"cloud": "mine", "gpu": "H100", "gpu_count": 0, "on_demand": 2.0}]"#,
        )
        .unwrap();
        let msg = PriceCatalog::from_path(&json).unwrap_err().to_string();
        assert!(
            msg.contains("entry 1") && msg.contains("gpu_count"),
            "{msg}"
        );
        std::fs::write(&json, "cloud,gpu\n").unwrap();
        let msg = PriceCatalog::from_path(&json).unwrap_err().to_string();
        assert!(msg.contains("catalog prices --json"), "{msg}");
    }
}

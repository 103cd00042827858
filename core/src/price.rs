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
//! The builtin catalog (`datasets/prices.csv`) is made by [`build_price_rows`] from three
//! public sources, and checked against them by a test:
//! - SkyPilot's frozen cloud catalog snapshot (`shared/data/prices/gpu_instances.csv`,
//!   skypilot-org/skypilot-catalog v6), whose accelerator spellings (`A100`, `A100-80GB`,
//!   `V100`) name a family, not a SKU: [`build_price_rows`] maps them per cloud and instance
//!   type, and records the assumption in `source`.
//! - Offers for today's GPUs (B200, B300, H200, MI300X, MI355X) from the newer catalogs of the
//!   same repository (`shared/data/prices/gpu_instances_2026.csv`, v8/v9): each row's `source`
//!   starts with the `repo@commit:path` it was read from, and these rows replace v6 ones for the
//!   same (cloud, GPU, count). Their caveats (GPU-only GCP prices, spot-only rows, RunPod's
//!   spot equal to on-demand, ...) are handled as [`build_price_rows`] says.
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
/// The file the newer-catalog rows are read from, named in each row's `source` after the
/// row's own `repo@commit:path`.
const SKYPILOT_2026_FILE: &str = "shared/data/prices/gpu_instances_2026.csv";
const LLM_PILOT_SOURCE: &str = "IBM/LLM-performance-prediction@3c66483 preprocess_data/prices.csv";

/// One row of `shared/data/prices/gpu_instances.csv` or `gpu_instances_2026.csv` (the latter
/// adds `source`).
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
    #[serde(default)]
    source: String,
}

/// Which SkyPilot extract rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extract {
    /// `gpu_instances.csv`: the frozen v6 snapshot, one provenance for every row.
    V6,
    /// `gpu_instances_2026.csv`: newer catalogs (v8/v9), each row with its own
    /// `repo@commit:path` in a `source` column.
    Newer,
}

/// A GCP machine type whose GPUs the catalog prices apart from its host VM, with the host
/// VM's on-demand price per region (USD/h) as `shared/data/prices/NOTES.md` records it from
/// the same catalog (skypilot-catalog v9 `gcp/vms.csv`).
struct GcpHostVm {
    accelerator: &'static str,
    count: u32,
    machine: &'static str,
    prices: &'static [(&'static str, f64)],
}

/// GCP's H200 is sold only as the a3-ultragpu-8g VM, so its GPU-only row is not a price
/// anyone can pay: the builder adds the host VM's price of the row's region (see
/// [`build_price_rows`]).
const GCP_HOST_VMS: [GcpHostVm; 1] = [GcpHostVm {
    accelerator: "H200",
    count: 8,
    machine: "a3-ultragpu-8g",
    prices: &[("us-central1", 12.266), ("asia-south1", 12.757)],
}];

/// GCP GPU rows whose host VM the catalog prices at 0.0: the GPU row is the whole VM.
const GCP_WHOLE_VMS: [(&str, u32, &str); 1] = [("B200", 8, "a4-highgpu-8g")];

/// Caveats of the newer catalogs (NOTES.md), written into the `source` of each of the cloud's
/// rows: the prices are kept as listed.
const NEWER_CLOUD_CAVEATS: [(&str, &str); 6] = [
    ("seeweb", "currency not stated by the catalog, taken as USD"),
    (
        "daytona",
        "sandbox platform (region 'earth'), priced well above bare-metal clouds",
    ),
    ("vast", "marketplace offer at crawl time"),
    ("lium", "marketplace offer at crawl time"),
    (
        "primeintellect",
        "aggregator offer at crawl time, the instance type names the upstream provider; \
         a spot price, where listed, comes from the matching _SPOT row",
    ),
    (
        "shadeform",
        "aggregator offer at crawl time, the instance type names the upstream provider",
    ),
];

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
        "B300" => (
            "B300-SXM-288GB",
            "B300 assumed HGX SXM (p6-b300, HGX B300 nodes)",
        ),
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
        "MI355X" => ("MI355X", ""),
        "RTX6000" => {
            return Err("Lambda's RTX6000 is the Turing Quadro RTX 6000, not RTX-6000-Ada");
        }
        "Gaudi HL-205" => return Err("first-generation Gaudi (dl1), not Gaudi2"),
        "T4g" => return Err("T4G (Arm-hosted g5g) is not catalogued separately"),
        _ => return Err("not in the GPU catalog"),
    })
}

/// Builds price rows from SkyPilot's catalog snapshot, its newer catalogs and LLM-Pilot's
/// price list.
///
/// - `skypilot_csv`: `cloud,instance_type,accelerator,accelerator_count,vcpus,memory_gib,
///   price_per_hour_usd,spot_price_per_hour_usd,region`. Accelerator spellings are mapped
///   to SKUs by cloud and instance type (assumption recorded in `source`); those that are
///   not catalog GPUs (FPGAs, Inferentia, Trainium, Radeon Pro V520, K80, ...) are skipped
///   and reported in the returned notes. Per (cloud, SKU, count) the row with the lowest
///   on-demand price is kept, with that row's spot price (rows with spot only are kept when
///   there is no on-demand row). Azure's `Standard_ND96isr_H100_v5` is listed with 12 GPUs;
///   the SKU has 8, so it is corrected and the correction noted.
/// - `skypilot_2026_csv` (optional): the same columns plus `source` = `repo@commit:path` of
///   the newer SkyPilot catalog file (v8/v9) each row was read from (B200, B300, MI300X,
///   MI355X and H200 offers). Mapped and reduced as above; each row's `source` starts with
///   its own `repo@commit:path`. For the same (cloud, SKU, count) in both files the newer row
///   wins, whatever its price: the v6 snapshot is frozen and older. Its caveats
///   (`shared/data/prices/NOTES.md`) are handled so:
///   - a row with a spot price but no on-demand price is kept as spot-only (`on_demand`
///     empty; an on-demand search ignores it); a row with neither is skipped;
///   - a spot price of 0 means "not offered" and is dropped;
///   - RunPod lists its spot price equal to on-demand on every row, which is no spot
///     discount: the spot price is dropped (this rule applies to both extracts);
///   - GCP rows are GPU-only prices. For H200 x8 the GPUs exist only inside the
///     a3-ultragpu-8g VM, whose host is billed on top, so a GPU-only figure is not a price
///     anyone pays and would rank GCP about a quarter too cheap against the whole-instance
///     prices of every other cloud: the host VM's price in the row's region
///     ([`GCP_HOST_VMS`], from NOTES.md) is added, and the spot price dropped (the host's spot
///     price was not recorded, and the GPU spot alone is above on-demand). In a region with no
///     recorded host price the row stays GPU-only and says so. B200 x8 (a4-highgpu-8g) has a
///     host price of 0.0 in the catalog: its GPU row is the whole VM and is kept as is. The v6
///     GCP rows stay GPU-only, marked, because their host prices are not in the shared data;
///   - seeweb's unstated currency, daytona's sandbox prices and the marketplace/aggregator
///     offers (vast, lium, primeintellect, shadeform) are kept as listed, with the caveat
///     written into `source` ([`NEWER_CLOUD_CAVEATS`]).
///
///   The returned notes state each of these decisions with the rows it touched.
/// - `llm_pilot_csv`: `GPU,price` rows like `2 x A100,8.1925`, cloud `llm-pilot`, on-demand
///   only; bare names are mapped with LLM-Pilot's own `gpu_features.csv` figures.
///
/// Rows come back sorted by cloud, GPU and count, so the output is reproducible.
pub fn build_price_rows(
    skypilot_csv: &Path,
    skypilot_2026_csv: Option<&Path>,
    llm_pilot_csv: &Path,
    gpus: &GpuCatalog,
) -> Result<(Vec<PriceEntry>, Vec<String>), PriceError> {
    let mut decisions = Decisions::default();
    let mut best = read_skypilot(skypilot_csv, Extract::V6, gpus, &mut decisions)?;
    let mut replaced = Vec::new();
    let mut newer_keys = Vec::new();
    if let Some(path) = skypilot_2026_csv {
        for (key, entry) in read_skypilot(path, Extract::Newer, gpus, &mut decisions)? {
            newer_keys.push(key.clone());
            let new_price = price_text(&entry);
            if let Some(old) = best.insert(key, entry) {
                replaced.push(format!(
                    "{} {} x{} ({} -> {new_price})",
                    old.cloud,
                    old.gpu,
                    old.gpu_count,
                    price_text(&old)
                ));
            }
        }
    }
    let mut notes = Vec::new();
    for ((cloud, accel), (why, n)) in &decisions.skipped {
        notes.push(format!("skipped {cloud} '{accel}' ({n} rows): {why}"));
    }
    if skypilot_2026_csv.is_some() {
        notes.extend(decisions.notes(&best, &newer_keys, &replaced));
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

/// A price entry's key: (cloud, SKU, count).
type PriceKey = (String, String, u32);

/// What the SkyPilot readers decided, for the notes of [`build_price_rows`].
#[derive(Default)]
struct Decisions {
    /// (cloud, accelerator) skipped, with the reason and the number of rows.
    skipped: BTreeMap<(String, String), (&'static str, usize)>,
    /// Rows whose spot price of 0 (= not offered) was dropped.
    zero_spot: Vec<String>,
    /// RunPod rows whose spot price, equal to on-demand, was dropped.
    runpod_spot: Vec<String>,
    /// What was done to each GCP row of the newer extract.
    gcp: Vec<String>,
    /// Rows per cloud of the newer extract whose caveat was written into `source`.
    caveats: BTreeMap<&'static str, usize>,
    /// Rows of the newer extract read.
    newer_rows: usize,
}

impl Decisions {
    fn skip(&mut self, cloud: &str, accelerator: String, why: &'static str) {
        self.skipped
            .entry((cloud.to_string(), accelerator))
            .or_insert((why, 0))
            .1 += 1;
    }

    /// One note per decision about the newer extract: `newer` are the keys it filled (now in
    /// `best`), `replaced` the v6 entries it displaced.
    fn notes(
        &self,
        best: &BTreeMap<PriceKey, PriceEntry>,
        newer: &[PriceKey],
        replaced: &[String],
    ) -> Vec<String> {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut notes = vec![format!(
            "{SKYPILOT_2026_FILE}: {} rows read, {} (cloud, GPU, count) entries kept; each \
             entry's source starts with its row's own repo@commit:path",
            self.newer_rows,
            newer.len()
        )];
        notes.push(if replaced.is_empty() {
            "no (cloud, GPU, count) is in both SkyPilot files (one in both would take the 2026 \
             row, the newer)"
                .into()
        } else {
            format!(
                "{} (cloud, GPU, count) in both SkyPilot files took the 2026 row, the newer: {}",
                replaced.len(),
                list(replaced)
            )
        });
        let spot_only: Vec<String> = newer
            .iter()
            .map(|k| &best[k])
            .filter(|e| e.on_demand.is_none())
            .map(|e| format!("{} {} x{}", e.cloud, e.gpu, e.gpu_count))
            .collect();
        notes.push(format!(
            "kept {} spot-only entries (no on-demand price in the catalog; on-demand searches \
             ignore them): {}",
            spot_only.len(),
            list(&spot_only)
        ));
        notes.push(format!(
            "runpod: dropped the spot price equal to on-demand on {} rows (no real spot \
             discount): {}",
            self.runpod_spot.len(),
            list(&self.runpod_spot)
        ));
        notes.push(format!(
            "dropped a spot price of 0 (= not offered; the 2026 file already leaves vast's \
             empty) on {} rows: {}",
            self.zero_spot.len(),
            list(&self.zero_spot)
        ));
        notes.extend(self.gcp.iter().map(|g| format!("gcp: {g}")));
        for (cloud, caveat) in NEWER_CLOUD_CAVEATS {
            if let Some(n) = self.caveats.get(cloud) {
                notes.push(format!(
                    "{cloud}: {n} row(s) kept as listed, marked in source: {caveat}"
                ));
            }
        }
        notes
    }
}

/// Reads one SkyPilot extract into the cheapest entry per (cloud, SKU, count) (see
/// [`cheaper`]), recording what it skipped and decided in `d`.
fn read_skypilot(
    path: &Path,
    extract: Extract,
    gpus: &GpuCatalog,
    d: &mut Decisions,
) -> Result<BTreeMap<PriceKey, PriceEntry>, PriceError> {
    let expected = "SkyPilot's catalog columns (cloud, instance_type, accelerator, \
                    accelerator_count, ..., price_per_hour_usd, spot_price_per_hour_usd, region\
                    ; plus source = repo@commit:path in the 2026 file)";
    let unparsable = |e: csv::Error| PriceError::Unparsable {
        path: path.to_path_buf(),
        place: format!("line {}", e.position().map_or(0, |p| p.line())),
        expected: expected.into(),
        source: e.into(),
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| PriceError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let headers = reader.headers().map_err(unparsable)?.clone();
    if extract == Extract::Newer && !headers.iter().any(|h| h.trim() == "source") {
        return Err(PriceError::MissingColumn {
            path: path.to_path_buf(),
            column: "source".into(),
            expected: expected.into(),
        });
    }
    let mut best: BTreeMap<PriceKey, PriceEntry> = BTreeMap::new();
    for result in reader.records() {
        let record = result.map_err(unparsable)?;
        let line = record.position().map_or(0, |p| p.line());
        let row: SkyRow = record.deserialize(Some(&headers)).map_err(unparsable)?;
        if extract == Extract::Newer {
            d.newer_rows += 1;
            check_row_source(&row.source).map_err(|reason| PriceError::BadLine {
                path: path.to_path_buf(),
                line,
                reason,
            })?;
        }
        let Some(entry) = sky_entry(row, extract, gpus, d) else {
            continue;
        };
        let key = (entry.cloud.clone(), entry.gpu.clone(), entry.gpu_count);
        match best.get(&key) {
            Some(old) if !cheaper(&entry, old) => {}
            _ => {
                best.insert(key, entry);
            }
        }
    }
    Ok(best)
}

/// A newer-catalog row's `source` must be `owner/name@<40-hex commit>:path`.
fn check_row_source(source: &str) -> Result<(), String> {
    let ok = source
        .trim()
        .split_once('@')
        .and_then(|(repo, rest)| rest.split_once(':').map(|(c, p)| (repo, c, p)))
        .is_some_and(|(repo, commit, path)| {
            repo.contains('/')
                && commit.len() == 40
                && commit.chars().all(|c| c.is_ascii_hexdigit())
                && !path.is_empty()
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "source '{source}' is not repo@commit:path (owner/name@<40-hex commit>:path)"
        ))
    }
}

/// The entry one SkyPilot row means, with the rules of [`build_price_rows`] applied; `None`
/// (recorded in `d`) when the row is skipped.
fn sky_entry(
    row: SkyRow,
    extract: Extract,
    gpus: &GpuCatalog,
    d: &mut Decisions,
) -> Option<PriceEntry> {
    let mut count = row.accelerator_count.round() as u32;
    if count == 0 || row.accelerator_count.fract() != 0.0 {
        // Fractional GPUs (shared slices) are not an instance with whole GPUs.
        let what = format!("{} x{}", row.accelerator, row.accelerator_count);
        d.skip(&row.cloud, what, "fractional GPU count");
        return None;
    }
    let (sku, assumption) =
        match map_cloud_accelerator(&row.cloud, &row.instance_type, &row.accelerator, count) {
            Ok(m) => m,
            Err(why) => {
                d.skip(&row.cloud, row.accelerator.clone(), why);
                return None;
            }
        };
    let Ok(spec) = gpus.resolve(sku) else {
        d.skip(
            &row.cloud,
            row.accelerator.clone(),
            "mapped SKU missing from this GPU catalog",
        );
        return None;
    };
    let what = format!("{} {} x{count}", row.cloud, row.accelerator);
    let mut source = match extract {
        Extract::V6 => format!("{SKYPILOT_SOURCE} {}/vms.csv", row.cloud),
        Extract::Newer => format!("{} (via {SKYPILOT_2026_FILE})", row.source.trim()),
    };
    if !assumption.is_empty() {
        source.push_str(&format!(
            "; {} → {}: {assumption}",
            row.accelerator, spec.name
        ));
    }
    let (mut on_demand, mut spot) = (row.price_per_hour_usd, row.spot_price_per_hour_usd);
    if row.cloud == "gcp" {
        match extract {
            Extract::V6 => source.push_str(
                "; GPU-only price, host VM billed separately; GCP attaches GPUs by count",
            ),
            Extract::Newer => {
                gcp_newer(
                    &row,
                    count,
                    &what,
                    &mut on_demand,
                    &mut spot,
                    &mut source,
                    d,
                );
            }
        }
    }
    if row.cloud == "azure" && row.instance_type == "Standard_ND96isr_H100_v5" && count == 12 {
        count = 8;
        source.push_str("; catalog lists 12 GPUs, the SKU has 8: corrected");
    }
    if spot.is_some_and(|s| s <= 0.0) {
        spot = None;
        source.push_str("; spot 0 in the catalog = not offered");
        d.zero_spot.push(what.clone());
    }
    if row.cloud == "runpod" && spot.is_some() && spot == on_demand {
        spot = None;
        source.push_str("; spot dropped: the catalog lists it equal to on-demand (no discount)");
        d.runpod_spot.push(what.clone());
    }
    if extract == Extract::Newer
        && let Some((cloud, caveat)) = NEWER_CLOUD_CAVEATS.iter().find(|c| c.0 == row.cloud)
    {
        source.push_str(&format!("; {caveat}"));
        *d.caveats.entry(cloud).or_default() += 1;
    }
    match (on_demand, spot) {
        (None, None) => {
            d.skip(
                &row.cloud,
                row.accelerator.clone(),
                "no on-demand or spot price",
            );
            return None;
        }
        (None, Some(_)) => source.push_str("; spot only: the catalog lists no on-demand price"),
        _ => {}
    }
    Some(PriceEntry {
        cloud: row.cloud,
        gpu: spec.name.clone(),
        gpu_count: count,
        instance_type: row.instance_type,
        region: row.region,
        on_demand: on_demand.map(UsdPerHour),
        spot: spot.map(UsdPerHour),
        source,
    })
}

/// The GCP rules of the newer extract (see [`build_price_rows`]): a host VM price added
/// ([`GCP_HOST_VMS`]), a whole-VM row kept ([`GCP_WHOLE_VMS`]), or a GPU-only row marked.
fn gcp_newer(
    row: &SkyRow,
    count: u32,
    what: &str,
    on_demand: &mut Option<f64>,
    spot: &mut Option<f64>,
    source: &mut String,
    d: &mut Decisions,
) {
    let accel = row.accelerator.as_str();
    if let Some(host) = GCP_HOST_VMS
        .iter()
        .find(|h| h.accelerator == accel && h.count == count)
    {
        let machine = host.machine;
        let Some(&(region, usd)) = host.prices.iter().find(|(r, _)| *r == row.region) else {
            source.push_str(&format!(
                "; GPU-only price: the {machine} host VM is billed on top (no host price \
                 recorded for this region)"
            ));
            d.gcp.push(format!(
                "{what} in '{}': no {machine} host price recorded for this region; kept as a \
                 GPU-only price, marked in source",
                row.region
            ));
            return;
        };
        let gpu_only = *on_demand;
        // Rounded to 1e-6 USD/h so the float sum prints as the two prices' decimal sum.
        *on_demand = gpu_only.map(|p| ((p + usd) * 1e6).round() / 1e6);
        let dropped = spot.take();
        source.push_str(&format!(
            "; GPU-only price plus the {machine} host VM ({usd} USD/h in {region}, same \
             catalog, per shared/data/prices/NOTES.md) = whole-VM price; spot dropped (host VM \
             spot price not recorded)"
        ));
        let fmt = |p: Option<f64>| p.map_or("-".to_string(), |p| p.to_string());
        d.gcp.push(format!(
            "{what} in {region}: GPU-only on-demand {} + {machine} host VM {usd} = {} USD/h \
             (GCP sells H200 only inside that VM, so the GPU-only figure is no price anyone \
             pays); spot {} dropped (host VM spot price not recorded)",
            fmt(gpu_only),
            fmt(*on_demand),
            fmt(dropped)
        ));
    } else if let Some(&(_, _, machine)) =
        GCP_WHOLE_VMS.iter().find(|w| w.0 == accel && w.1 == count)
    {
        source.push_str(&format!(
            "; whole VM: the catalog prices the {machine} host at 0.0"
        ));
        d.gcp.push(format!(
            "{what}: the catalog prices the {machine} host at 0.0, so the GPU row is the whole \
             VM; kept as listed"
        ));
    } else {
        source.push_str("; GPU-only price, host VM billed separately; GCP attaches GPUs by count");
        d.gcp.push(format!(
            "{what}: GPU-only price, host VM billed separately; kept, marked in source"
        ));
    }
}

/// `on-demand 1.5, spot -`, for notes.
fn price_text(e: &PriceEntry) -> String {
    let p = |x: Option<UsdPerHour>| x.map_or("-".to_string(), |x| x.0.to_string());
    format!("on-demand {}, spot {}", p(e.on_demand), p(e.spot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shared/data`, or `$PILOT_SHARED_DATA`, with both SkyPilot extracts (the newer one is
    /// checked last); `None` (with a note) when absent.
    fn shared_data() -> Option<PathBuf> {
        crate::shared_data_with("prices/gpu_instances.csv")?;
        crate::shared_data_with("prices/gpu_instances_2026.csv")
    }

    fn rebuild(dir: &Path) -> (Vec<PriceEntry>, Vec<String>) {
        build_price_rows(
            &dir.join("prices/gpu_instances.csv"),
            Some(&dir.join("prices/gpu_instances_2026.csv")),
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
        assert!(notes.iter().any(|n| n.contains("runpod")), "{notes:?}");
    }

    /// One row of the 2026 file, read here apart from the builder.
    struct RawOffer {
        on_demand: Option<f64>,
        spot: Option<f64>,
        source: String,
    }

    /// The 2026 file's rows per (cloud, catalog GPU, count).
    type RawRows = BTreeMap<(String, String, u32), Vec<RawOffer>>;

    fn raw_2026(path: &Path) -> RawRows {
        let mut reader = csv::Reader::from_path(path).unwrap();
        let h = reader.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|c| c == name).unwrap();
        let (cloud, accel, count) = (col("cloud"), col("accelerator"), col("accelerator_count"));
        let (od, spot) = (col("price_per_hour_usd"), col("spot_price_per_hour_usd"));
        let source = col("source");
        let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
        let mut raw = RawRows::new();
        for r in reader.records() {
            let r = r.unwrap();
            let gpu = GpuCatalog::builtin()
                .resolve(&r[accel])
                .unwrap()
                .name
                .clone();
            raw.entry((r[cloud].to_string(), gpu, r[count].parse().unwrap()))
                .or_default()
                .push(RawOffer {
                    on_demand: num(&r[od]),
                    spot: num(&r[spot]),
                    source: r[source].to_string(),
                });
        }
        raw
    }

    #[test]
    fn price_2026_rows_carry_their_own_source_and_the_caveat_rules_hold() {
        let Some(dir) = shared_data() else { return };
        let (rows, notes) = rebuild(&dir);
        let raw = raw_2026(&dir.join("prices/gpu_instances_2026.csv"));
        let find = |k: &(String, String, u32)| {
            rows.iter()
                .find(|e| (&e.cloud, &e.gpu, e.gpu_count) == (&k.0, &k.1, k.2))
        };
        for (k, offers) in &raw {
            let e = find(k).unwrap_or_else(|| panic!("{k:?} of the 2026 file is missing"));
            // The newer file wins, with the source of the row kept.
            assert!(
                offers.iter().any(|o| e.source.starts_with(&o.source))
                    && e.source.contains("gpu_instances_2026.csv"),
                "{k:?}: {}",
                e.source
            );
            let min = |f: fn(&RawOffer) -> Option<f64>| {
                offers.iter().filter_map(f).min_by(f64::total_cmp)
            };
            let host = GCP_HOST_VMS
                .iter()
                .find(|h| k.0 == "gcp" && k.1 == "H200-SXM-141GB" && h.count == k.2);
            match (min(|o| o.on_demand), host) {
                // The lowest on-demand offer is kept...
                (Some(od), None) => assert_eq!(e.on_demand, Some(UsdPerHour(od)), "{k:?}"),
                // ... plus the host VM for GCP's H200, without a spot price.
                (Some(od), Some(h)) => {
                    let (region, usd) = h.prices.iter().find(|p| p.0 == e.region).unwrap();
                    assert!((e.on_demand.unwrap().0 - od - usd).abs() < 1e-9, "{e:?}");
                    assert_eq!(e.spot, None);
                    let notes_md = std::fs::read_to_string(dir.join("prices/NOTES.md")).unwrap();
                    assert!(
                        notes_md.contains(&format!("{usd} in {region}"))
                            || notes_md.contains(&format!("{usd} USD/h in {region}")),
                        "host price {usd} in {region} is not what NOTES.md says"
                    );
                }
                // A key with spot prices only is kept as spot-only.
                (None, _) => {
                    assert_eq!(e.on_demand, None, "{k:?}");
                    assert_eq!(e.spot.map(|p| p.0), min(|o| o.spot), "{k:?}");
                }
            }
        }
        let real = |e: &&PriceEntry| e.cloud != LLM_PILOT_CLOUD;
        let runpod: Vec<&PriceEntry> = rows.iter().filter(|e| e.cloud == "runpod").collect();
        assert!(runpod.iter().any(|e| e.gpu == "MI300X"));
        for e in runpod {
            assert!(e.spot.is_none() || e.spot != e.on_demand, "{e:?}");
        }
        for e in rows.iter().filter(real) {
            assert!(e.spot.is_none_or(|p| p.0 > 0.0), "{e:?}");
            if ["B200-SXM-180GB", "B300-SXM-288GB", "MI355X"].contains(&e.gpu.as_str()) {
                assert!(e.source.contains("gpu_instances_2026.csv"), "{e:?}");
            }
        }
        let cat = PriceCatalog::new(rows);
        for gpu in [
            "B200-SXM-180GB",
            "B300-SXM-288GB",
            "H200-SXM-141GB",
            "MI300X",
            "MI355X",
        ] {
            assert!(cat.cheapest(gpu, 8, None, false).is_some(), "{gpu} x8");
        }
        for word in [
            "in both SkyPilot files",
            "spot-only entries",
            "runpod: dropped the spot price",
            "gcp: gcp H200 x8",
            "a4-highgpu-8g",
            "spot price of 0",
            "seeweb:",
            "daytona:",
            "primeintellect:",
            "shadeform:",
        ] {
            assert!(notes.iter().any(|n| n.contains(word)), "{word}: {notes:?}");
        }
    }

    /// The builder's rules on a small pair of files: the newer extract wins even when dearer,
    /// each caveat is applied, and a row without a usable source is refused.
    #[test]
    fn price_newer_extract_wins_and_its_caveats_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cols = "cloud,instance_type,accelerator,accelerator_count,vcpus,memory_gib,\
                    price_per_hour_usd,spot_price_per_hour_usd,region";
        let v6 = write(
            "v6.csv",
            &format!(
                "{cols}\naws,p5.48xlarge,H100,8,192,2048,10.0,3.0,us-east-1\n\
                 lambda,gpu_1x_h100_sxm5,H100,1,26,200,2.49,,us-east-1\n"
            ),
        );
        let llm = write("llm.csv", "GPU,price\n1 x T4,0.5\n");
        let src = "o/catalog@0123456789abcdef0123456789abcdef01234567:v9";
        let newer = |rows: &str| format!("{cols},source\n{rows}").replace("SRC", src);
        let build = |text: String| {
            let p = write("new.csv", &text);
            build_price_rows(&v6, Some(&p), &llm, GpuCatalog::builtin())
        };
        let (rows, notes) = build(newer(
            "aws,p5.48xlarge,H100,8,192,2048,20.0,,us-east-2,SRC/aws/vms.csv\n\
             runpod,8x_MI300X_SECURE,MI300X,8,192,2264,19.12,19.12,IN,SRC/runpod/vms.csv\n\
             verda,2B200.60V,B200,2,60,368,,3.423,FIN-03,SRC/verda/vms.csv\n\
             verda,1B300.30V,B300,1,30,275,,,FIN-03,SRC/verda/vms.csv\n\
             vast,8x-H200,H200,8,32,64,20.71,0,FR,SRC/vast/vms.csv\n\
             gcp,,H200,8,,,30.0,40.0,us-central1,SRC/gcp/vms.csv\n\
             daytona,1x-MI355X,MI355X,1,8,100,8.0,4.6,earth,SRC/daytona/vms.csv\n",
        ))
        .unwrap();
        let get = |cloud: &str, gpu: &str, n: u32| {
            rows.iter()
                .find(|e| e.cloud == cloud && e.gpu == gpu && e.gpu_count == n)
                .unwrap_or_else(|| panic!("{cloud} {gpu} x{n}: {rows:?}"))
        };
        let aws = get("aws", "H100-SXM-80GB", 8);
        assert_eq!((aws.on_demand, aws.spot), (Some(UsdPerHour(20.0)), None));
        assert!(aws.source.starts_with(&format!("{src}/aws/vms.csv")));
        assert!(get("lambda", "H100-SXM-80GB", 1).source.contains("v6"));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("1 (cloud, GPU, count) in both"))
        );
        let runpod = get("runpod", "MI300X", 8);
        assert_eq!(
            (runpod.on_demand, runpod.spot),
            (Some(UsdPerHour(19.12)), None)
        );
        let verda = get("verda", "B200-SXM-180GB", 2);
        assert_eq!(
            (verda.on_demand, verda.spot),
            (None, Some(UsdPerHour(3.423)))
        );
        assert!(!rows.iter().any(|e| e.gpu == "B300-SXM-288GB"));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("no on-demand or spot price"))
        );
        assert_eq!(get("vast", "H200-SXM-141GB", 8).spot, None);
        let gcp = get("gcp", "H200-SXM-141GB", 8);
        assert!((gcp.on_demand.unwrap().0 - 42.266).abs() < 1e-9, "{gcp:?}");
        assert_eq!(gcp.spot, None);
        assert!(get("daytona", "MI355X", 1).source.contains("sandbox"));

        // A region with no recorded host price keeps the GPU-only price, marked.
        let (rows, _) = build(newer(
            "gcp,,H200,8,,,30.0,40.0,europe-west4,SRC/gcp/vms.csv\n",
        ))
        .unwrap();
        let gcp = rows.iter().find(|e| e.cloud == "gcp").unwrap();
        assert_eq!(gcp.on_demand, Some(UsdPerHour(30.0)));
        assert!(gcp.source.contains("GPU-only"), "{gcp:?}");

        let msg = build(newer("aws,p6,B200,8,1,1,1.0,,x,my notes\n"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 2") && msg.contains("repo@commit:path"),
            "{msg}"
        );
        let msg = build(format!("{cols}\naws,p6,B200,8,1,1,1.0,,x\n"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no column 'source'"), "{msg}");
    }

    /// The shipped catalog prices today's GPUs, each from a newer catalog file.
    #[test]
    fn price_builtin_prices_todays_gpus() {
        let cat = PriceCatalog::builtin();
        for gpu in ["B200-SXM-180GB", "B300-SXM-288GB", "MI300X", "MI355X"] {
            let offers: Vec<&PriceEntry> = cat
                .entries()
                .iter()
                .filter(|e| e.gpu == gpu && e.on_demand.is_some())
                .collect();
            assert!(!offers.is_empty(), "{gpu}");
            for e in offers {
                assert!(
                    check_row_source(e.source.split(' ').next().unwrap()).is_ok(),
                    "{e:?}"
                );
            }
        }
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

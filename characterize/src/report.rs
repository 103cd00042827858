//! What a run produced ([`CharacterizeReport`]: its levels, tuning trials and notes) and the
//! end-of-run table drawn from it.
//!
//! The report is the one record that the sweep, the tuner and `summary.csv` share: they add
//! to it, the binary prints it. It sits below all of them so that each can fill it without
//! depending on the others.

use crate::telemetry::ServerGauges;
use pilot_core::metrics::{Metric, Stat};
use pilot_core::requests::PointKey;
use pilot_core::schema::{Load, Measurement};
use pilot_core::slo::Slo;
use pilot_core::units::{Millis, RequestsPerSec, TokensPerSec};
use std::path::PathBuf;

/// One level's row and what the schema has no column for.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelResult {
    pub row: Measurement,
    /// Requests per second that met every SLO (per request); `None` without SLOs.
    pub goodput: Option<RequestsPerSec>,
    /// Whether the level's statistics meet every SLO; `None` without SLOs.
    pub slo_met: Option<bool>,
    /// Means of the server's Prometheus gauges during the window.
    pub server: ServerGauges,
    /// Kept from an earlier run by `--resume`, not measured now.
    pub resumed: bool,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct CharacterizeReport {
    /// Every level, in the order run (resumed ones first).
    pub levels: Vec<LevelResult>,
    /// The run's own directory under `--out` (see [`crate::run`]).
    pub run_dir: PathBuf,
    pub requests_path: PathBuf,
    pub summary_path: PathBuf,
    /// The dataset the rows were appended to, if asked.
    pub appended_to: Option<PathBuf>,
    /// Why the (last) sweep stopped before its last level, if it did.
    pub stopped_early: Option<String>,
    /// Notes for the user: workload estimates, missing telemetry, length mismatches.
    pub notes: Vec<String>,
    /// What the server says of itself, for `run.json`: the models `/v1/models` lists (empty
    /// when it did not answer) and the version `/version` gives (vLLM's), when it answers.
    pub server_models: Vec<String>,
    pub server_version: Option<String>,
    /// The run's SLOs: the table shows each latency at p50 and at its SLO's own percentile
    /// (p99 where no SLO names one).
    pub slos: Vec<Slo>,
    /// Tuning trials, in the order run (empty without `--tune`).
    pub trials: Vec<TuneTrial>,
    /// The tuned setting chosen (see [`crate::tune`]).
    pub best_setting: Option<u32>,
    /// Why the run counts as failed though its files are written: no measured request
    /// succeeded, or the sweep was stopped by failures (a dead server, more than
    /// `--max-failures`; saturation is a normal end). With `--tune`, failing trials are the
    /// search working, so only "nothing succeeded at all" counts. The binary exits non-zero.
    pub failure: Option<String>,
}

/// One trial of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneTrial {
    pub max_batch: u32,
    /// Ran without out-of-memory, excess failures or a dead server.
    pub ok: bool,
    /// Why it failed.
    pub reason: Option<String>,
    /// Indices into [`CharacterizeReport::levels`].
    pub levels: Vec<usize>,
    /// Best goodput of its levels (with SLOs).
    pub goodput: Option<RequestsPerSec>,
    /// Best output throughput of its levels.
    pub throughput: Option<TokensPerSec>,
    /// The launched server's output.
    pub log: Option<PathBuf>,
}

/// Adds a note for the user, once.
pub(crate) fn push_note(report: &mut CharacterizeReport, note: String) {
    if !report.notes.contains(&note) {
        report.notes.push(note);
    }
}

/// A short name of a level for progress and messages: `users=4`, `rate=2/s`, `+ max_batch=8`.
///
/// Its own spelling, not [`Load`]'s `Display` (`4 users`), because these labels are what a
/// run has always printed (progress bars, why a sweep stopped).
pub fn level_label(k: &PointKey) -> String {
    let mut s = match k.load {
        Load::Users(u) => format!("users={u}"),
        Load::Rate(r) => format!("rate={}/s", r.0),
        Load::Batch(_) => k.load.mode().name().to_string(),
    };
    if let Some(b) = k.max_batch {
        s.push_str(&format!(" mb={b}"));
    }
    s
}

/// A latency for a table cell, `-` when missing. Sub-millisecond gaps (a tiny model on a
/// fast CPU) keep their digits.
pub fn millis_text(m: Option<Millis>) -> String {
    m.map_or("-".to_string(), |m| {
        let digits = if m.0 < 1.0 {
            3
        } else if m.0 < 10.0 {
            2
        } else {
            1
        };
        format!("{:.digits$} ms", m.0)
    })
}

/// The key of a row (to match resumed levels).
pub fn key_of(r: &Measurement) -> PointKey {
    PointKey {
        model: r.model.clone(),
        gpu: r.gpu.clone(),
        gpu_count: r.gpu_count,
        engine: r.engine.clone(),
        load: PointKey::keyed(r.load),
        max_batch: r.max_batch,
        // What characterize measures is a width (the embedded engine's dtype).
        quantization: r.quantization.map(pilot_core::quant::Quantization::storage),
    }
}

impl CharacterizeReport {
    /// The tail statistic shown beside each metric's p50: the percentile its SLO names
    /// (`--slo ttft:p90=200ms`), else p99 (what `vllm bench serve` prints).
    fn tail(&self, metric: Metric) -> Stat {
        self.slos
            .iter()
            .find(|s| s.metric == metric && s.stat != Stat::P50)
            .map_or(Stat::P99, |s| s.stat)
    }

    /// The end-of-run table: one line per level.
    pub fn table(&self) -> String {
        const SHOWN: [(Metric, &str); 4] = [
            (Metric::Ttft, "TTFT"),
            (Metric::Itl, "ITL"),
            (Metric::Tpot, "TPOT"),
            (Metric::E2e, "E2E"),
        ];
        let latency_heads: Vec<String> = SHOWN
            .iter()
            .flat_map(|(m, name)| [format!("{name} p50"), format!("{name} {}", self.tail(*m))])
            .collect();
        let mut header = vec!["level", "ok", "failed"];
        header.extend(latency_heads.iter().map(String::as_str));
        header.extend(["out tok/s", "req/s"]);
        let slos = self.levels.iter().any(|l| l.goodput.is_some());
        if slos {
            header.extend(["goodput req/s", "SLOs met"]);
        }
        header.push("KV %");
        header.push("flags");
        let num = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |x| format!("{x:.p$}"));
        let rows = self.levels.iter().map(|l| {
            let m = &l.row.metrics;
            let mut cells = vec![
                level_label(&key_of(&l.row)),
                m.requests_ok.to_string(),
                m.requests_failed.to_string(),
            ];
            for (metric, _) in SHOWN {
                for stat in [Stat::P50, self.tail(metric)] {
                    cells.push(millis_text(metric.stat(m, stat).map(Millis)));
                }
            }
            cells.extend([
                num(m.output_throughput.map(|x| x.0), 1),
                num(m.request_throughput.map(|x| x.0), 2),
            ]);
            if slos {
                cells.push(num(l.goodput.map(|g| g.0), 2));
                cells.push(
                    l.slo_met
                        .map_or("-".into(), |b| if b { "yes".into() } else { "no".into() }),
                );
            }
            cells.push(num(l.row.kv_cache_usage.map(|p| p.0), 0));
            let mut flags = l.row.flags.clone();
            if l.resumed {
                flags = if flags.is_empty() {
                    "resumed".into()
                } else {
                    format!("{flags},resumed")
                };
            }
            cells.push(flags);
            cells
        });
        pilot_core::table::table(&header, rows)
    }
}

//! Measurement rows as training and evaluation see them: which rows are left out and why, and
//! each usable row turned into its scenario, physics estimate and feature vector.

use crate::features;
use crate::physics::{Estimate, PhysicsModel};
use crate::scenario::{Fit, Resolver, Scenario};
use pilot_core::metrics::Summary;
use pilot_core::schema::Measurement;
use std::collections::BTreeMap;

/// A dataset row turned into a scenario, its physics estimate and features.
pub(crate) struct Prepared {
    pub row: Measurement,
    pub scenario: Scenario,
    pub estimate: Estimate,
    pub physics: Summary,
    pub features: Vec<f64>,
}

/// Why a row is not used for training or evaluation; `None` if it is usable.
pub fn exclusion_reason(r: &Measurement) -> Option<&'static str> {
    if r.has_flag("implausible_latency") {
        return Some("flagged implausible_latency");
    }
    if r.has_flag(pilot_core::schema::FLAG_NON_FINITE) {
        return Some("flagged non_finite_value (NaN or infinite values)");
    }
    if r.has_flag("throughput_latency_mismatch") {
        return Some("flagged throughput_latency_mismatch (llama.cpp: not batch latencies)");
    }
    // AIConfigurator rows whose load or deployment size the source does not give: the importer
    // writes placeholders (1 user; one prefill and one decode worker) that are not facts.
    if r.has_flag(pilot_import::aiconfigurator::FLAG_CONCURRENCY) {
        return Some("flagged concurrency_unknown (placeholder of 1 user)");
    }
    if r.has_flag(pilot_import::aiconfigurator::FLAG_WORKERS) {
        return Some("flagged disagg_workers_unknown (worker counts are placeholders)");
    }
    let (ok, failed) = (r.metrics.requests_ok, r.metrics.requests_failed);
    if failed > 0 && failed >= ok {
        return Some("most requests failed (out of memory or timeouts)");
    }
    None
}

/// Prepares rows for training or evaluation; returns them and notes on skipped rows.
pub(crate) fn prepare(
    rows: &[Measurement],
    physics: &PhysicsModel,
    use_physics: bool,
) -> (Vec<Prepared>, Vec<String>) {
    let mut out = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut resolver = Resolver::default();
    for r in rows {
        if let Some(why) = exclusion_reason(r) {
            *skipped.entry(why.to_string()).or_default() += 1;
            continue;
        }
        let s = match Scenario::from_row(r, &mut resolver) {
            Ok(s) => s,
            Err(e) => {
                *skipped.entry(format!("not a scenario: {e}")).or_default() += 1;
                continue;
            }
        };
        let (e, fit) = match physics.estimate(&s) {
            Ok(x) => x,
            Err(err) => {
                *skipped
                    .entry(format!("the physics model cannot estimate it: {err}"))
                    .or_default() += 1;
                continue;
            }
        };
        if let Fit::DoesNotFit { .. } = fit {
            *skipped
                .entry("physics says it does not fit (measured anyway)".into())
                .or_default() += 1;
            continue;
        }
        let mut f = Vec::new();
        features::push(&mut f, &s, use_physics.then_some(&e));
        out.push(Prepared {
            physics: physics.summary(&s, &e),
            row: r.clone(),
            scenario: s,
            estimate: e,
            features: f,
        });
    }
    let notes = skipped
        .into_iter()
        .map(|(k, n)| format!("{n} rows skipped: {k}"))
        .collect();
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_import::aiconfigurator::{FLAG_CONCURRENCY, FLAG_WORKERS};

    #[test]
    fn placeholder_rows_of_the_aiconfigurator_import_are_left_out() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/predictor/aiconfigurator.csv");
        let rows = pilot_core::schema::read_measurements(&path).expect("the shipped import");
        let placeholders = rows
            .iter()
            .filter(|r| r.has_flag(FLAG_CONCURRENCY) || r.has_flag(FLAG_WORKERS))
            .count();
        assert!(placeholders > 0, "the shipped file has placeholder rows");
        let kept: Vec<&Measurement> = rows
            .iter()
            .filter(|r| exclusion_reason(r).is_none())
            .collect();
        assert_eq!(kept.len() + placeholders, rows.len());
        assert!(
            kept.iter()
                .all(|r| !r.has_flag(FLAG_CONCURRENCY) && !r.has_flag(FLAG_WORKERS))
        );
    }
}

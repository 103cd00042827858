//! Calibration of the physics constants to one serving engine's measurements.
//!
//! The defaults in [`PhysicsParams`] are published efficiencies; a real engine misses them in
//! its own way (TGIS 2023 reaches a third of the prefill FLOPs vLLM does, llama.cpp's step
//! overhead is not vLLM's). NVIDIA's AIConfigurator goes from a median 31% latency error to 13%
//! with one fitted scale per engine and GPU; here a handful of constants per engine (never per
//! LLM, never per GPU, so held-out LLMs and GPUs stay unseen) are fitted by a bounded
//! coordinate search on the median absolute log error of the p50 latencies and throughput.
//! The trees then learn what is left, which is flatter and extrapolates better.

use crate::physics::{PhysicsModel, PhysicsParams};
use crate::scenario::{Fit, Scenario};
use pilot_core::schema::{Measurement, metric_value};
use std::collections::BTreeMap;

/// Metrics the calibration matches (those the physics models most directly), each with the
/// columns that measure it in order of preference: the p50 where a dataset has it, else the
/// mean (AIConfigurator reports only mean TTFT and mean TPOT). One column per slot and row, so
/// a dataset with both is matched exactly as before.
const TARGETS: [&[&str]; 4] = [
    &["ttft_ms_p50", "ttft_ms_mean"],
    &["itl_ms_p50", "tpot_ms_mean"],
    &["e2e_ms_p50"],
    &["output_throughput_tok_s"],
];

/// Most rows one engine's calibration looks at (an even subsample beyond), to bound its cost.
const MAX_ROWS: usize = 800;

/// A calibrated constant: how to read and write it, and its physical bounds.
struct Knob {
    get: fn(&PhysicsParams) -> f64,
    set: fn(&mut PhysicsParams, f64),
    lo: f64,
    hi: f64,
}

fn knobs() -> Vec<Knob> {
    vec![
        Knob {
            get: |p| p.mem_efficiency,
            set: |p, v| p.mem_efficiency = v,
            lo: 0.2,
            hi: 0.95,
        },
        Knob {
            get: |p| p.mfu_prefill,
            set: |p, v| p.mfu_prefill = v,
            lo: 0.03,
            hi: 0.9,
        },
        Knob {
            get: |p| p.mfu_decode,
            set: |p, v| p.mfu_decode = v,
            lo: 0.03,
            hi: 0.9,
        },
        Knob {
            get: |p| p.step_overhead_ms,
            set: |p, v| p.step_overhead_ms = v,
            lo: 0.05,
            hi: 50.0,
        },
        Knob {
            get: |p| p.layer_overhead_ms,
            set: |p, v| p.layer_overhead_ms = v,
            lo: 0.001,
            hi: 1.0,
        },
        Knob {
            get: |p| p.request_overhead_ms,
            set: |p, v| p.request_overhead_ms = v,
            lo: 0.5,
            hi: 300.0,
        },
        Knob {
            get: |p| p.allreduce_latency_nvlink_ms,
            set: |p, v| p.allreduce_latency_nvlink_ms = v,
            lo: 0.002,
            hi: 1.0,
        },
        Knob {
            get: |p| p.allreduce_latency_pcie_ms,
            set: |p, v| p.allreduce_latency_pcie_ms = v,
            lo: 0.005,
            hi: 2.0,
        },
        Knob {
            get: |p| p.prefill_queue_share,
            set: |p, v| p.prefill_queue_share = v,
            lo: 0.01,
            hi: 1.0,
        },
        Knob {
            get: |p| p.sequence_overhead_ms,
            set: |p, v| p.sequence_overhead_ms = v,
            lo: 0.001,
            hi: 2.0,
        },
        Knob {
            get: |p| p.padded_token_factor,
            set: |p, v| p.padded_token_factor = v,
            lo: 1.0,
            hi: 8.0,
        },
        // Last: a queue that grows with the users explains TTFT's growth only where the
        // constants above do not.
        Knob {
            get: |p| p.burst_queue_share,
            set: |p, v| p.burst_queue_share = v,
            lo: 0.01,
            hi: 1.0,
        },
    ]
}

/// Median absolute log error of the physics over the rows' calibration targets (lower is
/// better); rows the physics says do not fit count as a large error.
fn loss(params: &PhysicsParams, rows: &[(&Scenario, &Measurement)]) -> f64 {
    let model = PhysicsModel::new(params.clone());
    let mut errs = Vec::with_capacity(rows.len() * TARGETS.len());
    for (s, r) in rows {
        let Ok((e, fit)) = model.estimate(s) else {
            continue;
        };
        if matches!(fit, Fit::DoesNotFit { .. }) {
            errs.push(3.0);
            continue;
        }
        let m = Measurement {
            metrics: model.summary(s, &e),
            ..(*r).clone()
        };
        for slot in TARGETS {
            let Some((a, t)) = slot
                .iter()
                .find_map(|t| metric_value(r, t).map(|a| (a, *t)))
            else {
                continue;
            };
            if let Some(p) = metric_value(&m, t)
                && a > 0.0
                && p > 0.0
                && p.is_finite()
            {
                errs.push((p / a).ln().abs());
            }
        }
    }
    if errs.is_empty() {
        return f64::INFINITY;
    }
    // Mean of the absolute log errors with the worst 10% left out: robust to the few runs far
    // from their neighbours, yet smooth enough for a coordinate search.
    errs.sort_by(f64::total_cmp);
    let keep = (errs.len() * 9).div_ceil(10).max(1);
    errs[..keep].iter().sum::<f64>() / keep as f64
}

/// Fits the constants to rows of one engine, starting from `base`.
pub fn calibrate(base: &PhysicsParams, rows: &[(&Scenario, &Measurement)]) -> PhysicsParams {
    let rows: Vec<(&Scenario, &Measurement)> = if rows.len() > MAX_ROWS {
        let stride = rows.len() as f64 / MAX_ROWS as f64;
        (0..MAX_ROWS)
            .map(|k| rows[(k as f64 * stride) as usize])
            .collect()
    } else {
        rows.to_vec()
    };
    let mut best = base.clone();
    let mut best_loss = loss(&best, &rows);
    if !best_loss.is_finite() {
        return best;
    }
    let knobs = knobs();
    let mut step = 2.0_f64;
    for _round in 0..8 {
        let mut improved = false;
        for k in &knobs {
            for factor in [step, 1.0 / step] {
                // A knob at 0 (off by default) starts from its lower bound.
                let v = ((k.get)(&best).max(k.lo) * factor).clamp(k.lo, k.hi);
                if v == (k.get)(&best) {
                    continue;
                }
                let mut trial = best.clone();
                (k.set)(&mut trial, v);
                let l = loss(&trial, &rows);
                if l < best_loss - 1e-6 {
                    best = trial;
                    best_loss = l;
                    improved = true;
                    break;
                }
            }
        }
        if !improved {
            step = step.sqrt();
            if step < 1.05 {
                break;
            }
        }
    }
    best
}

/// Calibrates one set of constants per engine (lower-case names) from `(scenario, row)`
/// pairs; engines with fewer than `min_rows` rows keep `base`.
pub fn calibrate_engines(
    base: &PhysicsParams,
    rows: &[(&Scenario, &Measurement)],
    min_rows: usize,
) -> BTreeMap<String, PhysicsParams> {
    let mut by: BTreeMap<String, Vec<(&Scenario, &Measurement)>> = BTreeMap::new();
    for (s, r) in rows {
        by.entry(r.engine.to_ascii_lowercase())
            .or_default()
            .push((s, r));
    }
    by.into_iter()
        .filter(|(e, v)| !e.is_empty() && v.len() >= min_rows)
        .map(|(e, v)| (e, calibrate(base, &v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Load, Resolver};

    /// Rows the default physics produces with known constants must lead calibration back
    /// toward those constants: the loss it reaches is far below the loss it started from.
    #[test]
    fn calibration_recovers_a_known_engine() {
        let truth = PhysicsParams {
            mfu_prefill: 0.2,
            step_overhead_ms: 8.0,
            request_overhead_ms: 80.0,
            ..PhysicsParams::default()
        };
        let model = PhysicsModel::new(truth.clone());
        let mut resolver = Resolver::default();
        let mut pairs = Vec::new();
        for (m, g, c) in [
            ("llama-2-7b", "A100-SXM-80GB", 1),
            ("llama-2-13b", "H100-SXM-80GB", 2),
            ("mistral-7b", "L40S", 1),
        ] {
            for u in [1, 4, 16, 64] {
                let mut s = Scenario::new(
                    resolver.model(m).unwrap(),
                    resolver.gpu(g).unwrap(),
                    c,
                    Load::Users(u),
                    pilot_core::units::Tokens(300),
                    pilot_core::units::Tokens(100),
                );
                s.engine = Some("x".into());
                let (e, _) = model.estimate(&s).unwrap();
                let mut r = s.to_row("test");
                r.metrics = model.summary(&s, &e);
                pairs.push((s, r));
            }
        }
        // The same rows as AIConfigurator reports them: mean TTFT and mean TPOT only.
        let means: Vec<(Scenario, Measurement)> = pairs
            .iter()
            .map(|(s, r)| {
                let mut m = s.to_row("test");
                for c in ["ttft_ms_mean", "tpot_ms_mean"] {
                    pilot_core::schema::set_metric_value(&mut m, c, metric_value(r, c));
                }
                (s.clone(), m)
            })
            .collect();
        for rows in [&pairs, &means] {
            let refs: Vec<(&Scenario, &Measurement)> = rows.iter().map(|(s, r)| (s, r)).collect();
            let start = loss(&PhysicsParams::default(), &refs);
            let fitted = calibrate_engines(&PhysicsParams::default(), &refs, 4);
            let end = loss(&fitted["x"], &refs);
            assert!(start > 0.2, "defaults should miss these rows: {start}");
            // The coordinate search stops in a local optimum near the truth (here mem_efficiency
            // 0.375, mfu_prefill 0.25, request overhead 60 ms against 0.2 and 80 ms): a third of
            // the error is what it reliably reaches.
            assert!(
                end < start / 3.0,
                "calibration went from {start} to {end}: {:?}",
                fitted["x"]
            );
        }
    }
}

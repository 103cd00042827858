//! Mixed fleets (`--mix`): split the demand across GPU types by request length where that
//! is cheaper than any single type.
//!
//! Mélange's observation (Griggs et al., 2024): a GPU type's cost per request depends on the
//! request's length, so short requests may be cheapest on small GPUs and long ones on large
//! GPUs. The workload's length distribution is cut into [`MAX_BUCKETS`] buckets of about
//! equal probability by prompt-plus-output length; each GPU type serves with the cheapest
//! profile the single-type search found for it. For each type and bucket the capacity search
//! gives how much of that bucket's traffic one replica sustains within the SLOs; a replica
//! serving several buckets is assumed to use its capacity in proportion (Mélange's
//! linear-mixing assumption), so a type's replicas are ceil(sum over its buckets of
//! load / capacity). Every assignment of buckets to types is tried (at most
//! types^[`MAX_BUCKETS`], a few thousand), and the cheapest is then checked, not trusted: each
//! type's replicas are predicted at their share of the load with the mixed mean lengths they
//! serve, and a type whose prediction misses an SLO gets replicas until it meets them.

use crate::search::{Candidate, Margin, Recommendation, capacity, replica_price, violation};
use crate::space::{Profile, SpaceOptions};
use pilot_core::price::PriceCatalog;
use pilot_core::slo::Slo;
use pilot_core::units::{Tokens, UsdPerHour};
use pilot_predict::{LatencyModel, Load};

// The length buckets are predict's: the same cut serves `OverLengths` (one fleet judged over
// the mix) and the mix search (a GPU type per bucket).
pub use pilot_predict::over_lengths::{LengthBucket as Bucket, MAX_BUCKETS, buckets};

/// One GPU type's part of a mixed fleet.
#[derive(Debug, Clone)]
pub struct MixPart {
    /// The profile it serves with (the single-type search's cheapest on that GPU type).
    pub candidate: Candidate,
    /// Indices of the buckets it serves.
    pub buckets: Vec<usize>,
    /// The load its replicas share (users or requests/s).
    pub load: f64,
    pub replicas: u32,
    pub cost: UsdPerHour,
}

/// The cheapest mixed fleet found.
#[derive(Debug, Clone)]
pub struct Mix {
    pub buckets: Vec<Bucket>,
    pub parts: Vec<MixPart>,
    pub cost: UsdPerHour,
    /// The best single-type cost, for comparison.
    pub single: Option<UsdPerHour>,
}

/// What the mix search needs besides the single-type answer.
pub struct MixOptions<'a> {
    pub space: &'a SpaceOptions<'a>,
    pub slos: &'a [Slo],
    pub margin: Margin,
    pub cloud: Option<&'a str>,
    pub spot: bool,
}

/// The cheapest mix of the GPU types in `rec` for the buckets; `None` when no type serves
/// every bucket a type can be found for.
pub fn cheapest_mix(
    rec: &Recommendation,
    buckets: &[Bucket],
    model: &dyn LatencyModel,
    prices: &PriceCatalog,
    o: &MixOptions,
) -> Option<Mix> {
    let demand = rec.demand;
    // The cheapest feasible candidate per GPU type (the list is ranked by cost).
    let mut types: Vec<(&Candidate, &Profile, f64)> = Vec::new();
    for c in rec.feasible() {
        if types
            .iter()
            .any(|(t, _, _)| t.profile.gpu.name == c.profile.gpu.name)
        {
            continue;
        }
        let p = &c.profile;
        let Ok((price, _)) = replica_price(prices, &p.gpu, p.serving, o.cloud, o.spot) else {
            continue;
        };
        types.push((c, p, price.0));
    }
    if types.is_empty() || buckets.is_empty() {
        return None;
    }
    // capacity[t][b]: the load of bucket b's requests one replica of type t sustains.
    let scenario = |p: &Profile, b: &Bucket, load: Load| {
        let mut s = p.scenario(o.space, load);
        s.input_tokens = b.input;
        s.output_tokens = b.output;
        s
    };
    let cap: Vec<Vec<Option<f64>>> = types
        .iter()
        .map(|(_, p, _)| {
            buckets
                .iter()
                .map(|b| {
                    let base = scenario(p, b, demand.with_level(1.0));
                    capacity(model, &base, demand, o.slos, o.margin)
                        .ok()
                        .flatten()
                        .map(Load::level)
                })
                .collect()
        })
        .collect();
    let load = |b: usize| buckets[b].share * demand.level();
    let replicas = |t: usize, served: &[usize]| -> Option<u32> {
        let need: f64 = served
            .iter()
            .map(|&b| cap[t][b].map(|c| load(b) / c))
            .sum::<Option<f64>>()?;
        Some((need - 1e-9).ceil().max(1.0) as u32)
    };
    // Every assignment of buckets to types.
    let (nt, nb) = (types.len(), buckets.len());
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut assign = vec![0usize; nb];
    'all: loop {
        let mut cost = 0.0;
        let mut ok = true;
        for (t, (_, _, price)) in types.iter().enumerate() {
            let served: Vec<usize> = (0..nb).filter(|&b| assign[b] == t).collect();
            if served.is_empty() {
                continue;
            }
            match replicas(t, &served) {
                Some(n) => cost += f64::from(n) * price,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, assign.clone()));
        }
        // Next assignment (odometer).
        for slot in assign.iter_mut() {
            *slot += 1;
            if *slot < nt {
                continue 'all;
            }
            *slot = 0;
        }
        break;
    }
    let (_, assign) = best?;
    // Check each part at its share with the mixed lengths it serves; add replicas until the
    // prediction meets the SLOs (at most doubling).
    let mut parts = Vec::new();
    for (t, (c, p, price)) in types.iter().enumerate() {
        let served: Vec<usize> = (0..nb).filter(|&b| assign[b] == t).collect();
        if served.is_empty() {
            continue;
        }
        let part_load: f64 = served.iter().map(|&b| load(b)).sum();
        let weight: f64 = served.iter().map(|&b| buckets[b].share).sum();
        let mean = |f: fn(&Bucket) -> u64| {
            served
                .iter()
                .map(|&b| buckets[b].share * f(&buckets[b]) as f64)
                .sum::<f64>()
                / weight
        };
        let mixed = Bucket {
            input: Tokens(mean(|b| b.input.0).round().max(1.0) as u64),
            output: Tokens(mean(|b| b.output.0).round().max(1.0) as u64),
            share: weight,
            range: (0, 0),
        };
        let first = replicas(t, &served)?;
        let mut n = first;
        loop {
            let s = scenario(p, &mixed, share_of(demand, part_load, n));
            let meets = model
                .predict(&s)
                .ok()
                .is_some_and(|pr| violation(o.slos, &pr, o.margin).is_none());
            if meets {
                break;
            }
            n += 1;
            if n > 2 * first {
                return None;
            }
        }
        parts.push(MixPart {
            candidate: (*c).clone(),
            buckets: served,
            load: part_load,
            replicas: n,
            cost: UsdPerHour(f64::from(n) * price),
        });
    }
    let cost = UsdPerHour(parts.iter().map(|p| p.cost.0).sum());
    Some(Mix {
        buckets: buckets.to_vec(),
        parts,
        cost,
        single: rec.best().and_then(|b| b.cost),
    })
}

/// One replica's share of `load` (in the demand's mode) spread over `n` replicas.
fn share_of(demand: Load, load: f64, n: u32) -> Load {
    let per = load / f64::from(n);
    match demand {
        // A closed loop of a fraction of a user still sends requests: round up.
        Load::Users(_) => Load::Users(per.ceil().max(1.0) as u32),
        _ => demand.with_level(per),
    }
}

impl Mix {
    /// Whether the mix uses more than one GPU type.
    pub fn is_mixed(&self) -> bool {
        self.parts.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a bimodal workload the mix serves each bucket exactly once, its parts' loads add
    /// up to the demand, each part's replicas carry their load at the capacities the search
    /// found, and the mix is no dearer than the same buckets all on any one of its types.
    #[test]
    fn the_mix_covers_the_demand_and_is_cheapest_of_its_assignments() {
        use crate::search::{RecommendOptions, recommend};
        use crate::space::ServingModes;
        use pilot_core::gpu::GpuCatalog;
        use pilot_core::llm::ModelCatalog;
        use pilot_core::quant::Quantization;
        use pilot_core::slo::parse_slos;
        use pilot_predict::PhysicsModel;
        let physics = PhysicsModel::default();
        let opts = RecommendOptions {
            model: ModelCatalog::builtin().resolve("mistral-7b").unwrap(),
            slos: parse_slos("ttft=2s,itl=60ms").unwrap(),
            demand: Load::Users(300),
            input_tokens: Tokens(3100),
            output_tokens: Tokens(525),
            gpus: ["L4", "A100-SXM-80GB", "H100"]
                .iter()
                .map(|g| GpuCatalog::builtin().resolve(g).unwrap().clone())
                .collect(),
            max_gpus: 2,
            quantizations: vec![Quantization::Bf16],
            kv_caches: vec![None],
            serving: ServingModes::Aggregated,
            engines: vec![Some("vllm".into())],
            cloud: None,
            spot: false,
            margin: Margin::None,
            explain: false,
        };
        let prices = PriceCatalog::builtin();
        let rec = recommend(&opts, &physics, prices).unwrap();
        let space = opts.space();
        let mo = MixOptions {
            space: &space,
            slos: &opts.slos,
            margin: Margin::None,
            cloud: None,
            spot: false,
        };
        let b = buckets(&[(200, 50, 0.5), (6000, 1000, 0.5)]);
        assert_eq!(b.len(), 2);
        let m = cheapest_mix(&rec, &b, &physics, prices, &mo).expect("a mix");
        let mut served: Vec<usize> = m.parts.iter().flat_map(|p| p.buckets.clone()).collect();
        served.sort();
        assert_eq!(served, vec![0, 1]);
        let total: f64 = m.parts.iter().map(|p| p.load).sum();
        assert!((total - 300.0).abs() < 1e-6, "{total}");
        let sum: f64 = m.parts.iter().map(|p| p.cost.0).sum();
        assert!((sum - m.cost.0).abs() < 1e-6);
        // Both buckets on one type is one of the assignments tried: the mix is no dearer
        // than that on any type it uses (checked with the single-bucket search).
        for p in &m.parts {
            let one = cheapest_mix(
                &Recommendation {
                    candidates: vec![p.candidate.clone()],
                    demand: rec.demand,
                    skipped: 0,
                },
                &b,
                &physics,
                prices,
                &mo,
            )
            .expect("one type serves both buckets");
            assert!(
                m.cost.0 <= one.cost.0 + 1e-6,
                "{} > {}",
                m.cost.0,
                one.cost.0
            );
        }
    }
}

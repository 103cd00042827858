//! From the mean estimate to percentiles: a fixed log-normal spread for TTFT and E2E (the model
//! sees only mean lengths), and a Poisson count of prefills per inter-token gap for ITL.

use super::{Estimate, PhysicsModel};
use crate::scenario::{Load, Scenario};
use pilot_core::metrics::{Stat, Stats, Summary};
use pilot_core::units::{Millis, MsPerToken, RequestsPerSec, TokensPerSec};

/// z-scores of the percentiles the schema reports.
pub(crate) const Z: [(Stat, f64); 4] = [
    (Stat::P50, 0.0),
    (Stat::P90, 1.2816),
    (Stat::P95, 1.6449),
    (Stat::P99, 2.3263),
];

impl PhysicsModel {
    /// The summary (percentiles and throughputs) the physics implies for an estimate.
    pub fn summary(&self, sc: &Scenario, e: &Estimate) -> Summary {
        if let Some(m) = self.for_engine(sc) {
            return m.summary(sc, e);
        }
        let mut m = Summary::default();
        if !e.fits {
            return m;
        }
        let i = sc.input_tokens.0.max(1) as f64;
        let o = sc.output_tokens.0.max(1) as f64;
        let offline = matches!(sc.load, Load::Batch(_));
        let sigma = if offline {
            0.0
        } else {
            self.params.length_sigma
        };
        let spread = |z: f64| (sigma * z).exp();
        let t_pe = (e.itl_mean_ms - e.decode_step_ms) / e.prefill_gap_fraction.max(1e-12);
        let itl_at = |z: f64| {
            // A gap holds a Poisson number of prefill events (mean f per gap), each t_pe.
            let q = normal_cdf(z);
            e.decode_step_ms + t_pe * poisson_quantile(e.prefill_gap_fraction, q)
        };
        let mut ttft = Stats::default();
        let mut nttft = Stats::default();
        let mut itl = Stats::default();
        let mut e2e = Stats::default();
        let mut tpot = Stats::default();
        for (name, z) in Z {
            ttft.set(name, Some(Millis(e.ttft_ms * spread(z))));
            nttft.set(name, Some(MsPerToken(e.ttft_ms * spread(z) / i)));
            itl.set(name, Some(Millis(itl_at(z))));
            e2e.set(name, Some(Millis(e.e2e_ms * spread(z))));
            tpot.set(name, Some(Millis(e.itl_mean_ms)));
        }
        let mean = (sigma * sigma / 2.0).exp();
        ttft.mean = Some(Millis(e.ttft_ms * mean));
        nttft.mean = Some(MsPerToken(e.ttft_ms * mean / i));
        itl.mean = Some(Millis(e.itl_mean_ms));
        e2e.mean = Some(Millis(e.e2e_ms * mean));
        tpot.mean = Some(Millis(e.itl_mean_ms));
        m.ttft = ttft;
        m.nttft = nttft;
        m.itl = itl;
        m.tpot = tpot;
        m.e2e = e2e;
        m.output_throughput = Some(TokensPerSec(e.output_tok_s));
        m.total_throughput = Some(TokensPerSec(e.total_tok_s));
        m.request_throughput = Some(RequestsPerSec(e.request_rps));
        m.input_tokens_mean = Some(i);
        m.output_tokens_mean = Some(o);
        m
    }
}

/// The `q` quantile of a Poisson count with mean `lambda`, interpolated linearly within the
/// step where the CDF crosses `q`, so that it moves continuously with `lambda` (a percentile
/// that jumps as the mean crosses a threshold would teach the trees a jump that is not there).
pub(super) fn poisson_quantile(lambda: f64, q: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut pk = (-lambda).exp();
    let mut cdf = pk;
    if q <= cdf {
        return 0.0;
    }
    for k in 1..200 {
        pk *= lambda / k as f64;
        let next = cdf + pk;
        if q <= next {
            return (k - 1) as f64 + (q - cdf) / pk.max(1e-300);
        }
        cdf = next;
    }
    lambda
}

/// The standard normal distribution's CDF.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): enough to place percentiles.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
            + 0.254829592)
            * t
            * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

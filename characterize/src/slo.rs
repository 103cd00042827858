//! Latency service-level objectives: `ttft=200ms`, `itl:p90=50ms`, `e2e=2s`, `nttft=1ms`.
//!
//! An SLO names a latency metric of the schema ([`LATENCY_METRICS`]), a statistic (`p50`
//! unless written `metric:p90=...`) and a threshold. It is checked two ways:
//!
//! - **per level**: the row's statistic (`ttft_ms_p50`) is at most the threshold
//!   ([`Slo::met_by`]); this is what `recommend` uses on predicted rows.
//! - **per request**, for goodput (as `vllm bench serve --goodput` does): a request is *good*
//!   when each of its own values is within every threshold: its TTFT, nTTFT, TPOT, E2E, and
//!   for ITL its mean inter-token gap (which equals its TPOT up to rounding). The statistic is
//!   irrelevant per request.
//!
//! The parser is public so that `recommend` reads `--slo` the same way.

use pilot_core::metrics::RequestTimings;
use pilot_core::schema::{LATENCY_METRICS, Measurement, metric_value};
use pilot_core::units::Millis;
use std::fmt;

/// One objective: `statistic(metric) <= threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The schema's metric prefix: `ttft_ms`, `nttft_ms_per_token`, `itl_ms`, `tpot_ms`, `e2e_ms`.
    pub metric: String,
    /// `p50`, `p90`, `p95`, `p99` or `mean`.
    pub stat: String,
    /// In milliseconds (milliseconds per input token for nTTFT).
    pub threshold: Millis,
}

/// Why an SLO string did not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("SLO '{text}': {reason} (write e.g. ttft=200ms, itl:p90=50ms, e2e=2s, nttft=1ms)")]
pub struct SloError {
    pub text: String,
    pub reason: String,
}

impl Slo {
    /// The measurement column this SLO checks, e.g. `ttft_ms_p50`.
    pub fn column(&self) -> String {
        format!("{}_{}", self.metric, self.stat)
    }

    /// Whether a row meets it; `None` when the row has no value for the column.
    pub fn met_by(&self, row: &Measurement) -> Option<bool> {
        metric_value(row, &self.column()).map(|v| v <= self.threshold.0)
    }

    /// This SLO's metric for one successful request; `None` where it is undefined (TPOT of a
    /// one-token request, nTTFT without input tokens), which counts as met.
    pub fn request_value(&self, r: &RequestTimings) -> Option<f64> {
        match self.metric.as_str() {
            "ttft_ms" => Some(r.ttft.0),
            "nttft_ms_per_token" => (r.input_tokens > 0).then(|| r.ttft.0 / r.input_tokens as f64),
            "tpot_ms" => r.tpot().map(|t| t.0),
            "itl_ms" => (!r.itls.is_empty())
                .then(|| r.itls.iter().map(|m| m.0).sum::<f64>() / r.itls.len() as f64),
            "e2e_ms" => Some(r.e2e.0),
            _ => None,
        }
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.metric.split('_').next().unwrap_or(&self.metric);
        write!(f, "{short}:{}<={}ms", self.stat, self.threshold.0)
    }
}

impl std::str::FromStr for Slo {
    type Err = SloError;
    fn from_str(s: &str) -> Result<Slo, SloError> {
        parse_slo(s)
    }
}

/// Parses one SLO: `metric[:stat]=threshold` (also `metric_stat=...`), where metric is
/// `ttft`, `nttft`, `itl`, `tpot` or `e2e` (or a schema prefix such as `ttft_ms`), stat is
/// `p50` (default), `p90`, `p95`, `p99` or `mean`, and the threshold is a number with unit
/// `ms`, `s` or `us` (`ms` when none).
pub fn parse_slo(text: &str) -> Result<Slo, SloError> {
    let err = |reason: &str| SloError {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let (lhs, rhs) = text.split_once('=').ok_or_else(|| err("no '='"))?;
    let lhs = lhs.trim().to_ascii_lowercase();
    let (name, stat) = match lhs.split_once(':') {
        Some((n, s)) => (n.to_string(), s.to_string()),
        None => match lhs.rsplit_once('_') {
            Some((n, s)) if matches!(s, "p50" | "p90" | "p95" | "p99" | "mean") => {
                (n.to_string(), s.to_string())
            }
            _ => (lhs.clone(), "p50".to_string()),
        },
    };
    if !matches!(stat.as_str(), "p50" | "p90" | "p95" | "p99" | "mean") {
        return Err(err(&format!(
            "unknown statistic '{stat}': use p50, p90, p95, p99 or mean"
        )));
    }
    let metric = match name.as_str() {
        "ttft" | "ttft_ms" => "ttft_ms",
        "nttft" | "nttft_ms_per_token" => "nttft_ms_per_token",
        "itl" | "itl_ms" => "itl_ms",
        "tpot" | "tpot_ms" => "tpot_ms",
        "e2e" | "e2el" | "e2e_ms" => "e2e_ms",
        other => {
            return Err(err(&format!(
                "unknown metric '{other}': use ttft, nttft, itl, tpot or e2e"
            )));
        }
    };
    debug_assert!(LATENCY_METRICS.contains(&metric));
    let rhs = rhs.trim().to_ascii_lowercase();
    let (number, scale) = if let Some(n) = rhs.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = rhs.strip_suffix("us").or_else(|| rhs.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = rhs.strip_suffix('s') {
        (n, 1e3)
    } else {
        (rhs.as_str(), 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| err(&format!("'{number}' is not a number")))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(err("the threshold must be positive"));
    }
    Ok(Slo {
        metric: metric.to_string(),
        stat,
        threshold: Millis(value * scale),
    })
}

/// Parses a comma-separated list (`ttft=200ms,itl=50ms`); empty text gives no SLOs.
pub fn parse_slos(text: &str) -> Result<Vec<Slo>, SloError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_slo)
        .collect()
}

/// Whether a successful request meets every SLO (see the module doc).
pub fn request_is_good(slos: &[Slo], r: &RequestTimings) -> bool {
    r.failure.is_none()
        && slos
            .iter()
            .all(|s| s.request_value(r).is_none_or(|v| v <= s.threshold.0))
}

/// Whether a row meets every SLO at its statistic; `None` if no SLOs or a value is missing.
pub fn row_meets(slos: &[Slo], row: &Measurement) -> Option<bool> {
    if slos.is_empty() {
        return None;
    }
    slos.iter()
        .map(|s| s.met_by(row))
        .try_fold(true, |acc, m| m.map(|m| acc && m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::schema::Mode;

    #[test]
    fn parses_metrics_statistics_and_units() {
        let s = parse_slo("ttft=200ms").unwrap();
        assert_eq!(
            (s.column(), s.threshold),
            ("ttft_ms_p50".to_string(), Millis(200.0))
        );
        assert_eq!(parse_slo("e2e=2s").unwrap().threshold, Millis(2000.0));
        assert_eq!(parse_slo("itl:p90=50").unwrap().column(), "itl_ms_p90");
        assert_eq!(parse_slo("tpot_p99=20ms").unwrap().column(), "tpot_ms_p99");
        assert_eq!(
            parse_slo("nttft=1ms").unwrap().column(),
            "nttft_ms_per_token_p50"
        );
        assert_eq!(parse_slo("ttft=500us").unwrap().threshold, Millis(0.5));
        let all = parse_slos("ttft=200ms, itl=50ms").unwrap();
        assert_eq!(all.len(), 2);
        assert!(parse_slos("").unwrap().is_empty());
        for bad in [
            "ttft",
            "speed=1ms",
            "ttft:p42=1ms",
            "ttft=fast",
            "ttft=-1ms",
        ] {
            let e = parse_slo(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("ttft=200ms"), "{e}");
        }
    }

    #[test]
    fn checks_rows_and_requests() {
        let mut row = Measurement::new("m", "cpu", 1, "pilot", Mode::Closed);
        row.metrics.ttft.p50 = Some(Millis(150.0));
        let slos = parse_slos("ttft=200ms").unwrap();
        assert_eq!(row_meets(&slos, &row), Some(true));
        assert_eq!(
            row_meets(&parse_slos("ttft=100ms").unwrap(), &row),
            Some(false)
        );
        assert_eq!(row_meets(&parse_slos("itl=1ms").unwrap(), &row), None);
        let r = RequestTimings::from_token_times(
            10,
            &[Millis(100.0), Millis(130.0)],
            Millis(130.0),
            None,
        );
        assert!(request_is_good(
            &parse_slos("ttft=100ms,tpot=30ms,itl=30ms,nttft=10ms").unwrap(),
            &r
        ));
        assert!(!request_is_good(&parse_slos("tpot=29ms").unwrap(), &r));
    }
}

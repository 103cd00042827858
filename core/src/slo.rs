//! Latency service-level objectives: `ttft=200ms`, `itl:p90=50ms`, `e2e=2s`, `nttft=1ms`,
//! `tokens_per_s=20`. Every threshold carries its unit (`ms`, `s`, `us`).
//!
//! In core because characterize (goodput, `slo_met`) and recommend (feasibility) must read
//! `--slo` the same way and check it against the same metric definitions ([`Metric`]).
//!
//! An SLO names a latency [`Metric`], a [`Stat`] (`p50` unless written `metric:p90=...`, or
//! the caller's default) and a threshold. `tokens_per_s=X` is a per-user token rate, which
//! is the objective `tpot <= 1000/X ms`. An SLO is checked two ways:
//!
//! - **per level**: the row's statistic (`ttft_ms_p50`) is at most the threshold
//!   ([`Slo::met_by`]); this is what `recommend` uses on predicted rows.
//! - **per request**, for goodput (as `vllm bench serve --goodput` does): a request is *good*
//!   when each of its own values ([`Metric::of_request`]) is within every threshold. The
//!   statistic is irrelevant per request.

pub use crate::metrics::{Metric, Stat};
use crate::metrics::{RequestTimings, Summary};
use crate::schema::Measurement;
use crate::units::{LatencyError, Millis};
use crate::validate::shorten;
use std::fmt;

/// The spellings of a per-user token rate objective (`tokens_per_s=20`), which is a TPOT
/// objective in disguise: 20 tokens/s per user is a TPOT of 50 ms.
const TOKEN_RATE_NAMES: [&str; 3] = ["tokens_per_s", "tok_s", "tokens/s"];

/// One objective: `statistic(metric) <= threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub metric: Metric,
    pub stat: Stat,
    /// In milliseconds (milliseconds per input token for nTTFT).
    pub threshold: Millis,
}

/// Why an SLO string did not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    #[error("SLO '{text}': {reason} (write e.g. ttft=200ms, itl:p90=50ms, e2e=2s, nttft=1ms)")]
    Invalid { text: String, reason: String },
    #[error("SLO '{text}': '{rate}' is not a token rate (write e.g. tokens_per_s=20)")]
    TokenRate { text: String, rate: String },
    #[error("SLO '{text}': the token rate must be a positive number, e.g. tokens_per_s=20")]
    TokenRateNotPositive { text: String },
}

impl Slo {
    /// The measurement column this SLO checks, e.g. `ttft_ms_p50`.
    pub fn column(&self) -> String {
        format!("{}_{}", self.metric.column_prefix(), self.stat)
    }

    /// The checked statistic of a row's metrics; `None` when the row has no value for it.
    pub fn value_in(&self, metrics: &Summary) -> Option<f64> {
        self.metric.stat(metrics, self.stat)
    }

    /// Whether a row meets it; `None` when the row has no value for the column.
    pub fn met_by(&self, row: &Measurement) -> Option<bool> {
        self.value_in(&row.metrics).map(|v| v <= self.threshold.0)
    }

    /// Whether one successful request meets it; a metric undefined for the request (TPOT of
    /// a one-token request, nTTFT without input tokens) counts as met.
    pub fn met_by_request(&self, r: &RequestTimings) -> bool {
        self.metric
            .of_request(r)
            .is_none_or(|v| v <= self.threshold.0)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}<={}ms", self.metric, self.stat, self.threshold.0)
    }
}

impl std::str::FromStr for Slo {
    type Err = SloError;
    fn from_str(s: &str) -> Result<Slo, SloError> {
        parse_slo(s)
    }
}

/// Parses one SLO, at `p50` where it names no statistic; see [`parse_slo_at`].
pub fn parse_slo(text: &str) -> Result<Slo, SloError> {
    parse_slo_at(text, Stat::P50)
}

/// Parses one SLO: `metric[:stat]=threshold` (also `metric_stat=...`), where metric is
/// `ttft`, `nttft`, `itl`, `tpot` or `e2e` (or a schema prefix such as `ttft_ms`), stat is
/// `p50`, `p90`, `p95`, `p99` or `mean` (`default_stat` when none is written: `recommend
/// --percentile`), and the threshold is a number with unit `ms`, `s` or `us`. The unit is
/// required: `ttft=0.2` means 0.2 s to some and 0.2 ms to others, and guessing wrong is a
/// factor of 1000 in the answer. `tokens_per_s=20` (a rate, `tok/s` optional) is
/// `tpot <= 50ms`.
pub fn parse_slo_at(text: &str, default_stat: Stat) -> Result<Slo, SloError> {
    let err = |reason: String| SloError::Invalid {
        text: shorten(text),
        reason,
    };
    let Some((lhs, rhs)) = text.split_once('=') else {
        return vllm_goodput(text, default_stat).ok_or_else(|| {
            err("no '=' (or vLLM's goodput form KEY:MILLISECONDS, e.g. ttft:200)".into())
        });
    };
    let lhs = lhs.trim().to_ascii_lowercase();
    let (name, stat) = match lhs.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => match lhs.rsplit_once('_') {
            Some((n, s)) if s.parse::<Stat>().is_ok() => (n, Some(s)),
            _ => (lhs.as_str(), None),
        },
    };
    let stat = match stat {
        Some(s) => s.parse::<Stat>().map_err(|e| err(e.to_string()))?,
        None => default_stat,
    };
    if TOKEN_RATE_NAMES.contains(&name) {
        return token_rate_slo(text, rhs, stat);
    }
    let metric = name.parse::<Metric>().map_err(|e| err(e.to_string()))?;
    Ok(Slo {
        metric,
        stat,
        threshold: threshold(text, rhs)?,
    })
}

/// vLLM's `--goodput` form, `KEY:VALUE` with the value a bare number of milliseconds
/// (`ttft:200`, `tpot:50`, `e2el:2000`), so that a team's `vllm bench serve` objectives work
/// as typed. `None` when `text` is not of that form (`itl:p90` without a threshold is pilot's
/// form missing its `=`, and gets pilot's error). vLLM checks goodput per request, where the
/// statistic is irrelevant; the row check uses `default_stat`.
fn vllm_goodput(text: &str, default_stat: Stat) -> Option<Slo> {
    let (key, value) = text.split_once(':')?;
    let ms: f64 = value.trim().parse().ok()?;
    if !(ms.is_finite() && ms > 0.0) {
        return None;
    }
    let metric = key.trim().to_ascii_lowercase().parse::<Metric>().ok()?;
    Some(Slo {
        metric,
        stat: default_stat,
        threshold: Millis(ms),
    })
}

/// A latency threshold with its unit, in milliseconds ([`Millis`]' parser), with the error
/// worded for the whole objective.
fn threshold(text: &str, rhs: &str) -> Result<Millis, SloError> {
    rhs.parse::<Millis>().map_err(|e| SloError::Invalid {
        text: shorten(text),
        reason: match e {
            LatencyError::NoUnit(v) => unitless(text, v),
            LatencyError::NotPositive => "the threshold must be positive".into(),
            other => other.to_string(),
        },
    })
}

/// `tokens_per_s=X` per user: the TPOT objective `tpot <= 1000/X ms`.
fn token_rate_slo(text: &str, rhs: &str, stat: Stat) -> Result<Slo, SloError> {
    let rate: f64 = rhs
        .trim()
        .trim_end_matches("/s")
        .trim_end_matches("tok")
        .trim()
        .parse()
        .map_err(|_| SloError::TokenRate {
            text: shorten(text),
            rate: rhs.to_string(),
        })?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(SloError::TokenRateNotPositive {
            text: shorten(text),
        });
    }
    Ok(Slo {
        metric: Metric::Tpot,
        stat,
        threshold: Millis(1000.0 / rate),
    })
}

/// The message for a threshold without a unit: both readings, so the user picks. A small
/// number is more likely seconds, a large one milliseconds; the first suggestion follows that.
fn unitless(text: &str, v: f64) -> String {
    let short = |x: f64| {
        let t = format!("{x:.6}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let (ms, s) = if v < 10.0 { (v * 1e3, v) } else { (v, v / 1e3) };
    format!(
        "{} has no unit; write {}ms or {}s",
        shorten(text.trim()),
        short(ms),
        short(s)
    )
}

/// Parses a comma-separated list (`ttft=200ms,itl=50ms`); empty text gives no SLOs.
pub fn parse_slos(text: &str) -> Result<Vec<Slo>, SloError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_slo)
        .collect()
}

/// Whether a request succeeded and meets every SLO (see the module doc).
pub fn request_is_good(slos: &[Slo], r: &RequestTimings) -> bool {
    r.failure.is_none() && slos.iter().all(|s| s.met_by_request(r))
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
    use crate::load::Load;

    #[test]
    fn parses_metrics_statistics_and_units() {
        let s = parse_slo("ttft=200ms").unwrap();
        assert_eq!(
            (s.column(), s.threshold),
            ("ttft_ms_p50".to_string(), Millis(200.0))
        );
        assert_eq!(parse_slo("e2e=2s").unwrap().threshold, Millis(2000.0));
        assert_eq!(parse_slo("itl:p90=50ms").unwrap().column(), "itl_ms_p90");
        assert_eq!(parse_slo("tpot_p99=20ms").unwrap().column(), "tpot_ms_p99");
        assert_eq!(
            parse_slo("nttft=1ms").unwrap().column(),
            "nttft_ms_per_token_p50"
        );
        assert_eq!(parse_slo("E2EL=1s").unwrap().metric, Metric::E2e);
        assert_eq!(parse_slo("ttft=500us").unwrap().threshold, Millis(0.5));
        assert_eq!(
            parse_slo("itl:p90=50ms").unwrap().to_string(),
            "itl:p90<=50ms"
        );
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
        let e = parse_slo("speed=1ms").unwrap_err().to_string();
        assert!(
            e.contains("unknown metric 'speed': use ttft, nttft, itl, tpot or e2e"),
            "{e}"
        );
        let e = parse_slo("ttft:p42=1ms").unwrap_err().to_string();
        assert!(
            e.contains("unknown statistic 'p42': use p50, p90, p95, p99 or mean"),
            "{e}"
        );
    }

    /// A bare number is refused, not read as milliseconds: `ttft=0.2` meant 0.2 s.
    #[test]
    fn reads_vllms_goodput_form_in_milliseconds() {
        for (text, metric, ms) in [
            ("ttft:200", Metric::Ttft, 200.0),
            ("tpot:50", Metric::Tpot, 50.0),
            ("e2el:2000", Metric::E2e, 2000.0),
            ("ITL:12.5", Metric::Itl, 12.5),
        ] {
            let slo = parse_slo(text).unwrap();
            assert_eq!(
                (slo.metric, slo.stat, slo.threshold),
                (metric, Stat::P50, Millis(ms)),
                "{text}"
            );
        }
        // Not vLLM's form: pilot's error, which names both forms.
        for bad in ["ttft:p90", "ttft:-5", "ttft:0", "bogus:200", "ttft"] {
            let e = parse_slo(bad).unwrap_err().to_string();
            assert!(
                e.contains("ttft:200") && e.contains("ttft=200ms"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn thresholds_need_a_unit() {
        let e = parse_slo("ttft=0.2").unwrap_err().to_string();
        assert!(
            e.contains("ttft=0.2 has no unit; write 200ms or 0.2s"),
            "{e}"
        );
        let e = parse_slo("itl:p90=50").unwrap_err().to_string();
        assert!(e.contains("write 50ms or 0.05s"), "{e}");
        assert!(parse_slo("ttft=inf").is_err() && parse_slo("ttft=").is_err());
        assert_eq!(parse_slo("ttft=0.2s").unwrap().threshold, Millis(200.0));
    }

    /// The default statistic applies only where none is written; a token rate is a TPOT.
    #[test]
    fn default_statistics_and_token_rates() {
        assert_eq!(
            parse_slo_at("ttft=200ms", Stat::P90).unwrap().stat,
            Stat::P90
        );
        assert_eq!(
            parse_slo_at("ttft:p99=200ms", Stat::P90).unwrap().stat,
            Stat::P99
        );
        assert_eq!(
            parse_slo_at("ttft_mean=200ms", Stat::P90).unwrap().stat,
            Stat::Mean
        );
        let t = parse_slo("tokens_per_s=20").unwrap();
        assert_eq!(
            (t.metric, t.stat, t.threshold),
            (Metric::Tpot, Stat::P50, Millis(50.0))
        );
        let t = parse_slo_at("tok_s:p99=20tok/s", Stat::P90).unwrap();
        assert_eq!(
            (t.metric, t.stat, t.threshold),
            (Metric::Tpot, Stat::P99, Millis(50.0))
        );
        assert_eq!(
            parse_slo("tokens_per_s=fast").unwrap_err().to_string(),
            "SLO 'tokens_per_s=fast': 'fast' is not a token rate (write e.g. tokens_per_s=20)"
        );
        assert_eq!(
            parse_slo("tokens_per_s=0").unwrap_err().to_string(),
            "SLO 'tokens_per_s=0': the token rate must be a positive number, e.g. tokens_per_s=20"
        );
    }

    #[test]
    fn checks_rows_and_requests() {
        let mut row = Measurement::new("m", "cpu", 1, "pilot", Load::Users(1));
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

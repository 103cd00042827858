//! The one definition of each serving metric, and the aggregation of requests into them.
//!
//! Definitions follow `vllm bench serve` (and LLM-Pilot, which they agree with):
//!
//! - **TTFT** (time to first token): from sending the request to receiving the first
//!   generated token.
//! - **nTTFT**: TTFT divided by the request's input tokens (LLM-Pilot's normalisation, which
//!   removes most of the prompt-length dependence of prefill).
//! - **ITL** (inter-token latency): the gap between two consecutive generated tokens of one
//!   stream. ITLs are *pooled* over all successful requests of a run before percentiles are
//!   taken, as vLLM and LLM-Pilot do, so long requests weigh more.
//! - **TPOT** (time per output token): per request, `(E2E - TTFT) / (output_tokens - 1)`;
//!   percentiles are over requests (defined only for requests with at least two tokens).
//! - **E2E**: from sending the request to receiving its last token.
//! - **Output throughput**: output tokens of successful requests per second of the run;
//!   **total throughput** adds their input tokens; **request throughput** counts them.
//!
//! Percentiles use linear interpolation between order statistics (numpy's default), so our
//! medians reproduce LLM-Pilot's and vLLM's to the last digit.

use crate::units::{Millis, MsPerToken, RequestsPerSec, TokensPerSec};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A latency metric. This is the one list of their names: the short one users write in SLOs
/// and tables (`ttft`) and the schema's column prefix, which carries the unit (`ttft_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Ttft,
    Nttft,
    Itl,
    Tpot,
    E2e,
}

impl Metric {
    /// In the schema's column order.
    pub const ALL: [Metric; 5] = [
        Metric::Ttft,
        Metric::Nttft,
        Metric::Itl,
        Metric::Tpot,
        Metric::E2e,
    ];

    /// The short name: `ttft`, `nttft`, `itl`, `tpot`, `e2e`.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::Nttft => "nttft",
            Metric::Itl => "itl",
            Metric::Tpot => "tpot",
            Metric::E2e => "e2e",
        }
    }

    /// The schema's column prefix, with the unit: `ttft_ms`, `nttft_ms_per_token`, ...
    pub const fn column_prefix(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft_ms",
            Metric::Nttft => "nttft_ms_per_token",
            Metric::Itl => "itl_ms",
            Metric::Tpot => "tpot_ms",
            Metric::E2e => "e2e_ms",
        }
    }

    /// The metric whose column prefix is exactly `prefix`; short names are not columns.
    pub fn from_column_prefix(prefix: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.column_prefix() == prefix)
    }

    /// This metric for one request, in its unit: what goodput checks per request. `None`
    /// where it is undefined (TPOT of a one-token request, nTTFT without input tokens, ITL
    /// without a gap). A request's ITL is its mean gap, since it has many.
    pub fn of_request(self, r: &RequestTimings) -> Option<f64> {
        match self {
            Metric::Ttft => Some(r.ttft.0),
            Metric::Nttft => r.nttft().map(|x| x.0),
            Metric::Itl => r.mean_itl().map(|x| x.0),
            Metric::Tpot => r.tpot().map(|x| x.0),
            Metric::E2e => Some(r.e2e.0),
        }
    }

    /// A statistic of this metric in a summary, in the metric's unit.
    pub fn stat(self, m: &Summary, stat: Stat) -> Option<f64> {
        match self {
            Metric::Ttft => m.ttft.get(stat).map(|x| x.0),
            Metric::Nttft => m.nttft.get(stat).map(|x| x.0),
            Metric::Itl => m.itl.get(stat).map(|x| x.0),
            Metric::Tpot => m.tpot.get(stat).map(|x| x.0),
            Metric::E2e => m.e2e.get(stat).map(|x| x.0),
        }
    }

    /// Sets a statistic of this metric in a summary, `v` in the metric's unit.
    pub fn set_stat(self, m: &mut Summary, stat: Stat, v: Option<f64>) {
        match self {
            Metric::Ttft => m.ttft.set(stat, v.map(Millis)),
            Metric::Nttft => m.nttft.set(stat, v.map(MsPerToken)),
            Metric::Itl => m.itl.set(stat, v.map(Millis)),
            Metric::Tpot => m.tpot.set(stat, v.map(Millis)),
            Metric::E2e => m.e2e.set(stat, v.map(Millis)),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = UnknownName;
    /// The short name or the column prefix; `e2el` is vLLM's spelling of E2E.
    fn from_str(s: &str) -> Result<Metric, UnknownName> {
        Metric::ALL
            .into_iter()
            .find(|m| s == m.name() || s == m.column_prefix())
            .or((s == "e2el").then_some(Metric::E2e))
            .ok_or_else(|| UnknownName::new("metric", s, Metric::ALL.map(Metric::name)))
    }
}

/// A statistic every latency metric is reported at; its name is the column suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    Mean,
}

impl Stat {
    /// In the schema's column order.
    pub const ALL: [Stat; 5] = [Stat::P50, Stat::P90, Stat::P95, Stat::P99, Stat::Mean];

    /// The column suffix: `p50`, `p90`, `p95`, `p99`, `mean`.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Mean => "mean",
        }
    }

    /// The percentile (0..=100) this statistic is; `None` for the mean.
    pub const fn percentile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(50.0),
            Stat::P90 => Some(90.0),
            Stat::P95 => Some(95.0),
            Stat::P99 => Some(99.0),
            Stat::Mean => None,
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stat {
    type Err = UnknownName;
    /// The column suffix.
    fn from_str(s: &str) -> Result<Stat, UnknownName> {
        Stat::ALL
            .into_iter()
            .find(|x| s == x.name())
            .ok_or_else(|| UnknownName::new("statistic", s, Stat::ALL.map(Stat::name)))
    }
}

/// A name that is none of the accepted ones (of a metric, a statistic); the message lists
/// them, so the user need not look them up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown {what} '{name}': use {accepted}")]
pub struct UnknownName {
    /// `metric`, `statistic`.
    pub what: &'static str,
    pub name: String,
    /// The accepted names as `a, b or c`.
    pub accepted: String,
}

impl UnknownName {
    fn new(what: &'static str, name: &str, accepted: [&str; 5]) -> UnknownName {
        let (last, rest) = accepted.split_last().expect("five names");
        UnknownName {
            what,
            name: name.to_string(),
            accepted: format!("{} or {last}", rest.join(", ")),
        }
    }
}

/// Why a request failed: the distinction matters (out-of-memory means the setting is too
/// aggressive, a timeout means the server is saturated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The server ran out of (GPU) memory.
    OutOfMemory,
    /// The client or server gave up waiting.
    Timeout,
    /// The connection was refused or reset before a response began.
    Connection,
    /// The server answered with an HTTP error status.
    HttpStatus,
    /// The stream ended before the expected number of tokens arrived.
    StreamCut,
    /// The server sent something that is not valid SSE / JSON.
    Malformed,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The name stored in files.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::HttpStatus => "http_status",
            FailureKind::StreamCut => "stream_cut",
            FailureKind::Malformed => "malformed",
            FailureKind::Other => "other",
        }
    }

    /// Parses [`FailureKind::name`].
    pub fn from_name(s: &str) -> Option<FailureKind> {
        [
            FailureKind::OutOfMemory,
            FailureKind::Timeout,
            FailureKind::Connection,
            FailureKind::HttpStatus,
            FailureKind::StreamCut,
            FailureKind::Malformed,
            FailureKind::Other,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }

    /// Classifies a server's error text (TGI, vLLM and PyTorch spellings).
    pub fn classify(error_text: &str) -> FailureKind {
        let t = error_text.to_ascii_lowercase();
        // "CUDA out of memory", torch.OutOfMemoryError, CUDA_ERROR_OUT_OF_MEMORY, and a
        // container the kernel killed (Kubernetes' OOMKilled).
        if t.contains("out of memory")
            || t.contains("outofmemory")
            || t.contains("out_of_memory")
            || t.contains("oomkilled")
        {
            FailureKind::OutOfMemory
        } else if t.contains("deadline exceeded")
            || t.contains("timed out")
            || t.contains("timeout")
        {
            FailureKind::Timeout
        } else if t.contains("connection refused") || t.contains("connection reset") {
            FailureKind::Connection
        } else {
            FailureKind::Other
        }
    }
}

/// One request's timings, in the form every source can be reduced to.
///
/// `itls` are the gaps between consecutive output tokens (`output_tokens - 1` of them for a
/// complete stream).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTimings {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub ttft: Millis,
    pub itls: Vec<Millis>,
    pub e2e: Millis,
    /// `None` for a success.
    pub failure: Option<FailureKind>,
}

impl RequestTimings {
    /// From token arrival times measured from the moment the request was sent
    /// (`token_times[i]` = arrival of output token `i`).
    pub fn from_token_times(
        input_tokens: u64,
        token_times: &[Millis],
        e2e: Millis,
        failure: Option<FailureKind>,
    ) -> RequestTimings {
        let ttft = token_times.first().copied().unwrap_or(e2e);
        let itls = token_times
            .windows(2)
            .map(|w| Millis(w[1].0 - w[0].0))
            .collect();
        RequestTimings {
            input_tokens,
            output_tokens: token_times.len() as u64,
            ttft,
            itls,
            e2e,
            failure,
        }
    }

    /// TPOT of this request, if it produced at least two tokens.
    pub fn tpot(&self) -> Option<Millis> {
        (self.output_tokens >= 2)
            .then(|| Millis((self.e2e.0 - self.ttft.0) / (self.output_tokens - 1) as f64))
    }

    /// nTTFT of this request, if it had input tokens.
    pub fn nttft(&self) -> Option<MsPerToken> {
        (self.input_tokens > 0).then(|| MsPerToken(self.ttft.0 / self.input_tokens as f64))
    }

    /// The mean of this request's inter-token gaps, if it has any. Runs pool the gaps
    /// instead ([`summarize`]); one request's gaps are summarised by their mean, which
    /// equals its TPOT up to rounding.
    pub fn mean_itl(&self) -> Option<Millis> {
        (!self.itls.is_empty())
            .then(|| Millis(self.itls.iter().map(|m| m.0).sum::<f64>() / self.itls.len() as f64))
    }
}

/// Percentiles and mean of one metric. `None` where there was nothing to measure.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats<T> {
    pub p50: Option<T>,
    pub p90: Option<T>,
    pub p95: Option<T>,
    pub p99: Option<T>,
    pub mean: Option<T>,
}

impl<T: Copy> Stats<T> {
    /// No value yet (for a `T` without a `Default`).
    pub const fn empty() -> Stats<T> {
        Stats {
            p50: None,
            p90: None,
            p95: None,
            p99: None,
            mean: None,
        }
    }

    /// Computes the statistics of `values` (in `T`'s unit); sorts a copy.
    pub fn of(values: &[f64], wrap: fn(f64) -> T) -> Stats<T> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let mut out = Stats::empty();
        if v.is_empty() {
            return out;
        }
        v.sort_by(f64::total_cmp);
        for stat in Stat::ALL {
            let value = match stat.percentile() {
                Some(q) => percentile_sorted(&v, q),
                None => v.iter().sum::<f64>() / v.len() as f64,
            };
            out.set(stat, Some(wrap(value)));
        }
        out
    }

    /// One statistic.
    /// The same statistics in another unit, or moved (a shift, a ratio).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> Stats<U> {
        Stats {
            p50: self.p50.map(&f),
            p90: self.p90.map(&f),
            p95: self.p95.map(&f),
            p99: self.p99.map(&f),
            mean: self.mean.map(&f),
        }
    }

    pub fn get(&self, stat: Stat) -> Option<T> {
        match stat {
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P95 => self.p95,
            Stat::P99 => self.p99,
            Stat::Mean => self.mean,
        }
    }

    /// Sets one statistic.
    pub fn set(&mut self, stat: Stat, value: Option<T>) {
        match stat {
            Stat::P50 => self.p50 = value,
            Stat::P90 => self.p90 = value,
            Stat::P95 => self.p95 = value,
            Stat::P99 => self.p99 = value,
            Stat::Mean => self.mean = value,
        }
    }
}

/// The `q`-th percentile (0..=100) of sorted values, interpolating linearly between order
/// statistics (numpy's default `linear` method).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no values");
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The `q`-th percentile (0..=100) of unsorted values, as [`percentile_sorted`]; sorts
/// `values` in place. `None` for no values.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(percentile_sorted(values, q))
}

/// The population standard deviation (divided by n, not n − 1: numpy's default `ddof=0`,
/// which `vllm bench serve` uses for its `std_*_ms`, so pilot's equal vLLM's on the same
/// requests). `None` for no values.
pub fn std_dev(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    Some((values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt())
}

/// Everything measured at one operating point, computed from its requests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub ttft: Stats<Millis>,
    pub nttft: Stats<MsPerToken>,
    pub itl: Stats<Millis>,
    pub tpot: Stats<Millis>,
    pub e2e: Stats<Millis>,
    pub output_throughput: Option<TokensPerSec>,
    pub total_throughput: Option<TokensPerSec>,
    pub request_throughput: Option<RequestsPerSec>,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub requests_failed_oom: u64,
    /// Mean input / output tokens of the successful requests.
    pub input_tokens_mean: Option<f64>,
    pub output_tokens_mean: Option<f64>,
}

/// Aggregates the requests of one run of `duration` into a [`Summary`]. Latencies and token
/// counts come from successful requests only; failures are counted by kind.
pub fn summarize<'a>(
    requests: impl IntoIterator<Item = &'a RequestTimings>,
    duration: Duration,
) -> Summary {
    let mut ttft = Vec::new();
    let mut nttft = Vec::new();
    let mut itl = Vec::new();
    let mut tpot = Vec::new();
    let mut e2e = Vec::new();
    let (mut ok, mut failed, mut oom) = (0u64, 0u64, 0u64);
    let (mut tok_in, mut tok_out) = (0u64, 0u64);
    for r in requests {
        match r.failure {
            Some(kind) => {
                failed += 1;
                if kind == FailureKind::OutOfMemory {
                    oom += 1;
                }
                continue;
            }
            None => ok += 1,
        }
        tok_in += r.input_tokens;
        tok_out += r.output_tokens;
        ttft.push(r.ttft.0);
        nttft.extend(r.nttft().map(|x| x.0));
        itl.extend(r.itls.iter().map(|m| m.0));
        if let Some(t) = r.tpot() {
            tpot.push(t.0);
        }
        e2e.push(r.e2e.0);
    }
    let secs = duration.as_secs_f64();
    let rate = |x: f64| (secs > 0.0).then(|| x / secs);
    Summary {
        ttft: Stats::of(&ttft, Millis),
        nttft: Stats::of(&nttft, MsPerToken),
        itl: Stats::of(&itl, Millis),
        tpot: Stats::of(&tpot, Millis),
        e2e: Stats::of(&e2e, Millis),
        output_throughput: rate(tok_out as f64).map(TokensPerSec),
        total_throughput: rate((tok_in + tok_out) as f64).map(TokensPerSec),
        request_throughput: rate(ok as f64).map(RequestsPerSec),
        requests_ok: ok,
        requests_failed: failed,
        requests_failed_oom: oom,
        input_tokens_mean: (ok > 0).then(|| tok_in as f64 / ok as f64),
        output_tokens_mean: (ok > 0).then(|| tok_out as f64 / ok as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_dev_is_the_population_ones() {
        // numpy.std([1, 2, 3, 4]) (ddof=0); the sample one (ddof=1) would be 1.29.
        assert!((std_dev(&[1.0, 2.0, 3.0, 4.0]).unwrap() - 1.118_033_988_749_895).abs() < 1e-12);
        assert_eq!(std_dev(&[5.0]), Some(0.0));
        assert_eq!(std_dev(&[]), None);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 50.0), 2.5);
        assert_eq!(percentile_sorted(&v, 0.0), 1.0);
        assert_eq!(percentile_sorted(&v, 100.0), 4.0);
        // numpy.percentile([1,2,3,4], 90) == 3.7
        assert!((percentile_sorted(&v, 90.0) - 3.7).abs() < 1e-12);
    }

    #[test]
    fn summarize_pools_itls_and_skips_failures() {
        let a = RequestTimings::from_token_times(
            10,
            &[Millis(100.0), Millis(110.0), Millis(130.0)],
            Millis(130.0),
            None,
        );
        let b = RequestTimings::from_token_times(
            20,
            &[Millis(200.0), Millis(240.0)],
            Millis(240.0),
            None,
        );
        let failed = RequestTimings::from_token_times(
            5,
            &[Millis(1.0)],
            Millis(2.0),
            Some(FailureKind::OutOfMemory),
        );
        let s = summarize([&a, &b, &failed], Duration::from_secs(2));
        assert_eq!(
            (s.requests_ok, s.requests_failed, s.requests_failed_oom),
            (2, 1, 1)
        );
        // ITLs pooled: 10, 20, 40 -> median 20.
        assert_eq!(s.itl.p50, Some(Millis(20.0)));
        assert_eq!(s.ttft.p50, Some(Millis(150.0)));
        // nTTFT: 100/10 = 10, 200/20 = 10.
        assert_eq!(s.nttft.p50, Some(MsPerToken(10.0)));
        // TPOT: (130-100)/2 = 15, (240-200)/1 = 40.
        assert_eq!(s.tpot.mean, Some(Millis(27.5)));
        assert_eq!(s.output_throughput, Some(TokensPerSec(2.5)));
        assert_eq!(s.total_throughput, Some(TokensPerSec(17.5)));
        assert_eq!(s.request_throughput, Some(RequestsPerSec(1.0)));
    }

    #[test]
    fn empty_runs_have_no_statistics() {
        let s = summarize(std::iter::empty(), Duration::from_secs(1));
        assert_eq!(s.ttft.p50, None);
        assert_eq!(s.requests_ok, 0);
        assert_eq!(s.output_throughput, Some(TokensPerSec(0.0)));
    }

    #[test]
    fn failures_are_classified_from_server_text() {
        assert_eq!(
            FailureKind::classify(
                "Unexpected <class 'torch.cuda.OutOfMemoryError'>: CUDA out of memory"
            ),
            FailureKind::OutOfMemory
        );
        assert_eq!(
            FailureKind::classify("context deadline exceeded"),
            FailureKind::Timeout
        );
        assert_eq!(FailureKind::classify("boom"), FailureKind::Other);
        // CUDA's driver error name, and a container the kernel killed for memory.
        for t in [
            "cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY",
            "container engine: OOMKilled",
        ] {
            assert_eq!(FailureKind::classify(t), FailureKind::OutOfMemory, "{t}");
        }
        assert_eq!(
            FailureKind::classify("connection refused"),
            FailureKind::Connection
        );
        for k in [FailureKind::StreamCut, FailureKind::HttpStatus] {
            assert_eq!(FailureKind::from_name(k.name()), Some(k));
        }
    }
}

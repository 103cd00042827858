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
use std::time::Duration;

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
        if t.contains("out of memory") || t.contains("outofmemory") {
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

/// The percentiles every metric is reported at, with their column suffixes.
pub const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0)];

impl<T: Copy> Stats<T> {
    /// Computes the statistics of `values` (in `T`'s unit); sorts a copy.
    pub fn of(values: &[f64], wrap: fn(f64) -> T) -> Stats<T> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stats {
                p50: None,
                p90: None,
                p95: None,
                p99: None,
                mean: None,
            };
        }
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Stats {
            p50: Some(wrap(percentile_sorted(&v, 50.0))),
            p90: Some(wrap(percentile_sorted(&v, 90.0))),
            p95: Some(wrap(percentile_sorted(&v, 95.0))),
            p99: Some(wrap(percentile_sorted(&v, 99.0))),
            mean: Some(wrap(mean)),
        }
    }

    /// The statistic named by a column suffix (`p50`, `p90`, `p95`, `p99`, `mean`).
    pub fn get(&self, suffix: &str) -> Option<T> {
        match suffix {
            "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "mean" => self.mean,
            _ => None,
        }
    }

    /// Sets the statistic named by a column suffix; unknown suffixes are ignored.
    pub fn set(&mut self, suffix: &str, value: Option<T>) {
        match suffix {
            "p50" => self.p50 = value,
            "p90" => self.p90 = value,
            "p95" => self.p95 = value,
            "p99" => self.p99 = value,
            "mean" => self.mean = value,
            _ => {}
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
        if r.input_tokens > 0 {
            nttft.push(r.ttft.0 / r.input_tokens as f64);
        }
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
        for k in [FailureKind::StreamCut, FailureKind::HttpStatus] {
            assert_eq!(FailureKind::from_name(k.name()), Some(k));
        }
    }
}

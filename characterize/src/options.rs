//! Everything `pilot characterize` can be told ([`CharacterizeOptions`], [`TuneOptions`])
//! and the checks made before anything runs.
//!
//! The options are plain data at the bottom of the crate: the binary fills them from flags,
//! the sweep and the tuner read them, and neither needs the other to do so. A bad flag is
//! refused here, before the embedded engine starts or a request is sent (a typo in
//! `--endpoint` otherwise surfaces as a level of failed requests).

use crate::client::Api;
use crate::error::CharacterizeError;
use crate::workload::Workload;
use pilot_core::slo::Slo;
use pilot_core::units::RequestsPerSec;
use std::path::PathBuf;
use std::time::Duration;

/// The shortest default drain (see [`CharacterizeOptions::drain`]).
pub const MIN_DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Everything `pilot characterize` can be told. The CLI flag of each field is in its doc.
#[derive(Debug, Clone)]
pub struct CharacterizeOptions {
    /// `--endpoint` (also `--base-url`, `--url`): the server's OpenAI base URL
    /// (`http://127.0.0.1:8000/v1`, `https://...` for TLS) or its root (`http://host:8000`,
    /// as `vllm bench serve --base-url` takes it); see [`openai_base_url`]. `None` starts
    /// pilot's embedded engine on 127.0.0.1 and measures it.
    pub endpoint: Option<String>,
    /// `--model`: the served model name. With an endpoint, `None` takes the first model of
    /// `/v1/models`; without one, the embedded engine's model (a built-in name such as
    /// `tiny-llama`, or a path to a `config.json`), `tiny-llama` by default.
    pub model: Option<String>,
    /// `--api completions|chat`: the route measured (completions gives exact input lengths).
    pub api: Api,
    /// `--users 1,2,4`: closed-loop levels (concurrent users).
    pub users: Vec<u32>,
    /// `--rate 2,4,8`: open-loop levels (requests per second).
    pub rates: Vec<RequestsPerSec>,
    /// `--burstiness`: shape of the gamma inter-arrival times (1 = Poisson).
    pub burstiness: f64,
    /// `--duration 120s`: measurement window of each level.
    pub duration: Duration,
    /// `--num-prompts N`: a level's window also ends once N measured requests were sent
    /// (and then finished), whichever comes first; `None`: the window's length alone.
    pub num_prompts: Option<u64>,
    /// `--warmup 10s`: load before each level's window, excluded from its metrics.
    pub warmup: Duration,
    /// `--input-tokens N --output-tokens N`, or `--workload <file>` (kind by content/flag).
    pub workload: Workload,
    /// `--replay`: with an Azure trace, replay its arrivals by timestamp (one open-loop level)
    /// instead of the `users` / `rates` levels.
    pub replay: bool,
    /// `--seed`: prompts, lengths and arrivals are deterministic in it.
    pub seed: u64,
    /// `--slo ttft=200ms,itl=50ms`: objectives for goodput and `slo_met` (see [`pilot_core::slo`]).
    pub slos: Vec<Slo>,
    /// `--out`: parent of the run directories (see [`crate::run`]); once the run starts, its
    /// own run directory.
    pub out: PathBuf,
    /// `--append-to <dataset.csv|parquet>`: also append this run's rows to a dataset.
    pub append_to: Option<PathBuf>,
    /// `--resume`: continue the latest run under `--out` (or `--out` itself when it holds
    /// one), keeping the levels already in its `summary.csv`.
    pub resume: bool,
    /// `--overwrite`: no longer needed, since every run writes a new directory; accepted (with
    /// a note) so that old scripts still run.
    pub overwrite: bool,
    /// `--api-key-env`: environment variable holding the API key (sent as a bearer token).
    pub api_key_env: String,
    /// `--max-failures 0.1`: a level failing more than this fraction of its requests ends
    /// the sweep.
    pub max_failure_fraction: f64,
    /// `--timeout 600s`: longest one request may take.
    pub request_timeout: Duration,
    /// `--drain-timeout`: longest a level waits for its open requests after its window;
    /// `None` for the default of [`CharacterizeOptions::drain`].
    pub drain_timeout: Option<Duration>,
    /// `--no-exact-output` clears it: send `min_tokens` and `ignore_eos` (vLLM extensions).
    pub exact_output: bool,
    /// `--gpu`: GPU label of the rows (`cpu` for the embedded engine, else `unknown`).
    pub gpu: Option<String>,
    /// `--gpu-count`: GPUs behind the endpoint (1 by default).
    pub gpu_count: Option<u32>,
    /// `--engine-label`: engine label of the rows (`pilot` embedded, else `unknown`).
    pub engine_label: Option<String>,
    /// `--max-batch`: the embedded engine's most sequences per step (its default otherwise).
    pub engine_max_batch: Option<u32>,
    /// `--launch '<cmd with {max_batch}>' --tune max_batch=LO..HI`: tuning (see [`crate::tune`]).
    pub tune: Option<TuneOptions>,
    /// `--tokenizer tokenizer.json`: send text prompts of exactly the asked token count (for
    /// servers that take no token ids); see [`crate::tokenize`].
    pub tokenizer: Option<PathBuf>,
    /// `--tokenizer-fallback estimate`: a tokenizer that cannot be loaded is not an error:
    /// prompts go out as token ids, and real texts' lengths are word estimates (noted).
    pub tokenizer_fallback: bool,
    /// `--extra-body JSON`: merged into every request's body (see
    /// [`crate::client::parse_extra_body`]).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// `--header 'K: V'`: sent on every request; sensitive values never written (run.json
    /// shows them redacted).
    pub headers: Vec<(String, String)>,
}

impl Default for CharacterizeOptions {
    /// The quick start: the embedded engine on `tiny-llama`, three closed-loop levels of
    /// 15 s, about a minute on two cores.
    fn default() -> Self {
        CharacterizeOptions {
            endpoint: None,
            model: None,
            api: Api::Completions,
            users: vec![1, 4, 16],
            rates: Vec::new(),
            burstiness: 1.0,
            duration: Duration::from_secs(15),
            num_prompts: None,
            warmup: Duration::from_secs(3),
            workload: Workload::Fixed {
                input: 64,
                output: 32,
            },
            replay: false,
            seed: 0,
            slos: Vec::new(),
            out: PathBuf::from("pilot-characterize"),
            append_to: None,
            resume: false,
            overwrite: false,
            api_key_env: "OPENAI_API_KEY".to_string(),
            max_failure_fraction: 0.1,
            request_timeout: Duration::from_secs(600),
            drain_timeout: None,
            exact_output: true,
            gpu: None,
            gpu_count: None,
            engine_label: None,
            engine_max_batch: None,
            tune: None,
            tokenizer: None,
            tokenizer_fallback: false,
            extra_body: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }
}

impl CharacterizeOptions {
    /// How long a level waits for its open requests after the window: `--drain-timeout`,
    /// else the window's own length, at least [`MIN_DEFAULT_DRAIN`] (long requests of a slow
    /// but working server still finish) and at most `--timeout` (no request lives longer).
    pub fn drain(&self) -> Duration {
        self.drain_timeout.unwrap_or_else(|| {
            self.duration
                .max(MIN_DEFAULT_DRAIN)
                .min(self.request_timeout)
        })
    }
}

/// `--launch` / `--tune`.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    /// `--launch '<command with {max_batch}>'`: starts the server measured at `--endpoint`.
    /// `None` tunes the embedded engine's `max_batch` instead.
    pub launch: Option<String>,
    /// `--tune max_batch=LO..HI`: the lowest setting tried.
    pub lo: u32,
    /// The highest setting tried.
    pub hi: u32,
    /// `--health-timeout 600s`: how long a launched server may take to answer `/health`.
    pub health_timeout: Duration,
}

/// Parses `max_batch=LO..HI` (also `LO..=HI`, `LO-HI`).
pub fn parse_tune_range(text: &str) -> Result<(u32, u32), String> {
    let err = |why: &str| format!("--tune '{text}': {why} (write max_batch=8..256)");
    let (name, range) = text.split_once('=').ok_or_else(|| err("no '='"))?;
    if name.trim() != "max_batch" {
        return Err(err(&format!(
            "only max_batch can be tuned, not '{}'",
            name.trim()
        )));
    }
    let (lo, hi) = range
        .split_once("..=")
        .or_else(|| range.split_once(".."))
        .or_else(|| range.split_once('-'))
        .ok_or_else(|| err("no range"))?;
    let n = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| err(&format!("'{}' is not a whole number", s.trim())))
    };
    let (lo, hi) = (n(lo)?, n(hi)?);
    if lo == 0 || lo > hi {
        return Err(err("need 1 <= LO <= HI"));
    }
    Ok((lo, hi))
}

/// Refuses options that cannot run, before anything starts.
pub(crate) fn validate(o: &CharacterizeOptions) -> Result<(), CharacterizeError> {
    let bad = |m: String| Err(CharacterizeError::Options(m));
    if o.duration.is_zero() {
        return bad("--duration must be positive".into());
    }
    if o.num_prompts == Some(0) {
        return bad("--num-prompts must be at least 1".into());
    }
    if o.users.contains(&0) {
        return bad("--users: every level needs at least 1 user".into());
    }
    if let Some(r) = o.rates.iter().find(|r| !(r.0.is_finite() && r.0 > 0.0)) {
        return bad(format!("--rate: {} is not a positive rate", r.0));
    }
    if !(o.burstiness.is_finite() && o.burstiness > 0.0) {
        return bad(format!(
            "--burstiness must be positive (1 is Poisson), got {}",
            o.burstiness
        ));
    }
    if !(0.0..=1.0).contains(&o.max_failure_fraction) {
        return bad(format!(
            "--max-failures is a fraction from 0 to 1, got {}",
            o.max_failure_fraction
        ));
    }
    if o.replay && !matches!(o.workload, Workload::AzureTrace(_)) {
        return bad("--replay needs an Azure trace as --workload".into());
    }
    if matches!(
        o.workload,
        Workload::Dataset(
            crate::dataset::Dataset::ShareGpt { .. }
                | crate::dataset::Dataset::MultiTurn { file: Some(_), .. }
        )
    ) && o.tokenizer.is_none()
        && !o.tokenizer_fallback
    {
        return bad(
            "the dataset's prompts are real text, whose lengths need the model's tokenizer: give --tokenizer PATH|HUB_ID (a tokenizer.json, a directory holding one, or a Hugging Face model id), or --tokenizer-fallback estimate to estimate them from word counts".into(),
        );
    }
    if matches!(
        o.workload,
        Workload::Dataset(crate::dataset::Dataset::MultiTurn { .. })
    ) {
        if !o.rates.is_empty() || o.replay {
            return bad(
                "--dataset multi-turn runs closed-loop (each user one conversation, turn after turn): give --users, not --rate or --replay".into(),
            );
        }
        if o.api != crate::client::Api::Chat {
            return bad(
                "--dataset multi-turn sends conversations over the chat route: add --api chat"
                    .into(),
            );
        }
    }
    if o.request_timeout.is_zero() {
        return bad("--timeout must be positive".into());
    }
    if o.drain_timeout.is_some_and(|d| d.is_zero()) {
        return bad("--drain-timeout must be positive, e.g. 10s".into());
    }
    if o.resume && o.overwrite {
        return bad(
            "--resume continues the latest run in --out, --overwrite starts a new one: pick one (or neither: every run writes a new directory)".into(),
        );
    }
    if let Some(url) = &o.endpoint {
        check_endpoint(url).map_err(|why| {
            CharacterizeError::Options(format!(
                "--endpoint '{url}': {why}; give the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1"
            ))
        })?;
    }
    Ok(())
}

/// The OpenAI base URL of an `--endpoint` as typed: a server root (`http://host:8000`, how
/// vLLM's `--base-url` and most benchmark tools take it) gains `/v1`; a trailing slash is
/// dropped; any other path (`.../v1`, a gateway's `/openai/v1`) is kept. The one place the
/// spellings meet, so that the client, `/metrics` and `/health` all see the same URL.
pub fn openai_base_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(u) if u.path().trim_matches('/').is_empty() && u.query().is_none() => {
            format!("{trimmed}/v1")
        }
        _ => trimmed.to_string(),
    }
}

/// Why `url` cannot be an OpenAI base URL, before anything starts (a typo otherwise surfaces
/// as a level of failed requests).
fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is '{}', not http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_drain_is_the_window_between_10_s_and_the_request_timeout() {
        let mut o = CharacterizeOptions::default();
        for (window, timeout, drain) in [(5, 600, 10), (120, 600, 120), (900, 600, 600), (5, 3, 3)]
        {
            o.duration = Duration::from_secs(window);
            o.request_timeout = Duration::from_secs(timeout);
            assert_eq!(
                o.drain(),
                Duration::from_secs(drain),
                "{window} s, {timeout} s"
            );
        }
        o.drain_timeout = Some(Duration::from_secs(2));
        assert_eq!(o.drain(), Duration::from_secs(2));
    }

    #[test]
    fn endpoints_that_are_not_http_urls_are_refused_before_anything_starts() {
        for bad in [
            "not-a-url",
            "ftp://127.0.0.1:8000/v1",
            "http://",
            "127.0.0.1:8000/v1",
        ] {
            let opts = CharacterizeOptions {
                endpoint: Some(bad.into()),
                ..Default::default()
            };
            let e = validate(&opts).unwrap_err().to_string();
            assert!(
                e.contains("--endpoint")
                    && e.contains(bad)
                    && e.contains("http://127.0.0.1:8000/v1"),
                "{e}"
            );
        }
        for good in ["http://127.0.0.1:8000/v1", "https://api.example.com/v1/"] {
            let opts = CharacterizeOptions {
                endpoint: Some(good.into()),
                ..Default::default()
            };
            assert!(validate(&opts).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_server_root_gains_v1_and_a_trailing_slash_goes() {
        for (typed, base) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
            (
                "https://gw.example.com/openai/v1",
                "https://gw.example.com/openai/v1",
            ),
        ] {
            assert_eq!(openai_base_url(typed), base, "{typed}");
        }
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(parse_tune_range("max_batch=8..256"), Ok((8, 256)));
        assert_eq!(parse_tune_range("max_batch=1..=4"), Ok((1, 4)));
        assert_eq!(parse_tune_range("max_batch=2-3"), Ok((2, 3)));
        for bad in [
            "max_batch",
            "tp=1..2",
            "max_batch=4..1",
            "max_batch=a..b",
            "max_batch=0..3",
        ] {
            assert!(
                parse_tune_range(bad)
                    .unwrap_err()
                    .contains("max_batch=8..256"),
                "{bad}"
            );
        }
    }
}

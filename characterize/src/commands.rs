//! The clap-free entry point for the `pilot` binary: `pilot characterize` takes the values
//! that need checking as typed, and everything else already in [`CharacterizeOptions`]; it
//! runs the benchmark and returns the text to print. The binary only parses flags.

use crate::client::{parse_extra_body, parse_header};
use crate::dataset::{Dataset, ShareGptFile};
use crate::error::CharacterizeError;
use crate::options::{CharacterizeOptions, TuneOptions, parse_tune_range};
use crate::run::characterize;
use crate::tune::LaunchedServer;
use crate::workload::Workload;
use pilot_core::command::Output;
use pilot_core::slo::parse_slo;
use pilot_core::validate;
use std::path::PathBuf;
use std::time::Duration;

/// Measurement window and warm-up against a remote endpoint when none is given: long enough
/// for a production server's batch to reach its steady state (the embedded quick start keeps
/// [`CharacterizeOptions`]' shorter defaults).
pub const REMOTE_DURATION: Duration = Duration::from_secs(120);
pub const REMOTE_WARMUP: Duration = Duration::from_secs(10);

/// `pilot characterize`, as typed where a value needs checking.
pub struct CharacterizeRequest {
    /// Everything already typed: endpoint, model, output directory, labels, timeouts...
    pub options: CharacterizeOptions,
    /// `--duration` / `--warmup`; `None`: [`REMOTE_DURATION`] / [`REMOTE_WARMUP`] against an
    /// endpoint, the quick-start defaults of `options` for the embedded engine.
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    /// `--num-prompts`: see [`CharacterizeOptions::num_prompts`].
    pub num_prompts: Option<u64>,
    /// `--quiet`: no progress bars, and nothing to print but errors.
    pub quiet: bool,
    /// Closed-loop levels; with `rates` empty too, `options`' defaults are kept.
    pub users: Vec<u32>,
    /// Open-loop levels as typed (`2`, `4/s`).
    pub rates: Vec<String>,
    /// Input and output tokens of every request.
    pub lengths: Option<(u32, u32)>,
    /// A workload file (fmperf histogram, Azure trace, ShareGPT JSON) instead of `lengths`.
    pub workload: Option<PathBuf>,
    /// `--slo` values for goodput, pilot's form (`ttft=200ms`) or vLLM's (`ttft:200`).
    pub slos: Vec<String>,
    /// `--tune max_batch=LO..HI`, with the server's launch command and its health timeout.
    pub tune: Option<String>,
    /// `--launch CMD`: with `tune`, started for each trial; without, started once before the
    /// sweep (healthy at `--endpoint` within `health_timeout`) and stopped after it, whatever
    /// happened. Its output goes to `server.log` in the output directory.
    pub launch: Option<String>,
    pub health_timeout: Duration,
    /// `--dataset` and its flags.
    pub dataset: DatasetFlags,
    /// `--tokenizer PATH|HUB_ID` as typed (resolved to a file before the run).
    pub tokenizer: Option<String>,
    /// `--extra-body` as typed.
    pub extra_body: Option<String>,
    /// `--header` values as typed.
    pub headers: Vec<String>,
}

/// `--dataset KIND` and the flags of each kind, as typed (`None`: not given, the kind's
/// default as in `vllm bench serve`).
#[derive(Debug, Clone, Default)]
pub struct DatasetFlags {
    pub kind: Option<String>,
    pub path: Option<PathBuf>,
    pub random_input_len: Option<u32>,
    pub random_output_len: Option<u32>,
    pub random_range_ratio: Option<f64>,
    pub sharegpt_output_len: Option<u32>,
    pub prefix_len: Option<u32>,
    pub suffix_len: Option<u32>,
    pub num_prefixes: Option<u32>,
    pub output_len: Option<u32>,
    pub turns: Option<u32>,
}

impl DatasetFlags {
    /// The workload these flags ask for (`None` without `--dataset`): refuses flags of
    /// another kind, and a missing or needless `--dataset-path`.
    pub fn workload(&self) -> Result<Option<Workload>, String> {
        let Some(kind) = self.kind.as_deref() else {
            let stray = self
                .given()
                .into_iter()
                .chain(self.path.as_ref().map(|_| "--dataset-path"));
            if let Some(flag) = stray.into_iter().next() {
                return Err(format!(
                    "{flag} belongs to --dataset: add --dataset KIND (random, sharegpt, prefix, multi-turn or trace)"
                ));
            }
            return Ok(None);
        };
        let kind = kind.trim().to_ascii_lowercase().replace('_', "-");
        let (own, needs_path): (&[&str], Option<bool>) = match kind.as_str() {
            "random" => (
                &[
                    "--random-input-len",
                    "--random-output-len",
                    "--random-range-ratio",
                ],
                Some(false),
            ),
            "sharegpt" => (&["--sharegpt-output-len"], Some(true)),
            "prefix" | "prefix-repetition" => (
                &[
                    "--prefix-len",
                    "--suffix-len",
                    "--num-prefixes",
                    "--output-len",
                ],
                Some(false),
            ),
            "multi-turn" | "multiturn" => (
                &[
                    "--turns",
                    "--random-input-len",
                    "--random-output-len",
                    "--sharegpt-output-len",
                ],
                None,
            ),
            "trace" => (&[], Some(true)),
            other => {
                return Err(format!(
                    "--dataset '{other}': use random, sharegpt, prefix, multi-turn or trace"
                ));
            }
        };
        if let Some(flag) = self.given().into_iter().find(|f| !own.contains(f)) {
            return Err(format!(
                "{flag} does not apply to --dataset {kind} (its flags: {})",
                if own.is_empty() {
                    "--dataset-path".to_string()
                } else {
                    own.join(", ")
                }
            ));
        }
        match (needs_path, &self.path) {
            (Some(true), None) => {
                return Err(format!(
                    "--dataset {kind} reads a file: give --dataset-path FILE"
                ));
            }
            (Some(false), Some(p)) => {
                return Err(format!(
                    "--dataset {kind} makes its own prompts: drop --dataset-path {} (or use --dataset sharegpt or trace to read it)",
                    p.display()
                ));
            }
            _ => {}
        }
        let path = self.path.clone();
        Ok(Some(match kind.as_str() {
            "random" => Workload::Dataset(Dataset::Random {
                input: self.random_input_len.unwrap_or(1024),
                output: self.random_output_len.unwrap_or(128),
                range_ratio: self.random_range_ratio.unwrap_or(0.0),
            }),
            "sharegpt" => Workload::Dataset(Dataset::ShareGpt {
                file: ShareGptFile::new(path.expect("checked above")),
                output_len: self.sharegpt_output_len,
            }),
            "trace" => {
                Workload::detect(&path.expect("checked above")).map_err(|e| e.to_string())?
            }
            "multi-turn" | "multiturn" => {
                if path.is_some() && (self.turns.is_some() || self.random_input_len.is_some()) {
                    return Err("--dataset multi-turn: --turns and --random-input-len make synthetic conversations; with --dataset-path the file's conversations are used: give one or the other".into());
                }
                Workload::Dataset(Dataset::MultiTurn {
                    turns: self.turns.unwrap_or(5),
                    input: self.random_input_len.unwrap_or(256),
                    output: self
                        .random_output_len
                        .or(self.sharegpt_output_len)
                        .or(path.is_none().then_some(64)),
                    file: path.map(ShareGptFile::new),
                })
            }
            _ => Workload::Dataset(Dataset::Prefix {
                prefix: self.prefix_len.unwrap_or(256),
                suffix: self.suffix_len.unwrap_or(256),
                groups: self.num_prefixes.unwrap_or(10),
                output: self.output_len.unwrap_or(128),
            }),
        }))
    }

    /// The kind-specific flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--random-input-len", self.random_input_len.is_some()),
            ("--random-output-len", self.random_output_len.is_some()),
            ("--random-range-ratio", self.random_range_ratio.is_some()),
            ("--sharegpt-output-len", self.sharegpt_output_len.is_some()),
            ("--prefix-len", self.prefix_len.is_some()),
            ("--suffix-len", self.suffix_len.is_some()),
            ("--num-prefixes", self.num_prefixes.is_some()),
            ("--output-len", self.output_len.is_some()),
            ("--turns", self.turns.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, given)| given.then_some(f))
        .collect()
    }
}

/// `pilot characterize`: checks the values, runs the sweep (or the tuning), and returns the
/// table of levels, with where the files went and any notes on stderr. A run that measured
/// nothing, or was stopped by failures, returns its output with [`Output::failure`] set.
pub fn characterize_command(req: CharacterizeRequest) -> Result<Output, CharacterizeError> {
    let mut opts = req.options;
    let embedded = opts.endpoint.is_none();
    if !req.users.is_empty() || !req.rates.is_empty() {
        opts.users = req.users;
        opts.rates = req
            .rates
            .iter()
            .map(|r| validate::rate_text("--rate", r))
            .collect::<Result<_, _>>()?;
    }
    if !embedded {
        opts.duration = REMOTE_DURATION;
        opts.warmup = REMOTE_WARMUP;
    }
    opts.duration = req.duration.unwrap_or(opts.duration);
    opts.warmup = req.warmup.unwrap_or(opts.warmup);
    opts.num_prompts = req.num_prompts;
    if let Some((input, output)) = req.lengths {
        opts.workload = Workload::Fixed { input, output };
    }
    if let Some(w) = &req.workload {
        opts.workload = Workload::detect(w)?;
    }
    if let Some(w) = req.dataset.workload().map_err(CharacterizeError::Options)? {
        if req.workload.is_some() || req.lengths.is_some() {
            return Err(CharacterizeError::Options(format!(
                "--dataset {} and {} both say what to send: keep one (--workload FILE is --dataset trace --dataset-path FILE)",
                req.dataset.kind.as_deref().unwrap_or_default(),
                if req.workload.is_some() {
                    "--workload"
                } else {
                    "--input-tokens/--output-tokens"
                }
            )));
        }
        // Parsed here, before any server is contacted; the run uses the entries kept.
        if let Workload::Dataset(
            Dataset::ShareGpt { file, .. }
            | Dataset::MultiTurn {
                file: Some(file), ..
            },
        ) = &w
        {
            file.check()?;
        }
        opts.workload = w;
    }
    if let Some(body) = &req.extra_body {
        opts.extra_body = parse_extra_body(body).map_err(CharacterizeError::Options)?;
    }
    opts.headers = req
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<_, _>>()
        .map_err(CharacterizeError::Options)?;
    opts.slos = req
        .slos
        .iter()
        .map(|s| parse_slo(s))
        .collect::<Result<_, _>>()?;
    let mut launch_once = None;
    if let Some(range) = &req.tune {
        let (lo, hi) = parse_tune_range(range).map_err(CharacterizeError::Options)?;
        opts.tune = Some(TuneOptions {
            launch: req.launch,
            lo,
            hi,
            health_timeout: req.health_timeout,
        });
    } else if let Some(cmd) = req.launch {
        let endpoint = opts.endpoint.clone().ok_or_else(|| {
            CharacterizeError::Options(
                "--launch starts the server measured at --endpoint: give --endpoint http://127.0.0.1:PORT/v1 (where the launched server listens)".into(),
            )
        })?;
        launch_once = Some((cmd, endpoint));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CharacterizeError::Runtime)?;
    let mut early_notes = Vec::new();
    if let Some(spec) = &req.tokenizer {
        match runtime.block_on(crate::tokenize::resolve(spec)) {
            Ok(path) => opts.tokenizer = Some(path),
            Err(why) if opts.tokenizer_fallback => early_notes.push(format!(
                "{why}: continuing without a tokenizer (--tokenizer-fallback estimate): token-id prompts, estimated text lengths"
            )),
            Err(why) => {
                return Err(CharacterizeError::Options(format!(
                    "{why}; or add --tokenizer-fallback estimate to run with estimated lengths"
                )));
            }
        }
    }
    let server = match launch_once {
        Some((cmd, endpoint)) => {
            std::fs::create_dir_all(&opts.out).map_err(|source| CharacterizeError::Io {
                path: opts.out.clone(),
                source,
            })?;
            let log = opts.out.join("server.log");
            Some(runtime.block_on(LaunchedServer::start(
                &cmd,
                &endpoint,
                req.health_timeout,
                &log,
            ))?)
        }
        None => None,
    };
    let report = runtime.block_on(characterize(opts, !req.quiet));
    if let Some(server) = server {
        runtime.block_on(server.stop());
    }
    let report = report?;
    let mut notes = early_notes;
    notes.extend(report.notes.iter().cloned());
    if let Some(why) = &report.stopped_early {
        notes.push(format!("the sweep stopped early: {why}"));
    }
    let failure = report.failure.as_ref().map(|why| {
        format!(
            "{why}; what was measured is saved in {} and {}",
            report.summary_path.display(),
            report.requests_path.display()
        )
    });
    if req.quiet {
        // Errors only: a failed run still says why (and where its files are).
        return Ok(Output {
            failure,
            ..Output::default()
        });
    }
    Ok(Output {
        text: report.table(),
        notes,
        log: vec![
            format!("requests: {}", report.requests_path.display()),
            format!("summary:  {}", report.summary_path.display()),
            format!("run dir:  {}", report.run_dir.display()),
        ],
        // The table and the files first, so a failed run still shows and keeps what it
        // measured.
        failure,
    })
}

/// `pilot report RUN_DIR...`: writes the HTML report of the runs (to `out`, or
/// `report.html` in the first run's directory) and says where, with a note per incomplete run.
pub fn report_command(
    dirs: &[PathBuf],
    out: Option<&std::path::Path>,
) -> Result<Output, crate::html_report::ReportError> {
    let (path, runs) = crate::html_report::write_report(dirs, out)?;
    let notes = runs
        .iter()
        .filter(|r| !r.complete())
        .map(|r| {
            format!(
                "{} is an incomplete run (status: {}): the report shows what it measured",
                r.dir.display(),
                r.info
                    .as_ref()
                    .and_then(|i| i.status.as_deref())
                    .unwrap_or("no run.json")
            )
        })
        .collect();
    Ok(Output {
        text: format!("wrote {}", path.display()),
        notes,
        ..Output::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_flags_become_workloads_or_clear_errors() {
        let flags = |kind: &str| DatasetFlags {
            kind: Some(kind.into()),
            ..DatasetFlags::default()
        };
        assert_eq!(DatasetFlags::default().workload().unwrap(), None);
        assert_eq!(
            flags("random").workload().unwrap(),
            Some(Workload::Dataset(Dataset::Random {
                input: 1024,
                output: 128,
                range_ratio: 0.0
            }))
        );
        let trace = DatasetFlags {
            path: Some("/work/shared/data/workloads/azure_2023_conv.csv".into()),
            ..flags("trace")
        };
        if trace.path.as_ref().unwrap().exists() {
            assert!(matches!(
                trace.workload().unwrap(),
                Some(Workload::AzureTrace(_))
            ));
        }
        let e = DatasetFlags {
            prefix_len: Some(3),
            ..DatasetFlags::default()
        }
        .workload()
        .unwrap_err();
        assert!(e.contains("--prefix-len belongs to --dataset"), "{e}");
        let e = DatasetFlags {
            path: Some("x.json".into()),
            ..flags("prefix")
        }
        .workload()
        .unwrap_err();
        assert!(e.contains("drop --dataset-path x.json"), "{e}");
        let e = DatasetFlags {
            path: Some("x.json".into()),
            turns: Some(3),
            ..flags("multi-turn")
        }
        .workload()
        .unwrap_err();
        assert!(e.contains("one or the other"), "{e}");
        assert!(
            flags("sharegpt")
                .workload()
                .unwrap_err()
                .contains("--dataset-path FILE")
        );
    }
}

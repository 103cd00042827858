//! `pilot`: where to run an LLM. A thin clap front: it parses flags, calls one entry point per
//! command in the stage crates, and reports every error in one place (exit code 2).

mod catalog;
mod characterize;
mod dataset;
mod fleet;
mod output;
mod predict;
mod recommend;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pilot",
    version,
    about = "Tells you where to run an LLM: measure serving performance, predict it for LLMs and GPUs never measured, and recommend the cheapest GPU setup that meets latency SLOs.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Structured logs on stderr: -v for each level (info), -vv for every request (debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark an OpenAI-compatible LLM server (or pilot's embedded engine) under load.
    Characterize(Box<characterize::CharacterizeArgs>),
    /// Write one self-contained HTML report (plots, tables) of characterize runs, overlaid.
    Report(characterize::ReportArgs),
    /// Serve an LLM with pilot's embedded engine (OpenAI-compatible HTTP API).
    Serve(ServeArgs),
    /// Import public measurements, aggregate request tables, build shipped catalogs.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Train the latency/throughput predictor on measurement datasets.
    Train(predict::TrainArgs),
    /// Predict latency and throughput of scenarios.
    Predict(predict::PredictArgs),
    /// Recommend the cheapest GPU configuration that meets latency SLOs.
    Recommend(recommend::RecommendArgs),
    /// Evaluate the predictor or the recommender against measurements.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Correlation and importance of the factors that drive latency.
    Analyze(predict::AnalyzeArgs),
    /// Characterize a fleet: many LLMs x GPU profiles x engines, run here or as Kubernetes Jobs.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// List the GPUs, LLMs and prices pilot knows.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Print a shell completion script, e.g. `pilot completions bash > ~/.local/share/bash-completion/completions/pilot`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Leave-one-group-out accuracy of the predictor, beside the physics model and baselines.
    Predict(predict::EvalPredictArgs),
    /// LLM-Pilot's recommendation benchmark (success rate, overspend, S/O score).
    Recommend(recommend::EvalRecommendArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The LLM: a catalog name (`tiny-llama`, `small-llama`, `gpt2`, ...) or a path to config.json.
    #[arg(long, default_value = "tiny-llama")]
    model: String,
    /// A directory of safetensors with Hugging Face tensor names (default: seeded random weights).
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    /// Address to bind; the server has no authentication, so it stays on loopback unless told.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Most sequences batched in one step.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Most tokens in one step (prefill and decode together).
    #[arg(long, default_value_t = 2048)]
    max_batched_tokens: usize,
    /// KV-cache capacity in tokens (default: from a 1 GiB budget).
    #[arg(long)]
    kv_cache_tokens: Option<usize>,
    /// Compute dtype: f32, bf16 or f16 (where the backend supports it).
    #[arg(long, default_value = "f32", value_parser = pilot_engine::model::parse_compute_dtype)]
    dtype: pilot_core::units::Dtype,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let opts = pilot_engine::ServeOptions {
        engine: pilot_engine::EngineOptions {
            model: a.model,
            weights: a.weights,
            max_batch: a.max_batch,
            max_batched_tokens: a.max_batched_tokens,
            kv_cache_tokens: a.kv_cache_tokens,
            seed: a.seed,
            dtype: a.dtype,
            ..Default::default()
        },
        host: a.host,
        port: a.port,
    };
    Ok(pilot_engine::serve_blocking(opts)?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Characterize(a) => characterize::run(*a),
        Command::Report(a) => characterize::report(a),
        Command::Serve(a) => serve(a),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Train(a) => predict::train(a),
        Command::Predict(a) => predict::predict(a),
        Command::Recommend(a) => recommend::run(a),
        Command::Eval(EvalCommand::Predict(a)) => predict::eval(a),
        Command::Eval(EvalCommand::Recommend(a)) => recommend::eval(a),
        Command::Analyze(a) => predict::analyze(a),
        Command::Catalog(cmd) => catalog::run(cmd),
        Command::Fleet(cmd) => fleet::run(cmd),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "pilot", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// An error and its causes, one line each; a cause whose text the line before already
/// contains (errors that embed their source's message) is skipped, not printed twice.
fn error_text(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}\n");
    let mut previous = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        previous = text;
    }
    out
}

/// A closed pipe (`pilot catalog gpus | head`) is a normal end, not a failure, wherever in
/// the chain of causes it surfaces (a CSV writer wraps the io::Error it got).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `-v` / `-vv`: `tracing` events of pilot's crates on stderr (stdout stays the result);
/// without it, warnings only. Filtered by target, not by `RUST_LOG`: an env-filter would
/// change the regex features that the whole dependency graph shares.
fn init_logs(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let targets = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("pilot", level)
        .with_target("pilot_characterize", level);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(targets),
        )
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprint!("{}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// An error that embeds its source's message, as `#[error("...: {0}")]` ones do.
    #[derive(Debug)]
    struct Outer(Inner);

    #[derive(Debug)]
    struct Inner;

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }

    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner detail")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    impl std::error::Error for Inner {}

    /// A broken pipe is recognised below other errors too, and only a broken pipe.
    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_a_normal_end() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(pipe())));
        assert!(is_broken_pipe(
            &anyhow::Error::new(pipe()).context("writing the table")
        ));
        let other = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(!is_broken_pipe(&anyhow::Error::new(other).context("x")));
    }

    /// A broken pipe kept as the `#[source]` of one of pilot's own errors (a table written to
    /// a closed stdout) is found below it, and a normal error prints its cause.
    #[test]
    fn a_broken_pipe_inside_a_pilot_error_is_a_normal_end() {
        let write = |kind: std::io::ErrorKind| pilot_core::schema::SchemaError::Write {
            path: "out.csv".into(),
            source: std::io::Error::from(kind).into(),
        };
        let err = anyhow::Error::new(write(std::io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&err));
        let err = anyhow::Error::new(write(std::io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&err));
        let text = error_text(&err);
        assert!(
            text.starts_with("error: cannot write out.csv\n")
                && text.contains("caused by: permission denied"),
            "{text}"
        );
    }

    /// A cause already in the message above it is not repeated; a new one is printed.
    #[test]
    fn causes_are_not_repeated() {
        let text = error_text(&anyhow::Error::new(Outer(Inner)));
        assert_eq!(text.matches("inner detail").count(), 1, "{text}");
        let text = error_text(&anyhow::Error::new(Inner).context("reading x.csv"));
        assert!(
            text.contains("error: reading x.csv") && text.contains("caused by: inner detail"),
            "{text}"
        );
    }
}

//! `pilot fleet`: flags to [`pilot_fleet::commands`].

use crate::output::printed;
use clap::{Args, Subcommand, ValueEnum};
use pilot_fleet::commands::{self, Backend, RunRequest};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Print the plan's runs (LLM x GPU profile x engine), GPU-hours and dollars; run nothing.
    Plan(PlanArgs),
    /// Run the plan's runs not done yet (locally, or as Kubernetes Jobs); resumes a stopped fleet.
    Run(RunArgs),
    /// Gather every run's summary.csv and requests.parquet into one dataset for `pilot train`.
    Collect(CollectArgs),
    /// Upload a directory to object storage (what the bucket lacks or holds older).
    Push {
        /// The directory (or file) to upload.
        dir: PathBuf,
        /// s3://bucket/prefix (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        /// AWS_REGION; AWS_ENDPOINT for a store other than AWS).
        url: String,
    },
    /// Download from object storage into a directory (what it lacks or holds older).
    Pull {
        /// s3://bucket/prefix.
        url: String,
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct PlanArgs {
    /// The plan file (TOML; see examples/fleet.toml and examples/fleet-local.toml).
    plan: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Local,
    K8s,
}

#[derive(Args)]
pub struct RunArgs {
    plan: PathBuf,
    /// Where the runs go: this machine, or Kubernetes Jobs (no kubeconfig: local).
    #[arg(long, value_enum, default_value = "local")]
    backend: BackendArg,
    /// The results: a directory, or s3://bucket/prefix (staged in pilot-fleet/<name>, with
    /// credentials from the AWS_* variables), holding fleet-state.json and runs/<run>/
    /// (default: pilot-fleet/<name>).
    #[arg(long)]
    results: Option<PathBuf>,
    /// With --backend k8s: write the Jobs' manifests to --out instead of applying them.
    #[arg(long)]
    dry_run: bool,
    /// The manifests' directory, with --dry-run.
    #[arg(long, requires = "dry_run")]
    out: Option<PathBuf>,
    /// Attempts a failing run gets, over every `fleet run`, before it is left failed.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Kubernetes: time between two looks at the active Jobs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    poll: std::time::Duration,
}

#[derive(Args)]
pub struct CollectArgs {
    plan: PathBuf,
    /// The results `fleet run` wrote: a directory or s3://bucket/prefix (default:
    /// pilot-fleet/<name>).
    #[arg(long)]
    results: Option<PathBuf>,
    /// The dataset to write (.csv or .parquet); the requests go beside it as <stem>-requests.parquet.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: FleetCommand) -> anyhow::Result<()> {
    match cmd {
        FleetCommand::Plan(a) => printed(commands::plan_command(&a.plan)?),
        FleetCommand::Run(a) => printed(commands::run_command(RunRequest {
            plan: a.plan,
            backend: match a.backend {
                BackendArg::Local => Backend::Local,
                BackendArg::K8s => Backend::K8s,
            },
            results: a.results,
            dry_run: a.dry_run,
            out: a.out,
            max_attempts: a.max_attempts,
            poll: a.poll,
        })?),
        FleetCommand::Collect(a) => printed(commands::collect_command(&a.plan, a.results, &a.out)?),
        FleetCommand::Push { dir, url } => printed(commands::push_command(&dir, &url)?),
        FleetCommand::Pull { url, dir } => printed(commands::pull_command(&url, &dir)?),
    }
}

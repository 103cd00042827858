//! pilot-fleet: `pilot fleet`, a characterization campaign over many LLMs x GPU profiles x
//! engines, planned, run, resumed and collected into one dataset.
//!
//! - [`plan`]: the plan file (TOML), its checks and its expansion into runs, with their
//!   expected GPU-hours and dollars.
//! - [`state`]: `fleet-state.json`, every run's fate, written atomically; both backends keep
//!   it, so a second `fleet run` skips what is done.
//! - [`local`]: the local backend, one run after another through characterize's library.
//! - [`k8s`]: the Kubernetes backend's manifests: one Job per run, engine and pilot
//!   containers side by side.
//! - [`cluster`]: the Kubernetes backend's calls (kube-rs): create the Jobs, watch them, read
//!   their pods' logs and events, delete the unschedulable, record every fate.
//! - [`bucket`]: results in object storage (`--results s3://...`), mirrored to and from
//!   local directories with `object_store`.
//! - [`collect`]: every run's rows into one dataset in pilot's schema.
//! - [`commands`]: the clap-free entry points the binary calls.

pub mod bucket;
pub mod cluster;
pub mod collect;
pub mod commands;
pub mod error;
pub mod k8s;
pub mod local;
pub mod plan;
pub mod state;

pub use error::FleetError;

//! End-to-end tests of the real `pilot` binary, in one test binary: each module is one
//! command's tests, run against pilot's embedded engine (its real HTTP server) or the real
//! tool a command talks to. One binary rather than one per file, because each test binary
//! links the whole workspace (polars, burn, LightGBM, kube, object_store) and a debug link
//! of it costs hundreds of megabytes of disk and a minute of linking.

mod common;
mod serve;

mod characterize_compat;
mod characterize_datasets;
mod characterize_safety;
mod cli;
mod fleet;
mod fleet_bucket;
mod import_tools;
mod report;
mod validation;

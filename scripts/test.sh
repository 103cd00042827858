#!/usr/bin/env bash
# The test command: sets up (idempotently), then runs every crate's tests in debug.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --locked

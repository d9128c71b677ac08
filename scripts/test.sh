#!/usr/bin/env bash
# The whole test suite with all of its set-up, on a fresh Debian machine:
# installs what is missing (libmagic, the reference tools the tests compare
# against), then checks formatting and lints, builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# libmagic-dev: filemeta links libmagic. ssdeep, tlsh-tools, file: reference
# tools the tests compare our digests and types with. postgresql: the task
# store suite starts a private server from it (never the system's cluster).
ensure_packages libmagic-dev pkg-config ssdeep tlsh-tools file python3 findutils postgresql
ensure_rust

step "format"
cargo fmt --all -- --check
step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "test"
cargo test --workspace --locked

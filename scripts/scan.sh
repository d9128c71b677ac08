#!/usr/bin/env bash
# The main job on a fresh machine: build the release binary (installing
# libmagic if missing) and scan the given files or folders with the
# embedded default stores. Reports go to standard output as NDJSON unless
# other scan options are given, e.g. `scripts/scan.sh -o reports.ndjson DIR`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
ensure_packages libmagic-dev pkg-config
(cd "$root" && ensure_rust && cargo build --release --locked -p multiscanner >&2)
exec "$root/target/release/multiscanner" scan --json "$@"

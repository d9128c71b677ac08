#!/usr/bin/env bash
# Report-store benchmark: bulk index rate and search latency p50/p99 at
# N reports (default 100,000) on SQLite, Elasticsearch and OpenSearch, each
# beside a plain bulk load of the same documents into the same engine.
# Starts private nodes on loopback (1 GB heap each) and stops them.
#   bench/reports.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/services.sh
n=${1:-100000}
export SEARCH_HEAP=${SEARCH_HEAP:-1g}

ensure_packages libmagic-dev pkg-config openjdk-17-jre-headless unzip maven curl
fetch_engines
step "building the benchmark (release)"
cargo build --release --locked -p multiscanner-scheduler --example report_bench
work=$(mktemp -d)
trap 'stop_search_node; rm -rf "$work"' EXIT

out=$work/table.txt
target/release/examples/report_bench "$n" "sqlite=sqlite://$work/reports.db" | tee "$out"
for engine in elasticsearch opensearch; do
  step "starting $engine"
  start_search_node "$engine" "$work/$engine"
  target/release/examples/report_bench "$n" "$engine=$node_url?replicas=0" | tail -n 1 | tee -a "$out"
  stop_search_node
done
step "table"
cat "$out"

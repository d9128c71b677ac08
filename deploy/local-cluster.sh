#!/usr/bin/env bash
# A local cluster on loopback: a private PostgreSQL, two schedulers sharing
# its task queue (and one report file and sample directory, as a shared
# mount would), and N workers spread over the two schedulers, each failing
# over to the other one when its own goes away.
#
#   deploy/local-cluster.sh [WORKERS] [DIR]
#
# Prints the schedulers' addresses, then runs until Ctrl-C, which stops
# everything (workers first, so they hand in what they hold). DIR (default:
# a new temporary directory) keeps the database, stores and logs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
workers=${1:-2}
dir=${2:-$(mktemp -d -t multiscanner-cluster-XXXXXX)}
mkdir -p "$dir"
ensure_packages postgresql libmagic-dev pkg-config
bin=${MULTISCANNER_BIN:-$root/target/release/multiscanner}
if [[ ! -x $bin ]]; then
  (cd "$root" && ensure_rust && cargo build --release --locked -p multiscanner >&2)
fi

pids=()
stop() {
  trap - INT TERM EXIT
  step "stopping"
  # Workers first, then schedulers, then the database.
  for pid in "${pids[@]:2}" "${pids[@]:0:2}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  stop_private_pg
  echo "data and logs kept in $dir" >&2
}
trap stop INT TERM EXIT

start_private_pg "$dir"
db=$pg_url

addrs=()
for i in 1 2; do
  start_scheduler "$bin" "$dir/scheduler-$i.log" --task-store "$db" \
    --report-store "sqlite://$dir/reports.db" --blob-store "file://$dir/samples"
  pids+=("$sched_pid")
  addrs+=("$sched_addr")
done
for i in $(seq 1 "$workers"); do
  first=${addrs[$((i % 2))]} second=${addrs[$(((i + 1) % 2))]}
  "$bin" worker --scheduler "http://$first" --scheduler "http://$second" \
    > "$dir/worker-$i.log" 2>&1 &
  pids+=($!)
done
step "cluster up: PostgreSQL 127.0.0.1:$pg_port, schedulers ${addrs[*]}, $workers worker(s); logs in $dir; Ctrl-C stops"
wait

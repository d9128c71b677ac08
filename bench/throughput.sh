#!/usr/bin/env bash
# Sustained throughput and submit→Complete latency of small files over gRPC:
# a scheduler process and 1, 2 or 4 worker processes on this machine, with
# the embedded stores (SQLite) and with the task queue on PostgreSQL. Each
# file is distinct (no duplicate shortcut) and runs the default module set.
#
#   bench/throughput.sh [FILES] [SIZE]      (defaults: 3000 files of 4096 B)
#
# Prints a table. Latency is measured by the load generator from the start
# of a file's upload to the final status on its task watch, with IN_FLIGHT
# (default 64) files outstanding at any time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
files=${1:-3000} size=${2:-4096} in_flight=${IN_FLIGHT:-64}
ensure_packages libmagic-dev pkg-config postgresql
cd "$root"
ensure_rust
cargo build --release --locked -p multiscanner --example loadgen \
  -p multiscanner-worker --example filemeta >&2
bin="$root/target/release/multiscanner"
loadgen="$root/target/release/examples/loadgen"
pass="$root/target/release/examples/filemeta"

work=$(mktemp -d -t multiscanner-bench-XXXXXX)
pg_home=$(mktemp -d -t multiscanner-bench-pg-XXXXXX)
procs=()
cleanup() {
  for p in "${procs[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_private_pg
  rm -rf "$work" "$pg_home"
}
trap cleanup EXIT
start_private_pg "$pg_home"

# The issue's targets are for the filemeta module alone.
printf '[worker.modules]\nenabled = ["filemeta"]\n' > "$work/filemeta-only.toml"

rows=$(mktemp)
run() { # store workers
  local store=$1 workers=$2 d="$work/$1-$2" task_url
  mkdir -p "$d"
  case $store in
    sqlite) task_url="sqlite://$d/tasks.db" ;;
    postgres)
      local db="bench_$workers"
      psql -q -h 127.0.0.1 -p "$pg_port" -U multiscanner -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
      task_url="postgres://multiscanner@127.0.0.1:$pg_port/$db" ;;
  esac
  start_scheduler "$bin" "$d/scheduler.log" --task-store "$task_url" \
    --report-store "sqlite://$d/reports.db" --blob-store "file://$d/samples"
  procs=("$sched_pid")
  for i in $(seq 1 "$workers"); do
    "$bin" --config "$work/filemeta-only.toml" worker --scheduler "http://$sched_addr" \
      > "$d/worker-$i.log" 2>&1 &
    procs+=($!)
  done
  # Let the workers connect, and warm up.
  "$loadgen" --addr "http://$sched_addr" --files 100 --size "$size" --in-flight "$in_flight" > /dev/null
  step "$store, $workers worker(s): $files files of $size B"
  "$loadgen" --addr "http://$sched_addr" --files "$files" --size "$size" --in-flight "$in_flight" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], "%.0f" % r["files_per_s"], "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"], r["failed"])' "$store" "$workers" >> "$rows"
  for p in "${procs[@]:1}" "${procs[0]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  procs=()
}
# Reference: the filemeta pass alone, one process, on as many files of the
# same size, with no mesh around it.
mkdir -p "$work/files"
python3 - "$work/files" "$files" "$size" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(size))
PY
start=$(date +%s.%N)
find "$work/files" -type f -print0 | xargs -0 "$pass" > /dev/null
end=$(date +%s.%N)
reference=$(python3 -c "print('%.0f' % ($files / ($end - $start)))")

for store in sqlite postgres; do
  for w in 1 2 4; do run "$store" "$w"; done
done
echo
printf '%-10s %8s %10s %9s %9s %7s %14s\n' "task store" workers "files/s" "p50 ms" "p99 ms" failed "vs bare pass"
while read -r s w f p50 p99 failed; do
  ratio=$(python3 -c "print('%.2f' % ($f / $reference))")
  printf '%-10s %8s %10s %9s %9s %7s %14s\n' "$s" "$w" "$f" "$p50" "$p99" "$failed" "$ratio"
done < "$rows"
echo "bare filemeta pass, one process, same files: $reference files/s"
rm -f "$rows"
echo "(targets: >= 2000 files/s with SQLite, >= 500 files/s with PostgreSQL; $(nproc) cores)"

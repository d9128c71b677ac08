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

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_db_user=()
if [[ $(id -u) -eq 0 ]]; then
  # PostgreSQL refuses to run as root.
  chown postgres: "$dir"
  as_db_user=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
stop() {
  trap - INT TERM EXIT
  step "stopping"
  # Workers first, then schedulers, then the database.
  for pid in "${pids[@]:2}" "${pids[@]:0:2}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  [[ -n ${pg_pid:-} ]] && kill -TERM "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  echo "data and logs kept in $dir" >&2
}
trap stop INT TERM EXIT

if [[ ! -d $dir/pg ]]; then
  step "initialising PostgreSQL in $dir/pg"
  "${as_db_user[@]}" "$pg_bin/initdb" -A trust -U multiscanner -E UTF8 -D "$dir/pg" > "$dir/initdb.log"
fi
pg_port=$(free_port)
"${as_db_user[@]}" "$pg_bin/postgres" -D "$dir/pg" -p "$pg_port" -k "$dir" \
  -c listen_addresses=127.0.0.1 > "$dir/postgres.log" 2>&1 &
pg_pid=$!
until "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do sleep 0.2; done
db="postgres://multiscanner@127.0.0.1:$pg_port/postgres"

addrs=()
for i in 1 2; do
  log="$dir/scheduler-$i.log"
  "$bin" scheduler --grpc-addr 127.0.0.1:0 --task-store "$db" \
    --report-store "sqlite://$dir/reports.db" --blob-store "file://$dir/samples" > "$log" 2>&1 &
  pids+=($!)
  until grep -q "scheduler listening" "$log"; do
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  addrs+=("$(sed -n 's/.*scheduler listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)")
done
for i in $(seq 1 "$workers"); do
  first=${addrs[$((i % 2))]} second=${addrs[$(((i + 1) % 2))]}
  "$bin" worker --scheduler "http://$first" --scheduler "http://$second" \
    > "$dir/worker-$i.log" 2>&1 &
  pids+=($!)
done
step "cluster up: PostgreSQL 127.0.0.1:$pg_port, schedulers ${addrs[*]}, $workers worker(s); logs in $dir; Ctrl-C stops"
wait

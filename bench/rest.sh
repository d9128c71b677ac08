#!/usr/bin/env bash
# REST against gRPC: sustained files/s and submit→Complete latency of
# distinct small files submitted as multipart uploads to the REST gateway,
# beside the same load submitted over the scheduler's own gRPC API, on one
# `multiscanner all-in-one --http-addr` (embedded stores, the filemeta
# module) in the same invocation. Completion is seen on a gRPC task watch
# in both rows, so the difference is the gateway's.
#
#   bench/rest.sh [FILES] [SIZE]      (defaults: 2000 files of 4096 B)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
files=${1:-2000} size=${2:-4096} in_flight=${IN_FLIGHT:-64} workers=${WORKERS:-2}
ensure_packages libmagic-dev pkg-config
cd "$root"
ensure_rust
cargo build --release --locked -p multiscanner --bin multiscanner --example loadgen >&2
bin="$root/target/release/multiscanner"
loadgen="$root/target/release/examples/loadgen"

work=$(mktemp -d -t multiscanner-bench-XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

printf '[worker.modules]\nenabled = ["filemeta"]\n' > "$work/filemeta-only.toml"
"$bin" --config "$work/filemeta-only.toml" all-in-one --data-dir "$work/data" \
  --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --workers "$workers" > "$work/server.log" 2>&1 &
server=$!
http=$(listening_addr "$server" "$work/server.log" gateway)
grpc=$(listening_addr "$server" "$work/server.log" scheduler)

load() { # label [--rest URL]
  local label=$1; shift
  "$loadgen" --addr "http://$grpc" --files "$files" --size "$size" --in-flight "$in_flight" "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(sys.argv[1], "%.0f" % r["files_per_s"], "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"], r["failed"])' "$label"
}
# Warm up both paths (workers connected, connections open).
"$loadgen" --addr "http://$grpc" --files 100 --size "$size" > /dev/null
"$loadgen" --addr "http://$grpc" --files 100 --size "$size" --rest "http://$http" > /dev/null
step "$files files of $size B, $in_flight in flight, $workers workers, each path"
grpc_row=$(load grpc)
rest_row=$(load rest --rest "http://$http")
echo
printf '%-6s %10s %9s %9s %7s %12s\n' path "files/s" "p50 ms" "p99 ms" failed "vs gRPC"
reference=$(cut -d' ' -f2 <<<"$grpc_row")
for row in "$grpc_row" "$rest_row"; do
  read -r p f p50 p99 failed <<<"$row"
  ratio=$(python3 -c "print('%.2f' % ($f / $reference))")
  printf '%-6s %10s %9s %9s %7s %12s\n' "$p" "$f" "$p50" "$p99" "$failed" "$ratio"
done
echo "(all-in-one, embedded stores, filemeta only; $(nproc) cores)"

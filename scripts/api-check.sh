#!/usr/bin/env bash
# Property-based check of the REST gateway against its own OpenAPI
# document: starts `multiscanner all-in-one --http-addr` on a free loopback
# port with a scratch data directory, checks /api/openapi.json with
# openapi-spec-validator, runs schemathesis (both from the venv given as $1)
# against it, and stops the server. Fails when the document is not valid
# OpenAPI, or any answer is a 5xx, or its status, content type or body is
# not what the document says.
#
# scripts/api-check.sh VENV [MULTISCANNER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
venv=$(cd "$1" && pwd)
bin=${2:-target/debug/multiscanner}
examples=${API_CHECK_EXAMPLES:-100}

work=$(mktemp -d)
server=
stop() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap stop EXIT

# Port 0 picks free ports; the bound address is read from the log.
RUST_LOG=info "$bin" all-in-one --data-dir "$work/data" --grpc-addr 127.0.0.1:0 \
  --http-addr 127.0.0.1:0 --workers 1 >"$work/server.log" 2>&1 &
server=$!
addr=$(listening_addr "$server" "$work/server.log" gateway)

# The document itself must be valid OpenAPI (an independent validator).
curl -fsS "http://$addr/api/openapi.json" -o "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# A sample in the store, so that routes taking a task id have one to find.
curl -fsS -F file=@README.md "http://$addr/api/v2/tasks" >/dev/null

# Run from the scratch directory: schemathesis keeps a cache where it runs.
status=0
cd "$work"
"$venv/bin/st" run "http://$addr/api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --generation-deterministic --no-color \
  --request-timeout 30 || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (last 50 lines)" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Starts one real service for the tests and prints, on one line, how to
# reach it; the caller stops it (its PID is the first word). Used by the
# Rust test harness (scheduler/src/testing.rs).
#
#   service.sh search KIND DIR   -> PID URL          (KIND: elasticsearch|opensearch;
#                                                     SEARCH_PORT=N to reuse a port)
#   service.sh s3 DIR BUCKET     -> PID URL ACCESS_KEY SECRET_KEY REGION
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
# shellcheck source=scripts/services.sh
source "$here/services.sh"

case ${1:-} in
  search)
    start_search_node "$2" "$3"
    echo "$node_pid $node_url";;
  s3)
    start_s3_server "$2"
    create_bucket "$3"
    echo "$s3_pid $s3_url $s3_access_key $s3_secret_key $s3_region";;
  *) echo "usage: $0 search KIND DIR | s3 DIR BUCKET" >&2; exit 2;;
esac

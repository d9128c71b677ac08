#!/usr/bin/env bash
# The whole test suite with all of its set-up, on a fresh Debian machine:
# installs what is missing (libmagic, the reference tools the tests compare
# against, PostgreSQL), fetches the search engines and builds the S3 server
# once into ~/.cache/multiscanner, then checks formatting and lints, builds
# and runs every test. The tests start (and stop) their own private servers
# on free loopback ports; nothing listens beyond loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/services.sh

# libmagic-dev: filemeta links libmagic. ssdeep, tlsh-tools, file: reference
# tools the tests compare our digests and types with; binutils: GNU strings,
# the reference of the strings module; zip, p7zip-full, xz-utils, bzip2: the
# archives the archive module's tests unpack are made with them;
# clamav-testfiles: real PE files (plain, packed, installers); yara: libyara's
# command, the reference of the yara module; libimage-exiftool-perl: the
# exiftool module runs it. clamav-daemon, clamav: the clamav module's test
# starts a private clamd and compares it with clamscan. llvm-14, lld-14:
# the macho module's test builds Mach-O files and reads them back with
# LLVM's tools. postgresql: the task
# store suite starts a private server from it (never the system's cluster).
# openjdk-17-jre-headless: Elasticsearch 8 runs on it. unzip, maven, curl:
# fetching the engines and talking to them. The S3 server (MinIO) is built
# with the machine's Go (1.24 or later) from the Go module proxy.
ensure_packages libmagic-dev pkg-config ssdeep tlsh-tools file binutils zip p7zip-full xz-utils bzip2 \
  clamav-testfiles clamav-daemon clamav llvm-14 lld-14 yara libimage-exiftool-perl python3 python3-venv findutils postgresql \
  openjdk-17-jre-headless unzip maven curl
ensure_rust

# pefile, pdfid and oletools (PyPI), the references the pe, pdf and office
# modules are compared with, in a venv of its own in the cache; and the
# Office documents of oletools' source distribution (PyPI too) as inputs.
step "reference Python libraries (cached in $(services_cache)/venv)"
venv=$(services_cache)/venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import pefile, pdfid, oletools' 2>/dev/null ||
  "$venv/bin/pip" install -q pefile==2024.8.26 pdfid==1.1.3 oletools==0.60.2
export MULTISCANNER_PYTHON=$venv/bin/python
# schemathesis and openapi-spec-validator (PyPI): check the live REST
# gateway against its OpenAPI document, and the document itself, after the
# tests.
"$venv/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null ||
  "$venv/bin/pip" install -q schemathesis==4.32.5 openapi-spec-validator==0.9.0
office=$(services_cache)/office-samples
if [[ ! -d $office/test-data ]]; then
  rm -rf "$office.partial" && mkdir -p "$office.partial"
  "$venv/bin/pip" download -q --no-binary :all: --no-deps -d "$office.partial" oletools==0.60.2
  unzip -q "$office.partial"/oletools-0.60.2.zip 'oletools-0.60.2/tests/test-data/*' -d "$office.partial"
  mkdir -p "$office" && mv "$office.partial"/oletools-0.60.2/tests/test-data "$office/test-data"
  rm -rf "$office.partial"
fi
export MULTISCANNER_OFFICE_SAMPLES=$office/test-data

step "search engines and S3 server (cached in $(services_cache))"
fetch_engines
ensure_s3_server
[[ -x $OPENSEARCH_JAVA_HOME/bin/java ]] || {
  echo "OpenSearch $OPENSEARCH_VERSION needs Java 21 or later at $OPENSEARCH_JAVA_HOME" \
    "(set OPENSEARCH_JAVA_HOME)" >&2
  exit 1
}

# Whatever happens, no test server outlives the run.
cleanup() {
  pkill -f "$(services_cache)/engines/" 2>/dev/null || true
  pkill -f "$(services_cache)/bin/minio" 2>/dev/null || true
}
trap cleanup EXIT

step "format"
cargo fmt --all -- --check
step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "test"
cargo test --workspace --locked
step "REST gateway against its OpenAPI document (schemathesis)"
bash scripts/api-check.sh "$venv" target/debug/multiscanner

#!/usr/bin/env bash
# Per-module speed (files/s, MB/s) on one corpus — programs of this machine
# and Debian's clamav-testfiles — beside Debian's yara and exiftool run
# directly on the same files in the same invocation. The corpus and a rule
# set are made once under ~/.cache/multiscanner/bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
ensure_packages libmagic-dev pkg-config yara libimage-exiftool-perl clamav-testfiles
cd "$root"
ensure_rust
cargo build --release --locked -p multiscanner-worker --example module_bench >&2

cache="${MULTISCANNER_CACHE:-$HOME/.cache/multiscanner}/bench"
corpus="$cache/modules-corpus"
rules="$cache/modules-rules.yar"
if [[ ! -f "$corpus.done" ]]; then
  step "making the corpus (400 programs of /usr/bin, clamav-testfiles)"
  rm -rf "$corpus"; mkdir -p "$corpus/bin" "$corpus/testfiles"
  find /usr/bin -maxdepth 1 -type f -size -4M | sort | head -n 400 | xargs -I{} cp {} "$corpus/bin/"
  cp /usr/share/clamav-testfiles/* "$corpus/testfiles/"
  touch "$corpus.done"
fi
if [[ ! -f "$rules" ]]; then
  python3 - "$rules" <<'PY'
import sys
words = ["GLIBC", "libc.so", "kernel32", "LoadLibrary", "GetProcAddress", "http://",
         "password", "/bin/sh", "UPX!", "This program", "VirtualAlloc", "CreateProcess",
         "socket", "connect", "malloc", "printf", "usage:", "--help", "version", "error"]
with open(sys.argv[1], "w") as f:
    for i in range(100):
        w = words[i % len(words)]
        f.write('rule r%d { strings: $a = "%s%s" nocase $h = { %02x %02x ?? %02x } '
                'condition: $a or #h > 3 }\n' % (i, w, "" if i < 20 else str(i), i, 255 - i, i ^ 0x5a))
PY
fi
"$root/target/release/examples/module_bench" "$corpus" "$rules"

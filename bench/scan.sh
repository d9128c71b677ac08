#!/usr/bin/env bash
# Scan throughput beside reference tools, measured in one invocation on the
# same inputs: 10,000 small files (files/s) and one 1 GB file (MB/s).
# Inputs are generated once into ~/.cache/multiscanner/bench.
# Prints a table; the ratio column is our time over the slower reference
# tool's time (the target for the filemeta pass on 1 GB is <= 1.3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
ensure_packages libmagic-dev pkg-config ssdeep
cd "$root"
ensure_rust
cargo build --release --locked -p multiscanner -p multiscanner-worker --example filemeta >&2
bin="$root/target/release/multiscanner"
pass="$root/target/release/examples/filemeta"

cache="${MULTISCANNER_CACHE:-$HOME/.cache/multiscanner}/bench"
small="$cache/small-10000"
big="$cache/big-1g.bin"
mkdir -p "$cache"
if [[ ! -f "$small.done" ]]; then
  step "generating 10,000 small files"
  rm -rf "$small"; mkdir -p "$small"
  python3 - "$small" <<'PY'
import os, random, sys
random.seed(7)
d = sys.argv[1]
for i in range(10000):
    sub = os.path.join(d, "%02d" % (i % 100))
    os.makedirs(sub, exist_ok=True)
    n = random.randint(256, 8192)
    with open(os.path.join(sub, "f%05d.bin" % i), "wb") as f:
        f.write(os.urandom(n // 2) + bytes(random.choice(b"abcdef \n") for _ in range(n - n // 2)))
PY
  touch "$small.done"
fi
if [[ ! -f "$big" ]]; then
  step "generating a 1 GB file"
  head -c $((1024 * 1024 * 1024)) /dev/urandom > "$big.partial" && mv "$big.partial" "$big"
fi
small_bytes=$(du -sb "$small" | cut -f1)
big_bytes=$(stat -c %s "$big")

# Warm the page cache so every contender reads from memory.
cat "$big" > /dev/null; find "$small" -type f -exec cat {} + > /dev/null

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
time_it() { # label bytes files command...
  local label=$1 bytes=$2 files=$3; shift 3
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  echo "$label|$t0|$t1|$bytes|$files" >> "$rows"
}

step "10,000 small files"
time_it "sha256sum (10k files)" "$small_bytes" 10000 bash -c "find '$small' -type f -print0 | xargs -0 sha256sum"
time_it "ssdeep -r (10k files)" "$small_bytes" 10000 ssdeep -r "$small"
time_it "multiscanner scan (10k files)" "$small_bytes" 10000 "$bin" scan --json -o /dev/null "$small"
step "one 1 GB file"
time_it "sha256sum (1 GB)" "$big_bytes" 1 sha256sum "$big"
time_it "ssdeep (1 GB)" "$big_bytes" 1 ssdeep "$big"
time_it "filemeta pass alone (1 GB)" "$big_bytes" 1 "$pass" "$big"
time_it "multiscanner scan (1 GB)" "$big_bytes" 1 "$bin" scan --json -o /dev/null "$big"

python3 - "$rows" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    label, t0, t1, nbytes, files = line.strip().split("|")
    rows.append((label, float(t1) - float(t0), int(nbytes), int(files)))
ref = {}
for label, secs, _, _ in rows:
    if label.startswith(("sha256sum", "ssdeep")):
        kind = "10k" if "10k" in label else "1g"
        ref[kind] = max(ref.get(kind, 0.0), secs)
print()
print(f"{'run':<32} {'seconds':>8} {'files/s':>9} {'MB/s':>8} {'vs slower ref':>14}")
for label, secs, nbytes, files in rows:
    r = ref["10k" if "10k" in label else "1g"]
    print(f"{label:<32} {secs:>8.2f} {files / secs:>9.1f} {nbytes / secs / 1e6:>8.1f} {secs / r:>13.2f}x")
PY

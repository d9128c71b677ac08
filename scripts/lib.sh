# Shared helpers for the project's scripts (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root to run: $*" >&2; return 1
  fi
}

# Installs the Debian packages given that are not installed yet.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  step "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The toolchain pinned in rust-toolchain.toml, with rustfmt and clippy.
ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; return 1; }
  rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" --profile minimal -c rustfmt -c clippy
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts a private PostgreSQL with its data in DIR/pg (created on first use),
# on a free loopback port, trusting local connections of user multiscanner.
# Sets pg_pid, pg_port, pg_url; stop it with stop_private_pg.
start_private_pg() {
  local dir=$1 pg_bin
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local as_db_user=()
  if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root.
    chown postgres: "$dir"
    as_db_user=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  if [[ ! -d $dir/pg ]]; then
    step "initialising PostgreSQL in $dir/pg"
    "${as_db_user[@]}" "$pg_bin/initdb" -A trust -U multiscanner -E UTF8 -D "$dir/pg" > "$dir/initdb.log"
  fi
  pg_port=$(free_port)
  "${as_db_user[@]}" "$pg_bin/postgres" -D "$dir/pg" -p "$pg_port" -k "$dir" \
    -c listen_addresses=127.0.0.1 > "$dir/postgres.log" 2>&1 &
  pg_pid=$!
  until "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do
    kill -0 "$pg_pid" 2>/dev/null || { cat "$dir/postgres.log" >&2; return 1; }
    sleep 0.2
  done
  pg_url="postgres://multiscanner@127.0.0.1:$pg_port/postgres"
}

stop_private_pg() {
  [[ -n ${pg_pid:-} ]] || return 0
  kill -TERM "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  pg_pid=
}

# Waits until process PID logs "WHAT listening addr=..." to LOG and prints
# that address; fails (showing the log) if the process dies first.
listening_addr() {
  local pid=$1 log=$2 what=$3
  until grep -q "$what listening" "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  sed -n "s/.*$what listening addr=\([0-9.:]*\).*/\1/p" "$log" | head -n 1
}

# Starts `multiscanner scheduler` with ARGS, logging to LOG; waits until it
# listens and sets sched_pid and sched_addr.
start_scheduler() {
  local bin=$1 log=$2; shift 2
  "$bin" scheduler --grpc-addr 127.0.0.1:0 "$@" > "$log" 2>&1 &
  sched_pid=$!
  sched_addr=$(listening_addr "$sched_pid" "$log" scheduler)
}

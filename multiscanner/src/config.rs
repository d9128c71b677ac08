//! The configuration file and its layers: defaults, then the TOML file, then
//! `MULTISCANNER_*` environment variables, then the command line.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use multiscanner_gateway::GatewayConfig;
use multiscanner_proto::auth::AuthConfig;
use multiscanner_scheduler::SchedulerConfig;
use multiscanner_worker::WorkerConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where embedded stores keep their files; empty means
    /// `$XDG_DATA_HOME/multiscanner` (or `~/.local/share/multiscanner`).
    pub data_dir: PathBuf,
    pub scheduler: SchedulerConfig,
    pub worker: WorkerConfig,
    pub gateway: GatewayConfig,
    pub auth: AuthConfig,
}

/// The keys at the top of the config file.
const TOP_LEVEL_KEYS: [&str; 5] = ["data_dir", "scheduler", "worker", "gateway", "auth"];

/// The default configuration, commented; `multiscanner config init` prints
/// it and a test checks it says the same as [`Config::default`].
pub const DEFAULT_TOML: &str = r#"# MultiScanner configuration.
#
# Every key can also be set from the environment: MULTISCANNER_ followed by
# the section and key joined with a double underscore, in upper case, e.g.
#   MULTISCANNER_SCHEDULER__GRPC_ADDR=127.0.0.1:7701
#   MULTISCANNER_WORKER__CONCURRENCY=4
# Command-line flags override both.

# Where the embedded stores keep their files (SQLite databases and samples).
# Empty: $XDG_DATA_HOME/multiscanner, or ~/.local/share/multiscanner.
data_dir = ""

[auth]
# API tokens, sent as "Authorization: Bearer TOKEN" to the REST gateway and
# to the scheduler's public gRPC services (Tasks, Reports, Samples, System),
# which check the same list. A "read" token may read; a "write" token may
# also submit, delete, tag and annotate. With no token every caller is
# allowed, so a gateway or scheduler listening beyond loopback refuses to
# start without one. Tokens are at least 16 characters.
#   tokens = [
#     { name = "analysts", token = "…", role = "write" },
#     { name = "dashboard", token = "…", role = "read" },
#   ]
tokens = []

[gateway]
# Where the REST API (MultiScanner's /api/v2 routes) listens.
http_addr = "127.0.0.1:8080"
# The scheduler it calls (gRPC).
scheduler = "http://127.0.0.1:7700"
# Largest accepted upload, in bytes (4 GiB); larger ones get 413.
max_upload_bytes = 4294967296
# Largest JSON report accepted by an import (upload_type=import), in bytes.
max_import_bytes = 67108864
# Browser origins allowed to call the API (a regular expression matched
# against the whole Origin header); empty: none.
cors_origin = 'https?://localhost(:\d+)?'
# With archive-analyze, a zip's members become tasks of their own: at most
# this many members, and this many bytes in all.
max_archive_members = 1000
max_archive_bytes = 1073741824

[scheduler]
# Address of the gRPC API (public Tasks/Reports services and the WorkerHub
# that workers dial). Port 0 picks a free port; the bound address is logged.
grpc_addr = "127.0.0.1:7700"
# Storage URLs. Empty: embedded stores under data_dir.
#   task_store   = "sqlite:///var/lib/multiscanner/tasks.db"
#                  or "postgres://USER:PASSWORD@HOST:5432/DB"
#   report_store = "sqlite:///var/lib/multiscanner/reports.db"
#                  or "http://HOST:9200" (Elasticsearch or OpenSearch;
#                  optionally ?index=PREFIX&shards=N&replicas=N)
#   blob_store   = "file:///var/lib/multiscanner/samples"
#                  or "s3://BUCKET/PREFIX" (see [scheduler.s3])
task_store = ""
report_store = ""
blob_store = ""
# Largest accepted upload, in bytes (4 GiB).
max_upload_bytes = 4294967296
# Deepest level of extracted files (the submitted file is level 0).
max_depth = 8
# Longest a task may run from its first assignment, in seconds.
task_deadline_secs = 3600
# How often workers report their load, in milliseconds.
heartbeat_interval_ms = 5000
# How long a worker keeps an assignment without news from it (its heartbeats
# extend this), in seconds. Then the file goes back in the queue, to be
# handed out again, up to max_attempts times in all; after that it is given
# up on with the reason in the report.
lease_secs = 30
max_attempts = 3
# Priorities run from 1 (lowest) to 10 (highest), first come first served
# within one; a waiting task gains one level per aging_secs seconds, so low
# priorities still progress under a constant stream of high ones.
aging_secs = 60

[scheduler.s3]
# The S3-compatible service of an s3:// blob_store: its endpoint
# (http(s)://HOST:PORT; empty: AWS itself), region and keys. The bucket must
# exist.
endpoint = ""
region = ""
access_key_id = ""
secret_access_key = ""
# Where large uploads are staged before they are sent; empty: the system's
# temporary directory.
staging_dir = ""

[worker]
# Schedulers to dial, tried in turn.
schedulers = ["http://127.0.0.1:7700"]
# Files analysed at once; 0 means one per CPU core.
concurrency = 0
# Name shown to the scheduler; empty means HOSTNAME-PID.
worker_id = ""
# Where samples are spilled while analysed; empty means the system's
# temporary directory.
work_dir = ""
# On SIGTERM the worker takes no new work and finishes what it holds; what
# is still running after this many seconds is handed back to the scheduler,
# which gives it to another worker.
shutdown_grace_secs = 30

[worker.modules]
# Modules to run on every file (their dependencies are added). Run
# `multiscanner modules` to list the modules and whether they can run here.
enabled = [
  "filemeta", "strings", "pe", "elf", "macho", "pdf", "office", "fileextensions", "archive",
]
# Longest one module may take on one file, in seconds.
timeout_secs = 300

# Per-module overrides of timeout_secs.
[worker.modules.timeouts]
# filemeta = 60

# ASCII and UTF-16LE strings, and the URLs, e-mail addresses, IPv4
# addresses and domains in them.
[worker.modules.strings]
# Shortest run of printable characters that counts as a string.
min_length = 4
# Strings of each kind (ASCII, UTF-16) kept in the report; all are counted
# and searched for indicators.
max_strings = 2000
# Characters kept of one string.
max_string_length = 256
# Indicators of each kind kept.
max_indicators = 1000

# Unpacks zip, 7z, tar, gzip, bzip2 and xz; every member becomes a child
# node analysed like the submitted file. Extraction stops at the first limit
# reached, and the report says which.
[worker.modules.archive]
# Tried on encrypted zip and 7z archives after the submission's password.
passwords = ["infected"]
# Deepest level of extracted files (keep it equal to scheduler.max_depth).
max_depth = 8
# Members taken from one archive.
max_members = 1000
# Bytes of one member (256 MiB), and of one archive's members in all (1 GiB).
max_member_bytes = 268435456
max_total_bytes = 1073741824
# Bytes out per byte of archive (archives under 1 MiB count as 1 MiB).
max_ratio = 100

# ExifTool's metadata (Debian: libimage-exiftool-perl). Not enabled by
# default: add "exiftool" to enabled.
[worker.modules.exiftool]
program = "exiftool"
timeout_secs = 60

# Known-file lookup: MD5, SHA-1 and SHA-256 looked up in local hash sets
# (NSRL RDS 2.x NSRLFile.txt, sha256sum/sha1sum/md5sum output, or one hash
# per line). Not enabled by default: add "nsrl" to enabled.
[worker.modules.nsrl]
hash_files = []

# What VirusTotal knows about each file, looked up by SHA-256 (API v3; the
# file is never uploaded). Not enabled by default: add "virustotal" to
# enabled and give a key (or MULTISCANNER_WORKER__MODULES__VIRUSTOTAL__API_KEY).
[worker.modules.virustotal]
api_key = ""
url = "https://www.virustotal.com/api/v3"
timeout_secs = 30
# The public API allows 4 requests a minute; requests are spaced to it.
requests_per_minute = 4
# Times a lookup refused for quota (429) is tried again.
max_retries = 3

# Detonation in a Cuckoo or CAPE sandbox (submit, poll, fetch the report).
# Not enabled by default: add "cuckoo" to enabled, and give it a module
# timeout above analysis_timeout_secs under [worker.modules.timeouts].
[worker.modules.cuckoo]
url = "http://127.0.0.1:8090"
# "cuckoo" (Cuckoo 2's API) or "cape" (CAPE's apiv2).
flavour = "cuckoo"
api_key = ""
poll_interval_secs = 15
analysis_timeout_secs = 900
# Seconds the sample runs in the sandbox.
detonation_secs = 120
request_timeout_secs = 60

# The engines of an OPSWAT MetaDefender Core server (REST v4: the file is
# uploaded, the result polled). Not enabled by default: add "metadefender".
[worker.modules.metadefender]
url = "http://127.0.0.1:8008"
api_key = ""
poll_interval_secs = 5
analysis_timeout_secs = 300
request_timeout_secs = 60

# A running clamd (Debian: clamav-daemon) scans each file streamed to it
# (INSTREAM). Not enabled by default: add "clamav" to enabled.
[worker.modules.clamav]
# clamd's LocalSocket path, or HOST:PORT of its TCPSocket.
address = "/var/run/clamav/clamd.ctl"
connect_timeout_secs = 5

# Any command-line tool becomes a module by configuration alone: its name is
# the table's, "{file}" in argv stands for the sample (run directly, never
# through a shell), output = "json" or "text". Enable it by name.
# [worker.modules.commands.trid]
# argv = ["trid", "-r:3", "{file}"]
# output = "text"
# timeout_secs = 120
# max_output_bytes = 1048576
# version = "1"

# YARA rules, matched with yara-x. Not enabled by default: add "yara" to
# enabled and name rule files or directories (.yar/.yara, recursive). A
# broken rule file is reported and the others still load; rules are
# compiled again when a file changes.
[worker.modules.yara]
rules = []
# Longest scan of one file, in seconds.
timeout_secs = 60
# Matched strings listed per rule, and bytes shown of each.
max_strings_per_rule = 20
max_string_bytes = 64
"#;

impl Config {
    /// Loads defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(path.is_file(), "config file {} not found", path.display());
            figment = figment.merge(Toml::file(path));
        }
        // Only variables that name a section or top-level key are config;
        // others sharing the prefix (MULTISCANNER_CONFIG, a script's own
        // MULTISCANNER_BIN) are left alone.
        let env = Env::prefixed("MULTISCANNER_")
            .filter(|key| {
                let first = key.as_str().split("__").next().unwrap_or_default();
                TOP_LEVEL_KEYS.iter().any(|k| first.eq_ignore_ascii_case(k))
            })
            .split("__");
        figment = figment.merge(env);
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(config)
    }

    /// The data directory, with the default applied.
    pub fn data_dir(&self) -> PathBuf {
        if !self.data_dir.as_os_str().is_empty() {
            return self.data_dir.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("multiscanner")
    }

    /// Fills empty store URLs with embedded stores under the data directory.
    pub fn resolve_stores(&mut self) {
        let dir = self.data_dir();
        let s = &mut self.scheduler;
        if s.task_store.is_empty() {
            s.task_store = format!("sqlite://{}", dir.join("tasks.db").display());
        }
        if s.report_store.is_empty() {
            s.report_store = format!("sqlite://{}", dir.join("reports.db").display());
        }
        if s.blob_store.is_empty() {
            s.blob_store = format!("file://{}", dir.join("samples").display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_file_is_the_default() {
        let parsed: Config = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[scheduler]\ngrpc_adr = \"x\"").is_err());
    }

    #[test]
    fn stores_default_under_the_data_dir() {
        let mut c = Config {
            data_dir: "/d".into(),
            ..Config::default()
        };
        c.resolve_stores();
        assert_eq!(c.scheduler.task_store, "sqlite:///d/tasks.db");
        assert_eq!(c.scheduler.blob_store, "file:///d/samples");
    }
}

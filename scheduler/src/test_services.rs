//! Test support (feature `testing`): real Elasticsearch, OpenSearch and
//! S3-compatible servers, started by `scripts/service.sh` on free loopback
//! ports with their data in a temporary folder, and stopped on drop.
//!
//! The distributions are fetched once into `~/.cache/multiscanner` (the
//! README's test command does that before the tests run; the script does it
//! too if they are missing).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::store::s3_blobs::S3Settings;

/// The repository's `scripts/service.sh`.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/service.sh")
        .canonicalize()
        .expect("scripts/service.sh is missing")
}

/// Runs the script; returns the words it printed.
fn run_script(args: &[&str], env: &[(&str, String)]) -> Vec<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run scripts/service.sh");
    assert!(
        out.status.success(),
        "scripts/service.sh {args:?} failed (see its messages above)"
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The process and its descendants, parents first.
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let tasks = format!("/proc/{}/task", out[i]);
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    out
}

/// Running, not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Waits until every process in `pids` is gone (a minute at most, then
/// SIGKILL).
fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.iter().any(|p| alive(*p)) {
        if Instant::now() > deadline {
            signal("-KILL", pids);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which search engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Elasticsearch,
    OpenSearch,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Elasticsearch => "elasticsearch",
            Engine::OpenSearch => "opensearch",
        }
    }
}

/// One search node with its data in a temporary folder.
pub struct TestSearchNode {
    engine: Engine,
    dir: tempfile::TempDir,
    pid: Option<u32>,
    port: u16,
}

impl TestSearchNode {
    /// A new node, started; returns once its cluster is yellow.
    pub fn start(engine: Engine) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ms-{}-", engine.name()))
            .tempdir()
            .unwrap();
        let mut node = Self {
            engine,
            dir,
            pid: None,
            port: 0,
        };
        node.start_again();
        node
    }

    /// Starts the node on its data folder (and, after the first start, on
    /// the same port, so that clients reconnect to it).
    pub fn start_again(&mut self) {
        assert!(self.pid.is_none(), "the node is running");
        let env: Vec<(&str, String)> = if self.port == 0 {
            vec![]
        } else {
            vec![("SEARCH_PORT", self.port.to_string())]
        };
        let node_dir = self.dir.path().join("node");
        let words = run_script(
            &["search", self.engine.name(), node_dir.to_str().unwrap()],
            &env,
        );
        let [pid, url] = &words[..] else {
            panic!("unexpected answer from scripts/service.sh: {words:?}");
        };
        self.pid = Some(pid.parse().unwrap());
        self.port = url.rsplit(':').next().unwrap().parse().unwrap();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills every process of the node with SIGKILL, as a crash would, and
    /// waits until they are gone.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.pid.take() {
            let all = family(pid);
            signal("-KILL", &all);
            wait_gone(&all);
        }
    }

    /// Stops the node gracefully and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let all = family(pid);
            signal("-TERM", &all[..1]);
            wait_gone(&all);
        }
    }
}

impl Drop for TestSearchNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An S3-compatible server (MinIO) with one bucket.
pub struct TestS3 {
    _dir: tempfile::TempDir,
    pid: u32,
    pub settings: S3Settings,
    pub bucket: String,
}

impl TestS3 {
    pub fn start(bucket: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("ms-s3-").tempdir().unwrap();
        let words = run_script(
            &["s3", dir.path().join("s3").to_str().unwrap(), bucket],
            &[],
        );
        let [pid, url, key, secret, region] = &words[..] else {
            panic!("unexpected answer from scripts/service.sh: {words:?}");
        };
        Self {
            pid: pid.parse().unwrap(),
            settings: S3Settings {
                endpoint: url.clone(),
                region: region.clone(),
                access_key_id: key.clone(),
                secret_access_key: secret.clone(),
                staging_dir: dir.path().join("staging"),
            },
            bucket: bucket.to_owned(),
            _dir: dir,
        }
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let all = family(self.pid);
        signal("-TERM", &all[..1]);
        wait_gone(&all);
    }
}

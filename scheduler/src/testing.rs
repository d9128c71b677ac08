//! Test support, also for the binary's tests (feature `testing`): a private
//! PostgreSQL server with its own data directory in a temporary folder, a
//! free loopback port, no password (trust on loopback). PostgreSQL refuses
//! to run as root, so under root (as in CI) it runs as the `postgres`
//! system user that Debian's package creates.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct TestPostgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    root: bool,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (Debian package `postgresql`; the README's test command installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("no `postgres` user")
}

/// A command that runs as `postgres` when we are root.
fn as_db_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl TestPostgres {
    /// A new cluster, started.
    pub async fn start() -> Self {
        let bin = bin_dir();
        let root = is_root();
        let dir = tempfile::Builder::new().prefix("ms-pg-").tempdir().unwrap();
        if root {
            std::os::unix::fs::chown(dir.path(), Some(id_of("-u")), Some(id_of("-g"))).unwrap();
        }
        let data = dir.path().join("data");
        let init = as_db_user(&bin.join("initdb"), root)
            .args([
                "-A",
                "trust",
                "-U",
                "multiscanner",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = Self {
            dir,
            child: None,
            port,
            root,
        };
        pg.start_server().await;
        pg
    }

    /// Starts the server on its data directory and port; returns once it
    /// accepts connections.
    pub async fn start_server(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let child = as_db_user(&bin_dir().join("postgres"), self.root)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => panic!("PostgreSQL did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Stops the server the way an administrator restarting it would
    /// (fast shutdown: open sessions are ended, data is kept).
    pub fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        for _ in 0..600 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://multiscanner@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub async fn fresh_database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.url(name)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A finished task of sample `aa…aa` named `a.txt`, for tests that need one.
pub fn task_for_tests() -> multiscanner_proto::domain::Task {
    use multiscanner_proto::domain::{Sha256, Submission, Task, TaskId, TaskStatus};
    Task {
        id: TaskId(1),
        sha256: Sha256([0xaa; 32]),
        size: 10,
        submission: Submission {
            filename: "a.txt".into(),
            ..Default::default()
        },
        status: TaskStatus::Complete,
        submitted_at: 1_000,
        started_at: Some(1_500),
        finished_at: Some(2_000),
        error: None,
        node_count: 1,
    }
}

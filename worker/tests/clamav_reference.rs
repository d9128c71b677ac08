//! The `clamav` module against a real clamd (Debian's clamav-daemon) started
//! by the test with a signature database the test writes, compared with
//! `clamscan` (ClamAV's own command-line scanner) on the same database and
//! files: Debian's clamav-testfiles (executables packed a dozen ways,
//! archives, mail, documents), a file carrying a body signature, clean files.

mod common;

use common::input;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use md5::Digest;
use multiscanner_worker::module::Module;
use multiscanner_worker::modules::clamav::{Clamav, ClamavConfig};

const TESTFILES: &str = "/usr/share/clamav-testfiles";
/// clamd refuses streams longer than this (its `StreamMaxLength`).
const STREAM_MAX: u64 = 4 << 20;
const MARKER: &[u8] = b"multiscanner-clamav-body-marker-5e1d";

fn find(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} not found (Debian clamav-daemon; the README's test command installs it)");
}

/// A private clamd, stopped when dropped.
struct Clamd {
    child: Child,
    socket: PathBuf,
    tcp: String,
    _dir: tempfile::TempDir,
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The database: clam.exe by its MD5 and size (`.hdb`), and a byte pattern
/// anywhere in any file (`.ndb`).
fn write_database(db: &Path) {
    std::fs::create_dir_all(db).unwrap();
    let clam = std::fs::read(Path::new(TESTFILES).join("clam.exe")).unwrap();
    let md5 = hex::encode(md5::Md5::digest(&clam));
    std::fs::write(
        db.join("multiscanner-test.hdb"),
        format!("{md5}:{}:MultiScanner.Test.ClamExe\n", clam.len()),
    )
    .unwrap();
    std::fs::write(
        db.join("multiscanner-test.ndb"),
        format!("MultiScanner.Test.Marker:0:*:{}\n", hex::encode(MARKER)),
    )
    .unwrap();
}

fn start_clamd(db: &Path) -> Clamd {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("clamd.sock");
    let port = free_port();
    let conf = dir.path().join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "LocalSocket {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
             Foreground yes\nLogFile {}\nStreamMaxLength {STREAM_MAX}\nMaxThreads 4\n",
            socket.display(),
            db.display(),
            dir.path().join("clamd.log").display(),
        ),
    )
    .unwrap();
    let child = Command::new(find("clamd"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut clamd = Clamd {
        child,
        socket,
        tcp: format!("127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = clamd.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(clamd._dir.path().join("clamd.log"));
            panic!("clamd exited ({status}): {log:?}");
        }
        if clamd.socket.exists() && std::net::TcpStream::connect(&clamd.tcp).is_ok() {
            return clamd;
        }
        assert!(Instant::now() < deadline, "clamd did not start in 60s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `clamscan`'s verdict for each file: the signature name, or `None`.
fn clamscan(db: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, Option<String>> {
    let out = Command::new(find("clamscan"))
        .arg("--no-summary")
        .arg("-d")
        .arg(db)
        .args(files)
        .output()
        .unwrap();
    // 0: nothing found, 1: something found, 2: an error.
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut verdicts = BTreeMap::new();
    for line in text.lines() {
        let (path, verdict) = line.rsplit_once(": ").unwrap();
        let name = match verdict {
            // clamscan skips empty files; clamd finds nothing in them.
            "OK" | "Empty file" => None,
            v => Some(
                v.strip_suffix(" FOUND")
                    .unwrap_or_else(|| panic!("clamscan: {line}"))
                    .to_owned(),
            ),
        };
        verdicts.insert(PathBuf::from(path), name);
    }
    verdicts
}

fn module(address: &str) -> Clamav {
    Clamav {
        config: ClamavConfig {
            address: address.to_owned(),
            connect_timeout_secs: 5,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_verdicts_match_clamscan() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    write_database(&db);
    let clamd = start_clamd(&db);

    let mut files: Vec<PathBuf> = std::fs::read_dir(TESTFILES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() <= STREAM_MAX)
        .collect();
    files.sort();
    assert!(files.len() >= 40, "clamav-testfiles: {files:?}");
    let marked = work.path().join("marked.txt");
    let mut body = b"some text before ".to_vec();
    body.extend_from_slice(MARKER);
    body.extend_from_slice(b" and after\n");
    std::fs::write(&marked, body).unwrap();
    let clean = work.path().join("clean.txt");
    std::fs::write(&clean, "nothing to see here\n").unwrap();
    let empty = work.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    files.extend([marked.clone(), clean, empty, PathBuf::from("/usr/bin/ls")]);

    let expected = clamscan(&db, &files);
    assert_eq!(expected.len(), files.len());
    let found = expected.values().filter(|v| v.is_some()).count();
    assert!(found >= 40, "clamscan found only {found}: {expected:?}");

    let by_socket = module(&clamd.socket.display().to_string());
    by_socket.check().unwrap();
    // Several scans at once, as a worker runs them.
    let scans = files.iter().map(|f| {
        let scan = by_socket.scan(input(f));
        async move { (f.clone(), scan.await) }
    });
    for (file, got) in futures::future::join_all(scans).await {
        let got = got.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let got = got.result.unwrap();
        let want = &expected[&file];
        assert_eq!(got["infected"], want.is_some(), "{}: {got}", file.display());
        assert_eq!(
            got.get("detection").and_then(|d| d.as_str()),
            want.as_deref(),
            "{}",
            file.display()
        );
        assert!(
            got["engine"].as_str().unwrap().starts_with("ClamAV "),
            "{got}"
        );
    }

    // TCP gives the same verdict.
    let by_tcp = module(&clamd.tcp);
    by_tcp.check().unwrap();
    let got = by_tcp.scan(input(&marked)).await.unwrap().result.unwrap();
    assert_eq!(
        got["detection"].as_str(),
        expected[&marked].as_deref(),
        "{got}"
    );

    // A file longer than clamd accepts: an error that says why.
    let big = work.path().join("big.bin");
    std::fs::write(&big, vec![0x41u8; STREAM_MAX as usize + (1 << 20)]).unwrap();
    let err = by_socket.scan(input(&big)).await.unwrap_err().to_string();
    assert!(err.contains("size limit"), "{err}");

    // clamd still answers after that.
    let got = by_socket
        .scan(input(&marked))
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(got["infected"], true);
}

#[tokio::test]
async fn a_daemon_that_is_down_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no-clamd.sock");
    let m = module(&gone.display().to_string());
    let why = m.check().unwrap_err();
    assert!(why.contains("not reachable"), "{why}");
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let err = m.scan(input(&file)).await.unwrap_err().to_string();
    assert!(err.contains(&gone.display().to_string()), "{err}");

    let port = free_port();
    let m = module(&format!("127.0.0.1:{port}"));
    assert!(m.check().unwrap_err().contains("not reachable"));
    let err = m.scan(input(&file)).await.unwrap_err().to_string();
    assert!(err.contains("not reachable"), "{err}");
}

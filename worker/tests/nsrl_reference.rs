//! The `nsrl` module with hash sets written by coreutils' `sha256sum` and
//! `md5sum`, and an NSRL RDS 2.x file built from `sha1sum` and `md5sum`,
//! looked up with the hashes the `filemeta` module computes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::{
    filemeta::FileMeta,
    nsrl::{Nsrl, NsrlConfig},
};
use serde_json::Value;

fn digest(tool: &str, path: &Path) -> String {
    let out = Command::new(tool).arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

async fn input(path: &Path) -> ScanInput {
    let mut i = ScanInput {
        path: Arc::new(path.to_owned()),
        filename: "sample".into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).unwrap().len(),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    };
    let meta = FileMeta.scan(i.clone()).await.unwrap().result.unwrap();
    i.upstream = Arc::new(BTreeMap::from([("filemeta".to_owned(), meta)]));
    i
}

async fn lookup(nsrl: &Nsrl, path: &Path) -> Value {
    nsrl.scan(input(path).await).await.unwrap().result.unwrap()
}

#[tokio::test]
async fn files_in_the_sets_are_known_by_their_names() {
    let work = tempfile::tempdir().unwrap();
    let in_sha256: Vec<PathBuf> = ["/usr/bin/ls", "/usr/bin/cat"].map(PathBuf::from).to_vec();
    let in_md5 = PathBuf::from("/usr/bin/tar");
    let in_nsrl = PathBuf::from("/usr/share/clamav-testfiles/clam.exe");
    let unknown = work.path().join("fresh.bin");
    std::fs::write(&unknown, b"made just now, in no set").unwrap();

    let sha256_set = work.path().join("local.sha256");
    let lines: String = in_sha256.iter().map(|p| digest("sha256sum", p)).collect();
    std::fs::write(&sha256_set, lines).unwrap();
    let md5_set = work.path().join("tools.md5");
    std::fs::write(&md5_set, digest("md5sum", &in_md5)).unwrap();
    let nsrl_file = work.path().join("NSRLFile.txt");
    let sha1 = digest("sha1sum", &in_nsrl);
    let md5 = digest("md5sum", &in_nsrl);
    let (sha1, md5) = (
        sha1.split_whitespace().next().unwrap().to_uppercase(),
        md5.split_whitespace().next().unwrap().to_uppercase(),
    );
    std::fs::write(
        &nsrl_file,
        format!(
            "\"SHA-1\",\"MD5\",\"CRC32\",\"FileName\",\"FileSize\",\"ProductCode\",\"OpSystemCode\",\"SpecialCode\"\n\
             \"{sha1}\",\"{md5}\",\"00000000\",\"CLAM.EXE\",544,1,\"WIN\",\"\"\n"
        ),
    )
    .unwrap();

    let nsrl = Nsrl::new(NsrlConfig {
        hash_files: vec![sha256_set.clone(), md5_set, nsrl_file],
    });
    nsrl.check().unwrap();
    for p in &in_sha256 {
        let r = lookup(&nsrl, p).await;
        assert_eq!(r["known"], true, "{}: {r}", p.display());
        assert_eq!(r["matches"][0]["hash"], "sha256");
        assert_eq!(r["matches"][0]["name"], p.display().to_string());
        assert_eq!(r["matches"][0]["set"], "local.sha256");
    }
    let r = lookup(&nsrl, &in_md5).await;
    assert_eq!(r["matches"][0]["hash"], "md5", "{r}");
    let r = lookup(&nsrl, &in_nsrl).await;
    let hashes: Vec<&str> = r["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes, ["md5", "sha1"], "{r}");
    assert_eq!(r["matches"][0]["name"], "CLAM.EXE");
    assert_eq!(lookup(&nsrl, &unknown).await["known"], false);

    // A set that changes is read again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&sha256_set, digest("sha256sum", &unknown)).unwrap();
    let later = filetime_bump(&sha256_set);
    assert!(later);
    assert_eq!(lookup(&nsrl, &unknown).await["known"], true);
    assert_eq!(lookup(&nsrl, &in_sha256[0]).await["known"], false);
}

/// Makes sure the rewrite is seen as a change even on a coarse clock.
fn filetime_bump(path: &Path) -> bool {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    f.set_modified(future).is_ok()
}

#[tokio::test]
async fn missing_sets_are_named() {
    let none = Nsrl::new(NsrlConfig::default());
    assert!(none.check().unwrap_err().contains("no hash sets"));
    let gone = Nsrl::new(NsrlConfig {
        hash_files: vec![PathBuf::from("/nonexistent/NSRLFile.txt")],
    });
    assert!(gone.check().unwrap_err().contains("does not exist"));
    let err = gone
        .scan(input(Path::new("/usr/bin/ls")).await)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/NSRLFile.txt"),
        "{err}"
    );
}

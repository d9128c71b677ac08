//! The `fileextensions` module against `file --extension` and
//! `file --mime-type` (the same libmagic, used through its own command).

use std::{collections::BTreeMap, path::Path, process::Command, sync::Arc};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ScanInput};
use multiscanner_worker::modules::fileextensions::{FileExtensions, split_extensions};
use serde_json::json;

fn file(args: &[&str], path: &Path) -> String {
    let out = Command::new("file")
        .args(args)
        .arg("-b")
        .arg(path)
        .output()
        .expect("file (Debian; the README's test command installs it)");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn input(path: &Path, name: &str) -> ScanInput {
    let mime = file(&["--mime-type"], path);
    let upstream = BTreeMap::from([("filemeta".to_owned(), json!({"mimetype": mime}))]);
    ScanInput {
        path: Arc::new(path.to_owned()),
        filename: name.into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).unwrap().len(),
        depth: 0,
        upstream: Arc::new(upstream),
        archive_password: None,
    }
}

#[tokio::test]
async fn extensions_match_file_and_flag_misleading_names() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let got = FileExtensions.scan(input(&path, "x")).await.unwrap();
        let got = got.result.unwrap();
        let want = split_extensions(&file(&["--extension"], &path));
        assert_eq!(got["libmagic"], json!(want), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 40);

    let pdf = dir.join("clam.pdf");
    let honest = FileExtensions
        .scan(input(&pdf, "Report.PDF"))
        .await
        .unwrap();
    let honest = honest.result.unwrap();
    assert_eq!(honest["submitted"], "pdf");
    assert_eq!(honest["submitted_matches"], true);
    assert_eq!(honest["mimetype"], json!(["pdf"]));

    let exe = dir.join("clam.exe");
    let liar = FileExtensions
        .scan(input(&exe, "invoice.pdf"))
        .await
        .unwrap();
    let liar = liar.result.unwrap();
    assert_eq!(liar["submitted_matches"], false, "{liar}");
    assert!(
        liar["mimetype"].as_array().unwrap().contains(&json!("exe")),
        "{liar}"
    );

    let none = FileExtensions
        .scan(input(&exe, "noextension"))
        .await
        .unwrap();
    assert_eq!(
        none.result.unwrap()["submitted_matches"],
        serde_json::Value::Null
    );
}

//! The `pe` module against the reference library pefile (PyPI), on the PE
//! files of Debian's clamav-testfiles (plain, packed and installers).

use std::{path::PathBuf, process::Command, sync::Arc};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ModuleError, ScanInput};
use multiscanner_worker::modules::pe::Pe;
use serde_json::{Value, json};

/// The Python that has pefile: `MULTISCANNER_PYTHON`, as the README's test
/// command sets it, or `python3`.
fn python() -> String {
    std::env::var("MULTISCANNER_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn samples() -> Vec<PathBuf> {
    let dir = std::path::Path::new("/usr/share/clamav-testfiles");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("Debian's clamav-testfiles (the README's test command installs them)")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "exe"))
        .collect();
    out.sort();
    out
}

fn input(path: &std::path::Path) -> ScanInput {
    ScanInput {
        path: Arc::new(path.to_owned()),
        filename: "sample".into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).unwrap().len(),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    }
}

#[tokio::test]
async fn pe_fields_match_pefile() {
    let paths = samples();
    assert!(paths.len() >= 10, "expected the clamav-testfiles PE files");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/pefile_view.py"
    );
    let out = Command::new(python())
        .arg(script)
        .args(&paths)
        .output()
        .expect("python with pefile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut compared = 0;
    for path in &paths {
        let want = &reference[path.to_str().unwrap()];
        let got = Pe.scan(input(path)).await;
        if want.get("error").is_some() {
            assert!(
                matches!(got, Err(ModuleError::Failed(_))),
                "{}: {got:?}",
                path.display()
            );
            continue;
        }
        let got = got
            .unwrap()
            .result
            .unwrap_or_else(|| panic!("{}: no result", path.display()));
        let at = path.display();
        for key in [
            "machine",
            "timestamp",
            "is_dll",
            "entry_point",
            "imports",
            "exports",
        ] {
            assert_eq!(got[key], want[key], "{at}: {key}");
        }
        if want["imphash"] != "named-ordinals" {
            assert_eq!(got["imphash"], want["imphash"], "{at}: imphash");
        }
        let sections: Vec<Value> = got["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                json!({"name": s["name"], "virtual_address": s["virtual_address"],
                            "raw_size": s["raw_size"], "entropy": s["entropy"], "md5": s["md5"]})
            })
            .collect();
        assert_eq!(Value::from(sections), want["sections"], "{at}: sections");
        assert_eq!(
            got["overlay"]["offset"], want["overlay_offset"],
            "{at}: overlay"
        );
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} files compared");
}

#[tokio::test]
async fn truncated_pe_files_are_errors_not_crashes() {
    let data = std::fs::read("/usr/share/clamav-testfiles/clam.exe").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [2, 64, 200, 300, data.len() - 100] {
        let path = dir.path().join(format!("cut{cut}"));
        std::fs::write(&path, &data[..cut]).unwrap();
        match Pe.scan(input(&path)).await {
            Err(ModuleError::Failed(why)) => assert!(!why.is_empty()),
            Ok(out) => assert!(out.result.is_some(), "cut at {cut}: a result or an error"),
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
    let text = dir.path().join("text");
    std::fs::write(&text, "MZ is not enough").unwrap();
    assert!(matches!(
        Pe.scan(input(&text)).await,
        Err(ModuleError::Failed(_))
    ));
}

//! The `office` module against olefile (summary metadata) and olevba (VBA
//! macro source), from PyPI's oletools, on Debian's clamav-testfiles and
//! the test documents shipped in oletools' source distribution (the
//! README's test command fetches it from PyPI and sets
//! `MULTISCANNER_OFFICE_SAMPLES`), plus truncated copies.

mod common;

use common::{input, python};
use std::{collections::BTreeSet, path::PathBuf, process::Command};

use multiscanner_worker::module::{Module, ModuleError};
use multiscanner_worker::modules::office::Office;
use serde_json::Value;

fn samples() -> Vec<PathBuf> {
    let mut out = vec![
        PathBuf::from("/usr/share/clamav-testfiles/clam.ole.doc"),
        PathBuf::from("/usr/share/clamav-testfiles/clam.ppt"),
    ];
    let dir = std::env::var("MULTISCANNER_OFFICE_SAMPLES").expect(
        "MULTISCANNER_OFFICE_SAMPLES: oletools' test-data folder (the README's test command sets it)",
    );
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        let p = entry.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        // PowerPoint keeps its macros in its own stream format, which the
        // module does not read yet; the others are compared.
        if [
            "doc", "docm", "docx", "dot", "dotm", "xls", "xlsm", "xlsx", "xlt", "xltm", "xlsb",
        ]
        .contains(&ext)
        {
            out.push(p.to_owned());
        }
    }
    out.sort();
    out
}

/// `(stream name, code)` of each module, line ends made alike.
fn modules(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let stream = m["stream"].as_str().unwrap();
            let name = stream.rsplit('/').next().unwrap().to_owned();
            let code = m["code"].as_str().unwrap().replace("\r\n", "\n");
            (name, code.trim_end().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn metadata_and_macros_match_oletools() {
    let paths = samples();
    assert!(paths.len() >= 30, "{paths:?}");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/office_view.py"
    );
    let out = Command::new(python())
        .arg(script)
        .args(&paths)
        .output()
        .expect("python with oletools");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mut with_macros, mut with_metadata) = (0, 0);
    for path in &paths {
        let at = path.display();
        let want = &reference[path.to_str().unwrap()];
        let got = match Office.scan(input(path)).await {
            Ok(out) => out.result,
            // An encrypted or damaged package: an error, like any module.
            Err(ModuleError::Failed(why)) => {
                assert!(want["macros"].as_array().unwrap().is_empty(), "{at}: {why}");
                continue;
            }
            Err(e) => panic!("{at}: {e}"),
        };
        let Some(got) = got else {
            assert!(
                want["macros"].as_array().unwrap().is_empty(),
                "{at}: olevba found macros"
            );
            continue;
        };
        assert_eq!(modules(&got["macros"]), modules(&want["macros"]), "{at}");
        if !want["macros"].as_array().unwrap().is_empty() {
            with_macros += 1;
            assert_eq!(got["has_macros"], true);
        }
        if let Some(meta) = want["metadata"].as_object() {
            for (field, value) in meta {
                assert_eq!(got["properties"][field], *value, "{at}: {field}");
            }
            with_metadata += usize::from(!meta.is_empty());
        }
    }
    println!(
        "{} files: {with_macros} with macros, {with_metadata} with metadata",
        paths.len()
    );
    assert!(with_macros >= 1, "no document with macros was compared");
    assert!(with_metadata >= 10, "only {with_metadata} with metadata");
}

#[tokio::test]
async fn truncated_documents_are_errors_or_partial_results() {
    let dir = tempfile::tempdir().unwrap();
    for path in samples().iter().take(12) {
        let bytes = std::fs::read(path).unwrap();
        for cut in [8, 512, bytes.len() / 2] {
            let p = dir.path().join("cut");
            std::fs::write(&p, &bytes[..cut.min(bytes.len())]).unwrap();
            match Office.scan(input(&p)).await {
                Ok(_) | Err(ModuleError::Failed(_)) => {}
                Err(e) => panic!("{}: cut at {cut}: {e}", path.display()),
            }
        }
    }
}

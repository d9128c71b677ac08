//! The `pe` module against the reference library pefile (PyPI), on the PE
//! files of Debian's clamav-testfiles (plain, packed and installers).

mod common;

use common::{input, python};
use std::{path::PathBuf, process::Command};

use multiscanner_worker::module::{Module, ModuleError};
use multiscanner_worker::modules::pe::Pe;
use serde_json::{Value, json};

/// The resource types with names (Windows' RT_* constants).
const RESOURCE_TYPES: &[(u64, &str)] = &[
    (1, "RT_CURSOR"),
    (2, "RT_BITMAP"),
    (3, "RT_ICON"),
    (4, "RT_MENU"),
    (5, "RT_DIALOG"),
    (6, "RT_STRING"),
    (7, "RT_FONTDIR"),
    (8, "RT_FONT"),
    (9, "RT_ACCELERATOR"),
    (10, "RT_RCDATA"),
    (11, "RT_MESSAGETABLE"),
    (12, "RT_GROUP_CURSOR"),
    (14, "RT_GROUP_ICON"),
    (16, "RT_VERSION"),
    (17, "RT_DLGINCLUDE"),
    (19, "RT_PLUGPLAY"),
    (20, "RT_VXD"),
    (21, "RT_ANICURSOR"),
    (22, "RT_ANIICON"),
    (23, "RT_HTML"),
    (24, "RT_MANIFEST"),
];

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
    let mut resources_seen = 0;
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
        assert_eq!(
            got["rich_header"]["md5"], want["rich_header_md5"],
            "{at}: rich header"
        );
        // Resources as pefile lists them: type (id, or the predefined
        // type's name here), name, language, size, MD5 of the data.
        let resources: Vec<Value> = got["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["type"], r["name"], r["language"], r["size"], r["md5"]]))
            .collect();
        let want_resources: Vec<Value> = want["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if let Some(id) = r[0].as_u64() {
                    r[0] = json!(
                        RESOURCE_TYPES
                            .iter()
                            .find(|(n, _)| *n == id)
                            .map_or(json!(id), |(_, name)| json!(name))
                    );
                }
                r
            })
            .collect();
        assert_eq!(resources, want_resources, "{at}: resources");
        resources_seen += resources.len();
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} files compared");
    assert!(
        resources_seen >= 100,
        "only {resources_seen} resources compared"
    );
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

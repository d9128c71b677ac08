//! The archive module on archives made by the reference tools (`zip`, `7z`,
//! `tar`, `gzip`, `bzip2`, `xz`): members and their bytes must come back
//! exactly as the tools put them in; limits stop hostile archives.

use std::{collections::BTreeMap, path::Path, process::Command, sync::Arc};

use multiscanner_proto::domain::Sha256;
use serde_json::Value;

use super::archive::{ArchiveConfig, unpack};
use crate::module::{ModuleError, ModuleOutput, ScanInput};

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} unavailable ({e}); the README's test command installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three files in `dir/in`: text, random bytes, and one in a subfolder.
fn inputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = BTreeMap::from([
        ("a.txt".to_owned(), b"hello from a\n".repeat(50)),
        (
            "b.bin".to_owned(),
            (0..100_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
        ("sub/c.txt".to_owned(), b"nested file\n".to_vec()),
    ]);
    for (name, data) in &files {
        let p = dir.join("in").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    files
}

fn input_for(path: &Path, depth: u32, password: Option<&str>) -> ScanInput {
    ScanInput {
        path: Arc::new(path.to_owned()),
        filename: path.file_name().unwrap().to_string_lossy().into_owned(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).unwrap().len(),
        depth,
        upstream: Arc::default(),
        archive_password: password.map(str::to_owned),
    }
}

fn members(out: &ModuleOutput) -> BTreeMap<String, Vec<u8>> {
    out.children
        .iter()
        .map(|c| (c.filename.clone(), std::fs::read(c.file.path()).unwrap()))
        .collect()
}

fn result(out: &ModuleOutput) -> &Value {
    out.result.as_ref().expect("a result")
}

#[test]
fn every_format_gives_back_what_the_reference_tools_put_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = inputs(d);
    let inside = d.join("in");
    run(&inside, "zip", &["-qr", "../plain.zip", "."]);
    run(
        &inside,
        "zip",
        &["-qr", "-P", "infected", "../crypto.zip", "."],
    );
    run(&inside, "7z", &["a", "-bd", "../plain.7z", "."]);
    run(
        &inside,
        "7z",
        &["a", "-bd", "-pinfected", "-mhe=on", "../crypto.7z", "."],
    );
    run(
        &inside,
        "tar",
        &["-cf", "../plain.tar", "a.txt", "b.bin", "sub/c.txt"],
    );
    run(d, "gzip", &["-k", "plain.tar"]);
    for (archive, format, password) in [
        ("plain.zip", "zip", None),
        ("crypto.zip", "zip", Some("infected")),
        ("plain.7z", "7z", None),
        ("crypto.7z", "7z", Some("infected")),
        ("plain.tar", "tar", None),
    ] {
        let out = unpack(
            &input_for(&d.join(archive), 0, None),
            &ArchiveConfig::default(),
        )
        .unwrap();
        let mut got = members(&out);
        got = got
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("./").to_owned(), v))
            .collect();
        assert_eq!(got, files, "{archive}");
        let r = result(&out);
        assert_eq!(r["format"], format, "{archive}");
        assert_eq!(r["extracted"], 3);
        assert_eq!(r["password"].as_str(), password, "{archive}");
        assert!(r["limit"].is_null());
    }
    // A one-file stream holds the tar, named after the archive.
    let out = unpack(
        &input_for(&d.join("plain.tar.gz"), 0, None),
        &ArchiveConfig::default(),
    )
    .unwrap();
    let tar = std::fs::read(d.join("plain.tar")).unwrap();
    assert_eq!(
        members(&out),
        BTreeMap::from([("plain.tar".to_owned(), tar.clone())])
    );
    for (tool, suffix, format) in [("bzip2", "bz2", "bzip2"), ("xz", "xz", "xz")] {
        run(d, tool, &["-k", "plain.tar"]);
        let path = d.join(format!("plain.tar.{suffix}"));
        let out = unpack(&input_for(&path, 0, None), &ArchiveConfig::default()).unwrap();
        assert_eq!(
            members(&out),
            BTreeMap::from([("plain.tar".to_owned(), tar.clone())])
        );
        assert_eq!(result(&out)["format"], format);
    }
}

#[test]
fn a_password_from_the_submission_opens_what_the_list_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = inputs(d);
    run(
        &d.join("in"),
        "zip",
        &["-qr", "-P", "s3cret", "../secret.zip", "."],
    );
    let path = d.join("secret.zip");
    let out = unpack(&input_for(&path, 0, None), &ArchiveConfig::default()).unwrap();
    assert!(out.children.is_empty());
    let r = result(&out);
    assert_eq!(r["extracted"], 0);
    assert!(
        r["members"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no password")
    );
    let out = unpack(
        &input_for(&path, 0, Some("s3cret")),
        &ArchiveConfig::default(),
    )
    .unwrap();
    let got: BTreeMap<_, _> = members(&out)
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("./").to_owned(), v))
        .collect();
    assert_eq!(got, files);
    assert_eq!(result(&out)["password"], "s3cret");
}

#[test]
fn limits_stop_bombs_and_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 300 MB of zeros compress to a few hundred KB: past the ratio.
    let zeros = std::fs::File::create(d.join("zeros")).unwrap();
    zeros.set_len(300 << 20).unwrap();
    run(d, "zip", &["-q", "bomb.zip", "zeros"]);
    let bomb = d.join("bomb.zip");
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let out = unpack(&input_for(&bomb, 0, None), &ArchiveConfig::default()).unwrap();
    assert!(out.children.is_empty());
    let limit = result(&out)["limit"].as_str().unwrap().to_owned();
    assert!(limit.starts_with("max_ratio"), "{limit}");

    let per_member = ArchiveConfig {
        max_member_bytes: 1 << 20,
        ..Default::default()
    };
    let out = unpack(&input_for(&bomb, 0, None), &per_member).unwrap();
    assert!(
        result(&out)["limit"]
            .as_str()
            .unwrap()
            .starts_with("max_member_bytes")
    );

    // Many members: the first ten are kept.
    std::fs::create_dir(d.join("many")).unwrap();
    for i in 0..30 {
        std::fs::write(d.join(format!("many/{i:02}")), format!("{i}")).unwrap();
    }
    run(&d.join("many"), "zip", &["-q", "../many.zip", "-r", "."]);
    let few = ArchiveConfig {
        max_members: 10,
        ..Default::default()
    };
    let out = unpack(&input_for(&d.join("many.zip"), 0, None), &few).unwrap();
    assert_eq!(out.children.len(), 10);
    assert!(
        result(&out)["limit"]
            .as_str()
            .unwrap()
            .starts_with("max_members")
    );

    // Too deep: nothing extracted.
    let out = unpack(
        &input_for(&d.join("many.zip"), 8, None),
        &ArchiveConfig::default(),
    )
    .unwrap();
    assert!(out.children.is_empty());
    assert!(
        result(&out)["limit"]
            .as_str()
            .unwrap()
            .starts_with("max_depth")
    );
}

#[test]
fn broken_archives_are_errors_and_other_files_are_not_archives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    run(&d.join("in"), "zip", &["-qr", "../whole.zip", "."]);
    run(&d.join("in"), "7z", &["a", "-bd", "../whole.7z", "."]);
    run(&d.join("in"), "tar", &["-czf", "../whole.tgz", "."]);
    for name in ["whole.zip", "whole.7z", "whole.tgz"] {
        let data = std::fs::read(d.join(name)).unwrap();
        for cut in [data.len() / 2, 40, 7] {
            let path = d.join(format!("cut-{cut}-{name}"));
            std::fs::write(&path, &data[..cut]).unwrap();
            match unpack(&input_for(&path, 0, None), &ArchiveConfig::default()) {
                Err(ModuleError::Failed(why)) => assert!(!why.is_empty()),
                Ok(out) => {
                    // A partial archive may give its first members; it must
                    // say something and never claim more than was there.
                    assert!(out.children.len() <= 3, "{name} cut at {cut}");
                }
                Err(e) => panic!("{name} cut at {cut}: {e}"),
            }
        }
    }
    let text = d.join("in/a.txt");
    assert!(
        unpack(&input_for(&text, 0, None), &ArchiveConfig::default())
            .unwrap()
            .result
            .is_none()
    );
}

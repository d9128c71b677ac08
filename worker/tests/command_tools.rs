//! External tools as modules: ExifTool against running it directly, and
//! configured commands (JSON and text output, failures, timeouts).

use std::{path::Path, process::Command as Process, sync::Arc, time::Instant};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::{Module, ModuleError, ScanInput};
use multiscanner_worker::modules::command::{Command, CommandConfig, ExiftoolConfig, OutputKind};
use serde_json::Value;

fn input(path: &Path) -> ScanInput {
    ScanInput {
        path: Arc::new(path.to_owned()),
        filename: "<img src=x onerror=alert(1)>.pdf".into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).unwrap().len(),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    }
}

#[tokio::test]
async fn exiftool_tags_match_exiftool_run_directly() {
    let exiftool = Command::exiftool(&ExiftoolConfig::default());
    exiftool
        .check()
        .expect("exiftool (libimage-exiftool-perl; the README's test command installs it)");
    for sample in ["clam.pdf", "clam.exe", "clam.ole.doc", "clam.zip"] {
        let path = Path::new("/usr/share/clamav-testfiles").join(sample);
        let got = exiftool.scan(input(&path)).await.unwrap().result.unwrap();
        let out = Process::new("exiftool")
            .args(["-j", "-n", "-G", "-a"])
            .arg(&path)
            .output()
            .unwrap();
        let want: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = want[0].as_object().unwrap();
        let got = got.as_object().unwrap();
        for (k, v) in want {
            if ["SourceFile", "File:FileName", "File:Directory"].contains(&k.as_str())
                || k.starts_with("File:File") && k.ends_with("Date")
                || k == "File:FilePermissions"
            {
                assert!(
                    !got.contains_key(k),
                    "{sample}: {k} describes the worker's copy"
                );
            } else {
                assert_eq!(got.get(k), Some(v), "{sample}: {k}");
            }
        }
        assert!(
            got.contains_key("File:MIMEType") || got.contains_key("File:FileType"),
            "{sample}"
        );
    }
}

fn command(argv: &[&str], output: OutputKind, timeout_secs: u64) -> Command {
    Command::configured(
        "tool",
        CommandConfig {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            output,
            timeout_secs,
            ..Default::default()
        },
        None,
    )
}

#[tokio::test]
async fn configured_commands_run_without_a_shell_and_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample; rm -rf x");
    std::fs::write(&sample, b"0123456789").unwrap();

    let json = command(
        &[
            "python3",
            "-c",
            "import json,os,sys; print(json.dumps({'size': os.path.getsize(sys.argv[1])}))",
            "{file}",
        ],
        OutputKind::Json,
        30,
    );
    let got = json.scan(input(&sample)).await.unwrap().result.unwrap();
    assert_eq!(got["size"], 10);

    let text = command(&["wc", "-c", "{file}"], OutputKind::Text, 30);
    let got = text.scan(input(&sample)).await.unwrap().result.unwrap();
    assert!(got.as_str().unwrap().starts_with("10 "), "{got}");

    let not_json = command(&["echo", "plain"], OutputKind::Json, 30);
    match not_json.scan(input(&sample)).await {
        Err(ModuleError::Failed(why)) => assert!(why.contains("did not print JSON"), "{why}"),
        other => panic!("{other:?}"),
    }
    let failing = command(&["ls", "/no/such/path"], OutputKind::Text, 30);
    match failing.scan(input(&sample)).await {
        Err(ModuleError::Failed(why)) => assert!(
            why.contains("failed") && why.contains("No such file"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let slow = command(&["sleep", "30"], OutputKind::Text, 1);
    let start = Instant::now();
    match slow.scan(input(&sample)).await {
        Err(ModuleError::Failed(why)) => assert!(why.contains("longer than 1 s"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(
        start.elapsed().as_secs() < 10,
        "the command was not stopped"
    );

    let missing = command(&["no-such-tool-here", "{file}"], OutputKind::Text, 30);
    assert!(missing.check().unwrap_err().contains("not found"));
    assert!(matches!(
        missing.scan(input(&sample)).await,
        Err(ModuleError::Failed(_))
    ));
    let taken = Command::configured("filemeta", CommandConfig::default(), Some("taken".into()));
    assert_eq!(taken.check().unwrap_err(), "taken");
}

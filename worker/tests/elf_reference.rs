//! The `elf` module against GNU readelf (binutils) on real binaries and
//! shared libraries of this machine.

mod common;

use common::input;
use std::{path::Path, process::Command};

use multiscanner_worker::module::{Module, ModuleError};
use multiscanner_worker::modules::elf::ElfModule;
use serde_json::Value;

fn readelf(path: &Path, args: &[&str]) -> String {
    let out = Command::new("readelf")
        .args(args)
        .arg("-W")
        .arg(path)
        .env("LC_ALL", "C")
        .output()
        .expect("readelf (binutils; the README's test command installs it)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text between `start` and `end` on the first line holding `start`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let at = text.find(start)? + start.len();
    let rest = &text[at..];
    Some(rest[..rest.find(end)?].trim())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Shared objects on this machine: libc and whatever ls links.
fn samples() -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = [
        "/usr/bin/ls",
        "/usr/bin/readelf",
        "/usr/bin/ssdeep",
        "/usr/bin/tar",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let libc = readelf(Path::new("/usr/bin/ls"), &["-l"]);
    let interp = between(&libc, "[Requesting program interpreter: ", "]")
        .unwrap()
        .to_owned();
    out.push(std::fs::canonicalize(interp).unwrap());
    for dir in ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"] {
        let p = Path::new(dir).join("libc.so.6");
        if p.exists() {
            out.push(std::fs::canonicalize(p).unwrap());
            break;
        }
    }
    out
}

#[tokio::test]
async fn elf_fields_match_readelf() {
    for path in samples() {
        let at = path.display().to_string();
        let got = ElfModule.scan(input(&path)).await.unwrap().result.unwrap();
        let header = readelf(&path, &["-h"]);
        assert_eq!(
            got["entry_point"].as_str().unwrap(),
            between(&header, "Entry point address:", "\n").unwrap(),
            "{at}"
        );
        let class = between(&header, "Class:", "\n").unwrap();
        assert_eq!(got["class"], class, "{at}");
        let program = readelf(&path, &["-l"]);
        assert_eq!(
            got["interpreter"].as_str(),
            between(&program, "[Requesting program interpreter: ", "]"),
            "{at}"
        );
        let segments: Vec<&str> = program
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("Type"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| !l.trim_start().starts_with('['))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let got_segments: Vec<String> = got["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["type"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("PT_")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            got_segments.len(),
            segments.len(),
            "{at}: {got_segments:?} vs {segments:?}"
        );
        let dynamic = readelf(&path, &["-d"]);
        let needed: Vec<String> = dynamic
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| between(l, "[", "]").map(str::to_owned))
            .collect();
        assert_eq!(strings(&got["libraries"]), needed, "{at}");
        let soname = dynamic
            .lines()
            .find(|l| l.contains("(SONAME)"))
            .and_then(|l| between(l, "[", "]"));
        assert_eq!(got["soname"].as_str(), soname, "{at}");
        let sections = readelf(&path, &["-S"]);
        let names: Vec<&str> = sections
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let rest = l.strip_prefix('[')?;
                let (_, rest) = rest.split_once(']')?;
                let name = rest.split_whitespace().next()?;
                (name != "Name").then_some(name)
            })
            .collect();
        let got_names: Vec<String> = got["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        // readelf prints the null section with no name (so its first word is
        // the type, NULL).
        let names: Vec<String> = names
            .iter()
            .map(|n| {
                if *n == "NULL" {
                    String::new()
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        assert_eq!(got_names, names, "{at}");
        let syms = readelf(&path, &["--dyn-syms"]);
        if let Some(n) = between(&syms, "Symbol table '.dynsym' contains ", " entr") {
            assert_eq!(
                got["dynamic_symbol_count"],
                n.parse::<u64>().unwrap(),
                "{at}"
            );
        }
    }
}

#[tokio::test]
async fn truncated_and_broken_elf_files_are_errors() {
    let data = std::fs::read("/usr/bin/ls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [4, 20, 63, 200, 4096] {
        let path = dir.path().join(format!("cut{cut}"));
        std::fs::write(&path, &data[..cut]).unwrap();
        match ElfModule.scan(input(&path)).await {
            Err(ModuleError::Failed(why)) => assert!(!why.is_empty()),
            Ok(out) => assert!(out.result.is_some(), "cut at {cut}"),
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
    let text = dir.path().join("text");
    std::fs::write(&text, "just text").unwrap();
    assert!(ElfModule.scan(input(&text)).await.unwrap().result.is_none());
}

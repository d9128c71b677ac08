//! Running the built `multiscanner` binary and the reference tools.

#![allow(dead_code)]

use std::{
    path::Path,
    process::{Command, Output},
};

pub fn multiscanner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_multiscanner"))
}

/// Runs a reference tool; a missing tool fails the test with a hint.
pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("reference tool `{name}` unavailable ({e}); the README's test command installs it")
    })
}

/// Standard output of a tool run on one file, trimmed.
pub fn tool_on(name: &str, args: &[&str], file: &Path) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let f = file.to_str().unwrap();
    all.push(f);
    let out = tool(name, &all);
    assert!(
        out.status.success(),
        "{name} failed on {f}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Parses NDJSON reports into (filename, report) pairs.
pub fn reports(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["filename"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

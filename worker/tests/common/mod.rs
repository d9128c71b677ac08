//! Helpers shared by the integration tests. Each test crate uses a part of
//! them, so the rest would be reported as unused there.
#![allow(dead_code)]

pub mod http;

use std::{path::Path, sync::Arc};

use multiscanner_proto::domain::Sha256;
use multiscanner_worker::module::ScanInput;

/// What a worker gives a module for the file at `path`, submitted as
/// `sample`, at the top of its task.
pub fn input(path: &Path) -> ScanInput {
    ScanInput {
        path: Arc::new(path.to_owned()),
        filename: "sample".into(),
        sha256: Sha256([0; 32]),
        size: std::fs::metadata(path).map_or(0, |m| m.len()),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    }
}

/// `bytes` written to `dir/sample`, given to a module as submitted under
/// the (hostile) name `filename`, with digest `sha256`.
pub fn sample(dir: &Path, bytes: &[u8], filename: &str, sha256: Sha256) -> ScanInput {
    let path = dir.join("sample");
    std::fs::write(&path, bytes).unwrap();
    ScanInput {
        filename: filename.into(),
        sha256,
        ..input(&path)
    }
}

/// The Python that has the reference libraries (pefile, pdfid, oletools):
/// `MULTISCANNER_PYTHON`, as the README's test command sets it, or
/// `python3`.
pub fn python() -> String {
    std::env::var("MULTISCANNER_PYTHON").unwrap_or_else(|_| "python3".into())
}

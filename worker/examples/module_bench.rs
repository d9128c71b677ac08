//! Per-module speed on one corpus, beside Debian's `yara` and `exiftool`
//! run directly on the same files in the same invocation.
//!
//! `module_bench CORPUS_DIR RULES_FILE` runs every module one file at a
//! time on one thread per core (as a worker does), then the reference
//! tools once over the whole corpus, and prints a table: files/s, MB/s and,
//! for `yara` and `exiftool`, our time over the tool's.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use multiscanner_proto::domain::Sha256;
use multiscanner_worker::{
    ModulesConfig,
    module::{Module, ScanInput},
    registry::builtin_with,
};
use serde_json::Value;

fn corpus(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// `filemeta`'s result for every file, for the modules that read it (so
/// that their time is their own).
async fn filemeta_results(files: &[PathBuf]) -> HashMap<PathBuf, Value> {
    let filemeta = builtin_with(&ModulesConfig::default())
        .into_iter()
        .find(|m| m.name() == "filemeta")
        .expect("filemeta is built in");
    let mut out = HashMap::new();
    for f in files {
        if let Ok(o) = filemeta.scan(input(f)).await {
            out.insert(f.clone(), o.result.unwrap_or_default());
        }
    }
    out
}

fn input(path: &Path) -> ScanInput {
    ScanInput {
        size: std::fs::metadata(path).map_or(0, |m| m.len()),
        path: Arc::new(path.to_owned()),
        filename: "sample".into(),
        sha256: Sha256([0; 32]),
        depth: 0,
        upstream: Arc::default(),
        archive_password: None,
    }
}

async fn run_module(
    module: Arc<dyn Module>,
    files: &[PathBuf],
    metas: &HashMap<PathBuf, Value>,
) -> Duration {
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let needs_meta = module.requires().contains(&"filemeta");
    let started = Instant::now();
    futures::stream::iter(files)
        .for_each_concurrent(parallel, |path| {
            let module = Arc::clone(&module);
            let mut i = input(path);
            if needs_meta && let Some(meta) = metas.get(path) {
                i.upstream = Arc::new([("filemeta".to_owned(), meta.clone())].into());
            }
            async move {
                let _ = module.scan(i).await;
            }
        })
        .await;
    started.elapsed()
}

fn timed(cmd: &mut Command) -> Option<Duration> {
    let started = Instant::now();
    let out = cmd.output().ok()?;
    // yara exits 1 on no match with some versions; only a failure to run
    // at all counts.
    out.status.code()?;
    Some(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: CORPUS RULES"))?,
    );
    let rules = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: CORPUS RULES"))?,
    );
    let files = corpus(&dir);
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mb = bytes as f64 / 1e6;
    println!(
        "corpus: {} files, {mb:.1} MB ({})\n",
        files.len(),
        dir.display()
    );

    let mut config = ModulesConfig::default();
    config.yara.rules = vec![rules.clone()];
    let wanted = [
        "filemeta",
        "strings",
        "pe",
        "elf",
        "pdf",
        "fileextensions",
        "archive",
        "yara",
        "exiftool",
    ];
    let yara_ref = timed(Command::new("yara").arg("-r").arg(&rules).arg(&dir));
    let exif_ref = timed(
        Command::new("exiftool")
            .args(["-j", "-n", "-G", "-a", "-q", "-r"])
            .arg(&dir),
    );
    let metas = filemeta_results(&files).await;
    println!("| module | files/s | MB/s | reference | ours / reference |");
    println!("|---|---:|---:|---|---:|");
    for module in builtin_with(&config) {
        if !wanted.contains(&module.name()) {
            continue;
        }
        if let Err(why) = module.check() {
            println!("| {} | — | — | cannot run here: {why} | |", module.name());
            continue;
        }
        let name = module.name();
        let took = run_module(module, &files, &metas).await.as_secs_f64();
        let reference = match name {
            "yara" => yara_ref.map(|d| ("yara -r (libyara 4)", d)),
            "exiftool" => exif_ref.map(|d| ("exiftool -j -r (one process)", d)),
            _ => None,
        };
        let (ref_name, ratio) = match reference {
            Some((n, d)) => (
                format!("{n}: {:.2} s", d.as_secs_f64()),
                format!("{:.2}", took / d.as_secs_f64()),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "| {name} | {:.0} | {:.1} | {ref_name} | {ratio} |",
            files.len() as f64 / took,
            mb / took
        );
    }
    Ok(())
}

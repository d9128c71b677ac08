//! Report-store benchmark: stores N reports through the `ReportStore` of
//! each URL given (64 writers, each waiting for its acknowledgement), then
//! times searches of the three types. Beside each store, the reference: the
//! same documents loaded the fastest plain way the engine offers (`_bulk`
//! requests of 1,000 documents for a search engine; one transaction per
//! 1,000 rows into a bare table for SQLite), with no acknowledgement per
//! report. Prints one table.
//!
//! Usage: `report_bench N NAME=URL...` (URL: `sqlite://PATH` or
//! `http://HOST:PORT`; NAME labels its row).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use multiscanner_proto::domain::{Sha256, Submission, Task, TaskId, TaskStatus};
use multiscanner_scheduler::store::{
    ReportStore,
    search::{SearchKind, SearchQuery},
};
use serde_json::{Value, json};

const WRITERS: usize = 64;
const SEARCHES: usize = 200;
const REFERENCE_BATCH: usize = 1000;

fn sha_of(i: u64) -> Sha256 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    Sha256(b)
}

fn task_of(i: u64) -> Task {
    Task {
        id: TaskId(i as i64 + 1),
        sha256: sha_of(i),
        size: 1000 + i % 5000,
        submission: Submission {
            filename: format!(
                "sample-{i:07}-{}.bin",
                ["invoice", "setup", "report", "photo"][(i % 4) as usize]
            ),
            ..Default::default()
        },
        status: TaskStatus::Complete,
        submitted_at: 1_700_000_000_000 + i as i64,
        started_at: Some(1_700_000_000_000 + i as i64),
        finished_at: Some(1_700_000_001_000 + i as i64),
        error: None,
        node_count: 1,
    }
}

/// A report of about 2 KB, shaped like the scheduler's.
fn report_of(task: &Task, i: u64) -> Value {
    let sha = task.sha256.to_hex();
    json!({
        "filename": task.submission.filename,
        "filemeta": {
            "md5": &sha[..32], "sha1": &sha[..40], "sha256": sha, "sha512": format!("{sha}{sha}"),
            "crc32": format!("0x{:08x}", i as u32), "filesize": task.size, "entropy": (i % 80) as f64 / 10.0,
            "ssdeep": format!("96:{}:{}", &sha[..40], &sha[20..50]), "tlsh": format!("T1{}", &sha[..60]),
            "filetype": "PE32 executable (GUI) Intel 80386, for MS Windows", "mimetype": "application/x-dosexec",
        },
        "yara": {"matches": [{"rule": format!("Rule_{}", i % 50), "namespace": "default",
                              "strings": [{"identifier": "$a", "offset": i % 4096}]}]},
        "strings": {"urls": [format!("http://host{}.example/path", i % 1000)],
                    "ips": [format!("10.0.{}.{}", i % 256, (i / 256) % 256)]},
        "Scan Metadata": {"Task ID": task.id.0},
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Stores `n` reports with `WRITERS` writers; returns reports per second.
async fn ingest(store: &Arc<dyn ReportStore>, n: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let failures = futures::stream::iter(0..n)
        .map(|i| {
            let store = Arc::clone(store);
            async move {
                let task = task_of(i);
                store.put_report(&task, &report_of(&task, i)).await
            }
        })
        .buffer_unordered(WRITERS)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} reports were not stored");
    store.refresh().await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The reference load of the same documents; returns reports per second.
async fn reference(url: &str, n: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = format!("{path}.reference");
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let _ = std::fs::remove_file(&path);
            let mut db = rusqlite::Connection::open(&path)?;
            db.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                 CREATE TABLE r (id INTEGER PRIMARY KEY, sha256 TEXT, filename TEXT, doc TEXT)",
            )?;
            for chunk in (0..n).collect::<Vec<_>>().chunks(REFERENCE_BATCH) {
                let tx = db.transaction()?;
                for &i in chunk {
                    let t = task_of(i);
                    tx.execute(
                        "INSERT INTO r VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![
                            t.id.0,
                            t.sha256.to_hex(),
                            t.submission.filename,
                            report_of(&t, i).to_string()
                        ],
                    )?;
                }
                tx.commit()?;
            }
            Ok(())
        })
        .await??;
    } else {
        let client = reqwest::Client::new();
        let base = url.split('?').next().unwrap_or(url).trim_end_matches('/');
        for chunk in (0..n).collect::<Vec<_>>().chunks(REFERENCE_BATCH) {
            let mut body = String::new();
            for &i in chunk {
                let t = task_of(i);
                body.push_str(
                    &json!({"index": {"_index": "reference", "_id": t.id.0}}).to_string(),
                );
                body.push('\n');
                body.push_str(&report_of(&t, i).to_string());
                body.push('\n');
            }
            let answer: Value = client
                .post(format!("{base}/_bulk"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(
                answer["errors"] == json!(false),
                "reference bulk failed: {answer}"
            );
        }
        client
            .post(format!("{base}/reference/_refresh"))
            .send()
            .await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// p50 and p99 latency, in ms, of `SEARCHES` searches made by `make`.
async fn latency(
    store: &Arc<dyn ReportStore>,
    n: u64,
    make: impl Fn(u64) -> SearchQuery,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(SEARCHES);
    for k in 0..SEARCHES as u64 {
        let q = make((k * 7919) % n);
        let start = Instant::now();
        let page = store.search(&q).await?;
        times.push(start.elapsed());
        anyhow::ensure!(page.total > 0, "{q:?} found nothing");
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("usage: report_bench N NAME=URL..."))?;
    let stores: Vec<(String, String)> = args
        .map(|a| {
            a.split_once('=')
                .map(|(n, u)| (n.to_owned(), u.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("expected NAME=URL, got {a:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "{:<14} {:>9} {:>11} {:>11} {:>7} {:>17} {:>17} {:>17}",
        "report store",
        "reports",
        "stored/s",
        "ref load/s",
        "ratio",
        "hash p50/p99 ms",
        "substr p50/p99 ms",
        "advanced p50/p99"
    );
    for (name, url) in stores {
        let store: Arc<dyn ReportStore> = if url.starts_with("sqlite://") {
            Arc::new(
                multiscanner_scheduler::store::sqlite_reports::SqliteReportStore::open(
                    std::path::Path::new(url.trim_start_matches("sqlite://")),
                )
                .await?,
            )
        } else {
            Arc::new(multiscanner_scheduler::store::elastic::ElasticReportStore::open(&url).await?)
        };
        let rate = ingest(&store, n).await?;
        let reference_rate = reference(&url, n).await?;
        let hash = latency(&store, n, |i| SearchQuery {
            text: sha_of(i).to_hex(),
            kind: SearchKind::Exact,
            limit: 25,
            ..Default::default()
        })
        .await?;
        let substring = latency(&store, n, |i| SearchQuery {
            text: format!("{i:07}-"),
            kind: SearchKind::Default,
            limit: 25,
            ..Default::default()
        })
        .await?;
        let advanced = latency(&store, n, |i| SearchQuery {
            text: format!(
                "yara_rules:Rule_{} AND filename:\"sample-{i:07}-{}.bin\"",
                i % 50,
                ["invoice", "setup", "report", "photo"][(i % 4) as usize]
            ),
            kind: SearchKind::Advanced,
            limit: 25,
            ..Default::default()
        })
        .await?;
        println!(
            "{:<14} {:>9} {:>11.0} {:>11.0} {:>7.2} {:>8.1}/{:<8.1} {:>8.1}/{:<8.1} {:>8.1}/{:<8.1}",
            name,
            n,
            rate,
            reference_rate,
            rate / reference_rate,
            hash.0,
            hash.1,
            substring.0,
            substring.1,
            advanced.0,
            advanced.1
        );
    }
    Ok(())
}

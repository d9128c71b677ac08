//! `multiscanner scan PATH...`: a one-shot local run over files and
//! directories on an in-process mesh with embedded stores.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use multiscanner_proto::pb::{
    self, reports_client::ReportsClient, submit_request::Part, tasks_client::TasksClient,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

use crate::{config::Config, mesh::Mesh};

const CHUNK: usize = 256 * 1024;

pub struct ScanOptions {
    pub paths: Vec<PathBuf>,
    pub ndjson: bool,
    pub output: Option<PathBuf>,
    pub workers: u32,
    pub keep_data: bool,
}

/// What happened to one path.
type Outcome = Result<Value, String>;

/// How a scan ended.
pub enum ScanEnd {
    /// Every file was tried; this many paths failed.
    Done { failed: usize },
    /// `interrupt` fired first; the mesh was stopped and the temporary
    /// stores removed.
    Interrupted,
}

/// Runs the scan until it is done or `interrupt` resolves.
pub async fn run(
    mut config: Config,
    opts: ScanOptions,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<ScanEnd> {
    let (files, mut failures, warnings) = collect(&opts.paths);
    for (path, why) in &warnings {
        eprintln!("warning: {}: {why}", path.display());
    }
    if files.is_empty() {
        for (path, why) in &failures {
            eprintln!("error: {}: {why}", path.display());
        }
        anyhow::ensure!(!failures.is_empty(), "no files to scan");
        return Ok(ScanEnd::Done {
            failed: failures.len(),
        });
    }
    // A one-shot run keeps its stores in a temporary directory unless asked.
    let mut tmp = None;
    if !opts.keep_data {
        let dir = tempfile::Builder::new()
            .prefix("multiscanner-scan-")
            .tempdir()?;
        config.data_dir = dir.path().to_owned();
        tmp = Some(dir);
    }
    config.scheduler.grpc_addr = "127.0.0.1:0".parse()?;
    config.scheduler.task_store.clear();
    config.scheduler.report_store.clear();
    config.scheduler.blob_store.clear();
    let mesh = Mesh::start(&config, opts.workers).await?;
    let channel = Endpoint::from_shared(format!("http://{}", mesh.addr))?
        .connect()
        .await?;

    let mut out: Box<dyn Write + Send> = match &opts.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let parallel = (config.worker.effective_concurrency() * opts.workers * 4).max(8) as usize;
    let channel = Arc::new(channel);
    let mut results = futures::stream::iter(files.into_iter().map(|path| {
        let channel = Arc::clone(&channel);
        async move {
            let outcome = scan_one(&channel, &path).await;
            (path, outcome)
        }
    }))
    .buffer_unordered(parallel);

    let mut pretty: BTreeMap<String, Value> = BTreeMap::new();
    let mut interrupt = std::pin::pin!(interrupt);
    loop {
        let next = tokio::select! {
            next = results.next() => next,
            () = &mut interrupt => {
                bar.finish_and_clear();
                drop(results);
                out.flush()?;
                // Stop everything that writes into the stores before the
                // temporary directory goes away with this function.
                mesh.abort().await;
                if let Some(dir) = tmp {
                    remove_soon(dir).await;
                }
                return Ok(ScanEnd::Interrupted);
            }
        };
        let Some((path, outcome)) = next else {
            break;
        };
        bar.inc(1);
        match outcome {
            Ok(report) if opts.ndjson => {
                serde_json::to_writer(&mut out, &report)?;
                out.write_all(b"\n")?;
            }
            Ok(report) => {
                pretty.insert(path.display().to_string(), report);
            }
            Err(e) => failures.push((path, e)),
        }
    }
    bar.finish_and_clear();
    if !opts.ndjson {
        serde_json::to_writer_pretty(&mut out, &pretty)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(results);
    mesh.stop().await?;
    failures.sort();
    for (path, why) in &failures {
        eprintln!("error: {}: {why}", path.display());
    }
    Ok(ScanEnd::Done {
        failed: failures.len(),
    })
}

type Problems = Vec<(PathBuf, String)>;

/// Removes a temporary directory that file operations still in flight on
/// the blocking pool (aborted tasks do not stop those) may write into for a
/// moment.
async fn remove_soon(dir: tempfile::TempDir) {
    let path = dir.keep();
    for _ in 0..40 {
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ if path.exists() => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            _ => return,
        }
    }
    eprintln!("warning: could not remove {}", path.display());
}

/// Expands directories (recursively, following links) into regular files.
/// Paths that cannot be scanned are returned with the reason; a link back
/// to a directory being walked (`/usr/bin/X11 -> .`) is only a warning, as
/// every file under it is scanned through the other path.
fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Problems, Problems) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for root in paths {
        for entry in walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
        {
            match entry {
                Ok(e) if e.file_type().is_file() => files.push(e.into_path()),
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => {
                    let kind = describe(e.file_type());
                    failures.push((
                        e.into_path(),
                        format!("not a regular file ({kind}); skipped"),
                    ));
                }
                Err(e) => {
                    let path = e.path().map(Path::to_owned).unwrap_or_else(|| root.clone());
                    if let Some(ancestor) = e.loop_ancestor() {
                        let why = format!(
                            "symbolic link loop back to {}; not followed",
                            ancestor.display()
                        );
                        warnings.push((path, why));
                        continue;
                    }
                    let why = if let Some(io) = e.io_error() {
                        io.to_string()
                    } else {
                        e.to_string()
                    };
                    failures.push((path, why));
                }
            }
        }
    }
    (files, failures, warnings)
}

fn describe(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_symlink() {
        "broken symbolic link"
    } else {
        "special file"
    }
}

/// Submits one file, waits for its task to end and fetches its report.
async fn scan_one(channel: &Channel, path: &Path) -> Outcome {
    let mut tasks = TasksClient::new(channel.clone());
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open: {e}"))?;
    let header = pb::SubmissionHeader {
        filename: path.display().to_string(),
        duplicate: pb::DuplicatePolicy::Rescan as i32,
        ..Default::default()
    };
    // Read errors end the upload stream with an error the scheduler sees as
    // an interrupted upload; the reason is kept here for the message.
    let (err_tx, mut err_rx) = tokio::sync::oneshot::channel::<String>();
    let upload = async_stream::stream! {
        yield pb::SubmitRequest { part: Some(Part::Header(header)) };
        let mut buf = vec![0u8; CHUNK];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => yield pb::SubmitRequest {
                    part: Some(Part::Chunk(bytes::Bytes::copy_from_slice(&buf[..n]))),
                },
                Err(e) => {
                    let _ = err_tx.send(format!("cannot read: {e}"));
                    // A header in the middle makes the scheduler refuse
                    // the upload, so nothing is stored.
                    yield pb::SubmitRequest { part: Some(Part::Header(Default::default())) };
                    break;
                }
            }
        }
    };
    let submitted = tasks.submit(upload).await;
    if let Ok(read_error) = err_rx.try_recv() {
        return Err(read_error);
    }
    let task = submitted
        .map_err(|s| s.message().to_owned())?
        .into_inner()
        .task
        .ok_or("the scheduler returned no task")?;
    let mut events = tasks
        .watch_task(pb::WatchTaskRequest {
            task_id: task.task_id,
        })
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    let mut last = task;
    while let Some(event) = events.message().await.map_err(|s| s.message().to_owned())? {
        if let Some(pb::task_event::Event::Status(t)) = event.event {
            last = t;
        }
    }
    let status = pb::TaskStatus::try_from(last.status).unwrap_or(pb::TaskStatus::Unspecified);
    if status != pb::TaskStatus::Complete {
        return Err(format!(
            "task {} ended {}: {}",
            last.task_id,
            status.as_str_name(),
            last.error
        ));
    }
    let report = ReportsClient::new(channel.clone())
        .get_report(pb::GetReportRequest {
            task_id: last.task_id,
        })
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    serde_json::from_str(&report.report_json).map_err(|e| format!("unreadable report: {e}"))
}

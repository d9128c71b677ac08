//! The worker's side of `WorkerHub.Connect`: dial a scheduler, announce the
//! modules, take assignments within the free slots, stream results back.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use multiscanner_proto::{
    convert::millis,
    domain::{Sha256, now_millis},
    pb::{
        self, scheduler_message::Msg as In, worker_hub_client::WorkerHubClient,
        worker_message::Msg as Out,
    },
    trace,
};
use tokio::{io::AsyncWriteExt, sync::mpsc, task::JoinSet, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::{Instrument, info, info_span, warn};

use crate::{config::WorkerConfig, module::ScanInput, registry::Registry, runner};

/// Bytes per uploaded chunk of an extracted file.
const CHUNK: usize = 256 * 1024;

/// How a session with one scheduler ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Connects to the configured schedulers and works until `shutdown`.
/// In-flight assignments are finished before it returns.
pub async fn run_with(
    registry: Arc<Registry>,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.schedulers.is_empty(),
        "no scheduler URL configured (worker.schedulers / --scheduler)"
    );
    for url in &config.schedulers {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && Endpoint::from_shared(url.clone()).is_ok();
        anyhow::ensure!(
            ok,
            "invalid scheduler URL {url:?}: expected http://HOST:PORT"
        );
    }
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let worker = Arc::new(Worker {
        id: config.effective_worker_id(),
        concurrency: config.effective_concurrency(),
        work_dir: if config.work_dir.as_os_str().is_empty() {
            std::env::temp_dir()
        } else {
            config.work_dir.clone()
        },
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        registry,
    });
    tokio::fs::create_dir_all(&worker.work_dir)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot create work dir {}: {e}", worker.work_dir.display())
        })?;
    let modules: Vec<&str> = worker
        .registry
        .modules()
        .iter()
        .map(|s| s.module.name())
        .collect();
    info!(worker = %worker.id, concurrency = worker.concurrency, modules = ?modules, "worker started");
    let mut failures = 0u32;
    for url in config.schedulers.iter().cycle() {
        match worker.session(url, &token).await {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Lost(why)) => {
                warn!(scheduler = %url, reason = %why, "lost the scheduler");
                failures = 0;
            }
            Err(e) => {
                warn!(scheduler = %url, error = %error_chain(e.as_ref()), "cannot reach the scheduler");
                failures += 1;
            }
        }
        let backoff = Duration::from_millis(100 << failures.min(6)).min(Duration::from_secs(5));
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
    }
    info!(worker = %worker.id, "worker stopped");
    Ok(())
}

/// An error with its causes: transport errors say only "transport error"
/// at the top and why (connection refused...) further down.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

struct Worker {
    id: String,
    concurrency: u32,
    work_dir: PathBuf,
    shutdown_grace: Duration,
    registry: Arc<Registry>,
}

impl Worker {
    fn hello(&self) -> pb::WorkerMessage {
        let modules = self
            .registry
            .modules()
            .iter()
            .map(|s| pb::ModuleInfo {
                name: s.module.name().into(),
                version: s.module.version().into(),
                requires: s.module.requires().iter().map(|r| (*r).into()).collect(),
                unusable_reason: s.module.check().err().unwrap_or_default(),
                config_hash: s.config_hash.clone(),
            })
            .collect();
        pb::WorkerMessage {
            msg: Some(Out::Hello(pb::Hello {
                worker_id: self.id.clone(),
                hostname: hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                modules,
                concurrency: self.concurrency,
            })),
        }
    }

    async fn session(
        self: &Arc<Self>,
        url: &str,
        token: &CancellationToken,
    ) -> anyhow::Result<SessionEnd> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect()
            .await?;
        let mut hub = WorkerHubClient::new(channel.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        let (out_tx, out_rx) = mpsc::channel(self.concurrency as usize * 8 + 16);
        out_tx.send(self.hello()).await?;
        let mut inbound = hub.connect(ReceiverStream::new(out_rx)).await?.into_inner();
        let heartbeat_ms = match inbound.message().await? {
            Some(pb::SchedulerMessage {
                msg: Some(In::Welcome(w)),
            }) => w.heartbeat_interval_ms.max(100),
            _ => anyhow::bail!("the scheduler did not answer Hello with Welcome"),
        };
        info!(scheduler = %url, worker = %self.id, concurrency = self.concurrency, "connected");
        let mut heartbeat = tokio::time::interval(Duration::from_millis(u64::from(heartbeat_ms)));
        let mut jobs: JoinSet<String> = JoinSet::new();
        let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        let mut draining = false;
        // Set on shutdown: when held work must be handed back.
        let mut hand_back_at: Option<Instant> = None;
        let end = loop {
            tokio::select! {
                () = token.cancelled(), if !draining => {
                    // Finish what we hold; the scheduler sees the results
                    // before the stream closes.
                    draining = true;
                    if jobs.is_empty() {
                        break SessionEnd::Shutdown;
                    }
                    info!(held = running.len(), grace = ?self.shutdown_grace, "shutting down: finishing held work");
                    hand_back_at = Some(Instant::now() + self.shutdown_grace);
                }
                () = tokio::time::sleep_until(hand_back_at.unwrap_or_else(Instant::now)), if hand_back_at.is_some() => {
                    // Out of time: stop what still runs and give it back.
                    for (assignment_id, job) in running.drain() {
                        job.abort();
                        warn!(assignment = %assignment_id, "handing back unfinished work");
                        let back = pb::WorkerMessage {
                            msg: Some(Out::NodeFinished(pb::NodeFinished {
                                assignment_id,
                                error: String::new(),
                                handed_back: true,
                            })),
                        };
                        let _ = out_tx.send(back).await;
                    }
                    jobs.shutdown().await;
                    break SessionEnd::Shutdown;
                }
                msg = inbound.message() => match msg {
                    Ok(Some(pb::SchedulerMessage { msg: Some(In::Assignment(a)) })) => {
                        if draining {
                            continue;
                        }
                        let id = a.assignment_id.clone();
                        let me = Arc::clone(self);
                        let (hub, tx) = (WorkerHubClient::new(channel.clone()), out_tx.clone());
                        let handle = jobs.spawn(async move {
                            let id = a.assignment_id.clone();
                            me.process(a, hub, tx).await;
                            id
                        });
                        running.insert(id, handle);
                    }
                    Ok(Some(pb::SchedulerMessage { msg: Some(In::Cancel(c)) })) => {
                        if let Some(h) = running.remove(&c.assignment_id) {
                            info!(assignment = %c.assignment_id, reason = %c.reason, "assignment cancelled");
                            h.abort();
                        }
                    }
                    Ok(Some(pb::SchedulerMessage { msg: Some(In::Drain(_)) })) => {
                        info!("scheduler asked to drain");
                        draining = true;
                        if jobs.is_empty() {
                            break SessionEnd::Lost("drained".into());
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(SessionEnd::Lost("stream closed".into())),
                    Err(status) => return Ok(SessionEnd::Lost(status.to_string())),
                },
                _ = heartbeat.tick() => {
                    let held: Vec<String> = running.keys().cloned().collect();
                    let free = self.concurrency.saturating_sub(held.len() as u32);
                    let beat = pb::WorkerMessage {
                        msg: Some(Out::Heartbeat(pb::Heartbeat { free_slots: free, assignment_ids: held })),
                    };
                    if out_tx.send(beat).await.is_err() {
                        return Ok(SessionEnd::Lost("stream closed".into()));
                    }
                }
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Ok(id) = done {
                        running.remove(&id);
                    }
                    if draining && jobs.is_empty() {
                        break if token.is_cancelled() {
                            SessionEnd::Shutdown
                        } else {
                            SessionEnd::Lost("drained".into())
                        };
                    }
                }
            }
        };
        // Close our side and let the scheduler close its own, so that it
        // sees a clean goodbye rather than a broken connection.
        drop(out_tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        Ok(end)
    }

    /// Fetches the sample, runs the modules, reports each result and then
    /// the node's end.
    async fn process(
        &self,
        a: pb::Assignment,
        hub: WorkerHubClient<Channel>,
        tx: mpsc::Sender<pb::WorkerMessage>,
    ) {
        let span = info_span!("node", task_id = a.task_id, node_id = a.node_id);
        trace::set_parent_from_map(&span, &a.trace_context);
        let assignment_id = a.assignment_id.clone();
        let error = self
            .analyse(a, hub, tx.clone())
            .instrument(span)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = tx
            .send(pb::WorkerMessage {
                msg: Some(Out::NodeFinished(pb::NodeFinished {
                    assignment_id,
                    error,
                    handed_back: false,
                })),
            })
            .await;
    }

    async fn analyse(
        &self,
        a: pb::Assignment,
        mut hub: WorkerHubClient<Channel>,
        tx: mpsc::Sender<pb::WorkerMessage>,
    ) -> anyhow::Result<()> {
        let sha256: Sha256 = a
            .sha256
            .parse()
            .map_err(|e| anyhow::anyhow!("bad sha256 in assignment: {e}"))?;
        let sample = self.fetch(&mut hub, &a).await?;
        let deadline = a.deadline.as_ref().map(|d| {
            let left = (millis(d) - now_millis()).max(0) as u64;
            Instant::now() + Duration::from_millis(left)
        });
        let input = ScanInput {
            path: Arc::new(sample.path().to_owned()),
            filename: a.filename.clone(),
            sha256,
            size: a.size,
            depth: a.depth,
            upstream: Arc::default(),
            archive_password: Some(a.archive_password.clone()).filter(|p| !p.is_empty()),
        };
        let assignment_id = a.assignment_id.clone();
        let cached: HashSet<runner::CacheKey> = a
            .cached
            .iter()
            .map(|c| {
                (
                    c.module.clone(),
                    c.module_version.clone(),
                    c.config_hash.clone(),
                )
            })
            .collect();
        let (results_tx, mut results_rx) = mpsc::channel(4);
        let run = runner::run_modules(
            &self.registry,
            input,
            &a.modules,
            &cached,
            deadline,
            results_tx,
        );
        let report = async {
            while let Some(run) = results_rx.recv().await {
                for child in &run.children {
                    if let Err(e) = upload_child(&mut hub, &assignment_id, &run.module, child).await
                    {
                        warn!(module = %run.module, error = %e, "could not upload an extracted file");
                    }
                }
                let (result_json, error) = match run.outcome {
                    Ok(v) => (
                        v.unwrap_or(serde_json::Value::Null).to_string(),
                        String::new(),
                    ),
                    Err(e) => (String::new(), e),
                };
                let msg = pb::WorkerMessage {
                    msg: Some(Out::ModuleResult(pb::ModuleResult {
                        assignment_id: assignment_id.clone(),
                        module: run.module,
                        module_version: run.version,
                        result_json: if run.cached {
                            String::new()
                        } else {
                            result_json
                        },
                        error,
                        duration_ms: run.duration.as_millis() as u64,
                        config_hash: run.config_hash,
                        cached: run.cached,
                    })),
                };
                let _ = tx.send(msg).await;
            }
        };
        tokio::join!(run, report);
        drop(sample);
        Ok(())
    }

    /// Puts the assignment's sample into a private temporary file: from
    /// the assignment itself when it carries it, else streamed from the
    /// scheduler.
    async fn fetch(
        &self,
        hub: &mut WorkerHubClient<Channel>,
        a: &pb::Assignment,
    ) -> anyhow::Result<tempfile::NamedTempFile> {
        let staged = tempfile::Builder::new()
            .prefix("sample-")
            .tempfile_in(&self.work_dir)?;
        let mut file = tokio::fs::File::from_std(staged.reopen()?);
        if !a.content.is_empty() {
            anyhow::ensure!(
                a.content.len() as u64 == a.size,
                "sample truncated in transit: {} of {} bytes",
                a.content.len(),
                a.size
            );
            file.write_all(&a.content).await?;
            file.flush().await?;
            return Ok(staged);
        }
        let mut request = tonic::Request::new(pb::FetchSampleRequest {
            assignment_id: a.assignment_id.clone(),
        });
        trace::inject_current(request.metadata_mut());
        let mut chunks = hub.fetch_sample(request).await?.into_inner();
        let mut got = 0u64;
        while let Some(chunk) = chunks.message().await? {
            got += chunk.data.len() as u64;
            file.write_all(&chunk.data).await?;
        }
        file.flush().await?;
        anyhow::ensure!(
            got == a.size,
            "sample truncated in transit: {got} of {} bytes",
            a.size
        );
        Ok(staged)
    }
}

async fn upload_child(
    hub: &mut WorkerHubClient<Channel>,
    assignment_id: &str,
    module: &str,
    child: &crate::module::ExtractedFile,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let header = pb::ChildUpload {
        part: Some(pb::child_upload::Part::Header(pb::ChildHeader {
            assignment_id: assignment_id.to_owned(),
            filename: child.filename.clone(),
            created_by: module.to_owned(),
        })),
    };
    let mut file = tokio::fs::File::open(child.file.path()).await?;
    let stream = async_stream::stream! {
        yield header;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match file.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => yield pb::ChildUpload {
                    part: Some(pb::child_upload::Part::Chunk(bytes::Bytes::copy_from_slice(&buf[..n]))),
                },
            }
        }
    };
    let mut request = tonic::Request::new(stream);
    trace::inject_current(request.metadata_mut());
    hub.upload_child(request).await?;
    Ok(())
}

//! The internal `WorkerHub` service: worker streams, sample downloads and
//! uploads of extracted files.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use multiscanner_proto::{
    pb::{self, child_upload::Part, worker_hub_server::WorkerHub, worker_message::Msg},
    trace,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use crate::{core::Scheduler, error::SchedulerError, upload::Upload};

/// Bytes per `SampleChunk`.
pub(crate) const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct HubApi(pub Arc<Scheduler>);

pub(crate) type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerHub for HubApi {
    type ConnectStream = Out<pb::SchedulerMessage>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::WorkerMessage {
                msg: Some(Msg::Hello(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "invalid field `hello`: a worker's first message must be Hello",
                ));
            }
        };
        if hello.concurrency == 0 {
            return Err(Status::invalid_argument(
                "invalid field `concurrency`: must be at least 1",
            ));
        }
        // One id per connection: a worker that reconnects is a new peer and
        // whatever the old connection held has been re-queued.
        let conn_id = format!("{}/{}", hello.worker_id, uuid::Uuid::new_v4());
        let (tx, rx) = mpsc::channel(hello.concurrency as usize + 16);
        let scheduler = Arc::clone(&self.0);
        tx.send(Ok(pb::SchedulerMessage {
            msg: Some(pb::scheduler_message::Msg::Welcome(pb::Welcome {
                scheduler_id: scheduler.config.grpc_addr.to_string(),
                heartbeat_interval_ms: scheduler.config.heartbeat_interval_ms,
            })),
        }))
        .await
        .map_err(|_| Status::unavailable("worker went away"))?;
        info!(worker = %conn_id, host = %hello.hostname, concurrency = hello.concurrency, "worker connected");
        scheduler.workers.add(&conn_id, &hello, tx);
        tokio::spawn(async move {
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(pb::WorkerMessage { msg: Some(m) })) => m,
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(worker = %conn_id, error = %e, "worker stream broke");
                        break;
                    }
                };
                if let Err(e) = record(&scheduler, &conn_id, msg).await {
                    warn!(worker = %conn_id, error = %e, "could not record a worker message");
                }
            }
            info!(worker = %conn_id, "worker disconnected");
            scheduler.on_worker_gone(&conn_id).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchSampleStream = Out<pb::SampleChunk>;

    async fn fetch_sample(
        &self,
        request: Request<pb::FetchSampleRequest>,
    ) -> Result<Response<Self::FetchSampleStream>, Status> {
        let span = info_span!("fetch_sample");
        trace::set_parent_from_metadata(&span, request.metadata());
        let id = &request.get_ref().assignment_id;
        let work = self.0.workers.find(id).ok_or_else(|| {
            Status::not_found(format!("assignment {id} is not held by any worker"))
        })?;
        let reader = self
            .0
            .stores
            .blobs
            .open(work.sha256)
            .instrument(span)
            .await
            .map_err(SchedulerError::from)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK).map(|c| {
            c.map(|data| pb::SampleChunk { data })
                .map_err(|e| Status::unavailable(format!("reading the sample failed: {e}")))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn upload_child(
        &self,
        request: Request<Streaming<pb::ChildUpload>>,
    ) -> Result<Response<pb::ChildUploadResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::ChildUpload {
                part: Some(Part::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "invalid field `header`: the first message must be the child header",
                ));
            }
        };
        let mut upload = Upload::new(
            self.0.stores.blobs.staging_dir().to_owned(),
            self.0.config.max_upload_bytes,
        );
        while let Some(msg) = stream.message().await? {
            let Some(Part::Chunk(chunk)) = msg.part else {
                return Err(Status::invalid_argument(
                    "invalid field `chunk`: only the first message may be a header",
                ));
            };
            upload.write(&chunk).await?;
        }
        let response = self.0.add_child(header, upload.finish().await?).await?;
        Ok(Response::new(response))
    }
}

/// Records one message from a worker. Results and node ends are retried
/// with backoff while the store is unavailable, for up to a lease (by then
/// the node has been taken back and will run again); heartbeats are not
/// (the next one follows shortly).
async fn record(scheduler: &Scheduler, conn_id: &str, msg: Msg) -> Result<(), SchedulerError> {
    let give_up = tokio::time::Instant::now() + scheduler.config.lease();
    let mut delay = Duration::from_millis(100);
    loop {
        let outcome = match msg.clone() {
            Msg::Hello(_) => Ok(()),
            Msg::Heartbeat(h) => return scheduler.on_heartbeat(conn_id, h).await,
            Msg::ModuleResult(r) => scheduler.on_module_result(conn_id, r).await,
            Msg::NodeFinished(f) => scheduler.on_node_finished(conn_id, f).await,
        };
        match outcome {
            Err(SchedulerError::Unavailable(why)) if tokio::time::Instant::now() < give_up => {
                warn!(worker = %conn_id, error = %why, "store unavailable; retrying a worker message");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

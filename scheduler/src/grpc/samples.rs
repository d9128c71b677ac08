//! The public `Samples` and `System` services: sample downloads and what
//! the connected workers offer.

use std::sync::Arc;

use multiscanner_proto::pb::{self, samples_server::Samples, system_server::System};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::sha256;
use crate::{
    core::Scheduler,
    error::SchedulerError,
    grpc::hub::{CHUNK, Out},
};

#[derive(Debug, Clone)]
pub struct SamplesApi(pub Arc<Scheduler>);

#[tonic::async_trait]
impl Samples for SamplesApi {
    type GetSampleStream = Out<pb::SampleData>;

    async fn get_sample(
        &self,
        request: Request<pb::GetSampleRequest>,
    ) -> Result<Response<Self::GetSampleStream>, Status> {
        let sha = sha256(&request.get_ref().sha256)?;
        let reader = self
            .0
            .stores
            .blobs
            .open(sha)
            .instrument(tracing::info_span!("get_sample", %sha))
            .await
            .map_err(SchedulerError::from)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK).map(|c| {
            c.map(|data| pb::SampleData { data })
                .map_err(|e| Status::unavailable(format!("reading the sample failed: {e}")))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[derive(Debug, Clone)]
pub struct SystemApi(pub Arc<Scheduler>);

#[tonic::async_trait]
impl System for SystemApi {
    async fn list_modules(
        &self,
        _: Request<pb::ListModulesRequest>,
    ) -> Result<Response<pb::ListModulesResponse>, Status> {
        let (modules, workers) = self.0.workers.modules();
        Ok(Response::new(pb::ListModulesResponse { modules, workers }))
    }
}

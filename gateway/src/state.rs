//! What every handler shares: gRPC clients of the scheduler's public
//! services, the settings, and the caller whose token travels on.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use multiscanner_proto::{
    auth::AuthConfig,
    pb::{
        reports_client::ReportsClient, samples_client::SamplesClient, system_client::SystemClient,
        tasks_client::TasksClient,
    },
};
use tonic::{metadata::MetadataValue, transport::Channel};

use crate::{config::GatewayConfig, error::ApiError};

/// Largest gRPC message (reports can be large).
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct AppState {
    pub channel: Channel,
    pub config: Arc<GatewayConfig>,
    pub auth: Arc<AuthConfig>,
}

impl AppState {
    pub fn new(config: GatewayConfig, auth: AuthConfig) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(config.scheduler.clone())
            .map_err(|e| anyhow::anyhow!("invalid scheduler URL {:?}: {e}", config.scheduler))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            channel,
            config: Arc::new(config),
            auth: Arc::new(auth),
        })
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn reports(&self) -> ReportsClient<Channel> {
        ReportsClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn samples(&self) -> SamplesClient<Channel> {
        SamplesClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn system(&self) -> SystemClient<Channel> {
        SystemClient::new(self.channel.clone())
    }
}

/// The caller's `Authorization` header, passed on to the scheduler, which
/// checks the same tokens.
#[derive(Clone, Debug, Default)]
pub struct Caller(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Caller {
    /// A gRPC request carrying the caller's token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        r
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        ))
    }
}

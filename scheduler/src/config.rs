//! Scheduler settings (the `[scheduler]` section of the config file).

use std::{net::SocketAddr, time::Duration};

use multiscanner_proto::auth::AuthConfig;
use serde::{Deserialize, Serialize};

pub use crate::store::s3_blobs::S3Settings;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Where the gRPC API listens (port 0: any free port).
    pub grpc_addr: SocketAddr,
    /// Task store URL (`sqlite://PATH`); empty: under the data directory.
    pub task_store: String,
    /// Report store URL (`sqlite://PATH`, or `http(s)://HOST:PORT` of
    /// Elasticsearch / OpenSearch); empty: under the data directory.
    pub report_store: String,
    /// Sample store URL (`file://DIR` or `s3://BUCKET[/PREFIX]`); empty:
    /// under the data directory.
    pub blob_store: String,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Deepest extraction level (the submitted file is depth 0).
    pub max_depth: u32,
    /// Longest a task may take from its first assignment, in seconds.
    pub task_deadline_secs: u64,
    /// How often workers report their load, in milliseconds.
    pub heartbeat_interval_ms: u32,
    /// How long an assignment stays with a worker without news from it
    /// (heartbeats extend it), in seconds; then it is taken back.
    pub lease_secs: u64,
    /// How many times a file node is handed out before it is given up on.
    pub max_attempts: u32,
    /// A waiting task gains one priority level per this many seconds, so
    /// low priorities still progress under constant high-priority load.
    pub aging_secs: u64,
    /// Endpoint and credentials of an `s3://` sample store.
    pub s3: S3Settings,
    /// API tokens required on the public services (the top-level `[auth]`
    /// section, shared with the gateway).
    #[serde(skip)]
    pub auth: AuthConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7700)),
            task_store: String::new(),
            report_store: String::new(),
            blob_store: String::new(),
            max_upload_bytes: 4 << 30,
            max_depth: 8,
            task_deadline_secs: 3600,
            heartbeat_interval_ms: 5000,
            lease_secs: 30,
            max_attempts: 3,
            aging_secs: 60,
            s3: S3Settings::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl SchedulerConfig {
    pub fn task_deadline(&self) -> Duration {
        Duration::from_secs(self.task_deadline_secs)
    }

    pub fn aging(&self) -> Duration {
        Duration::from_secs(self.aging_secs.max(1))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1).into())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

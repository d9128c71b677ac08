//! Gateway settings (the `[gateway]` section of the config file).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where the REST API listens.
    pub http_addr: SocketAddr,
    /// The scheduler's gRPC URL (`http://HOST:PORT`).
    pub scheduler: String,
    /// Largest accepted upload, in bytes; larger ones get 413.
    pub max_upload_bytes: u64,
    /// Largest report accepted by an import, in bytes.
    pub max_import_bytes: u64,
    /// Origins allowed to call the API from a browser (a regular
    /// expression matched against the whole `Origin`); empty: none.
    pub cors_origin: String,
    /// Members taken from one archive submitted with `archive-analyze`, and
    /// their bytes in all.
    pub max_archive_members: u32,
    pub max_archive_bytes: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            scheduler: "http://127.0.0.1:7700".into(),
            max_upload_bytes: 4 << 30,
            max_import_bytes: 64 << 20,
            cors_origin: r"https?://localhost(:\d+)?".into(),
            max_archive_members: 1000,
            max_archive_bytes: 1 << 30,
        }
    }
}

//! `metadefender`: the sample scanned by an OPSWAT MetaDefender Core
//! server's engines through its v4 REST API: `POST /file` with the bytes
//! (key in the `apikey` header) gives a `data_id`; `GET /file/{data_id}`
//! is polled until `scan_results.progress_percentage` reaches 100; the
//! verdict and each engine's threat name are kept.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::web_api::{check_url, client, redacted, send_ok};
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

/// MetaDefender's per-engine `scan_result_i` codes.
const RESULTS: &[&str] = &[
    "No Threat Detected",
    "Infected/Known",
    "Suspicious",
    "Failed To Scan",
    "Cleaned/Deleted",
    "Unknown",
    "Quarantined",
    "Skipped Clean",
    "Skipped Infected",
    "Exceeded Archive Depth",
    "Not Scanned",
    "Aborted",
    "Encrypted",
    "Exceeded Archive Size",
    "Exceeded Archive File Number",
    "Password Protected Document",
    "Exceeded Archive Timeout",
];

/// Settings of the `metadefender` module (`[worker.modules.metadefender]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaDefenderConfig {
    /// The server's REST base URL (MetaDefender Core listens on 8008).
    pub url: String,
    /// The API key, if the server requires one.
    pub api_key: String,
    pub poll_interval_secs: u64,
    /// Longest wait for the scan to finish, in seconds.
    pub analysis_timeout_secs: u64,
    /// Longest wait for one HTTP answer, in seconds.
    pub request_timeout_secs: u64,
}

impl std::fmt::Debug for MetaDefenderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaDefenderConfig")
            .field("url", &self.url)
            .field("api_key", &redacted(&self.api_key))
            .finish_non_exhaustive()
    }
}

impl Default for MetaDefenderConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8008".into(),
            api_key: String::new(),
            poll_interval_secs: 5,
            analysis_timeout_secs: 300,
            request_timeout_secs: 60,
        }
    }
}

#[derive(Debug)]
pub struct MetaDefender {
    config: MetaDefenderConfig,
    http: reqwest::Client,
}

impl MetaDefender {
    pub fn new(config: MetaDefenderConfig) -> Self {
        let http = client(config.request_timeout_secs);
        Self { config, http }
    }
}

/// Sends with the key; the JSON of a 2xx answer, else an error with the
/// server's `err` text.
async fn call(
    config: &MetaDefenderConfig,
    step: &str,
    req: reqwest::RequestBuilder,
) -> Result<Value, ModuleError> {
    let req = if config.api_key.is_empty() {
        req
    } else {
        req.header("apikey", &config.api_key)
    };
    send_ok("MetaDefender", step, &config.url, req, &["/err"]).await
}

fn summarise(data_id: &str, body: &Value) -> Value {
    let r = &body["scan_results"];
    let mut detections: Vec<Value> = r["scan_details"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, d)| d["threat_found"].as_str().is_some_and(|t| !t.is_empty()))
        .map(|(engine, d)| {
            let code = d["scan_result_i"].as_u64().unwrap_or(5) as usize;
            json!({
                "engine": engine,
                "threat": d["threat_found"],
                "scan_result": RESULTS.get(code).copied().unwrap_or("Unknown"),
                "definitions": d["def_time"],
            })
        })
        .collect();
    detections.sort_by(|a, b| a["engine"].as_str().cmp(&b["engine"].as_str()));
    json!({
        "data_id": data_id,
        "overall": r["scan_all_result_a"],
        "engines": r["total_avs"],
        "detected": r["total_detected_avs"],
        "detections": detections,
        "verdict": body["process_info"]["result"],
    })
}

async fn scan_file(
    config: MetaDefenderConfig,
    http: reqwest::Client,
    input: ScanInput,
) -> Result<Value, ModuleError> {
    let base = config.url.trim_end_matches('/').to_owned();
    let file = tokio::fs::File::open(&*input.path).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let submitted = call(
        &config,
        "submission",
        http.post(format!("{base}/file"))
            .header("content-type", "application/octet-stream")
            // The server's records show this name; it is the digest, not
            // the hostile submitted name.
            .header("filename", input.sha256.to_string())
            .body(body),
    )
    .await?;
    let data_id = submitted["data_id"]
        .as_str()
        .ok_or_else(|| ModuleError::Failed(format!("MetaDefender gave no data_id: {submitted}")))?
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(config.analysis_timeout_secs);
    let every = Duration::from_secs(config.poll_interval_secs.max(1));
    loop {
        let body = call(
            &config,
            "result",
            http.get(format!("{base}/file/{data_id}")),
        )
        .await?;
        if body["scan_results"]["progress_percentage"].as_u64() == Some(100) {
            return Ok(summarise(&data_id, &body));
        }
        if tokio::time::Instant::now() + every > deadline {
            return Err(ModuleError::Failed(format!(
                "MetaDefender did not finish scan {data_id} within {}s",
                config.analysis_timeout_secs
            )));
        }
        tokio::time::sleep(every).await;
    }
}

impl Module for MetaDefender {
    fn name(&self) -> &'static str {
        "metadefender"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Antivirus"
    }

    fn config(&self) -> Value {
        json!({"url": self.config.url})
    }

    fn check(&self) -> Result<(), String> {
        check_url(&self.config.url)
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let checked = self.check();
        let (config, http) = (self.config.clone(), self.http.clone());
        Box::pin(async move {
            checked.map_err(ModuleError::Failed)?;
            Ok(ModuleOutput::result(scan_file(config, http, input).await?))
        })
    }
}

//! `virustotal`: what VirusTotal already knows about the sample, looked up
//! by SHA-256 with its v3 API (`GET /files/{id}`, key in the `x-apikey`
//! header). The sample itself is never uploaded. Requests are spaced to the
//! key's quota; a `429 QuotaExceededError` is retried after the wait the
//! answer asks for (or one quota interval), a few times at most.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::web_api::{check_url, client, redacted, send};
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

/// File names listed at most.
const MAX_NAMES: usize = 20;
/// Longest wait for a quota to free up before one retry.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

/// Settings of the `virustotal` module (`[worker.modules.virustotal]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirusTotalConfig {
    /// The API key (the environment can give it:
    /// `MULTISCANNER_WORKER__MODULES__VIRUSTOTAL__API_KEY`).
    pub api_key: String,
    /// The API's base URL.
    pub url: String,
    /// Longest wait for one answer, in seconds.
    pub timeout_secs: u64,
    /// Requests the key may make per minute (the public API allows 4).
    pub requests_per_minute: u32,
    /// Times a request refused for quota is tried again.
    pub max_retries: u32,
}

impl std::fmt::Debug for VirusTotalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirusTotalConfig")
            .field("api_key", &redacted(&self.api_key))
            .field("url", &self.url)
            .field("requests_per_minute", &self.requests_per_minute)
            .finish_non_exhaustive()
    }
}

impl Default for VirusTotalConfig {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            url: "https://www.virustotal.com/api/v3".into(),
            timeout_secs: 30,
            requests_per_minute: 4,
            max_retries: 3,
        }
    }
}

#[derive(Debug)]
pub struct VirusTotal {
    config: VirusTotalConfig,
    http: reqwest::Client,
    /// When the next request may leave (shared by every scan).
    next_slot: Arc<Mutex<Instant>>,
}

impl VirusTotal {
    pub fn new(config: VirusTotalConfig) -> Self {
        let http = client(config.timeout_secs);
        Self {
            config,
            http,
            next_slot: Arc::new(Mutex::new(Instant::now())),
        }
    }
}

fn interval(config: &VirusTotalConfig) -> Duration {
    Duration::from_secs_f64(60.0 / f64::from(config.requests_per_minute.max(1)))
}

/// Waits for this request's turn under the quota.
async fn take_slot(next_slot: &Mutex<Instant>, every: Duration) {
    let at = {
        let mut next = next_slot.lock().unwrap_or_else(|e| e.into_inner());
        let at = (*next).max(Instant::now());
        *next = at + every;
        at
    };
    tokio::time::sleep_until(at).await;
}

/// VirusTotal's error object: `{"error": {"code": ..., "message": ...}}`.
fn api_error(body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("no error code");
    match body["error"]["message"].as_str() {
        Some(m) => format!("{code}: {m}"),
        None => code.to_owned(),
    }
}

/// The fields analysts read, from a file object's attributes.
fn summarise(sha256: &str, body: &Value) -> Value {
    let a = &body["data"]["attributes"];
    let stats = &a["last_analysis_stats"];
    let mut detections: Vec<Value> = a["last_analysis_results"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| matches!(r["category"].as_str(), Some("malicious" | "suspicious")))
        .map(|(engine, r)| {
            json!({"engine": engine, "category": r["category"], "result": r["result"]})
        })
        .collect();
    detections.sort_by(|x, y| x["engine"].as_str().cmp(&y["engine"].as_str()));
    let names: Vec<&Value> = a["names"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_NAMES)
        .collect();
    let engines = a["last_analysis_results"]
        .as_object()
        .map_or(0, |r| r.len());
    json!({
        "found": true,
        "malicious": stats["malicious"],
        "suspicious": stats["suspicious"],
        "undetected": stats["undetected"],
        "harmless": stats["harmless"],
        "engines": engines,
        "detections": detections,
        "meaningful_name": a["meaningful_name"],
        "names": names,
        "type_description": a["type_description"],
        "tags": a["tags"],
        "reputation": a["reputation"],
        "times_submitted": a["times_submitted"],
        "first_submission_date": a["first_submission_date"],
        "last_analysis_date": a["last_analysis_date"],
        "permalink": format!("https://www.virustotal.com/gui/file/{sha256}"),
    })
}

async fn lookup(
    http: reqwest::Client,
    config: VirusTotalConfig,
    next_slot: Arc<Mutex<Instant>>,
    sha256: String,
) -> Result<Value, ModuleError> {
    let url = format!("{}/files/{sha256}", config.url.trim_end_matches('/'));
    let every = interval(&config);
    let mut attempt = 0;
    loop {
        take_slot(&next_slot, every).await;
        let req = http
            .get(&url)
            .header("x-apikey", &config.api_key)
            .header("accept", "application/json");
        let answer = send("VirusTotal", "lookup", &config.url, req).await?;
        let status = answer.status.as_u16();
        let retry_after = answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = answer.body;
        match status {
            200 => return Ok(summarise(&sha256, &body)),
            404 => return Ok(json!({"found": false})),
            429 | 503 if attempt < config.max_retries => {
                attempt += 1;
                let wait = retry_after.unwrap_or(every).min(MAX_RETRY_WAIT);
                tracing::info!(status, attempt, ?wait, "VirusTotal asked to slow down");
                tokio::time::sleep(wait).await;
            }
            429 => {
                return Err(ModuleError::Failed(format!(
                    "VirusTotal quota exceeded after {attempt} retries ({})",
                    api_error(&body)
                )));
            }
            _ => {
                return Err(ModuleError::Failed(format!(
                    "VirusTotal answered {status} ({})",
                    api_error(&body)
                )));
            }
        }
    }
}

impl Module for VirusTotal {
    fn name(&self) -> &'static str {
        "virustotal"
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
        if self.config.api_key.trim().is_empty() {
            return Err("no API key: set api_key under [worker.modules.virustotal]".into());
        }
        check_url(&self.config.url)
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let checked = self.check();
        let (http, config, slot) = (
            self.http.clone(),
            self.config.clone(),
            Arc::clone(&self.next_slot),
        );
        Box::pin(async move {
            checked.map_err(ModuleError::Failed)?;
            let result = lookup(http, config, slot, input.sha256.to_string()).await?;
            Ok(ModuleOutput::result(result))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_to_the_quota() {
        let slot = Mutex::new(Instant::now());
        let every = Duration::from_secs(15);
        let start = Instant::now();
        for _ in 0..4 {
            take_slot(&slot, every).await;
        }
        // The first leaves at once, the next three a quota interval apart.
        assert_eq!(start.elapsed(), every * 3);
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let c = VirusTotalConfig {
            api_key: "secret-key".into(),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("secret-key"));
    }
}

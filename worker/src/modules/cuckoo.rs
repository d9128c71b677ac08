//! `cuckoo`: detonation in a Cuckoo or CAPE sandbox through its REST API:
//! the sample is submitted, the task polled until the sandbox has
//! reported, and the report summarised (score, signatures, network
//! contacts, dropped files). The two APIs differ in paths and envelopes:
//!
//! | step | Cuckoo 2 (`/tasks/...`) | CAPE (`/apiv2/tasks/...`) |
//! |---|---|---|
//! | submit | `POST create/file` → `{"task_id": N}` | `POST create/file/` → `{"error": false, "data": {"task_ids": [N]}}` |
//! | status | `GET view/N` → `{"task": {"status"}}` | `GET view/N/` → `{"data": {"status"}}` |
//! | report | `GET report/N` | `GET get/report/N/` |
//! | key | `Authorization: Bearer KEY` | `Authorization: Token KEY` |

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::web_api::{check_url, client, redacted, send_ok};
use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

/// Signatures, hosts and domains listed at most.
const MAX_LISTED: usize = 100;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    #[default]
    Cuckoo,
    Cape,
}

/// Settings of the `cuckoo` module (`[worker.modules.cuckoo]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CuckooConfig {
    /// The API's base URL (Cuckoo's `cuckoo api` listens on port 8090).
    pub url: String,
    pub flavour: Flavour,
    /// The API key, if the sandbox requires one.
    pub api_key: String,
    /// Seconds between status polls.
    pub poll_interval_secs: u64,
    /// Longest wait for the sandbox to finish, in seconds (set the
    /// module's timeout, `[worker.modules.timeouts] cuckoo`, above it).
    pub analysis_timeout_secs: u64,
    /// Seconds the sample runs in the sandbox (passed as `timeout`).
    pub detonation_secs: u64,
    /// Longest wait for one HTTP answer, in seconds.
    pub request_timeout_secs: u64,
}

impl std::fmt::Debug for CuckooConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CuckooConfig")
            .field("url", &self.url)
            .field("flavour", &self.flavour)
            .field("api_key", &redacted(&self.api_key))
            .finish_non_exhaustive()
    }
}

impl Default for CuckooConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8090".into(),
            flavour: Flavour::Cuckoo,
            api_key: String::new(),
            poll_interval_secs: 15,
            analysis_timeout_secs: 900,
            detonation_secs: 120,
            request_timeout_secs: 60,
        }
    }
}

#[derive(Debug)]
pub struct Cuckoo {
    config: CuckooConfig,
    http: reqwest::Client,
}

impl Cuckoo {
    pub fn new(config: CuckooConfig) -> Self {
        let http = client(config.request_timeout_secs);
        Self { config, http }
    }
}

/// The name the sample is submitted under: `sample` and, when the
/// submitted name has a plain extension, that extension (sandboxes choose
/// how to open a file by it). Nothing else of the hostile name is sent.
fn upload_name(submitted: &str) -> String {
    let ext = submitted
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    match ext {
        Some(e) => format!("sample.{e}"),
        None => "sample".into(),
    }
}

struct Api<'a> {
    config: &'a CuckooConfig,
    http: &'a reqwest::Client,
}

impl Api<'_> {
    fn url(&self, step: &str, id: Option<u64>) -> String {
        let base = self.config.url.trim_end_matches('/');
        match (self.config.flavour, id) {
            (Flavour::Cuckoo, None) => format!("{base}/tasks/{step}"),
            (Flavour::Cuckoo, Some(id)) => format!("{base}/tasks/{step}/{id}"),
            (Flavour::Cape, None) => format!("{base}/apiv2/tasks/{step}/"),
            (Flavour::Cape, Some(id)) => format!("{base}/apiv2/tasks/{step}/{id}/"),
        }
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.config.api_key.is_empty() {
            return req;
        }
        let scheme = match self.config.flavour {
            Flavour::Cuckoo => "Bearer",
            Flavour::Cape => "Token",
        };
        req.header("authorization", format!("{scheme} {}", self.config.api_key))
    }

    /// Sends, and returns the JSON of a 200 answer; anything else is an
    /// error naming the step and the sandbox's reason.
    async fn call(&self, step: &str, req: reqwest::RequestBuilder) -> Result<Value, ModuleError> {
        let keys = ["/message", "/error_value"];
        let body = send_ok("sandbox", step, &self.config.url, self.auth(req), &keys).await?;
        // CAPE answers 200 with {"error": true, "error_value": ...}.
        if body["error"] == true {
            return Err(ModuleError::Failed(format!(
                "sandbox {step}: refused: {}",
                body["error_value"].as_str().unwrap_or("no reason given")
            )));
        }
        Ok(body)
    }

    async fn submit(&self, input: &ScanInput) -> Result<u64, ModuleError> {
        let file = tokio::fs::File::open(&*input.path).await?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(upload_name(&input.filename));
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("timeout", self.config.detonation_secs.to_string());
        let answer = self
            .call(
                "submission",
                self.http
                    .post(self.url("create/file", None))
                    .multipart(form),
            )
            .await?;
        let id = match self.config.flavour {
            Flavour::Cuckoo => answer["task_id"].as_u64(),
            Flavour::Cape => answer["data"]["task_ids"][0].as_u64(),
        };
        id.ok_or_else(|| ModuleError::Failed(format!("sandbox submission: no task id in {answer}")))
    }

    async fn status(&self, id: u64) -> Result<String, ModuleError> {
        let answer = self
            .call("status", self.http.get(self.url("view", Some(id))))
            .await?;
        let status = match self.config.flavour {
            Flavour::Cuckoo => &answer["task"]["status"],
            Flavour::Cape => &answer["data"]["status"],
        };
        Ok(status.as_str().unwrap_or("unknown").to_owned())
    }

    async fn report(&self, id: u64) -> Result<Value, ModuleError> {
        let step = match self.config.flavour {
            Flavour::Cuckoo => "report",
            Flavour::Cape => "get/report",
        };
        self.call("report", self.http.get(self.url(step, Some(id))))
            .await
    }
}

/// A list of contacts, each a string or an object holding it under `key`
/// (reports of different versions do both).
fn strings_at(v: &Value, key: &str) -> Vec<Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .take(MAX_LISTED)
        .map(|h| match h {
            Value::Object(o) => o.get(key).cloned().unwrap_or(Value::Null),
            other => other.clone(),
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// What analysts read first in a sandbox report.
fn summarise(id: u64, report: &Value) -> Value {
    let signatures: Vec<Value> = report["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_LISTED)
        .map(|s| json!({"name": s["name"], "description": s["description"], "severity": s["severity"]}))
        .collect();
    let score = report
        .get("malscore")
        .filter(|v| !v.is_null())
        .unwrap_or(&report["info"]["score"]);
    json!({
        "task_id": id,
        "score": score,
        "signatures": signatures,
        "hosts": strings_at(&report["network"]["hosts"], "ip"),
        "domains": strings_at(&report["network"]["domains"], "domain"),
        "dropped_files": report["dropped"].as_array().map_or(0, Vec::len),
        "processes": report["behavior"]["processes"].as_array().map_or(0, Vec::len),
        "duration": report["info"]["duration"],
        "machine": report["info"]["machine"]["name"],
    })
}

async fn detonate(
    config: CuckooConfig,
    http: reqwest::Client,
    input: ScanInput,
) -> Result<Value, ModuleError> {
    let api = Api {
        config: &config,
        http: &http,
    };
    let id = api.submit(&input).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(config.analysis_timeout_secs);
    let every = Duration::from_secs(config.poll_interval_secs.max(1));
    loop {
        match api.status(id).await?.as_str() {
            "reported" => break,
            s @ ("failed_analysis" | "failed_processing" | "failed_reporting") => {
                return Err(ModuleError::Failed(format!("sandbox task {id}: {s}")));
            }
            _ => {}
        }
        if tokio::time::Instant::now() + every > deadline {
            return Err(ModuleError::Failed(format!(
                "sandbox task {id} did not report within {}s",
                config.analysis_timeout_secs
            )));
        }
        tokio::time::sleep(every).await;
    }
    Ok(summarise(id, &api.report(id).await?))
}

impl Module for Cuckoo {
    fn name(&self) -> &'static str {
        "cuckoo"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Sandbox"
    }

    fn config(&self) -> Value {
        json!({
            "url": self.config.url, "flavour": self.config.flavour,
            "detonation_secs": self.config.detonation_secs,
        })
    }

    fn check(&self) -> Result<(), String> {
        check_url(&self.config.url)
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let checked = self.check();
        let (config, http) = (self.config.clone(), self.http.clone());
        Box::pin(async move {
            checked.map_err(ModuleError::Failed)?;
            Ok(ModuleOutput::result(detonate(config, http, input).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_extension_of_the_name_is_sent() {
        assert_eq!(upload_name("invoice.pdf.exe"), "sample.exe");
        assert_eq!(upload_name("../../etc/passwd"), "sample");
        assert_eq!(upload_name("a.<script>"), "sample");
        assert_eq!(upload_name("noext"), "sample");
    }
}

//! What the modules that talk to web services (`virustotal`,
//! `metadefender`, `cuckoo`) share: one HTTP client each with a timeout,
//! URL checks, keys kept out of logs, and answers read as JSON with errors
//! that name the service, the step and the service's own reason.

use std::time::Duration;

use serde_json::Value;

use crate::module::ModuleError;

/// An HTTP client that gives up on one answer after `timeout_secs`.
pub fn client(timeout_secs: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs.max(1)))
        .user_agent(concat!("multiscanner/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Whether `url` can be used as a service's base URL.
pub fn check_url(url: &str) -> Result<(), String> {
    reqwest::Url::parse(url)
        .map(drop)
        .map_err(|e| format!("url {url:?}: {e}"))
}

/// How a key is shown in debug output: whether it is set, never what it is.
pub fn redacted(key: &str) -> &'static str {
    if key.is_empty() { "" } else { "(set)" }
}

/// An answer: its status, headers, body as JSON (`Null` when it is not
/// JSON) and the first bytes of the body as text, for error messages.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The service's reason for a refusal: the first of `keys` holding a
    /// string, else the start of the body.
    pub fn reason(&self, keys: &[&str]) -> String {
        keys.iter()
            .find_map(|k| self.body.pointer(k).and_then(Value::as_str))
            .map_or_else(|| self.text.clone(), str::to_owned)
    }
}

/// Sends `req`; a transport failure is an error naming `service` at `url`
/// and the `step`.
pub async fn send(
    service: &str,
    step: &str,
    url: &str,
    req: reqwest::RequestBuilder,
) -> Result<Answer, ModuleError> {
    let fail = |why: String| ModuleError::Failed(format!("{service} {step}: {why}"));
    let answer = req
        .send()
        .await
        .map_err(|e| fail(format!("{url} is not reachable: {e}")))?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| fail(format!("reading the answer: {e}")))?;
    Ok(Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
    })
}

/// Like [`send`], and a status other than 2xx is an error with the
/// service's reason (looked up under `reason_keys`, JSON pointers).
pub async fn send_ok(
    service: &str,
    step: &str,
    url: &str,
    req: reqwest::RequestBuilder,
    reason_keys: &[&str],
) -> Result<Value, ModuleError> {
    let answer = send(service, step, url, req).await?;
    if !answer.status.is_success() {
        return Err(ModuleError::Failed(format!(
            "{service} {step}: answered {}: {}",
            answer.status,
            answer.reason(reason_keys)
        )));
    }
    Ok(answer.body)
}

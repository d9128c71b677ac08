//! The HTTP conversation with an Elasticsearch or OpenSearch node: one JSON
//! request at a time, errors sorted into what the caller can act on.
//!
//! Every request sends and accepts plain `application/json`, which both
//! engines take (the client's default compatibility media type is
//! Elasticsearch's only). Requests that fail because the engine cannot be
//! reached or is overloaded are tried again a few times with backoff, then
//! reported as [`StoreError::Unavailable`]; the scheduler retries those
//! further up (a worker's result waits until the engine is back).

use std::time::Duration;

use elasticsearch::{
    Elasticsearch,
    http::{
        Method, StatusCode,
        headers::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue},
        request::{JsonBody, NdBody},
        transport::{SingleNodeConnectionPool, TransportBuilder},
    },
};
use serde_json::Value;
use tracing::warn;

use crate::store::{StoreError, StoreResult};

/// Attempts per request before giving up as unavailable.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Engine {
    client: Elasticsearch,
    url: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("url", &self.url).finish()
    }
}

/// A request body: one JSON document, or newline-delimited lines (bulk).
pub enum Body {
    None,
    Json(Value),
    Lines(Vec<Value>),
}

impl Engine {
    /// A client of the node at `url` (`http://HOST:PORT`, optionally with
    /// `user:password@`).
    pub fn new(url: &str) -> StoreResult<Self> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let mut base = parsed.clone();
        base.set_username("").ok();
        base.set_password(None).ok();
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(base))
            .disable_proxy()
            .timeout(REQUEST_TIMEOUT);
        if !parsed.username().is_empty() {
            builder = builder.auth(elasticsearch::auth::Credentials::Basic(
                parsed.username().to_owned(),
                parsed.password().unwrap_or_default().to_owned(),
            ));
        }
        let transport = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            url: redact(&parsed),
        })
    }

    /// Sends one request; returns the status and the JSON answer. Answers
    /// of 4xx are returned to the caller, who knows what they mean.
    pub async fn call(&self, method: Method, path: &str, body: Body) -> StoreResult<(u16, Value)> {
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.once(method, path, &body).await {
                Ok((status, value)) if !retryable(status) => return Ok((status, value)),
                Ok((status, value)) if attempt >= ATTEMPTS => {
                    return Err(StoreError::Unavailable(format!(
                        "{} answered {status} to {path}: {}",
                        self.url,
                        reason(&value)
                    )));
                }
                Err(e) if attempt >= ATTEMPTS => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach the search engine at {}: {e}",
                        self.url
                    )));
                }
                Ok((status, _)) => warn!(%status, path, "search engine busy; retrying"),
                Err(e) => warn!(error = %e, path, "search engine unreachable; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay *= 3;
            attempt += 1;
        }
    }

    /// [`Engine::call`] that also treats every status but 2xx as an error.
    pub async fn ok(&self, method: Method, path: &str, body: Body) -> StoreResult<Value> {
        let (status, value) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else if status == 404 {
            Err(StoreError::NotFound(format!("{path} ({})", reason(&value))))
        } else if status == 400 {
            Err(StoreError::BadQuery(reason(&value)))
        } else {
            Err(StoreError::Internal(format!(
                "{} answered {status} to {path}: {}",
                self.url,
                reason(&value)
            )))
        }
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        body: &Body,
    ) -> Result<(u16, Value), elasticsearch::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = match body {
            Body::None => {
                self.client
                    .send::<JsonBody<Value>, ()>(method, path, headers, None, None, None)
                    .await?
            }
            Body::Json(v) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.client
                    .send::<_, ()>(
                        method,
                        path,
                        headers,
                        None,
                        Some(JsonBody::new(v.clone())),
                        None,
                    )
                    .await?
            }
            Body::Lines(lines) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                let lines: Vec<JsonBody<Value>> =
                    lines.iter().cloned().map(JsonBody::new).collect();
                self.client
                    .send::<_, ()>(method, path, headers, None, Some(NdBody::new(lines)), None)
                    .await?
            }
        };
        let status = response.status_code();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status.as_u16(), value))
    }
}

fn retryable(status: u16) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS.as_u16() || matches!(status, 502..=504)
}

/// The engine's own words for an error answer.
pub fn reason(v: &Value) -> String {
    let e = &v["error"];
    let root = &e["root_cause"][0];
    let pick = |x: &Value| {
        x["reason"]
            .as_str()
            .map(|r| match x["type"].as_str() {
                Some(t) => format!("{t}: {r}"),
                None => r.to_owned(),
            })
            .filter(|r| !r.is_empty())
    };
    let mut out = pick(e).or_else(|| pick(root)).unwrap_or_else(|| match e {
        Value::String(s) => s.clone(),
        Value::Null => v.to_string(),
        other => other.to_string(),
    });
    // Parse errors hide the useful part in the cause.
    if let Some(cause) = pick(&e["caused_by"])
        && !out.contains(&cause)
    {
        out = format!("{out} ({cause})");
    }
    out
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        u.set_password(Some("***")).ok();
    }
    u.to_string()
}

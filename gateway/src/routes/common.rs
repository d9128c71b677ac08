//! Pieces the route handlers share: path and list parsing, the task shape.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use multiscanner_proto::{ErrorCode, convert::millis, domain::iso8601, pb};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A task as MultiScanner's v2 API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub task_id: i64,
    /// The sample's SHA-256.
    pub sample_id: String,
    /// Pending, Running, Complete, Failed or Cancelled.
    pub task_status: String,
    /// When the analysis finished (ISO 8601, UTC); null until then.
    pub timestamp: Option<String>,
}

pub fn status_name(status: i32) -> &'static str {
    match pb::TaskStatus::try_from(status) {
        Ok(pb::TaskStatus::Pending) | Ok(pb::TaskStatus::Unspecified) | Err(_) => "Pending",
        Ok(pb::TaskStatus::Running) => "Running",
        Ok(pb::TaskStatus::Complete) => "Complete",
        Ok(pb::TaskStatus::Failed) => "Failed",
        Ok(pb::TaskStatus::Cancelled) => "Cancelled",
    }
}

pub fn time(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    ts.map(|t| iso8601(millis(t)))
}

impl From<&pb::Task> for TaskView {
    fn from(t: &pb::Task) -> Self {
        Self {
            task_id: t.task_id,
            sample_id: t.sha256.clone(),
            task_status: status_name(t.status).to_owned(),
            timestamp: time(t.finished_at.as_ref()),
        }
    }
}

/// The `{task_id}` of a path: a positive integer.
#[derive(Debug, Clone, Copy)]
pub struct TaskIdPath(pub i64);

pub fn parse_task_id(field: &str, s: &str) -> Result<i64, ApiError> {
    match s.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::field(
            field,
            format!("{:?} is not a task id (a positive integer)", truncate(s)),
        )),
    }
}

/// The first 64 characters of a value echoed in an error.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

impl<S: Send + Sync> FromRequestParts<S> for TaskIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = PathParams::from_request_parts(parts, state).await?;
        parse_task_id("task_id", params.get("task_id")).map(Self)
    }
}

/// Checks a SHA-256 given in a path or parameter: 64 hexadecimal digits.
pub fn parse_sha256(field: &str, s: &str) -> Result<String, ApiError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(ApiError::field(
            field,
            format!("{:?} is not a SHA-256 (64 hexadecimal digits)", truncate(s)),
        ))
    }
}

/// `task_ids=1,2,3`.
pub fn parse_task_ids(s: Option<&str>) -> Result<Vec<i64>, ApiError> {
    let s = s.unwrap_or_default();
    let ids = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse_task_id("task_ids", p))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::field(
            "task_ids",
            "give one or more task ids, comma-separated",
        ));
    }
    if ids.len() > 1000 {
        return Err(ApiError::field("task_ids", "at most 1000 task ids"));
    }
    Ok(ids)
}

/// MultiScanner's boolean query flags: true when the value starts with
/// t, y or 1.
pub fn flag(v: Option<&str>) -> bool {
    v.and_then(|s| s.chars().next())
        .is_some_and(|c| matches!(c.to_ascii_lowercase(), 't' | 'y' | '1'))
}

fn rejected(status: http::StatusCode, text: String) -> ApiError {
    // serde names the culprit as "... field `NAME` ..." or "`NAME`: ...".
    let field = text
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_owned());
    let mut e = ApiError::new(ErrorCode::InvalidArgument, text);
    if status == http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
        e.message = "the body must be a form (application/x-www-form-urlencoded or \
                     multipart/form-data)"
            .into();
    }
    e.field = field;
    e
}

/// A small form body, urlencoded or multipart (MultiScanner takes both:
/// `curl -d` and `curl -F` alike), whose rejection is one of our JSON
/// errors.
#[derive(Debug)]
pub struct ApiForm<T>(pub T);

/// Largest multipart form taken by [`ApiForm`].
const MAX_SMALL_FORM: usize = 1 << 20;

impl<S, T> axum::extract::FromRequest<S> for ApiForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let multipart = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
        if !multipart {
            return axum::Form::<T>::from_request(req, state)
                .await
                .map(|axum::Form(v)| Self(v))
                .map_err(|e| rejected(e.status(), e.body_text()));
        }
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| rejected(e.status(), e.body_text()))?;
        let mut pairs = Vec::new();
        let mut size = 0usize;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| rejected(e.status(), e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let value = field
                .text()
                .await
                .map_err(|e| rejected(e.status(), e.body_text()))?;
            size += name.len() + value.len();
            if size > MAX_SMALL_FORM {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the form is larger than {MAX_SMALL_FORM} bytes"),
                ));
            }
            pairs.push((name, value));
        }
        let encoded = serde_urlencoded::to_string(&pairs)
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.to_string()))?;
        serde_urlencoded::from_str(&encoded)
            .map(Self)
            .map_err(|e| rejected(http::StatusCode::BAD_REQUEST, format!("invalid form: {e}")))
    }
}

/// Query parameters whose rejection is one of our JSON errors.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| rejected(e.status(), e.body_text()))
    }
}

/// Path parameters by name, whose rejection is one of our JSON errors.
#[derive(Debug)]
pub struct PathParams(pub Vec<(String, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| ApiError::field("path", e.body_text()))
    }
}

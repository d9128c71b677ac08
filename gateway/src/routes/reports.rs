//! Reports: one task's, or several at once.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use multiscanner_proto::pb;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::{
    common::{ApiQuery, TaskIdPath, flag, parse_task_ids},
    tasks::{message, not_found_as_task},
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// `t`: send as an attachment (`TASK.json`).
    pub d: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportsParams {
    /// Comma-separated task ids.
    pub task_ids: Option<String>,
    /// `t`: send as an attachment.
    pub d: Option<String>,
}

/// A task's report, or `None` while it is still being made.
async fn report(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Option<Value>> {
    let r = state
        .reports()
        .get_report(caller.request(pb::GetReportRequest { task_id: id }))
        .await
        .map_err(|e| not_found_as_task(e.into(), id))?
        .into_inner();
    let status = r.task.as_ref().map(|t| t.status).unwrap_or_default();
    if matches!(
        pb::TaskStatus::try_from(status),
        Ok(pb::TaskStatus::Pending | pb::TaskStatus::Running)
    ) {
        return Ok(None);
    }
    serde_json::from_str(&r.report_json).map(Some).map_err(|e| {
        ApiError::new(
            multiscanner_proto::ErrorCode::Internal,
            format!("the stored report of task {id} is not JSON: {e}"),
        )
    })
}

fn attachment(name: &str, body: &Value) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={name}")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, Json(body)).into_response()
}

fn pending() -> Response {
    (StatusCode::ACCEPTED, message(json!("Task still pending"))).into_response()
}

/// A task's report (also once it failed or was cancelled: the report then
/// says why). 202 while the task is pending or running.
#[utoipa::path(get, path = "/api/v2/tasks/{task_id}/report", operation_id = "get_report", tag = "reports",
    params(("task_id" = i64, Path, minimum = 1), DownloadParams),
    responses((status = 200, description = "The report", body = Object),
              (status = 202, description = "Task still pending", body = super::tasks::MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiQuery(p): ApiQuery<DownloadParams>,
) -> ApiResult<Response> {
    let Some(r) = report(&state, &caller, id).await? else {
        return Ok(pending());
    };
    if flag(p.d.as_deref()) {
        return Ok(attachment(&format!("{id}.json"), &r));
    }
    Ok(Json(r).into_response())
}

/// Several reports, in the order of `task_ids`; 202 if any is pending.
#[utoipa::path(get, path = "/api/v2/tasks/reports", tag = "reports",
    params(ReportsParams),
    responses((status = 200, description = "The reports", body = Vec<Object>),
              (status = 202, description = "A task is still pending", body = super::tasks::MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn several(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportsParams>,
) -> ApiResult<Response> {
    let ids = parse_task_ids(p.task_ids.as_deref())?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match report(&state, &caller, id).await? {
            Some(r) => out.push(r),
            None => return Ok(pending()),
        }
    }
    let body = Value::Array(out);
    if flag(p.d.as_deref()) {
        return Ok(attachment(&format!("{}.json", uuid::Uuid::new_v4()), &body));
    }
    Ok(Json(body).into_response())
}

//! Tasks: list, read, delete, find by sample; the module list.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use multiscanner_proto::pb;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::common::{PathParams, TaskIdPath, TaskView, parse_sha256};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

/// `{"Message": true}` and the like.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    #[serde(rename = "Message")]
    #[schema(value_type = Value)]
    pub message: serde_json::Value,
}

pub fn message(v: serde_json::Value) -> Json<MessageBody> {
    Json(MessageBody { message: v })
}

/// The API answers.
#[utoipa::path(get, path = "/", tag = "system",
    responses((status = 200, description = "The API is up", body = MessageBody)))]
pub async fn root() -> Json<MessageBody> {
    message(json!(true))
}

/// Modules offered by the connected workers: name → whether at least one
/// worker can run it here.
#[utoipa::path(get, path = "/api/v2/modules", tag = "system",
    responses((status = 200, body = BTreeMap<String, bool>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn modules(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<BTreeMap<String, bool>>> {
    let list = state
        .system()
        .list_modules(caller.request(pb::ListModulesRequest {}))
        .await?
        .into_inner();
    Ok(Json(
        list.modules
            .into_iter()
            .map(|m| (m.name, m.usable_workers > 0))
            .collect(),
    ))
}

/// Every task of a sample, or all tasks, following the scheduler's pages.
pub async fn all_tasks(
    state: &AppState,
    caller: &Caller,
    sha256: &str,
    statuses: Vec<i32>,
) -> ApiResult<Vec<pb::Task>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = state
            .tasks()
            .list_tasks(caller.request(pb::ListTasksRequest {
                page_size: 1000,
                page_token: token,
                statuses: statuses.clone(),
                sha256: sha256.to_owned(),
            }))
            .await?
            .into_inner();
        out.extend(page.tasks);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        token = page.next_page_token;
    }
}

/// Every task.
#[utoipa::path(get, path = "/api/v2/tasks", tag = "tasks",
    responses((status = 200, body = Vec<TaskView>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<TaskView>>> {
    let tasks = all_tasks(&state, &caller, "", Vec::new()).await?;
    Ok(Json(tasks.iter().map(TaskView::from).collect()))
}

pub async fn get_task(state: &AppState, caller: &Caller, id: i64) -> ApiResult<pb::Task> {
    state
        .tasks()
        .get_task(caller.request(pb::GetTaskRequest { task_id: id }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| not_found_as_task(e.into(), id))
}

/// MultiScanner's wording for an unknown task.
pub fn not_found_as_task(e: ApiError, id: i64) -> ApiError {
    if e.code == multiscanner_proto::ErrorCode::NotFound {
        ApiError::not_found(format!("No task with that ID found! (task {id})"))
    } else {
        e
    }
}

/// One task.
#[utoipa::path(get, path = "/api/v2/tasks/{task_id}", operation_id = "get_task", tag = "tasks",
    params(("task_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = TaskView),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> ApiResult<Json<TaskView>> {
    Ok(Json(TaskView::from(&get_task(&state, &caller, id).await?)))
}

/// Deletes a task and its report (the sample, its tags and notes stay).
#[utoipa::path(delete, path = "/api/v2/tasks/{task_id}", tag = "tasks",
    params(("task_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> ApiResult<Json<MessageBody>> {
    state
        .tasks()
        .delete_task(caller.request(pb::DeleteTaskRequest { task_id: id }))
        .await
        .map_err(|e| not_found_as_task(e.into(), id))?;
    Ok(message(json!(true)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskIdBody {
    pub task_id: i64,
}

/// The most recent completed task of a sample.
#[utoipa::path(get, path = "/api/v2/tasks/sha256/{sha256}", operation_id = "task_by_sha256", tag = "tasks",
    params(("sha256" = String, Path, pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, body = TaskIdBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn by_sha256(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
) -> ApiResult<Json<TaskIdBody>> {
    let sha = parse_sha256("sha256", params.get("sha256"))?;
    let done = all_tasks(&state, &caller, &sha, vec![pb::TaskStatus::Complete as i32]).await?;
    let latest = done
        .iter()
        .max_by_key(|t| (t.finished_at.map(|f| (f.seconds, f.nanos)), t.task_id))
        .ok_or_else(|| ApiError::not_found("No task with that SHA-256 found!"))?;
    Ok(Json(TaskIdBody {
        task_id: latest.task_id,
    }))
}

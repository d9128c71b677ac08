//! MultiScanner's `/api/v2` routes; each handler is one or more gRPC calls.

pub mod annotations;
pub mod archive;
pub mod common;
pub mod files;
pub mod reports;
pub mod search;
pub mod submit;
pub mod tasks;

use axum::{
    Router,
    routing::{get, put},
};

use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

pub fn v2() -> Router<AppState> {
    Router::new()
        .route("/", get(tasks::root))
        .route("/api/v2/modules", get(tasks::modules))
        .route("/api/v2/tasks", get(tasks::list).post(submit::create))
        .route(
            "/api/v2/tasks/{task_id}",
            get(tasks::get).delete(tasks::delete),
        )
        .route("/api/v2/tasks/sha256/{sha256}", get(tasks::by_sha256))
        .route("/api/v2/tasks/_datatable", get(search::analyses))
        .route("/api/v2/tasks/_datatable/history", get(search::history))
        .route("/api/v2/tasks/{task_id}/report", get(reports::get))
        .route("/api/v2/tasks/reports", get(reports::several))
        .route("/api/v2/tasks/{task_id}/file", get(files::of_task))
        .route("/api/v2/tasks/files", get(files::of_tasks))
        .route("/api/v2/files/{sha256}", get(files::by_sha256))
        .route("/api/v2/tags/", get(annotations::list_tags))
        .route(
            "/api/v2/tasks/{task_id}/tags",
            axum::routing::post(annotations::add_tag).delete(annotations::remove_tag),
        )
        .route(
            "/api/v2/tasks/{task_id}/notes",
            get(annotations::list_notes).post(annotations::add_note),
        )
        .route(
            "/api/v2/tasks/{task_id}/notes/{note_id}",
            put(annotations::edit_note).delete(annotations::delete_note),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            let body = ErrorBody {
                message: "this route does not take that method".into(),
                field: None,
            };
            (http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body))
        })
}

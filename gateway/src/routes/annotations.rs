//! Tags and notes. Both belong to a task's sample: every task of one
//! SHA-256 shares them.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header::HeaderName},
    response::{IntoResponse, Response},
};
use multiscanner_proto::pb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{
    common::{ApiForm, ApiQuery, PathParams, TaskIdPath, parse_task_id, time},
    tasks::{MessageBody, message, not_found_as_task},
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct TagCount {
    pub key: String,
    /// Samples carrying the tag.
    pub doc_count: u64,
}

/// Every tag with the number of samples carrying it, most used first.
#[utoipa::path(get, path = "/api/v2/tags/", tag = "tags",
    responses((status = 200, body = Vec<TagCount>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn list_tags(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TagCount>>> {
    let tags = state
        .reports()
        .list_tags(caller.request(pb::ListTagsRequest {}))
        .await?
        .into_inner()
        .tags;
    Ok(Json(
        tags.into_iter()
            .map(|t| TagCount {
                key: t.tag,
                doc_count: t.samples,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TagForm {
    pub tag: String,
}

/// Adds (or removes) the form's tag on the task's sample.
async fn change_tag(
    state: &AppState,
    caller: &Caller,
    id: i64,
    form: TagForm,
    add: bool,
) -> ApiResult<Json<MessageBody>> {
    let tag = form.tag.trim().to_owned();
    if tag.is_empty() {
        return Err(ApiError::field("tag", "empty tag"));
    }
    let request = caller.request(pb::TagRequest { task_id: id, tag });
    let mut reports = state.reports();
    let done = if add {
        reports.add_tag(request).await
    } else {
        reports.remove_tag(request).await
    };
    done.map_err(|e| not_found_as_task(e.into(), id))?;
    Ok(message(json!(if add {
        "Tag Added"
    } else {
        "Tag Removed"
    })))
}

/// Adds a tag to the task's sample.
#[utoipa::path(post, path = "/api/v2/tasks/{task_id}/tags", tag = "tags",
    params(("task_id" = i64, Path, minimum = 1)),
    request_body(content((TagForm = "application/x-www-form-urlencoded"), (TagForm = "multipart/form-data"))),
    responses((status = 200, body = MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn add_tag(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiForm(form): ApiForm<TagForm>,
) -> ApiResult<Json<MessageBody>> {
    change_tag(&state, &caller, id, form, true).await
}

/// Removes a tag from the task's sample.
#[utoipa::path(delete, path = "/api/v2/tasks/{task_id}/tags", tag = "tags",
    params(("task_id" = i64, Path, minimum = 1)),
    request_body(content((TagForm = "application/x-www-form-urlencoded"), (TagForm = "multipart/form-data"))),
    responses((status = 200, body = MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn remove_tag(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiForm(form): ApiForm<TagForm>,
) -> ApiResult<Json<MessageBody>> {
    change_tag(&state, &caller, id, form, false).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    pub id: String,
    /// When the note was written or last edited (ISO 8601, UTC).
    pub timestamp: Option<String>,
    /// As written: plain text, to be shown as text.
    pub text: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotesParams {
    /// From the `X-Next-Page-Token` header of the previous page.
    pub page_token: Option<String>,
}

/// The notes of the task's sample, oldest first, 10 a page; the header
/// `X-Next-Page-Token` names the next page when there is one.
#[utoipa::path(get, path = "/api/v2/tasks/{task_id}/notes", tag = "notes",
    params(("task_id" = i64, Path, minimum = 1), NotesParams),
    responses((status = 200, body = Vec<NoteView>,
               headers(("X-Next-Page-Token" = String, description = "The next page's token"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn list_notes(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiQuery(p): ApiQuery<NotesParams>,
) -> ApiResult<Response> {
    let page = state
        .reports()
        .list_notes(caller.request(pb::ListNotesRequest {
            task_id: id,
            page_size: 10,
            page_token: p.page_token.unwrap_or_default(),
        }))
        .await
        .map_err(|e| not_found_as_task(e.into(), id))?
        .into_inner();
    let notes: Vec<NoteView> = page
        .notes
        .into_iter()
        .map(|n| NoteView {
            timestamp: time(n.updated_at.as_ref().or(n.created_at.as_ref())),
            id: n.note_id,
            text: n.text,
        })
        .collect();
    let mut response = Json(notes).into_response();
    if !page.next_page_token.is_empty()
        && let Ok(v) = HeaderValue::from_str(&page.next_page_token)
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-next-page-token"), v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NoteForm {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteAdded {
    #[serde(rename = "Message")]
    pub message: String,
    /// The new note's id.
    pub id: String,
}

fn text_of(form: NoteForm) -> ApiResult<String> {
    if form.text.trim().is_empty() {
        return Err(ApiError::field("text", "empty note"));
    }
    Ok(form.text)
}

/// Adds a note to the task's sample.
#[utoipa::path(post, path = "/api/v2/tasks/{task_id}/notes", tag = "notes",
    params(("task_id" = i64, Path, minimum = 1)),
    request_body(content((NoteForm = "application/x-www-form-urlencoded"), (NoteForm = "multipart/form-data"))),
    responses((status = 200, body = NoteAdded),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiForm(form): ApiForm<NoteForm>,
) -> ApiResult<Json<NoteAdded>> {
    let text = text_of(form)?;
    let note = state
        .reports()
        .add_note(caller.request(pb::AddNoteRequest { task_id: id, text }))
        .await
        .map_err(|e| not_found_as_task(e.into(), id))?
        .into_inner();
    Ok(Json(NoteAdded {
        message: "Success".into(),
        id: note.note_id,
    }))
}

fn note_path(params: &PathParams) -> ApiResult<(i64, String)> {
    let id = parse_task_id("task_id", params.get("task_id"))?;
    let note = params.get("note_id");
    if note.is_empty() || note.len() > 128 {
        return Err(ApiError::field("note_id", "not a note id"));
    }
    Ok((id, note.to_owned()))
}

/// Replaces a note's text.
#[utoipa::path(put, path = "/api/v2/tasks/{task_id}/notes/{note_id}", tag = "notes",
    params(("task_id" = i64, Path, minimum = 1), ("note_id" = String, Path)),
    request_body(content((NoteForm = "application/x-www-form-urlencoded"), (NoteForm = "multipart/form-data"))),
    responses((status = 200, body = MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn edit_note(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    ApiForm(form): ApiForm<NoteForm>,
) -> ApiResult<Json<MessageBody>> {
    let (id, note_id) = note_path(&params)?;
    let text = text_of(form)?;
    state
        .reports()
        .edit_note(caller.request(pb::EditNoteRequest {
            task_id: id,
            note_id,
            text,
        }))
        .await?;
    Ok(message(json!("Success")))
}

/// Deletes a note.
#[utoipa::path(delete, path = "/api/v2/tasks/{task_id}/notes/{note_id}", tag = "notes",
    params(("task_id" = i64, Path, minimum = 1), ("note_id" = String, Path)),
    responses((status = 200, body = MessageBody),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn delete_note(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
) -> ApiResult<Json<MessageBody>> {
    let (id, note_id) = note_path(&params)?;
    state
        .reports()
        .delete_note(caller.request(pb::DeleteNoteRequest {
            task_id: id,
            note_id,
        }))
        .await?;
    Ok(message(json!("Success")))
}

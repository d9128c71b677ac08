//! `POST /api/v2/tasks`: a multipart upload streamed into the scheduler's
//! `Submit` call as it arrives, with MultiScanner's form fields.
//!
//! Form fields must come before the `file` field: the scheduler takes the
//! submission's header before the bytes. The upload's gRPC stream is closed
//! only once the whole form has been read, so a late field (or a too-large
//! file) aborts the call and nothing is stored.

use axum::{
    Json,
    extract::{
        Multipart, State,
        multipart::{Field, MultipartRejection},
    },
    http::StatusCode,
};
use bytes::Bytes;
use multiscanner_proto::{
    ErrorCode,
    pb::{self, submit_request::Part},
};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use super::{archive, common::flag};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

/// How long an abandoned upload waits to tell the scheduler it is one.
const ABANDON_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Largest text field of the form.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most fields besides the file.
const MAX_FIELDS: usize = 256;

/// The submission form. Every field not listed is kept as submission
/// metadata (`Scan Metadata` in the report); `Tags` (comma-separated) become
/// the sample's tags.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Describes the form for the OpenAPI document.
pub struct SubmitForm {
    /// `latest` (default: an already analysed sample returns its latest
    /// task) or `rescan`.
    pub duplicate: Option<String>,
    /// `true`: the file is a zip archive whose members become separate
    /// tasks.
    #[serde(rename = "archive-analyze")]
    pub archive_analyze: Option<String>,
    /// Password of the archive (and of archives found inside the file).
    #[serde(rename = "archive-password")]
    pub archive_password: Option<String>,
    /// `import`: the file is a JSON report (or a list of them) to store as
    /// completed tasks.
    pub upload_type: Option<String>,
    /// Comma-separated module names; empty: every enabled module.
    pub modules: Option<String>,
    /// 1 (lowest) to 10 (highest); default 5.
    #[schema(minimum = 1, maximum = 10)]
    pub priority: Option<u32>,
    /// Comma-separated tags.
    #[serde(rename = "Tags")]
    pub tags: Option<String>,
    /// The sample. Must be the last field.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// What the form said before its file.
#[derive(Debug, Default)]
pub struct Form {
    pub header: pb::SubmissionHeader,
    pub archive_analyze: bool,
    pub import: bool,
}

impl Form {
    fn set(&mut self, name: &str, value: String) -> ApiResult<()> {
        let value_trimmed = value.trim();
        match name {
            "duplicate" => {
                self.header.duplicate = match value_trimmed {
                    "" | "latest" => pb::DuplicatePolicy::Latest,
                    "rescan" => {
                        // A rescan runs every module again, cached or not.
                        self.header.force = true;
                        pb::DuplicatePolicy::Rescan
                    }
                    other => {
                        return Err(ApiError::field(
                            "duplicate",
                            format!("{other:?} is neither \"latest\" nor \"rescan\""),
                        ));
                    }
                } as i32;
            }
            "archive-analyze" => self.archive_analyze = flag(Some(value_trimmed)),
            "archive-password" => self.header.archive_password = value,
            "upload_type" => {
                self.import = match value_trimmed {
                    "import" => true,
                    "" | "scan" => false,
                    other => {
                        return Err(ApiError::field(
                            "upload_type",
                            format!("{other:?} is neither \"import\" nor \"scan\""),
                        ));
                    }
                }
            }
            "modules" => {
                self.header.modules = value_trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "priority" => {
                self.header.priority = match value_trimmed.parse::<u32>() {
                    Ok(p @ 1..=10) => p,
                    _ => {
                        return Err(ApiError::field(
                            "priority",
                            format!(
                                "{:?} is not a priority from 1 to 10",
                                super::common::truncate(value_trimmed)
                            ),
                        ));
                    }
                }
            }
            "file_id" => {}
            "Tags" | "tags" => {
                for tag in value_trimmed.split(',').map(str::trim) {
                    if !tag.is_empty() && !self.header.tags.iter().any(|t| t == tag) {
                        self.header.tags.push(tag.to_owned());
                    }
                }
            }
            _ if value_trimmed.is_empty() => {}
            other => {
                self.header.metadata.insert(other.to_owned(), value);
            }
        }
        Ok(())
    }
}

async fn text(field: Field<'_>, name: &str) -> ApiResult<String> {
    let mut field = field;
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
        if buf.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::field(
                name,
                format!("longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| ApiError::field(name, "not UTF-8 text"))
}

pub fn bad_body(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, e.body_text())
    } else {
        ApiError::field(
            "file",
            format!("the multipart body is malformed: {}", e.body_text()),
        )
    }
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError {
        code: ErrorCode::PayloadTooLarge,
        message: format!("the file is larger than the {limit}-byte upload limit"),
        field: Some("file".into()),
    }
}

/// Refuses module names no connected worker offers (when any worker is
/// connected: with none, nothing can be known and the scheduler decides).
pub async fn check_modules(state: &AppState, caller: &Caller, wanted: &[String]) -> ApiResult<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let offered = state
        .system()
        .list_modules(caller.request(pb::ListModulesRequest {}))
        .await?
        .into_inner();
    if offered.workers == 0 {
        return Ok(());
    }
    for m in wanted {
        if !offered.modules.iter().any(|o| &o.name == m) {
            let names: Vec<&str> = offered.modules.iter().map(|o| o.name.as_str()).collect();
            return Err(ApiError::field(
                "modules",
                format!(
                    "unknown module {:?} (offered: {})",
                    super::common::truncate(m),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Submits one file from a byte stream; what the scheduler answered.
///
/// Only [`Upload::finish`] ends the stream cleanly (which commits the
/// sample). Dropped any other way — refused, or its request dropped
/// because the client went away — it sends what the scheduler refuses, so
/// a cut-short upload is never taken for a whole one.
pub struct Upload {
    tx: Option<mpsc::Sender<pb::SubmitRequest>>,
    call: Option<SubmitCall>,
}

type SubmitCall =
    tokio::task::JoinHandle<Result<tonic::Response<pb::SubmitResponse>, tonic::Status>>;

impl Upload {
    pub fn start(state: &AppState, caller: &Caller, header: pb::SubmissionHeader) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.try_send(pb::SubmitRequest {
            part: Some(Part::Header(header)),
        });
        let mut client = state.tasks();
        let request = caller.request(ReceiverStream::new(rx));
        let call = tokio::spawn(async move { client.submit(request).await });
        Self {
            tx: Some(tx),
            call: Some(call),
        }
    }

    /// Sends a chunk; false if the call already ended (its answer says why).
    pub async fn send(&self, data: Bytes) -> bool {
        let Some(tx) = &self.tx else { return false };
        tx.send(pb::SubmitRequest {
            part: Some(Part::Chunk(data)),
        })
        .await
        .is_ok()
    }

    /// Ends the upload and waits for the scheduler's answer.
    pub async fn finish(mut self) -> ApiResult<pb::SubmitResponse> {
        drop(self.tx.take());
        let Some(call) = self.call.take() else {
            return Err(ApiError::new(ErrorCode::Internal, "upload already ended"));
        };
        match call.await {
            Ok(res) => Ok(res?.into_inner()),
            Err(e) => Err(ApiError::new(
                ErrorCode::Internal,
                format!("upload failed: {e}"),
            )),
        }
    }

    /// Abandons the upload: the call is reset, so the scheduler stores
    /// nothing.
    pub fn abort(self) {
        drop(self);
    }

    /// The scheduler's answer when the call ended early (it refused the
    /// upload).
    async fn early_error(self) -> ApiError {
        match self.finish().await {
            Err(e) => e,
            Ok(_) => ApiError::new(ErrorCode::Internal, "the scheduler ended the upload early"),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let (Some(call), Some(tx)) = (self.call.take(), self.tx.take()) else {
            return;
        };
        // Neither dropping the sender (a clean end, which commits what was
        // sent) nor aborting the call (the body is piped by a task of its
        // own) reliably stops the scheduler from taking a cut-short upload.
        // A second header, where only chunks may follow, makes it refuse.
        let poison = pb::SubmitRequest {
            part: Some(Part::Header(pb::SubmissionHeader::default())),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            call.abort();
            return;
        };
        runtime.spawn(async move {
            // Queued behind what was sent and ahead of the end, so the
            // scheduler reads it first; if it cannot be queued (the
            // scheduler stopped reading), the call is reset.
            let queued = tokio::time::timeout(ABANDON_WAIT, tx.send(poison)).await;
            if !matches!(queued, Ok(Ok(()))) {
                call.abort();
            }
        });
    }
}

/// Submits a file, or imports reports.
#[utoipa::path(post, path = "/api/v2/tasks", tag = "tasks",
    request_body(content = SubmitForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The ids of the tasks made (or found, with duplicate=latest)", body = Vec<i64>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Vec<i64>>)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "the body must be a multipart/form-data form: {}",
                e.body_text()
            ),
        )
    })?;
    match read_form(&state, &caller, &mut multipart).await {
        Ok(ids) => Ok((StatusCode::CREATED, Json(ids))),
        Err(e) => {
            if e.code == ErrorCode::PayloadTooLarge {
                drain(&mut multipart).await;
            }
            Err(e)
        }
    }
}

/// Reads the form and submits its file; the ids of the tasks made.
async fn read_form(
    state: &AppState,
    caller: &Caller,
    multipart: &mut Multipart,
) -> ApiResult<Vec<i64>> {
    let limit = state.config.max_upload_bytes;
    let mut form = Form::default();
    let mut fields = 0usize;
    loop {
        let Some(field) = multipart.next_field().await.map_err(bad_body)? else {
            return Err(ApiError::field("file", "no `file` field in the form"));
        };
        let Some(name) = field.name().map(ToOwned::to_owned) else {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "a form field has no name (`name*=` alone is not understood)",
            ));
        };
        if name == "file" {
            form.header.filename = field.file_name().unwrap_or_default().to_owned();
            check_modules(state, caller, &form.header.modules).await?;
            let ids = if form.import {
                import(state, caller, field).await?
            } else if form.archive_analyze {
                archive::submit_members(state, caller, &form, field).await?
            } else {
                let upload = stream_file(state, caller, &form, field, limit).await?;
                if let Err(e) = rest_of_form(multipart).await {
                    upload.abort();
                    return Err(e);
                }
                let task = upload.finish().await?.task;
                return Ok(vec![task.map(|t| t.task_id).unwrap_or_default()]);
            };
            rest_of_form(multipart).await?;
            return Ok(ids);
        }
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(ApiError::field(
                "file",
                format!("more than {MAX_FIELDS} form fields"),
            ));
        }
        let value = text(field, &name).await?;
        form.set(&name, value)?;
    }
}

/// Reads what is left of a refused form, so that a client still sending
/// gets the answer rather than a reset connection. Bounded by the body
/// limit: past it the read fails and the connection is closed.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// Streams the file field into a new upload. The upload is still open on
/// return: the caller finishes it once the form is read.
async fn stream_file(
    state: &AppState,
    caller: &Caller,
    form: &Form,
    mut field: Field<'_>,
    limit: u64,
) -> ApiResult<Upload> {
    let upload = Upload::start(state, caller, form.header.clone());
    let mut size = 0u64;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(upload),
            Err(e) => {
                upload.abort();
                return Err(bad_body(e));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            upload.abort();
            return Err(too_large(limit));
        }
        if !upload.send(chunk).await {
            return Err(upload.early_error().await);
        }
    }
}

/// Reads what follows the file: only empty fields (and `file_id`) may.
async fn rest_of_form(multipart: &mut Multipart) -> ApiResult<()> {
    while let Some(field) = multipart.next_field().await.map_err(bad_body)? {
        let Some(name) = field.name().map(ToOwned::to_owned) else {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "a form field has no name (`name*=` alone is not understood)",
            ));
        };
        if name == "file" {
            return Err(ApiError::field("file", "one file per request"));
        }
        let value = text(field, &name).await?;
        if !value.trim().is_empty() && name != "file_id" {
            return Err(ApiError::field(
                &name,
                "form fields must come before the `file` field",
            ));
        }
    }
    Ok(())
}

/// `upload_type=import`: the file is a JSON report, or a list of them.
async fn import(state: &AppState, caller: &Caller, mut field: Field<'_>) -> ApiResult<Vec<i64>> {
    let limit = state.config.max_import_bytes;
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(buf)
        .ok()
        .filter(|t| serde_json::from_str::<serde_json::Value>(t).is_ok())
        .ok_or_else(|| ApiError::field("file", "Cannot import non-JSON files!"))?;
    let tasks = state
        .reports()
        .import_report(caller.request(pb::ImportReportRequest { report_json: text }))
        .await
        .map_err(|e| ApiError::from(e).rename_field("report_json", "file"))?
        .into_inner()
        .tasks;
    Ok(tasks.iter().map(|t| t.task_id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_fields_are_read_and_the_rest_kept_as_metadata() {
        let mut form = Form::default();
        for (k, v) in [
            ("duplicate", "rescan"),
            ("priority", "9"),
            ("modules", "filemeta, pe,,"),
            ("Tags", "Malware, apt ,Malware"),
            ("Submitter Name", "Ann"),
            ("Submission Description", ""),
            ("file_id", "3"),
        ] {
            form.set(k, v.to_owned()).unwrap();
        }
        let h = &form.header;
        assert_eq!(h.duplicate, pb::DuplicatePolicy::Rescan as i32);
        assert!(h.force);
        assert_eq!(h.priority, 9);
        assert_eq!(h.modules, ["filemeta", "pe"]);
        assert_eq!(h.tags, ["Malware", "apt"]);
        assert_eq!(h.metadata.len(), 1);
        assert_eq!(h.metadata["Submitter Name"], "Ann");
    }

    #[test]
    fn bad_values_name_their_field() {
        for (k, v) in [
            ("priority", "0"),
            ("priority", "11"),
            ("priority", "x"),
            ("duplicate", "always"),
            ("upload_type", "zip"),
        ] {
            let err = Form::default().set(k, v.to_owned()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(k), "{k}={v}");
            assert_eq!(err.code, ErrorCode::InvalidArgument);
        }
    }
}

//! `archive-analyze=true`: the uploaded zip's members become separate
//! tasks, as in MultiScanner. The archive is spooled to a temporary file
//! (a zip's directory is at its end) and every member is extracted and
//! checked before the first is submitted, so a wrong password or a damaged
//! archive stores nothing.

use std::{
    fs::File,
    io::{self, Read, Write},
    path::PathBuf,
};

use axum::extract::multipart::Field;
use multiscanner_proto::ErrorCode;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tokio_util::io::ReaderStream;

use super::submit::{Form, Upload, bad_body, too_large};
use crate::{
    error::{ApiError, ApiResult},
    state::{AppState, Caller},
};

struct Member {
    name: String,
    path: PathBuf,
}

pub async fn submit_members(
    state: &AppState,
    caller: &Caller,
    form: &Form,
    mut field: Field<'_>,
) -> ApiResult<Vec<i64>> {
    let limit = state.config.max_upload_bytes;
    let dir = tempfile::tempdir().map_err(internal)?;
    let archive_path = dir.path().join("archive");
    let mut file = tokio::fs::File::create(&archive_path)
        .await
        .map_err(internal)?;
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(bad_body)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);

    let password = form.header.archive_password.clone();
    let max_members = state.config.max_archive_members;
    let max_bytes = state.config.max_archive_bytes;
    let out = dir.path().to_owned();
    let members = tokio::task::spawn_blocking(move || {
        extract(&archive_path, &out, &password, max_members, max_bytes)
    })
    .await
    .map_err(internal)??;

    let mut ids = Vec::with_capacity(members.len());
    for m in members {
        let mut header = form.header.clone();
        header.filename = m.name;
        let upload = Upload::start(state, caller, header);
        let file = tokio::fs::File::open(&m.path).await.map_err(internal)?;
        let mut chunks = ReaderStream::with_capacity(file, 256 * 1024);
        while let Some(chunk) = chunks.next().await {
            if !upload.send(chunk.map_err(internal)?).await {
                break;
            }
        }
        let answer = upload.finish().await?;
        ids.push(answer.task.map(|t| t.task_id).unwrap_or_default());
    }
    Ok(ids)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("archive extraction failed: {e}"),
    )
}

fn extract(
    archive: &std::path::Path,
    out: &std::path::Path,
    password: &str,
    max_members: u32,
    max_bytes: u64,
) -> ApiResult<Vec<Member>> {
    let file = File::open(archive).map_err(internal)?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| ApiError::field("file", format!("not a zip archive: {e}")))?;
    let mut members = Vec::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = if password.is_empty() {
            zip.by_index(i)
        } else {
            zip.by_index_decrypt(i, password.as_bytes())
        }
        .map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(m) if m.contains("Password") => {
                ApiError::field(
                    "archive-password",
                    "the archive is encrypted: give its password",
                )
            }
            zip::result::ZipError::InvalidPassword => {
                ApiError::field("archive-password", "wrong password for the archive")
            }
            other => ApiError::field("file", format!("damaged zip archive: {other}")),
        })?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("member-{i}"));
        if members.len() as u32 >= max_members {
            return Err(ApiError::field(
                "file",
                format!("the archive has more than {max_members} members"),
            ));
        }
        let path = out.join(format!("member-{i}"));
        let mut dest = File::create(&path).map_err(internal)?;
        let allowed = max_bytes - total;
        let copied = copy_bounded(&mut entry, &mut dest, allowed).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                ApiError::field("archive-password", format!("cannot extract {name:?}: {e}"))
            } else {
                ApiError::field("file", format!("cannot extract {name:?}: {e}"))
            }
        })?;
        let Some(copied) = copied else {
            return Err(ApiError::field(
                "file",
                format!("the archive's members hold more than {max_bytes} bytes"),
            ));
        };
        total += copied;
        members.push(Member { name, path });
    }
    if members.is_empty() {
        return Err(ApiError::field("file", "the archive holds no file"));
    }
    Ok(members)
}

/// Copies at most `allowed` bytes; `None` when there were more.
fn copy_bounded(
    from: &mut impl Read,
    to: &mut impl Write,
    allowed: u64,
) -> io::Result<Option<u64>> {
    let copied = io::copy(&mut from.take(allowed), to)?;
    let mut probe = [0u8; 1];
    if copied == allowed && from.read(&mut probe)? > 0 {
        return Ok(None);
    }
    Ok(Some(copied))
}

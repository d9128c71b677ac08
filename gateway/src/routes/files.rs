//! Sample downloads: raw, or in a zip encrypted with the password
//! `infected` (ZipCrypto, which every unzip tool opens), as MultiScanner
//! serves them so that no one opens a sample by accident. The zip is
//! written as the sample streams in from the scheduler, never held whole.

use std::io::{self, Write};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use futures::StreamExt;
use multiscanner_proto::{ErrorCode, pb};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;
use zip::{
    CompressionMethod,
    unstable::write::FileOptionsExt,
    write::{SimpleFileOptions, ZipWriter},
};

use super::{
    common::{ApiQuery, PathParams, TaskIdPath, flag, parse_sha256, parse_task_ids},
    tasks::get_task,
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::{AppState, Caller},
};

/// The password of every sample zip.
pub const ZIP_PASSWORD: &str = "infected";
/// Most samples in one zip.
const MAX_ZIP_SAMPLES: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawParams {
    /// `t`: the bytes themselves instead of a password-protected zip.
    pub raw: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilesParams {
    /// Comma-separated task ids (at most 100).
    pub task_ids: Option<String>,
}

type SampleStream = tonic::Streaming<pb::SampleData>;

/// Opens a sample's byte stream (NotFound now, not halfway through).
async fn open(state: &AppState, caller: &Caller, sha256: &str) -> ApiResult<SampleStream> {
    state
        .samples()
        .get_sample(caller.request(pb::GetSampleRequest {
            sha256: sha256.to_owned(),
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| {
            let e = ApiError::from(e);
            if e.code == ErrorCode::NotFound {
                ApiError::not_found(format!("no stored sample has SHA-256 {sha256}"))
            } else {
                e
            }
        })
}

fn bytes_of(stream: SampleStream) -> impl futures::Stream<Item = io::Result<Bytes>> {
    stream.map(|c| c.map(|c| c.data).map_err(io::Error::other))
}

fn download(body: Body, content_type: &'static str, disposition: String) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Bytes written by the zip thread, passed on to the response body.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum ZipInput {
    Member(String),
    Data(Bytes),
    /// Every sample was read whole: the zip may be finished.
    Done,
}

/// A zip of the given samples, each as `SHA256.bin`, streamed.
fn zip_body(samples: Vec<(String, SampleStream)>) -> Body {
    let (in_tx, mut in_rx) = mpsc::channel::<ZipInput>(4);
    let (out_tx, out_rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let err_tx = out_tx.clone();
    tokio::task::spawn_blocking(move || {
        let run = || -> zip::result::ZipResult<()> {
            let sink = io::BufWriter::with_capacity(64 * 1024, ChannelWriter(out_tx));
            let mut zip = ZipWriter::new_stream(sink);
            let options = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .large_file(true)
                .with_deprecated_encryption(ZIP_PASSWORD.as_bytes())?;
            loop {
                match in_rx.blocking_recv() {
                    Some(ZipInput::Member(name)) => zip.start_file(name, options)?,
                    Some(ZipInput::Data(data)) => zip.write_all(&data)?,
                    Some(ZipInput::Done) => break,
                    // A sample stream failed: no central directory, so the
                    // client sees a broken download, not a short zip that
                    // looks whole.
                    None => return Err(io::Error::other("a sample stream failed").into()),
                }
            }
            zip.finish()?.into_inner().flush()?;
            Ok(())
        };
        if let Err(e) = run() {
            let _ = err_tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    tokio::spawn(async move {
        for (sha, stream) in samples {
            if in_tx
                .send(ZipInput::Member(format!("{sha}.bin")))
                .await
                .is_err()
            {
                return;
            }
            let mut bytes = Box::pin(bytes_of(stream));
            while let Some(chunk) = bytes.next().await {
                match chunk {
                    Ok(data) => {
                        if in_tx.send(ZipInput::Data(data)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%sha, "sample stream failed mid-download: {e}");
                        return;
                    }
                }
            }
        }
        let _ = in_tx.send(ZipInput::Done).await;
    });
    Body::from_stream(ReceiverStream::new(out_rx))
}

async fn sample_response(
    state: &AppState,
    caller: &Caller,
    sha: String,
    raw: bool,
) -> ApiResult<Response> {
    let stream = open(state, caller, &sha).await?;
    if raw {
        return Ok(download(
            Body::from_stream(bytes_of(stream)),
            "application/octet-stream",
            format!("inline; filename={sha}.bin"),
        ));
    }
    Ok(download(
        zip_body(vec![(sha.clone(), stream)]),
        "application/zip",
        format!("attachment; filename={sha}.zip"),
    ))
}

/// A sample, in a zip with the password `infected` (or raw with `raw=t`).
#[utoipa::path(get, path = "/api/v2/files/{sha256}", operation_id = "sample_by_sha256", tag = "samples",
    params(("sha256" = String, Path, pattern = "^[0-9a-fA-F]{64}$"), RawParams),
    responses((status = 200, description = "The sample: a zip, or its bytes with raw=t", content(
        (Vec<u8> = "application/zip"), (Vec<u8> = "application/octet-stream"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn by_sha256(
    State(state): State<AppState>,
    caller: Caller,
    params: PathParams,
    ApiQuery(p): ApiQuery<RawParams>,
) -> ApiResult<Response> {
    let sha = parse_sha256("sha256", params.get("sha256"))?;
    sample_response(&state, &caller, sha, flag(p.raw.as_deref())).await
}

/// The sample of a task.
#[utoipa::path(get, path = "/api/v2/tasks/{task_id}/file", tag = "samples",
    params(("task_id" = i64, Path, minimum = 1), RawParams),
    responses((status = 200, description = "The sample: a zip, or its bytes with raw=t", content(
        (Vec<u8> = "application/zip"), (Vec<u8> = "application/octet-stream"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn of_task(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    ApiQuery(p): ApiQuery<RawParams>,
) -> ApiResult<Response> {
    let task = get_task(&state, &caller, id).await?;
    sample_response(&state, &caller, task.sha256, flag(p.raw.as_deref())).await
}

/// The samples of several tasks in one zip (password `infected`).
#[utoipa::path(get, path = "/api/v2/tasks/files", tag = "samples",
    params(FilesParams),
    responses((status = 200, description = "A zip of the samples", content_type = "application/zip", body = Vec<u8>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn of_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<FilesParams>,
) -> ApiResult<Response> {
    let ids = parse_task_ids(p.task_ids.as_deref())?;
    if ids.len() > MAX_ZIP_SAMPLES {
        return Err(ApiError::field(
            "task_ids",
            format!("at most {MAX_ZIP_SAMPLES} samples in one zip"),
        ));
    }
    let mut shas: Vec<String> = Vec::new();
    for id in ids {
        let sha = get_task(&state, &caller, id).await?.sha256;
        if !shas.contains(&sha) {
            shas.push(sha);
        }
    }
    let mut samples = Vec::with_capacity(shas.len());
    for sha in shas {
        let stream = open(&state, &caller, &sha).await?;
        samples.push((sha, stream));
    }
    Ok(download(
        zip_body(samples),
        "application/zip",
        format!("attachment; filename={}.zip", uuid::Uuid::new_v4()),
    ))
}

//! The public `Reports` service: decode, call the scheduler, encode.

use std::sync::Arc;

use multiscanner_proto::{
    convert::timestamp,
    pb::{self, reports_server::Reports},
};
use tonic::{Request, Response, Status};

use super::{sha256, task_id};
use crate::{
    core::Scheduler,
    store::search::{Note, SearchKind, SearchQuery, SortField},
};

const MAX_PAGE: u32 = 1000;
const DEFAULT_SEARCH_PAGE: u32 = 25;
const DEFAULT_NOTES_PAGE: u32 = 10;

#[derive(Debug, Clone)]
pub struct ReportsApi(pub Arc<Scheduler>);

fn page_size(asked: u32, default: u32) -> Result<u32, Status> {
    match asked {
        0 => Ok(default),
        n if n <= MAX_PAGE => Ok(n),
        n => Err(Status::invalid_argument(format!(
            "invalid field `page_size`: {n} is more than {MAX_PAGE}"
        ))),
    }
}

fn search_query(r: pb::SearchRequest) -> Result<SearchQuery, Status> {
    let kind = match pb::SearchType::try_from(r.r#type) {
        Ok(pb::SearchType::Unspecified | pb::SearchType::Default) => SearchKind::Default,
        Ok(pb::SearchType::Exact) => SearchKind::Exact,
        Ok(pb::SearchType::Advanced) => SearchKind::Advanced,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "invalid field `type`: unknown search type {}",
                r.r#type
            )));
        }
    };
    let sort = match pb::SortField::try_from(r.sort) {
        Ok(pb::SortField::Unspecified | pb::SortField::TaskId) => SortField::TaskId,
        Ok(pb::SortField::ScanTime) => SortField::ScanTime,
        Ok(pb::SortField::Filename) => SortField::Filename,
        Ok(pb::SortField::Sha256) => SortField::Sha256,
        Ok(pb::SortField::Filesize) => SortField::Filesize,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "invalid field `sort`: unknown sort field {}",
                r.sort
            )));
        }
    };
    Ok(SearchQuery {
        text: r.query,
        kind,
        latest_per_sample: r.latest_per_sample,
        sha256: if r.sha256.is_empty() {
            None
        } else {
            Some(sha256(&r.sha256)?)
        },
        sort,
        ascending: r.ascending,
        offset: r.offset,
        limit: page_size(r.page_size, DEFAULT_SEARCH_PAGE)?,
    })
}

fn note(n: &Note) -> pb::Note {
    pb::Note {
        note_id: n.id.clone(),
        sha256: n.sha256.to_hex(),
        text: n.text.clone(),
        created_at: Some(timestamp(n.created_at)),
        updated_at: Some(timestamp(n.updated_at)),
    }
}

fn report(task: &multiscanner_proto::domain::Task, report: &serde_json::Value) -> pb::Report {
    pb::Report {
        task: Some(pb::Task::from(task)),
        report_json: report.to_string(),
    }
}

#[tonic::async_trait]
impl Reports for ReportsApi {
    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let id = task_id(request.get_ref().task_id)?;
        let (task, r) = self.0.report(id).await?;
        Ok(Response::new(report(&task, &r)))
    }

    async fn get_report_by_sha256(
        &self,
        request: Request<pb::GetReportBySha256Request>,
    ) -> Result<Response<pb::Report>, Status> {
        let sha = sha256(&request.get_ref().sha256)?;
        let (task, r) = self.0.report_by_sha256(sha).await?;
        Ok(Response::new(report(&task, &r)))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let query = search_query(request.into_inner())?;
        let page = self.0.search(&query).await?;
        Ok(Response::new(pb::SearchResponse {
            total: page.total,
            hits: page
                .hits
                .iter()
                .map(|h| pb::SearchHit {
                    task_id: h.task_id.0,
                    sha256: h.sha256.to_hex(),
                    filename: h.filename.clone(),
                    filetype: h.filetype.clone(),
                    filesize: h.filesize,
                    status: pb::TaskStatus::from(h.status).into(),
                    scan_time: h.scan_time.map(timestamp),
                })
                .collect(),
        }))
    }

    async fn list_tags(
        &self,
        _: Request<pb::ListTagsRequest>,
    ) -> Result<Response<pb::ListTagsResponse>, Status> {
        let tags = self.0.tag_counts().await?;
        Ok(Response::new(pb::ListTagsResponse {
            tags: tags
                .into_iter()
                .map(|t| pb::TagCount {
                    tag: t.tag,
                    samples: t.count,
                })
                .collect(),
        }))
    }

    async fn add_tag(
        &self,
        request: Request<pb::TagRequest>,
    ) -> Result<Response<pb::TagsResponse>, Status> {
        let r = request.into_inner();
        let tags = self.0.add_tag(task_id(r.task_id)?, &r.tag).await?;
        Ok(Response::new(pb::TagsResponse { tags }))
    }

    async fn remove_tag(
        &self,
        request: Request<pb::TagRequest>,
    ) -> Result<Response<pb::TagsResponse>, Status> {
        let r = request.into_inner();
        let tags = self.0.remove_tag(task_id(r.task_id)?, &r.tag).await?;
        Ok(Response::new(pb::TagsResponse { tags }))
    }

    async fn list_notes(
        &self,
        request: Request<pb::ListNotesRequest>,
    ) -> Result<Response<pb::ListNotesResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size, DEFAULT_NOTES_PAGE)?;
        let offset: u32 = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse().map_err(|_| {
                Status::invalid_argument("invalid field `page_token`: not a token this API gave")
            })?
        };
        // One more than asked tells whether another page follows.
        let mut notes = self.0.notes(task_id(r.task_id)?, offset, limit + 1).await?;
        let more = notes.len() > limit as usize;
        notes.truncate(limit as usize);
        Ok(Response::new(pb::ListNotesResponse {
            notes: notes.iter().map(note).collect(),
            next_page_token: if more {
                (offset + limit).to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn add_note(
        &self,
        request: Request<pb::AddNoteRequest>,
    ) -> Result<Response<pb::Note>, Status> {
        let r = request.into_inner();
        let n = self.0.add_note(task_id(r.task_id)?, &r.text).await?;
        Ok(Response::new(note(&n)))
    }

    async fn edit_note(
        &self,
        request: Request<pb::EditNoteRequest>,
    ) -> Result<Response<pb::Note>, Status> {
        let r = request.into_inner();
        let n = self
            .0
            .edit_note(task_id(r.task_id)?, &r.note_id, &r.text)
            .await?;
        Ok(Response::new(note(&n)))
    }

    async fn delete_note(
        &self,
        request: Request<pb::DeleteNoteRequest>,
    ) -> Result<Response<pb::DeleteNoteResponse>, Status> {
        let r = request.into_inner();
        self.0.delete_note(task_id(r.task_id)?, &r.note_id).await?;
        Ok(Response::new(pb::DeleteNoteResponse {}))
    }

    async fn import_report(
        &self,
        request: Request<pb::ImportReportRequest>,
    ) -> Result<Response<pb::ImportReportResponse>, Status> {
        let tasks = self.0.import(&request.get_ref().report_json).await?;
        Ok(Response::new(pb::ImportReportResponse {
            tasks: tasks.iter().map(pb::Task::from).collect(),
        }))
    }
}

//! The public `Tasks` service.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use multiscanner_proto::{
    domain::{Submission, TaskStatus},
    pb::{self, submit_request::Part, tasks_server::Tasks},
    trace,
};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info_span};

use super::{sha256, task_id};
use crate::{
    core::{Scheduler, module_event},
    store::TaskQuery,
};

const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;
/// How often a watch re-reads the task's stored status.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct TasksApi(pub Arc<Scheduler>);

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TaskEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Tasks for TasksApi {
    async fn submit(
        &self,
        request: Request<Streaming<pb::SubmitRequest>>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let span = info_span!("submit");
        trace::set_parent_from_metadata(&span, request.metadata());
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::SubmitRequest {
                part: Some(Part::Header(h)),
            }) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "invalid field `header`: the first message must be the submission header",
                ));
            }
        };
        let submission = Submission::try_from(header)?;
        let chunks = stream.map(|m| match m {
            Ok(pb::SubmitRequest {
                part: Some(Part::Chunk(c)),
            }) => Ok(c),
            Ok(_) => Err(Status::invalid_argument(
                "invalid field `chunk`: only the first message may be a header",
            )),
            Err(e) => Err(e),
        });
        let submitted = self
            .0
            .submit(submission, Box::pin(chunks))
            .instrument(span)
            .await?;
        Ok(Response::new(pb::SubmitResponse {
            task: Some(pb::Task::from(&submitted.task)),
            existing: submitted.existing,
        }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let id = task_id(request.get_ref().task_id)?;
        let task = self.0.get_task(id).await?;
        Ok(Response::new(pb::Task::from(&task)))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let req = request.into_inner();
        let limit = match req.page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let before = match req.page_token.as_str() {
            "" => None,
            t => Some(task_id(t.parse().map_err(|_| {
                Status::invalid_argument("invalid field `page_token`: not a token from a listing")
            })?)?),
        };
        let statuses = req
            .statuses()
            .map(TaskStatus::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let sha256 = match req.sha256.as_str() {
            "" => None,
            s => Some(sha256(s)?),
        };
        let tasks = self
            .0
            .list_tasks(&TaskQuery {
                statuses,
                sha256,
                before,
                limit,
            })
            .await?;
        let next_page_token = match tasks.last() {
            Some(t) if tasks.len() == limit as usize => t.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.iter().map(pb::Task::from).collect(),
            next_page_token,
        }))
    }

    type WatchTaskStream = EventStream;

    async fn watch_task(
        &self,
        request: Request<pb::WatchTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        let id = task_id(request.get_ref().task_id)?;
        let scheduler = Arc::clone(&self.0);
        // Subscribe before reading the current state, so nothing that
        // happens in between is missed.
        let mut events = scheduler.events.subscribe(id.0);
        let task = scheduler.get_task(id).await?;
        let stream = async_stream::try_stream! {
            yield status_event(&task);
            for r in scheduler.results(id).await? {
                yield pb::TaskEvent {
                    task_id: id.0,
                    event: Some(pb::task_event::Event::ModuleResult(module_event(&r))),
                };
            }
            let mut done = task.status.is_final();
            let mut last_status = task.status;
            // Events are published by the scheduler that handles the work;
            // with several schedulers on one task store that may be another
            // one, so the stored status is also checked now and then.
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.reset();
            while !done {
                let received = tokio::select! {
                    r = events.recv() => Some(r),
                    _ = recheck.tick() => None,
                };
                let Some(received) = received else {
                    let task = scheduler.get_task(id).await?;
                    if task.status != last_status {
                        last_status = task.status;
                        done = task.status.is_final();
                        yield status_event(&task);
                    }
                    continue;
                };
                match received {
                    Ok(event) => {
                        if let Some(pb::task_event::Event::Status(t)) = &event.event {
                            done = is_final(t.status);
                            if let Some(st) = domain_status(t.status) {
                                last_status = st;
                            }
                        }
                        yield event;
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: resend the current state.
                        let task = scheduler.get_task(id).await?;
                        done = task.status.is_final();
                        last_status = task.status;
                        yield status_event(&task);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let id = task_id(request.get_ref().task_id)?;
        let task = self.0.cancel(id).await?;
        Ok(Response::new(pb::Task::from(&task)))
    }

    async fn delete_task(
        &self,
        request: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<pb::DeleteTaskResponse>, Status> {
        let id = task_id(request.get_ref().task_id)?;
        self.0.delete(id).await?;
        Ok(Response::new(pb::DeleteTaskResponse {}))
    }
}

fn status_event(task: &multiscanner_proto::domain::Task) -> pb::TaskEvent {
    pb::TaskEvent {
        task_id: task.id.0,
        event: Some(pb::task_event::Event::Status(pb::Task::from(task))),
    }
}

fn domain_status(status: i32) -> Option<TaskStatus> {
    pb::TaskStatus::try_from(status)
        .ok()
        .and_then(|s| TaskStatus::try_from(s).ok())
}

fn is_final(status: i32) -> bool {
    domain_status(status).is_some_and(TaskStatus::is_final)
}

//! Thin gRPC handlers: decode, call [`crate::core::Scheduler`], encode.

pub mod auth;
pub mod hub;
pub mod reports;
pub mod samples;
pub mod tasks;

use multiscanner_proto::domain::{Sha256, TaskId};
use tonic::Status;

pub(crate) fn task_id(id: i64) -> Result<TaskId, Status> {
    if id > 0 {
        Ok(TaskId(id))
    } else {
        Err(Status::invalid_argument(format!(
            "invalid field `task_id`: {id} is not a task id (ids start at 1)"
        )))
    }
}

pub(crate) fn sha256(s: &str) -> Result<Sha256, Status> {
    s.parse()
        .map_err(|e| Status::invalid_argument(format!("invalid field `sha256`: {e}")))
}

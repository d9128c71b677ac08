//! The scheduler's error type, mapped to gRPC once at the edge.

use multiscanner_proto::{ErrorCode, FieldError};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SchedulerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Field(_) | Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for SchedulerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Unavailable(why) => {
                Self::Unavailable(format!("storage unavailable: {why}"))
            }
            StoreError::BadQuery(why) => Self::InvalidArgument(format!(
                "invalid field `query`: the report store refused it: {why}"
            )),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<SchedulerError> for tonic::Status {
    fn from(e: SchedulerError) -> Self {
        tonic::Status::new(e.code().grpc_code(), e.to_string())
    }
}

pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

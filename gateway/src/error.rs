//! The gateway's one error type: an [`ErrorCode`] (shared with gRPC) with
//! the message and, for bad input, the field at fault.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use multiscanner_proto::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

/// The body of every error answer. `Message` is MultiScanner's key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    #[serde(rename = "Message")]
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidArgument,
            message: format!("invalid field `{field}`: {}", message.into()),
            field: Some(field.to_owned()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The same error naming `to` where the mesh named its own `from`
    /// (a gRPC field that is a differently named REST parameter).
    pub fn rename_field(mut self, from: &str, to: &str) -> Self {
        if self.field.as_deref() == Some(from) {
            self.field = Some(to.to_owned());
        }
        self
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        let code = ErrorCode::from_grpc(s.code());
        let message = match s.code() {
            tonic::Code::Unavailable if s.message().contains("transport") => {
                format!("the scheduler is not reachable: {}", s.message())
            }
            _ => s.message().to_owned(),
        };
        // The mesh names a bad field as "invalid field `NAME`: ...".
        let field = message
            .strip_prefix("invalid field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(f, _)| f.to_owned());
        Self {
            code,
            message,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.code.http_status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), message = %self.message, "request failed");
        }
        let body = ErrorBody {
            message: self.message,
            field: self.field,
        };
        (status, Json(body)).into_response()
    }
}

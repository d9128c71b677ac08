//! Token checks on every REST call (the same tokens the scheduler checks on
//! gRPC): reading needs a token, changing data a `write` one.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use multiscanner_proto::auth::Role;

use crate::{error::ApiError, state::AppState};

/// Paths open to everyone: the liveness answer and the API description.
const OPEN: &[&str] = &["/", "/api/openapi.json"];

pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN.contains(&request.uri().path()) || request.method() == http::Method::OPTIONS {
        return next.run(request).await;
    }
    let need = if matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        Role::Read
    } else {
        Role::Write
    };
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.authorize(header, need) {
        Ok(_) => next.run(request).await,
        Err(e) => {
            let mut response = ApiError::new(e.code, e.message).into_response();
            if response.status() == http::StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

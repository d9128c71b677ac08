//! API tokens on the public services: the same [`AuthConfig`] the gateway
//! checks, applied to every gRPC call but the workers' own service and the
//! health and reflection services.

use multiscanner_proto::auth::{AuthConfig, Role};
use tonic::{Request, Status};

/// The called method's path (`/multiscanner.v1.Tasks/Submit`), copied into
/// the request's extensions before the interceptor, which sees no URI.
#[derive(Clone, Debug)]
pub struct CallPath(pub String);

pub fn tag_path(mut req: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    let path = CallPath(req.uri().path().to_owned());
    req.extensions_mut().insert(path);
    req
}

/// Calls that change stored data, and so need a `write` token.
const WRITES: &[&str] = &[
    "/multiscanner.v1.Tasks/Submit",
    "/multiscanner.v1.Tasks/CancelTask",
    "/multiscanner.v1.Tasks/DeleteTask",
    "/multiscanner.v1.Reports/AddTag",
    "/multiscanner.v1.Reports/RemoveTag",
    "/multiscanner.v1.Reports/AddNote",
    "/multiscanner.v1.Reports/EditNote",
    "/multiscanner.v1.Reports/DeleteNote",
    "/multiscanner.v1.Reports/ImportReport",
];

/// Services open to every caller: workers (which dial in and hold no
/// token), health checks and reflection.
const OPEN_PREFIXES: &[&str] = &[
    "/multiscanner.v1.WorkerHub/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
];

pub fn check(auth: &AuthConfig, req: Request<()>) -> Result<Request<()>, Status> {
    let path = req
        .extensions()
        .get::<CallPath>()
        .map(|p| p.0.as_str())
        .unwrap_or_default();
    if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return Ok(req);
    }
    let need = if WRITES.contains(&path) {
        Role::Write
    } else {
        Role::Read
    };
    auth.authorize_grpc(&req, need)?;
    Ok(req)
}

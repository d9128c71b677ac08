//! The REST gateway: MultiScanner's `/api/v2` routes, each translated into
//! gRPC calls to the scheduler's public services. It holds no state and
//! touches no store; API tokens and the upload limit are enforced here and
//! (tokens) again by the scheduler.

mod auth;
pub mod config;
pub mod error;
pub mod openapi;
pub mod routes;
pub mod state;

use std::{future::Future, net::SocketAddr};

use axum::{Json, Router, extract::DefaultBodyLimit, routing::get};
use http::{HeaderValue, header};
use multiscanner_proto::auth::AuthConfig;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::info;
use utoipa::OpenApi;

pub use crate::config::GatewayConfig;
use crate::state::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> anyhow::Result<Router> {
    let doc = openapi::ApiDoc::openapi();
    // Room for the multipart framing and form fields around the file.
    let body_limit = usize::try_from(state.config.max_upload_bytes.saturating_add(1 << 20))
        .unwrap_or(usize::MAX);
    let router = routes::v2()
        .route("/api/openapi.json", get(move || async move { Json(doc) }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    let router = match cors(&state.config.cors_origin)? {
        Some(layer) => router.layer(layer),
        None => router,
    };
    Ok(router.with_state(state))
}

/// Browsers may call the API from origins matching `pattern` (whole match).
fn cors(pattern: &str) -> anyhow::Result<Option<CorsLayer>> {
    if pattern.is_empty() {
        return Ok(None);
    }
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| anyhow::anyhow!("invalid gateway.cors_origin: {e}"))?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origin.to_str().is_ok_and(|o| re.is_match(o))
            }))
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([http::HeaderName::from_static("x-next-page-token")]),
    ))
}

/// A gateway bound to its address, not yet serving.
#[derive(Debug)]
pub struct BoundGateway {
    listener: TcpListener,
    router: Router,
}

impl BoundGateway {
    pub async fn bind(config: GatewayConfig, auth: AuthConfig) -> anyhow::Result<Self> {
        auth.check_listen("the gateway", config.http_addr)
            .map_err(|e| anyhow::anyhow!(e))?;
        let addr = config.http_addr;
        let router = app(AppState::new(config, auth)?)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(addr = %self.local_addr(), "gateway listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("gateway server failed: {e}"))?;
        info!("gateway stopped");
        Ok(())
    }
}

/// Binds and serves until `shutdown`.
pub async fn run(
    config: GatewayConfig,
    auth: AuthConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    BoundGateway::bind(config, auth)
        .await?
        .serve(shutdown)
        .await
}

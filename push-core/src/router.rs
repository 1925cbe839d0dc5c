//! The HTTP side of the daemon: socket.io, `/healthz`, `/readyz`, and the
//! HTTP publish API when it is turned on; `/metrics` too unless an admin
//! listener serves it ([`admin_router`]), with the Admin UI's page.
//!
//! Layers wrap the router from the outside in: the Origin guard runs first
//! and refuses hostile pages before socketioxide sees the request, then the
//! handshake rate limit, then CORS answers preflights and decorates polling
//! responses, then the request head is copied out of hyper's read buffer,
//! then socketioxide takes everything under `/socket.io/` and leaves the
//! rest to the routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::cluster::{Io, Layer};
use crate::metrics::{self, Metrics};
use crate::readiness::{Readiness, readyz};
use crate::socketio::{
    self, ClientScript, ConnectionLimits, OriginPolicy, cors_layer, detach_request_head,
    guard_handshake_rate, guard_origin, serve_client_script,
};

/// What `/metrics` is written from.
#[derive(Clone)]
pub(crate) struct MetricsState {
    pub io: Io,
    pub metrics: Arc<Metrics>,
    /// The Admin UI's namespace, when it is on: not counted as the site's.
    pub admin_namespace: Option<&'static str>,
}

/// Everything the HTTP side is built from.
pub(crate) struct HttpParts {
    pub socketio: Layer,
    pub metrics: MetricsState,
    /// Serve `/metrics` here: only when no admin listener does, so setting
    /// `admin_listen` takes metrics off the public listener.
    pub public_metrics: bool,
    pub readiness: Arc<Readiness>,
    pub origins: OriginPolicy,
    pub limits: Arc<ConnectionLimits>,
    /// The HTTP publish API's routes, when it is on.
    pub publish_api: Option<Router>,
    /// The socket.io client bundle, when `client_script` is set.
    pub client_script: Option<Arc<ClientScript>>,
}

pub(crate) fn router(parts: HttpParts) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(parts.readiness));
    if parts.public_metrics {
        router = router.route(
            "/metrics",
            get(prometheus_metrics).with_state(parts.metrics),
        );
    }
    if let Some(api) = parts.publish_api {
        router = router.merge(api);
    }
    let router = router
        .layer(parts.socketio)
        .layer(axum::middleware::from_fn(detach_request_head))
        .layer(cors_layer(&parts.origins))
        .layer(axum::middleware::from_fn_with_state(
            parts.limits,
            guard_handshake_rate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            parts.origins,
            guard_origin,
        ));
    // Outermost: the bundle is a static file for a <script> tag, neither a
    // handshake to count nor a request a foreign page could abuse.
    match parts.client_script {
        Some(script) => router.layer(axum::middleware::from_fn_with_state(
            script,
            serve_client_script,
        )),
        None => router,
    }
}

/// The admin listener's routes (`admin_listen`): `/metrics`, `/healthz`
/// and `/readyz`, and the Admin UI's page (`admin_page`) when it is
/// served; nothing a publisher uses, so it can be opened to a monitoring
/// host without opening `/api/*` or socket.io.
pub(crate) fn admin_router(
    metrics: MetricsState,
    readiness: Arc<Readiness>,
    admin_page: Option<Router>,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(prometheus_metrics).with_state(metrics));
    match admin_page {
        Some(page) => router.merge(page),
        None => router,
    }
}

/// The process answers; whether it is ready for traffic is `/readyz`.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn prometheus_metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let census = socketio::census(&state.io, state.admin_namespace).await;
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.prometheus_text(census),
    )
}

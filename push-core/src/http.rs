//! The HTTP side of the daemon: socket.io, `/healthz` and `/metrics`.
//!
//! Layers wrap the router from the outside in: the Origin guard runs first
//! and refuses hostile pages before socketioxide sees the request, then CORS
//! answers preflights and decorates polling responses, then socketioxide
//! takes everything under `/socket.io/` and leaves the rest to the routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;

use crate::metrics::Metrics;
use crate::realtime::{self, OriginPolicy, cors_layer, guard_origin};

#[derive(Clone)]
struct MetricsState {
    io: SocketIo,
    metrics: Arc<Metrics>,
}

pub(crate) fn router(
    socketio: SocketIoLayer,
    io: SocketIo,
    metrics: Arc<Metrics>,
    origins: OriginPolicy,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus_metrics))
        .with_state(MetricsState { io, metrics })
        .layer(socketio)
        .layer(cors_layer(&origins))
        .layer(axum::middleware::from_fn_with_state(origins, guard_origin))
}

/// The daemon binds everything before it serves HTTP, so answering at all
/// means ready.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn prometheus_metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let census = realtime::census(&state.io).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.prometheus_text(&census),
    )
}

//! Which web pages may open a connection.
//!
//! Connections are authenticated by cookies, and browsers attach cookies to
//! a WebSocket opened by any site. Without an Origin check, a hostile page
//! could open a socket as its visitor and read their private messages
//! (cross-site WebSocket hijacking). So when `allowed_origins` is set, every
//! socket.io request carrying another Origin is refused with 403, on both
//! transports. A request with no Origin at all comes from a non-browser
//! client or a same-origin page, and is let through.
//!
//! Long-polling from another origin also needs CORS headers with
//! credentials; [`cors_layer`] answers those for allowed origins only.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::Refusal;
use crate::metrics::Metrics;

/// The configured allow-list; empty allows every origin. Clones share
/// one list, which a reload replaces ([`OriginPolicy::set`]): the guard
/// and the CORS layer read it at each request.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Arc<ArcSwap<Vec<String>>>,
    metrics: Arc<Metrics>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<String>, metrics: Arc<Metrics>) -> Self {
        Self {
            allowed: Arc::new(ArcSwap::from_pointee(allowed)),
            metrics,
        }
    }

    /// Allows `allowed` from the next request on. Connections already
    /// open stay: the Origin is checked when a connection opens.
    pub fn set(&self, allowed: Vec<String>) {
        self.allowed.store(Arc::new(allowed));
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let allowed = self.allowed.load();
        allowed.is_empty()
            || origin
                .to_str()
                .is_ok_and(|origin| allowed.iter().any(|a| a == origin))
    }
}

/// Refuses socket.io requests from pages of origins not allowed.
pub async fn guard_origin(
    State(policy): State<OriginPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let is_socketio = request.uri().path().starts_with("/socket.io");
    if let Some(origin) = request.headers().get(ORIGIN)
        && is_socketio
        && !policy.allows(origin)
    {
        policy.metrics.connection_refused(Refusal::Origin);
        tracing::info!(origin = ?origin, "refused a socket.io request from an origin that is not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    next.run(request).await
}

/// CORS with credentials for the allowed origins (every origin when the
/// list is empty), so polling works from the site's pages.
pub fn cors_layer(policy: &OriginPolicy) -> CorsLayer {
    let policy = policy.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            policy.allows(origin)
        }))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([CONTENT_TYPE])
}

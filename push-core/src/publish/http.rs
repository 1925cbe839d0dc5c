//! The HTTP publish API, for app servers that cannot reach the Unix socket.
//!
//! Off unless `http_publish_token` is set. It speaks the same operations as
//! the publish protocol, as JSON over the daemon's HTTP address:
//!
//! - `POST /api/publish` with `{"namespace", "event", "data", "users",
//!   "rooms", "except_users"}` answers `{"recipients": n}`;
//! - `GET /api/online?namespace=/&user=42` answers `{"online", "connections"}`;
//! - `GET /api/stats` answers the STATS object.
//!
//! Every request needs `Authorization: Bearer <token>`. The token is compared
//! in constant time (as digests, so not even its length leaks). Errors carry
//! the same stable codes as the socket protocol.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use push_client::{ErrorCode, Publish, Target};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::dispatch::{DispatchError, Dispatcher};
use crate::log_throttle::{Line, LogThrottle, Source};
use crate::metrics::Metrics;

/// A request refused for its token.
const WRONG_TOKEN_LINE: Line = Line {
    kind: "http_api_token",
    level: tracing::Level::WARN,
};

#[derive(Clone)]
struct ApiState {
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    token_digest: [u8; 32],
    /// Refusals' lines: one per address and interval.
    refusal_lines: LogThrottle,
}

/// The API's routes, guarded by the bearer token.
pub(crate) fn router(
    token: &str,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    max_body: u32,
) -> Router {
    let state = ApiState {
        dispatcher,
        metrics,
        token_digest: Sha256::digest(token.as_bytes()).into(),
        refusal_lines: LogThrottle::default(),
    };
    Router::new()
        .route("/api/publish", post(publish))
        .route("/api/online", get(online))
        .route("/api/stats", get(stats))
        .layer(DefaultBodyLimit::max(max_body as usize))
        // On the API's routes only: merged into the public router, a
        // `layer` would also guard its fallback, answering 401 (and counting
        // a forbidden publish) for every unknown path.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if !constant_time_eq(&digest, &state.token_digest) {
        state.metrics.protocol_error(ErrorCode::FORBIDDEN);
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
        let source = Source(peer.map(|peer| peer.0.ip()));
        if state.refusal_lines.allow(WRONG_TOKEN_LINE, source) {
            tracing::warn!(%source, "refused an HTTP publish request with a missing or wrong token");
        }
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::FORBIDDEN,
            "missing or wrong bearer token",
        );
    }
    next.run(request).await
}

/// Compares without an early exit, so timing does not tell how much matched.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Text(String),
    Number(i64),
}

impl UserId {
    fn into_text(self) -> Cow<'static, str> {
        match self {
            UserId::Text(text) => Cow::Owned(text),
            UserId::Number(n) => Cow::Owned(n.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    #[serde(default = "root_namespace")]
    namespace: String,
    event: String,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    users: Vec<UserId>,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except_users: Vec<UserId>,
}

fn root_namespace() -> String {
    "/".to_owned()
}

async fn publish(State(state): State<ApiState>, body: Bytes) -> Response {
    let body: PublishBody<'_> = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            state.metrics.protocol_error(ErrorCode::MALFORMED_FRAME);
            let message = format!("the body must be {{\"event\", \"data\", ...}} JSON: {e}");
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::MALFORMED_FRAME,
                &message,
            );
        }
    };
    let target = Target {
        users: body.users.into_iter().map(UserId::into_text).collect(),
        rooms: body.rooms.into_iter().map(Cow::Owned).collect(),
        except_users: body
            .except_users
            .into_iter()
            .map(UserId::into_text)
            .collect(),
    };
    let publish = Publish {
        namespace: &body.namespace,
        event: &body.event,
        target,
        payload: body.data.get().as_bytes(),
    };
    match state.dispatcher.publish(&publish).await {
        Ok(count) => {
            Json(json!({ "recipients": count.total, "partial": count.partial })).into_response()
        }
        Err(e) => dispatch_error(&state, &e),
    }
}

#[derive(Deserialize)]
struct OnlineQuery {
    #[serde(default = "root_namespace")]
    namespace: String,
    user: String,
}

async fn online(State(state): State<ApiState>, Query(query): Query<OnlineQuery>) -> Response {
    match state
        .dispatcher
        .connections_of(&query.namespace, &query.user)
        .await
    {
        Ok(count) => Json(json!({
            "online": count.total > 0,
            "connections": count.total,
            "partial": count.partial,
        }))
        .into_response(),
        Err(e) => dispatch_error(&state, &e),
    }
}

async fn stats(State(state): State<ApiState>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.dispatcher.stats_json().await,
    )
        .into_response()
}

fn dispatch_error(state: &ApiState, e: &DispatchError) -> Response {
    state.metrics.protocol_error(e.code());
    let status = match e {
        DispatchError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
        DispatchError::UnknownNamespace(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.code(), &e.to_string())
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = json!({ "error": code.name(), "code": code.0, "message": message });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] = 8;
        assert!(!constant_time_eq(&a, &b));
    }
}

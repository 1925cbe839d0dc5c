//! The site's auth endpoint, as a tiny HTTP server inside the bench.
//!
//! It maps the cookie `uid=N` to `{"user_id": N}` and anything else to 401,
//! and counts the calls, so the connect storm can show how many the
//! servers made (push-core caches answers; the Node peer asks every time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A running auth endpoint.
pub struct AuthBackend {
    pub url: String,
    calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthBackend {
    pub async fn start() -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/auth", get(identify))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/auth", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, calls, task })
    }

    /// Calls answered since the last reset.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Acquire)
    }

    pub fn reset(&self) {
        self.calls.store(0, Ordering::Release);
    }
}

impl Drop for AuthBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn identify(State(calls): State<Arc<AtomicU64>>, headers: HeaderMap) -> Response {
    calls.fetch_add(1, Ordering::AcqRel);
    let user = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("uid="))
        .and_then(|uid| uid.parse::<u64>().ok());
    match user {
        Some(user) => (
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"user_id":{user}}}"#),
        )
            .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

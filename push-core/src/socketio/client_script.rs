//! The socket.io client bundle, for pages that load it from the server.
//!
//! A Node socket.io server served its own browser bundle at
//! `/socket.io/socket.io.js`, and old pages load it from there. With
//! `client_script` set to a bundle (for old pages, the 1.x or 2.x one from
//! the `socket.io-client` npm package: it must match the protocol the page
//! speaks), push-core serves it at the same path. The file is read once at
//! start; its digest is the ETag, so a browser revalidates with one small
//! request and gets `304 Not Modified` until the file changes. No copy of
//! any bundle is kept in this repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where pages written for a Node socket.io server load the client.
pub const PATH: &str = "/socket.io/socket.io.js";

/// Browsers may use their copy for an hour without asking; after that one
/// conditional request confirms it. A deploy that changes the file is seen
/// within the hour, or at once by a reload.
const CACHE_CONTROL_VALUE: &str = "public, max-age=3600";

/// The bundle, read at start.
#[derive(Debug, Clone)]
pub struct ClientScript {
    body: Bytes,
    etag: HeaderValue,
}

/// The `client_script` file could not be read.
#[derive(Debug, Error)]
#[error("cannot read the client script {path} (client_script): {source}")]
pub struct ClientScriptError {
    path: PathBuf,
    source: std::io::Error,
}

impl ClientScript {
    pub fn load(path: &Path) -> Result<Self, ClientScriptError> {
        let body = std::fs::read(path).map_err(|source| ClientScriptError {
            path: path.to_owned(),
            source,
        })?;
        let digest = Sha256::digest(&body);
        let hex: String = digest[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // Hex digits and quotes only, so always a valid header value.
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or(HeaderValue::from_static("\"\""));
        Ok(Self {
            body: Bytes::from(body),
            etag,
        })
    }

    fn response(&self, request: &Request) -> Response {
        let cached = request
            .headers()
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == self.etag);
        let headers = [
            (ETAG, self.etag.clone()),
            (CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE)),
        ];
        if cached {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let body = if request.method() == Method::HEAD {
            Body::empty()
        } else {
            Body::from(self.body.clone())
        };
        (
            headers,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            )],
            body,
        )
            .into_response()
    }
}

/// Answers `GET /socket.io/socket.io.js` before socketioxide, which would
/// take it for an engine.io request.
pub async fn serve_client_script(
    State(script): State<Arc<ClientScript>>,
    request: Request,
    next: Next,
) -> Response {
    let wanted =
        request.uri().path() == PATH && matches!(*request.method(), Method::GET | Method::HEAD);
    if wanted {
        script.response(&request)
    } else {
        next.run(request).await
    }
}

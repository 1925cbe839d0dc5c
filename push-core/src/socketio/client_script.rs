//! The socket.io client bundle, for pages that load it from the server.
//!
//! A Node socket.io server served its own browser bundle at
//! `/socket.io/socket.io.js`, and old pages load it from there. With
//! `client_script` set to a bundle (for old pages, the 1.x or 2.x one from
//! the `socket.io-client` npm package: it must match the protocol the page
//! speaks), push-core serves it at the same path, read once at start
//! ([`StaticFile`]). No copy of any bundle is kept in this repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use thiserror::Error;

use crate::static_file::StaticFile;

/// Where pages written for a Node socket.io server load the client.
pub const PATH: &str = "/socket.io/socket.io.js";

/// Browsers may use their copy for an hour without asking; after that one
/// conditional request confirms it. A deploy that changes the file is seen
/// within the hour, or at once by a reload.
const CACHE_CONTROL_VALUE: &str = "public, max-age=3600";

/// The bundle, read at start.
#[derive(Debug, Clone)]
pub struct ClientScript(StaticFile);

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
        Ok(Self(StaticFile::new(
            body,
            "application/javascript; charset=utf-8",
            CACHE_CONTROL_VALUE,
        )))
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
        script.0.response(&request)
    } else {
        next.run(request).await
    }
}

//! The Admin UI's page, served on the admin listener at `/admin-ui/`.
//!
//! The page is the npm package `@socket.io/admin-ui`'s `ui/dist` directory
//! (`admin_ui_files`), put there by scripts/package.sh or `npm ci`, never a
//! copy in this repository. It is read whole at start into
//! [`StaticFile`]s: a few files, about 1.3 MB, and no request ever names a
//! path on the disk. Source maps (`*.map`, 3 MB more) are left out.
//!
//! The page then connects to the socket.io listener (`listen`), whose
//! Origin guard lets it through even when `allowed_origins` names only the
//! site (`socketio::origin`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use thiserror::Error;

use crate::static_file::StaticFile;

/// Where the page is served on the admin listener.
pub const PATH: &str = "/admin-ui/";

/// Deepest folder read below `admin_ui_files`: `ui/dist` holds `js/`,
/// `css/` and `img/` and nothing deeper.
const MAX_DEPTH: usize = 3;

/// Every answer is checked against its ETag: the file names of the
/// scripts change with each release, `index.html` does not.
const CACHE_CONTROL_VALUE: &str = "no-cache";

/// The files of the page, by path below [`PATH`].
#[derive(Debug)]
pub struct Page {
    files: HashMap<String, StaticFile>,
}

/// The page's directory could not be read.
#[derive(Debug, Error)]
#[error("cannot read the Admin UI's page in {path} (admin_ui_files): {source}")]
pub struct PageError {
    path: PathBuf,
    source: std::io::Error,
}

impl Page {
    pub fn load(dir: &Path) -> Result<Self, PageError> {
        let mut files = HashMap::new();
        read_dir(dir, "", 0, &mut files)?;
        Ok(Self { files })
    }

    /// The routes of the page, for the admin listener.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                PATH.trim_end_matches('/'),
                get(|| async { Redirect::permanent(PATH) }),
            )
            .route(PATH, get(serve_file).with_state(self.clone()))
            .route(
                &format!("{PATH}{{*path}}"),
                get(serve_file).with_state(self),
            )
    }
}

fn read_dir(
    dir: &Path,
    prefix: &str,
    depth: usize,
    files: &mut HashMap<String, StaticFile>,
) -> Result<(), PageError> {
    let failed = |source| PageError {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let kind = entry.file_type().map_err(failed)?;
        if kind.is_dir() && depth < MAX_DEPTH {
            read_dir(&path, &format!("{prefix}{name}/"), depth + 1, files)?;
        } else if kind.is_file()
            && let Some(content_type) = content_type(&name)
        {
            let body = std::fs::read(&path).map_err(|source| PageError { path, source })?;
            files.insert(
                format!("{prefix}{name}"),
                StaticFile::new(body, content_type, CACHE_CONTROL_VALUE),
            );
        }
    }
    Ok(())
}

/// The types of the files `ui/dist` holds; anything else (source maps
/// included) is not served.
fn content_type(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// No site may show the page in a frame (and so trick a click on it).
const FRAME_ANCESTORS: &str = "frame-ancestors 'none'";

async fn serve_file(State(page): State<Arc<Page>>, request: Request) -> Response {
    let path = request.uri().path().strip_prefix(PATH).unwrap_or_default();
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = page.files.get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let mut response = file.response(&request);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FRAME_ANCESTORS),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn get(router: &Router, path: &str) -> Response {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn the_directory_is_served_below_admin_ui() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<html></html>").unwrap();
        std::fs::create_dir(dir.path().join("js")).unwrap();
        std::fs::write(dir.path().join("js/app.js"), "let a;").unwrap();
        std::fs::write(dir.path().join("js/app.js.map"), "{}").unwrap();
        let router = Arc::new(Page::load(dir.path()).unwrap()).router();

        let index = get(&router, "/admin-ui/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(index.headers()[CONTENT_SECURITY_POLICY], FRAME_ANCESTORS);
        assert_eq!(
            get(&router, "/admin-ui/js/app.js").await.status(),
            StatusCode::OK
        );
        let redirect = get(&router, "/admin-ui").await;
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()["location"], "/admin-ui/");
        for missing in [
            "/admin-ui/js/app.js.map",
            "/admin-ui/../index.html",
            "/admin-ui/nope",
        ] {
            assert_eq!(
                get(&router, missing).await.status(),
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
    }
}

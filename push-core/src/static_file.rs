//! A file served from memory: read once at start, answered with an ETag.
//!
//! push-core serves a few files that come from npm packages, never from
//! this repository: the socket.io client bundle (`socketio::client_script`)
//! and the Admin UI's page (`admin_ui::page`). Each is read when the daemon
//! starts, so a missing file is a clear error then rather than a 404 later,
//! and no request ever touches the disk or names a path on it. The digest
//! of the content is the ETag: a browser revalidates with one small request
//! and gets `304 Not Modified` until the file changes.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One file's content and the headers it is served with.
#[derive(Debug, Clone)]
pub struct StaticFile {
    body: Bytes,
    etag: HeaderValue,
    content_type: HeaderValue,
    cache_control: HeaderValue,
}

impl StaticFile {
    /// `body` served as `content_type`, cached by browsers as
    /// `cache_control` says.
    pub fn new(body: Vec<u8>, content_type: &'static str, cache_control: &'static str) -> Self {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // Hex digits and quotes only, so always a valid header value.
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or(HeaderValue::from_static("\"\""));
        Self {
            body: Bytes::from(body),
            etag,
            content_type: HeaderValue::from_static(content_type),
            cache_control: HeaderValue::from_static(cache_control),
        }
    }

    /// The answer to a GET or HEAD of this file: `304` when the browser's
    /// copy is current.
    pub fn response(&self, request: &Request) -> Response {
        let cached = request
            .headers()
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == self.etag);
        let headers = [
            (ETAG, self.etag.clone()),
            (CACHE_CONTROL, self.cache_control.clone()),
        ];
        if cached {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let body = if request.method() == Method::HEAD {
            Body::empty()
        } else {
            Body::from(self.body.clone())
        };
        (headers, [(CONTENT_TYPE, self.content_type.clone())], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(if_none_match: Option<&HeaderValue>) -> Request {
        let mut request = Request::get("/file").body(Body::empty()).unwrap();
        if let Some(tag) = if_none_match {
            request.headers_mut().insert(IF_NONE_MATCH, tag.clone());
        }
        request
    }

    #[test]
    fn a_current_copy_is_not_sent_again() {
        let file = StaticFile::new(b"body".to_vec(), "text/plain", "no-cache");
        let first = file.response(&get(None));
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[CONTENT_TYPE], "text/plain");
        let tag = first.headers()[ETAG].clone();
        assert_eq!(
            file.response(&get(Some(&tag))).status(),
            StatusCode::NOT_MODIFIED
        );
        let other = StaticFile::new(b"changed".to_vec(), "text/plain", "no-cache");
        assert_eq!(other.response(&get(Some(&tag))).status(), StatusCode::OK);
    }
}

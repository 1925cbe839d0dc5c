//! Detaching a socket.io request's head from hyper's read buffer.
//!
//! hyper parses a request without copying: the URI and every header value
//! are slices of the connection's read buffer (8 to 16 KiB). socketioxide
//! keeps the head of the request that opened a session for as long as the
//! connection lives (`SocketRef::req_parts`, which admission reads the
//! cookies from), and a slice keeps its whole buffer alive. So every
//! connection pinned a read buffer it would never use again: about 16 KB of
//! its 26 KB (measured with `valgrind --tool=dhat` and the bench; see
//! docs/benchmarks.md).
//!
//! Copying the URI and the header values, a few hundred bytes, before
//! socketioxide sees the request lets hyper's buffer go once the handshake
//! is answered.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware in front of socketioxide: gives socket.io requests a head that
/// owns its bytes.
pub async fn detach_request_head(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/socket.io") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = owned_uri(&parts.uri);
    parts.headers = owned_headers(&parts.headers);
    next.run(Request::from_parts(parts, body)).await
}

fn owned_uri(uri: &Uri) -> Uri {
    // Parsing text copies it; the text is the URI itself, so it parses.
    uri.to_string().parse().unwrap_or_else(|_| uri.clone())
}

fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // from_bytes copies; the bytes came from a valid value.
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_keeps_every_header_and_the_uri() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1"));
        headers.append("cookie", HeaderValue::from_static("b=2"));
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let owned = owned_headers(&headers);
        assert_eq!(owned, headers);
        let uri: Uri = "/socket.io/?EIO=4&transport=websocket".parse().unwrap();
        assert_eq!(owned_uri(&uri), uri);
    }
}

//! Detaching a socket.io request's head from hyper's read buffer.
//!
//! hyper parses a request without copying: the URI and every header value
//! are slices of the connection's read buffer (8 to 16 KiB). socketioxide
//! keeps the head of the request that opened a session for as long as the
//! connection lives (`SocketRef::req_parts`, which admission reads the
//! cookies from), and a slice keeps its whole buffer alive. So every
//! connection pinned a read buffer it would never use again, most of its
//! memory (docs/benchmarks.md, "Memory per idle connection", has the
//! figures, measured with `valgrind --tool=dhat` and the bench).
//!
//! Copying the URI and the header values, a few hundred bytes, before
//! socketioxide sees the request lets hyper's buffer go once the handshake
//! is answered. Only the headers read after this point are kept, see
//! [`KEPT_HEADERS`]: a browser's user agent, languages and caching headers
//! would otherwise stay in memory for as long as the connection.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;

/// The headers anything reads once a socket.io request is past this
/// middleware: engineioxide reads `sec-websocket-key` to answer a WebSocket
/// upgrade and the `content-type` of a polling POST; admission reads the
/// cookies and `x-forwarded-for` or `forwarded` when the browser joins a
/// namespace. The
/// Origin guard and CORS run before this middleware and see every header.
/// Code that reads another header from `SocketRef::req_parts` must add it
/// here.
pub const KEPT_HEADERS: [&str; 6] = [
    "cookie",
    "x-forwarded-for",
    "forwarded",
    "sec-websocket-key",
    "content-type",
    "content-length",
];

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
    let mut owned = HeaderMap::new();
    let kept = headers
        .iter()
        .filter(|(name, _)| KEPT_HEADERS.contains(&name.as_str()));
    for (name, value) in kept {
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
    fn the_copy_keeps_the_headers_read_later_and_the_uri() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1"));
        headers.append("cookie", HeaderValue::from_static("b=2"));
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        headers.append("forwarded", HeaderValue::from_static("for=203.0.113.7"));
        headers.append(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZQ=="),
        );
        let mut with_others = headers.clone();
        with_others.append("user-agent", HeaderValue::from_static("Mozilla/5.0"));
        with_others.append("accept-language", HeaderValue::from_static("en"));
        assert_eq!(owned_headers(&with_others), headers);
        let uri: Uri = "/socket.io/?EIO=4&transport=websocket".parse().unwrap();
        assert_eq!(owned_uri(&uri), uri);
    }
}

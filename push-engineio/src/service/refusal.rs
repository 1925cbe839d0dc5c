//! Refused requests, answered as the socket.io reference server answers
//! them.
//!
//! An HTTP request gets `400` and a JSON body with the reference's error
//! code and message; a WebSocket upgrade gets `400` with the message as
//! text and `Connection: close`. A polling request that breaks a session's
//! rules (an overlapping poll, a bad payload) gets an empty `400`, and an
//! oversized body `413`, as the reference's polling transport does.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `transport`, or one the server does not serve.
    #[error("Transport unknown")]
    UnknownTransport,
    /// A `sid` that names no open session.
    #[error("Session ID unknown")]
    UnknownSid,
    /// A handshake that is not a GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// A request that does not fit its session, or cannot be served.
    #[error("Bad request")]
    BadRequest,
    /// No `EIO`, or a version the server does not speak.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// A polling request that broke its session's rules; the session ended.
    #[error("the request broke its session's rules")]
    SessionBroken,
    /// A polling body over `max_payload`; the session ended.
    #[error("the body is larger than maxPayload")]
    PayloadTooLarge,
}

impl Refusal {
    /// The reference's error code, for the refusals that have one.
    fn code(self) -> Option<u8> {
        match self {
            Refusal::UnknownTransport => Some(0),
            Refusal::UnknownSid => Some(1),
            Refusal::BadHandshakeMethod => Some(2),
            Refusal::BadRequest => Some(3),
            Refusal::UnsupportedProtocolVersion => Some(5),
            Refusal::SessionBroken | Refusal::PayloadTooLarge => None,
        }
    }

    /// The answer to a request refused for this reason; `upgrade` is
    /// whether the request asked for a WebSocket.
    pub(crate) fn response(self, upgrade: bool) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let Some(code) = self.code() else {
            *response.status_mut() = match self {
                Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return response;
        };
        *response.status_mut() = StatusCode::BAD_REQUEST;
        let headers = response.headers_mut();
        if upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            *response.body_mut() = Bytes::from(self.to_string());
        } else {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            *response.body_mut() = Bytes::from(format!(r#"{{"code":{code},"message":"{self}"}}"#));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_refusals_carry_the_reference_json() {
        let response = Refusal::UnknownSid.response(false);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            response.body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(
            Refusal::UnsupportedProtocolVersion.response(false).body(),
            r#"{"code":5,"message":"Unsupported protocol version"}"#
        );
    }

    #[test]
    fn upgrade_refusals_are_text_and_close_the_connection() {
        let response = Refusal::UnknownTransport.response(true);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.body(), "Transport unknown");
    }

    #[test]
    fn session_rule_breaks_are_bare() {
        assert_eq!(
            Refusal::SessionBroken.response(false).status(),
            StatusCode::BAD_REQUEST
        );
        assert!(Refusal::SessionBroken.response(false).body().is_empty());
        assert_eq!(
            Refusal::PayloadTooLarge.response(false).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}

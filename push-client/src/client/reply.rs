//! Replies as the client keeps them.
//!
//! A decoded [`Reply`] borrows from the connection's read buffer, which the
//! next read reuses. The client hands replies past that point (a STATS text,
//! an error message), so it copies out the few strings a reply has and lets
//! the buffer go.
//!
//! A count comes with whether it is complete: [`Count`] is what the client
//! hands its caller for a publish or an ONLINE question.
//!
//! Both functions here run once per reply and are `#[inline]`, so reading a
//! reply costs no more calls than when this was part of the client.

use super::ClientError;
use crate::protocol::frame::FrameHeader;
use crate::protocol::wire::{DecodeError, Reader};
use crate::protocol::{ErrorCode, Reply};

/// A count the daemon answered with: the connections a publish reached, or
/// a user's connections.
///
/// In a cluster the daemon adds up every node's connections (from their
/// presence; STATS by asking them within a bounded wait); `partial` says
/// some node's figures may be out of date or missing (or the daemon could
/// not reach the cluster), so `total` is a lower bound. A single
/// daemon, and a daemon speaking protocol version 1, always says false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub total: u32,
    pub partial: bool,
}

/// A reply whose strings are owned, so it outlives the read buffer.
#[derive(Debug)]
pub(super) enum OwnedReply {
    Hello { version: u16, max_frame_size: u32 },
    Pong,
    Published(Count),
    Online(Count),
    Stats { json: String },
    Position { offset: String },
    Error { code: ErrorCode, message: String },
}

impl OwnedReply {
    /// Decodes one frame body (the bytes after the length prefix), encoded
    /// in protocol `version`.
    #[inline]
    pub(super) fn decode(
        version: u16,
        body: &[u8],
    ) -> Result<(FrameHeader, OwnedReply), DecodeError> {
        let mut reader = Reader::new(body);
        let header = FrameHeader::read(&mut reader)?;
        let reply = match Reply::decode(version, header.kind, reader)? {
            Reply::Hello {
                version,
                max_frame_size,
                ..
            } => OwnedReply::Hello {
                version,
                max_frame_size,
            },
            Reply::Pong => OwnedReply::Pong,
            Reply::Published {
                recipients,
                partial,
            } => OwnedReply::Published(Count {
                total: recipients,
                partial,
            }),
            Reply::Online {
                connections,
                partial,
            } => OwnedReply::Online(Count {
                total: connections,
                partial,
            }),
            Reply::Stats { json } => OwnedReply::Stats {
                json: json.to_owned(),
            },
            Reply::Position { offset } => OwnedReply::Position {
                offset: offset.to_owned(),
            },
            Reply::Error { code, message } => OwnedReply::Error {
                code,
                message: message.to_owned(),
            },
        };
        Ok((header, reply))
    }

    /// The error for a reply of the wrong kind for the request it answers.
    pub(super) fn unexpected(&self) -> ClientError {
        ClientError::Protocol(format!("unexpected reply {self:?}"))
    }

    /// This reply as the answer to request `expected_id`.
    ///
    /// Replies come in request order, so one for another request means the
    /// two ends disagree about the stream. Request id 0 is the daemon's way
    /// of refusing the connection as a whole (say, a frame it could not
    /// read), which answers whatever was asked.
    #[inline]
    pub(super) fn answering(
        self,
        header: FrameHeader,
        expected_id: u32,
    ) -> Result<OwnedReply, ClientError> {
        if header.request_id != expected_id && header.request_id != 0 {
            return Err(ClientError::Protocol(format!(
                "reply for request {} while waiting for {expected_id}",
                header.request_id
            )));
        }
        match self {
            OwnedReply::Error { code, message } => Err(ClientError::Refused { code, message }),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PROTOCOL_VERSION;
    use crate::protocol::reply::kind;

    fn header(kind: u8, request_id: u32) -> FrameHeader {
        FrameHeader { kind, request_id }
    }

    #[test]
    fn a_reply_to_the_request_asked_is_taken() {
        let count = Count {
            total: 3,
            partial: true,
        };
        let reply = OwnedReply::Published(count).answering(header(kind::PUBLISHED, 7), 7);
        assert!(matches!(reply, Ok(OwnedReply::Published(c)) if c == count));
    }

    #[test]
    fn a_reply_to_another_request_is_a_protocol_error() {
        let reply = OwnedReply::Pong.answering(header(kind::PONG, 8), 7);
        assert!(matches!(reply, Err(ClientError::Protocol(_))), "{reply:?}");
    }

    #[test]
    fn an_error_about_the_connection_answers_any_request() {
        let error = OwnedReply::Error {
            code: ErrorCode::MALFORMED_FRAME,
            message: "bad frame".into(),
        }
        .answering(header(kind::ERROR, 0), 7);
        assert!(
            matches!(&error, Err(ClientError::Refused { code, .. }) if *code == ErrorCode::MALFORMED_FRAME),
            "{error:?}"
        );
    }

    #[test]
    fn a_reply_decodes_with_its_header_and_owns_its_text() {
        let mut frame = Vec::new();
        Reply::Stats { json: "{}" }
            .encode(PROTOCOL_VERSION, 5, &mut frame)
            .unwrap();
        let (header, reply) = OwnedReply::decode(
            PROTOCOL_VERSION,
            &frame[crate::protocol::frame::LENGTH_PREFIX_LEN..],
        )
        .unwrap();
        drop(frame);
        assert_eq!(
            header,
            FrameHeader {
                kind: kind::STATS,
                request_id: 5
            }
        );
        assert!(matches!(reply, OwnedReply::Stats { json } if json == "{}"));
    }

    #[test]
    fn a_count_keeps_its_partial_flag_in_version_2_and_has_none_in_version_1() {
        let partial = Reply::Online {
            connections: 2,
            partial: true,
        };
        for (version, expected) in [(1, false), (2, true)] {
            let mut frame = Vec::new();
            partial.encode(version, 9, &mut frame).unwrap();
            let body = &frame[crate::protocol::frame::LENGTH_PREFIX_LEN..];
            let (_, reply) = OwnedReply::decode(version, body).unwrap();
            assert!(
                matches!(reply, OwnedReply::Online(Count { total: 2, partial }) if partial == expected),
                "version {version}: {reply:?}"
            );
        }
    }
}

//! What the daemon answers.
//!
//! Every request gets exactly one reply carrying the same request id, in the
//! order the requests were sent. A reply's kind is the request's kind with
//! the high bit set, or [`kind::ERROR`] with a stable [`ErrorCode`] and a
//! message meant for the person reading the log.
//!
//! Replies depend on the protocol version the connection agreed on in its
//! HELLO: from version 2 on, a count (PUBLISHED, ONLINE) is followed by a
//! flags byte, [`count_flags`]. Encoding and decoding therefore take that
//! version; a version 1 peer gets the count alone.

use std::fmt;

use super::frame::{self, FrameHeader};
use super::wire::{DecodeError, EncodeError, Reader};

/// Message kinds of replies.
pub mod kind {
    pub const HELLO: u8 = 0x81;
    pub const PONG: u8 = 0x82;
    pub const PUBLISHED: u8 = 0x83;
    pub const ONLINE: u8 = 0x84;
    pub const STATS: u8 = 0x85;
    pub const POSITION: u8 = 0x86;
    pub const ERROR: u8 = 0xff;
}

/// The bits of the flags byte that follows a count from protocol version 2 on.
pub mod count_flags {
    /// The count may leave out nodes of a cluster (their figures out of
    /// date or missing), or the daemon could not reach the cluster at all:
    /// it is a lower bound.
    pub const PARTIAL: u8 = 0b0000_0001;
}

/// The first protocol version whose counts carry [`count_flags`].
pub const COUNT_FLAGS_SINCE: u16 = 2;

/// A stable error number. Clients branch on it; its meaning never changes.
///
/// It is an open set: a newer daemon may send a code this crate does not
/// name, which still decodes and displays as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The frame could not be decoded (bad field, truncated, trailing bytes).
    pub const MALFORMED_FRAME: Self = Self(1);
    /// The frame's length prefix is over the daemon's limit.
    pub const FRAME_TOO_LARGE: Self = Self(2);
    /// The HELLO asked for a protocol version the daemon does not speak.
    pub const UNSUPPORTED_VERSION: Self = Self(3);
    /// A request came before the HELLO.
    pub const HANDSHAKE_REQUIRED: Self = Self(4);
    /// The message kind is not a request this daemon knows.
    pub const UNKNOWN_OPERATION: Self = Self(5);
    /// The namespace is not configured on the daemon.
    pub const UNKNOWN_NAMESPACE: Self = Self(6);
    /// The payload is not valid JSON, or nests too deeply.
    pub const INVALID_PAYLOAD: Self = Self(7);
    /// A field has a value the daemon refuses (an empty or reserved event name).
    pub const INVALID_REQUEST: Self = Self(8);
    /// This peer may not publish on this socket.
    pub const FORBIDDEN: Self = Self(9);
    /// The daemon is stopping and takes no new requests.
    pub const SHUTTING_DOWN: Self = Self(10);
    /// The daemon failed for a reason of its own.
    pub const INTERNAL: Self = Self(11);
    /// The daemon already serves as many publisher connections as it may
    /// (its max_publishers setting).
    pub const TOO_MANY_PUBLISHERS: Self = Self(12);
    /// The request needs missed-message recovery, which the daemon runs
    /// without (its recovery_window is 0).
    pub const RECOVERY_OFF: Self = Self(13);

    /// The code's stable name, as used in logs and docs.
    pub fn name(self) -> &'static str {
        match self {
            Self::MALFORMED_FRAME => "malformed_frame",
            Self::FRAME_TOO_LARGE => "frame_too_large",
            Self::UNSUPPORTED_VERSION => "unsupported_version",
            Self::HANDSHAKE_REQUIRED => "handshake_required",
            Self::UNKNOWN_OPERATION => "unknown_operation",
            Self::UNKNOWN_NAMESPACE => "unknown_namespace",
            Self::INVALID_PAYLOAD => "invalid_payload",
            Self::INVALID_REQUEST => "invalid_request",
            Self::FORBIDDEN => "forbidden",
            Self::SHUTTING_DOWN => "shutting_down",
            Self::INTERNAL => "internal",
            Self::TOO_MANY_PUBLISHERS => "too_many_publishers",
            Self::RECOVERY_OFF => "recovery_off",
            _ => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Every reply the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Hello {
        version: u16,
        /// The largest frame body the daemon accepts on this connection.
        max_frame_size: u32,
        server: &'a str,
    },
    Pong,
    Published {
        /// Connections the message was handed to.
        recipients: u32,
        /// `recipients` leaves out cluster nodes that did not answer (sent as
        /// [`count_flags::PARTIAL`]; always false in version 1).
        partial: bool,
    },
    Online {
        /// The user's connections in that namespace; 0 means offline.
        connections: u32,
        /// `connections` leaves out cluster nodes that did not answer, as for
        /// [`Reply::Published`].
        partial: bool,
    },
    Stats {
        json: &'a str,
    },
    Position {
        /// The namespace's current offset, an opaque string.
        offset: &'a str,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

impl<'a> Reply<'a> {
    fn kind(&self) -> u8 {
        match self {
            Reply::Hello { .. } => kind::HELLO,
            Reply::Pong => kind::PONG,
            Reply::Published { .. } => kind::PUBLISHED,
            Reply::Online { .. } => kind::ONLINE,
            Reply::Stats { .. } => kind::STATS,
            Reply::Position { .. } => kind::POSITION,
            Reply::Error { .. } => kind::ERROR,
        }
    }

    /// Appends this reply as one whole frame to `out`, in the encoding of
    /// protocol `version` (the one the connection's HELLO agreed on).
    pub fn encode(
        &self,
        version: u16,
        request_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        // Replies are not limited by the request size limit: a STATS reply
        // may be larger than what a publisher is allowed to send.
        frame::encode(out, u32::MAX, |w| {
            FrameHeader {
                kind: self.kind(),
                request_id,
            }
            .write(w);
            match self {
                Reply::Hello {
                    version,
                    max_frame_size,
                    server,
                } => {
                    w.u16(*version);
                    w.u32(*max_frame_size);
                    w.str("server name", server)?;
                }
                Reply::Pong => {}
                Reply::Published {
                    recipients: count,
                    partial,
                }
                | Reply::Online {
                    connections: count,
                    partial,
                } => {
                    w.u32(*count);
                    if version >= COUNT_FLAGS_SINCE {
                        w.u8(if *partial { count_flags::PARTIAL } else { 0 });
                    }
                }
                Reply::Stats { json } => w.blob("stats", json.as_bytes())?,
                Reply::Position { offset } => w.str("offset", offset)?,
                Reply::Error { code, message } => {
                    w.u16(code.0);
                    w.str("error message", truncate_to_u16(message))?;
                }
            }
            Ok(())
        })
    }

    /// Decodes the fields that follow a header of the given kind, as
    /// protocol `version` encodes them.
    pub fn decode(version: u16, kind: u8, mut reader: Reader<'a>) -> Result<Self, DecodeError> {
        let reply = match kind {
            kind::HELLO => Reply::Hello {
                version: reader.u16("version")?,
                max_frame_size: reader.u32("max frame size")?,
                server: reader.str("server name")?,
            },
            kind::PONG => Reply::Pong,
            kind::PUBLISHED => Reply::Published {
                recipients: reader.u32("recipients")?,
                partial: read_partial(version, &mut reader)?,
            },
            kind::ONLINE => Reply::Online {
                connections: reader.u32("connections")?,
                partial: read_partial(version, &mut reader)?,
            },
            kind::STATS => {
                let json = reader.blob("stats")?;
                Reply::Stats {
                    json: std::str::from_utf8(json)
                        .map_err(|_| DecodeError::InvalidUtf8("stats"))?,
                }
            }
            kind::POSITION => Reply::Position {
                offset: reader.str("offset")?,
            },
            kind::ERROR => Reply::Error {
                code: ErrorCode(reader.u16("error code")?),
                message: reader.str("error message")?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        reader.finish()?;
        Ok(reply)
    }
}

/// Reads the flags byte after a count, if `version` has one. Bits other
/// than [`count_flags::PARTIAL`] are reserved: a newer daemon may set them,
/// so they are ignored rather than refused.
fn read_partial(version: u16, reader: &mut Reader<'_>) -> Result<bool, DecodeError> {
    if version < COUNT_FLAGS_SINCE {
        return Ok(false);
    }
    Ok(reader.u8("count flags")? & count_flags::PARTIAL != 0)
}

/// Error messages are for humans and are never long, but one that quotes
/// input must still fit the string encoding; cut it at a char boundary.
fn truncate_to_u16(message: &str) -> &str {
    let max = usize::from(u16::MAX);
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

//! Answering the requests of one publisher connection.
//!
//! A session starts with the version handshake: until a HELLO with a
//! version we speak arrives, nothing else is served. After that each request
//! gets exactly one reply with its request id, in order, encoded in the
//! version the HELLO asked for: a publisher built for an older version of
//! the protocol keeps working against a newer daemon.
//!
//! A body that does not decode is answered with an error and the session
//! goes on, because the length prefix kept the stream in step. Only errors
//! that leave the stream unusable (a frame over the size limit, a failed
//! handshake) close the connection.
//!
//! In a cluster, a publish's or presence question's reply waits for Redis
//! and the other nodes. Such a request is answered [`Handled::Later`]: the
//! connection goes on reading and starting requests meanwhile, and writes
//! the replies in request order.

use std::ops::RangeInclusive;

use push_client::protocol::frame::FrameHeader;
use push_client::protocol::wire::{DecodeError, Reader};

use push_client::{
    ErrorCode, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, Reply, Request, version_mismatch_message,
};

use super::Services;
use crate::dispatch::{Count, Counting, PendingCount};
use crate::metrics::Metrics;

/// The publish protocol versions a publisher may ask for in its HELLO:
/// [`OLDEST_PROTOCOL_VERSION`] to [`PROTOCOL_VERSION`]; each connection is
/// answered in the version it asked for.
///
/// Debug builds can be made to speak one other version only (the variable
/// `PUSH_CORE_TEST_PROTOCOL_VERSION`), so that the tests can check what a
/// real client is told by an older or a newer daemon without keeping an old
/// release around. Release builds ignore the variable.
fn spoken_versions() -> RangeInclusive<u16> {
    #[cfg(debug_assertions)]
    {
        static PRETENDED: std::sync::OnceLock<Option<u16>> = std::sync::OnceLock::new();
        let pretended = PRETENDED.get_or_init(|| {
            std::env::var("PUSH_CORE_TEST_PROTOCOL_VERSION")
                .ok()
                .and_then(|text| text.parse().ok())
        });
        if let Some(version) = *pretended {
            return version..=version;
        }
    }
    OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION
}

/// What the connection does after a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Continue,
    Close,
}

/// How a request was answered.
pub(super) enum Handled {
    /// Its reply is written; the connection goes on or closes.
    Answered(Next),
    /// Its reply waits for a count from the cluster.
    Later(LaterReply),
}

/// The reply to a request that waits for a count.
pub(super) struct LaterReply {
    pub counting: PendingCount,
    pub to: ReplyTo,
}

/// Where a counted reply goes, and in what form.
#[derive(Clone, Copy)]
pub(super) struct ReplyTo {
    id: u32,
    version: u16,
    reply: fn(Count) -> Reply<'static>,
}

impl ReplyTo {
    /// Appends the reply frame with `count`.
    pub fn encode(&self, count: Count, metrics: &Metrics, out: &mut Vec<u8>) {
        encode_reply(metrics, self.version, self.id, &(self.reply)(count), out);
    }
}

pub(super) struct Session {
    services: Services,
    /// The protocol version agreed on in the HELLO; `None` before it.
    version: Option<u16>,
}

impl Session {
    pub fn new(services: Services) -> Self {
        Self {
            services,
            version: None,
        }
    }

    /// Answers one frame body, appending the reply frame to `out`, or
    /// returns the reply to come.
    pub async fn handle(&mut self, body: &[u8], out: &mut Vec<u8>) -> Handled {
        let mut reader = Reader::new(body);
        let header = match FrameHeader::read(&mut reader) {
            Ok(header) => header,
            Err(error) => {
                self.error(0, ErrorCode::MALFORMED_FRAME, &error.to_string(), out);
                return Handled::Answered(self.next_after_failed_request());
            }
        };
        let id = header.request_id;
        let request = match Request::decode(header.kind, reader) {
            Ok(request) => request,
            Err(DecodeError::UnknownKind(kind)) => {
                let message = format!(
                    "unknown operation 0x{kind:02x}; is the client newer than this daemon?"
                );
                self.error(id, ErrorCode::UNKNOWN_OPERATION, &message, out);
                return Handled::Answered(self.next_after_failed_request());
            }
            Err(error) => {
                self.error(id, ErrorCode::MALFORMED_FRAME, &error.to_string(), out);
                return Handled::Answered(self.next_after_failed_request());
            }
        };

        if self.version.is_none() {
            return Handled::Answered(self.handshake(id, &request, out));
        }
        match request {
            Request::Hello { .. } => {
                self.error(
                    id,
                    ErrorCode::INVALID_REQUEST,
                    "HELLO was already received on this connection",
                    out,
                );
            }
            Request::Ping => self.reply(id, &Reply::Pong, out),
            Request::Publish(publish) => {
                match self.services.dispatcher.start_publish(&publish).await {
                    Ok(Counting::Done(count)) => self.reply(id, &published(count), out),
                    Ok(Counting::Waiting(counting)) => {
                        return Handled::Later(self.reply_later(id, counting, published));
                    }
                    Err(error) => self.error(id, error.code(), &error.to_string(), out),
                }
            }
            Request::Online { namespace, user } => {
                match self
                    .services
                    .dispatcher
                    .start_connections_of(namespace, user)
                {
                    Ok(Counting::Done(count)) => self.reply(id, &online(count), out),
                    Ok(Counting::Waiting(counting)) => {
                        return Handled::Later(self.reply_later(id, counting, online));
                    }
                    Err(error) => self.error(id, error.code(), &error.to_string(), out),
                }
            }
            Request::Position { namespace } => {
                match self.services.dispatcher.position(namespace).await {
                    Ok(offset) => self.reply(id, &Reply::Position { offset: &offset }, out),
                    Err(error) => self.error(id, error.code(), &error.to_string(), out),
                }
            }
            Request::Stats => {
                let json = self.services.dispatcher.stats_json().await;
                self.reply(id, &Reply::Stats { json: &json }, out);
            }
        }
        Handled::Answered(Next::Continue)
    }

    /// The reply to request `id`, made by `reply` from `counting` once the
    /// cluster has answered.
    fn reply_later(
        &self,
        id: u32,
        counting: PendingCount,
        reply: fn(Count) -> Reply<'static>,
    ) -> LaterReply {
        LaterReply {
            counting,
            to: ReplyTo {
                id,
                version: self.reply_version(),
                reply,
            },
        }
    }

    /// Answers an error about the connection as a whole (request id 0).
    pub fn refuse_connection(&self, code: ErrorCode, message: &str, out: &mut Vec<u8>) {
        self.error(0, code, message, out);
    }

    fn handshake(&mut self, id: u32, request: &Request<'_>, out: &mut Vec<u8>) -> Next {
        match request {
            Request::Hello { version, client } if spoken_versions().contains(version) => {
                tracing::debug!(client, version, "publisher connected");
                self.version = Some(*version);
                let hello = Reply::Hello {
                    version: *version,
                    max_frame_size: self.services.max_frame_size,
                    server: concat!("push-core/", env!("CARGO_PKG_VERSION")),
                };
                self.reply(id, &hello, out);
                Next::Continue
            }
            Request::Hello { version, client } => {
                let spoken = spoken_versions();
                let nearest = if *version < *spoken.start() {
                    *spoken.start()
                } else {
                    *spoken.end()
                };
                let message = version_mismatch_message(nearest, *version);
                tracing::warn!(client, "publisher refused: {message}");
                self.error(id, ErrorCode::UNSUPPORTED_VERSION, &message, out);
                Next::Close
            }
            _ => {
                self.error(
                    id,
                    ErrorCode::HANDSHAKE_REQUIRED,
                    "the first request on a connection must be HELLO",
                    out,
                );
                Next::Close
            }
        }
    }

    /// Before the handshake, an undecodable request ends the connection: the
    /// peer is probably not speaking this protocol at all.
    fn next_after_failed_request(&self) -> Next {
        if self.version.is_some() {
            Next::Continue
        } else {
            Next::Close
        }
    }

    fn reply(&self, id: u32, reply: &Reply<'_>, out: &mut Vec<u8>) {
        encode_reply(&self.services.metrics, self.reply_version(), id, reply, out);
    }

    /// The version replies are encoded in. Before the HELLO only a HELLO or
    /// an error is sent, which every version encodes alike.
    fn reply_version(&self) -> u16 {
        self.version.unwrap_or(PROTOCOL_VERSION)
    }

    fn error(&self, id: u32, code: ErrorCode, message: &str, out: &mut Vec<u8>) {
        encode_error(
            &self.services.metrics,
            self.reply_version(),
            id,
            code,
            message,
            out,
        );
    }
}

fn published(count: Count) -> Reply<'static> {
    Reply::Published {
        recipients: count.total,
        partial: count.partial,
    }
}

fn online(count: Count) -> Reply<'static> {
    Reply::Online {
        connections: count.total,
        partial: count.partial,
    }
}

/// Appends `reply` to request `id`, in protocol `version`, to `out`.
fn encode_reply(metrics: &Metrics, version: u16, id: u32, reply: &Reply<'_>, out: &mut Vec<u8>) {
    if let Err(error) = reply.encode(version, id, out) {
        // Only a reply over 4 GiB could fail; answer with an error rather
        // than leave the request without a reply.
        tracing::error!(%error, "could not encode a reply");
        let message = "the reply could not be encoded";
        encode_error(metrics, version, id, ErrorCode::INTERNAL, message, out);
    }
}

fn encode_error(
    metrics: &Metrics,
    version: u16,
    id: u32,
    code: ErrorCode,
    message: &str,
    out: &mut Vec<u8>,
) {
    metrics.protocol_error(code);
    tracing::debug!(%code, message, "publish request refused");
    let reply = Reply::Error { code, message };
    if let Err(error) = reply.encode(version, id, out) {
        tracing::error!(%error, "could not encode an error reply");
    }
}

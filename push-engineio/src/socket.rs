//! A session as the layer above sees it: an id, what the client asked with,
//! the handler's data, and the ways to send to it and close it.
//!
//! Everything here returns at once. Sending queues packets in the session's
//! [`Outbox`]; the task that serves the connection writes them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use engineioxide_core::{ProtocolVersion, Sid, Str, TransportType};
use http::request::Parts;
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;

use crate::cork::Flush;
use crate::full::{SessionKey, note_full};
use crate::outbox::{Outbox, Outgoing};
use crate::websocket::wire::Wire;
use crate::websocket::writer::{self, Writer};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client closed the connection cleanly.
    TransportClose,
    /// The client had two polling requests of one kind open at once, which
    /// the protocol forbids.
    MultipleHttpPollingError,
    /// The client sent something that is not engine.io.
    PacketParsingError,
    /// The connection failed or ended without a close.
    TransportError,
    /// The client did not answer the heartbeat in time.
    HeartbeatTimeout,
    /// The server closed it.
    ClosingServer,
}

/// A place in a session's queue, promised by [`Socket::reserve`]: the
/// packet sent with it is queued even if the queue filled meanwhile.
pub struct Permit<'a> {
    outbox: &'a Outbox,
    used: bool,
}

impl Permit<'_> {
    /// Sends a text message.
    pub fn emit(self, msg: Str) {
        self.send(|push| push(Outgoing::Message(msg)));
    }

    /// Sends a binary message.
    pub fn emit_binary(self, data: Bytes) {
        self.send(|push| push(Outgoing::Binary(data)));
    }

    /// Sends a text message and its binary attachments, adjacent.
    pub fn emit_many(self, msg: Str, data: VecDeque<Bytes>) {
        self.send(|push| {
            push(Outgoing::Message(msg));
            for attachment in data {
                push(Outgoing::Binary(attachment));
            }
        });
    }

    /// Sends binary messages, adjacent.
    pub fn emit_many_binary(self, bin: Bytes, data: Vec<Bytes>) {
        self.send(|push| {
            push(Outgoing::Binary(bin));
            for attachment in data {
                push(Outgoing::Binary(attachment));
            }
        });
    }

    fn send(mut self, fill: impl FnOnce(&mut dyn FnMut(Outgoing))) {
        self.used = true;
        self.outbox.push_reserved(fill);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.outbox.unreserve();
        }
    }
}

/// One engine.io session, over polling or WebSocket.
///
/// Laid out in the order written (`repr(C)`): what every delivery touches,
/// the outbox and the stream, comes first, so a delivery to a session
/// whose memory is out of the cache costs as few cache misses as it can.
#[repr(C)]
pub struct Socket<D>
where
    D: Default + Send + Sync + 'static,
{
    pub(crate) outbox: Outbox,
    /// WebSocket over TCP: the stream, once the session is served on it,
    /// shared by the connection's task and the flushes of corked bursts.
    pub(crate) stream: OnceLock<TcpStream>,
    /// The engine.io protocol the client speaks.
    pub protocol: ProtocolVersion,
    transport: AtomicU8,
    /// Protocol 3 polling only: whether binary packets may be sent as
    /// binary, not base64 (the client did not ask for `b64`).
    pub(crate) supports_binary: bool,
    /// The session id the client was given.
    pub id: Sid,
    /// The handler's data on this session.
    pub data: D,
    /// The head of the request that opened the session.
    pub req_parts: Parts,
}

impl<D> Socket<D>
where
    D: Default + Send + Sync + 'static,
{
    pub(crate) fn new(
        protocol: ProtocolVersion,
        transport: TransportType,
        req_parts: Parts,
        supports_binary: bool,
        max_buffer_size: usize,
    ) -> Self {
        Self {
            id: Sid::new(),
            protocol,
            data: D::default(),
            req_parts,
            transport: AtomicU8::new(transport as u8),
            supports_binary,
            outbox: Outbox::new(max_buffer_size),
            stream: OnceLock::new(),
        }
    }

    /// Serves the session on `wire` from now on: a TCP stream moves into
    /// the session, where flushes can write to it ([`crate::cork`]).
    pub(crate) fn attach(self: &Arc<Self>, wire: &mut Wire) {
        if wire.attach(&self.stream) {
            let session: Weak<dyn Flush> = Arc::downgrade(self) as Weak<Self>;
            self.outbox.attach(session);
        }
    }

    /// The transport the session uses now.
    pub fn transport_type(&self) -> TransportType {
        TransportType::from(self.transport.load(Ordering::Relaxed))
    }

    pub(crate) fn set_transport(&self, transport: TransportType) {
        self.transport.store(transport as u8, Ordering::Relaxed);
    }

    /// Promises room for one packet: `Full` when the client is not keeping
    /// up (`max_buffer_size` packets wait), `Closed` once it is closing.
    pub fn reserve(&self) -> Result<Permit<'_>, TrySendError<()>> {
        self.outbox
            .reserve()
            .inspect_err(|error| self.note(error))?;
        Ok(Permit {
            outbox: &self.outbox,
            used: false,
        })
    }

    /// Sends a text message, or gives it back with why it cannot be.
    pub fn emit(&self, msg: impl Into<Str>) -> Result<(), TrySendError<Str>> {
        self.outbox
            .push(Outgoing::Message(msg.into()))
            .map_err(|error| {
                self.note(&error);
                map_packet(error, |packet| match packet {
                    Outgoing::Message(msg) => msg,
                    _ => Str::default(),
                })
            })
    }

    /// Sends a binary message, or gives it back with why it cannot be.
    pub fn emit_binary<B: Into<Bytes>>(&self, data: B) -> Result<(), TrySendError<Bytes>> {
        self.outbox
            .push(Outgoing::Binary(data.into()))
            .map_err(|error| {
                self.note(&error);
                map_packet(error, |packet| match packet {
                    Outgoing::Binary(data) => data,
                    _ => Bytes::new(),
                })
            })
    }

    /// Notes a refusal for a full queue, for a [`watch_full`](crate::full::watch_full).
    fn note<T>(&self, error: &TrySendError<T>) {
        if let TrySendError::Full(_) = error {
            note_full(SessionKey::of(&self.req_parts));
        }
    }

    /// Closes the session: what is queued is still written, then the
    /// connection ends and the handler hears `reason`.
    pub fn close(&self, reason: DisconnectReason) {
        self.outbox.close(reason);
    }

    /// Whether the session is closing or closed: nothing more can be sent.
    pub fn is_closed(&self) -> bool {
        self.outbox.is_closing_or_closed()
    }

    /// Resolves once the session has fully closed.
    pub async fn closed(&self) {
        self.outbox.closed().await
    }

    /// Sends a message that may be dropped: it is queued only if there is
    /// room now. Returns whether it was queued.
    pub fn emit_volatile(&self, msg: impl Into<Str>) -> bool {
        self.outbox.push(Outgoing::Message(msg.into())).is_ok()
    }

    /// [`Socket::emit_volatile`] for a binary message.
    pub fn emit_binary_volatile<B: Into<Bytes>>(&self, data: B) -> bool {
        self.outbox.push(Outgoing::Binary(data.into())).is_ok()
    }

    /// [`Socket::emit_volatile`] for a message with binary attachments, all
    /// queued or none.
    pub fn emit_many_volatile(&self, msg: Str, data: VecDeque<Bytes>) -> bool {
        // Not through `reserve`: a volatile message turned away is no
        // refusal to note.
        if self.outbox.reserve().is_err() {
            return false;
        }
        let permit = Permit {
            outbox: &self.outbox,
            used: false,
        };
        permit.emit_many(msg, data);
        true
    }
}

impl<D> Flush for Socket<D>
where
    D: Default + Send + Sync + 'static,
{
    fn flush(&self) {
        if let Some(stream) = self.stream.get() {
            writer::write_queued(&self.outbox, self.protocol, Writer::Flush, |slices| {
                send(stream, slices)
            });
        }
    }
}

/// A flush's write: `sendmsg(2)` on the socket itself, past tokio's
/// readiness (another cache line per delivery, and only a hint: a socket it
/// calls writable may still be full). `MSG_NOSIGNAL`: a peer gone is an
/// error here, not a signal to the process. On `WouldBlock` the
/// connection's task takes over, and its own write, through tokio, lets
/// tokio learn the socket is full before it waits.
fn send(stream: &TcpStream, slices: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
    sendmsg(
        stream,
        slices,
        &mut SendAncillaryBuffer::default(),
        SendFlags::NOSIGNAL,
    )
    .map_err(std::io::Error::from)
}

fn map_packet<T>(
    error: TrySendError<Outgoing>,
    unwrap: impl FnOnce(Outgoing) -> T,
) -> TrySendError<T> {
    match error {
        TrySendError::Full(packet) => TrySendError::Full(unwrap(packet)),
        TrySendError::Closed(packet) => TrySendError::Closed(unwrap(packet)),
    }
}

impl<D> std::fmt::Debug for Socket<D>
where
    D: Default + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("protocol", &self.protocol)
            .field("transport", &self.transport_type())
            .finish_non_exhaustive()
    }
}

//! Long-polling sessions: the handshake, the GET that waits for packets,
//! the POST that brings the client's, and the task that keeps the session.
//!
//! A client keeps one GET open; it is answered as soon as packets are
//! queued, with all of them in one payload ([`payload`]). The protocol
//! allows one GET and one POST at a time: a second of either ends the
//! session. The *keeper*, one task per polling session, sends the heartbeat
//! and ends the session when the client stops answering, when a close asked
//! by the server was delivered (or could not be), or when a WebSocket took
//! the session over.

pub(crate) mod payload;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use engineioxide_core::{ProtocolVersion, Str, TransportType};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;

use self::payload::{Received, WirePacket};
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::heartbeat::{Beat, Heartbeat};
use crate::outbox::{Outgoing, Phase, Upgrade, wake};
use crate::packet::{BadPacket, Incoming, open_packet};
use crate::service::Refusal;
use crate::socket::{DisconnectReason, Socket};

/// How long a close asked by the server waits for the client's next poll
/// to carry it. A client normally has a poll waiting, answered at once;
/// one that has none for this long is gone.
const CLOSE_DELIVERY_WAIT: Duration = Duration::from_secs(5);

/// Answers a handshake: opens the session, starts its keeper and sends the
/// open packet.
pub(crate) fn open<H: EngineIoHandler>(
    engine: &Arc<Engine<H>>,
    protocol: ProtocolVersion,
    parts: Parts,
    supports_binary: bool,
) -> Response<Bytes> {
    let socket = engine.open_session(protocol, TransportType::Polling, parts, supports_binary);
    let upgrades = engine.config.allowed_transport(TransportType::Websocket);
    let open = open_packet(socket.id, upgrades, &engine.config);
    let (body, content_type) =
        payload::encode(protocol, supports_binary, &[WirePacket::Text(b'0', &open)]);
    tokio::spawn(keep(engine.clone(), socket));
    reply(StatusCode::OK, content_type, body)
}

/// A GET: waits until there is something to send, and sends it.
pub(crate) async fn poll<H: EngineIoHandler>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
) -> Result<Response<Bytes>, Refusal> {
    {
        let mut state = socket.outbox.lock();
        if state.poll_pending {
            drop(state);
            // The client broke the one-GET rule: the waiting GET is answered
            // with a close and the session ends.
            socket.close(DisconnectReason::MultipleHttpPollingError);
            return Err(Refusal::SessionBroken);
        }
        state.poll_pending = true;
    }
    let mut waiting = PendingRequest::new(&socket, Claim::Poll);
    let answer = std::future::poll_fn(|cx| next_answer(&socket, cx)).await;
    waiting.done();
    let (packets, closes) = match answer {
        Answer::Packets(packets) => (packets, false),
        Answer::Close(mut packets) => {
            packets.push(Sent::Close);
            (packets, true)
        }
        Answer::Noop => (vec![Sent::Noop], false),
    };
    let wire: Vec<WirePacket<'_>> = packets.iter().filter_map(Sent::as_wire).collect();
    let (body, content_type) = payload::encode(socket.protocol, socket.supports_binary, &wire);
    if closes {
        engine.end_session(&socket, closing_reason(&socket));
    }
    Ok(reply(StatusCode::OK, content_type, body))
}

/// What a poll carries.
enum Answer {
    Packets(Vec<Sent>),
    /// The session closes: what was queued, then a close packet.
    Close(Vec<Sent>),
    /// Nothing, to end the poll (an upgrade, or a session already ended).
    Noop,
}

/// A packet in a poll's answer.
enum Sent {
    Packet(Outgoing),
    Close,
    Noop,
}

impl Sent {
    /// The packet in a payload; a WebSocket's own frames have no place in
    /// one (and are never queued on a polling session).
    fn as_wire(&self) -> Option<WirePacket<'_>> {
        Some(match self {
            Sent::Packet(Outgoing::Message(msg)) => WirePacket::Text(b'4', msg.as_str()),
            Sent::Packet(Outgoing::Binary(data)) => WirePacket::Binary(data),
            Sent::Packet(Outgoing::Ping) => WirePacket::Text(b'2', ""),
            Sent::Packet(Outgoing::Pong) => WirePacket::Text(b'3', ""),
            Sent::Packet(Outgoing::Open(handshake)) => WirePacket::Text(b'0', handshake.as_str()),
            Sent::Packet(Outgoing::WebSocketPong(_)) => return None,
            Sent::Close => WirePacket::Text(b'1', ""),
            Sent::Noop => WirePacket::Text(b'6', ""),
        })
    }
}

fn closing_reason<D>(socket: &Socket<D>) -> DisconnectReason
where
    D: Default + Send + Sync + 'static,
{
    match &socket.outbox.lock().phase {
        Phase::Closing(reason) => reason.clone(),
        _ => DisconnectReason::ClosingServer,
    }
}

fn next_answer<D>(socket: &Socket<D>, cx: &mut Context<'_>) -> Poll<Answer>
where
    D: Default + Send + Sync + 'static,
{
    let mut state = socket.outbox.lock();
    let drain = |state: &mut crate::outbox::State| {
        std::iter::from_fn(|| state.queue.pop_front())
            .map(Sent::Packet)
            .collect::<Vec<_>>()
    };
    match state.phase {
        Phase::Closed => return Poll::Ready(Answer::Noop),
        Phase::Closing(_) => return Poll::Ready(Answer::Close(drain(&mut state))),
        Phase::Open => {}
    }
    if matches!(state.upgrade, Upgrade::Probed | Upgrade::Done) {
        return Poll::Ready(Answer::Noop);
    }
    if !state.queue.is_empty() {
        return Poll::Ready(Answer::Packets(drain(&mut state)));
    }
    state.wait_as_reader(cx.waker());
    Poll::Pending
}

/// A POST: reads the client's packets and hands them on.
pub(crate) async fn post<H, B>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    request: http::Request<B>,
) -> Result<Response<Bytes>, Refusal>
where
    H: EngineIoHandler,
    B: Body + Unpin,
{
    {
        let mut state = socket.outbox.lock();
        if state.post_pending {
            drop(state);
            engine.end_session(&socket, DisconnectReason::MultipleHttpPollingError);
            return Err(Refusal::SessionBroken);
        }
        state.post_pending = true;
    }
    let mut posting = PendingRequest::new(&socket, Claim::Post);
    let binary_body = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == payload::BINARY_CONTENT_TYPE.as_bytes());
    let body = read_body(request.into_body(), engine.config.max_payload).await;
    posting.done();
    let body = match body {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            tracing::debug!(sid = %socket.id, "closing a session: a polling body over max_payload");
            engine.end_session(&socket, DisconnectReason::PacketParsingError);
            return Err(Refusal::PayloadTooLarge);
        }
        Err(BodyError::Read) => {
            engine.end_session(&socket, DisconnectReason::TransportError);
            return Err(Refusal::SessionBroken);
        }
    };
    let received = match payload::decode(socket.protocol, binary_body, body) {
        Ok(received) => received,
        Err(bad) => {
            tracing::debug!(sid = %socket.id, "closing a session: the client sent {bad}");
            engine.end_session(&socket, DisconnectReason::PacketParsingError);
            return Err(Refusal::SessionBroken);
        }
    };
    for packet in received {
        if let Err(reason) = take_packet(&engine, &socket, packet) {
            // The session ends now: a poll still waiting is answered with
            // a noop, and the next request finds no session.
            let refused = reason != DisconnectReason::TransportClose;
            engine.end_session(&socket, reason);
            if refused {
                return Err(Refusal::SessionBroken);
            }
            break;
        }
    }
    let mut response = reply(StatusCode::OK, "text/html", Bytes::from_static(b"ok"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
    Ok(response)
}

/// One packet of a POST. `Err` ends the session with that reason.
fn take_packet<H: EngineIoHandler>(
    engine: &Arc<Engine<H>>,
    socket: &Arc<Socket<H::Data>>,
    packet: Received,
) -> Result<(), DisconnectReason> {
    let text = match packet {
        Received::Binary(data) => {
            engine.handler.on_binary(data, socket.clone());
            return Ok(());
        }
        Received::Text(text) => text,
    };
    let incoming = Incoming::parse(&text).map_err(|bad: BadPacket| {
        tracing::debug!(sid = %socket.id, "closing a session: the client sent {bad}");
        DisconnectReason::PacketParsingError
    })?;
    match (incoming, socket.protocol) {
        (Incoming::Close, _) => return Err(DisconnectReason::TransportClose),
        (Incoming::Pong(_), ProtocolVersion::V4) => heard_heartbeat(socket),
        (Incoming::Ping(_), ProtocolVersion::V3) => {
            socket.outbox.push_control(Outgoing::Pong);
            heard_heartbeat(socket);
        }
        (Incoming::Ping(_) | Incoming::Pong(_), _) => {
            tracing::debug!(sid = %socket.id, "closing a session: a heartbeat in the wrong direction");
            return Err(DisconnectReason::TransportError);
        }
        (Incoming::Message(_), _) => {
            // The text without its type character, sharing the allocation.
            let msg = Str::from(text).slice(1..);
            engine.handler.on_message(msg, socket.clone());
        }
        (Incoming::Upgrade | Incoming::Noop, _) => {}
    }
    Ok(())
}

fn heard_heartbeat<D>(socket: &Socket<D>)
where
    D: Default + Send + Sync + 'static,
{
    let keeper = {
        let mut state = socket.outbox.lock();
        state.heard_heartbeat = true;
        state.take_keeper()
    };
    wake(keeper);
}

enum BodyError {
    TooLarge,
    Read,
}

async fn read_body<B: Body + Unpin>(mut body: B, limit: u64) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit {
        return Err(BodyError::TooLarge);
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Read)?;
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf;
            if (collected.len() + data.remaining()) as u64 > limit {
                return Err(BodyError::TooLarge);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let taken = chunk.len();
                data.advance(taken);
            }
        }
    }
    Ok(collected.freeze())
}

/// Which of the two requests a client may have open at a time.
#[derive(Clone, Copy)]
enum Claim {
    Poll,
    Post,
}

/// Marks a GET or POST as under way, and ends the session if the request
/// goes away unanswered (the client cancelled it or dropped the connection).
struct PendingRequest<'a, D>
where
    D: Default + Send + Sync + 'static,
{
    socket: &'a Socket<D>,
    claim: Claim,
    answered: bool,
}

impl<'a, D> PendingRequest<'a, D>
where
    D: Default + Send + Sync + 'static,
{
    fn new(socket: &'a Socket<D>, claim: Claim) -> Self {
        Self {
            socket,
            claim,
            answered: false,
        }
    }

    fn done(&mut self) {
        self.answered = true;
        self.clear();
    }

    fn clear(&self) {
        let mut state = self.socket.outbox.lock();
        match self.claim {
            Claim::Poll => state.poll_pending = false,
            Claim::Post => state.post_pending = false,
        }
    }
}

impl<D> Drop for PendingRequest<'_, D>
where
    D: Default + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.answered {
            self.clear();
            self.socket.close(DisconnectReason::TransportError);
        }
    }
}

/// The keeper of a polling session: its heartbeat and its end.
async fn keep<H: EngineIoHandler>(engine: Arc<Engine<H>>, socket: Arc<Socket<H::Data>>) {
    let config = &engine.config;
    let mut heartbeat = Heartbeat::new(
        socket.protocol,
        config.ping_interval,
        config.ping_timeout,
        Instant::now(),
    );
    let timer = tokio::time::sleep_until(heartbeat.deadline());
    tokio::pin!(timer);
    let mut close_by: Option<Instant> = None;
    let end = std::future::poll_fn(|cx| {
        loop {
            let now = Instant::now();
            let deadline = {
                let mut state = socket.outbox.lock();
                if state.upgrade == Upgrade::Done || state.phase == Phase::Closed {
                    return Poll::Ready(None);
                }
                if let Phase::Closing(reason) = &state.phase {
                    let reason = reason.clone();
                    // A close for a client that is gone is not delivered.
                    let client_gone = matches!(
                        reason,
                        DisconnectReason::HeartbeatTimeout | DisconnectReason::TransportError
                    );
                    let by = *close_by.get_or_insert(now + CLOSE_DELIVERY_WAIT);
                    if client_gone || now >= by {
                        return Poll::Ready(Some(reason));
                    }
                    state.wait_as_keeper(cx.waker());
                    by
                } else {
                    if std::mem::take(&mut state.heard_heartbeat) {
                        heartbeat.on_heartbeat(now);
                    }
                    state.wait_as_keeper(cx.waker());
                    heartbeat.deadline()
                }
            };
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if close_by.is_some() {
                continue;
            }
            match heartbeat.on_deadline(now) {
                Beat::SendPing => socket.outbox.push_control(Outgoing::Ping),
                Beat::TimedOut => return Poll::Ready(Some(DisconnectReason::HeartbeatTimeout)),
            }
        }
    })
    .await;
    if let Some(reason) = end {
        engine.end_session(&socket, reason);
    }
}

/// A polling response: no caching, by any proxy or browser.
fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

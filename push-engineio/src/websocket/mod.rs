//! WebSocket sessions: answering the HTTP upgrade, then serving the stream
//! with one task ([`connection`]).
//!
//! A WebSocket either opens a session of its own (no `sid`), or upgrades a
//! polling session (its `sid`), which it probes before taking over.

mod connection;
pub(crate) mod frame;
mod task;
pub(crate) mod wire;
pub(crate) mod writer;

use std::sync::Arc;

use bytes::Bytes;
use engineioxide_core::{ProtocolVersion, TransportType};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use self::connection::Purpose;
use self::task::ConnectionTask;
use self::wire::{ByteStream, Wire};
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::outbox::{Phase, Upgrade};
use crate::service::Refusal;
use crate::socket::Socket;

/// Claims a polling session for an upgrade: refused if it is closing, or
/// if another WebSocket probes it or took it over already.
pub(crate) fn claim_for_upgrade<D>(socket: &Socket<D>) -> Result<(), Refusal>
where
    D: Default + Send + Sync + 'static,
{
    let mut state = socket.outbox.lock();
    if state.phase != Phase::Open || state.upgrade != Upgrade::None {
        return Err(Refusal::BadRequest);
    }
    state.upgrade = Upgrade::Probing;
    Ok(())
}

/// Answers an upgrade request with `101 Switching Protocols` and serves
/// the WebSocket once hyper hands the connection over. `upgrading` is the
/// polling session it upgrades, already claimed; without one, the
/// WebSocket's own session opens now.
pub(crate) fn accept<H, B>(
    engine: &Arc<Engine<H>>,
    protocol: ProtocolVersion,
    upgrading: Option<Arc<Socket<H::Data>>>,
    mut request: http::Request<B>,
) -> Result<Response<Bytes>, Refusal>
where
    H: EngineIoHandler,
{
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY) else {
        if let Some(socket) = &upgrading {
            release(socket);
        }
        return Err(Refusal::BadRequest);
    };
    let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let (socket, purpose) = session(engine, protocol, upgrading, parts);
    tokio::spawn(ConnectionTask::after_upgrade(
        upgrade,
        engine.clone(),
        socket,
        purpose,
    ));
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    Ok(response)
}

/// Serves a WebSocket on a stream whose HTTP upgrade happened elsewhere.
pub(crate) fn serve_stream<H>(
    engine: &Arc<Engine<H>>,
    protocol: ProtocolVersion,
    upgrading: Option<Arc<Socket<H::Data>>>,
    parts: Parts,
    stream: impl ByteStream,
) where
    H: EngineIoHandler,
{
    let (socket, purpose) = session(engine, protocol, upgrading, parts);
    let wire = Wire::from_stream(stream);
    tokio::spawn(ConnectionTask::on_stream(
        engine.clone(),
        socket,
        wire,
        purpose,
    ));
}

/// The session a WebSocket serves: the polling session it upgrades, or a
/// new one.
fn session<H: EngineIoHandler>(
    engine: &Engine<H>,
    protocol: ProtocolVersion,
    upgrading: Option<Arc<Socket<H::Data>>>,
    parts: Parts,
) -> (Arc<Socket<H::Data>>, Purpose) {
    match upgrading {
        Some(socket) => (socket, Purpose::Upgrading),
        None => (
            engine.open_session(protocol, TransportType::Websocket, parts, true),
            Purpose::Opening,
        ),
    }
}

/// Gives a claimed session back to polling when its WebSocket never came.
fn release<D>(socket: &Socket<D>)
where
    D: Default + Send + Sync + 'static,
{
    let mut state = socket.outbox.lock();
    if state.upgrade == Upgrade::Probing {
        state.upgrade = Upgrade::None;
    }
}

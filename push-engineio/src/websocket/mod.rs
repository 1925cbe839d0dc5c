//! WebSocket sessions: answering the HTTP upgrade, then serving the stream
//! with one task ([`connection`]).
//!
//! A WebSocket either opens a session of its own (no `sid`), or upgrades a
//! polling session (its `sid`), which it probes before taking over.

mod connection;
pub(crate) mod frame;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use engineioxide_core::{ProtocolVersion, TransportType};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use self::connection::Connection;
use self::wire::{Stream, Wire};
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
/// polling session it upgrades, already claimed.
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
        release(upgrading.as_deref());
        return Err(Refusal::BadRequest);
    };
    let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let engine = engine.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "a WebSocket upgrade did not complete");
                release(upgrading.as_deref());
                return;
            }
        };
        let (wire, early) = Wire::from_upgraded(upgraded);
        connect(engine, protocol, upgrading, parts, wire)
            .run(early)
            .await;
    });
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
    stream: impl Stream,
) where
    H: EngineIoHandler,
{
    let connection = connect(
        engine.clone(),
        protocol,
        upgrading,
        parts,
        Wire::from_stream(stream),
    );
    tokio::spawn(connection.run(Bytes::new()));
}

fn connect<H: EngineIoHandler>(
    engine: Arc<Engine<H>>,
    protocol: ProtocolVersion,
    upgrading: Option<Arc<Socket<H::Data>>>,
    parts: Parts,
    wire: Wire,
) -> Connection<H> {
    match upgrading {
        Some(socket) => Connection::upgrading(engine, socket, wire),
        None => {
            let socket = engine.open_session(protocol, TransportType::Websocket, parts, true);
            Connection::opening(engine, socket, wire)
        }
    }
}

/// Gives a claimed session back to polling when its WebSocket never came.
fn release<D>(socket: Option<&Socket<D>>)
where
    D: Default + Send + Sync + 'static,
{
    if let Some(socket) = socket {
        let mut state = socket.outbox.lock();
        if state.upgrade == Upgrade::Probing {
            state.upgrade = Upgrade::None;
        }
    }
}

//! What an engine.io request asks for, checked in the reference server's
//! order: the transport, then the session (or, for a handshake, the method
//! and the protocol version).

use std::str::FromStr;
use std::sync::Arc;

use engineioxide_core::{ProtocolVersion, Sid, TransportType};
use http::Method;

use super::Refusal;
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::socket::Socket;

/// Where a request goes.
pub(crate) enum Route<D>
where
    D: Default + Send + Sync + 'static,
{
    /// Open a polling session.
    Handshake {
        protocol: ProtocolVersion,
        supports_binary: bool,
    },
    /// Open a session on a new WebSocket.
    OpenWebSocket { protocol: ProtocolVersion },
    /// Upgrade this polling session to a WebSocket.
    Upgrade(Arc<Socket<D>>),
    /// Wait for this session's packets.
    Poll(Arc<Socket<D>>),
    /// Take packets for this session.
    Post(Arc<Socket<D>>),
}

/// The engine.io parameters of a query string.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query<'a> {
    eio: Option<&'a str>,
    transport: Option<&'a str>,
    sid: Option<&'a str>,
    /// Protocol 3: the client cannot take binary, send base64.
    b64: bool,
    /// Protocol 3: JSONP polling, which this server does not serve.
    jsonp: bool,
}

impl<'a> Query<'a> {
    fn parse(query: &'a str) -> Self {
        let mut parsed = Query::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "EIO" => parsed.eio = Some(value),
                "transport" => parsed.transport = Some(value),
                "sid" => parsed.sid = Some(value),
                "b64" => parsed.b64 = !value.is_empty() && value != "0",
                "j" => parsed.jsonp = true,
                _ => {}
            }
        }
        parsed
    }
}

/// The protocol named by `EIO`, if this server speaks it.
fn protocol(eio: Option<&str>) -> Option<ProtocolVersion> {
    match eio {
        Some("4") => Some(ProtocolVersion::V4),
        #[cfg(feature = "v3")]
        Some("3") => Some(ProtocolVersion::V3),
        _ => None,
    }
}

/// Routes a request. `upgrade` is whether it asks to switch to WebSocket.
pub(crate) fn route<H: EngineIoHandler>(
    engine: &Engine<H>,
    method: &Method,
    query: Option<&str>,
    upgrade: bool,
) -> Result<Route<H::Data>, Refusal> {
    let query = Query::parse(query.unwrap_or(""));
    let transport = query
        .transport
        .and_then(|t| TransportType::from_str(t).ok())
        .filter(|t| engine.config.allowed_transport(*t))
        .ok_or(Refusal::UnknownTransport)?;
    let protocol = protocol(query.eio);

    if let Some(sid) = query.sid {
        let socket = Sid::from_str(sid)
            .ok()
            .and_then(|sid| engine.session(sid))
            .ok_or(Refusal::UnknownSid)?;
        if protocol != Some(socket.protocol) {
            return Err(Refusal::BadRequest);
        }
        return match (transport, upgrade, method) {
            // Only a polling session can be upgraded, and only once.
            (TransportType::Websocket, true, _)
                if socket.transport_type() == TransportType::Polling =>
            {
                Ok(Route::Upgrade(socket))
            }
            (TransportType::Polling, false, &Method::GET)
                if socket.transport_type() == transport =>
            {
                Ok(Route::Poll(socket))
            }
            (TransportType::Polling, false, &Method::POST)
                if socket.transport_type() == transport =>
            {
                Ok(Route::Post(socket))
            }
            _ => Err(Refusal::BadRequest),
        };
    }

    if method != Method::GET {
        return Err(Refusal::BadHandshakeMethod);
    }
    if transport == TransportType::Websocket && !upgrade {
        return Err(Refusal::BadRequest);
    }
    let protocol = protocol.ok_or(Refusal::UnsupportedProtocolVersion)?;
    match transport {
        TransportType::Websocket => Ok(Route::OpenWebSocket { protocol }),
        TransportType::Polling if query.jsonp => Err(Refusal::BadRequest),
        TransportType::Polling => Ok(Route::Handshake {
            protocol,
            supports_binary: !query.b64,
        }),
    }
}

/// Whether `path` is under the engine.io path `req_path`.
pub(crate) fn is_engine_path(path: &str, req_path: &str) -> bool {
    path.strip_prefix(req_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || req_path.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use engineioxide_core::Str;

    use super::*;
    use crate::config::EngineIoConfig;
    use crate::socket::DisconnectReason;

    #[derive(Debug)]
    struct Quiet;

    impl EngineIoHandler for Quiet {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn engine() -> Engine<Quiet> {
        Engine::new(Arc::new(Quiet), EngineIoConfig::default())
    }

    fn refusal(
        engine: &Engine<Quiet>,
        method: Method,
        query: &str,
        upgrade: bool,
    ) -> Option<Refusal> {
        route(engine, &method, Some(query), upgrade).err()
    }

    #[test]
    fn the_query_names_the_engine_io_parameters() {
        let query = Query::parse("EIO=3&transport=polling&t=N8hyd6w&b64=1&sid=abc");
        assert_eq!(
            query,
            Query {
                eio: Some("3"),
                transport: Some("polling"),
                sid: Some("abc"),
                b64: true,
                jsonp: false,
            }
        );
    }

    #[test]
    fn handshakes_are_refused_as_the_reference_refuses_them() {
        let engine = engine();
        let cases = [
            (Method::GET, "EIO=4", false, Refusal::UnknownTransport),
            (
                Method::GET,
                "EIO=4&transport=abc",
                false,
                Refusal::UnknownTransport,
            ),
            (
                Method::POST,
                "EIO=4&transport=polling",
                false,
                Refusal::BadHandshakeMethod,
            ),
            (
                Method::PUT,
                "EIO=4&transport=polling",
                false,
                Refusal::BadHandshakeMethod,
            ),
            (
                Method::GET,
                "EIO=4&transport=websocket",
                false,
                Refusal::BadRequest,
            ),
            (
                Method::GET,
                "transport=polling",
                false,
                Refusal::UnsupportedProtocolVersion,
            ),
            (
                Method::GET,
                "EIO=abc&transport=polling",
                false,
                Refusal::UnsupportedProtocolVersion,
            ),
            (
                Method::GET,
                "EIO=5&transport=websocket",
                true,
                Refusal::UnsupportedProtocolVersion,
            ),
            (
                Method::GET,
                "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA",
                false,
                Refusal::UnknownSid,
            ),
            (
                Method::GET,
                "EIO=4&transport=polling&sid=nonsense",
                false,
                Refusal::UnknownSid,
            ),
        ];
        for (method, query, upgrade, expected) in cases {
            assert_eq!(
                refusal(&engine, method, query, upgrade),
                Some(expected),
                "{query}"
            );
        }
        assert!(matches!(
            route(
                &engine,
                &Method::GET,
                Some("EIO=4&transport=polling"),
                false
            ),
            Ok(Route::Handshake {
                protocol: ProtocolVersion::V4,
                supports_binary: true
            })
        ));
    }

    #[test]
    fn the_engine_io_path_and_what_is_under_it() {
        assert!(is_engine_path("/socket.io", "/socket.io"));
        assert!(is_engine_path("/socket.io/", "/socket.io"));
        assert!(!is_engine_path("/socket.iox", "/socket.io"));
        assert!(!is_engine_path("/healthz", "/socket.io"));
    }
}

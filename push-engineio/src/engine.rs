//! The sessions of one server: opened, found by id, and ended once.
//!
//! Every session is in the table for as long as it lives, so that a polling
//! request or an upgrade can find it by its id, and so that a request naming
//! a session of the other transport is told so rather than "unknown".

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use engineioxide_core::{ProtocolVersion, Sid, TransportType};
use http::request::Parts;

use crate::config::EngineIoConfig;
use crate::handler::EngineIoHandler;
use crate::socket::{DisconnectReason, Socket};

pub(crate) struct Engine<H: EngineIoHandler> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: EngineIoConfig,
    sessions: RwLock<HashMap<Sid, Arc<Socket<H::Data>>>>,
}

impl<H: EngineIoHandler> Engine<H> {
    pub(crate) fn new(handler: Arc<H>, config: EngineIoConfig) -> Self {
        Self {
            handler,
            config,
            sessions: RwLock::new(HashMap::new()),
        }
    }

    /// Opens a session and tells the handler. `parts` is the head of the
    /// request that opened it, kept for the handler (cookies, addresses).
    pub(crate) fn open_session(
        &self,
        protocol: ProtocolVersion,
        transport: TransportType,
        mut parts: Parts,
        supports_binary: bool,
    ) -> Arc<Socket<H::Data>> {
        // Read once, at the handshake; not worth keeping for the session.
        parts.headers.remove(http::header::SEC_WEBSOCKET_KEY);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let socket = Arc::new(Socket::new(
            protocol,
            transport,
            parts,
            supports_binary,
            self.config.max_buffer_size,
        ));
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(socket.id, socket.clone());
        tracing::debug!(sid = %socket.id, ?protocol, ?transport, "session opened");
        self.handler.clone().on_connect(socket.clone());
        socket
    }

    pub(crate) fn session(&self, sid: Sid) -> Option<Arc<Socket<H::Data>>> {
        self.sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&sid)
            .cloned()
    }

    /// Ends a session: out of the table, marked closed (waking whoever
    /// waits for that), and the handler told, once whoever calls it.
    pub(crate) fn end_session(&self, socket: &Arc<Socket<H::Data>>, reason: DisconnectReason) {
        let removed = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&socket.id);
        if removed.is_none() {
            return;
        }
        tracing::debug!(sid = %socket.id, ?reason, "session closed");
        socket.outbox.mark_closed();
        self.handler.on_disconnect(socket.clone(), reason);
    }
}

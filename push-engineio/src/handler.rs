//! What the transport tells the layer above (socketioxide) about a
//! connection: that it opened, what it sent, and that it closed.

use std::sync::Arc;

use bytes::Bytes;
use engineioxide_core::Str;

use crate::socket::{DisconnectReason, Socket};

/// Receives a connection's events. Every call is made from the task that
/// serves the connection, never from inside a call the handler made into
/// the transport, so a handler may emit or close from any of them.
pub trait EngineIoHandler: std::fmt::Debug + Send + Sync + 'static {
    /// What the handler keeps on each connection.
    type Data: Default + Send + Sync + 'static;

    /// A session opened; its handshake is under way or done.
    fn on_connect(self: Arc<Self>, socket: Arc<Socket<Self::Data>>);

    /// The session closed, once, with why.
    fn on_disconnect(&self, socket: Arc<Socket<Self::Data>>, reason: DisconnectReason);

    /// The client sent a text message.
    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<Self::Data>>);

    /// The client sent a binary message.
    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<Self::Data>>);
}

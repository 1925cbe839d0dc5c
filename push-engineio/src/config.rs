//! The transport's settings, with the names and builder socketioxide uses.
//!
//! socketioxide's `SocketIoBuilder` forwards its engine.io settings here one
//! by one, so every setting it knows has a builder method, including
//! `ws_read_buffer_size`, which this transport has no use for: it reads
//! into one buffer per thread, never into one per connection.

use std::borrow::Cow;
use std::time::Duration;

use engineioxide_core::TransportType;

/// How the engine.io server behaves.
#[derive(Debug, Clone)]
pub struct EngineIoConfig {
    /// The path requests are served under (`/socket.io` for socket.io).
    pub req_path: Cow<'static, str>,
    /// How often the server pings a protocol 4 client; how often a
    /// protocol 3 client is told to ping.
    pub ping_interval: Duration,
    /// How long the server waits for the answer to a ping.
    pub ping_timeout: Duration,
    /// How long a WebSocket may take between the upgrade probe and the
    /// upgrade packet before it is closed and the session stays on polling.
    pub upgrade_timeout: Duration,
    /// Packets queued for one connection before more are refused: the
    /// slow-consumer bound.
    pub max_buffer_size: usize,
    /// The largest packet or polling body a client may send, in bytes;
    /// announced in the handshake as `maxPayload`.
    pub max_payload: u64,
    /// Accepted for socketioxide's builder and not used: reads go into a
    /// buffer per thread (see the crate documentation).
    pub ws_read_buffer_size: usize,
    /// The largest WebSocket message a client may send, in bytes.
    pub ws_max_message_size: usize,
    /// The largest WebSocket frame a client may send, in bytes.
    pub ws_max_frame_size: usize,
    /// The allowed transports, as a bit set of [`TransportType`] values.
    pub transports: u8,
}

impl Default for EngineIoConfig {
    fn default() -> Self {
        Self {
            req_path: "/engine.io".into(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            upgrade_timeout: Duration::from_secs(10),
            max_buffer_size: 128,
            max_payload: 100_000,
            ws_read_buffer_size: 4096,
            ws_max_message_size: 64 << 20,
            ws_max_frame_size: 16 << 20,
            transports: TransportType::Polling as u8 | TransportType::Websocket as u8,
        }
    }
}

impl EngineIoConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> EngineIoConfigBuilder {
        EngineIoConfigBuilder::new()
    }

    /// Whether clients may use `transport`.
    pub fn allowed_transport(&self, transport: TransportType) -> bool {
        self.transports & transport as u8 == transport as u8
    }

    /// The largest WebSocket message a client may send: the smallest of the
    /// limits that apply to it.
    pub(crate) fn max_ws_message(&self) -> usize {
        let payload = usize::try_from(self.max_payload).unwrap_or(usize::MAX);
        payload
            .min(self.ws_max_message_size)
            .min(self.ws_max_frame_size)
    }
}

/// Builds an [`EngineIoConfig`].
#[derive(Debug, Clone, Default)]
pub struct EngineIoConfigBuilder {
    config: EngineIoConfig,
}

impl EngineIoConfigBuilder {
    /// Starts from the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`EngineIoConfig::req_path`].
    pub fn req_path(mut self, req_path: impl Into<Cow<'static, str>>) -> Self {
        self.config.req_path = req_path.into();
        self
    }

    /// See [`EngineIoConfig::ping_interval`].
    pub fn ping_interval(mut self, ping_interval: Duration) -> Self {
        self.config.ping_interval = ping_interval;
        self
    }

    /// See [`EngineIoConfig::ping_timeout`].
    pub fn ping_timeout(mut self, ping_timeout: Duration) -> Self {
        self.config.ping_timeout = ping_timeout;
        self
    }

    /// See [`EngineIoConfig::upgrade_timeout`].
    pub fn upgrade_timeout(mut self, upgrade_timeout: Duration) -> Self {
        self.config.upgrade_timeout = upgrade_timeout;
        self
    }

    /// See [`EngineIoConfig::max_buffer_size`].
    pub fn max_buffer_size(mut self, max_buffer_size: usize) -> Self {
        self.config.max_buffer_size = max_buffer_size;
        self
    }

    /// See [`EngineIoConfig::max_payload`].
    pub fn max_payload(mut self, max_payload: u64) -> Self {
        self.config.max_payload = max_payload;
        self
    }

    /// See [`EngineIoConfig::ws_read_buffer_size`].
    pub fn ws_read_buffer_size(mut self, ws_read_buffer_size: usize) -> Self {
        self.config.ws_read_buffer_size = ws_read_buffer_size;
        self
    }

    /// See [`EngineIoConfig::ws_max_message_size`].
    pub fn ws_max_message_size(mut self, ws_max_message_size: usize) -> Self {
        self.config.ws_max_message_size = ws_max_message_size;
        self
    }

    /// See [`EngineIoConfig::ws_max_frame_size`].
    pub fn ws_max_frame_size(mut self, ws_max_frame_size: usize) -> Self {
        self.config.ws_max_frame_size = ws_max_frame_size;
        self
    }

    /// Allows only the listed transports.
    pub fn transports<const N: usize>(mut self, transports: [TransportType; N]) -> Self {
        self.config.transports = transports.iter().fold(0, |set, t| set | *t as u8);
        self
    }

    /// The configuration.
    pub fn build(self) -> EngineIoConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_a_bit_set() {
        let both = EngineIoConfig::default();
        assert!(both.allowed_transport(TransportType::Polling));
        assert!(both.allowed_transport(TransportType::Websocket));
        let ws_only = EngineIoConfig::builder()
            .transports([TransportType::Websocket])
            .build();
        assert!(!ws_only.allowed_transport(TransportType::Polling));
        assert!(ws_only.allowed_transport(TransportType::Websocket));
    }

    #[test]
    fn the_smallest_limit_bounds_a_websocket_message() {
        let config = EngineIoConfig::builder()
            .max_payload(4096)
            .ws_max_message_size(8192)
            .build();
        assert_eq!(config.max_ws_message(), 4096);
    }
}

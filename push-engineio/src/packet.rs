//! Engine.io packets: a one-character type and its data.
//!
//! The same text form travels in a WebSocket text frame and in each packet
//! of a polling payload ([`crate::polling::payload`]). Clients send close,
//! ping, pong, message, upgrade and noop; an open packet, an empty one or
//! an unknown type is a protocol error.

use engineioxide_core::Sid;

use crate::config::EngineIoConfig;

/// A packet a client sent, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Why a client's packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadPacket {
    #[error("an empty packet")]
    Empty,
    #[error("a packet of unknown type {0:?}")]
    UnknownType(char),
    #[error("an open packet, which only the server sends")]
    Open,
    #[error("a binary packet of unknown type {0}")]
    UnknownBinaryType(u8),
    #[error("text that is not UTF-8")]
    NotUtf8,
    #[error("a malformed polling payload: {0}")]
    Payload(&'static str),
}

impl<'a> Incoming<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<Self, BadPacket> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(BadPacket::Empty)?;
        let data = chars.as_str();
        match kind {
            '0' => Err(BadPacket::Open),
            '1' => Ok(Incoming::Close),
            '2' => Ok(Incoming::Ping(data)),
            '3' => Ok(Incoming::Pong(data)),
            '4' => Ok(Incoming::Message(data)),
            '5' => Ok(Incoming::Upgrade),
            '6' => Ok(Incoming::Noop),
            other => Err(BadPacket::UnknownType(other)),
        }
    }
}

/// The data of a ping the client sends to probe a WebSocket before an
/// upgrade, and of the server's answer.
pub(crate) const PROBE: &str = "probe";

/// The data of the open packet that starts every session: the handshake.
/// `upgrades` lists WebSocket for a session opened over polling.
pub(crate) fn open_packet(sid: Sid, upgrades: bool, config: &EngineIoConfig) -> String {
    format!(
        r#"{{"sid":"{sid}","upgrades":[{}],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
        if upgrades { r#""websocket""# } else { "" },
        config.ping_interval.as_millis(),
        config.ping_timeout.as_millis(),
        config.max_payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_its_type_and_its_data() {
        assert_eq!(Incoming::parse("4hello"), Ok(Incoming::Message("hello")));
        assert_eq!(Incoming::parse("2probe"), Ok(Incoming::Ping("probe")));
        assert_eq!(Incoming::parse("3"), Ok(Incoming::Pong("")));
        assert_eq!(Incoming::parse("1"), Ok(Incoming::Close));
        assert_eq!(Incoming::parse("5"), Ok(Incoming::Upgrade));
        assert_eq!(Incoming::parse("6"), Ok(Incoming::Noop));
        assert_eq!(Incoming::parse("4€"), Ok(Incoming::Message("€")));
    }

    #[test]
    fn what_clients_may_not_send_is_refused() {
        assert_eq!(Incoming::parse(""), Err(BadPacket::Empty));
        assert_eq!(Incoming::parse("0{}"), Err(BadPacket::Open));
        assert_eq!(Incoming::parse("9"), Err(BadPacket::UnknownType('9')));
        assert_eq!(Incoming::parse("x"), Err(BadPacket::UnknownType('x')));
    }

    #[test]
    fn the_open_packet_has_the_reference_fields() {
        let config = EngineIoConfig::default();
        let sid = Sid::new();
        let packet = open_packet(sid, true, &config);
        assert_eq!(
            packet,
            format!(
                r#"{{"sid":"{sid}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}}"#
            )
        );
        assert!(open_packet(sid, false, &config).contains(r#""upgrades":[]"#));
    }
}

//! Polling payloads: several packets in one HTTP body.
//!
//! Protocol 4 separates packets with the record separator `\x1e` and sends
//! binary data as `b` and base64. Protocol 3 has three forms: packets
//! prefixed with their length in UTF-16 code units and a colon (binary as
//! `b4` and base64), or, for a client that takes binary and a payload with
//! binary in it, a binary form where each packet is a kind byte (0 text,
//! 1 binary), its length in decimal digits as bytes 0 to 9, a 255 byte and
//! the packet.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use engineioxide_core::ProtocolVersion;

use crate::packet::BadPacket;

const SEPARATOR: u8 = 0x1e;
const V3_BINARY_LENGTH_END: u8 = 0xff;
/// The engine.io type of a message, as a byte in protocol 3's binary forms.
const V3_MESSAGE_TYPE: u8 = 4;

pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
pub(crate) const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// A packet as it goes into a payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WirePacket<'a> {
    /// A text packet: its type character and its data.
    Text(u8, &'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// A packet as it came out of a payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// A text packet, type character included.
    Text(String),
    /// A binary message's data.
    Binary(Bytes),
}

/// Encodes packets as one payload; returns it with its content type.
pub(crate) fn encode(
    protocol: ProtocolVersion,
    supports_binary: bool,
    packets: &[WirePacket<'_>],
) -> (Bytes, &'static str) {
    let has_binary = packets.iter().any(|p| matches!(p, WirePacket::Binary(_)));
    match protocol {
        ProtocolVersion::V4 => (encode_v4(packets), TEXT_CONTENT_TYPE),
        ProtocolVersion::V3 if supports_binary && has_binary => {
            (encode_v3_binary(packets), BINARY_CONTENT_TYPE)
        }
        ProtocolVersion::V3 => (encode_v3_text(packets), TEXT_CONTENT_TYPE),
    }
}

fn encode_v4(packets: &[WirePacket<'_>]) -> Bytes {
    let mut out = BytesMut::with_capacity(packets.iter().map(size_hint).sum());
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.put_u8(SEPARATOR);
        }
        match packet {
            WirePacket::Text(kind, data) => {
                out.put_u8(*kind);
                out.put_slice(data.as_bytes());
            }
            WirePacket::Binary(data) => {
                out.put_u8(b'b');
                out.put_slice(BASE64.encode(data).as_bytes());
            }
        }
    }
    out.freeze()
}

fn encode_v3_text(packets: &[WirePacket<'_>]) -> Bytes {
    let mut out = BytesMut::with_capacity(packets.iter().map(size_hint).sum());
    for packet in packets {
        match packet {
            WirePacket::Text(kind, data) => {
                put_decimal(&mut out, 1 + utf16_len(data));
                out.put_u8(b':');
                out.put_u8(*kind);
                out.put_slice(data.as_bytes());
            }
            WirePacket::Binary(data) => {
                let encoded = BASE64.encode(data);
                put_decimal(&mut out, 2 + encoded.len());
                out.put_slice(b":b4");
                out.put_slice(encoded.as_bytes());
            }
        }
    }
    out.freeze()
}

fn encode_v3_binary(packets: &[WirePacket<'_>]) -> Bytes {
    let mut out = BytesMut::with_capacity(packets.iter().map(size_hint).sum());
    for packet in packets {
        match packet {
            WirePacket::Text(kind, data) => {
                out.put_u8(0);
                put_digit_bytes(&mut out, 1 + data.len());
                out.put_u8(V3_BINARY_LENGTH_END);
                out.put_u8(*kind);
                out.put_slice(data.as_bytes());
            }
            WirePacket::Binary(data) => {
                out.put_u8(1);
                put_digit_bytes(&mut out, 1 + data.len());
                out.put_u8(V3_BINARY_LENGTH_END);
                out.put_u8(V3_MESSAGE_TYPE);
                out.put_slice(data);
            }
        }
    }
    out.freeze()
}

fn size_hint(packet: &WirePacket<'_>) -> usize {
    match packet {
        WirePacket::Text(_, data) => data.len() + 12,
        WirePacket::Binary(data) => data.len() * 4 / 3 + 16,
    }
}

/// A string's length as JavaScript counts it, which protocol 3 uses.
fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

fn put_decimal(out: &mut BytesMut, n: usize) {
    out.put_slice(n.to_string().as_bytes());
}

/// `n` in decimal, each digit as a byte of its value (protocol 3 binary).
fn put_digit_bytes(out: &mut BytesMut, n: usize) {
    out.extend(n.to_string().bytes().map(|digit| digit - b'0'));
}

/// Decodes a payload a client POSTed. `binary_body` is whether it came
/// as `application/octet-stream`.
pub(crate) fn decode(
    protocol: ProtocolVersion,
    binary_body: bool,
    body: Bytes,
) -> Result<Vec<Received>, BadPacket> {
    match protocol {
        ProtocolVersion::V4 if binary_body => Err(BadPacket::Payload(
            "protocol 4 sends binary in base64, never as an octet stream",
        )),
        ProtocolVersion::V4 => decode_v4(&body),
        ProtocolVersion::V3 if binary_body => decode_v3_binary(&body),
        ProtocolVersion::V3 => decode_v3_text(&body),
    }
}

fn decode_v4(body: &[u8]) -> Result<Vec<Received>, BadPacket> {
    let text = std::str::from_utf8(body).map_err(|_| BadPacket::NotUtf8)?;
    text.split('\u{1e}').map(decode_text_packet).collect()
}

/// One text-form packet; `b` and base64 is binary.
fn decode_text_packet(packet: &str) -> Result<Received, BadPacket> {
    match packet.strip_prefix('b') {
        Some(encoded) => BASE64
            .decode(encoded)
            .map(|data| Received::Binary(data.into()))
            .map_err(|_| BadPacket::Payload("binary data that is not base64")),
        None => Ok(Received::Text(packet.to_owned())),
    }
}

fn decode_v3_text(body: &[u8]) -> Result<Vec<Received>, BadPacket> {
    let mut rest = std::str::from_utf8(body).map_err(|_| BadPacket::NotUtf8)?;
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let (length, after) = rest
            .split_once(':')
            .ok_or(BadPacket::Payload("a packet without its length"))?;
        let length: usize = length
            .parse()
            .map_err(|_| BadPacket::Payload("a length that is not a number"))?;
        let end = byte_offset_of_utf16(after, length)
            .ok_or(BadPacket::Payload("a length past the end of the payload"))?;
        let (packet, next) = after.split_at(end);
        packets.push(match packet.strip_prefix("b4") {
            Some(encoded) => BASE64
                .decode(encoded)
                .map(|data| Received::Binary(data.into()))
                .map_err(|_| BadPacket::Payload("binary data that is not base64"))?,
            None => Received::Text(packet.to_owned()),
        });
        rest = next;
    }
    Ok(packets)
}

/// Where the first `units` UTF-16 code units of `text` end, in bytes.
fn byte_offset_of_utf16(text: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (offset, c) in text.char_indices() {
        if counted == units {
            return Some(offset);
        }
        counted += c.len_utf16();
    }
    (counted == units).then_some(text.len())
}

fn decode_v3_binary(body: &[u8]) -> Result<Vec<Received>, BadPacket> {
    let mut rest = body;
    let mut packets = Vec::new();
    while let Some((&kind, after_kind)) = rest.split_first() {
        let end = after_kind
            .iter()
            .position(|&b| b == V3_BINARY_LENGTH_END)
            .ok_or(BadPacket::Payload("a binary packet without its length"))?;
        let mut length = 0usize;
        for &digit in &after_kind[..end] {
            if digit > 9 {
                return Err(BadPacket::Payload("a length digit over 9"));
            }
            length = length
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(digit)))
                .ok_or(BadPacket::Payload("a length too large"))?;
        }
        let body = &after_kind[end + 1..];
        if body.len() < length {
            return Err(BadPacket::Payload("a length past the end of the payload"));
        }
        let (packet, next) = body.split_at(length);
        packets.push(match kind {
            0 => Received::Text(
                std::str::from_utf8(packet)
                    .map_err(|_| BadPacket::NotUtf8)?
                    .to_owned(),
            ),
            1 => match packet.split_first() {
                Some((&V3_MESSAGE_TYPE, data)) => Received::Binary(Bytes::copy_from_slice(data)),
                Some((&other, _)) => return Err(BadPacket::UnknownBinaryType(other)),
                None => return Err(BadPacket::Empty),
            },
            _ => {
                return Err(BadPacket::Payload(
                    "a packet kind other than text or binary",
                ));
            }
        });
        rest = next;
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Received {
        Received::Text(s.to_owned())
    }

    #[test]
    fn protocol_4_separates_packets_and_sends_binary_in_base64() {
        let packets = [
            WirePacket::Text(b'4', "hello"),
            WirePacket::Text(b'2', ""),
            WirePacket::Binary(&[1, 2, 3, 4]),
        ];
        let (body, content_type) = encode(ProtocolVersion::V4, true, &packets);
        assert_eq!(&body[..], b"4hello\x1e2\x1ebAQIDBA==");
        assert_eq!(content_type, TEXT_CONTENT_TYPE);
        assert_eq!(
            decode(ProtocolVersion::V4, false, body).unwrap(),
            [
                text("4hello"),
                text("2"),
                Received::Binary(Bytes::from_static(&[1, 2, 3, 4]))
            ]
        );
    }

    #[test]
    fn protocol_3_counts_utf16_code_units() {
        let packets = [
            WirePacket::Text(b'4', "hello"),
            WirePacket::Text(b'4', "€😀"),
        ];
        let (body, _) = encode(ProtocolVersion::V3, false, &packets);
        assert_eq!(std::str::from_utf8(&body).unwrap(), "6:4hello4:4€😀");
        assert_eq!(
            decode(ProtocolVersion::V3, false, body).unwrap(),
            [text("4hello"), text("4€😀")]
        );
    }

    #[test]
    fn protocol_3_sends_binary_as_base64_to_clients_without_binary() {
        let packets = [
            WirePacket::Text(b'4', "€"),
            WirePacket::Binary(&[1, 2, 3, 4]),
        ];
        let (body, content_type) = encode(ProtocolVersion::V3, false, &packets);
        assert_eq!(std::str::from_utf8(&body).unwrap(), "2:4€10:b4AQIDBA==");
        assert_eq!(content_type, TEXT_CONTENT_TYPE);
    }

    #[test]
    fn protocol_3_binary_payload_as_the_spec_shows_it() {
        let packets = [
            WirePacket::Text(b'4', "€"),
            WirePacket::Binary(&[1, 2, 3, 4]),
        ];
        let (body, content_type) = encode(ProtocolVersion::V3, true, &packets);
        assert_eq!(
            &body[..],
            [
                0x00, 0x04, 0xff, 0x34, 0xe2, 0x82, 0xac, 0x01, 0x05, 0xff, 0x04, 0x01, 0x02, 0x03,
                0x04
            ]
        );
        assert_eq!(content_type, BINARY_CONTENT_TYPE);
        assert_eq!(
            decode(ProtocolVersion::V3, true, body).unwrap(),
            [
                text("4€"),
                Received::Binary(Bytes::from_static(&[1, 2, 3, 4]))
            ]
        );
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let bad: [(ProtocolVersion, bool, &[u8]); 7] = [
            (ProtocolVersion::V4, true, b"4hello"),
            (ProtocolVersion::V4, false, b"b!!!"),
            (ProtocolVersion::V4, false, &[0xff, 0xfe]),
            (ProtocolVersion::V3, false, b"hello"),
            (ProtocolVersion::V3, false, b"9:4hi"),
            (ProtocolVersion::V3, true, &[0, 9, 9]),
            (ProtocolVersion::V3, true, &[2, 1, 0xff, 4]),
        ];
        for (protocol, binary, body) in bad {
            assert!(
                decode(protocol, binary, Bytes::copy_from_slice(body)).is_err(),
                "{body:?} over {protocol:?}"
            );
        }
    }
}

//! WebSocket frames (RFC 6455): taking them out of what was read, and the
//! headers of those written.
//!
//! The header codec is tungstenite's (`FrameHeader::parse` and `format`):
//! well kept and small, and it works on slices, so frames are parsed in
//! place in the reading thread's buffer and headers are built on the stack.
//! tungstenite's `WebSocket` type is not used: it keeps a read and a write
//! buffer per connection, the memory this crate exists to save.
//!
//! A packet goes out as a header and its engine.io type in a few bytes on
//! the stack ([`Prefix`]), followed by the payload socketioxide encoded
//! once for every recipient, so one `writev` sends it with no copy.

use std::io::Cursor;
use std::ops::Range;

use engineioxide_core::ProtocolVersion;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use crate::outbox::Outgoing;

/// Close codes the server sends (RFC 6455, 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCode {
    Normal = 1000,
    ProtocolError = 1002,
    InvalidData = 1007,
    TooBig = 1009,
}

/// Why a client's frame ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadFrame {
    #[error("a malformed frame header or an unknown opcode")]
    Header,
    #[error("an unmasked frame from a client")]
    Unmasked,
    #[error("reserved bits set without an extension")]
    ReservedBits,
    #[error("a fragmented or oversized control frame")]
    BadControl,
    #[error("a message over the size limit")]
    TooBig,
    #[error("a continuation with nothing to continue, or a new message inside one")]
    BadFragment,
    #[error("a text message that is not UTF-8")]
    NotUtf8,
}

impl BadFrame {
    pub(crate) fn close_code(self) -> CloseCode {
        match self {
            BadFrame::TooBig => CloseCode::TooBig,
            BadFrame::NotUtf8 => CloseCode::InvalidData,
            _ => CloseCode::ProtocolError,
        }
    }
}

/// One frame found in a buffer, its payload unmasked in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    /// Where the payload is in the buffer the frame was parsed from.
    pub(crate) payload: Range<usize>,
    /// Where the next frame starts.
    pub(crate) end: usize,
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Frame(Frame),
    /// Not all there yet; when the header is, the whole frame's length.
    Incomplete(Option<usize>),
}

/// The control frames' payload limit (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Parses the frame at the start of `buf[start..]`, unmasking its payload.
/// Frames whose payload exceeds `max_payload` are refused as soon as their
/// header is read.
pub(crate) fn parse(buf: &mut [u8], start: usize, max_payload: usize) -> Result<Parsed, BadFrame> {
    let mut cursor = Cursor::new(&buf[start..]);
    let (header, length) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(Parsed::Incomplete(None)),
        Err(_) => return Err(BadFrame::Header),
    };
    let header_len = usize::try_from(cursor.position()).map_err(|_| BadFrame::Header)?;
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(BadFrame::ReservedBits);
    }
    let mask = header.mask.ok_or(BadFrame::Unmasked)?;
    if matches!(header.opcode, OpCode::Control(_))
        && (!header.is_final || length > MAX_CONTROL_PAYLOAD)
    {
        return Err(BadFrame::BadControl);
    }
    let length = usize::try_from(length).map_err(|_| BadFrame::TooBig)?;
    if length > max_payload {
        return Err(BadFrame::TooBig);
    }
    let payload_start = start + header_len;
    let end = payload_start + length;
    if buf.len() < end {
        return Ok(Parsed::Incomplete(Some(end - start)));
    }
    unmask(&mut buf[payload_start..end], mask);
    Ok(Parsed::Frame(Frame {
        fin: header.is_final,
        opcode: header.opcode,
        payload: payload_start..end,
        end,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// The bytes before a packet's payload: the frame header, then, for text,
/// the engine.io packet type. At most 10 header bytes and one type byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefix {
    bytes: [u8; 12],
    len: u8,
}

impl Prefix {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn new(opcode: OpCode, payload_len: usize, packet_type: Option<u8>) -> Self {
        let mut bytes = [0u8; 12];
        let frame_len = payload_len + usize::from(packet_type.is_some());
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let mut cursor = Cursor::new(&mut bytes[..]);
        // Ten bytes always hold an unmasked header, so this cannot fail.
        let _ = header.format(frame_len as u64, &mut cursor);
        let mut len = cursor.position() as usize;
        if let Some(kind) = packet_type {
            bytes[len] = kind;
            len += 1;
        }
        Self {
            bytes,
            len: len as u8,
        }
    }
}

/// How `packet` is framed for a client of `protocol`: a prefix and the
/// payload bytes, which are shared with every other recipient.
pub(crate) fn encode(packet: &Outgoing, protocol: ProtocolVersion) -> (Prefix, &[u8]) {
    const TEXT: OpCode = OpCode::Data(Data::Text);
    const BINARY: OpCode = OpCode::Data(Data::Binary);
    match packet {
        Outgoing::Message(msg) => (Prefix::new(TEXT, msg.len(), Some(b'4')), msg.as_bytes()),
        Outgoing::Binary(data) => match protocol {
            ProtocolVersion::V4 => (Prefix::new(BINARY, data.len(), None), data),
            // Protocol 3 puts the packet type before binary data too.
            ProtocolVersion::V3 => (Prefix::new(BINARY, data.len(), Some(4)), data),
        },
        Outgoing::Ping => (Prefix::new(TEXT, 0, Some(b'2')), &[]),
        Outgoing::Pong => (Prefix::new(TEXT, 0, Some(b'3')), &[]),
        Outgoing::Open(handshake) => (
            Prefix::new(TEXT, handshake.len(), Some(b'0')),
            handshake.as_bytes(),
        ),
        Outgoing::WebSocketPong(payload) => (
            Prefix::new(OpCode::Control(Control::Pong), payload.len(), None),
            payload,
        ),
    }
}

/// A whole text frame, for the few the connection writes itself.
pub(crate) fn text_frame(text: &str) -> Vec<u8> {
    let prefix = Prefix::new(OpCode::Data(Data::Text), text.len(), None);
    [prefix.as_bytes(), text.as_bytes()].concat()
}

/// A close frame with `code` and no reason.
pub(crate) fn close_frame(code: CloseCode) -> [u8; 4] {
    let [high, low] = (code as u16).to_be_bytes();
    [0x88, 0x02, high, low]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use engineioxide_core::Str;

    /// A frame as a client sends it: masked.
    fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![first_byte];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn a_masked_text_frame_is_found_and_unmasked_in_place() {
        let mut buf = client_frame(0x81, b"4hello");
        buf.extend_from_slice(&client_frame(0x81, b"3"));
        let Parsed::Frame(first) = parse(&mut buf, 0, 1024).unwrap() else {
            panic!("a whole frame")
        };
        assert!(first.fin);
        assert_eq!(first.opcode, OpCode::Data(Data::Text));
        assert_eq!(&buf[first.payload.clone()], b"4hello");
        let Parsed::Frame(second) = parse(&mut buf, first.end, 1024).unwrap() else {
            panic!("a whole frame")
        };
        assert_eq!(&buf[second.payload], b"3");
        assert_eq!(second.end, buf.len());
    }

    #[test]
    fn a_partial_frame_says_how_long_it_will_be() {
        let whole = client_frame(0x81, &[b'x'; 300]);
        let mut head = whole[..1].to_vec();
        assert_eq!(parse(&mut head, 0, 1024), Ok(Parsed::Incomplete(None)));
        let mut part = whole[..100].to_vec();
        assert_eq!(
            parse(&mut part, 0, 1024),
            Ok(Parsed::Incomplete(Some(whole.len())))
        );
    }

    #[test]
    fn frames_a_server_must_refuse() {
        let cases: [(Vec<u8>, BadFrame); 4] = [
            (vec![0x81, 0x01, b'4'], BadFrame::Unmasked),
            (client_frame(0xc1, b"4"), BadFrame::ReservedBits),
            (client_frame(0x83, b"4"), BadFrame::Header),
            (client_frame(0x09, b"ping"), BadFrame::BadControl),
        ];
        for (mut frame, expected) in cases {
            assert_eq!(parse(&mut frame, 0, 1024), Err(expected));
        }
        let mut big = client_frame(0x81, &[b'x'; 2000]);
        assert_eq!(parse(&mut big[..8], 0, 1024), Err(BadFrame::TooBig));
    }

    #[test]
    fn a_message_is_a_header_the_type_and_the_shared_payload() {
        let message = Outgoing::Message(Str::from("0123456789"));
        let (prefix, payload) = encode(&message, ProtocolVersion::V4);
        assert_eq!(prefix.as_bytes(), [0x81, 11, b'4']);
        assert_eq!(payload, b"0123456789");

        let long = Outgoing::Message(Str::from("x".repeat(200)));
        let (prefix, _) = encode(&long, ProtocolVersion::V4);
        assert_eq!(prefix.as_bytes(), [0x81, 126, 0, 201, b'4']);

        let binary = Outgoing::Binary(Bytes::from_static(&[1, 2]));
        assert_eq!(encode(&binary, ProtocolVersion::V4).0.as_bytes(), [0x82, 2]);
        assert_eq!(
            encode(&binary, ProtocolVersion::V3).0.as_bytes(),
            [0x82, 3, 4]
        );
        assert_eq!(
            encode(&Outgoing::Ping, ProtocolVersion::V4).0.as_bytes(),
            [0x81, 1, b'2']
        );
    }

    #[test]
    fn frames_the_connection_writes_itself() {
        assert_eq!(text_frame("3probe"), b"\x81\x063probe");
        let pong = Outgoing::WebSocketPong(Bytes::from_static(b"hi"));
        let (prefix, payload) = encode(&pong, ProtocolVersion::V4);
        assert_eq!([prefix.as_bytes(), payload].concat(), [0x8a, 2, b'h', b'i']);
        assert_eq!(close_frame(CloseCode::TooBig), [0x88, 2, 0x03, 0xf1]);
    }
}

//! Feeds arbitrary bytes to the publish-socket decoder the way the daemon
//! does (push-core/src/ingest/connection.rs and session.rs): split the
//! stream into frames with `frame::check` under a size limit, read each
//! body's header, decode the request, and answer it.
//!
//! What must hold for every input:
//! - nothing panics, and nothing allocates more than the input justifies
//!   (libFuzzer's -rss_limit_mb catches that);
//! - `check` never reports a frame longer than the buffer or the limit;
//! - a request that decodes re-encodes to exactly the bytes it came from,
//!   and those decode to the same request;
//! - every reply the daemon could send for it encodes and decodes back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use push_client::protocol::frame::{self, FrameHeader, LENGTH_PREFIX_LEN};
use push_client::protocol::wire::{DecodeError, Reader};
use push_client::{ErrorCode, PROTOCOL_VERSION, Reply, Request};

/// Small, so that inputs can reach both sides of the limit.
const MAX_BODY: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let mut buffer = data;
    loop {
        match frame::check(buffer, MAX_BODY) {
            Ok(Some(total)) => {
                assert!(total >= LENGTH_PREFIX_LEN && total <= buffer.len());
                assert!(total - LENGTH_PREFIX_LEN <= MAX_BODY as usize);
                answer(&buffer[LENGTH_PREFIX_LEN..total]);
                buffer = &buffer[total..];
            }
            // A partial frame: the daemon waits for more bytes.
            Ok(None) => break,
            // The daemon answers frame_too_large and closes.
            Err(_) => break,
        }
    }
});

/// What the daemon's session does with one body.
fn answer(body: &[u8]) {
    let mut reader = Reader::new(body);
    let Ok(header) = FrameHeader::read(&mut reader) else {
        error_reply(0, "header");
        return;
    };
    match Request::decode(header.kind, reader) {
        Ok(request) => {
            let mut encoded = Vec::new();
            request
                .encode(header.request_id, MAX_BODY, &mut encoded)
                .expect("a decoded request fits the limit it was decoded under");
            assert_eq!(
                &encoded[LENGTH_PREFIX_LEN..],
                body,
                "re-encoding is byte-exact"
            );
            let mut again = Reader::new(&encoded[LENGTH_PREFIX_LEN..]);
            let header_again = FrameHeader::read(&mut again).unwrap();
            assert_eq!(header_again, header);
            assert_eq!(Request::decode(header.kind, again).unwrap(), request);
        }
        Err(DecodeError::UnknownKind(kind)) => {
            assert!(!(0x01..=0x05).contains(&kind));
            error_reply(header.request_id, "unknown operation");
        }
        Err(error) => error_reply(header.request_id, &error.to_string()),
    }
}

/// The error reply the daemon would send round-trips.
fn error_reply(request_id: u32, message: &str) {
    let reply = Reply::Error {
        code: ErrorCode::MALFORMED_FRAME,
        message,
    };
    let mut out = Vec::new();
    reply.encode(PROTOCOL_VERSION, request_id, &mut out).unwrap();
    let total = frame::check(&out, u32::MAX).unwrap().unwrap();
    assert_eq!(total, out.len());
    let mut reader = Reader::new(&out[LENGTH_PREFIX_LEN..]);
    let header = FrameHeader::read(&mut reader).unwrap();
    assert_eq!(header.request_id, request_id);
    assert_eq!(
        Reply::decode(PROTOCOL_VERSION, header.kind, reader).unwrap(),
        reply
    );
}

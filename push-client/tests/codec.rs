//! Round trips and hostile input for the frame codec.

use std::borrow::Cow;

use proptest::prelude::*;
use push_client::protocol::frame::{self, FrameHeader, LENGTH_PREFIX_LEN};
use push_client::protocol::wire::Reader;
use push_client::{ErrorCode, Publish, Reply, Request, Target};

/// Splits one encoded frame back into header and body reader.
fn open_frame(bytes: &[u8]) -> (FrameHeader, Reader<'_>) {
    let total = frame::check(bytes, u32::MAX)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(total, bytes.len(), "exactly one frame was encoded");
    let mut reader = Reader::new(&bytes[LENGTH_PREFIX_LEN..total]);
    let header = FrameHeader::read(&mut reader).unwrap();
    (header, reader)
}

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..5)
}

fn cows(list: &[String]) -> Vec<Cow<'_, str>> {
    list.iter().map(|s| Cow::Borrowed(s.as_str())).collect()
}

proptest! {
    #[test]
    fn publish_round_trips(
        id in any::<u32>(),
        namespace in text(),
        event in text(),
        users in names(),
        rooms in names(),
        except in names(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let request = Request::Publish(Publish {
            namespace: &namespace,
            event: &event,
            target: Target { users: cows(&users), rooms: cows(&rooms), except_users: cows(&except) },
            payload: &payload,
        });
        let mut bytes = Vec::new();
        request.encode(id, u32::MAX, &mut bytes).unwrap();
        let (header, reader) = open_frame(&bytes);
        prop_assert_eq!(header.request_id, id);
        prop_assert_eq!(Request::decode(header.kind, reader).unwrap(), request);
    }

    #[test]
    fn replies_round_trip(id in any::<u32>(), n in any::<u32>(), code in any::<u16>(), message in text()) {
        for reply in [
            Reply::Hello { version: 1, max_frame_size: n, server: &message },
            Reply::Pong,
            Reply::Published { recipients: n },
            Reply::Online { connections: n },
            Reply::Stats { json: &message },
            Reply::Error { code: ErrorCode(code), message: &message },
        ] {
            let mut bytes = Vec::new();
            reply.encode(id, &mut bytes).unwrap();
            let (header, reader) = open_frame(&bytes);
            prop_assert_eq!(header.request_id, id);
            prop_assert_eq!(Reply::decode(header.kind, reader).unwrap(), reply);
        }
    }

    /// Whatever the bytes, decoding answers Ok or Err and never panics or
    /// allocates beyond the input.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(Some(total)) = frame::check(&bytes, 1024) {
            let mut reader = Reader::new(&bytes[LENGTH_PREFIX_LEN..total]);
            if let Ok(header) = FrameHeader::read(&mut reader) {
                let _ = Request::decode(header.kind, reader);
            }
        }
        let mut reader = Reader::new(&bytes);
        if let Ok(header) = FrameHeader::read(&mut reader) {
            let _ = Request::decode(header.kind, reader);
        }
    }

    /// Every strict prefix of a valid request is either incomplete or refused.
    #[test]
    fn truncated_frames_are_never_accepted(event in text(), cut in any::<prop::sample::Index>()) {
        let request = Request::Publish(Publish {
            namespace: "/", event: &event, target: Target::users(["42"]), payload: b"{}",
        });
        let mut bytes = Vec::new();
        request.encode(7, u32::MAX, &mut bytes).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(frame::check(&bytes[..cut], u32::MAX), Ok(None));
    }
}

#[test]
fn a_lying_list_count_is_refused_without_allocating() {
    // kind PUBLISH, namespace "/", event "e", then users count 65535 with no entries.
    let body = [0x03, 0, 0, 0, 1, 0, 1, b'/', 0, 1, b'e', 0xff, 0xff];
    let mut reader = Reader::new(&body);
    let header = FrameHeader::read(&mut reader).unwrap();
    assert!(Request::decode(header.kind, reader).is_err());
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = Vec::new();
    Request::Ping.encode(1, u32::MAX, &mut bytes).unwrap();
    bytes.push(0);
    bytes[3] += 1;
    let (header, reader) = open_frame(&bytes);
    assert!(Request::decode(header.kind, reader).is_err());
}

#[test]
fn unknown_kind_is_named() {
    let reader = Reader::new(&[]);
    let error = Request::decode(0x7f, reader).unwrap_err();
    assert_eq!(error.to_string(), "unknown message kind 0x7f");
}

#[test]
fn oversized_request_is_refused_at_encode() {
    let payload = vec![b' '; 2000];
    let request = Request::Publish(Publish {
        namespace: "/",
        event: "e",
        target: Target::everyone(),
        payload: &payload,
    });
    let mut bytes = Vec::new();
    assert!(request.encode(1, 1024, &mut bytes).is_err());
    assert!(bytes.is_empty());
}

/// The worked example in docs/protocol.md, byte for byte.
#[test]
fn documented_example_matches() {
    let request = Request::Publish(Publish {
        namespace: "/",
        event: "news",
        target: Target::everyone(),
        payload: br#"{"n":1}"#,
    });
    let mut bytes = Vec::new();
    request.encode(1, u32::MAX, &mut bytes).unwrap();
    let expected: Vec<u8> = [
        &[0, 0, 0, 0x1f, 0x03, 0, 0, 0, 1][..],
        &[0, 1, b'/'],
        &[0, 4, b'n', b'e', b'w', b's'],
        &[0, 0, 0, 0, 0, 0],
        &[0, 0, 0, 7],
        br#"{"n":1}"#,
    ]
    .concat();
    assert_eq!(bytes, expected);

    let mut reply = Vec::new();
    Reply::Published { recipients: 3 }
        .encode(1, &mut reply)
        .unwrap();
    assert_eq!(reply, [0, 0, 0, 9, 0x83, 0, 0, 0, 1, 0, 0, 0, 3]);
}

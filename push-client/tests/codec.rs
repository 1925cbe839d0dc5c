//! Round trips and hostile input for the frame codec.

use std::borrow::Cow;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use push_client::protocol::count_flags;
use push_client::protocol::frame::{self, FrameError, FrameHeader, LENGTH_PREFIX_LEN};
use push_client::protocol::wire::{DecodeError, Reader};
use push_client::{ErrorCode, PROTOCOL_VERSION, Publish, Reply, Request, Target};

/// The frame size limit the hostile-input tests frame with.
const FRAME_LIMIT: u32 = 1024;

/// The most heap bytes decoding may hold per byte of body.
///
/// Only lists allocate. Each entry takes at least two bytes of body (its
/// length), and is held as a `&str` in a vector that may have grown to twice
/// the entries it holds, then copied into a `Cow<str>`: per two bytes of
/// body, at most two `&str` and one `Cow<str>`. A decoder that trusted a
/// count and reserved for it would hold up to 65,535 entries for a body of
/// a dozen bytes.
const HEAP_PER_BODY_BYTE: usize = (2 * size_of::<&str>() + size_of::<Cow<'_, str>>()) / 2;

/// Counts the heap each thread holds, so a test can see the most that a
/// piece of code held at once. The test threads run side by side, so the
/// count is per thread.
///
/// Unsafe, though unsafe code is otherwise kept to the FFI layers: a global
/// allocator is the one place every allocation passes through, and
/// implementing one is unsafe by definition. It lives only in this test
/// binary, adds bookkeeping and forwards every call to the system allocator
/// unchanged.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    #[global_allocator]
    static COUNTING: Counting = Counting;

    thread_local! {
        /// Bytes allocated minus bytes freed since the measurement began:
        /// negative when memory from before it was freed.
        static HELD: Cell<isize> = const { Cell::new(0) };
        /// The most `HELD` reached since the measurement began.
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn record(change: isize) {
        // `try_with`: an allocation while the thread is torn down is not
        // counted, rather than aborting.
        let _ = HELD.try_with(|held| {
            let now = held.get() + change;
            held.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    fn size(bytes: usize) -> isize {
        isize::try_from(bytes).unwrap_or(isize::MAX)
    }

    // SAFETY: every method forwards to `System` with the caller's own
    // arguments, so `System` upholds the contract; the bookkeeping touches
    // only thread-locals that need no allocation and have no destructor.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as received.
            let pointer = unsafe { System.alloc(layout) };
            if !pointer.is_null() {
                record(size(layout.size()));
            }
            pointer
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as received.
            let pointer = unsafe { System.alloc_zeroed(layout) };
            if !pointer.is_null() {
                record(size(layout.size()));
            }
            pointer
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            // SAFETY: forwarded as received.
            unsafe { System.dealloc(pointer, layout) };
            record(-size(layout.size()));
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded as received.
            let moved = unsafe { System.realloc(pointer, layout, new_size) };
            if !moved.is_null() {
                record(size(new_size) - size(layout.size()));
            }
            moved
        }
    }

    /// Runs `f` and returns its result with the most bytes it held on the
    /// heap at once, counting what it returns.
    pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
        HELD.with(|held| held.set(0));
        PEAK.with(|peak| peak.set(0));
        let result = f();
        let peak = PEAK.with(Cell::get);
        (result, usize::try_from(peak).unwrap_or(0))
    }
}

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

/// Decodes `body` as a request, header included.
fn decode_request(body: &[u8]) -> Result<(FrameHeader, Request<'_>), DecodeError> {
    let mut reader = Reader::new(body);
    let header = FrameHeader::read(&mut reader)?;
    Ok((header, Request::decode(header.kind, reader)?))
}

/// Decodes `body` as a reply of protocol `version`, header included.
fn decode_reply(version: u16, body: &[u8]) -> Result<(FrameHeader, Reply<'_>), DecodeError> {
    let mut reader = Reader::new(body);
    let header = FrameHeader::read(&mut reader)?;
    Ok((header, Reply::decode(version, header.kind, reader)?))
}

/// Bytes for the decoder to choke on: random ones, and valid publish frames
/// with a few bytes overwritten, which get past the header into lying
/// counts, lengths and length prefixes far more often than random bytes do.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let name = || "[a-z0-9]{0,12}";
    let names = move || prop::collection::vec(name(), 0..8);
    let publish_frame = (
        name(),
        name(),
        names(),
        names(),
        names(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(namespace, event, users, rooms, except, payload)| {
            let mut bytes = Vec::new();
            Request::Publish(Publish {
                namespace: &namespace,
                event: &event,
                target: Target {
                    users: cows(&users),
                    rooms: cows(&rooms),
                    except_users: cows(&except),
                },
                payload: &payload,
            })
            .encode(1, u32::MAX, &mut bytes)
            .unwrap();
            bytes
        });
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (publish_frame, edits).prop_map(|(mut bytes, edits)| {
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        }),
    ]
}

/// Checks what `frame::check` says of `bytes` against their length prefix,
/// and returns the whole frame's length if there is one.
///
/// A reader buffers until `check` finds a whole frame, so "needs more" for
/// a prefix over the limit would have it buffer whatever the prefix claims.
fn check_within_limit(bytes: &[u8]) -> Result<Option<usize>, TestCaseError> {
    let checked = frame::check(bytes, FRAME_LIMIT);
    let Some(prefix) = bytes.first_chunk::<LENGTH_PREFIX_LEN>() else {
        prop_assert_eq!(checked, Ok(None), "a partial length prefix needs more");
        return Ok(None);
    };
    let declared = u32::from_be_bytes(*prefix);
    let whole = LENGTH_PREFIX_LEN + declared as usize;
    match checked {
        Err(FrameError::TooLarge { len, max }) => {
            prop_assert!(declared > FRAME_LIMIT, "refused a {declared}-byte body");
            prop_assert_eq!((len, max), (u64::from(declared), FRAME_LIMIT));
            Ok(None)
        }
        Ok(None) => {
            prop_assert!(
                declared <= FRAME_LIMIT,
                "asked to buffer a {declared}-byte body"
            );
            prop_assert!(bytes.len() < whole, "needs more with the whole frame there");
            Ok(None)
        }
        Ok(Some(total)) => {
            prop_assert!(declared <= FRAME_LIMIT, "accepted a {declared}-byte body");
            prop_assert_eq!(total, whole);
            Ok(Some(total))
        }
    }
}

/// Decodes `body` as a request and as a reply, checking the heap each held
/// and that whatever was accepted encodes back to exactly `body`.
fn decode_within_bounds(body: &[u8]) -> Result<(), TestCaseError> {
    let bound = body.len() * HEAP_PER_BODY_BYTE;

    let (request, peak) = heap::peak_during(|| decode_request(body));
    prop_assert!(
        peak <= bound,
        "a request decode held {peak} bytes for a {}-byte body",
        body.len()
    );
    if let Ok((header, request)) = request {
        let mut encoded = Vec::new();
        request
            .encode(header.request_id, u32::MAX, &mut encoded)
            .unwrap();
        prop_assert_eq!(&encoded[LENGTH_PREFIX_LEN..], body);
    }

    for version in [1, PROTOCOL_VERSION] {
        let (reply, peak) = heap::peak_during(|| decode_reply(version, body));
        prop_assert!(
            peak <= bound,
            "a reply decode held {peak} bytes for a {}-byte body",
            body.len()
        );
        if let Ok((header, reply)) = reply {
            let mut encoded = Vec::new();
            reply
                .encode(version, header.request_id, &mut encoded)
                .unwrap();
            let encoded = &encoded[LENGTH_PREFIX_LEN..];
            if has_count_flags(version, &reply) {
                // Reserved flag bits are ignored when read, so they do not
                // come back; everything else does.
                let (flags, rest) = body.split_last().unwrap();
                prop_assert_eq!(&encoded[..rest.len()], rest);
                prop_assert_eq!(encoded[rest.len()], flags & count_flags::PARTIAL);
            } else {
                prop_assert_eq!(encoded, body);
            }
        }
    }
    Ok(())
}

/// Whether `reply`, in `version`, ends with the flags byte of a count.
fn has_count_flags(version: u16, reply: &Reply<'_>) -> bool {
    version >= 2 && matches!(reply, Reply::Published { .. } | Reply::Online { .. })
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
    fn replies_round_trip(
        id in any::<u32>(),
        n in any::<u32>(),
        partial in any::<bool>(),
        code in any::<u16>(),
        message in text(),
    ) {
        for reply in [
            Reply::Hello { version: PROTOCOL_VERSION, max_frame_size: n, server: &message },
            Reply::Pong,
            Reply::Published { recipients: n, partial },
            Reply::Online { connections: n, partial },
            Reply::Stats { json: &message },
            Reply::Error { code: ErrorCode(code), message: &message },
        ] {
            let mut bytes = Vec::new();
            reply.encode(PROTOCOL_VERSION, id, &mut bytes).unwrap();
            let (header, reader) = open_frame(&bytes);
            prop_assert_eq!(header.request_id, id);
            prop_assert_eq!(Reply::decode(PROTOCOL_VERSION, header.kind, reader).unwrap(), reply);
        }
    }

    /// Version 1 has no flags byte: a count goes out alone and comes back
    /// never partial.
    #[test]
    fn counts_in_version_1_round_trip_without_their_flag(id in any::<u32>(), n in any::<u32>(), partial in any::<bool>()) {
        for (reply, expected) in [
            (Reply::Published { recipients: n, partial }, Reply::Published { recipients: n, partial: false }),
            (Reply::Online { connections: n, partial }, Reply::Online { connections: n, partial: false }),
        ] {
            let mut bytes = Vec::new();
            reply.encode(1, id, &mut bytes).unwrap();
            let (header, reader) = open_frame(&bytes);
            prop_assert_eq!(Reply::decode(1, header.kind, reader).unwrap(), expected);
        }
    }

    /// Whatever the bytes, framing and decoding never panic, a reader is
    /// never asked to buffer more than the frame size limit, the heap that
    /// decoding holds grows with the body and not with the counts and
    /// lengths the body claims, and what is accepted is exactly what the
    /// decoded value encodes to.
    #[test]
    fn garbage_never_panics_nor_overallocates(bytes in garbage()) {
        if let Some(total) = check_within_limit(&bytes)? {
            decode_within_bounds(&bytes[LENGTH_PREFIX_LEN..total])?;
        }
        // The same bytes as a body, as if some frame had carried them.
        decode_within_bounds(&bytes)?;
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
    let (decoded, peak) = heap::peak_during(|| {
        let mut reader = Reader::new(&body);
        let header = FrameHeader::read(&mut reader).unwrap();
        Request::decode(header.kind, reader)
    });
    assert!(decoded.is_err());
    assert_eq!(peak, 0, "bytes held on the heap while refusing");
}

#[test]
fn a_body_of_nothing_but_list_entries_stays_within_the_heap_bound() {
    // The most list entries a body can carry: every user name empty, so
    // each costs only its 2-byte length. Any count of them, up to what
    // fits under the frame limit, must stay within the bound.
    for users in [1, 2, 3, 4, 5, 17, 100, (FRAME_LIMIT as usize - 30) / 2] {
        let names = vec![String::new(); users];
        let request = Request::Publish(Publish {
            namespace: "/",
            event: "e",
            target: Target::users(names.iter().map(String::as_str)),
            payload: b"",
        });
        let mut frame = Vec::new();
        request.encode(1, FRAME_LIMIT, &mut frame).unwrap();
        let body = &frame[LENGTH_PREFIX_LEN..];
        let (decoded, peak) = heap::peak_during(|| decode_request(body));
        assert_eq!(decoded.unwrap().1, request);
        assert!(
            peak <= body.len() * HEAP_PER_BODY_BYTE,
            "{users} users: {peak} bytes held for a body of {}",
            body.len()
        );
    }
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
    let published = Reply::Published {
        recipients: 3,
        partial: true,
    };
    published.encode(1, 1, &mut reply).unwrap();
    assert_eq!(reply, [0, 0, 0, 9, 0x83, 0, 0, 0, 1, 0, 0, 0, 3]);

    // Version 2: the same count, then its flags byte (bit 0: partial).
    reply.clear();
    published.encode(2, 1, &mut reply).unwrap();
    assert_eq!(reply, [0, 0, 0, 10, 0x83, 0, 0, 0, 1, 0, 0, 0, 3, 0x01]);
    reply.clear();
    Reply::Online {
        connections: 2,
        partial: false,
    }
    .encode(2, 4, &mut reply)
    .unwrap();
    assert_eq!(reply, [0, 0, 0, 10, 0x84, 0, 0, 0, 4, 0, 0, 0, 2, 0x00]);
}

#[test]
fn reserved_count_flags_are_ignored_and_a_missing_flags_byte_is_refused() {
    // ONLINE, request 4, 2 connections, flags 0xfe: every bit but partial.
    let body = [0x84, 0, 0, 0, 4, 0, 0, 0, 2, 0xfe];
    let (_, reply) = decode_reply(2, &body).unwrap();
    assert_eq!(
        reply,
        Reply::Online {
            connections: 2,
            partial: false
        }
    );
    let (_, reply) = decode_reply(2, &[0x84, 0, 0, 0, 4, 0, 0, 0, 2, 0xff]).unwrap();
    assert_eq!(
        reply,
        Reply::Online {
            connections: 2,
            partial: true
        }
    );
    // A version 1 body read as version 2 lacks its flags; as version 1 the
    // flags byte is a trailing byte. Either way, refused, never misread.
    assert!(decode_reply(2, &body[..9]).is_err());
    assert!(decode_reply(1, &body).is_err());
}

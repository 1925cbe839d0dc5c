//! Writing a WebSocket session's queue, by whoever holds the writer place:
//! the connection's task, or a flush after a corked burst
//! ([`crate::cork`]).
//!
//! A writer takes up to [`BATCH`] packets out of the outbox under its lock
//! and marks the place taken; it writes them with one `writev` without the
//! lock, so emitters keep queueing meanwhile; then it puts back in front
//! what the socket did not take, remembering how much of the first packet
//! went out. It goes on until the queue is empty or the socket is full.
//! A flush leaves a full socket to the connection's task, which waits until
//! the socket can take more.

use std::io::{self, IoSlice};
use std::task::Waker;

use engineioxide_core::ProtocolVersion;

use super::frame;
use crate::outbox::{Outbox, Outgoing, wake};
use crate::socket::DisconnectReason;

/// Packets written with one `writev`: two slices each (prefix and shared
/// payload), far under the kernel's limit of 1024 slices.
const BATCH: usize = 64;

/// Who is writing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer<'a> {
    /// The connection's task, which waits for `waker` (packets or room).
    Task(&'a Waker),
    /// A flush after a corked burst.
    Flush,
}

/// How writing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Nothing is left to write.
    Drained,
    /// Another writer holds the place; it writes what is queued.
    Busy,
    /// The socket takes no more for now.
    Blocked,
    /// A flush found the stream detached: the connection is closing.
    Detached,
    /// The stream failed; the session is closing.
    Failed,
}

/// Writes `outbox`'s packets with `write` (one `writev`, returning
/// `WouldBlock` when the socket is full) until one of [`Written`] happens.
pub(crate) fn write_queued(
    outbox: &Outbox,
    protocol: ProtocolVersion,
    writer: Writer<'_>,
    mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> Written {
    loop {
        let mut batch: [Option<Outgoing>; BATCH] = [const { None }; BATCH];
        let (taken, skip) = {
            let mut state = outbox.lock();
            match writer {
                Writer::Flush => {
                    state.flushing();
                    if !state.stream_attached {
                        return Written::Detached;
                    }
                    if state.write_blocked {
                        return Written::Blocked;
                    }
                }
                Writer::Task(waker) => {
                    // The task writes again once it could; it hears of new
                    // packets, and of a writer leaving, through its waker.
                    state.write_blocked = false;
                    state.wait_as_reader(waker);
                }
            }
            if state.writing {
                return Written::Busy;
            }
            let mut taken = 0;
            while taken < BATCH
                && let Some(packet) = state.queue.pop_front()
            {
                batch[taken] = Some(packet);
                taken += 1;
            }
            if taken == 0 {
                return Written::Drained;
            }
            state.writing = true;
            (taken, state.head_written)
        };
        let batch = &mut batch[..taken];
        let result = write_batch(batch, skip, protocol, &mut write);
        let (outcome, reader) = {
            let mut state = outbox.lock();
            state.writing = false;
            let outcome = match result {
                Ok(written) => {
                    state.head_written = consume(batch, skip, written, protocol);
                    None
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    state.write_blocked = true;
                    Some(Written::Blocked)
                }
                Err(error) => {
                    tracing::debug!(%error, "writing to a WebSocket failed");
                    Some(Written::Failed)
                }
            };
            state.unwrite(batch.iter_mut().filter_map(Option::take));
            let outcome = match outcome {
                None if !state.stream_attached && matches!(writer, Writer::Flush) => {
                    Some(Written::Detached)
                }
                other => other,
            };
            // A flush that stops hands the session back to its task: to wait
            // for room, to close, or to finish detaching.
            let reader = match (writer, outcome) {
                (Writer::Flush, Some(_)) => state.take_reader(),
                _ => None,
            };
            (outcome, reader)
        };
        wake(reader);
        match outcome {
            None => continue,
            Some(Written::Failed) => {
                outbox.close(DisconnectReason::TransportError);
                return Written::Failed;
            }
            Some(outcome) => return outcome,
        }
    }
}

/// Writes as much of `batch` as the socket takes, in one `writev`;
/// `skip` bytes of the first packet were written before.
fn write_batch(
    batch: &[Option<Outgoing>],
    mut skip: usize,
    protocol: ProtocolVersion,
    write: &mut impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut framed = [None; BATCH];
    for (slot, packet) in framed.iter_mut().zip(batch.iter().flatten()) {
        *slot = Some(frame::encode(packet, protocol));
    }
    let mut slices: [IoSlice<'_>; 2 * BATCH] = [IoSlice::new(&[]); 2 * BATCH];
    let mut count = 0;
    for (prefix, payload) in framed.iter().flatten() {
        for part in [prefix.as_bytes(), *payload] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
        }
    }
    match write(&slices[..count]) {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        result => result,
    }
}

/// Clears the packets of `batch` that `written` bytes (after `skip` of the
/// first) sent whole; returns how much of the next one went out.
fn consume(
    batch: &mut [Option<Outgoing>],
    skip: usize,
    written: usize,
    protocol: ProtocolVersion,
) -> usize {
    let mut left = written + skip;
    for slot in batch.iter_mut() {
        let Some(packet) = slot else { break };
        let (prefix, payload) = frame::encode(packet, protocol);
        let length = prefix.as_bytes().len() + payload.len();
        if left < length {
            return left;
        }
        left -= length;
        *slot = None;
    }
    0
}

#[cfg(test)]
mod tests {
    use engineioxide_core::Str;

    use super::*;

    fn queue(outbox: &Outbox, texts: &[&'static str]) {
        for text in texts {
            outbox.push(Outgoing::Message(Str::from(*text))).unwrap();
        }
    }

    fn frames(texts: &[&str]) -> Vec<u8> {
        texts
            .iter()
            .flat_map(|t| frame::text_frame(&format!("4{t}")))
            .collect()
    }

    #[test]
    fn everything_queued_goes_out_in_order_however_the_socket_takes_it() {
        let outbox = Outbox::new(16);
        outbox.attach(std::sync::Weak::<Nothing>::new());
        queue(&outbox, &["one", "two", "three"]);
        let mut sent = Vec::new();
        // A socket that takes 4 bytes a call, then is full every other call.
        let mut calls = 0;
        let mut outcome = Written::Blocked;
        while outcome == Written::Blocked {
            outcome = write_queued(&outbox, ProtocolVersion::V4, Writer::Flush, |slices| {
                calls += 1;
                if calls % 2 == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let all: Vec<u8> = slices.iter().flat_map(|s| s.to_vec()).collect();
                let taken = all.len().min(4);
                sent.extend_from_slice(&all[..taken]);
                Ok(taken)
            });
            outbox.lock().write_blocked = false;
        }
        assert_eq!(outcome, Written::Drained);
        assert_eq!(sent, frames(&["one", "two", "three"]));
    }

    #[test]
    fn a_flush_leaves_a_detached_stream_alone() {
        let outbox = Outbox::new(16);
        queue(&outbox, &["one"]);
        let outcome = write_queued(&outbox, ProtocolVersion::V4, Writer::Flush, |_| {
            panic!("written to a detached stream")
        });
        assert_eq!(outcome, Written::Detached);
    }

    #[test]
    fn a_failed_write_closes_the_session() {
        let outbox = Outbox::new(16);
        outbox.attach(std::sync::Weak::<Nothing>::new());
        queue(&outbox, &["one"]);
        let outcome = write_queued(&outbox, ProtocolVersion::V4, Writer::Flush, |_| {
            Err(io::ErrorKind::BrokenPipe.into())
        });
        assert_eq!(outcome, Written::Failed);
        assert!(outbox.is_closing_or_closed());
    }

    struct Nothing;

    impl crate::cork::Flush for Nothing {
        fn flush(&self) {}
    }
}

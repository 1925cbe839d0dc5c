//! What a session shares between the tasks that touch it: the packets
//! waiting to go out, whether it is closing, and who waits for what.
//!
//! Three kinds of task meet here. Emitters (socketioxide, on behalf of a
//! publish) push packets. The *reader*, the one task that takes packets to
//! the client, drains them: the connection's task on WebSocket, or the
//! pending GET on long-polling. A polling session also has a *keeper* task
//! for its heartbeat and its end. Each waits on its own waker, taken out
//! and woken after the lock is released.
//!
//! The queue holds at most `max_buffer_size` data packets (the
//! slow-consumer bound socketioxide reports as a full channel); heartbeat
//! and other control packets go past the bound, so a busy connection is not
//! dropped for a missed ping. An idle connection's queue owns no memory:
//! one packet fits in place, and the overflow's allocation is dropped once
//! drained.
//!
//! A WebSocket session's stream is *attached* here once it serves the
//! session: packets queued inside a corked burst ([`crate::cork`]) are then
//! written by a flush instead of the connection's task, and whoever writes
//! holds the *writer place* (`writing`), so one writer at a time keeps the
//! frames whole and in order (`websocket::writer`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::Waker;

use bytes::Bytes;
use engineioxide_core::Str;
use tokio::sync::Notify;
use tokio::sync::mpsc::error::TrySendError;

use crate::cork::{self, Flush};
use crate::socket::DisconnectReason;

/// One packet on its way to the client.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A text message (engine.io type 4).
    Message(Str),
    /// A binary message.
    Binary(Bytes),
    /// The server's heartbeat (protocol 4).
    Ping,
    /// The answer to a client's heartbeat (protocol 3).
    Pong,
    /// The open packet of a WebSocket session, first on its stream.
    Open(Str),
    /// A WebSocket pong frame, answering the client's ping frame.
    WebSocketPong(Bytes),
}

impl Outgoing {
    fn is_data(&self) -> bool {
        matches!(self, Outgoing::Message(_) | Outgoing::Binary(_))
    }
}

/// A FIFO with room for one packet in place: the common case of a
/// connection with one message to write allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct PacketQueue {
    first: Option<Outgoing>,
    rest: VecDeque<Outgoing>,
}

impl PacketQueue {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push_back(&mut self, packet: Outgoing) {
        if self.first.is_none() {
            self.first = Some(packet);
        } else {
            self.rest.push_back(packet);
        }
    }

    fn push_front(&mut self, packet: Outgoing) {
        if let Some(first) = self.first.replace(packet) {
            self.rest.push_front(first);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Outgoing> {
        let packet = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.first.is_none() && self.rest.capacity() > 0 {
            // Drained: give the overflow's memory back while idle.
            self.rest = VecDeque::new();
        }
        Some(packet)
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// Closing was asked for: the reader writes what is queued, then ends
    /// the session with this reason.
    Closing(DisconnectReason),
    Closed,
}

/// How far a polling session's upgrade to WebSocket has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Upgrade {
    #[default]
    None,
    /// A WebSocket for this session is open and probing.
    Probing,
    /// The probe was answered: pending polls are answered with a noop.
    Probed,
    /// The WebSocket took over; polling requests are refused.
    Done,
}

/// The state under the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) queue: PacketQueue,
    /// Places promised to permits not yet used.
    reserved: usize,
    pub(crate) phase: Phase,
    reader: Option<Waker>,
    keeper: Option<Waker>,
    /// Polling: a GET is waiting for packets.
    pub(crate) poll_pending: bool,
    /// Polling: a POST is being read.
    pub(crate) post_pending: bool,
    /// Polling: the client's heartbeat packet arrived since the keeper last
    /// looked (a pong in protocol 4, a ping in protocol 3).
    pub(crate) heard_heartbeat: bool,
    pub(crate) upgrade: Upgrade,
    /// WebSocket: the session's stream is attached, for flushes to write.
    pub(crate) stream_attached: bool,
    /// Someone holds the writer place and is writing to the stream.
    pub(crate) writing: bool,
    /// A corked burst noted this session, to be flushed.
    noted: bool,
    /// The socket took no more: the connection's task waits until it can
    /// write again, and flushes leave the session to it.
    pub(crate) write_blocked: bool,
    /// Bytes of the first queued packet an interrupted write already sent.
    pub(crate) head_written: usize,
}

/// A session's shared state; see the module documentation.
#[repr(C)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    closed: Notify,
    capacity: usize,
    /// The session, for a corked burst to note; set when a stream attaches.
    flusher: OnceLock<Weak<dyn Flush>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("state", &self.state)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: PacketQueue::default(),
                reserved: 0,
                phase: Phase::Open,
                reader: None,
                keeper: None,
                poll_pending: false,
                post_pending: false,
                heard_heartbeat: false,
                upgrade: Upgrade::None,
                stream_attached: false,
                writing: false,
                noted: false,
                write_blocked: false,
                head_written: 0,
            }),
            closed: Notify::new(),
            capacity: capacity.max(1),
            flusher: OnceLock::new(),
        }
    }

    /// The lock. A panic while it was held leaves plain data behind, so a
    /// poisoned lock is used as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Promises room for one data packet, or says why there is none.
    pub(crate) fn reserve(&self) -> Result<(), TrySendError<()>> {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return Err(TrySendError::Closed(()));
        }
        if state.queue.len() + state.reserved >= self.capacity {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(())
    }

    /// Gives back a promised place that was not used.
    pub(crate) fn unreserve(&self) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(1);
    }

    /// Queues packets in a promised place; `fill` pushes them in order, so
    /// a message and its attachments are never separated.
    pub(crate) fn push_reserved(&self, fill: impl FnOnce(&mut dyn FnMut(Outgoing))) {
        let next = {
            let mut state = self.lock();
            state.reserved = state.reserved.saturating_sub(1);
            if state.phase != Phase::Open {
                return;
            }
            fill(&mut |packet| state.queue.push_back(packet));
            state.after_push()
        };
        cork::handed();
        self.then(next);
    }

    /// Queues a data packet if there is room.
    pub(crate) fn push(&self, packet: Outgoing) -> Result<(), TrySendError<Outgoing>> {
        let next = {
            let mut state = self.lock();
            if state.phase != Phase::Open {
                return Err(TrySendError::Closed(packet));
            }
            if state.queue.len() + state.reserved >= self.capacity {
                return Err(TrySendError::Full(packet));
            }
            state.queue.push_back(packet);
            state.after_push()
        };
        cork::handed();
        self.then(next);
        Ok(())
    }

    /// Queues a heartbeat packet, past the bound.
    pub(crate) fn push_control(&self, packet: Outgoing) {
        debug_assert!(!packet.is_data());
        let next = {
            let mut state = self.lock();
            if state.phase == Phase::Closed {
                return;
            }
            state.queue.push_back(packet);
            state.after_push()
        };
        self.then(next);
    }

    /// Puts a control packet in front of everything queued, waking no one:
    /// the open packet, before what the handler queued on hearing of the
    /// session.
    pub(crate) fn push_first(&self, packet: Outgoing) {
        debug_assert!(!packet.is_data());
        self.lock().queue.push_front(packet);
    }

    /// Does what [`State::after_push`] decided, once the lock is released.
    fn then(&self, next: AfterPush) {
        match next {
            AfterPush::Wake(waker) => wake(waker),
            AfterPush::Note => {
                if let Some(session) = self.flusher.get().and_then(Weak::upgrade) {
                    cork::note(session);
                }
            }
            AfterPush::Nothing => {}
        }
    }

    /// Attaches the session's stream: from now on corked bursts have
    /// `session` flush what they queue.
    pub(crate) fn attach(&self, session: Weak<dyn Flush>) {
        let _ = self.flusher.set(session);
        self.lock().stream_attached = true;
    }

    /// Detaches the stream, so that the connection's task alone writes to
    /// it from now on (its close frame). `false` while a flush still holds
    /// the writer place; the task is woken when it leaves.
    pub(crate) fn detach(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        state.stream_attached = false;
        if state.writing {
            state.wait_as_reader(waker);
            return false;
        }
        true
    }

    /// Asks the session to close; the first reason given is the one kept.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        let (reader, keeper) = {
            let mut state = self.lock();
            if state.phase != Phase::Open {
                return;
            }
            state.phase = Phase::Closing(reason);
            (state.reader.take(), state.keeper.take())
        };
        wake(reader);
        wake(keeper);
    }

    /// Marks the session closed and wakes whoever waits for that.
    pub(crate) fn mark_closed(&self) {
        let (reader, keeper) = {
            let mut state = self.lock();
            state.phase = Phase::Closed;
            // What is still queued will never be written.
            state.queue = PacketQueue::default();
            (state.reader.take(), state.keeper.take())
        };
        wake(reader);
        wake(keeper);
        self.closed.notify_waiters();
    }

    pub(crate) fn is_closing_or_closed(&self) -> bool {
        self.lock().phase != Phase::Open
    }

    /// Resolves once the session is closed.
    pub(crate) async fn closed(&self) {
        loop {
            // Registered before the check, so a close in between is seen.
            let notified = self.closed.notified();
            if self.lock().phase == Phase::Closed {
                return;
            }
            notified.await;
        }
    }
}

/// What follows a push, once the lock is released.
#[must_use]
pub(crate) enum AfterPush {
    /// Wake the reader (if one waits).
    Wake(Option<Waker>),
    /// Note the session in the corked burst under way.
    Note,
    /// A writer at work, a flush to come, or the connection's task will
    /// write it.
    Nothing,
}

impl State {
    /// Who writes what was just pushed: in a corked burst, a flush of the
    /// session (noted once); otherwise the reader, woken.
    fn after_push(&mut self) -> AfterPush {
        if !self.stream_attached || !cork::is_corked() {
            return AfterPush::Wake(self.reader.take());
        }
        if self.noted || self.writing || self.write_blocked {
            return AfterPush::Nothing;
        }
        self.noted = true;
        AfterPush::Note
    }

    /// A flush starts: the next burst notes the session again.
    pub(crate) fn flushing(&mut self) {
        self.noted = false;
    }

    /// Wakes this waker when packets arrive or the session closes.
    pub(crate) fn wait_as_reader(&mut self, waker: &Waker) {
        set_waker(&mut self.reader, waker);
    }

    /// Wakes this waker when the session closes or the reader signals the
    /// keeper.
    pub(crate) fn wait_as_keeper(&mut self, waker: &Waker) {
        set_waker(&mut self.keeper, waker);
    }

    /// The keeper's waker, to wake after the lock is released.
    pub(crate) fn take_keeper(&mut self) -> Option<Waker> {
        self.keeper.take()
    }

    /// The reader's waker, to wake after the lock is released.
    pub(crate) fn take_reader(&mut self) -> Option<Waker> {
        self.reader.take()
    }

    /// Puts back packets that were taken but not written, in front of what
    /// arrived meanwhile, keeping their order.
    pub(crate) fn unwrite(&mut self, packets: impl DoubleEndedIterator<Item = Outgoing>) {
        for packet in packets.rev() {
            self.queue.push_front(packet);
        }
    }
}

fn set_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(kept) if kept.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

pub(crate) fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &'static str) -> Outgoing {
        Outgoing::Message(Str::from(text))
    }

    fn text(packet: Option<Outgoing>) -> Option<String> {
        match packet {
            Some(Outgoing::Message(m)) => Some(m.as_str().to_owned()),
            Some(other) => Some(format!("{other:?}")),
            None => None,
        }
    }

    #[test]
    fn the_queue_is_first_in_first_out_and_frees_its_overflow() {
        let mut queue = PacketQueue::default();
        for m in ["a", "b", "c"] {
            queue.push_back(message(m));
        }
        assert_eq!(queue.len(), 3);
        queue.push_front(message("z"));
        let drained: Vec<_> = std::iter::from_fn(|| text(queue.pop_front())).collect();
        assert_eq!(drained, ["z", "a", "b", "c"]);
        assert!(queue.is_empty());
        assert_eq!(queue.rest.capacity(), 0);
    }

    #[test]
    fn data_packets_are_bounded_and_heartbeats_are_not() {
        let outbox = Outbox::new(2);
        outbox.push(message("a")).unwrap();
        outbox.reserve().unwrap();
        assert!(matches!(
            outbox.push(message("b")),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(outbox.reserve(), Err(TrySendError::Full(()))));
        outbox.push_control(Outgoing::Ping);
        outbox.push_reserved(|push| push(message("b")));
        assert_eq!(outbox.lock().queue.len(), 3);
    }

    #[test]
    fn nothing_is_queued_once_closing() {
        let outbox = Outbox::new(4);
        outbox.close(DisconnectReason::TransportClose);
        outbox.close(DisconnectReason::HeartbeatTimeout);
        assert_eq!(
            outbox.lock().phase,
            Phase::Closing(DisconnectReason::TransportClose)
        );
        assert!(matches!(
            outbox.push(message("a")),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(outbox.reserve(), Err(TrySendError::Closed(()))));
    }

    #[tokio::test]
    async fn closed_resolves_once_marked_closed() {
        let outbox = std::sync::Arc::new(Outbox::new(4));
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        outbox.mark_closed();
        waiting.await.unwrap();
    }
}

//! One WebSocket connection, served by one task: reading the client's
//! frames, writing the session's packets, and keeping the heartbeat.
//!
//! The task sleeps until one of three things: the socket has bytes to read
//! (or room to write, when a write was cut short), a packet was queued for
//! it outside a corked burst (the session's [`Outbox`](crate::outbox) wakes
//! it), or the heartbeat is due. Each wake-up reads what arrived, writes
//! what is queued ([`writer`](super::writer)), and goes back to sleep.
//! Packets queued in a corked burst are written by a flush instead
//! ([`crate::cork`]); the task steps in when the socket was full.
//!
//! Reads go into a buffer each worker thread owns ([`READ_BUFFER`]); a frame
//! that has not fully arrived is copied out into the connection's own
//! `partial` buffer, which otherwise owns no memory. A frame larger than the
//! thread's buffer is read straight into `partial`, sized to the frame.
//!
//! A WebSocket opened to upgrade a polling session starts by *probing*: it
//! answers the client's `2probe`, has the session's pending poll answered
//! with a noop, and takes the session over at the client's upgrade packet.
//! Until then the session's packets still go out by polling.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use engineioxide_core::{ProtocolVersion, Str, TransportType};
use tokio::time::{Instant, Sleep};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::frame::{self, BadFrame, CloseCode, Parsed};
use super::wire::Wire;
use super::writer::{self, Writer, Written};
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::heartbeat::{Beat, Heartbeat};
use crate::outbox::{Outgoing, Phase, Upgrade, wake};
use crate::packet::{Incoming, PROBE, open_packet};
use crate::socket::{DisconnectReason, Socket};

/// Each worker thread's read buffer. Browsers send little (pongs and the
/// odd socket.io packet), so most reads take a few bytes.
const READ_BUFFER_SIZE: usize = 8 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUFFER_SIZE].into_boxed_slice());
}

/// What a WebSocket is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A session of its own, opened with it.
    Opening,
    /// Taking over a polling session.
    Upgrading,
}

/// Whose packets this WebSocket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The session's: it reads and writes everything.
    Serving,
    /// Still the polling session's: only the probe and the upgrade packet,
    /// by `deadline`.
    Probing { probed: bool, deadline: Instant },
}

/// Why and how the connection ends.
#[derive(Debug)]
pub(crate) struct Ending {
    /// Why the session ends, when it does: a probing WebSocket that fails
    /// ends alone and the session goes on polling.
    reason: Option<DisconnectReason>,
    /// The close frame to send, if the client can still be written to.
    pub(crate) close: Option<CloseCode>,
    /// Whether to read until the client closes too.
    pub(crate) linger: bool,
}

impl Ending {
    /// The client closed or vanished: nothing to send, nothing to wait for.
    fn client_gone(reason: DisconnectReason) -> Self {
        Self {
            reason: Some(reason),
            close: None,
            linger: false,
        }
    }

    /// The server ends it, telling the client why.
    fn server_closes(reason: DisconnectReason, code: CloseCode) -> Self {
        Self {
            reason: Some(reason),
            close: Some(code),
            linger: true,
        }
    }
}

/// A message to hand to the handler once the read buffer is released.
enum Delivery {
    Text(Str),
    Binary(Bytes),
}

/// A message arriving in several frames.
struct Fragments {
    opcode: Data,
    data: Vec<u8>,
}

pub(crate) struct Connection<H: EngineIoHandler> {
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    wire: Wire,
    role: Role,
    heartbeat: Heartbeat,
    /// Bytes of a frame not fully read yet; empty and unallocated otherwise.
    partial: Vec<u8>,
    /// The full length of the frame being read into `partial`, when it does
    /// not fit the thread's buffer.
    large_frame: Option<usize>,
    /// A message arriving in several frames; browsers send none.
    fragments: Option<Box<Fragments>>,
    /// Frames the connection writes itself while no one else can write to
    /// its stream: the probe's answers, and the close frame.
    control: Vec<u8>,
}

impl<H: EngineIoHandler> Connection<H> {
    pub(crate) fn new(
        engine: Arc<Engine<H>>,
        socket: Arc<Socket<H::Data>>,
        mut wire: Wire,
        purpose: Purpose,
    ) -> Self {
        let now = Instant::now();
        let config = &engine.config;
        let heartbeat = Heartbeat::new(
            socket.protocol,
            config.ping_interval,
            config.ping_timeout,
            now,
        );
        let role = match purpose {
            Purpose::Opening => {
                // The open packet goes first, before whatever the handler
                // queued when it heard of the session.
                let handshake = open_packet(socket.id, false, config);
                socket
                    .outbox
                    .push_first(Outgoing::Open(Str::from(handshake)));
                socket.attach(&mut wire);
                Role::Serving
            }
            Purpose::Upgrading => Role::Probing {
                probed: false,
                deadline: now + config.upgrade_timeout,
            },
        };
        Self {
            engine,
            socket,
            wire,
            role,
            heartbeat,
            partial: Vec::new(),
            large_frame: None,
            fragments: None,
            control: Vec::new(),
        }
    }

    /// Takes the frames that came with the upgrade request: bytes hyper
    /// read past it, already the client's.
    pub(crate) fn start(&mut self, early: Bytes) -> Result<(), Ending> {
        if early.is_empty() {
            return Ok(());
        }
        let mut deliveries = Vec::new();
        let mut early = early.to_vec();
        let taken = self.take_frames(&mut early, &mut deliveries);
        self.deliver(deliveries);
        self.keep_partial(&early[taken?..]);
        Ok(())
    }

    /// Serves the connection until it ends: reads, writes, and the timer's
    /// deadline ([`Self::timer_deadline`]).
    pub(crate) fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
    ) -> Poll<Ending> {
        loop {
            let mut deliveries = Vec::new();
            let read = self.poll_read(cx, &mut deliveries);
            self.deliver(deliveries);
            match read {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(ending)) => return Poll::Ready(ending),
                Poll::Pending => {}
            }
            if let Poll::Ready(ending) = self.poll_write(cx) {
                return Poll::Ready(ending);
            }
            let deadline = self.timer_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            ready!(timer.as_mut().poll(cx));
            match self.on_timer() {
                Ok(()) => continue,
                Err(ending) => return Poll::Ready(ending),
            }
        }
    }

    /// When the task's timer must wake it: the heartbeat's next deadline,
    /// or the probe's.
    pub(crate) fn timer_deadline(&self) -> Instant {
        match self.role {
            Role::Serving => self.heartbeat.deadline(),
            Role::Probing { deadline, .. } => deadline,
        }
    }

    fn on_timer(&mut self) -> Result<(), Ending> {
        match self.role {
            Role::Probing { .. } => {
                Err(self.fail_upgrade("the client did not complete the upgrade in time"))
            }
            Role::Serving => match self.heartbeat.on_deadline(Instant::now()) {
                Beat::SendPing => {
                    self.socket.outbox.push_control(Outgoing::Ping);
                    Ok(())
                }
                Beat::TimedOut => Err(Ending::server_closes(
                    DisconnectReason::HeartbeatTimeout,
                    CloseCode::Normal,
                )),
            },
        }
    }

    // ---- reading ----

    /// Reads what has arrived and takes the frames out of it: `Ready(Ok)`
    /// when something was read (there may be more), `Pending` when nothing
    /// is there.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        deliveries: &mut Vec<Delivery>,
    ) -> Poll<Result<(), Ending>> {
        if let Some(frame_len) = self.large_frame {
            return self.poll_read_large_frame(cx, frame_len, deliveries);
        }
        READ_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => self.poll_read_into(cx, &mut buffer, deliveries),
            // Only if a handler polled another connection from inside a
            // callback; correct, merely slower.
            Err(_) => self.poll_read_into(cx, &mut vec![0; READ_BUFFER_SIZE], deliveries),
        })
    }

    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
        deliveries: &mut Vec<Delivery>,
    ) -> Poll<Result<(), Ending>> {
        let kept = self.partial.len();
        buffer[..kept].copy_from_slice(&self.partial);
        let Some(mut stream) = self.wire.stream(&self.socket.stream) else {
            return Poll::Ready(Err(Ending::client_gone(DisconnectReason::TransportError)));
        };
        let read = match ready!(stream.poll_read(cx, &mut buffer[kept..])) {
            Ok(0) => {
                return Poll::Ready(Err(Ending::client_gone(DisconnectReason::TransportError)));
            }
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(sid = %self.socket.id, %error, "reading a WebSocket failed");
                return Poll::Ready(Err(Ending::client_gone(DisconnectReason::TransportError)));
            }
        };
        self.partial.clear();
        let filled = kept + read;
        let taken = self.take_frames(&mut buffer[..filled], deliveries)?;
        self.keep_partial(&buffer[taken..filled]);
        Poll::Ready(Ok(()))
    }

    /// Reads a frame too large for the thread's buffer into `partial`.
    fn poll_read_large_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame_len: usize,
        deliveries: &mut Vec<Delivery>,
    ) -> Poll<Result<(), Ending>> {
        let have = self.partial.len();
        self.partial.resize(frame_len, 0);
        let Some(mut stream) = self.wire.stream(&self.socket.stream) else {
            return Poll::Ready(Err(Ending::client_gone(DisconnectReason::TransportError)));
        };
        let read = stream.poll_read(cx, &mut self.partial[have..]);
        let read = match read {
            Poll::Pending => {
                self.partial.truncate(have);
                return Poll::Pending;
            }
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                return Poll::Ready(Err(Ending::client_gone(DisconnectReason::TransportError)));
            }
            Poll::Ready(Ok(read)) => read,
        };
        self.partial.truncate(have + read);
        if self.partial.len() < frame_len {
            return Poll::Ready(Ok(()));
        }
        self.large_frame = None;
        let mut frame = std::mem::take(&mut self.partial);
        self.take_frames(&mut frame, deliveries)?;
        Poll::Ready(Ok(()))
    }

    /// Keeps the start of a frame that has not fully arrived.
    fn keep_partial(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            // Give back the memory an earlier partial frame needed.
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// Handles every whole frame at the start of `buf`; returns how many
    /// bytes they took. A frame too large for the thread's buffer switches
    /// to reading it whole into `partial`.
    fn take_frames(
        &mut self,
        buf: &mut [u8],
        deliveries: &mut Vec<Delivery>,
    ) -> Result<usize, Ending> {
        let max = self.engine.config.max_ws_message();
        let now = Instant::now();
        let mut at = 0;
        while at < buf.len() {
            let frame = match frame::parse(buf, at, max) {
                Ok(Parsed::Frame(frame)) => frame,
                Ok(Parsed::Incomplete(Some(frame_len))) if frame_len > READ_BUFFER_SIZE => {
                    self.large_frame = Some(frame_len);
                    self.partial = Vec::with_capacity(frame_len);
                    return Ok(at);
                }
                Ok(Parsed::Incomplete(_)) => return Ok(at),
                Err(bad) => return Err(self.refuse_frame(bad)),
            };
            let payload = &buf[frame.payload.clone()];
            self.on_frame(frame.fin, frame.opcode, payload, deliveries, now)?;
            at = frame.end;
        }
        Ok(at)
    }

    fn refuse_frame(&mut self, bad: BadFrame) -> Ending {
        tracing::debug!(sid = %self.socket.id, "closing a WebSocket: the client sent {bad}");
        match self.role {
            Role::Serving => {
                Ending::server_closes(DisconnectReason::TransportError, bad.close_code())
            }
            Role::Probing { .. } => Ending {
                reason: None,
                close: Some(bad.close_code()),
                linger: true,
            },
        }
    }

    fn on_frame(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
        deliveries: &mut Vec<Delivery>,
        now: Instant,
    ) -> Result<(), Ending> {
        match opcode {
            OpCode::Control(Control::Ping) => {
                let pong = Outgoing::WebSocketPong(Bytes::copy_from_slice(payload));
                match self.role {
                    Role::Serving => self.socket.outbox.push_control(pong),
                    Role::Probing { .. } => {
                        let (prefix, payload) = frame::encode(&pong, self.socket.protocol);
                        self.control.extend_from_slice(prefix.as_bytes());
                        self.control.extend_from_slice(payload);
                    }
                }
                Ok(())
            }
            OpCode::Control(Control::Close) => Err(match self.role {
                Role::Serving => Ending {
                    reason: Some(DisconnectReason::TransportClose),
                    close: Some(CloseCode::Normal),
                    linger: false,
                },
                Role::Probing { .. } => Ending {
                    reason: None,
                    close: Some(CloseCode::Normal),
                    linger: false,
                },
            }),
            OpCode::Control(_) => Ok(()),
            OpCode::Data(Data::Continue) => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return Err(self.refuse_frame(BadFrame::BadFragment));
                };
                if fragments.data.len() + payload.len() > self.engine.config.max_ws_message() {
                    return Err(self.refuse_frame(BadFrame::TooBig));
                }
                fragments.data.extend_from_slice(payload);
                if !fin {
                    return Ok(());
                }
                let Some(fragments) = self.fragments.take() else {
                    return Ok(());
                };
                let Fragments { opcode, data } = *fragments;
                self.on_message(opcode, &data, deliveries, now)
            }
            OpCode::Data(_) if self.fragments.is_some() => {
                Err(self.refuse_frame(BadFrame::BadFragment))
            }
            OpCode::Data(opcode) if !fin => {
                self.fragments = Some(Box::new(Fragments {
                    opcode,
                    data: payload.to_vec(),
                }));
                Ok(())
            }
            OpCode::Data(opcode) => self.on_message(opcode, payload, deliveries, now),
        }
    }

    /// A whole WebSocket message: one engine.io packet.
    fn on_message(
        &mut self,
        opcode: Data,
        payload: &[u8],
        deliveries: &mut Vec<Delivery>,
        now: Instant,
    ) -> Result<(), Ending> {
        if opcode == Data::Binary {
            return self.on_binary(payload, deliveries, now);
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return Err(self.refuse_frame(BadFrame::NotUtf8));
        };
        let packet = match Incoming::parse(text) {
            Ok(packet) => packet,
            Err(bad) => {
                tracing::debug!(sid = %self.socket.id, "closing a WebSocket: the client sent {bad}");
                return Err(self.refuse_packet(DisconnectReason::PacketParsingError));
            }
        };
        if let Role::Probing { probed, .. } = self.role {
            return self.on_probe_packet(packet, probed);
        }
        let protocol = self.socket.protocol;
        match packet {
            Incoming::Pong(_) if protocol == ProtocolVersion::V4 => {
                self.heartbeat.on_heartbeat(now)
            }
            Incoming::Ping(_) if protocol == ProtocolVersion::V3 => {
                self.heartbeat.on_heartbeat(now);
                self.socket.outbox.push_control(Outgoing::Pong);
            }
            Incoming::Ping(_) | Incoming::Pong(_) => {
                tracing::debug!(sid = %self.socket.id, "closing a WebSocket: a heartbeat in the wrong direction");
                return Err(self.refuse_packet(DisconnectReason::TransportError));
            }
            Incoming::Close => {
                return Err(Ending {
                    reason: Some(DisconnectReason::TransportClose),
                    close: Some(CloseCode::Normal),
                    linger: true,
                });
            }
            Incoming::Message(data) => {
                self.heartbeat.on_packet(now);
                deliveries.push(Delivery::Text(Str::copy_from_slice(data)));
            }
            Incoming::Upgrade | Incoming::Noop => self.heartbeat.on_packet(now),
        }
        Ok(())
    }

    fn on_binary(
        &mut self,
        payload: &[u8],
        deliveries: &mut Vec<Delivery>,
        now: Instant,
    ) -> Result<(), Ending> {
        if matches!(self.role, Role::Probing { .. }) {
            return Err(self.fail_upgrade("the client sent binary data while probing"));
        }
        let data = match self.socket.protocol {
            ProtocolVersion::V4 => payload,
            // Protocol 3 puts the packet type first: only messages carry data.
            ProtocolVersion::V3 => match payload.split_first() {
                Some((4, data)) => data,
                _ => return Err(self.refuse_packet(DisconnectReason::PacketParsingError)),
            },
        };
        self.heartbeat.on_packet(now);
        deliveries.push(Delivery::Binary(Bytes::copy_from_slice(data)));
        Ok(())
    }

    fn refuse_packet(&self, reason: DisconnectReason) -> Ending {
        Ending::server_closes(reason, CloseCode::Normal)
    }

    // ---- the upgrade ----

    fn on_probe_packet(&mut self, packet: Incoming<'_>, probed: bool) -> Result<(), Ending> {
        match packet {
            Incoming::Ping(PROBE) if !probed => {
                self.control.extend_from_slice(&frame::text_frame("3probe"));
                let reader = {
                    let mut state = self.socket.outbox.lock();
                    if state.phase != Phase::Open || state.upgrade != Upgrade::Probing {
                        drop(state);
                        return Err(self.fail_upgrade("the session closed while probing"));
                    }
                    state.upgrade = Upgrade::Probed;
                    // The pending poll is answered with a noop, so the
                    // client can pause polling.
                    state.take_reader()
                };
                wake(reader);
                if let Role::Probing { probed, .. } = &mut self.role {
                    *probed = true;
                }
                Ok(())
            }
            Incoming::Upgrade if probed => self.complete_upgrade(),
            _ => {
                Err(self
                    .fail_upgrade("the client sent another packet than the probe and the upgrade"))
            }
        }
    }

    fn complete_upgrade(&mut self) -> Result<(), Ending> {
        let (reader, keeper) = {
            let mut state = self.socket.outbox.lock();
            if state.phase != Phase::Open {
                drop(state);
                return Err(self.fail_upgrade("the session closed while upgrading"));
            }
            state.upgrade = Upgrade::Done;
            (state.take_reader(), state.take_keeper())
        };
        self.socket.set_transport(TransportType::Websocket);
        self.socket.attach(&mut self.wire);
        // A pending poll answers with a noop; the polling keeper stops.
        wake(reader);
        wake(keeper);
        self.role = Role::Serving;
        let config = &self.engine.config;
        self.heartbeat = Heartbeat::new(
            self.socket.protocol,
            config.ping_interval,
            config.ping_timeout,
            Instant::now(),
        );
        tracing::debug!(sid = %self.socket.id, "session upgraded to WebSocket");
        Ok(())
    }

    /// Gives up the upgrade: this WebSocket closes (and [`Self::finish`]
    /// gives the session back to polling).
    fn fail_upgrade(&self, why: &str) -> Ending {
        tracing::debug!(sid = %self.socket.id, "upgrade abandoned: {why}");
        Ending {
            reason: None,
            close: Some(CloseCode::Normal),
            linger: true,
        }
    }

    /// A probing WebSocket ended, however: the session goes on polling, and
    /// may try to upgrade again. A poll waiting for the probe's noop is
    /// woken to wait for packets again.
    fn abandon_upgrade(&self) {
        let reader = {
            let mut state = self.socket.outbox.lock();
            if matches!(state.upgrade, Upgrade::Probing | Upgrade::Probed) {
                state.upgrade = Upgrade::None;
            }
            state.take_reader()
        };
        wake(reader);
    }

    /// Hands the messages read to the handler, outside any buffer borrow.
    fn deliver(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            match delivery {
                Delivery::Text(msg) => self.engine.handler.on_message(msg, self.socket.clone()),
                Delivery::Binary(data) => self.engine.handler.on_binary(data, self.socket.clone()),
            }
        }
    }

    // ---- writing ----

    /// Writes what is queued (or, while probing, the connection's own
    /// frames). Ends the connection once a closing session's queue is
    /// written, or when writing fails.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        if let Role::Probing { .. } = self.role {
            return match self.poll_write_control(cx) {
                Poll::Ready(Err(())) => Poll::Ready(Ending {
                    reason: None,
                    close: None,
                    linger: false,
                }),
                _ => Poll::Pending,
            };
        }
        let protocol = self.socket.protocol;
        let waker = cx.waker();
        loop {
            let Some(mut stream) = self.wire.stream(&self.socket.stream) else {
                return Poll::Ready(Ending::client_gone(DisconnectReason::TransportError));
            };
            let written = writer::write_queued(
                &self.socket.outbox,
                protocol,
                Writer::Task(waker),
                |slices| stream.write_vectored(waker, slices),
            );
            match written {
                Written::Drained => {
                    if ready!(stream.poll_flush(cx)).is_err() {
                        return Poll::Ready(Ending::client_gone(DisconnectReason::TransportError));
                    }
                    return self.closing_once_drained();
                }
                Written::Busy | Written::Detached => return Poll::Pending,
                Written::Failed => {
                    return Poll::Ready(Ending::client_gone(DisconnectReason::TransportError));
                }
                Written::Blocked => match ready!(stream.poll_write_ready(cx)) {
                    Ok(()) => continue,
                    Err(_) => {
                        return Poll::Ready(Ending::client_gone(DisconnectReason::TransportError));
                    }
                },
            }
        }
    }

    /// Everything queued is written: a closing session ends now.
    fn closing_once_drained(&self) -> Poll<Ending> {
        match &self.socket.outbox.lock().phase {
            Phase::Open => Poll::Pending,
            Phase::Closing(reason) => {
                Poll::Ready(Ending::server_closes(reason.clone(), CloseCode::Normal))
            }
            // Ended elsewhere: nothing to tell the handler.
            Phase::Closed => Poll::Ready(Ending {
                reason: None,
                close: Some(CloseCode::Normal),
                linger: true,
            }),
        }
    }

    /// Writes the connection's own frames, when no one else writes to its
    /// stream. `Err` when the stream failed.
    fn poll_write_control(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        while !self.control.is_empty() {
            let Some(mut stream) = self.wire.stream(&self.socket.stream) else {
                return Poll::Ready(Err(()));
            };
            match stream.write_vectored(cx.waker(), &[IoSlice::new(&self.control)]) {
                Ok(0) => return Poll::Ready(Err(())),
                Ok(written) => {
                    self.control.drain(..written);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_write_ready(cx)).map_err(|_| ())?;
                }
                Err(_) => return Poll::Ready(Err(())),
            }
        }
        self.control = Vec::new();
        match self.wire.stream(&self.socket.stream) {
            Some(mut stream) => ready!(stream.poll_flush(cx)).map_err(|_| ()),
            None => Ok(()),
        }
        .into()
    }

    // ---- the end ----

    /// Waits until no flush writes to the stream, and takes it back: from
    /// now on only this task writes to it.
    pub(crate) fn poll_detach(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.socket.outbox.detach(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The session ends now (or, for a probing WebSocket, goes back to
    /// polling), and the close frame, if any, is readied.
    pub(crate) fn end(&mut self, ending: &Ending) {
        match (self.role, &ending.reason) {
            (Role::Serving, Some(reason)) => self.engine.end_session(&self.socket, reason.clone()),
            (Role::Serving, None) => {}
            (Role::Probing { .. }, _) => self.abandon_upgrade(),
        }
        if let Some(code) = ending.close {
            self.control.extend_from_slice(&frame::close_frame(code));
        }
    }

    /// Writes what is left of the connection's own frames (the close frame).
    pub(crate) fn poll_write_remaining(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_write_control(cx).map(|_| ())
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.wire.stream(&self.socket.stream) {
            Some(mut stream) => stream.poll_shutdown(cx).map(|_| ()),
            None => Poll::Ready(()),
        }
    }

    /// Reads and drops everything until the client closes its side.
    pub(crate) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 512];
        let Some(mut stream) = self.wire.stream(&self.socket.stream) else {
            return Poll::Ready(());
        };
        loop {
            match ready!(stream.poll_read(cx, &mut scratch)) {
                Ok(0) | Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
    }
}

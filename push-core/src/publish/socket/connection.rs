//! One publisher connection, served by a task on the runtime's workers.
//!
//! A publish wakes the server once: the worker that waits in the event
//! loop reads the request, hands the message to the recipients' connection
//! tasks and answers, and then runs those tasks itself (tokio keeps a task
//! woken by the running one on the same worker), so the message is written
//! to the browser with no other thread woken. A thread of its own per
//! publisher, which an earlier version used, woke a worker from outside the
//! runtime on every publish, and that worker woke the other one: three
//! wake-ups where one does (docs/benchmarks.md, "One wake-up per publish").
//!
//! The socket is read with `try_io`: after a read that did not fill the
//! buffer the socket is known to be drained, so the event loop is told so
//! there and then, instead of reading again only to be told `EAGAIN`. A
//! request and its reply cost the same system calls as on a thread waiting
//! in poll(2).
//!
//! Frames are read into one buffer and answered in order. Replies are
//! collected and written together once no complete frame is left in the
//! buffer, so a pipelining client gets its replies in batches rather than
//! one system call each.
//!
//! In a cluster a publish's reply waits for Redis and the other nodes
//! (`session::Handled::Later`). The connection does not wait with it: it
//! keeps reading and starting the next requests, so that a pipelining
//! publisher's publishes share Redis round trips, and keeps the replies in
//! request order ([`Replies`]), writing each as soon as those before it
//! are written.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};

use push_client::ErrorCode;
use push_client::protocol::frame::{self, FrameError, LENGTH_PREFIX_LEN};
use rustix::net::{RecvFlags, SendFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Services;
use super::session::{Handled, LaterReply, Next, ReplyTo, Session};
use crate::dispatch::Count;
use crate::metrics::Metrics;

/// Initial read buffer; grows up to the frame size limit when needed.
const READ_BUFFER: usize = 8 * 1024;

/// How long a publisher may take to send the rest of a frame it started.
/// A local PHP process writes even a 1 MiB frame in milliseconds.
const FRAME_COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a publisher may leave its replies unread once the socket's
/// buffer is full, before it is given up on. A pipelining client reads its
/// replies well before that (push-client keeps under 64 KiB unanswered).
const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests read on one connection whose replies wait for the cluster.
/// Past this the connection reads nothing more until some are answered, so
/// a publisher that pipelines without reading its replies holds at most
/// this many messages in the daemon. push-client keeps 64 KiB of frames
/// unanswered, a thousand small publishes; this is four times that.
const MAX_WAITING: usize = 4096;

/// Serves `stream` until the publisher leaves, breaks the protocol or
/// `shutdown` fires.
pub(super) async fn serve(stream: UnixStream, services: Services, shutdown: CancellationToken) {
    services.metrics.publisher_connected();
    let mut publisher = Publisher {
        stream,
        session: Session::new(services.clone()),
        metrics: services.metrics.clone(),
        max_frame_size: services.max_frame_size,
    };
    let closing = publisher.answer_until_closed(&shutdown).await;
    tracing::debug!(reason = closing, "publish connection closed");
    let _ = rustix::net::shutdown(&publisher.stream, rustix::net::Shutdown::Both);
    services.metrics.publisher_disconnected();
}

/// What the connection waited for and got.
enum Event {
    Read(Read),
    /// A reply that was waiting for the cluster came.
    Answered(Finished),
    Stopped,
}

/// What waiting for more of the publisher's bytes ended with.
enum Read {
    /// Some bytes were added to the buffer.
    Data,
    /// The publisher closed its end.
    Closed,
    TimedOut,
    Failed,
}

struct Publisher {
    stream: UnixStream,
    session: Session,
    metrics: Arc<Metrics>,
    max_frame_size: u32,
}

impl Publisher {
    /// Reads and answers requests; returns why the connection ends.
    async fn answer_until_closed(&mut self, shutdown: &CancellationToken) -> &'static str {
        // Created once: registering with the token on every wait would cost
        // a lock per request.
        let mut stopped = pin!(shutdown.cancelled());
        let mut input: Vec<u8> = Vec::with_capacity(READ_BUFFER);
        let mut replies = Replies::default();
        let mut partial_since: Option<Instant> = None;
        loop {
            let (answered, next) = self.answer_buffered(&input, &mut replies).await;
            input.drain(..answered);
            if answered > 0 {
                // What is left, if anything, is a frame started just now.
                partial_since = None;
            }
            replies.take_finished(&self.metrics);
            if let Err(reason) = self.write_ready(&mut replies).await {
                return reason;
            }
            if next == Next::Close {
                return self.finish(&mut replies, "closed after an error").await;
            }

            // A frame once started must be finished in time, so a stalled or
            // hostile peer cannot pin a buffer of up to max_frame_size
            // forever. Idle connections (nothing buffered) may stay open
            // indefinitely, and a publisher that keeps finishing frames is
            // never cut off, however its writes split them.
            let frame_deadline = if input.is_empty() {
                None
            } else {
                Some(*partial_since.get_or_insert_with(Instant::now) + FRAME_COMPLETION_TIMEOUT)
            };
            let event = tokio::select! {
                // A stop wins over a ready connection, so a publisher that
                // never pauses cannot hold up a shutdown.
                biased;
                () = &mut stopped => Event::Stopped,
                Some(reply) = replies.waiting.next(), if !replies.waiting.is_empty() => {
                    Event::Answered(reply)
                }
                read = self.read_more(&mut input, frame_deadline), if replies.has_room() => {
                    Event::Read(read)
                }
            };
            match event {
                Event::Answered(reply) => replies.write(reply, &self.metrics),
                Event::Read(Read::Data) => {}
                Event::Read(Read::Closed) if input.is_empty() => {
                    // The publisher may still read what it asked for.
                    return self.finish(&mut replies, "closed by the publisher").await;
                }
                Event::Read(Read::Closed) => {
                    self.metrics.protocol_error(ErrorCode::MALFORMED_FRAME);
                    return "closed by the publisher in the middle of a frame";
                }
                Event::Stopped => {
                    // Answer what was read, and tell the publisher why, so
                    // its next request reconnects (to the restarted daemon)
                    // instead of failing on a dead connection.
                    let reason = self.finish(&mut replies, "daemon shutting down").await;
                    return self
                        .close_with(
                            ErrorCode::SHUTTING_DOWN,
                            "the daemon is shutting down; reconnect to reach its successor",
                            reason,
                        )
                        .await;
                }
                Event::Read(Read::TimedOut) => {
                    let message = format!(
                        "a frame was started but not finished within {FRAME_COMPLETION_TIMEOUT:?}; the connection is closed"
                    );
                    return self
                        .close_with(
                            ErrorCode::MALFORMED_FRAME,
                            &message,
                            "a frame was not finished in time",
                        )
                        .await;
                }
                Event::Read(Read::Failed) => return "read error",
            }
        }
    }

    /// Answers every whole frame at the start of `input` (as long as
    /// `replies` has room); returns how many bytes were answered, and
    /// whether to go on.
    async fn answer_buffered(&mut self, input: &[u8], replies: &mut Replies) -> (usize, Next) {
        let mut answered = 0;
        while replies.has_room() {
            let rest = &input[answered..];
            match frame::check(rest, self.max_frame_size) {
                Ok(Some(total)) => {
                    let body = &rest[LENGTH_PREFIX_LEN..total];
                    answered += total;
                    if replies.waiting.is_empty() {
                        match self.session.handle(body, &mut replies.ready).await {
                            Handled::Answered(Next::Close) => return (answered, Next::Close),
                            Handled::Answered(Next::Continue) => {}
                            Handled::Later(reply) => replies.wait_for(reply),
                        }
                    } else {
                        // Behind a reply still waiting: queued after it.
                        let mut reply = Vec::new();
                        match self.session.handle(body, &mut reply).await {
                            Handled::Answered(next) => {
                                replies.queue(reply);
                                if next == Next::Close {
                                    return (answered, Next::Close);
                                }
                            }
                            Handled::Later(later) => replies.wait_for(later),
                        }
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    // The rest of the stream cannot be framed any more.
                    let mut refusal = Vec::new();
                    self.session.refuse_connection(
                        ErrorCode::FRAME_TOO_LARGE,
                        &format!(
                            "frame of {len} bytes is over this daemon's max_frame_size of {max}; the connection is closed"
                        ),
                        &mut refusal,
                    );
                    replies.queue(refusal);
                    return (answered, Next::Close);
                }
            }
        }
        (answered, Next::Continue)
    }

    /// Writes the replies that are ready, in order.
    async fn write_ready(&self, replies: &mut Replies) -> Result<(), &'static str> {
        if !replies.ready.is_empty() {
            self.write_all(&replies.ready).await?;
            replies.ready.clear();
        }
        Ok(())
    }

    /// Waits for every reply still coming and writes them all; returns
    /// `reason`, or why they could not be written.
    async fn finish(&self, replies: &mut Replies, reason: &'static str) -> &'static str {
        while let Some(reply) = replies.waiting.next().await {
            replies.write(reply, &self.metrics);
        }
        match self.write_ready(replies).await {
            Ok(()) => reason,
            Err(failed) => failed,
        }
    }

    /// Waits for the publisher's next bytes and appends them to `input`, no
    /// later than `deadline` (if any).
    async fn read_more(&self, input: &mut Vec<u8>, deadline: Option<Instant>) -> Read {
        loop {
            let ready = match deadline {
                None => self.stream.readable().await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.stream.readable()).await {
                        Ok(ready) => ready,
                        Err(_) => return Read::TimedOut,
                    }
                }
            };
            if ready.is_err() {
                return Read::Failed;
            }
            // Straight into the buffer's spare room: nothing to zero or copy.
            input.reserve(READ_BUFFER);
            let room = input.capacity() - input.len();
            let mut read = 0;
            let outcome = self.stream.try_io(Interest::READABLE, || {
                let spare = rustix::buffer::spare_capacity(&mut *input);
                read = rustix::net::recv(&self.stream, spare, RecvFlags::DONTWAIT)?.0;
                if read > 0 && read < room {
                    // Everything the socket held fits: it is drained, and
                    // bytes that come later signal the event loop anew.
                    // `WouldBlock` is how tokio is told to wait for them;
                    // what was read is kept in `input` all the same.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match outcome {
                _ if read > 0 => return Read::Data,
                Ok(()) => return Read::Closed,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Read::Failed,
            }
        }
    }

    /// Sends an error about the connection as a whole; returns `reason`.
    async fn close_with(
        &mut self,
        code: ErrorCode,
        message: &str,
        reason: &'static str,
    ) -> &'static str {
        let mut notice = Vec::new();
        self.session.refuse_connection(code, message, &mut notice);
        // Best effort: the connection ends either way.
        let _ = self.write_all(&notice).await;
        reason
    }

    /// Writes all of `bytes`, waiting while the socket's buffer is full, but
    /// no longer than [`REPLY_WRITE_TIMEOUT`] without any of it going out.
    async fn write_all(&self, mut bytes: &[u8]) -> Result<(), &'static str> {
        while !bytes.is_empty() {
            // The socket has room nearly always, and then the wait is only a
            // look at what the event loop last saw, not a system call.
            match tokio::time::timeout(REPLY_WRITE_TIMEOUT, self.stream.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("waiting to write to the publisher failed"),
                Err(_) => return Err("the publisher stopped reading its replies"),
            }
            // MSG_NOSIGNAL: a publisher that went away is an error here, not
            // a SIGPIPE that would kill the daemon. A full buffer (`EAGAIN`)
            // clears the readiness, so the next wait is for room.
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
                Ok(rustix::net::send(&self.stream, bytes, flags)?)
            });
            match sent {
                Ok(0) => return Err("the publisher went away before reading its replies"),
                Ok(written) => bytes = &bytes[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err("the publisher went away before reading its replies"),
            }
        }
        Ok(())
    }
}

/// A connection's replies, in request order: those ready to write, and
/// those still waiting for the cluster, with any answered at once behind
/// them.
#[derive(Default)]
struct Replies {
    /// Encoded replies to write, in order.
    ready: Vec<u8>,
    waiting: FuturesOrdered<Reply>,
}

impl Replies {
    /// Whether another request may be started.
    fn has_room(&self) -> bool {
        self.waiting.len() < MAX_WAITING
    }

    /// Adds a reply to come.
    fn wait_for(&mut self, reply: LaterReply) {
        self.waiting.push_back(Reply::Waiting(reply));
    }

    /// Adds a reply made at once, behind those waiting.
    fn queue(&mut self, reply: Vec<u8>) {
        if self.waiting.is_empty() {
            self.ready.extend_from_slice(&reply);
        } else {
            self.waiting.push_back(Reply::Ready(Some(reply)));
        }
    }

    /// Moves the replies that have come, up to the first still waiting, to
    /// the ones ready to write.
    fn take_finished(&mut self, metrics: &Metrics) {
        while let Some(Some(reply)) = self.waiting.next().now_or_never() {
            self.write(reply, metrics);
        }
    }

    /// Adds a reply that has come to those ready to write.
    fn write(&mut self, reply: Finished, metrics: &Metrics) {
        match reply {
            Finished::Encoded(reply) => self.ready.extend_from_slice(&reply),
            Finished::Counted(to, count) => to.encode(count, metrics, &mut self.ready),
        }
    }
}

/// One reply in the queue of [`Replies`].
enum Reply {
    Ready(Option<Vec<u8>>),
    Waiting(LaterReply),
}

/// A reply of the queue, come.
enum Finished {
    Encoded(Vec<u8>),
    Counted(ReplyTo, Count),
}

impl Future for Reply {
    type Output = Finished;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Finished> {
        match self.get_mut() {
            Reply::Ready(reply) => Poll::Ready(Finished::Encoded(reply.take().unwrap_or_default())),
            Reply::Waiting(later) => later
                .counting
                .as_mut()
                .poll(context)
                .map(|count| Finished::Counted(later.to, count)),
        }
    }
}

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

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use push_client::ErrorCode;
use push_client::protocol::frame::{self, FrameError, LENGTH_PREFIX_LEN};
use rustix::net::{RecvFlags, SendFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Services;
use super::session::{Next, Session};
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

/// What waiting for more of the publisher's bytes ended with.
enum Read {
    /// Some bytes were added to the buffer.
    Data,
    /// The publisher closed its end.
    Closed,
    Stopped,
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
        let mut output = Vec::with_capacity(READ_BUFFER);
        let mut partial_since: Option<Instant> = None;
        loop {
            let (answered, next) = self.answer_buffered(&input, &mut output).await;
            input.drain(..answered);
            if answered > 0 {
                // What is left, if anything, is a frame started just now.
                partial_since = None;
            }
            if !output.is_empty() {
                if let Err(reason) = self.write_all(&output).await {
                    return reason;
                }
                output.clear();
            }
            if next == Next::Close {
                return "closed after an error";
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
            let read = tokio::select! {
                // A stop wins over a ready connection, so a publisher that
                // never pauses cannot hold up a shutdown.
                biased;
                () = &mut stopped => Read::Stopped,
                read = self.read_more(&mut input, frame_deadline) => read,
            };
            match read {
                Read::Data => {}
                Read::Closed if input.is_empty() => return "closed by the publisher",
                Read::Closed => {
                    self.metrics.protocol_error(ErrorCode::MALFORMED_FRAME);
                    return "closed by the publisher in the middle of a frame";
                }
                Read::Stopped => {
                    // Tell the publisher why, so its next request reconnects
                    // (to the restarted daemon) instead of failing on a dead
                    // connection.
                    return self
                        .close_with(
                            ErrorCode::SHUTTING_DOWN,
                            "the daemon is shutting down; reconnect to reach its successor",
                            "daemon shutting down",
                        )
                        .await;
                }
                Read::TimedOut => {
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
                Read::Failed => return "read error",
            }
        }
    }

    /// Answers every whole frame at the start of `input` into `output`;
    /// returns how many bytes were answered, and whether to go on.
    async fn answer_buffered(&mut self, input: &[u8], output: &mut Vec<u8>) -> (usize, Next) {
        let mut answered = 0;
        loop {
            let rest = &input[answered..];
            match frame::check(rest, self.max_frame_size) {
                Ok(Some(total)) => {
                    let body = &rest[LENGTH_PREFIX_LEN..total];
                    let next = self.session.handle(body, output).await;
                    answered += total;
                    if next == Next::Close {
                        return (answered, Next::Close);
                    }
                }
                Ok(None) => return (answered, Next::Continue),
                Err(FrameError::TooLarge { len, max }) => {
                    // The rest of the stream cannot be framed any more.
                    self.session.refuse_connection(
                        ErrorCode::FRAME_TOO_LARGE,
                        &format!(
                            "frame of {len} bytes is over this daemon's max_frame_size of {max}; the connection is closed"
                        ),
                        output,
                    );
                    return (answered, Next::Close);
                }
            }
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

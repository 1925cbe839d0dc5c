//! One publisher connection, served by a thread of its own.
//!
//! A synchronous publish is a request and a reply on a local socket, so
//! what it costs is mostly the round trip. A thread that waits in poll(2)
//! on its one connection, reads, answers and writes makes that round trip
//! shorter than a task woken through the runtime's event loop: one wake-up
//! and no hand-over between threads (docs/benchmarks.md compares a PHP
//! round trip against such a thread and against a tokio task).
//! Publishers are few, one per PHP process, and their number is capped by
//! `max_publishers`, so a thread each is cheap. Handing a message to the
//! browsers runs on this thread too, in the runtime's context (see
//! [`super::session`]).
//!
//! Frames are read into one buffer and answered in order. Replies are
//! collected and written together once no complete frame is left in the
//! buffer, so a pipelining client gets its replies in batches rather than
//! one system call each.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use push_client::ErrorCode;
use push_client::protocol::frame::{self, FrameError, LENGTH_PREFIX_LEN};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use super::Services;
use super::session::{Next, Session};
use super::stop::StopSignal;
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

/// Serves `stream` until the publisher leaves, breaks the protocol or the
/// daemon stops. `stream` must be non-blocking.
pub(super) fn serve(stream: UnixStream, services: Services, stop: StopSignal) {
    // In the runtime's context for its whole life, so the futures a session
    // polls here may use tokio (spawn, timers) as on a worker.
    let _runtime = services.runtime.enter();
    services.metrics.publisher_connected();
    let mut publisher = Publisher {
        stream,
        stop,
        session: Session::new(services.clone()),
        metrics: services.metrics.clone(),
        max_frame_size: services.max_frame_size,
    };
    let closing = publisher.answer_until_closed();
    tracing::debug!(reason = closing, "publish connection closed");
    let _ = publisher.stream.shutdown(std::net::Shutdown::Both);
    services.metrics.publisher_disconnected();
}

/// What a wait for the connection ended with.
enum Wait {
    /// The connection is ready for what was asked (or has failed, which the
    /// read or write that follows reports).
    Ready,
    /// The daemon is stopping.
    Stopped,
    TimedOut,
    /// poll(2) itself failed.
    Failed,
}

struct Publisher {
    stream: UnixStream,
    stop: StopSignal,
    session: Session,
    metrics: Arc<Metrics>,
    max_frame_size: u32,
}

impl Publisher {
    /// Reads and answers requests; returns why the connection ends.
    fn answer_until_closed(&mut self) -> &'static str {
        let mut input: Vec<u8> = Vec::with_capacity(READ_BUFFER);
        let mut output = Vec::with_capacity(READ_BUFFER);
        let mut partial_since: Option<Instant> = None;
        loop {
            let (answered, next) = self.answer_buffered(&input, &mut output);
            input.drain(..answered);
            if answered > 0 {
                // What is left, if anything, is a frame started just now.
                partial_since = None;
            }
            if !output.is_empty() {
                if let Err(reason) = self.write_all(&output) {
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
            match self.wait(PollFlags::IN, frame_deadline) {
                Wait::Ready => {}
                Wait::Stopped => {
                    // Tell the publisher why, so its next request reconnects
                    // (to the restarted daemon) instead of failing on a dead
                    // connection.
                    return self.close_with(
                        ErrorCode::SHUTTING_DOWN,
                        "the daemon is shutting down; reconnect to reach its successor",
                        "daemon shutting down",
                    );
                }
                Wait::Failed => return "waiting for the publisher failed",
                Wait::TimedOut => {
                    let message = format!(
                        "a frame was started but not finished within {FRAME_COMPLETION_TIMEOUT:?}; the connection is closed"
                    );
                    return self.close_with(
                        ErrorCode::MALFORMED_FRAME,
                        &message,
                        "a frame was not finished in time",
                    );
                }
            }

            // Straight into the buffer's spare room: nothing to zero or copy.
            input.reserve(READ_BUFFER);
            let spare = rustix::buffer::spare_capacity(&mut input);
            match rustix::net::recv(&self.stream, spare, RecvFlags::DONTWAIT) {
                Ok((0, _)) if input.is_empty() => return "closed by the publisher",
                Ok((0, _)) => {
                    self.metrics.protocol_error(ErrorCode::MALFORMED_FRAME);
                    return "closed by the publisher in the middle of a frame";
                }
                // AGAIN: woken without data after all; wait again.
                Ok(_) | Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => return "read error",
            }
        }
    }

    /// Answers every whole frame at the start of `input` into `output`;
    /// returns how many bytes were answered, and whether to go on.
    fn answer_buffered(&mut self, input: &[u8], output: &mut Vec<u8>) -> (usize, Next) {
        let mut answered = 0;
        loop {
            let rest = &input[answered..];
            match frame::check(rest, self.max_frame_size) {
                Ok(Some(total)) => {
                    let next = self.session.handle(&rest[LENGTH_PREFIX_LEN..total], output);
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

    /// Sends an error about the connection as a whole; returns `reason`.
    fn close_with(&mut self, code: ErrorCode, message: &str, reason: &'static str) -> &'static str {
        let mut notice = Vec::new();
        self.session.refuse_connection(code, message, &mut notice);
        // Best effort: the connection ends either way.
        let _ = self.write_all(&notice);
        reason
    }

    /// Writes all of `bytes`, waiting while the socket's buffer is full, but
    /// no longer than [`REPLY_WRITE_TIMEOUT`] without any of it going out.
    fn write_all(&self, mut bytes: &[u8]) -> Result<(), &'static str> {
        let mut deadline = None;
        while !bytes.is_empty() {
            // MSG_NOSIGNAL: a publisher that went away is an error here, not
            // a SIGPIPE that would kill the daemon.
            match rustix::net::send(
                &self.stream,
                bytes,
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(0) => return Err("the publisher went away before reading its replies"),
                Ok(written) => {
                    bytes = &bytes[written..];
                    deadline = None;
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    let deadline =
                        *deadline.get_or_insert_with(|| Instant::now() + REPLY_WRITE_TIMEOUT);
                    match self.wait(PollFlags::OUT, Some(deadline)) {
                        Wait::Ready => {}
                        Wait::Stopped => {
                            return Err("daemon shutting down while the publisher was not reading");
                        }
                        Wait::TimedOut => return Err("the publisher stopped reading its replies"),
                        Wait::Failed => return Err("waiting to write to the publisher failed"),
                    }
                }
                Err(_) => return Err("the publisher went away before reading its replies"),
            }
        }
        Ok(())
    }

    /// Waits until the connection is ready for `interest`, the daemon stops,
    /// or `deadline` (if any) passes. A stop wins over a ready connection,
    /// so a publisher that never pauses cannot hold up a shutdown.
    fn wait(&self, interest: PollFlags, deadline: Option<Instant>) -> Wait {
        loop {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Wait::TimedOut;
                    }
                    // Any remaining time fits a timespec; if it somehow did
                    // not, waiting without a timeout is the safe side.
                    Timespec::try_from(remaining).ok()
                }
            };
            let mut fds = [
                PollFd::new(&self.stream, interest),
                PollFd::new(&self.stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) if !fds[1].revents().is_empty() => return Wait::Stopped,
                Ok(_) if !fds[0].revents().is_empty() => return Wait::Ready,
                // Timed out, or woken for nothing: the loop checks the time.
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return Wait::Failed,
            }
        }
    }
}

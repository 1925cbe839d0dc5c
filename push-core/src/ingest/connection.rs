//! Framed reading and writing on one publisher connection.
//!
//! Frames are read into one buffer and answered in order. Replies are
//! collected and written together once no complete frame is left in the
//! buffer, so a pipelining client gets its replies in batches rather than
//! one system call each.

use bytes::{Buf, BytesMut};
use push_client::ErrorCode;
use push_client::protocol::frame::{self, FrameError, LENGTH_PREFIX_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Services;
use super::session::{Next, Session};

/// Initial read buffer; grows up to the frame size limit when needed.
const READ_BUFFER: usize = 8 * 1024;

/// How long a publisher may take to send the rest of a frame it started.
/// A local PHP process writes even a 1 MiB frame in milliseconds.
const FRAME_COMPLETION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a refused publisher gets to read its refusal before we close.
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) async fn run(mut stream: UnixStream, services: Services, shutdown: CancellationToken) {
    services.metrics.publisher_connected();
    let max_frame_size = services.max_frame_size;
    let mut session = Session::new(services.clone());
    if let Err(reason) = services.access.check(&stream) {
        tracing::warn!(%reason, "refused a publisher");
        let mut refusal = Vec::new();
        session.refuse_connection(ErrorCode::FORBIDDEN, &reason, &mut refusal);
        let _ = stream.write_all(&refusal).await;
        // Close our side only, and read (and drop) what the peer sends for a
        // moment: closing outright would fail the client's HELLO write with
        // EPIPE before it could read why it was refused.
        let _ = stream.shutdown().await;
        let mut discard = [0u8; 1024];
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {}
        })
        .await;
        services.metrics.publisher_disconnected();
        return;
    }
    let mut input = BytesMut::with_capacity(READ_BUFFER);
    let mut output = Vec::with_capacity(READ_BUFFER);
    let mut partial_since: Option<Instant> = None;
    // Made once, not per read: waiting on the token registers a waiter,
    // which every request would otherwise add and remove again.
    let shutting_down = shutdown.cancelled();
    tokio::pin!(shutting_down);

    let closing = loop {
        // Answer every whole frame already buffered.
        let mut next = Next::Continue;
        loop {
            match frame::check(&input, max_frame_size) {
                Ok(Some(total)) => {
                    next = session
                        .handle(&input[LENGTH_PREFIX_LEN..total], &mut output)
                        .await;
                    input.advance(total);
                    if next == Next::Close {
                        break;
                    }
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    // The rest of the stream cannot be framed any more.
                    session.refuse_connection(
                        ErrorCode::FRAME_TOO_LARGE,
                        &format!("frame of {len} bytes is over this daemon's max_frame_size of {max}; the connection is closed"),
                        &mut output,
                    );
                    next = Next::Close;
                    break;
                }
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break "the publisher went away before reading its replies";
            }
            output.clear();
        }
        if next == Next::Close {
            break "closed after an error";
        }

        // A frame once started must be finished in time, so a stalled or
        // hostile peer cannot pin a buffer of up to max_frame_size forever.
        // Idle connections (nothing buffered) may stay open indefinitely.
        if input.is_empty() {
            partial_since = None;
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        let frame_deadline = async {
            match partial_since {
                Some(since) => tokio::time::sleep_until(since + FRAME_COMPLETION_TIMEOUT).await,
                None => std::future::pending().await,
            }
        };

        input.reserve(READ_BUFFER);
        tokio::select! {
            read = stream.read_buf(&mut input) => match read {
                Ok(0) if input.is_empty() => break "closed by the publisher",
                Ok(0) => {
                    services.metrics.protocol_error(ErrorCode::MALFORMED_FRAME);
                    break "closed by the publisher in the middle of a frame";
                }
                Ok(_) => {}
                Err(_) => break "read error",
            },
            () = frame_deadline => {
                let message = format!(
                    "a frame was started but not finished within {FRAME_COMPLETION_TIMEOUT:?}; the connection is closed"
                );
                session.refuse_connection(ErrorCode::MALFORMED_FRAME, &message, &mut output);
                let _ = stream.write_all(&output).await;
                break "a frame was not finished in time";
            }
            () = &mut shutting_down => {
                // Tell the publisher why, so its next request reconnects
                // (to the restarted daemon) instead of failing on a dead
                // connection.
                session.refuse_connection(
                    ErrorCode::SHUTTING_DOWN,
                    "the daemon is shutting down; reconnect to reach its successor",
                    &mut output,
                );
                let _ = stream.write_all(&output).await;
                break "daemon shutting down";
            }
        }
    };
    tracing::debug!(reason = closing, "publish connection closed");
    let _ = stream.shutdown().await;
    services.metrics.publisher_disconnected();
}

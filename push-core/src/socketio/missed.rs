//! Telling a page that it missed messages, when recovery is off.
//!
//! Without a history, a message a connection's full send buffer could not
//! take is lost for it. The page is at least told: once its buffer has
//! room again it receives `push:missed` with how many messages it missed
//! since it was last told, so it can reload its state rather than show a
//! stale one (docs/recovery.md, "Slow pages").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use socketioxide::{SendError, SocketError};

use super::send_buffer::Backoff;
use crate::cluster::Socket;
use crate::metrics::Metrics;

/// The event that tells a page it missed messages.
pub const MISSED_EVENT: &str = "push:missed";

/// The `push:missed` event.
#[derive(Debug, Serialize)]
struct Missed {
    missed: u64,
}

/// Messages a connection missed that it has not been told of yet, kept
/// with the connection.
#[derive(Debug, Default)]
struct Untold {
    missed: AtomicU64,
    /// A task is waiting to tell the page.
    telling: AtomicBool,
}

/// Counts one message `socket` missed, and tells the page once its send
/// buffer has room.
pub fn tell_missed(socket: &Socket, metrics: &Arc<Metrics>) {
    let untold = match socket.extensions.get::<Arc<Untold>>() {
        Some(untold) => untold,
        None => {
            let untold = Arc::new(Untold::default());
            socket.extensions.insert(untold.clone());
            untold
        }
    };
    untold.missed.fetch_add(1, Ordering::AcqRel);
    if untold.telling.swap(true, Ordering::AcqRel) {
        return; // A task already waits to tell it.
    }
    let socket = socket.clone();
    let metrics = metrics.clone();
    tokio::spawn(async move { tell(&socket, &untold, &metrics).await });
}

/// Sends `push:missed` with what `untold` holds, waiting for room, until
/// nothing is left untold or the connection closes.
async fn tell(socket: &Socket, untold: &Untold, metrics: &Metrics) {
    let mut full = Backoff::default();
    loop {
        let missed = untold.missed.swap(0, Ordering::AcqRel);
        match socket.emit(MISSED_EVENT, &Missed { missed }) {
            Ok(()) => {
                metrics.missed_notice_sent();
                untold.telling.store(false, Ordering::Release);
                // A miss counted after the swap, by a publish that saw this
                // task still running, is told now.
                if untold.missed.load(Ordering::Acquire) == 0
                    || untold.telling.swap(true, Ordering::AcqRel)
                {
                    return;
                }
                full = Backoff::default();
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                untold.missed.fetch_add(missed, Ordering::AcqRel);
                full.wait().await;
            }
            Err(_) => return,
        }
    }
}

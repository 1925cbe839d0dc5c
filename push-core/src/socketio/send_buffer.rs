//! Waiting for room in a connection's send buffer.
//!
//! Each connection queues at most `max_buffered_messages` packets; a full
//! queue refuses the next one at once. A live publish cannot wait for one
//! connection, but the tasks that send one connection something of its own
//! (its replay, its catch-up, a notice that it missed messages) can: they
//! try again until the queue has room. socketio gives no signal when a
//! queue drains, so they try again after a wait: soon at first, since a
//! WebSocket page drains a full queue within a millisecond or two, then
//! less often while the queue stays full (a long-polling page fetches in
//! rounds, a stalled page not at all). docs/benchmarks.md ("The cost of
//! recovery") measured the replay with a fixed wait.

use std::time::{Duration, Instant};

use serde::Serialize;
use socketioxide::{SendError, SocketError};

use crate::cluster::Socket;

/// The first wait for room.
const BUFFER_WAIT: Duration = Duration::from_millis(1);
/// The longest wait while the page still reads now and then.
const LONGEST_BUFFER_WAIT: Duration = Duration::from_millis(16);

/// A page that has taken nothing for this long is stalled (a phone in a
/// tunnel, a frozen tab): it is asked only every [`STALLED_WAIT`] from then
/// on, so that a thousand stalled pages cost little. Nothing gives up on
/// it: it reads again, or its transport's heartbeat ends the connection,
/// and either ends the wait.
const STALLED_AFTER: Duration = Duration::from_secs(1);
const STALLED_WAIT: Duration = Duration::from_millis(250);

/// The connection closed: nothing more can be sent to it.
#[derive(Debug)]
pub struct Gone;

/// Sends one event to `socket`, waiting for room in its send buffer.
pub async fn send_waiting<T: Serialize + ?Sized>(
    socket: &Socket,
    event: &str,
    data: &T,
) -> Result<(), Gone> {
    let mut full = Backoff::default();
    loop {
        match socket.emit(event, data) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => full.wait().await,
            Err(_) => return Err(Gone),
        }
    }
}

/// The waits between two tries at a full send buffer: [`BUFFER_WAIT`]
/// first, doubling to [`LONGEST_BUFFER_WAIT`], and [`STALLED_WAIT`] once
/// the buffer has been full for [`STALLED_AFTER`].
#[derive(Default)]
pub struct Backoff {
    since: Option<Instant>,
    next: Option<Duration>,
}

impl Backoff {
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_wait()).await;
    }

    fn next_wait(&mut self) -> Duration {
        if self.since.get_or_insert_with(Instant::now).elapsed() > STALLED_AFTER {
            return STALLED_WAIT;
        }
        let wait = self.next.unwrap_or(BUFFER_WAIT);
        self.next = Some((wait * 2).min(LONGEST_BUFFER_WAIT));
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_then_slow_down_for_a_stalled_page() {
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..7).map(|_| backoff.next_wait()).collect();
        let ms = Duration::from_millis;
        assert_eq!(waits, [ms(1), ms(2), ms(4), ms(8), ms(16), ms(16), ms(16)]);
        backoff.since = Some(Instant::now() - STALLED_AFTER * 2);
        assert_eq!(backoff.next_wait(), STALLED_WAIT);
    }
}

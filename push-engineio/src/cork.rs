//! Corked emits: packets queued in a burst are written after it, by
//! whoever is at hand, instead of each waking its connection's task.
//!
//! A broadcast queues one packet on each of its recipients. Waking every
//! recipient's task to write it costs a task switch per delivery, and at
//! 5,000 recipients the memory each switch touches is no longer in any
//! cache: that was most of the user-space time of a delivery
//! (docs/benchmarks.md). Inside [`corked`], a packet queued on an idle
//! WebSocket connection only notes the connection; when the closure
//! returns, the noted connections are written: a few right there (a
//! private message reaches the browser before the publisher hears back),
//! more by flush tasks of [`CHUNK`] connections each, which tokio spreads
//! over its worker threads. Each flush takes the connection's writer place
//! in its outbox (`websocket::writer`), so it never writes at the same time
//! as the connection's own task, and a connection whose socket is full is
//! left to its task, which waits until it can write again.
//!
//! Emits outside `corked` work as before: they wake the connection's task.
//! Only what runs inside the closure, on this thread, is corked, so the
//! closure must not wait on anything.

use std::cell::RefCell;
use std::sync::Arc;

/// A connection that can write its queued packets now.
pub(crate) trait Flush: Send + Sync {
    /// Writes what is queued, as much as the socket takes without waiting.
    fn flush(&self);
}

/// Connections written on the spot when a burst noted no more: a private
/// message's tabs. Each costs the caller a system call.
const INLINE: usize = 8;

/// Connections per flush task: small enough that a broadcast to thousands
/// is spread over every worker, large enough that spawning is nothing
/// against the writes.
const CHUNK: usize = 256;

/// The burst under way on a thread.
#[derive(Default)]
struct Burst {
    /// Connections to write when it ends.
    noted: Vec<Arc<dyn Flush>>,
    /// Sessions handed a packet in it.
    handed: usize,
}

thread_local! {
    static BURST: RefCell<Option<Burst>> = const { RefCell::new(None) };
}

/// Runs `burst` with emits corked, then writes what it queued.
pub fn corked<R>(burst: impl FnOnce() -> R) -> R {
    corked_counting(burst).0
}

/// [`corked`], also saying how many sessions the burst handed a packet:
/// a broadcast's recipients, counted as they are reached rather than
/// selected a second time. Only what the burst did within the closure
/// counts.
pub fn corked_counting<R>(burst: impl FnOnce() -> R) -> (R, usize) {
    let outermost = BURST.with_borrow_mut(|current| {
        if current.is_some() {
            return false;
        }
        *current = Some(Burst::default());
        true
    });
    if !outermost {
        let before = BURST.with_borrow(|current| current.as_ref().map_or(0, |b| b.handed));
        let output = burst();
        let after = BURST.with_borrow(|current| current.as_ref().map_or(0, |b| b.handed));
        return (output, after - before);
    }
    let _ends = BurstEnd;
    let output = burst();
    let handed = BURST.with_borrow(|current| current.as_ref().map_or(0, |b| b.handed));
    (output, handed)
}

/// Ends the burst when dropped, so that even a burst that panics leaves
/// the thread uncorked and what it noted written: a thread left corked
/// would note connections for ever and write none of them.
struct BurstEnd;

impl Drop for BurstEnd {
    fn drop(&mut self) {
        let burst = BURST.with_borrow_mut(Option::take).unwrap_or_default();
        write(burst.noted);
    }
}

/// Whether emits on this thread are corked now.
pub(crate) fn is_corked() -> bool {
    BURST.with_borrow(Option::is_some)
}

/// Counts a session handed a packet, if a burst is under way.
pub(crate) fn handed() {
    BURST.with_borrow_mut(|current| {
        if let Some(burst) = current {
            burst.handed += 1;
        }
    });
}

/// Notes a connection to write when the burst ends.
pub(crate) fn note(connection: Arc<dyn Flush>) {
    BURST.with_borrow_mut(|current| match current {
        Some(burst) => burst.noted.push(connection),
        // Not corked after all: write it now rather than never.
        None => connection.flush(),
    });
}

fn write(mut noted: Vec<Arc<dyn Flush>>) {
    if noted.len() <= INLINE || tokio::runtime::Handle::try_current().is_err() {
        for connection in noted {
            connection.flush();
        }
        return;
    }
    while !noted.is_empty() {
        let chunk = noted.split_off(noted.len().saturating_sub(CHUNK));
        tokio::spawn(async move {
            for connection in chunk {
                connection.flush();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counted(AtomicUsize);

    impl Flush for Counted {
        fn flush(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_writes_what_it_noted_once_it_ends() {
        let connection = Arc::new(Counted(AtomicUsize::new(0)));
        corked(|| {
            assert!(is_corked());
            note(connection.clone());
            corked(|| note(connection.clone()));
            assert_eq!(
                connection.0.load(Ordering::SeqCst),
                0,
                "nothing written inside the burst"
            );
        });
        assert!(!is_corked());
        assert_eq!(connection.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_burst_counts_the_sessions_it_handed_a_packet() {
        let ((), count) = corked_counting(|| {
            handed();
            handed();
            let ((), inner) = corked_counting(handed);
            assert_eq!(inner, 1);
        });
        assert_eq!(count, 3);
        handed();
        assert!(!is_corked());
    }

    #[test]
    fn a_burst_that_panics_still_ends() {
        let connection = Arc::new(Counted(AtomicUsize::new(0)));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            corked(|| {
                note(connection.clone());
                panic!("a burst that fails");
            })
        }));
        assert!(panicked.is_err());
        assert!(!is_corked());
        assert_eq!(connection.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_burst_is_written_by_flush_tasks() {
        let connections: Vec<_> = (0..1000)
            .map(|_| Arc::new(Counted(AtomicUsize::new(0))))
            .collect();
        corked(|| {
            for connection in &connections {
                note(connection.clone());
            }
        });
        for _ in 0..1000 {
            if connections.iter().all(|c| c.0.load(Ordering::SeqCst) == 1) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("not every connection was written");
    }
}

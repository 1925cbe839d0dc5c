//! Missed-message recovery: nothing lost when a page reconnects.
//!
//! With recovery on, every message a namespace publishes gets the next
//! sequence number of that namespace and is kept for `recovery_window` in
//! its [`History`]. Pages receive the message's [`Offset`] as one trailing
//! argument (`{"offset": "..."}`), and a page that reconnects with the last
//! offset it saw is sent what it missed, in order, before anything live
//! (`socketio::resume` does that part).
//!
//! Order is the point, so a namespace's messages are numbered and handed to
//! socket.io under one lock ([`Stream`]): the order of offsets is the order
//! in which every connection receives them. The lock is per namespace and
//! held for the hand-over only (socketio queues the packets; nothing waits
//! for a browser).
//!
//! Memory is bounded three ways: the window, `recovery_max_messages` per
//! namespace, and `recovery_max_memory` across namespaces (the oldest
//! message of any namespace goes first). With `state_dir` set, the
//! [`journal`] keeps the history and its epoch on disk, so a restart of the
//! daemon loses nothing.

mod dir_lock;
mod history;
pub mod journal;
mod offset;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use push_client::Target;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{Mutex, MutexGuard};

pub use self::history::{Entry, History, Missed, Recipient};
use self::journal::{Journal, Loaded};
pub use self::offset::Offset;
pub(crate) use self::offset::new_epoch;
use crate::config::RecoverySettings;

/// The event sent to each connection right after it connects, before any
/// replayed or live message.
pub const STATUS_EVENT: &str = "push:recovery";

/// The `push:recovery` event.
#[derive(Debug, Serialize)]
pub struct Status {
    pub recovered: bool,
    pub replayed: usize,
    pub offset: String,
}

/// The trailing argument of every delivered event.
#[derive(Debug, Serialize)]
pub struct OffsetArgument {
    pub offset: String,
}

/// The recent messages of every namespace, with their offsets.
pub struct Recovery {
    settings: RecoverySettings,
    streams: HashMap<String, Mutex<History>>,
    /// What every namespace's history counts for, for `max_memory`.
    memory: AtomicUsize,
    journal: Option<Journal>,
}

/// What a reconnecting page gets.
#[derive(Debug)]
pub enum Resume {
    /// Every message after the page's offset is kept: these are the ones
    /// for it.
    Recovered {
        from: Offset,
        entries: Vec<Arc<Entry>>,
        /// The stream's position when `entries` were taken: whatever
        /// comes after is not in them.
        upto: Offset,
    },
    /// No offset, or one that cannot be honoured: the page starts at
    /// `position` and should reload its state (unless it sent no offset).
    Reset { position: Offset },
}

impl Recovery {
    /// Empty histories for `namespaces` under a new epoch, or those read
    /// back from a journal.
    pub fn new(
        settings: RecoverySettings,
        namespaces: &[String],
        journal: Option<(Journal, Loaded)>,
    ) -> Self {
        let (journal, mut loaded) = match journal {
            Some((journal, loaded)) => (Some(journal), loaded),
            None => (None, Loaded::empty(new_epoch())),
        };
        let oldest_ms = Entry::now_ms().saturating_sub(millis(settings.window));
        let mut memory = 0;
        let streams = namespaces
            .iter()
            .map(|namespace| {
                let mut history = loaded
                    .streams
                    .remove(namespace)
                    .unwrap_or_else(|| History::starting_after(0));
                history.set_epoch(loaded.epoch);
                history.expire(oldest_ms, settings.max_messages);
                memory += history.bytes();
                (namespace.clone(), Mutex::new(history))
            })
            .collect();
        let recovery = Self {
            settings,
            streams,
            memory: AtomicUsize::new(memory),
            journal,
        };
        recovery.enforce_memory_cap(None);
        recovery
    }

    /// The namespace's stream, locked: numbering and handing out a message
    /// happen under it. `None` for a namespace not served.
    pub async fn lock(&self, namespace: &str) -> Option<Stream<'_>> {
        let (namespace, history) = self.streams.get_key_value(namespace)?;
        Some(Stream {
            recovery: self,
            namespace,
            history: history.lock().await,
        })
    }

    /// Where the namespace's stream is now: a page rendered now starts here.
    pub async fn position(&self, namespace: &str) -> Option<Offset> {
        Some(self.lock(namespace).await?.position())
    }

    /// What a page connecting with `requested` (its last offset, if it sent
    /// one) should be sent first.
    pub async fn resume(
        &self,
        namespace: &str,
        requested: Option<&str>,
        recipient: Recipient<'_>,
    ) -> Option<Resume> {
        let requested = requested.and_then(|text| text.parse::<Offset>().ok());
        if let Some(requested) = requested {
            self.catch_up_to(namespace, requested).await;
        }
        let stream = self.lock(namespace).await?;
        let position = stream.position();
        let from = requested.filter(|offset| offset.epoch == position.epoch);
        // One more than may be replayed, to tell "too many" apart.
        let limit = self.settings.max_replay.saturating_add(1);
        Some(
            match from.map(|from| (from, stream.after(from.seq, recipient, limit))) {
                Some((from, Ok(entries))) if entries.len() <= self.settings.max_replay => {
                    Resume::Recovered {
                        from,
                        entries,
                        upto: position,
                    }
                }
                _ => Resume::Reset { position },
            },
        )
    }

    /// Waits, a little, until this node's copy holds `offset`. In a
    /// cluster a page can come from a node that read the cluster's history
    /// a moment earlier than this one (`cluster::history`); on one node
    /// the copy is the history and this returns at once.
    async fn catch_up_to(&self, namespace: &str, offset: Offset) {
        /// Nodes read the history within milliseconds of each other; an
        /// offset still ahead after this is not one the cluster gave out.
        const LONGEST_WAIT: Duration = Duration::from_secs(2);
        const POLL: Duration = Duration::from_millis(5);
        let started = std::time::Instant::now();
        while let Some(position) = self.position(namespace).await
            && position.epoch == offset.epoch
            && position.seq < offset.seq
            && started.elapsed() < LONGEST_WAIT
        {
            tokio::time::sleep(POLL).await;
        }
    }

    /// How many messages each namespace's history keeps at most.
    pub fn max_messages(&self) -> usize {
        self.settings.max_messages
    }

    /// Writes the journal out at a clean stop.
    pub fn close(&self) {
        if let Some(journal) = &self.journal {
            journal.close();
        }
    }

    /// Drops the oldest messages, whichever namespace they are in, until
    /// the histories fit `max_memory`. `holding` is the namespace whose
    /// lock the caller has (the others are only tried, never waited for).
    fn enforce_memory_cap(&self, mut holding: Option<&mut History>) {
        while self.memory.load(Ordering::Relaxed) > self.settings.max_memory {
            let mut oldest: Option<(u64, Option<&str>)> = None;
            if let Some(history) = holding.as_deref()
                && let Some(at) = history.oldest_ms()
            {
                oldest = Some((at, None));
            }
            for (namespace, stream) in &self.streams {
                if let Ok(history) = stream.try_lock()
                    && let Some(at) = history.oldest_ms()
                    && oldest.is_none_or(|(oldest_at, _)| at < oldest_at)
                {
                    oldest = Some((at, Some(namespace)));
                }
            }
            let freed = match oldest {
                None => return,
                Some((_, None)) => holding.as_deref_mut().and_then(History::drop_oldest),
                Some((_, Some(namespace))) => self
                    .streams
                    .get(namespace)
                    .and_then(|stream| stream.try_lock().ok())
                    .and_then(|mut history| history.drop_oldest()),
            };
            match freed {
                Some(freed) => {
                    self.memory.fetch_sub(freed, Ordering::Relaxed);
                }
                None => return,
            }
        }
    }
}

/// One namespace's history, locked.
pub struct Stream<'a> {
    recovery: &'a Recovery,
    namespace: &'a str,
    history: MutexGuard<'a, History>,
}

impl Stream<'_> {
    /// The offset of the last message published.
    pub fn position(&self) -> Offset {
        self.offset(self.history.last_seq())
    }

    /// The offset of the message numbered `seq` in this stream's epoch.
    pub fn offset(&self, seq: u64) -> Offset {
        Offset {
            epoch: self.history.epoch(),
            seq,
        }
    }

    /// Numbers a message and keeps it; the caller hands it to socket.io
    /// before dropping the stream.
    pub fn record(&mut self, event: &str, payload: &RawValue, target: &Target<'_>) -> Offset {
        let now_ms = Entry::now_ms();
        let seq = self.history.last_seq() + 1;
        let entry = Arc::new(Entry::new(seq, now_ms, event, payload, target));
        if let Some(journal) = &self.recovery.journal {
            journal.append(self.namespace, entry.clone());
        }
        let offset = self.offset(entry.seq);
        self.keep(entry, now_ms);
        offset
    }

    /// Keeps a message numbered elsewhere: by the cluster's shared stream
    /// (`shared`). A gap in the numbers (this node was cut off from the
    /// cluster for longer than the stream keeps messages) forgets what
    /// came before it, so a page asking from before the gap is told to
    /// reset rather than sent a history with a hole.
    pub fn keep_numbered(&mut self, entry: Arc<Entry>) {
        if entry.seq != self.history.last_seq() + 1 {
            let epoch = self.history.epoch();
            self.restart(epoch, entry.seq - 1);
        }
        self.keep(entry, Entry::now_ms());
    }

    /// Starts over in `epoch` after `last_seq`, forgetting every message:
    /// the cluster's stream began anew (Redis lost it).
    pub fn restart(&mut self, epoch: u64, last_seq: u64) {
        let freed = self.history.restart(epoch, last_seq);
        self.recovery.memory.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Adds the next message and applies the window and the caps.
    fn keep(&mut self, entry: Arc<Entry>, now_ms: u64) {
        let recovery = self.recovery;
        let size = self.history.push(entry);
        recovery.memory.fetch_add(size, Ordering::Relaxed);
        let oldest_ms = now_ms.saturating_sub(millis(recovery.settings.window));
        let freed = self
            .history
            .expire(oldest_ms, recovery.settings.max_messages);
        recovery.memory.fetch_sub(freed, Ordering::Relaxed);
        recovery.enforce_memory_cap(Some(&mut self.history));
    }

    /// The first `limit` kept messages after `seq` that reached
    /// `recipient`.
    pub fn after(
        &self,
        seq: u64,
        recipient: Recipient<'_>,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, Missed> {
        self.history.after(seq, recipient, limit)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(max_messages: usize, max_memory: usize) -> Recovery {
        Recovery::new(
            RecoverySettings {
                window: Duration::from_secs(120),
                max_messages,
                max_memory,
                max_replay: 2,
            },
            &["/".to_owned(), "/chat".to_owned()],
            None,
        )
    }

    async fn publish(recovery: &Recovery, namespace: &str, users: &[&str]) -> Offset {
        let payload = RawValue::from_string("{\"n\":1}".to_owned()).unwrap();
        let target = if users.is_empty() {
            Target::everyone()
        } else {
            Target::users(users.iter().copied())
        };
        let mut stream = recovery.lock(namespace).await.unwrap();
        stream.record("e", &payload, &target)
    }

    const ANYONE: Recipient<'static> = Recipient {
        user: None,
        rooms: &[],
    };

    #[tokio::test]
    async fn offsets_follow_each_other_per_namespace() {
        let recovery = recovery(100, usize::MAX);
        let start = recovery.position("/").await.unwrap();
        assert_eq!(start.seq, 0);
        assert_eq!(publish(&recovery, "/", &[]).await.seq, 1);
        assert_eq!(publish(&recovery, "/", &[]).await.seq, 2);
        assert_eq!(publish(&recovery, "/chat", &[]).await.seq, 1);
        assert_eq!(recovery.position("/").await.unwrap().seq, 2);
        assert!(recovery.position("/nope").await.is_none());
    }

    #[tokio::test]
    async fn a_page_resumes_from_its_offset_or_is_told_to_reset() {
        let recovery = recovery(100, usize::MAX);
        let seen = publish(&recovery, "/", &[]).await;
        publish(&recovery, "/", &["42"]).await;
        publish(&recovery, "/", &[]).await;
        // User 42 missed three, more than max_replay (2): reset, not a
        // long replay.
        let start = Offset { seq: 0, ..seen };
        let user = Recipient {
            user: Some("42"),
            rooms: &[],
        };
        assert!(matches!(
            recovery.resume("/", Some(&start.to_string()), user).await,
            Some(Resume::Reset { .. })
        ));
        let Some(Resume::Recovered {
            from,
            entries,
            upto,
        }) = recovery.resume("/", Some(&seen.to_string()), ANYONE).await
        else {
            panic!("should recover");
        };
        assert_eq!(from, seen);
        assert_eq!(upto.seq, 3);
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);

        let other_epoch = Offset {
            epoch: seen.epoch + 1,
            ..seen
        };
        for requested in [
            None,
            Some("garbage".to_owned()),
            Some(other_epoch.to_string()),
        ] {
            let resume = recovery.resume("/", requested.as_deref(), ANYONE).await;
            assert!(
                matches!(resume, Some(Resume::Reset { position }) if position.seq == 3),
                "{requested:?}: {resume:?}"
            );
        }
    }

    #[tokio::test]
    async fn history_is_capped_per_namespace_and_in_memory() {
        let recovery = recovery(3, usize::MAX);
        for _ in 0..5 {
            publish(&recovery, "/", &[]).await;
        }
        let history = recovery.lock("/").await.unwrap();
        assert_eq!(history.after(2, ANYONE, usize::MAX).unwrap().len(), 3);
        assert!(history.after(1, ANYONE, usize::MAX).is_err());
        drop(history);

        let one = Entry {
            seq: 1,
            published_ms: 0,
            event: "e".into(),
            payload: RawValue::from_string("{\"n\":1}".to_owned()).unwrap(),
            users: Vec::new(),
            rooms: Vec::new(),
            except_users: Vec::new(),
        }
        .size();
        let recovery = recovery_with_memory(one * 4);
        for namespace in ["/", "/chat", "/", "/chat", "/", "/chat"] {
            publish(&recovery, namespace, &[]).await;
        }
        // Six messages, room for four: the oldest two (one of each) went.
        assert!(recovery.memory.load(Ordering::Relaxed) <= one * 4);
        assert_eq!(
            recovery
                .lock("/")
                .await
                .unwrap()
                .after(1, ANYONE, usize::MAX)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            recovery
                .lock("/chat")
                .await
                .unwrap()
                .after(1, ANYONE, usize::MAX)
                .unwrap()
                .len(),
            2
        );
    }

    fn recovery_with_memory(max_memory: usize) -> Recovery {
        recovery(100, max_memory)
    }
}

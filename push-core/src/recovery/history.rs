//! The messages a namespace has published within the recovery window.
//!
//! One [`History`] per namespace keeps its recent messages in publish
//! order, each with its sequence number, when it was published and whom it
//! was for, so that a page coming back can be sent exactly what it would
//! have received, and nothing meant for someone else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Bookkeeping counted per message besides its text: the entry, its `Arc`
/// and its place in the queue. An estimate: it keeps the memory cap honest
/// for small messages, where it dominates.
const ENTRY_OVERHEAD: usize = 128;

/// A published message as kept for replay.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch: wall-clock time, so that a history
    /// read back after a restart still knows how old each message is.
    pub published_ms: u64,
    pub event: Box<str>,
    pub payload: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<Box<str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<Box<str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except_users: Vec<Box<str>>,
}

/// Who a connection is, for choosing what to replay to it.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// `None` for a guest.
    pub user: Option<&'a str>,
    /// The site's names of the rooms the connection is in.
    pub rooms: &'a [String],
}

impl Entry {
    /// The message numbered `seq`, published at `published_ms`.
    pub fn new(
        seq: u64,
        published_ms: u64,
        event: &str,
        payload: &RawValue,
        target: &push_client::Target<'_>,
    ) -> Self {
        let names = |list: &[std::borrow::Cow<'_, str>]| {
            list.iter().map(|name| Box::from(&**name)).collect()
        };
        Self {
            seq,
            published_ms,
            event: event.into(),
            payload: payload.to_owned(),
            users: names(&target.users),
            rooms: names(&target.rooms),
            except_users: names(&target.except_users),
        }
    }

    /// A message as [`Entry`] reads it back from JSON, encoded straight
    /// from the publish: a cluster sends it to Redis as it is, and building
    /// an `Entry` first would copy every part of it once more.
    pub fn encode(
        published_ms: u64,
        event: &str,
        payload: &RawValue,
        target: &push_client::Target<'_>,
    ) -> Result<Vec<u8>, serde_json::Error> {
        type Names<'a> = [std::borrow::Cow<'a, str>];
        #[derive(Serialize)]
        struct Borrowed<'a> {
            seq: u64,
            published_ms: u64,
            event: &'a str,
            payload: &'a RawValue,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            users: &'a Names<'a>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            rooms: &'a Names<'a>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            except_users: &'a Names<'a>,
        }
        serde_json::to_vec(&Borrowed {
            seq: 0,
            published_ms,
            event,
            payload,
            users: &target.users,
            rooms: &target.rooms,
            except_users: &target.except_users,
        })
    }

    /// Whom the message is for, as a publish names it.
    pub fn target(&self) -> push_client::Target<'_> {
        fn names(list: &[Box<str>]) -> Vec<std::borrow::Cow<'_, str>> {
            list.iter()
                .map(|name| std::borrow::Cow::Borrowed(&**name))
                .collect()
        }
        push_client::Target {
            users: names(&self.users),
            rooms: names(&self.rooms),
            except_users: names(&self.except_users),
        }
    }

    /// Whether the message went to `recipient`: the same rule as delivery
    /// (everyone, or one of the users or rooms named, minus `except_users`).
    pub fn reaches(&self, recipient: Recipient<'_>) -> bool {
        let user = recipient.user;
        if user.is_some_and(|user| self.except_users.iter().any(|u| &**u == user)) {
            return false;
        }
        if self.users.is_empty() && self.rooms.is_empty() {
            return true;
        }
        user.is_some_and(|user| self.users.iter().any(|u| &**u == user))
            || self
                .rooms
                .iter()
                .any(|room| recipient.rooms.iter().any(|r| **r == **room))
    }

    /// Memory the entry is counted for under the memory cap.
    pub fn size(&self) -> usize {
        let names = |list: &[Box<str>]| list.iter().map(|name| name.len()).sum::<usize>();
        ENTRY_OVERHEAD
            + self.event.len()
            + self.payload.get().len()
            + names(&self.users)
            + names(&self.rooms)
            + names(&self.except_users)
    }

    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// The range asked for is no longer (or never was) all there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed;

/// A namespace's recent messages, oldest first.
#[derive(Debug, Default)]
pub struct History {
    /// The epoch its sequence numbers belong to (see `Offset`).
    epoch: u64,
    entries: VecDeque<Arc<Entry>>,
    /// The sequence number of the last message published, kept or not.
    last_seq: u64,
    /// What the kept entries count for under the memory cap.
    bytes: usize,
}

impl History {
    /// A history whose next message will be `last_seq + 1`.
    pub fn starting_after(last_seq: u64) -> Self {
        Self {
            last_seq,
            ..Self::default()
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Forgets every message and starts numbering after `last_seq` in
    /// `epoch`; returns the bytes freed.
    pub fn restart(&mut self, epoch: u64, last_seq: u64) -> usize {
        let freed = self.bytes;
        *self = Self {
            epoch,
            ..Self::starting_after(last_seq)
        };
        freed
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest kept message was published.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.entries.front().map(|entry| entry.published_ms)
    }

    /// Adds the next message, whose `seq` must follow [`Self::last_seq`];
    /// returns what it counts for under the memory cap.
    pub fn push(&mut self, entry: Arc<Entry>) -> usize {
        debug_assert_eq!(entry.seq, self.last_seq + 1);
        let size = entry.size();
        self.last_seq = entry.seq;
        self.bytes += size;
        self.entries.push_back(entry);
        size
    }

    /// Drops the oldest message; returns the bytes freed.
    pub fn drop_oldest(&mut self) -> Option<usize> {
        let entry = self.entries.pop_front()?;
        let size = entry.size();
        self.bytes -= size;
        Some(size)
    }

    /// Drops messages published before `oldest_ms` and any beyond the
    /// newest `max_messages`; returns the bytes freed.
    pub fn expire(&mut self, oldest_ms: u64, max_messages: usize) -> usize {
        let mut freed = 0;
        while self.entries.len() > max_messages || self.oldest_ms().is_some_and(|at| at < oldest_ms)
        {
            freed += self.drop_oldest().unwrap_or(0);
        }
        freed
    }

    /// The first `limit` messages after `seq` that reached `recipient`, if
    /// every message after `seq` is still kept.
    pub fn after(
        &self,
        seq: u64,
        recipient: Recipient<'_>,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, Missed> {
        if seq > self.last_seq {
            return Err(Missed);
        }
        let first_kept = self
            .entries
            .front()
            .map_or(self.last_seq + 1, |entry| entry.seq);
        if seq + 1 < first_kept {
            return Err(Missed);
        }
        let skip = usize::try_from(seq + 1 - first_kept).unwrap_or(usize::MAX);
        Ok(self
            .entries
            .iter()
            .skip(skip)
            .filter(|entry| entry.reaches(recipient))
            .take(limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, users: &[&str], rooms: &[&str], except: &[&str]) -> Arc<Entry> {
        let names = |list: &[&str]| list.iter().map(|&n| Box::from(n)).collect();
        Arc::new(Entry {
            seq,
            published_ms: 1_000 * seq,
            event: "e".into(),
            payload: RawValue::from_string(seq.to_string()).unwrap(),
            users: names(users),
            rooms: names(rooms),
            except_users: names(except),
        })
    }

    fn seqs(entries: &[Arc<Entry>]) -> Vec<u64> {
        entries.iter().map(|entry| entry.seq).collect()
    }

    #[test]
    fn an_encoded_publish_reads_back_as_its_entry() {
        let payload = RawValue::from_string("{\"n\":1}".to_owned()).unwrap();
        let target = push_client::Target::users(["42", "7"]);
        let encoded = Entry::encode(5, "news", &payload, &target).unwrap();
        let built = serde_json::to_vec(&Entry::new(0, 5, "news", &payload, &target)).unwrap();
        assert_eq!(encoded, built);
        let read: Entry = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(&*read.users, [Box::from("42"), Box::from("7")]);
    }

    #[test]
    fn replay_is_what_was_delivered() {
        let mut history = History::default();
        history.push(entry(1, &[], &[], &[]));
        history.push(entry(2, &["42"], &[], &[]));
        history.push(entry(3, &["7"], &[], &[]));
        history.push(entry(4, &[], &["news"], &[]));
        history.push(entry(5, &[], &[], &["42"]));
        history.push(entry(6, &["7"], &["news"], &[]));
        let rooms = ["news".to_owned()];
        let alice = Recipient {
            user: Some("42"),
            rooms: &rooms,
        };
        assert_eq!(
            seqs(&history.after(0, alice, usize::MAX).unwrap()),
            [1, 2, 4, 6]
        );
        assert_eq!(seqs(&history.after(3, alice, usize::MAX).unwrap()), [4, 6]);
        let guest = Recipient {
            user: None,
            rooms: &[],
        };
        assert_eq!(seqs(&history.after(0, guest, usize::MAX).unwrap()), [1, 5]);
        assert_eq!(
            seqs(&history.after(6, guest, usize::MAX).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(seqs(&history.after(0, alice, 2).unwrap()), [1, 2]);
    }

    #[test]
    fn a_gap_or_a_future_offset_cannot_be_replayed() {
        let mut history = History::default();
        for seq in 1..=5 {
            history.push(entry(seq, &[], &[], &[]));
        }
        assert_eq!(
            history.expire(3_000, usize::MAX),
            2 * entry(1, &[], &[], &[]).size()
        );
        let anyone = Recipient {
            user: None,
            rooms: &[],
        };
        assert!(history.after(1, anyone, usize::MAX).is_err());
        assert_eq!(
            seqs(&history.after(2, anyone, usize::MAX).unwrap()),
            [3, 4, 5]
        );
        assert!(history.after(6, anyone, usize::MAX).is_err());
        history.expire(0, 1);
        assert_eq!(seqs(&history.after(4, anyone, usize::MAX).unwrap()), [5]);
        assert!(history.after(3, anyone, usize::MAX).is_err());
    }

    #[test]
    fn nothing_published_since_is_nothing_missed() {
        let mut history = History::starting_after(9);
        let anyone = Recipient {
            user: None,
            rooms: &[],
        };
        assert!(history.after(9, anyone, usize::MAX).unwrap().is_empty());
        history.push(entry(10, &[], &[], &[]));
        history.expire(u64::MAX, usize::MAX);
        assert_eq!(history.len(), 0);
        assert!(history.after(10, anyone, usize::MAX).unwrap().is_empty());
        assert!(history.after(9, anyone, usize::MAX).is_err());
    }
}

//! The cluster's message history, in Redis, read by every node in one order.
//!
//! With recovery on, a page that reconnects to another node must be able
//! to say "I saw offset X" and mean the same message there. So a cluster
//! numbers each namespace's messages once, in Redis: a Lua script takes
//! the next numbers of the namespace and appends the messages to its Redis
//! Stream, atomically, so every publish on every node gets its place in one
//! order. The same script publishes the new entry, numbers and all, on the
//! namespace's live channel; every node hands each message it hears there,
//! in that order, to its own connections, keeping a copy in its local
//! `recovery::History`: replaying what a page missed, and the hand-over
//! from replay to live messages, then work on every node exactly as on one
//! (see `socketio::resume`). A node that missed entries (it was cut off,
//! or fell behind) reads them from the stream (`read`).
//!
//! Why not socketioxide's Redis adapter, as with recovery off: a message
//! and its place in the history would then travel separately, and a page
//! resuming while one is in flight could receive it twice or not at all.
//! socket.io's own Redis Streams adapter recovers connection state for the
//! same reason. And why not each node blocked in `XREAD` on the stream: a
//! blocked read must be asked again after every entry, a second round trip
//! per node and publish that the channel does not cost.
//!
//! Publishes are numbered in batches (`append`), and each batch is one
//! entry of the stream: its id is the number of its last message, and it
//! holds the epoch (`e`), a random tag (`t`) and the messages (`b`, one
//! field for all). One entry per batch rather than per message is what
//! lets Redis keep up with a pipelining publisher: its work is per entry.
//!
//! The stream keeps about `recovery_max_messages` per namespace; each node
//! applies the window and the memory cap to its own copy (`read`). The
//! namespace's epoch lives in Redis too. Whenever the history may have
//! lost messages that pages saw (Redis restarted empty, or a failover
//! lost the last writes), a new epoch begins, offsets of the old one are
//! no longer honoured, and pages are told to reload their state.
//!
//! In a Redis Cluster, a namespace's keys and its live channel share a
//! hash tag, so that the scripts that use them together run on one shard
//! (which publishes with `SPUBLISH`), and namespaces spread over the
//! shards.

mod append;
mod read;
mod unnumbered;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

pub use self::append::Unnumbered;
use self::append::{Append, Appender};
use self::unnumbered::HandedOut;
pub use self::unnumbered::{Mark, UNNUMBERED_EVENT};
use super::link::{LinkError, RedisLink};
use super::namespace_name;
use super::servers::publish_command;
use crate::recovery::{Entry, Offset, Recovery};

/// The start of the scripts that use a namespace's epoch: reads it into
/// `epoch`, creating it on first use. KEYS[2]: the epoch. ARGV[1]: a new
/// epoch.
const EPOCH: &str = r"
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
";

/// Appends a batch of messages as one entry: takes the next numbers from
/// the namespace's counter and adds the entry under the last one, with
/// the epoch and a tag that tells this entry from another given the same
/// number (after a failover lost it, see `read`), and publishes it on the
/// live channel (see [`Batch::from_live`] for its form). Keeps about `cap`
/// messages. KEYS: stream, epoch, counter. ARGV: a new epoch, the cap, the
/// tag, the publish command, the live channel, how many messages, and the
/// messages (see [`Messages`]). Returns the epoch and the first message's
/// number.
const APPEND: &str = r"
local count = tonumber(ARGV[6])
local last = redis.call('INCRBY', KEYS[3], count)
redis.call('XADD', KEYS[1], 'MINID', '~', '0-' .. math.max(last - tonumber(ARGV[2]), 0),
  '0-' .. last, 'e', epoch, 't', ARGV[3], 'b', ARGV[7])
redis.call(ARGV[4], ARGV[5], last .. ' ' .. epoch .. ' ' .. ARGV[3] .. ' ' .. ARGV[7])
return {epoch, last - count + 1}
";

/// Where a namespace's stream stands: its epoch, the number of its last
/// message, and the key that signs marks (see [`unnumbered`]), set to the
/// one offered if there is none. KEYS: stream, epoch, counter, marks. ARGV:
/// a new epoch, a key.
const POSITION: &str = r"
local key = redis.call('HGET', KEYS[4], 'key')
if not key then
  key = ARGV[2]
  redis.call('HSET', KEYS[4], 'key', key)
end
return {epoch, tonumber(redis.call('GET', KEYS[3]) or '0'), key}
";

/// Starts a new epoch, unless another node already did: the epoch must
/// still be the one the caller saw. Marks where it starts with an entry
/// without messages, so that nodes reading the stream learn of it. With
/// hand-outs to tell of (pairs of a node and its count, see
/// [`unnumbered`]), only if one of them is news: the marks hash keeps each
/// node's count that an epoch covered. Publishes the marker on the live
/// channel. KEYS: stream, epoch, counter, marks. ARGV: the epoch seen, the
/// new epoch, a tag, the publish command and the live channel, then the
/// pairs. Returns the epoch now and the marker's number (0 if none was
/// added: another node was first, or nothing was news).
const RENEW: &str = r"
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then
  return {current or '', 0}
end
local news = #ARGV == 5
for i = 6, #ARGV, 2 do
  local field = 'node:' .. ARGV[i]
  if tonumber(redis.call('HGET', KEYS[4], field) or '0') < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[4], field, ARGV[i + 1])
    news = true
  end
end
if not news then
  return {current, 0}
end
redis.call('SET', KEYS[2], ARGV[2])
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], '0-' .. seq, 'e', ARGV[2], 't', ARGV[3], 'b', '')
redis.call(ARGV[4], ARGV[5], seq .. ' ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' ')
return {ARGV[2], seq}
";

/// What the history hands to this node's connections, under the
/// namespace's lock.
pub enum Delivery {
    /// Messages, in order, each with its offset.
    Messages(Vec<(Offset, Arc<Entry>)>),
    /// This node's copy of the history starts over at `position`: what its
    /// connections received so far may not be all there was (the stream
    /// lost messages, or this node fell too far behind), so they are told
    /// to reload their state.
    Reset(Offset),
}

/// Hands what the history delivers to this node's connections.
pub type Deliver =
    Arc<dyn Fn(Arc<str>, Delivery) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The Redis keys of one namespace, and what its reader must know.
struct Keys {
    stream: String,
    epoch: String,
    counter: String,
    /// The channel each new entry is published on.
    live: String,
    /// The key that signs marks, and each node's count of hand-outs that
    /// an epoch covered.
    marks: String,
    /// Messages of the namespace handed out without a place in the
    /// history (Redis out of reach), here or, as pages say, elsewhere.
    handed_out: HandedOut,
}

impl Keys {
    /// The keys of `namespace`, and its live channel, on one shard of a
    /// Redis Cluster (see `namespace_name`).
    fn new(prefix: &str, namespace: &str, sharded: bool) -> Self {
        let key = |name: &str| namespace_name(prefix, namespace, name, sharded);
        Self {
            stream: key("history"),
            epoch: key("epoch"),
            counter: key("seq"),
            live: key("live"),
            marks: key("unnumbered"),
            handed_out: HandedOut::new(),
        }
    }
}

/// The cluster's history: appending to it, and reading it into this node.
pub struct SharedHistory {
    link: RedisLink,
    keys: HashMap<String, Arc<Keys>>,
    /// This node's copy of the history.
    recovery: Arc<Recovery>,
    /// Publishes waiting to be numbered, for the [`Appender`].
    appending: mpsc::UnboundedSender<Append>,
    /// The task that numbers them, until [`SharedHistory::run`] starts it.
    appender: std::sync::Mutex<Option<Appender>>,
    /// The scripts, each hashed once (Redis runs them by their hash).
    position: Script,
    renew: Script,
}

impl SharedHistory {
    /// The history of `namespaces`, copied into `recovery` and keeping
    /// about as many messages each as it does; [`SharedHistory::run`]
    /// starts reading it and numbering publishes.
    pub fn new(
        link: RedisLink,
        prefix: &str,
        namespaces: &[String],
        recovery: Arc<Recovery>,
    ) -> Self {
        let keys = namespaces
            .iter()
            .map(|namespace| {
                let keys = Keys::new(prefix, namespace, link.sharded());
                (namespace.clone(), Arc::new(keys))
            })
            .collect();
        let (appending, queue) = mpsc::unbounded_channel();
        let append = Script::new(&format!("{EPOCH}{APPEND}"));
        let appender = Appender::new(link.clone(), queue, recovery.max_messages(), append);
        Self {
            link,
            keys,
            recovery,
            appending,
            appender: std::sync::Mutex::new(Some(appender)),
            position: Script::new(&format!("{EPOCH}{POSITION}")),
            renew: Script::new(RENEW),
        }
    }

    /// Queues `message` (an `Entry` as JSON, see `Entry::encode`) to be
    /// numbered in the cluster's order and added to the stream; every node,
    /// this one included, then hands it out. Its place in the order is
    /// taken now; the future says where it went.
    pub fn append(
        &self,
        namespace: &str,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Offset, Unnumbered>> + Send + 'static {
        let queued = self.queue(namespace, message);
        async move {
            // The appender drops its queue only at shutdown, with the
            // message: none is left to hand out.
            queued?.await.unwrap_or_else(|_| {
                Err(Unnumbered {
                    error: LinkError::Down,
                    message: Vec::new(),
                })
            })
        }
    }

    /// Notes that this node's pages are handed a message of `namespace`
    /// that has no place in the history; returns the mark it carries
    /// instead of an offset. Once the link is back, a new epoch begins,
    /// and every node's pages are told to reload (they never got it; see
    /// `read`), or sooner, if a page brings the mark to another node.
    pub fn note_unnumbered(&self, namespace: &str) -> Option<Mark> {
        self.keys.get(namespace)?.handed_out.hand_out(namespace)
    }

    /// A page reconnects with `offset`: if it is a mark of another node's
    /// hand-out, signed by the cluster, a new epoch will tell every page
    /// about it.
    pub fn heard_from_page(&self, namespace: &str, offset: &str) {
        let (Some(keys), Ok(mark)) = (self.keys.get(namespace), offset.parse::<Mark>()) else {
            return;
        };
        if !keys.handed_out.hear(namespace, mark) {
            tracing::debug!(
                namespace,
                offset,
                "a page sent a mark the cluster did not sign; ignored"
            );
        }
    }

    fn queue(
        &self,
        namespace: &str,
        message: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<Offset, Unnumbered>>, Unnumbered> {
        let Some(keys) = self.keys.get(namespace) else {
            let error = LinkError::NotShared(namespace.to_owned());
            return Err(Unnumbered { error, message });
        };
        let (numbered, receiver) = oneshot::channel();
        let append = Append {
            keys: keys.clone(),
            message,
            numbered,
        };
        // Fails only once the appender has stopped: at shutdown.
        self.appending.send(append).map_err(|failed| Unnumbered {
            error: LinkError::Down,
            message: failed.0.message,
        })?;
        Ok(receiver)
    }
}

/// One entry of a namespace's stream: the messages numbered together.
struct Batch {
    /// The number of its last message (its id), or of the marker.
    last_seq: u64,
    epoch: u64,
    tag: Vec<u8>,
    messages: Messages,
}

impl Batch {
    /// The number of its first message.
    fn first_seq(&self) -> u64 {
        (self.last_seq + 1).saturating_sub(self.messages.len() as u64)
    }

    /// Reads a stream entry as Redis sends it: `[id, [field, value, ...]]`;
    /// `None` for one that is not a batch (some other program wrote it).
    fn parse(entry: Value) -> Option<Batch> {
        let Value::Array(parts) = entry else {
            return None;
        };
        let mut parts = parts.into_iter();
        let (Some(id), Some(Value::Array(fields))) = (parts.next(), parts.next()) else {
            return None;
        };
        let last_seq = seq_of(&redis::from_redis_value::<String>(id).ok()?)?;
        let (mut epoch, mut tag, mut messages) = (None, None, None);
        let mut fields = fields.into_iter();
        while let (Some(Value::BulkString(name)), Some(Value::BulkString(value))) =
            (fields.next(), fields.next())
        {
            match name.as_slice() {
                b"b" => messages = Messages::parse(value),
                b"e" => epoch = std::str::from_utf8(&value).ok().map(parse_epoch),
                b"t" => tag = Some(value),
                _ => {}
            }
        }
        Some(Batch {
            last_seq,
            epoch: epoch?,
            tag: tag?,
            messages: messages?,
        })
    }

    /// Reads an entry as the scripts publish it on the live channel: its
    /// number, epoch and tag, each followed by a space, then its messages
    /// (see [`Messages`]). `None` if it is not in that form.
    fn from_live(mut payload: Vec<u8>) -> Option<Batch> {
        let mut fields = payload.splitn(4, |&byte| byte == b' ');
        let last_seq = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let epoch = parse_epoch(std::str::from_utf8(fields.next()?).ok()?);
        let tag = fields.next()?.to_vec();
        let header = payload.len() - fields.next()?.len();
        payload.drain(..header);
        Some(Batch {
            last_seq,
            epoch,
            tag,
            messages: Messages::parse(payload)?,
        })
    }
}

/// The messages of one entry, as the stream keeps them (field `b`) and the
/// live channel carries them: one after another, each as its length in
/// decimal, a colon and its bytes. One field for the whole batch keeps
/// Redis's work per entry, not per message.
struct Messages {
    bytes: Vec<u8>,
    /// Where each message lies in `bytes`.
    spans: Vec<Range<usize>>,
}

impl Messages {
    /// Lays `messages` out in one buffer.
    fn join<'a>(messages: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
        // Twenty digits hold any length.
        let size: usize = messages.clone().map(|message| 21 + message.len()).sum();
        let mut bytes = Vec::with_capacity(size);
        for message in messages {
            // Writing to a Vec cannot fail.
            let _ = write!(bytes, "{}:", message.len());
            bytes.extend_from_slice(message);
        }
        bytes
    }

    /// Finds the messages in `bytes`; `None` if they are not in that form.
    fn parse(bytes: Vec<u8>) -> Option<Messages> {
        let mut spans = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let colon = at + bytes[at..].iter().position(|&byte| byte == b':')?;
            let length: usize = std::str::from_utf8(&bytes[at..colon]).ok()?.parse().ok()?;
            let end = (colon + 1).checked_add(length)?;
            if end > bytes.len() {
                return None;
            }
            spans.push(colon + 1..end);
            at = end;
        }
        Some(Messages { bytes, spans })
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|span| &self.bytes[span.clone()])
    }
}

/// The number of a stream entry, whose id is `0-<number>`.
fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

/// An epoch as stored in Redis (decimal text); a value some other program
/// wrote there reads as epoch 0, which no page holds.
fn parse_epoch(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_entry_reads_as_the_scripts_publish_it() {
        let messages: [&[u8]; 3] = [b"{\"a\"}", b"", b"a b:c"];
        let mut payload = b"42 1765000000 977 ".to_vec();
        payload.extend(Messages::join(messages.iter().copied()));
        let batch = Batch::from_live(payload).unwrap();
        assert_eq!(
            (batch.last_seq, batch.epoch, batch.tag.as_slice()),
            (42, 1_765_000_000, &b"977"[..])
        );
        assert!(batch.messages.iter().eq(messages));
        assert_eq!(batch.first_seq(), 40);
    }

    #[test]
    fn a_live_marker_has_no_messages() {
        let marker = Batch::from_live(b"7 99 5 ".to_vec()).unwrap();
        assert!(marker.messages.is_empty());
        assert_eq!((marker.last_seq, marker.first_seq()), (7, 8));
    }

    #[test]
    fn a_live_entry_cut_short_or_garbled_is_refused() {
        for garbled in [
            &b"42 1 9 10:short"[..],
            b"42 1 9 x:abc",
            b"nope 1 9 ",
            b"42 1",
            b"42 1 9 5",
        ] {
            assert!(Batch::from_live(garbled.to_vec()).is_none(), "{garbled:?}");
        }
    }
}

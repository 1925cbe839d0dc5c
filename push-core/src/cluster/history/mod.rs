//! The cluster's message history, in Redis, read by every node in one order.
//!
//! With recovery on, a page that reconnects to another node must be able
//! to say "I saw offset X" and mean the same message there. So a cluster
//! numbers each namespace's messages once, in Redis: a Lua script takes
//! the next number of the namespace and appends the message to its Redis
//! Stream, atomically, so every publish on every node gets its place in one
//! order. Every node then reads the streams (`XREAD`) and hands each
//! message, in that order, to its own connections, keeping a copy in its
//! local [`History`](crate::recovery::History): replaying what a page
//! missed, and the hand-over from replay to live messages, then work on
//! every node exactly as on one (see `socketio::resume`).
//!
//! Why messages reach nodes through the stream rather than through the
//! Redis adapter's pub/sub: a message and its place in the history would
//! then travel separately, and a page resuming while one is in flight
//! could receive it twice or not at all. socket.io's own Redis Streams
//! adapter recovers connection state for the same reason. With recovery
//! off, nothing needs numbering and the adapter carries publishes.
//!
//! Publishes are numbered in batches, one round trip for many ([`append`]).
//!
//! The stream keeps at most `recovery_max_messages` per namespace; each
//! node applies the window and the memory cap to its own copy. The
//! namespace's epoch lives in Redis too: if Redis loses the stream (a
//! restart without persistence), a new epoch begins and pages are told to
//! reload their state, as after a restart of one node without `state_dir`.

mod append;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use self::append::Append;
pub use self::append::Appender;
use super::link::{LinkError, LinkState, RedisLink};
use super::servers::Connection;
use crate::recovery::{Entry, Offset, Recovery, new_epoch};

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

/// Appends messages: numbers them with the namespace's counter and adds
/// each to the stream under its number, with the epoch (`e`) and a tag
/// (`t`) that tells it from another message given the same number (after
/// a failover lost it, see `align`). KEYS: stream, epoch, counter. ARGV: a
/// new epoch, the stream's cap, then a tag and a message for each message.
/// Returns the epoch and the first message's number.
const APPEND: &str = r"
local count = (#ARGV - 2) / 2
local last = redis.call('INCRBY', KEYS[3], count)
local first = last - count + 1
for i = 0, count - 1 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-' .. (first + i),
    'e', epoch, 't', ARGV[3 + 2 * i], 'm', ARGV[4 + 2 * i])
end
return {epoch, first}
";

/// Where a namespace's stream stands: its epoch and the number of its last
/// message. KEYS: stream, epoch, counter. ARGV: a new epoch.
const POSITION: &str = r"
return {epoch, tonumber(redis.call('GET', KEYS[3]) or '0')}
";

/// Starts a new epoch, for a stream whose numbers went backwards. KEYS:
/// epoch. ARGV: the new epoch.
const RENEW: &str = "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]";

/// How long one `XREAD` waits for new messages before asking again; also
/// how long a node takes to notice the end of the service at the latest.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Messages read at once; a burst is handed out in batches of this many.
const READ_BATCH: usize = 1000;
/// The wait before trying again after the stream could not be read.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Hands a message that came through the stream to this node's
/// connections, with its offset; called under the namespace's lock.
pub type Deliver = Arc<
    dyn Fn(String, Offset, Arc<Entry>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// The Redis keys of one namespace.
struct Keys {
    stream: String,
    epoch: String,
    counter: String,
}

/// The cluster's history: appending to it, and reading it into this node.
pub struct SharedHistory {
    link: RedisLink,
    keys: HashMap<String, Arc<Keys>>,
    max_messages: usize,
    /// Publishes waiting to be numbered, for the [`Appender`].
    appending: mpsc::UnboundedSender<Append>,
    /// The scripts, each hashed once (Redis runs them by their hash).
    position: Script,
    renew: Script,
}

impl SharedHistory {
    /// The history of `namespaces`, and the task that numbers their
    /// publishes, to be run beside it.
    pub fn new(
        link: RedisLink,
        prefix: &str,
        namespaces: &[String],
        max_messages: usize,
    ) -> (Self, Appender) {
        let keys = namespaces
            .iter()
            .map(|namespace| {
                let keys = Keys {
                    stream: format!("{prefix}:history:{namespace}"),
                    epoch: format!("{prefix}:epoch:{namespace}"),
                    counter: format!("{prefix}:seq:{namespace}"),
                };
                (namespace.clone(), Arc::new(keys))
            })
            .collect();
        let (appending, queue) = mpsc::unbounded_channel();
        let append = Script::new(&format!("{EPOCH}{APPEND}"));
        let appender = Appender::new(link.clone(), queue, max_messages, append);
        let history = Self {
            link,
            keys,
            max_messages,
            appending,
            position: Script::new(&format!("{EPOCH}{POSITION}")),
            renew: Script::new(RENEW),
        };
        (history, appender)
    }

    /// Queues `entry` to be numbered in the cluster's order and added to
    /// the stream; every node, this one included, then hands it out. Its
    /// place in the order is taken now; the future says where it went.
    /// `entry.seq` is ignored.
    pub fn append(
        &self,
        namespace: &str,
        entry: &Entry,
    ) -> impl Future<Output = Result<Offset, LinkError>> + Send + 'static {
        let queued = self.queue(namespace, entry);
        async move { queued?.await.unwrap_or(Err(LinkError::Down)) }
    }

    fn queue(
        &self,
        namespace: &str,
        entry: &Entry,
    ) -> Result<oneshot::Receiver<Result<Offset, LinkError>>, LinkError> {
        let keys = self
            .keys
            .get(namespace)
            .ok_or_else(|| LinkError::NotShared(namespace.to_owned()))?;
        let (numbered, receiver) = oneshot::channel();
        let append = Append {
            keys: keys.clone(),
            tag: fastrand::u64(..),
            message: serde_json::to_vec(entry)?,
            numbered,
        };
        // Fails only once the appender has stopped: at shutdown.
        self.appending.send(append).map_err(|_| LinkError::Down)?;
        Ok(receiver)
    }

    /// Reads every namespace's stream into this node, from where its copy
    /// ends, handing each message out with `deliver`, until `shutdown`.
    /// Each time the link comes (back) up, the copies are checked against
    /// Redis first: a new epoch or a stream whose numbers went backwards
    /// starts the copy over from what the stream still holds.
    pub async fn run(
        self: Arc<Self>,
        recovery: Arc<Recovery>,
        deliver: Deliver,
        shutdown: CancellationToken,
    ) {
        let mut state = self.link.state();
        let mut first = true;
        loop {
            if !wait_up(&mut state, &shutdown).await {
                return;
            }
            let reading = async {
                let mut connection = self.link.dedicated(READ_BLOCK).await?;
                self.align(&mut connection, &recovery, &deliver, first)
                    .await?;
                first = false;
                loop {
                    self.read_once(&mut connection, &recovery, &deliver).await?;
                }
            };
            let result: Result<(), LinkError> = tokio::select! {
                () = shutdown.cancelled() => return,
                result = reading => result,
            };
            if let Err(error) = result {
                tracing::debug!(%error, "reading the cluster's history stopped; trying again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
    }

    /// Makes each namespace's copy agree with Redis: same epoch, and the
    /// messages the stream holds that the copy lacks.
    ///
    /// When the copy starts over, what the stream holds is history to keep
    /// for replay, not news to hand out: at this node's start (its
    /// connections are new), or when the numbers went backwards (its
    /// connections had those messages). Only a new epoch met later (Redis
    /// came back empty) makes them news: all were published since, and
    /// this node's connections have none of them.
    async fn align(
        &self,
        connection: &mut Connection,
        recovery: &Recovery,
        deliver: &Deliver,
        first: bool,
    ) -> Result<(), LinkError> {
        for (namespace, keys) in &self.keys {
            let (epoch, last_seq): (String, u64) = self
                .position
                .key(&keys.stream)
                .key(&keys.epoch)
                .key(&keys.counter)
                .arg(new_epoch().to_string())
                .invoke_async(connection)
                .await?;
            let mut epoch = parse_epoch(&epoch);
            let Some(mut stream) = recovery.lock(namespace).await else {
                continue;
            };
            let copy = stream.position();
            if copy.epoch == epoch && last_seq >= copy.seq {
                continue; // Reading on from the copy's end catches up.
            }
            let news = !first && copy.epoch != epoch;
            if copy.epoch == epoch {
                // The numbers went backwards: Redis lost its latest writes.
                // Offsets pages hold may name messages that no longer
                // exist, so they must not be honoured.
                tracing::warn!(
                    namespace,
                    "the cluster's history in Redis is older than this node's copy (Redis lost recent writes): a new epoch begins and pages will reload their state"
                );
                let renewed: String = self
                    .renew
                    .key(&keys.epoch)
                    .arg(new_epoch().to_string())
                    .invoke_async(connection)
                    .await?;
                epoch = parse_epoch(&renewed);
            }
            let held: StreamRangeReply = redis::cmd("XRANGE")
                .arg(&keys.stream)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(self.max_messages)
                .query_async(connection)
                .await?;
            let oldest = held.ids.first().and_then(|id| seq_of(&id.id));
            stream.restart(epoch, oldest.map_or(last_seq, |oldest| oldest - 1));
            for id in &held.ids {
                let Some(entry) = entry_of(id) else { continue };
                let entry = Arc::new(entry);
                stream.keep_numbered(entry.clone());
                if news {
                    let offset = stream.offset(entry.seq);
                    deliver(namespace.clone(), offset, entry).await;
                }
            }
        }
        Ok(())
    }

    /// Waits for new messages in any namespace and hands them out.
    async fn read_once(
        &self,
        connection: &mut Connection,
        recovery: &Recovery,
        deliver: &Deliver,
    ) -> Result<(), LinkError> {
        let mut streams = Vec::with_capacity(self.keys.len());
        let mut after = Vec::with_capacity(self.keys.len());
        for (namespace, keys) in &self.keys {
            if let Some(position) = recovery.position(namespace).await {
                streams.push(keys.stream.as_str());
                after.push(format!("0-{}", position.seq));
            }
        }
        let options = StreamReadOptions::default()
            .block(millis(READ_BLOCK))
            .count(READ_BATCH);
        let read: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg(&options)
            .arg("STREAMS")
            .arg(&streams)
            .arg(&after)
            .query_async(connection)
            .await?;
        for key in read.map(|read| read.keys).unwrap_or_default() {
            let Some(namespace) = self.namespace_of(&key.key) else {
                continue;
            };
            let Some(mut stream) = recovery.lock(namespace).await else {
                continue;
            };
            for id in &key.ids {
                let Some(entry) = entry_of(id) else {
                    tracing::warn!(
                        namespace,
                        id = id.id,
                        "an unreadable message in the cluster's history; skipped"
                    );
                    continue;
                };
                let entry = Arc::new(entry);
                stream.keep_numbered(entry.clone());
                let offset = stream.offset(entry.seq);
                deliver(namespace.to_owned(), offset, entry).await;
            }
        }
        Ok(())
    }

    fn namespace_of(&self, stream: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, keys)| keys.stream == stream)
            .map(|(namespace, _)| namespace.as_str())
    }
}

/// Waits until the link is up; false if `shutdown` fired first.
async fn wait_up(state: &mut watch::Receiver<LinkState>, shutdown: &CancellationToken) -> bool {
    loop {
        if *state.borrow_and_update() == LinkState::Up {
            return true;
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            changed = state.changed() => if changed.is_err() { return false },
        }
    }
}

/// The number of a stream entry, whose id is `0-<number>`.
fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

/// A stream entry as a numbered message.
fn entry_of(id: &StreamId) -> Option<Entry> {
    let seq = seq_of(&id.id)?;
    let message: Vec<u8> = id.get("m")?;
    let mut entry: Entry = serde_json::from_slice(&message).ok()?;
    entry.seq = seq;
    Some(entry)
}

/// An epoch as stored in Redis (decimal text); a value some other program
/// wrote there reads as epoch 0, which no page holds.
fn parse_epoch(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

fn millis(duration: Duration) -> usize {
    usize::try_from(duration.as_millis()).unwrap_or(usize::MAX)
}

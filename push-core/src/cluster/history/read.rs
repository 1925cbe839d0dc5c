//! Reading the cluster's history into this node, and noticing when it
//! lost messages.
//!
//! Each namespace has a reader of its own. Each time the link comes (back)
//! up, the reader first makes this node's copy agree with Redis
//! ([`Reader::align`]) and reads what it missed from the stream, then hands
//! out the messages of each new entry as the live channel brings it. An
//! entry the channel skipped (this node's queue overflowed) is read from
//! the stream when the next one shows the gap, or at the next check, once
//! a second: the channel is the fast way, the stream the sure one.
//!
//! The promise to pages is that a message is either delivered or the page
//! is told to reload (`push:recovery` with `recovered: false`), never
//! silently missed. Three things can break the copy's continuity, and
//! each makes this node's copy start over and its pages reset:
//!
//! - **A gap in the numbers**: this node was cut off longer than the stream
//!   keeps messages, so what it missed is gone.
//! - **Another epoch**: Redis lost the stream and began anew, or another
//!   node started a new epoch (below).
//! - **Lost writes**: Redis replicates asynchronously, so a failover (or a
//!   restart from an older snapshot) can lose the last entries, which this
//!   node may already have handed out, and the next publishes are given
//!   the same numbers again. Every entry carries a random tag; on
//!   reconnecting, a reader checks that the entry it read last is still
//!   there with the same tag. If not (or the numbers went backwards),
//!   offsets pages hold may name messages that no longer exist, so the
//!   reader starts a new epoch in Redis, marked by an entry without
//!   messages that tells every other node to start over too.
//!
//! A fourth is a node's own doing: a publish it took while Redis was out of
//! reach went to its own pages only, without an offset. The other nodes'
//! pages never got it, so once the link is back this node's reader starts
//! a new epoch the same way, and every page is told to reload. If that
//! node died first, its pages bring the news: the mark they got instead of
//! an offset (see `unnumbered`), which makes the node they reconnect to
//! start the new epoch instead.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::Value;
use socketioxide_redis::drivers::{ChanItem, MessageStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Batch, Deliver, Delivery, Keys, Mark, SharedHistory, parse_epoch, publish_command};
use crate::cluster::link::{Bundles, LinkError};
use crate::cluster::servers::Connection;
use crate::outcomes::LinkState;
use crate::recovery::{Entry, Recovery, Stream, new_epoch};

/// How often a reader checks the stream for entries the live channel did
/// not bring, and for messages handed out without a place in the history.
const CHECK_PERIOD: Duration = Duration::from_secs(1);
/// Entries read from the stream at once (each a batch of up to a few
/// hundred messages).
const READ_ENTRIES: usize = 64;
/// Entries from the live channel queued before this node hands them out: a
/// pipelining publisher's burst. One that does not fit is read from the
/// stream instead.
const LIVE_QUEUE: usize = 4096;
/// The wait before trying again after the stream could not be read.
const RETRY_DELAY: Duration = Duration::from_millis(250);

impl SharedHistory {
    /// Numbers publishes and reads every namespace's stream into this
    /// node, handing out what comes with `deliver`, until `shutdown`.
    pub fn run(self: Arc<Self>, deliver: Deliver, shutdown: CancellationToken) {
        let appender = self
            .appender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(appender) = appender {
            tokio::spawn(appender.run(shutdown.clone()));
        }
        let started_ms = Entry::now_ms();
        for (namespace, keys) in &self.keys {
            let reader = Reader {
                history: self.clone(),
                namespace: Arc::from(namespace.as_str()),
                keys: keys.clone(),
                // The script publishes each entry on its own: no bundles.
                live: self
                    .link
                    .subscribe_channel(keys.live.clone(), LIVE_QUEUE, Bundles::Whole),
                recovery: self.recovery.clone(),
                deliver: deliver.clone(),
                last_tag: None,
                started_ms,
            };
            tokio::spawn(reader.run(shutdown.clone()));
        }
    }
}

/// Reads one namespace's stream into this node's copy.
struct Reader {
    history: Arc<SharedHistory>,
    namespace: Arc<str>,
    keys: Arc<Keys>,
    /// The namespace's new entries, as Redis publishes them.
    live: MessageStream<ChanItem>,
    recovery: Arc<Recovery>,
    deliver: Deliver,
    /// The tag of the entry the copy ends with, when known.
    last_tag: Option<Vec<u8>>,
    /// When this node started reading (milliseconds since the Unix epoch):
    /// what the stream holds from before is the past to its pages.
    started_ms: u64,
}

/// Whether the copy's last entry is still in the stream as it was read.
enum Continuity {
    Whole,
    Broken,
}

/// What woke a reader up.
enum Wake {
    Live(Vec<u8>),
    Check,
    LinkDown,
    Unsubscribed,
}

/// What came of asking Redis for a new epoch.
enum Renewal {
    /// It began, and this node's pages were told to reload.
    Renewed,
    /// Another node began one first: the copy is behind the stream's
    /// epoch, and reading on meets it.
    OtherFirst,
    /// Every hand-out named was told of by an earlier epoch already.
    NothingNew,
}

impl Reader {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut state = self.history.link.state();
        loop {
            if !wait_up(&mut state, &shutdown).await {
                return;
            }
            let reading = async {
                let mut connection = self.history.link.connection().ok_or(LinkError::Down)?;
                self.forget_heard();
                self.align(&mut connection).await?;
                self.catch_up(&mut connection).await?;
                let mut check = tokio::time::interval(CHECK_PERIOD);
                check.reset();
                loop {
                    self.renew_after_hand_outs(&mut connection).await?;
                    let wake = tokio::select! {
                        live = self.live.next() => match live {
                            Some((_, payload)) => Wake::Live(payload),
                            None => Wake::Unsubscribed,
                        },
                        _ = check.tick() => Wake::Check,
                        changed = state.changed() => match changed {
                            Ok(()) if *state.borrow_and_update() == LinkState::Up => continue,
                            _ => Wake::LinkDown,
                        },
                    };
                    match wake {
                        Wake::Live(payload) => self.take_live(&mut connection, payload).await?,
                        Wake::Check => self.catch_up(&mut connection).await?,
                        Wake::LinkDown => return Err(LinkError::Down),
                        Wake::Unsubscribed => return Ok(()),
                    }
                }
            };
            let result: Result<(), LinkError> = tokio::select! {
                () = shutdown.cancelled() => return,
                result = reading => result,
            };
            if let Err(error) = result {
                tracing::debug!(namespace = &*self.namespace, %error, "reading the cluster's history stopped; trying again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
    }

    /// Makes the copy agree with Redis: the same epoch, and the same last
    /// entry. Reading on from the copy's end then catches up.
    async fn align(&mut self, connection: &mut Connection) -> Result<(), LinkError> {
        let (keys, recovery) = (self.keys.clone(), self.recovery.clone());
        loop {
            let (epoch_text, last_seq, signing_key): (String, u64, String) = self
                .history
                .position
                .key(&keys.stream)
                .key(&keys.epoch)
                .key(&keys.counter)
                .key(&keys.marks)
                .arg(new_epoch().to_string())
                .arg(keys.handed_out.key_to_offer())
                .invoke_async(connection)
                .await?;
            keys.handed_out.use_key(signing_key);
            let epoch = parse_epoch(&epoch_text);
            let Some(mut stream) = recovery.lock(&self.namespace).await else {
                return Ok(());
            };
            let copy = stream.position();
            if copy.epoch != epoch {
                // This node's first look, or Redis began anew (it lost the
                // stream, or another node started a new epoch).
                return self.start_over(connection, stream, epoch, last_seq).await;
            }
            if let Continuity::Whole = self.continuity(connection, copy.seq, last_seq).await? {
                return Ok(());
            }
            tracing::warn!(
                namespace = &*self.namespace,
                "the cluster's history in Redis lost messages this node had read (a failover, or Redis went back to an older copy): a new epoch begins and pages will reload their state"
            );
            if let Renewal::Renewed = self
                .renew(connection, &mut stream, &epoch_text, &[])
                .await?
            {
                return Ok(());
            }
            // Another node renewed it first: align with that.
        }
    }

    /// Starts a new epoch in Redis after `epoch_text`, unless another node
    /// already did, or, with `hand_outs` named, unless an earlier epoch
    /// already told of them all. Starts the copy over at its marker,
    /// resetting this node's pages; the other nodes do the same when they
    /// read the marker.
    async fn renew(
        &mut self,
        connection: &mut Connection,
        stream: &mut Stream<'_>,
        epoch_text: &str,
        hand_outs: &[Mark],
    ) -> Result<Renewal, LinkError> {
        let keys = self.keys.clone();
        let tag = fastrand::u64(..).to_string();
        let mut script = self.history.renew.key(&keys.stream);
        script
            .key(&keys.epoch)
            .key(&keys.counter)
            .key(&keys.marks)
            .arg(epoch_text)
            .arg(new_epoch().to_string())
            .arg(&tag)
            .arg(publish_command(self.history.link.sharded()))
            .arg(&keys.live);
        for mark in hand_outs {
            script.arg(format!("{:x}", mark.node)).arg(mark.handed);
        }
        let (renewed, marker): (String, u64) = script.invoke_async(connection).await?;
        if marker == 0 {
            return Ok(if renewed == epoch_text {
                Renewal::NothingNew
            } else {
                Renewal::OtherFirst
            });
        }
        stream.restart(parse_epoch(&renewed), marker);
        self.last_tag = Some(tag.into_bytes());
        self.reset(stream).await;
        Ok(Renewal::Renewed)
    }

    /// Starts a new epoch if a message was handed out that has no place in
    /// the history (see [`SharedHistory::note_unnumbered`]), by this node
    /// or, as a reconnecting page said, by another, before reading on: the
    /// other nodes' pages never got it, and neither the stream nor its
    /// numbers say so. If another node started one first, the hand-outs
    /// wait for the next turn, once reading on has met it: that epoch may
    /// have begun before they were made.
    async fn renew_after_hand_outs(
        &mut self,
        connection: &mut Connection,
    ) -> Result<(), LinkError> {
        let keys = self.keys.clone();
        let hand_outs = keys.handed_out.pending();
        if hand_outs.is_empty() {
            return Ok(());
        }
        let recovery = self.recovery.clone();
        let Some(mut stream) = recovery.lock(&self.namespace).await else {
            return Ok(());
        };
        let epoch_text = stream.position().epoch.to_string();
        let renewal = self
            .renew(connection, &mut stream, &epoch_text, &hand_outs)
            .await;
        match renewal {
            Ok(Renewal::Renewed) => {
                tracing::warn!(
                    namespace = &*self.namespace,
                    "messages were handed out while a node could not reach Redis, which other nodes' pages never got: a new epoch began and pages will reload their state"
                );
                keys.handed_out.acted_on(&hand_outs);
            }
            Ok(Renewal::NothingNew) => keys.handed_out.acted_on(&hand_outs),
            Ok(Renewal::OtherFirst) | Err(_) => keys.handed_out.not_acted_on(hand_outs),
        }
        renewal.map(|_| ())
    }

    /// Whether the entry the copy ends with (number `copy_seq`) is still in
    /// the stream, as read. `last_seq` is the stream's last number.
    async fn continuity(
        &self,
        connection: &mut Connection,
        copy_seq: u64,
        last_seq: u64,
    ) -> Result<Continuity, LinkError> {
        if last_seq < copy_seq {
            return Ok(Continuity::Broken); // The numbers went backwards.
        }
        if copy_seq == 0 {
            return Ok(Continuity::Whole);
        }
        let id = format!("0-{copy_seq}");
        let read = self.range(connection, &id, &id, 1).await?;
        if let Some(entry) = read.into_iter().next() {
            let whole = self.last_tag.as_ref().is_none_or(|tag| *tag == entry.tag);
            return Ok(if whole {
                Continuity::Whole
            } else {
                Continuity::Broken
            });
        }
        // Not there: trimmed away (this node was behind for long, which the
        // next read finds as a gap), or lost.
        let oldest = self.range(connection, "-", "+", 1).await?;
        Ok(match oldest.first() {
            Some(oldest) if oldest.first_seq() > copy_seq => Continuity::Whole,
            _ => Continuity::Broken,
        })
    }

    /// Starts the copy over in `epoch` from what the stream holds of it,
    /// and tells this node's pages to reload: they may have missed what
    /// the stream lost. Entries of an older epoch are left out: an epoch's
    /// history begins after its marker, or at its oldest entry.
    ///
    /// What was published since this node started is news to its pages
    /// (they all connected since): it is handed out, after the reset. That
    /// is every message of a new epoch met later (it began while this node
    /// was cut off or reading the old one), and at this node's start what
    /// was published while it was linking. The publishing nodes' clocks
    /// decide; one running ahead can make an older message news.
    async fn start_over(
        &mut self,
        connection: &mut Connection,
        mut stream: Stream<'_>,
        epoch: u64,
        last_seq: u64,
    ) -> Result<(), LinkError> {
        let held = self
            .range(connection, "-", "+", self.recovery.max_messages())
            .await?;
        let mut start = None;
        let mut kept = Vec::new();
        for batch in held {
            let older = batch.epoch != epoch;
            if older || batch.messages.is_empty() {
                kept.clear();
                start = Some((batch.last_seq, Some(batch.tag)));
            } else {
                kept.push(batch);
            }
        }
        let (after, mut tag) = match (start, kept.first()) {
            (Some(marker), _) => marker,
            (None, Some(first)) => (first.first_seq() - 1, None),
            (None, None) => (last_seq, None),
        };
        stream.restart(epoch, after);
        self.reset(&stream).await;
        let mut news = Vec::new();
        for batch in kept {
            for (seq, message) in (batch.first_seq()..).zip(batch.messages.iter()) {
                if let Some(entry) = entry_of(seq, message) {
                    let entry = Arc::new(entry);
                    stream.keep_numbered(entry.clone());
                    if entry.published_ms >= self.started_ms {
                        news.push((stream.offset(seq), entry));
                    }
                }
            }
            tag = Some(batch.tag);
        }
        self.last_tag = tag;
        self.deliver(news).await;
        Ok(())
    }

    /// Reads what the stream holds after the copy's end, and hands it out.
    async fn catch_up(&mut self, connection: &mut Connection) -> Result<(), LinkError> {
        loop {
            let Some(position) = self.recovery.position(&self.namespace).await else {
                return Ok(());
            };
            let after = format!("(0-{}", position.seq);
            let batches = self.range(connection, &after, "+", READ_ENTRIES).await?;
            let read = batches.len();
            let recovery = self.recovery.clone();
            let Some(mut stream) = recovery.lock(&self.namespace).await else {
                return Ok(());
            };
            for batch in batches {
                self.take(&mut stream, batch).await;
            }
            if read < READ_ENTRIES {
                return Ok(());
            }
        }
    }

    /// Hands out an entry the live channel brought, reading the stream
    /// first if entries before it did not come.
    async fn take_live(
        &mut self,
        connection: &mut Connection,
        payload: Vec<u8>,
    ) -> Result<(), LinkError> {
        let Some(batch) = Batch::from_live(payload) else {
            tracing::warn!(
                namespace = &*self.namespace,
                "an unreadable entry on the cluster's live channel; reading the history instead"
            );
            return self.catch_up(connection).await;
        };
        let recovery = self.recovery.clone();
        let Some(mut stream) = recovery.lock(&self.namespace).await else {
            return Ok(());
        };
        let copy = stream.position();
        // Numbers only grow while the link stays up (the copy was aligned
        // when it came up), so an entry at or before the copy's end is one
        // read from the stream already, whatever its epoch.
        if batch.last_seq <= copy.seq {
            return Ok(());
        }
        if batch.first_seq() != copy.seq + 1 {
            drop(stream);
            self.catch_up(connection).await?;
            stream = match recovery.lock(&self.namespace).await {
                Some(stream) => stream,
                None => return Ok(()),
            };
            if batch.last_seq <= stream.position().seq {
                return Ok(());
            }
        }
        self.take(&mut stream, batch).await;
        Ok(())
    }

    /// Drops what the live channel brought before the link was (re)made:
    /// aligning reads the stream as it is now, and an entry from before a
    /// lost connection may belong to a history Redis no longer has.
    fn forget_heard(&mut self) {
        while let Some(Some(_)) = self.live.next().now_or_never() {}
    }

    /// Keeps and hands out one entry's messages, starting the copy over
    /// first if the entry does not follow it.
    async fn take(&mut self, stream: &mut Stream<'_>, batch: Batch) {
        let copy = stream.position();
        if batch.last_seq <= copy.seq && batch.epoch == copy.epoch {
            return; // Already kept.
        }
        let epoch = batch.epoch;
        if epoch != copy.epoch || batch.first_seq() != copy.seq + 1 {
            // A new epoch, or a gap: this node missed messages.
            stream.restart(epoch, batch.first_seq() - 1);
            self.reset(stream).await;
        }
        let mut messages = Vec::with_capacity(batch.messages.len());
        for (seq, message) in (batch.first_seq()..).zip(batch.messages.iter()) {
            let Some(entry) = entry_of(seq, message) else {
                tracing::warn!(
                    namespace = &*self.namespace,
                    seq,
                    "an unreadable message in the cluster's history; pages will reload their state"
                );
                self.deliver(std::mem::take(&mut messages)).await;
                stream.restart(epoch, seq);
                self.reset(stream).await;
                continue;
            };
            let entry = Arc::new(entry);
            stream.keep_numbered(entry.clone());
            messages.push((stream.offset(seq), entry));
        }
        self.deliver(messages).await;
        self.last_tag = Some(batch.tag);
    }

    /// Hands out `messages`, in order.
    async fn deliver(&self, messages: Vec<(crate::recovery::Offset, Arc<Entry>)>) {
        if !messages.is_empty() {
            (self.deliver)(self.namespace.clone(), Delivery::Messages(messages)).await;
        }
    }

    /// Tells this node's pages that its copy starts over.
    async fn reset(&self, stream: &Stream<'_>) {
        (self.deliver)(self.namespace.clone(), Delivery::Reset(stream.position())).await;
    }

    /// The entries from `start` to `end` (ids, or `-` and `+`), at most
    /// `count`.
    async fn range(
        &self,
        connection: &mut Connection,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<Batch>, LinkError> {
        let read: Vec<Value> = redis::cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(connection)
            .await?;
        Ok(read.into_iter().filter_map(Batch::parse).collect())
    }
}

/// A message of the stream as a numbered entry.
fn entry_of(seq: u64, message: &[u8]) -> Option<Entry> {
    let mut entry: Entry = serde_json::from_slice(message).ok()?;
    entry.seq = seq;
    Some(entry)
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

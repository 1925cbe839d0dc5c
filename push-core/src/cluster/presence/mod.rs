//! Every node's connections, known to every node, so that a publish is
//! counted without asking anyone.
//!
//! A publish's count is how many connections it reached on every node. The
//! survey (`survey`) asked the other nodes at each publish: two hops through
//! other processes, which made a publish in a cluster tens of times slower
//! than on a single node. Instead, each node now tells the others of its
//! connections as they come, go or change rooms, and keeps a replica of
//! theirs; a publish adds its own exact count to the replicas' counts, at
//! once.
//!
//! - [`LocalPresence`] (`local`): this node's connections by *profile*
//!   (`summary`), and the changes not yet sent.
//! - Every [`BATCH_DELAY`] at most, the changes go out as one message on
//!   the presence channel, numbered in sequence (`wire`); a heartbeat
//!   every [`HEARTBEAT`] says the node is alive and at which number.
//! - The other nodes' replicas (`replicas`) follow the sequence; a gap, a
//!   node that joins, or a link that comes back brings full snapshots. A
//!   node silent for [`SILENT_LIMIT`], or that said goodbye, is no longer
//!   counted.
//!
//! So another node's connections are counted as of its last batch, at most
//! a few milliseconds old, not at the instant of the publish
//! (docs/scaling.md, "Counts in a cluster"). The presence channel is one
//! channel under the cluster's prefix: plain pub/sub on one server or
//! behind Sentinel, sharded pub/sub in a Redis Cluster (`link`).

mod local;
mod replicas;
mod summary;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use push_client::Target;
use socketioxide_redis::drivers::{ChanItem, MessageStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use self::local::LocalPresence;
pub use self::replicas::Counted;
use self::replicas::{Replicas, Reply};
pub use self::summary::Profile;
use self::wire::{Body, Envelope};
use super::link::{Bundles, HEARTBEAT_PERIOD, LinkError, RedisLink};
use crate::config::NodeId;
use crate::log_throttle::{Line, LogThrottle, Source};
use crate::outcomes::LinkState;

/// How long changes gather before they are sent: a storm of connections
/// costs each other node at most one message per this, and a connection is
/// counted by the other nodes about this plus one Redis hop after it
/// connects.
pub const BATCH_DELAY: Duration = Duration::from_millis(5);
/// How often a node says it is alive: the link's own heartbeat period.
pub const HEARTBEAT: Duration = HEARTBEAT_PERIOD;
/// A node not heard from for longer is still counted, but the count is
/// marked partial: it may be stopped, or cut off from Redis.
pub const OVERDUE: Duration = Duration::from_millis(HEARTBEAT.as_millis() as u64 * 3 / 2);
/// A node not heard from for longer is taken for gone: its connections are
/// no longer counted (a node that crashed takes its connections with it).
pub const SILENT_LIMIT: Duration = HEARTBEAT.saturating_mul(3);
/// Presence messages queued in from Redis before this node reads them.
const QUEUE: usize = 1024;

/// A presence message that could not be read.
const UNREADABLE_LINE: Line = Line {
    kind: "presence_unreadable",
    level: tracing::Level::WARN,
};

/// This node's presence in the cluster, and its replicas of the others'.
pub struct Presence {
    link: RedisLink,
    link_state: watch::Receiver<LinkState>,
    node: NodeId,
    instance: u64,
    channel: String,
    local: Arc<LocalPresence>,
    replicas: RwLock<Replicas>,
    /// The sequence number of the last batch of changes sent.
    seq: AtomicU64,
    /// Some node asked for this node's snapshot.
    snapshot_wanted: Notify,
    /// Instances whose snapshot this node should ask for.
    asking: mpsc::UnboundedSender<u64>,
    asked: std::sync::Mutex<Option<mpsc::UnboundedReceiver<u64>>>,
    /// Set once goodbye is said: nothing more is sent.
    left: AtomicBool,
    log_throttle: LogThrottle,
}

impl Presence {
    pub fn new(link: RedisLink, node: NodeId, prefix: &str) -> Arc<Self> {
        let (asking, asked) = mpsc::unbounded_channel();
        Arc::new(Self {
            link_state: link.state(),
            link,
            node,
            instance: fastrand::u64(..),
            channel: format!("{prefix}#presence#"),
            local: Arc::new(LocalPresence::default()),
            replicas: RwLock::new(Replicas::default()),
            seq: AtomicU64::new(0),
            snapshot_wanted: Notify::new(),
            asking,
            asked: std::sync::Mutex::new(Some(asked)),
            left: AtomicBool::new(false),
            log_throttle: LogThrottle::default(),
        })
    }

    /// Where this node's connection events go.
    pub fn local(&self) -> &Arc<LocalPresence> {
        &self.local
    }

    /// Subscribes to the presence channel. Called before the link first
    /// connects, so that the link subscribes it before it says it is up
    /// and no snapshot sent in answer to this node's is missed.
    pub fn subscribe(&self) -> MessageStream<ChanItem> {
        self.link
            .subscribe_channel(self.channel.clone(), QUEUE, Bundles::Whole)
    }

    /// Sends this node's changes and reads the others', until `shutdown`
    /// fires.
    pub async fn run(
        self: Arc<Self>,
        messages: MessageStream<ChanItem>,
        shutdown: CancellationToken,
    ) {
        let asked = self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(asked) = asked {
            tokio::spawn(self.clone().send(asked, shutdown.clone()));
        }
        self.receive(messages, shutdown).await;
    }

    /// The other nodes' connections a publish to `target` reaches, as last
    /// heard; stale while this node's link is down.
    pub fn recipients(&self, namespace: &str, target: &Target<'_>) -> Counted {
        let mut counted = self
            .replicas()
            .recipients(namespace, target, Instant::now());
        counted.stale |= !self.link_up();
        counted
    }

    /// The other nodes' connections of `user`, as last heard.
    pub fn connections_of(&self, namespace: &str, user: &str) -> Counted {
        let mut counted = self
            .replicas()
            .connections_of(namespace, user, Instant::now());
        counted.stale |= !self.link_up();
        counted
    }

    /// Tells the other nodes to stop counting this node's connections, at
    /// shutdown, and sends nothing more.
    pub async fn say_goodbye(&self) {
        if self.left.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Err(error) = self.publish(Body::Goodbye).await {
            tracing::debug!("could not say goodbye to the other nodes: {error}");
        }
    }

    fn link_up(&self) -> bool {
        *self.link_state.borrow() == LinkState::Up
    }

    /// Sends batches of changes, heartbeats, snapshots and requests for
    /// them, one at a time and in order, so that sequence numbers arrive in
    /// order.
    async fn send(
        self: Arc<Self>,
        mut asked: mpsc::UnboundedReceiver<u64>,
        shutdown: CancellationToken,
    ) {
        let mut link = self.link.state();
        // The link may have come up before this task started: the first
        // turn of the loop looks at its state as it is.
        link.mark_changed();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let up = *link.borrow_and_update() == LinkState::Up;
                    self.rejoin(up).await;
                }
                () = self.local.changed() => {
                    tokio::time::sleep(BATCH_DELAY).await;
                    let changes = self.local.take_changes();
                    if !changes.is_empty() {
                        self.seq.fetch_add(1, Ordering::Relaxed);
                        self.send_or_log(Body::Changes(changes)).await;
                    }
                }
                () = self.snapshot_wanted.notified() => {
                    let namespaces = self.local.snapshot();
                    self.send_or_log(Body::Snapshot { namespaces, answer_wanted: false }).await;
                }
                Some(instance) = asked.recv() => {
                    self.send_or_log(Body::SnapshotWanted { of: Some(instance) }).await;
                }
                _ = heartbeat.tick() => {
                    self.send_or_log(Body::Heartbeat).await;
                    let forgotten = self.replicas_mut().forget_silent(Instant::now());
                    for node in forgotten {
                        tracing::info!(node, "a node stopped sending its heartbeat; its connections are no longer counted");
                    }
                }
            }
        }
    }

    /// The link came up (or went down): what this node had of the others
    /// may be out of date, so with the link up it sends its snapshot and
    /// asks for theirs.
    async fn rejoin(&self, up: bool) {
        let now = Instant::now();
        self.replicas_mut().left_behind(now);
        if !up {
            return;
        }
        let namespaces = self.local.snapshot();
        let snapshot = Body::Snapshot {
            namespaces,
            answer_wanted: true,
        };
        match self.publish(snapshot).await {
            // Every node subscribed received it, this one included.
            Ok(receivers) => self
                .replicas_mut()
                .expect_snapshots(receivers.saturating_sub(1), now),
            Err(error) => tracing::debug!("could not send this node's presence: {error}"),
        }
    }

    async fn send_or_log(&self, body: Body) {
        if let Err(error) = self.publish(body).await {
            tracing::debug!("could not send this node's presence: {error}");
        }
    }

    /// Publishes `body` on the presence channel; returns how many nodes
    /// received it.
    async fn publish(&self, body: Body) -> Result<usize, LinkError> {
        if self.left.load(Ordering::Relaxed) && !matches!(body, Body::Goodbye) {
            return Ok(0);
        }
        let envelope = Envelope {
            node: self.node.as_str().to_owned(),
            instance: self.instance,
            seq: self.seq.load(Ordering::Relaxed),
            body,
        };
        let message = serde_json::to_vec(&envelope)?;
        self.link.publish_to(&self.channel, message).await
    }

    /// Reads the other nodes' presence messages into their replicas.
    async fn receive(&self, mut messages: MessageStream<ChanItem>, shutdown: CancellationToken) {
        loop {
            let (_, message) = tokio::select! {
                () = shutdown.cancelled() => return,
                message = messages.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let envelope = match serde_json::from_slice::<Envelope>(&message) {
                Ok(envelope) => envelope,
                Err(error) => {
                    if self
                        .log_throttle
                        .allow(UNREADABLE_LINE, Source(Some("redis")))
                    {
                        tracing::warn!(
                            "an unreadable presence message from another node; ignored: {error}"
                        );
                    }
                    continue;
                }
            };
            if envelope.instance == self.instance {
                continue; // Our own.
            }
            if let Body::SnapshotWanted { of } = envelope.body
                && of.is_none_or(|of| of == self.instance)
            {
                self.snapshot_wanted.notify_one();
            }
            let reply = self.replicas_mut().receive(envelope, Instant::now());
            match reply {
                Some(Reply::AskSnapshot(instance)) => {
                    let _ = self.asking.send(instance);
                }
                Some(Reply::SendSnapshot) => self.snapshot_wanted.notify_one(),
                None => {}
            }
        }
    }

    fn replicas(&self) -> RwLockReadGuard<'_, Replicas> {
        self.replicas
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn replicas_mut(&self) -> RwLockWriteGuard<'_, Replicas> {
        self.replicas
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

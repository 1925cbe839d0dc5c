//! The node's connection to the cluster's Redis, kept up by itself.
//!
//! socketioxide-redis talks to Redis through a [`Driver`]: publish to a
//! channel, subscribe to one, count the servers listening. Its own drivers
//! subscribe once, at start: if Redis is down then, or restarts later, a
//! node would stay deaf to the cluster until it is restarted. This driver
//! keeps the channels it was asked for and a supervisor that reconnects
//! with backoff and subscribes to all of them again, so the cluster heals
//! on its own when Redis comes back. Meanwhile the node keeps serving its
//! own browsers, and anything that needs Redis fails at once with
//! [`LinkError::Down`] instead of waiting.
//!
//! Behind Sentinel the master can change while the node stays connected
//! to the old one (a failover demotes it to a replica), so there the
//! supervisor also checks the server's role: a server that is no longer
//! master counts as lost, and reconnecting asks the Sentinels anew.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use thiserror::Error;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::bundle::{self, Queued};
use super::servers::{Connection, Servers};
use crate::config::RedisUrl;
// Part of the library's API at this path; defined with the other words
// metrics counts by.
pub use crate::outcomes::LinkState;

/// Why a Redis command could not be run. Cloned to every publish of a
/// batch that failed.
#[derive(Debug, Clone, Error)]
pub enum LinkError {
    #[error("the node has no connection to Redis right now (reconnecting)")]
    Down,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode a message for the other nodes: {0}")]
    Encode(String),
    #[error("namespace {0:?} has no history in the cluster")]
    NotShared(String),
    #[error("{0}")]
    NotMaster(&'static str),
}

impl From<serde_json::Error> for LinkError {
    fn from(error: serde_json::Error) -> Self {
        LinkError::Encode(error.to_string())
    }
}

/// Why the link could not be set up at all (a bad URL, not a down Redis).
#[derive(Debug, Error)]
#[error("cannot use redis_url: {0}")]
pub struct LinkSetupError(redis::RedisError);

/// The first wait before reconnecting; it doubles after each failure.
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);
/// The longest wait between attempts: a Redis back from a restart is found
/// within this, and a Redis down for long costs one attempt per period.
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(2);
/// How often the supervisor checks that a quiet connection still answers:
/// a Redis that hangs (rather than closing the connection) is noticed
/// within about this plus [`COMMAND_TIMEOUT`].
pub(super) const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// The longest a command may take before the link counts as down. Redis
/// answers in well under a millisecond; a second means it is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where channel messages go: one queue per subscribed channel.
type Handlers = RwLock<HashMap<String, Handler>>;

/// A subscribed channel's queue, and what it takes.
struct Handler {
    queue: mpsc::Sender<ChanItem>,
    bundles: Bundles,
}

/// How a channel's bundles of messages (`bundle`) reach its queue.
#[derive(Debug, Clone, Copy)]
pub enum Bundles {
    /// Each message is an item of its own (socketioxide's adapter takes
    /// them one by one).
    Split,
    /// A bundle is one item, which its reader splits itself (`bundle::parts`):
    /// one hand-off for a burst instead of one a message. Also for a
    /// channel that never carries bundles (its messages are published
    /// with [`RedisLink::publish_to`]): they arrive as they were sent.
    Whole,
}

impl Handler {
    fn offer(&self, channel: String, message: Vec<u8>) {
        if self.queue.try_send((channel, message)).is_err() {
            // The namespace's queue is full: this node is far behind the
            // cluster's publish rate.
            tracing::warn!("a cluster message was dropped: this node cannot keep up");
        }
    }
}

/// The connection to Redis, shared by every namespace's adapter and by the
/// cluster's own questions (see `census`).
#[derive(Clone)]
pub struct RedisLink {
    shared: Arc<Shared>,
}

struct Shared {
    servers: Servers,
    /// The live connection, `None` while down.
    connection: RwLock<Option<Connection>>,
    handlers: Arc<Handlers>,
    state: watch::Sender<LinkState>,
    /// Replicas the Sentinel-named master had connected at the last look.
    replicas: AtomicUsize,
    /// What the adapter publishes, waiting to be sent (`bundle`).
    bundling: mpsc::UnboundedSender<Queued>,
    /// The other end of `bundling`, until [`RedisLink::run`] takes it.
    bundled: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
}

impl RedisLink {
    /// Prepares the link; [`RedisLink::run`] connects and keeps it up.
    pub fn new(url: &RedisUrl) -> Result<Self, LinkSetupError> {
        let servers = Servers::new(url).map_err(LinkSetupError)?;
        let (state, _) = watch::channel(LinkState::Down);
        let (bundling, bundled) = mpsc::unbounded_channel();
        Ok(Self {
            shared: Arc::new(Shared {
                servers,
                connection: RwLock::new(None),
                handlers: Arc::new(RwLock::new(HashMap::new())),
                state,
                replicas: AtomicUsize::new(0),
                bundling,
                bundled: std::sync::Mutex::new(Some(bundled)),
            }),
        })
    }

    /// True for a Redis Cluster: keys that a script uses together must
    /// share a slot.
    pub fn sharded(&self) -> bool {
        self.shared.servers.sharded()
    }

    /// How many replicas should confirm a write before a publish is
    /// answered: one behind Sentinel while the master has one connected, so
    /// that a failover keeps what PHP was told was published; none
    /// otherwise.
    pub fn replicas_to_wait_for(&self) -> usize {
        if self.shared.servers.followed() {
            self.shared.replicas.load(Ordering::Relaxed).min(1)
        } else {
            0
        }
    }

    /// The link's state, as it changes.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.subscribe()
    }

    /// Connects, resubscribes and reconnects until `shutdown` fires, and
    /// sends what the adapter publishes meanwhile.
    pub async fn run(self, shutdown: CancellationToken) {
        let bundled = self
            .shared
            .bundled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(bundled) = bundled {
            let sending = bundle::send_rounds(self.clone(), bundled);
            let stopped = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stopped.cancelled() => {}
                    () = sending => {}
                }
            });
        }
        let mut delay = RECONNECT_DELAY_MIN;
        let mut failures_logged = false;
        loop {
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return,
                attempt = self.connect() => attempt,
            };
            match attempt {
                Ok(lost) => {
                    tracing::info!("cluster link up: connected to Redis");
                    failures_logged = false;
                    delay = RECONNECT_DELAY_MIN;
                    let reason = tokio::select! {
                        () = shutdown.cancelled() => None,
                        reason = self.watch(&lost) => Some(reason),
                    };
                    self.set_connection(None);
                    let Some(reason) = reason else { return };
                    tracing::warn!(
                        "cluster link lost ({reason}): delivering to this node's browsers only, reconnecting"
                    );
                }
                Err(error) => {
                    // One line when the link first fails, not one per retry.
                    if !failures_logged {
                        tracing::warn!("cannot reach Redis ({error}); retrying");
                        failures_logged = true;
                    }
                }
            }
            let jittered = delay.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(jittered) => {}
            }
            delay = (delay * 2).min(RECONNECT_DELAY_MAX);
        }
    }

    /// Opens a connection and subscribes to every channel asked for so far.
    /// Returns what signals the connection's loss.
    async fn connect(&self) -> Result<Arc<Notify>, LinkError> {
        let lost = Arc::new(Notify::new());
        let handlers = self.shared.handlers.clone();
        let on_lost = lost.clone();
        let push = move |push: PushInfo| {
            route(push, &handlers, &on_lost);
            Ok::<(), std::convert::Infallible>(())
        };
        let mut connection = self.shared.servers.connect(COMMAND_TIMEOUT, push).await?;
        if self.shared.servers.followed() {
            self.check_role(&mut connection)
                .await
                .map_err(LinkError::NotMaster)?;
        }
        // Published first, so a subscribe that comes in now subscribes
        // itself; the ones asked for before are subscribed here. Redis
        // ignores a second SUBSCRIBE to the same channel.
        self.set_connection(Some(connection.clone()));
        let channels: Vec<String> = self.handlers().keys().cloned().collect();
        if !channels.is_empty()
            && let Err(error) = connection.subscribe(&channels).await
        {
            self.set_connection(None);
            return Err(error.into());
        }
        self.shared.state.send_replace(LinkState::Up);
        Ok(lost)
    }

    /// Waits until the connection is closed or stops answering, or (behind
    /// Sentinel) its server is no longer the master.
    async fn watch(&self, lost: &Notify) -> &'static str {
        loop {
            tokio::select! {
                () = lost.notified() => return "connection closed",
                () = tokio::time::sleep(HEARTBEAT_PERIOD) => {
                    let Some(mut connection) = self.connection() else {
                        return "connection dropped";
                    };
                    if self.shared.servers.followed() {
                        if let Err(reason) = self.check_role(&mut connection).await {
                            return reason;
                        }
                        continue;
                    }
                    let ping: Result<String, _> =
                        redis::cmd("PING").query_async(&mut connection).await;
                    if ping.is_err() {
                        return "Redis stopped answering";
                    }
                }
            }
        }
    }

    /// Checks that the server is master, and notes how many replicas it
    /// has connected (`ROLE` answers both).
    async fn check_role(&self, connection: &mut Connection) -> Result<(), &'static str> {
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(connection)
            .await
            .map_err(|_| "Redis stopped answering")?;
        let master = matches!(role.first(), Some(Value::BulkString(name)) if name == b"master");
        if !master {
            return Err("the server is no longer master (a failover)");
        }
        let replicas = match role.get(2) {
            Some(Value::Array(replicas)) => replicas.len(),
            _ => 0,
        };
        self.shared.replicas.store(replicas, Ordering::Relaxed);
        Ok(())
    }

    fn set_connection(&self, connection: Option<Connection>) {
        let up = connection.is_some();
        *self
            .shared
            .connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = connection;
        if !up {
            self.shared.state.send_replace(LinkState::Down);
        }
    }

    /// The live connection (a cheap handle onto it), if up.
    pub fn connection(&self) -> Option<Connection> {
        self.shared
            .connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn handlers(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Handler>> {
        self.shared
            .handlers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Hands a channel message to its queue, or notes the connection's loss.
fn route(push: PushInfo, handlers: &Handlers, lost: &Notify) {
    match push.kind {
        PushKind::Message | PushKind::SMessage => {
            let mut data = push.data.into_iter();
            let (Some(channel), Some(message)) = (data.next(), data.next()) else {
                return;
            };
            let (Ok(channel), Ok(message)) = (
                redis::from_redis_value::<String>(channel),
                redis::from_redis_value::<Vec<u8>>(message),
            ) else {
                tracing::warn!("a message from Redis could not be read; ignored");
                return;
            };
            let handlers = handlers
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(handler) = handlers.get(&channel) else {
                return;
            };
            match handler.bundles {
                Bundles::Whole => handler.offer(channel, message),
                Bundles::Split => {
                    for message in bundle::unbundle(message) {
                        handler.offer(channel.clone(), message);
                    }
                }
            }
        }
        PushKind::Disconnection => lost.notify_one(),
        _ => {}
    }
}

impl RedisLink {
    /// Queues `message` for `channel` now, to be sent with what else
    /// gathered (`bundle`); the future says how many subscribers received
    /// it.
    pub fn queue_publish(
        &self,
        channel: String,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<usize, LinkError>> + Send + 'static {
        let (queued, sent) = Queued::new(channel, message);
        let queued = self.shared.bundling.send(queued).is_ok();
        async move {
            if !queued {
                return Err(LinkError::Down);
            }
            sent.await.unwrap_or(Err(LinkError::Down))
        }
    }

    /// Publishes `message`; returns how many subscribers received it.
    pub async fn publish_to(&self, channel: &str, message: Vec<u8>) -> Result<usize, LinkError> {
        let mut connection = self.connection().ok_or(LinkError::Down)?;
        let publish = connection.publish(channel, message);
        Ok(publish.query_async(&mut connection).await?)
    }

    /// Subscribes to `channel`, now if the link is up, else as soon as it
    /// is; the stream ends only when unsubscribed.
    pub fn subscribe_channel(
        &self,
        channel: String,
        queue_size: usize,
        bundles: Bundles,
    ) -> MessageStream<ChanItem> {
        let (queue, messages) = mpsc::channel(queue_size);
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(channel.clone(), Handler { queue, bundles });
        // Not awaited, so that setting up a namespace never waits for
        // Redis. A failure is the link going down, and the supervisor
        // subscribes again when it is back.
        if let Some(mut connection) = self.connection() {
            tokio::spawn(async move {
                let _ = connection.subscribe(&[channel]).await;
            });
        }
        MessageStream::new(messages)
    }
}

impl Driver for RedisLink {
    type Error = LinkError;

    /// Queued at once (the adapter's first poll), sent with what else
    /// gathered (`bundle`).
    async fn publish(&self, channel: String, message: Vec<u8>) -> Result<(), LinkError> {
        self.queue_publish(channel, message).await.map(|_| ())
    }

    /// Always succeeds: a channel asked for while Redis is down is
    /// subscribed when the link comes up.
    async fn subscribe(
        &self,
        channel: String,
        queue_size: usize,
    ) -> Result<MessageStream<ChanItem>, LinkError> {
        Ok(self.subscribe_channel(channel, queue_size, Bundles::Split))
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), LinkError> {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&channel);
        if let Some(mut connection) = self.connection() {
            connection.unsubscribe(&channel).await?;
        }
        Ok(())
    }

    /// The nodes listening on `channel`, this one included.
    async fn num_serv(&self, channel: &str) -> Result<u16, LinkError> {
        let mut connection = self.connection().ok_or(LinkError::Down)?;
        let counting = connection.count_subscribers(channel);
        let counts: HashMap<String, u16> = counting.query_async(&mut connection).await?;
        Ok(counts.get(channel).copied().unwrap_or(0))
    }
}

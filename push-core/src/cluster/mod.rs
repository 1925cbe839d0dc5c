//! Several push-core nodes behind one load balancer, sharing through Redis.
//!
//! Every node serves browsers and takes publishes on its own socket. A
//! publish on any node must reach its targets on every node. The socket.io
//! server runs on socketioxide's Redis adapter (socketioxide-redis), which
//! carries whatever it broadcasts to every node; publishes, the bulk of the
//! traffic, take leaner ways of their own, and the rest is added here:
//! - [`link`]: a connection to Redis that survives Redis restarting, on
//!   one server, behind Sentinel or to a Redis Cluster (`servers`);
//! - [`history`]: with recovery on, one numbering of each namespace's
//!   messages for the whole cluster, which is also how they reach every
//!   node, so that a page resumes on any node;
//! - [`relay`]: with recovery off, how publishes reach the other nodes;
//! - [`presence`]: every node's connections, replicated to every node, so
//!   that a publish's count and `isOnline` add up the cluster at once;
//! - [`survey`]: the STATS figures of every node, asked when STATS is,
//!   within a bounded wait, marked partial when a node did not answer;
//! - `bundle`: what the adapter and the relay publish, sent many per
//!   `PUBLISH`.
//!
//! A node alone uses the same adapter type over [`Link::Alone`], which
//! reaches no one; the dispatcher marks its broadcasts local, so a single
//! node pays nothing for the cluster code.

mod bundle;
pub mod history;
pub mod link;
pub mod presence;
pub mod relay;
mod servers;
pub mod survey;

use std::sync::Arc;

use socketioxide::SocketIo;
use socketioxide::adapter::Emitter;
use socketioxide::extract::SocketRef;
use socketioxide::layer::SocketIoLayer;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::link::{LinkError, LinkSetupError, RedisLink};
use self::presence::Presence;
use self::survey::{CensusTaker, Gathered, Survey};
// Part of the library's API at this path; kept with the other settings.
pub use crate::config::ClusterSettings;
use crate::config::NodeId;
use crate::outcomes::LinkState;
use crate::recovery::Recovery;

/// The socketio adapter of every node: socketioxide-redis's, over [`Link`].
pub type NodeAdapter = CustomRedisAdapter<Emitter, Link>;
/// The socket.io server, as every module uses it.
pub type Io = SocketIo<NodeAdapter>;
/// One browser's connection to a namespace.
pub type Socket = SocketRef<NodeAdapter>;
/// The tower layer that serves socket.io.
pub type Layer = SocketIoLayer<NodeAdapter>;

/// How this node's publishes reach the other nodes.
#[derive(Clone)]
pub enum Sharing {
    /// Recovery on: numbered in the cluster's history, which every node
    /// reads.
    History(Arc<history::SharedHistory>),
    /// Recovery off: relayed on each namespace's channel.
    Relay(Arc<relay::Relay>),
}

impl Sharing {
    /// The cluster's history, with recovery on.
    pub fn history(&self) -> Option<&Arc<history::SharedHistory>> {
        match self {
            Sharing::History(history) => Some(history),
            Sharing::Relay(_) => None,
        }
    }
}

/// The Redis name of `name` (a key or a channel) of `namespace`. In a Redis
/// Cluster all of a namespace's share the hash tag `{PREFIX:NAMESPACE}`:
/// the first `{...}` of a name is what places it, so they live on one
/// shard whatever the namespace holds, and namespaces spread over shards.
fn namespace_name(prefix: &str, namespace: &str, name: &str, sharded: bool) -> String {
    if sharded {
        format!("{{{prefix}:{namespace}}}:{name}")
    } else {
        format!("{prefix}:{name}:{namespace}")
    }
}

/// How the adapter reaches the other nodes.
#[derive(Clone)]
pub enum Link {
    /// No other node: publishing to the cluster reaches no one.
    Alone,
    Redis(RedisLink),
}

impl Driver for Link {
    type Error = LinkError;

    async fn publish(&self, channel: String, message: Vec<u8>) -> Result<(), LinkError> {
        match self {
            Link::Alone => Ok(()),
            Link::Redis(link) => link.publish(channel, message).await,
        }
    }

    async fn subscribe(
        &self,
        channel: String,
        queue_size: usize,
    ) -> Result<MessageStream<ChanItem>, LinkError> {
        match self {
            Link::Alone => Ok(MessageStream::new_empty()),
            Link::Redis(link) => link.subscribe(channel, queue_size).await,
        }
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), LinkError> {
        match self {
            Link::Alone => Ok(()),
            Link::Redis(link) => link.unsubscribe(channel).await,
        }
    }

    async fn num_serv(&self, channel: &str) -> Result<u16, LinkError> {
        match self {
            Link::Alone => Ok(1),
            Link::Redis(link) => link.num_serv(channel).await,
        }
    }
}

/// This node's place in a cluster: its link to Redis, its presence and its
/// survey of the other nodes.
pub struct Cluster {
    link: RedisLink,
    presence: Arc<Presence>,
    survey: Arc<Survey>,
    settings: ClusterSettings,
    state: watch::Receiver<LinkState>,
}

impl Cluster {
    pub fn new(settings: ClusterSettings) -> Result<Self, LinkSetupError> {
        let link = RedisLink::new(&settings.redis_url)?;
        let survey = Survey::new(
            link.clone(),
            &settings.node_id,
            &settings.prefix,
            settings.wait,
        );
        let presence = Presence::new(link.clone(), settings.node_id.clone(), &settings.prefix);
        Ok(Self {
            state: link.state(),
            link,
            presence,
            survey,
            settings,
        })
    }

    /// The adapter's settings: channels under the cluster's prefix, and
    /// its own requests bounded by the same wait as ours.
    pub fn adapter_state(cluster: Option<&Cluster>) -> RedisAdapterCtr<Link> {
        let (link, config) = match cluster {
            None => (Link::Alone, RedisAdapterConfig::default()),
            Some(cluster) => (
                Link::Redis(cluster.link.clone()),
                RedisAdapterConfig::default()
                    .with_prefix(cluster.settings.prefix.clone())
                    .with_request_timeout(cluster.settings.wait),
            ),
        };
        RedisAdapterCtr::new_with_driver(link, config)
    }

    /// Connects to Redis, shares this node's presence and answers the
    /// other nodes' STATS questions with `census_taker`, until `shutdown`
    /// fires.
    pub fn start(&self, census_taker: CensusTaker, shutdown: CancellationToken) {
        // Before the link connects: see `Presence::subscribe`.
        let presence_messages = self.presence.subscribe();
        tokio::spawn(self.link.clone().run(shutdown.clone()));
        tokio::spawn(
            self.presence
                .clone()
                .run(presence_messages, shutdown.clone()),
        );
        tokio::spawn(self.survey.clone().run(census_taker, shutdown));
    }

    /// This node's presence, and its replicas of the other nodes'.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// How publishes to `namespaces` reach the other nodes: with recovery
    /// on, the cluster's history, kept in this node by `recovery`; off, the
    /// relay.
    pub fn sharing(&self, namespaces: &[String], recovery: Option<&Arc<Recovery>>) -> Sharing {
        let (link, prefix) = (self.link.clone(), &self.settings.prefix);
        match recovery {
            Some(recovery) => Sharing::History(Arc::new(history::SharedHistory::new(
                link,
                prefix,
                namespaces,
                recovery.clone(),
            ))),
            None => Sharing::Relay(Arc::new(relay::Relay::new(link, prefix, namespaces))),
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.settings.node_id
    }

    /// True while this node is connected to Redis.
    pub fn is_up(&self) -> bool {
        *self.state.borrow() == LinkState::Up
    }

    /// The link's state, as it changes.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// Asks every other node for its STATS figures; see [`Survey::ask`].
    pub async fn ask_census(&self) -> Result<Gathered, LinkError> {
        self.survey.ask().await
    }
}

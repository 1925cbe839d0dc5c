//! The cluster's Redis as the link reaches it: one server, the master that
//! Sentinels name, or a Redis Cluster.
//!
//! The rest of the cluster code speaks to a [`Connection`] and does not
//! care which: commands go to the right server by themselves (a Redis
//! Cluster routes each by its key's slot), and channel messages arrive as
//! RESP3 pushes on the same connection in every case. Two things differ
//! and are decided here:
//!
//! - **Finding the server.** With Sentinel, each connection asks the
//!   Sentinels for the current master first, so reconnecting after a
//!   failover reaches the new one.
//! - **Pub/sub.** A Redis Cluster's plain pub/sub copies every message to
//!   every node of the cluster; its sharded pub/sub (`SPUBLISH`,
//!   `SSUBSCRIBE`, Redis 7) keeps each channel on the shard that owns its
//!   slot, so the nodes' traffic spreads over the shards like the keys.

use std::io;
use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline,
    ProtocolVersion, RedisError, RedisFuture, RedisResult, TlsMode, Value,
};
use tokio::sync::Mutex;

use crate::config::{RedisHost, RedisPlace, RedisUrl};

/// How long connecting may take. Redis answers in well under a
/// millisecond; a second means it is not there.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long asking the Sentinels for the master may take: they are asked
/// together and the first answer wins, so this only ends a lookup that no
/// Sentinel answers (all down, or unreachable without a refusal).
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the link finds Redis.
pub struct Servers {
    kind: Kind,
}

enum Kind {
    One(Client),
    /// The Sentinels, asked for the master at each connection.
    Sentinel(Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// A connection to the cluster's Redis, cheap to clone (every clone
/// shares it).
#[derive(Clone)]
pub enum Connection {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Servers {
    /// Prepares to reach `url`'s servers; fails only on settings the
    /// `redis` crate refuses, before any connection.
    pub fn new(url: &RedisUrl) -> RedisResult<Self> {
        let kind = match url.place() {
            RedisPlace::Server(server) => {
                let info = server.as_str().into_connection_info()?;
                // Channel messages arrive as RESP3 pushes on the same
                // connection as commands, so one connection serves both.
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                Kind::One(Client::open(info.set_redis_settings(settings))?)
            }
            RedisPlace::Sentinel {
                sentinels,
                master,
                sentinel_password,
            } => {
                let addresses = sentinels.iter().map(|host| address(host, url.tls()));
                let mut builder =
                    SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)?
                        .set_client_to_redis_protocol(ProtocolVersion::RESP3)
                        .set_client_to_redis_db(url.db());
                if let Some(username) = url.username() {
                    builder = builder.set_client_to_redis_username(username);
                }
                if let Some(password) = url.password() {
                    builder = builder.set_client_to_redis_password(password);
                }
                if let Some(password) = sentinel_password {
                    builder = builder.set_client_to_sentinel_password(password);
                }
                if url.tls() {
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                }
                Kind::Sentinel(Mutex::new(builder.build()?))
            }
            RedisPlace::Cluster { nodes } => {
                let nodes: Vec<ConnectionAddr> =
                    nodes.iter().map(|host| address(host, url.tls())).collect();
                let mut builder = ClusterClientBuilder::new(nodes)
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(CONNECT_TIMEOUT);
                if let Some(username) = url.username() {
                    builder = builder.username(username);
                }
                if let Some(password) = url.password() {
                    builder = builder.password(password);
                }
                if url.tls() {
                    builder = builder.tls(TlsMode::Secure);
                }
                Kind::Cluster(builder.build()?)
            }
        };
        Ok(Self { kind })
    }

    /// True for a Redis Cluster, whose channels are sharded.
    pub fn sharded(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// True when the master can change under the link (Sentinel): the
    /// link then checks the role of the server it is connected to.
    pub fn followed(&self) -> bool {
        matches!(self.kind, Kind::Sentinel(_))
    }

    /// Connects; `push` receives the channel messages and the connection's
    /// loss. A command waits at most `response_timeout`.
    pub async fn connect(
        &self,
        response_timeout: Duration,
        push: impl AsyncPushSender + Clone,
    ) -> RedisResult<Connection> {
        let config = connection_config(response_timeout).set_push_sender(push.clone());
        let cluster_config = cluster_config(response_timeout).set_push_sender(push);
        self.open(config, cluster_config).await
    }

    async fn open(
        &self,
        config: AsyncConnectionConfig,
        cluster_config: ClusterConfig,
    ) -> RedisResult<Connection> {
        Ok(match &self.kind {
            Kind::One(client) => Connection::One(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            ),
            Kind::Sentinel(sentinel) => {
                // Asks the Sentinels which server is master now (which also
                // checks that it says so itself), then connects to it.
                let asking = async { sentinel.lock().await.async_get_client().await };
                let master = tokio::time::timeout(SENTINEL_TIMEOUT, asking)
                    .await
                    .map_err(|_| {
                        RedisError::from(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no Sentinel said which server is master in time",
                        ))
                    })??;
                Connection::One(
                    master
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Kind::Cluster(client) => Connection::Cluster(
                client
                    .get_async_connection_with_config(cluster_config)
                    .await?,
            ),
        })
    }
}

fn connection_config(response_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
}

fn cluster_config(response_timeout: Duration) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(response_timeout)
}

/// A host of a Sentinel or Cluster URL, as the `redis` crate takes it.
fn address(host: &RedisHost, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.name.clone(),
            port: host.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.name.clone(), host.port)
    }
}

impl Connection {
    /// Subscribes to `channels`: sharded channels in a Redis Cluster, each
    /// on its own shard.
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Connection::One(connection) => connection.subscribe(channels).await,
            Connection::Cluster(connection) => {
                for channel in channels {
                    connection.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::One(connection) => connection.unsubscribe(channel).await,
            Connection::Cluster(connection) => connection.sunsubscribe(channel).await,
        }
    }

    /// The command that publishes `message` on `channel`; Redis answers it
    /// with how many connections were subscribed.
    pub fn publish(&self, channel: &str, message: Vec<u8>) -> Cmd {
        let mut command = redis::cmd(publish_command(matches!(self, Connection::Cluster(_))));
        command.arg(channel).arg(message);
        command
    }

    /// The command that counts the connections subscribed to `channel`;
    /// Redis answers with the channel and its count.
    pub fn count_subscribers(&self, channel: &str) -> Cmd {
        let kind = match self {
            Connection::One(_) => "NUMSUB",
            Connection::Cluster(_) => "SHARDNUMSUB",
        };
        let mut command = redis::cmd("PUBSUB");
        command.arg(kind).arg(channel);
        command
    }
}

/// The command that publishes on a channel: a Redis Cluster's channels are
/// sharded (`SPUBLISH`). Scripts that publish are given it too.
pub fn publish_command(sharded: bool) -> &'static str {
    if sharded { "SPUBLISH" } else { "PUBLISH" }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::One(connection) => connection.req_packed_command(command),
            Connection::Cluster(connection) => connection.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::One(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::One(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

//! Counting connections on every node: a publish's recipients, a user's
//! connections, and the STATS figures.
//!
//! On one node these are lookups in socketio's room map. In a cluster a
//! publish's count and a user's connections add the other nodes' as their
//! replicated presence says (`cluster::presence`), at once; STATS adds up
//! the other nodes' answers to a survey (`cluster::survey`). Either says
//! when a figure is partial.

use std::future::Future;
use std::pin::Pin;

use super::{DispatchError, Dispatcher};
use push_client::Publish;

use crate::cluster::presence::Counted;
use crate::cluster::{Cluster, Socket};
use crate::metrics::{Census, ClusterSummary};
use crate::rooms::user_room;

/// How many connections something reached or has, on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub total: u32,
    /// Some node's figures may be out of date or missing (its presence is
    /// overdue or being resent, it did not answer STATS within
    /// `cluster_wait`), or this node could not reach the cluster.
    pub partial: bool,
}

impl Count {
    pub(super) fn add(&mut self, connections: u64) {
        let connections = u32::try_from(connections).unwrap_or(u32::MAX);
        self.total = self.total.saturating_add(connections);
    }

    /// Adds the other nodes' connections, as their presence counts them.
    pub(super) fn add_elsewhere(&mut self, elsewhere: Counted) {
        self.add(elsewhere.connections);
        self.partial |= elsewhere.stale;
    }
}

/// A count still waiting for Redis.
pub type PendingCount = Pin<Box<dyn Future<Output = Count> + Send>>;

/// A count, known now or once the cluster has answered.
///
/// What a count waits for (Redis's reply) does not hold up the caller: a
/// publisher connection reads and starts its next requests meanwhile, and
/// concurrent publishes share Redis round trips (`cluster::history`,
/// `cluster::bundle`).
pub enum Counting {
    Done(Count),
    Waiting(PendingCount),
}

impl Counting {
    pub async fn finish(self) -> Count {
        match self {
            Counting::Done(count) => count,
            Counting::Waiting(counting) => counting.await,
        }
    }
}

impl Dispatcher {
    /// The other nodes' connections `publish` is for, as their presence
    /// says; none without a cluster.
    pub(super) fn counted_elsewhere(&self, publish: &Publish<'_>) -> Counted {
        self.cluster
            .as_ref()
            .map_or_else(Counted::default, |cluster| {
                cluster
                    .presence()
                    .recipients(publish.namespace, &publish.target)
            })
    }

    /// Changes the rooms of `socket` with `change`; in a cluster, this
    /// node's presence follows (`LocalPresence::change_rooms`).
    pub fn change_rooms(&self, socket: &Socket, change: impl FnOnce()) {
        match &self.cluster {
            Some(cluster) => cluster.presence().local().change_rooms(socket, change),
            None => change(),
        }
    }

    /// Tells the other nodes to stop counting this node's connections, at
    /// shutdown.
    pub async fn leave_cluster(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.presence().say_goodbye().await;
        }
    }

    /// How many connections `user_id` has open in `namespace`, on every
    /// node.
    pub async fn connections_of(
        &self,
        namespace: &str,
        user_id: &str,
    ) -> Result<Count, DispatchError> {
        Ok(self
            .start_connections_of(namespace, user_id)?
            .finish()
            .await)
    }

    /// The same, as a [`Counting`] like a publish's (always known at once:
    /// the other nodes' connections come from their presence).
    pub fn start_connections_of(
        &self,
        namespace: &str,
        user_id: &str,
    ) -> Result<Counting, DispatchError> {
        let mut count = Count::default();
        count.add(self.local_connections_of(namespace, user_id)? as u64);
        if let Some(cluster) = &self.cluster {
            count.add_elsewhere(cluster.presence().connections_of(namespace, user_id));
            self.note_partial(count);
        }
        Ok(Counting::Done(count))
    }

    /// Records a publish's count in the metrics, and returns it. In a
    /// cluster the count is every node's: the node that took the publish
    /// counts its deliveries everywhere, and the others count none of it.
    /// Records a publish's count: `payload_bytes` went to each of its
    /// recipients.
    pub(super) fn published(&self, count: Count, payload_bytes: usize) -> Count {
        self.metrics
            .publish_delivered(u64::from(count.total), payload_bytes as u64);
        self.note_partial(count);
        count
    }

    fn note_partial(&self, count: Count) {
        if count.partial {
            self.metrics.cluster_partial_answer();
        }
    }

    pub(super) fn local_connections_of(
        &self,
        namespace: &str,
        user_id: &str,
    ) -> Result<usize, DispatchError> {
        Ok(self
            .namespace(namespace)?
            .within(user_room(user_id))
            .sockets()
            .len())
    }

    /// This node's connection figures, as STATS and the other nodes'
    /// surveys want them.
    pub async fn census(&self) -> Census {
        crate::socketio::census(&self.io, self.admin_namespace).await
    }

    /// The STATS document: this node's figures and, in a cluster, a
    /// `cluster` section with every node's connections.
    pub async fn stats_json(&self) -> String {
        let census = self.census().await;
        let Some(cluster) = &self.cluster else {
            return self.metrics.stats_json(&census, None);
        };
        let (everyone, partial) = self.cluster_census(cluster, census.clone()).await;
        if partial {
            self.metrics.cluster_partial_answer();
        }
        let summary = ClusterSummary {
            node: cluster.node_id().as_str(),
            link_up: cluster.is_up(),
            census: &everyone,
            partial,
        };
        self.metrics.stats_json(&census, Some(summary))
    }

    /// Connection figures of every node, summed; the second value is true
    /// when some node is missing.
    async fn cluster_census(&self, cluster: &Cluster, mut census: Census) -> (Census, bool) {
        let mut partial = false;
        match cluster.ask_census().await {
            Ok(gathered) => {
                partial |= gathered.missing > 0;
                for other in &gathered.censuses {
                    census.add(other);
                }
            }
            Err(_) => partial = true,
        }
        (census, partial)
    }
}

//! Counting connections on every node: a publish's recipients, a user's
//! connections, and the STATS figures.
//!
//! On one node these are lookups in socketio's room map. In a cluster the
//! node adds up the other nodes' answers to the same question
//! (`cluster::survey`), and says when an answer is partial.

use std::future::Future;
use std::pin::Pin;

use super::{DispatchError, Dispatcher};
use crate::cluster::Cluster;
use crate::cluster::survey::{Answer, Asking, Question, gathered};
use crate::metrics::{Census, ClusterSummary};
use crate::rooms::user_room;

/// How many connections something reached or has, on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub total: u32,
    /// Some node did not answer within `cluster_wait`, or this node could
    /// not reach the cluster: `total` leaves those nodes out.
    pub partial: bool,
}

impl Count {
    pub(super) fn add(&mut self, connections: u64) {
        let connections = u32::try_from(connections).unwrap_or(u32::MAX);
        self.total = self.total.saturating_add(connections);
    }

    pub(super) fn merge(&mut self, other: Count) {
        self.add(u64::from(other.total));
        self.partial |= other.partial;
    }
}

/// A count still waiting for Redis or the other nodes.
pub type PendingCount = Pin<Box<dyn Future<Output = Count> + Send>>;

/// A count, known now or once the cluster has answered.
///
/// What a count waits for (Redis's reply, the other nodes' answers) no
/// longer holds up the caller: a publisher connection reads and starts
/// its next requests meanwhile, and concurrent questions share Redis round
/// trips (`cluster::survey`, `cluster::history`).
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

/// What the other nodes answered about their connections.
#[derive(Debug, Default)]
pub(super) struct Elsewhere {
    pub count: Count,
    /// How many nodes answered.
    pub answered: usize,
}

/// Adds up the other nodes' answers to a question queued with
/// [`Dispatcher::ask_elsewhere`]; partial when one did not answer or they
/// could not be asked.
pub(super) async fn counted_elsewhere(asking: Option<Asking>) -> Elsewhere {
    let mut elsewhere = Elsewhere::default();
    let Some(asking) = asking else {
        return elsewhere;
    };
    let gathered = match gathered(asking).await {
        Ok(gathered) => gathered,
        Err(error) => {
            tracing::debug!(%error, "the other nodes could not be asked for their count");
            elsewhere.count.partial = true;
            return elsewhere;
        }
    };
    elsewhere.count.partial |= gathered.missing > 0;
    for (node, answer) in gathered.answers() {
        elsewhere.answered += 1;
        match answer {
            Answer::Count(connections) => elsewhere.count.add(*connections),
            other => {
                tracing::warn!(
                    node,
                    ?other,
                    "a node could not count its connections; check that every node serves the same namespaces"
                );
                elsewhere.count.partial = true;
            }
        }
    }
    elsewhere
}

impl Dispatcher {
    /// Queues `question` for the other nodes, if this node has any; see
    /// [`counted_elsewhere`] for their answers.
    pub(super) fn ask_elsewhere(&self, question: Question) -> Option<Asking> {
        self.cluster
            .as_ref()
            .map(|cluster| cluster.start_asking(question))
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

    /// The same, as a count that may wait for the other nodes' answers.
    pub fn start_connections_of(
        &self,
        namespace: &str,
        user_id: &str,
    ) -> Result<Counting, DispatchError> {
        let mut count = Count::default();
        count.add(self.local_connections_of(namespace, user_id)? as u64);
        if self.cluster.is_none() {
            return Ok(Counting::Done(count));
        }
        let question = Question::Connections {
            namespace: namespace.to_owned(),
            user: user_id.to_owned(),
        };
        let asking = self.ask_elsewhere(question);
        let metrics = self.metrics.clone();
        Ok(Counting::Waiting(Box::pin(async move {
            count.merge(counted_elsewhere(asking).await.count);
            if count.partial {
                metrics.cluster_partial_answer();
            }
            count
        })))
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

    /// Answers another node's question about this node's connections.
    pub async fn answer(&self, question: Question) -> Answer {
        let counted = match question {
            Question::Recipients { namespace, target } => self
                .select(&namespace, &target.borrowed())
                .map(|selection| selection.sockets().len()),
            Question::Connections { namespace, user } => {
                self.local_connections_of(&namespace, &user)
            }
            Question::Stats => {
                return Answer::Stats(
                    crate::socketio::census(&self.io, self.admin_namespace).await,
                );
            }
        };
        match counted {
            Ok(connections) => Answer::Count(connections as u64),
            Err(error) => Answer::Refused(error.to_string()),
        }
    }

    /// The STATS document: this node's figures and, in a cluster, a
    /// `cluster` section with every node's connections.
    pub async fn stats_json(&self) -> String {
        let census = crate::socketio::census(&self.io, self.admin_namespace).await;
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
        match cluster.ask(Question::Stats).await {
            Ok(gathered) => {
                partial |= gathered.missing > 0;
                for (_, answer) in gathered.answers() {
                    match answer {
                        Answer::Stats(other) => census.add(other),
                        _ => partial = true,
                    }
                }
            }
            Err(_) => partial = true,
        }
        (census, partial)
    }
}

//! Counting connections on every node: a publish's recipients, a user's
//! connections, and the STATS figures.
//!
//! On one node these are lookups in socketio's room map. In a cluster the
//! node adds up the other nodes' answers to the same question
//! (`cluster::survey`), and says when an answer is partial.

use push_client::Publish;

use super::{DispatchError, Dispatcher};
use crate::cluster::Cluster;
use crate::cluster::survey::{Answer, OwnedTarget, Question};
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
}

impl Dispatcher {
    /// Adds the connections `publish` is for on the other nodes, if any.
    ///
    /// `nodes_reached` is how many nodes, this one included, Redis handed
    /// the message to (see `cluster::link::receivers_of`): a node that
    /// answers but was not among them did not get the message, and the
    /// count is partial.
    pub(super) async fn add_recipients_elsewhere(
        &self,
        publish: &Publish<'_>,
        count: &mut Count,
        nodes_reached: Option<usize>,
    ) {
        if let Some(cluster) = &self.cluster {
            let question = Question::Recipients {
                namespace: publish.namespace.to_owned(),
                target: OwnedTarget::of(&publish.target),
            };
            let answered = self.add_other_nodes(cluster, question, count).await;
            if nodes_reached.is_some_and(|reached| reached < answered + 1) {
                count.partial = true;
            }
        }
    }

    /// How many connections `user_id` has open in `namespace`, on every
    /// node.
    pub async fn connections_of(
        &self,
        namespace: &str,
        user_id: &str,
    ) -> Result<Count, DispatchError> {
        let mut count = Count::default();
        count.add(self.local_connections_of(namespace, user_id)? as u64);
        if let Some(cluster) = &self.cluster {
            let question = Question::Connections {
                namespace: namespace.to_owned(),
                user: user_id.to_owned(),
            };
            self.add_other_nodes(cluster, question, &mut count).await;
        }
        self.note_partial(count);
        Ok(count)
    }

    /// Records a publish's count in the metrics, and returns it. In a
    /// cluster the count is every node's: the node that took the publish
    /// counts its deliveries everywhere, and the others count none of it.
    pub(super) fn published(&self, count: Count, publish: &Publish<'_>) -> Count {
        self.metrics
            .publish_delivered(u64::from(count.total), publish.payload.len() as u64);
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

    /// Adds the other nodes' answers to `count`, marking it partial when
    /// one did not answer or the cluster could not be asked; returns how
    /// many nodes answered.
    async fn add_other_nodes(
        &self,
        cluster: &Cluster,
        question: Question,
        count: &mut Count,
    ) -> usize {
        let gathered = match cluster.ask(question).await {
            Ok(gathered) => gathered,
            Err(error) => {
                tracing::debug!(%error, "the other nodes could not be asked for their count");
                count.partial = true;
                return 0;
            }
        };
        let answered = gathered.answers.len();
        count.partial |= gathered.missing > 0;
        for (node, answer) in gathered.answers {
            match answer {
                Answer::Count(connections) => count.add(connections),
                other => {
                    tracing::warn!(
                        node,
                        ?other,
                        "a node could not count its connections; check that every node serves the same namespaces"
                    );
                    count.partial = true;
                }
            }
        }
        answered
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
                for (_, answer) in gathered.answers {
                    match answer {
                        Answer::Stats(other) => census.add(&other),
                        _ => partial = true,
                    }
                }
            }
            Err(_) => partial = true,
        }
        (census, partial)
    }
}

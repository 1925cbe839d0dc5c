//! What nodes tell each other about their connections, as it travels on
//! the presence channel (JSON).
//!
//! Every message names its sender's instance (a node's name plus a random
//! number drawn at start, so that a restarted node is a new instance) and
//! carries the sender's sequence number: the number of its last
//! [`Body::Changes`]. Each batch of changes takes the next number, so a
//! receiver that sees one skipped knows its copy is stale and asks for a
//! [`Body::Snapshot`], which holds the sender's whole summary as of that
//! number.

use serde::{Deserialize, Serialize};

/// One message on the presence channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's `node_id`.
    pub node: String,
    /// The sender's instance: a new one each time a node starts.
    pub instance: u64,
    /// The sender's last batch of changes; this one's, for changes.
    pub seq: u64,
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    /// Connections that came, went or changed rooms since the last batch.
    Changes(Vec<NamespaceChanges>),
    /// Every connection of the sender. `answer_wanted`: the sender has
    /// just joined (or its link is back) and wants everyone's snapshot.
    Snapshot {
        namespaces: Vec<NamespaceSnapshot>,
        answer_wanted: bool,
    },
    /// Still here, at this sequence number.
    Heartbeat,
    /// The instance `of` (everyone's, if none) is asked for a snapshot: a
    /// receiver saw a gap in its sequence.
    SnapshotWanted { of: Option<u64> },
    /// The sender is shutting down: stop counting its connections.
    Goodbye,
}

/// A namespace's changes: connections added (or removed, if negative) by
/// profile (the sorted rooms of `summary::Profile`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceChanges {
    pub namespace: String,
    pub changes: Vec<(Vec<String>, i64)>,
}

/// A namespace's connections by profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceSnapshot {
    pub namespace: String,
    pub profiles: Vec<(Vec<String>, u64)>,
}

//! The other nodes' summaries, as this node last heard them.
//!
//! Each other node (each instance: a restarted node is a new one) has a
//! replica of its summary here, kept up to date by its batches of changes,
//! which must come in sequence. A replica is trusted while it is *synced*
//! (it started from a snapshot and no batch was missed since) and *fresh*
//! (its node was heard from within [`OVERDUE`]). One that is not still
//! counts, but the count says it is partial. A node silent for
//! [`SILENT_LIMIT`] is taken for gone and no longer counted at all, like
//! one that said goodbye.
//!
//! Everything here is decided from the messages and the time given, so it
//! is tested without Redis; `presence` feeds it and sends what it asks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use push_client::Target;

use super::summary::{Profile, Summary};
use super::wire::{Body, Envelope, NamespaceChanges, NamespaceSnapshot};
use super::{OVERDUE, SILENT_LIMIT};

/// How long a snapshot asked for may take before it is asked again: one
/// lost on the way (the link was down) is asked for once more.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);

/// What the node should send after a message from another.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A replica missed something: ask its instance for a snapshot.
    AskSnapshot(u64),
    /// Another node wants this node's snapshot.
    SendSnapshot,
}

/// What the other nodes' replicas count for a publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub connections: u64,
    /// How many nodes were counted.
    pub nodes: usize,
    /// Some replica may be out of date: its node is overdue, or it waits
    /// for a snapshot, or nodes that joined have not all sent theirs yet.
    pub stale: bool,
}

/// One other node's summary.
struct Replica {
    node: String,
    /// The last batch of changes applied.
    seq: u64,
    /// Started from a snapshot, and no batch missed since.
    synced: bool,
    heard: Instant,
    snapshot_asked: Option<Instant>,
    namespaces: HashMap<String, Summary>,
}

impl Replica {
    fn new(node: String, now: Instant) -> Self {
        Self {
            node,
            seq: 0,
            synced: false,
            heard: now,
            snapshot_asked: None,
            namespaces: HashMap::new(),
        }
    }

    fn load(&mut self, seq: u64, namespaces: Vec<NamespaceSnapshot>) {
        self.namespaces.clear();
        for NamespaceSnapshot {
            namespace,
            profiles,
        } in namespaces
        {
            let summary = self.namespaces.entry(namespace).or_default();
            for (rooms, connections) in profiles {
                let connections = i64::try_from(connections).unwrap_or(i64::MAX);
                // Cannot fail: a snapshot only adds.
                let _ = summary.apply(&Profile::of(rooms), connections);
            }
        }
        self.seq = seq;
        self.synced = true;
        self.snapshot_asked = None;
    }

    /// Applies a batch; false if it does not fit the summary.
    fn apply(&mut self, namespaces: Vec<NamespaceChanges>) -> bool {
        for NamespaceChanges { namespace, changes } in namespaces {
            let summary = self.namespaces.entry(namespace).or_default();
            for (rooms, delta) in changes {
                if summary.apply(&Profile::of(rooms), delta).is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Marks the replica stale, and says whether to ask for a snapshot now.
    fn lost_track(&mut self, now: Instant) -> bool {
        self.synced = false;
        let asked_lately = self
            .snapshot_asked
            .is_some_and(|asked| now.duration_since(asked) < SNAPSHOT_RETRY);
        if asked_lately {
            return false;
        }
        self.snapshot_asked = Some(now);
        true
    }

    fn trusted(&self, now: Instant) -> bool {
        self.synced && now.duration_since(self.heard) <= OVERDUE
    }
}

/// Nodes expected to send their snapshot since this node joined.
struct Joining {
    nodes: usize,
    until: Instant,
}

/// Every other node's replica, by instance.
#[derive(Default)]
pub struct Replicas {
    instances: HashMap<u64, Replica>,
    joining: Option<Joining>,
}

impl Replicas {
    /// Takes in a message from another instance; returns what to send.
    pub fn receive(&mut self, envelope: Envelope, now: Instant) -> Option<Reply> {
        let Envelope {
            node,
            instance,
            seq,
            body,
        } = envelope;
        if matches!(body, Body::Goodbye) {
            self.instances.remove(&instance);
            return None;
        }
        if matches!(
            body,
            Body::Snapshot {
                answer_wanted: true,
                ..
            }
        ) {
            // A node joined under the name of one this node knows: it
            // restarted, and its former instance's connections are gone.
            // (Only when it joins: two nodes given the same name by mistake
            // would otherwise drop each other's presence at every snapshot.)
            self.instances
                .retain(|other, replica| *other == instance || replica.node != node);
        }
        let replica = self
            .instances
            .entry(instance)
            .or_insert_with(|| Replica::new(node, now));
        replica.heard = now;
        match body {
            Body::Snapshot {
                namespaces,
                answer_wanted,
            } => {
                replica.load(seq, namespaces);
                answer_wanted.then_some(Reply::SendSnapshot)
            }
            Body::Changes(namespaces) => {
                if replica.synced && seq <= replica.seq {
                    return None; // Already in the snapshot.
                }
                if replica.synced && seq == replica.seq + 1 && replica.apply(namespaces) {
                    replica.seq = seq;
                    return None;
                }
                replica
                    .lost_track(now)
                    .then_some(Reply::AskSnapshot(instance))
            }
            Body::Heartbeat | Body::SnapshotWanted { .. } => {
                let missed = !replica.synced || seq > replica.seq;
                if missed && replica.lost_track(now) {
                    return Some(Reply::AskSnapshot(instance));
                }
                None
            }
            Body::Goodbye => None,
        }
    }

    /// This node's link went down or came back: it may have missed
    /// changes meanwhile, so no replica is trusted until its next snapshot.
    pub fn left_behind(&mut self, now: Instant) {
        for replica in self.instances.values_mut() {
            replica.synced = false;
            replica.snapshot_asked = Some(now);
        }
        self.joining = None;
    }

    /// `nodes` other nodes received this node's snapshot, and answer with
    /// theirs: counts are stale until they have, for [`SILENT_LIMIT`] at
    /// most.
    pub fn expect_snapshots(&mut self, nodes: usize, now: Instant) {
        self.joining = Some(Joining {
            nodes,
            until: now + SILENT_LIMIT,
        });
    }

    /// Forgets the nodes not heard from within [`SILENT_LIMIT`]; returns
    /// their names.
    pub fn forget_silent(&mut self, now: Instant) -> Vec<String> {
        let mut forgotten = Vec::new();
        self.instances.retain(|_, replica| {
            let silent = now.duration_since(replica.heard) > SILENT_LIMIT;
            if silent {
                forgotten.push(replica.node.clone());
            }
            !silent
        });
        forgotten
    }

    /// The replicas' connections a publish to `target` reaches.
    pub fn recipients(&self, namespace: &str, target: &Target<'_>, now: Instant) -> Counted {
        self.count(namespace, now, |summary| summary.recipients(target))
    }

    /// The replicas' connections of `user`.
    pub fn connections_of(&self, namespace: &str, user: &str, now: Instant) -> Counted {
        self.count(namespace, now, |summary| summary.connections_of(user))
    }

    fn count(&self, namespace: &str, now: Instant, count: impl Fn(&Summary) -> u64) -> Counted {
        let mut counted = Counted::default();
        let mut synced = 0;
        for replica in self.instances.values() {
            if now.duration_since(replica.heard) > SILENT_LIMIT {
                continue; // Gone: forgotten at the next sweep.
            }
            counted.nodes += 1;
            counted.stale |= !replica.trusted(now);
            synced += usize::from(replica.synced);
            if let Some(summary) = replica.namespaces.get(namespace) {
                counted.connections += count(summary);
            }
        }
        if let Some(joining) = &self.joining {
            counted.stale |= now < joining.until && synced < joining.nodes;
        }
        counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(instance: u64, seq: u64, body: Body) -> Envelope {
        Envelope {
            node: format!("node-{instance}"),
            instance,
            seq,
            body,
        }
    }

    fn snapshot(user: &str, connections: u64) -> Body {
        Body::Snapshot {
            namespaces: vec![NamespaceSnapshot {
                namespace: "/".to_owned(),
                profiles: vec![(vec![format!("user:{user}")], connections)],
            }],
            answer_wanted: false,
        }
    }

    fn changes(user: &str, delta: i64) -> Body {
        Body::Changes(vec![NamespaceChanges {
            namespace: "/".to_owned(),
            changes: vec![(vec![format!("user:{user}")], delta)],
        }])
    }

    fn everyone(replicas: &Replicas, now: Instant) -> Counted {
        replicas.recipients("/", &Target::everyone(), now)
    }

    #[test]
    fn changes_in_sequence_apply() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        assert_eq!(
            replicas.receive(envelope(1, 4, snapshot("a", 2)), now),
            None
        );
        assert_eq!(replicas.receive(envelope(1, 5, changes("b", 1)), now), None);
        assert_eq!(
            replicas.receive(envelope(1, 6, changes("a", -1)), now),
            None
        );
        let counted = everyone(&replicas, now);
        assert_eq!(
            (counted.connections, counted.nodes, counted.stale),
            (2, 1, false)
        );
        assert_eq!(replicas.connections_of("/", "b", now).connections, 1);
    }

    #[test]
    fn a_gap_asks_for_a_snapshot_once_and_the_snapshot_mends_it() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 1, snapshot("a", 1)), now);
        assert_eq!(
            replicas.receive(envelope(1, 3, changes("b", 1)), now),
            Some(Reply::AskSnapshot(1))
        );
        assert!(everyone(&replicas, now).stale);
        // Asked already: not again at once, even as more comes.
        assert_eq!(replicas.receive(envelope(1, 4, changes("b", 1)), now), None);
        replicas.receive(envelope(1, 4, snapshot("b", 3)), now);
        assert_eq!(replicas.receive(envelope(1, 4, changes("c", 1)), now), None);
        let counted = everyone(&replicas, now);
        assert_eq!((counted.connections, counted.stale), (3, false));
    }

    #[test]
    fn a_heartbeat_ahead_of_the_last_batch_reveals_a_lost_batch() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 1, snapshot("a", 1)), now);
        assert_eq!(replicas.receive(envelope(1, 1, Body::Heartbeat), now), None);
        assert_eq!(
            replicas.receive(envelope(1, 2, Body::Heartbeat), now),
            Some(Reply::AskSnapshot(1))
        );
    }

    #[test]
    fn a_batch_that_does_not_fit_asks_for_a_snapshot() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 1, snapshot("a", 1)), now);
        assert_eq!(
            replicas.receive(envelope(1, 2, changes("a", -2)), now),
            Some(Reply::AskSnapshot(1))
        );
    }

    #[test]
    fn an_unknown_instance_is_asked_for_its_snapshot() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        assert_eq!(
            replicas.receive(envelope(7, 3, changes("a", 1)), now),
            Some(Reply::AskSnapshot(7))
        );
        assert!(everyone(&replicas, now).stale);
    }

    #[test]
    fn a_silent_node_goes_stale_then_is_forgotten_and_goodbye_is_at_once() {
        let start = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 0, snapshot("a", 1)), start);
        replicas.receive(envelope(2, 0, snapshot("b", 1)), start);
        let overdue = start + OVERDUE + Duration::from_millis(1);
        let counted = everyone(&replicas, overdue);
        assert_eq!((counted.connections, counted.stale), (2, true));
        let gone = start + SILENT_LIMIT + Duration::from_millis(1);
        assert_eq!(everyone(&replicas, gone), Counted::default());
        let mut forgotten = replicas.forget_silent(gone);
        forgotten.sort();
        assert_eq!(forgotten, ["node-1", "node-2"]);

        replicas.receive(envelope(3, 0, snapshot("c", 1)), start);
        replicas.receive(envelope(3, 0, Body::Goodbye), start);
        assert_eq!(everyone(&replicas, start), Counted::default());
    }

    #[test]
    fn a_restarted_node_replaces_its_former_instance() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 9, snapshot("a", 5)), now);
        let mut restarted = envelope(2, 0, snapshot("a", 1));
        restarted.node = "node-1".to_owned();
        if let Body::Snapshot { answer_wanted, .. } = &mut restarted.body {
            *answer_wanted = true; // As a node that joins sends it.
        }
        replicas.receive(restarted, now);
        let counted = everyone(&replicas, now);
        assert_eq!((counted.connections, counted.nodes), (1, 1));
    }

    #[test]
    fn after_joining_counts_are_stale_until_every_node_sent_its_snapshot() {
        let now = Instant::now();
        let mut replicas = Replicas::default();
        replicas.receive(envelope(1, 0, snapshot("a", 1)), now);
        replicas.left_behind(now);
        assert!(everyone(&replicas, now).stale);
        replicas.expect_snapshots(2, now);
        replicas.receive(envelope(1, 0, snapshot("a", 1)), now);
        assert!(everyone(&replicas, now).stale, "one of two answered");
        replicas.receive(envelope(2, 0, snapshot("b", 1)), now);
        assert!(!everyone(&replicas, now).stale);
        // A node that never answers does not keep counts stale for ever.
        replicas.left_behind(now);
        replicas.expect_snapshots(3, now);
        replicas.receive(envelope(1, 0, snapshot("a", 1)), now);
        replicas.receive(envelope(2, 0, snapshot("b", 1)), now);
        let later = now + SILENT_LIMIT;
        replicas.receive(envelope(1, 0, Body::Heartbeat), later);
        replicas.receive(envelope(2, 0, Body::Heartbeat), later);
        assert!(!everyone(&replicas, later).stale);
    }
}

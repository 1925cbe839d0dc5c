//! Publishes carried to the other nodes when recovery is off.
//!
//! Without a history to number them in, a publish only has to reach the
//! other nodes' connections. The publishing node hands it to its own at
//! once and sends it, as the same JSON entry the history would keep, on
//! the namespace's relay channel; every other node hands what it hears
//! there to its own connections, in the order it was sent. The link
//! bundles what gathered while Redis was busy (`bundle`), so a pipelining
//! publisher's burst costs a few `PUBLISH`es, not one each, and reaches
//! the relay as a few bundles, which it splits itself.
//!
//! Why not socketioxide's Redis adapter, which did this before: it encodes
//! each broadcast as a request of its own (MessagePack, with the packet,
//! the rooms and the options), and each node decodes it and selects again;
//! a publish is one small entry that every node already knows how to
//! deliver. The adapter still carries whatever else the socket.io server
//! broadcasts.
//!
//! Each message starts with the sending node's tag (8 bytes), so that a
//! node skips its own: Redis sends a channel's messages to every
//! subscriber, the sender too. The tag never starts with the byte that
//! marks a bundle.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::bundle::{self, BUNDLE_MARK};
use super::link::{Bundles, LinkError, RedisLink};
use super::namespace_name;
use crate::recovery::Entry;

/// Messages from other nodes (each an entry, or a bundle of up to 256)
/// queued per namespace before this node hands them out: a pipelining
/// publisher's burst. Beyond that they are dropped (with a warning), as
/// the adapter's queue did.
const QUEUE: usize = 4096;

/// The length of a node's tag at the start of each message.
const TAG_LEN: usize = 8;

/// Hands an entry another node published to this node's connections.
pub type DeliverRelayed =
    Arc<dyn Fn(Arc<str>, Entry) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Sends this node's publishes to the other nodes, and hands theirs out.
pub struct Relay {
    link: RedisLink,
    /// This node's tag: random, so that a restarted node is another.
    tag: [u8; TAG_LEN],
    /// Each namespace's channel.
    channels: HashMap<String, String>,
}

impl Relay {
    /// The relay of `namespaces`, on channels under `prefix`; in a Redis
    /// Cluster each channel is placed by its namespace (sharded pub/sub, see
    /// `namespace_name`).
    pub fn new(link: RedisLink, prefix: &str, namespaces: &[String]) -> Self {
        let channels = namespaces
            .iter()
            .map(|namespace| {
                let channel = namespace_name(prefix, namespace, "relay", link.sharded());
                (namespace.clone(), channel)
            })
            .collect();
        let mut tag = fastrand::u64(..).to_be_bytes();
        if tag[0] == BUNDLE_MARK {
            tag[0] = !BUNDLE_MARK;
        }
        Self {
            link,
            tag,
            channels,
        }
    }

    /// Queues `entry` (an `Entry` as JSON, see `Entry::encode`) for the
    /// other nodes; its place in the order is taken now. The future says
    /// how many nodes were subscribed to receive it, this one included.
    pub fn send(
        &self,
        namespace: &str,
        entry: &[u8],
    ) -> impl Future<Output = Result<usize, LinkError>> + Send + 'static {
        let queued = match self.channels.get(namespace) {
            Some(channel) => {
                let mut message = Vec::with_capacity(TAG_LEN + entry.len());
                message.extend_from_slice(&self.tag);
                message.extend_from_slice(entry);
                Ok(self.link.queue_publish(channel.clone(), message))
            }
            None => Err(LinkError::NotShared(namespace.to_owned())),
        };
        async move { queued?.await }
    }

    /// Hands out what the other nodes send, with `deliver`, until
    /// `shutdown`.
    pub fn run(self: Arc<Self>, deliver: DeliverRelayed, shutdown: CancellationToken) {
        for (namespace, channel) in &self.channels {
            let mut messages = self
                .link
                .subscribe_channel(channel.clone(), QUEUE, Bundles::Whole);
            let namespace: Arc<str> = Arc::from(namespace.as_str());
            let (relay, deliver, shutdown) = (self.clone(), deliver.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        () = shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some((_, message)) = message else { return };
                    for part in bundle::parts(&message) {
                        if let Some(entry) = relay.entry_from_another_node(part) {
                            deliver(namespace.clone(), entry).await;
                        }
                    }
                }
            });
        }
    }

    /// The entry `message` carries, unless this node sent it; `None` too
    /// for a message that is not an entry (logged).
    fn entry_from_another_node(&self, message: &[u8]) -> Option<Entry> {
        let (tag, entry) = message.split_at_checked(TAG_LEN)?;
        if tag == self.tag {
            return None;
        }
        match serde_json::from_slice(entry) {
            Ok(entry) => Some(entry),
            Err(error) => {
                tracing::warn!(%error, "an unreadable message on a cluster relay channel; ignored");
                None
            }
        }
    }
}

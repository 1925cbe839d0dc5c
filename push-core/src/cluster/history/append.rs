//! Numbering publishes in Redis, many per round trip.
//!
//! Every publish of a cluster with recovery on is numbered by a Lua script
//! in Redis (see [`super`]). One script call and one round trip per
//! publish made a node's publish rate the inverse of Redis's latency, so
//! publishes wait in a queue instead, and one task takes whatever has
//! gathered there each time Redis answers: one script call per namespace
//! numbers all of that namespace's messages at once. Nothing waits to fill
//! a batch: a publish that finds the queue idle goes at once, and batches
//! grow only while Redis is busy with the previous one (natural batching).
//!
//! The queue is the order: publishes are queued in the order they come,
//! one batch is in flight at a time, and a namespace's messages are
//! numbered in queue order within it.
//!
//! Behind Sentinel a batch is answered only once a replica has it too
//! (`WAIT`), while the master has one: Redis replicates asynchronously,
//! and a failover would otherwise lose publishes PHP was told were made.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Keys, Messages, parse_epoch, publish_command};
use crate::cluster::link::{LinkError, RedisLink};
use crate::recovery::{Offset, new_epoch};

/// Publishes numbered by one script call at most. Enough to carry a
/// pipelining publisher's burst in a few round trips, few enough that an
/// entry (and the live message that carries it to every node) stays a few
/// hundred KiB at most.
const MAX_BATCH: usize = 512;

/// How long a batch waits for a replica to confirm it. A replica on the
/// same network confirms within a millisecond; one slower than this is
/// lagging, and publishes are answered without it rather than stall.
const REPLICA_WAIT: Duration = Duration::from_millis(100);

/// A publish waiting for its number.
pub(super) struct Append {
    pub keys: Arc<Keys>,
    /// The message as the stream keeps it.
    pub message: Vec<u8>,
    pub numbered: oneshot::Sender<Result<Offset, Unnumbered>>,
}

/// A message that could not be numbered, handed back with why.
#[derive(Debug)]
pub struct Unnumbered {
    pub error: LinkError,
    pub message: Vec<u8>,
}

impl Append {
    fn fail(self, error: LinkError) {
        let unnumbered = Unnumbered {
            error,
            message: self.message,
        };
        let _ = self.numbered.send(Err(unnumbered));
    }
}

/// The task that numbers queued publishes.
pub(super) struct Appender {
    link: RedisLink,
    queue: mpsc::UnboundedReceiver<Append>,
    max_messages: usize,
    /// The numbering script (see `super::APPEND`), hashed once.
    script: Script,
}

impl Appender {
    pub(super) fn new(
        link: RedisLink,
        queue: mpsc::UnboundedReceiver<Append>,
        max_messages: usize,
        script: Script,
    ) -> Self {
        Self {
            link,
            queue,
            max_messages,
            script,
        }
    }

    /// Numbers what is queued, batch after batch, until `shutdown`.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = self.queue.recv_many(&mut batch, MAX_BATCH) => received,
            };
            if received == 0 {
                return;
            }
            self.number(std::mem::take(&mut batch)).await;
            batch.reserve(MAX_BATCH);
        }
    }

    /// Numbers one batch: one script call per namespace, all in one round
    /// trip (the connection pipelines them).
    async fn number(&self, batch: Vec<Append>) {
        let Some(mut connection) = self.link.connection() else {
            for append in batch {
                append.fail(LinkError::Down);
            }
            return;
        };
        let groups = by_namespace(batch);
        let calls = groups.iter().map(|group| {
            let mut connection = connection.clone();
            let mut invocation = self.script.prepare_invoke();
            let keys = &group[0].keys;
            invocation
                .key(&keys.stream)
                .key(&keys.epoch)
                .key(&keys.counter)
                .arg(new_epoch().to_string())
                .arg(self.max_messages)
                .arg(fastrand::u64(..))
                .arg(publish_command(self.link.sharded()))
                .arg(&keys.live)
                .arg(group.len())
                .arg(Messages::join(
                    group.iter().map(|append| append.message.as_slice()),
                ));
            async move {
                invocation
                    .invoke_async::<(String, u64)>(&mut connection)
                    .await
            }
        });
        let numbered = join_all(calls).await;
        let replicas = self.link.replicas_to_wait_for();
        if replicas > 0 && numbered.iter().any(Result::is_ok) {
            // Covers every write made on this connection so far.
            let confirmed: Result<usize, _> = redis::cmd("WAIT")
                .arg(replicas)
                .arg(REPLICA_WAIT.as_millis() as u64)
                .query_async(&mut connection)
                .await;
            if !matches!(confirmed, Ok(count) if count >= replicas) {
                tracing::debug!("a batch of publishes was not confirmed by a replica in time");
            }
        }
        for (group, numbered) in groups.into_iter().zip(numbered) {
            match numbered {
                Ok((epoch, first)) => {
                    let epoch = parse_epoch(&epoch);
                    for (seq, append) in (first..).zip(group) {
                        let _ = append.numbered.send(Ok(Offset { epoch, seq }));
                    }
                }
                Err(error) => {
                    for append in group {
                        append.fail(LinkError::Redis(error.clone()));
                    }
                }
            }
        }
    }
}

/// Splits a batch by namespace, each part in queue order.
fn by_namespace(batch: Vec<Append>) -> Vec<Vec<Append>> {
    let mut groups: Vec<Vec<Append>> = Vec::new();
    for append in batch {
        match groups
            .iter_mut()
            .find(|group| Arc::ptr_eq(&group[0].keys, &append.keys))
        {
            Some(group) => group.push(append),
            None => groups.push(vec![append]),
        }
    }
    groups
}

//! What a publish does for a connection whose send buffer is full.
//!
//! Each connection queues at most `max_buffered_messages` packets, so a
//! page that stops reading cannot make the daemon hold every message for
//! it. A message that finds the queue full is not silently lost for it:
//!
//! - with recovery on, the connection is taken off live messages and,
//!   once it reads again, sent everything after the last message it took,
//!   from the history, in order (`socketio::catch_up`, the path pages that
//!   reconnect take); if the history no longer holds all of it, the page
//!   is sent `push:recovery` with `recovered: false`;
//! - with recovery off, the message is lost for it, counted in
//!   `push_deliveries_dropped_total`, and the page is told so with
//!   `push:missed` once it has room (`socketio::tell_missed`).
//!
//! socketioxide says how many connections of a broadcast could not take
//! it, not which, so the broadcast runs under push-engineio's
//! [`watch_full`], which names their sessions.

use std::collections::HashSet;
use std::future::poll_fn;
use std::pin::pin;

use engineioxide::{SessionKey, corked_counting, watch_full};
use futures_util::FutureExt;
use push_client::Target;
use socketioxide::BroadcastError;
use socketioxide::operators::BroadcastOperators;

use super::Dispatcher;
use crate::cluster::{NodeAdapter, Socket};
use crate::recovery::Offset;
use crate::socketio;

/// The message being handed out: where, to whom, and its offset when it is
/// numbered (recovery on, and kept in the history).
#[derive(Clone, Copy)]
pub(super) struct Delivery<'a> {
    pub namespace: &'a str,
    pub target: &'a Target<'a>,
    pub offset: Option<Offset>,
}

/// What became of the message for a connection whose buffer was full.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Its catch-up brings it.
    Later,
    Lost,
}

/// What an emit did.
pub(super) struct Emitted {
    pub result: Result<(), BroadcastError>,
    /// The sessions whose queue was full.
    pub full: Vec<SessionKey>,
    /// The sessions handed the packet, when the emit was done within its
    /// first poll (this node's part of a broadcast always is).
    pub handed: Option<usize>,
}

/// Emits to `selection`, corked (docs/transport.md), and names the
/// sessions whose queue was full.
///
/// This node's part of a broadcast is one loop within one poll: the first
/// for a local emit, a later one for a broadcast to the cluster, which
/// waits for Redis first. Every poll runs under [`watch_full`], and the
/// first, which does a local emit whole, corked: its packets go out after
/// it, and it counts the sessions it reached.
pub(super) async fn emit_corked<T: ?Sized + serde::Serialize>(
    selection: BroadcastOperators<NodeAdapter>,
    event: &str,
    data: &T,
) -> Emitted {
    let mut emit = pin!(selection.emit(event, data));
    let ((first, mut full), handed) =
        corked_counting(|| watch_full(|| emit.as_mut().now_or_never()));
    if let Some(result) = first {
        return Emitted {
            result,
            full,
            handed: Some(handed),
        };
    }
    let result = poll_fn(|cx| {
        let (poll, refused) = watch_full(|| emit.as_mut().poll(cx));
        full.extend(refused);
        poll
    })
    .await;
    Emitted {
        result,
        full,
        handed: None,
    }
}

impl Dispatcher {
    /// Applies the policy to the connections of `delivery`'s recipients on
    /// this node whose sessions are `full`; returns how many lost the
    /// message (a connection that left meanwhile lost it too).
    pub(super) fn queues_full(&self, full: &[SessionKey], delivery: Delivery<'_>) -> usize {
        let full: HashSet<SessionKey> = full.iter().copied().collect();
        let Ok(recipients) = self.recipients(delivery.namespace, delivery.target) else {
            return full.len();
        };
        let later = recipients
            .local()
            .sockets()
            .into_iter()
            .filter(|socket| full.contains(&SessionKey::of(socket.req_parts())))
            .filter(|socket| self.queue_full(socket, delivery.offset) == Fate::Later)
            .count();
        full.len().saturating_sub(later)
    }

    /// `socket` could not take the message at `offset`. With recovery on,
    /// the caller holds the namespace's lock.
    pub(super) fn queue_full(&self, socket: &Socket, offset: Option<Offset>) -> Fate {
        match &self.recovery {
            Some(recovery) => {
                // It took everything before this message: a connection
                // that misses one is caught up and gets no live message
                // until then. An unnumbered message (Redis could not be
                // reached) is in no history: the page is told to reload.
                let received = offset.map(|offset| Offset {
                    seq: offset.seq.saturating_sub(1),
                    ..offset
                });
                socketio::catch_up(socket, recovery.clone(), self.metrics.clone(), received);
                Fate::Later
            }
            None => {
                socketio::tell_missed(socket, &self.metrics);
                Fate::Lost
            }
        }
    }
}

//! Who receives a publish, and handing it to them.
//!
//! The site names a target in its own terms (everyone, users, rooms, users
//! to leave out); this module turns that into socket.io room selections and
//! emits. socketioxide keeps rooms as a map from name to connections, so
//! reaching a user is a lookup rather than a scan, and a broadcast packet is
//! encoded once and the same bytes are queued on every connection.
//!
//! In a cluster every node must hand the message to its own connections:
//! with recovery on it goes through the cluster's history in Redis, which
//! numbers it (`cluster::history`); with recovery off this node hands it
//! out at once and relays it to the others (`cluster::relay`). Either way
//! the count adds this node's own connections, counted now, to the other
//! nodes' as their replicated presence says (`cluster::presence`): a
//! publish waits for Redis only, never for another node.
//!
//! [`Dispatcher`] is the publish handle an embedding application holds; the
//! Unix-socket listener is just one caller of it.

mod counts;
mod slow_consumers;

use std::sync::Arc;

use push_client::{ErrorCode, Publish, Target};
use serde_json::value::RawValue;
use socketioxide::{BroadcastError, SendError, SocketError, operators::BroadcastOperators};
use thiserror::Error;

use crate::cluster::history::{Mark, SharedHistory, UNNUMBERED_EVENT, Unnumbered};
use crate::cluster::relay::Relay;
use crate::cluster::{Cluster, Io, NodeAdapter, Sharing, Socket};
use crate::metrics::Metrics;
use crate::recovery::{Entry, Offset, OffsetArgument, Recovery, STATUS_EVENT, Status};
use crate::rooms::{RESUMING_ROOM, UNIDENTIFIED_ROOM, public_room, user_room};
use crate::socketio;

pub use self::counts::{Count, Counting, PendingCount};
use self::slow_consumers::{Delivery, Emitted, Fate, emit_corked};

/// Event names the socket.io client handles itself; a publish under one of
/// them would never reach the page's handlers, or would confuse the client.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Up to how many recipients a publish is sent to each connection on its
/// own rather than by a second selection of the rooms: a user's tabs. Each
/// such connection encodes the packet itself, which for more would cost
/// more than selecting again (a broadcast encodes it once).
const FEW_RECIPIENTS: usize = 4;

/// Why a publish or a question about a user was refused.
#[derive(Debug, Error)]
pub enum DispatchError {
    #[error("namespace {0:?} is not served by this daemon; add it with --namespace {0}")]
    UnknownNamespace(String),
    #[error(
        "namespace \"/admin\" is the socket.io Admin UI's (admin_ui_username is set), which no publish or question about users reaches; use one of the site's namespaces"
    )]
    AdminNamespace,
    #[error("the event name is empty")]
    EmptyEvent,
    #[error("the event name {0:?} is reserved by socket.io; choose another")]
    ReservedEvent(String),
    #[error("the payload is not valid JSON: {0}")]
    InvalidPayload(String),
    #[error("the message could not be encoded for socket.io: {0}")]
    Encoding(String),
    #[error(
        "missed-message recovery is off on this daemon (recovery_window = 0), so there are no offsets; turn it on, or render pages without one"
    )]
    RecoveryOff,
}

impl DispatchError {
    /// The protocol error code a publisher receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DispatchError::UnknownNamespace(_) | DispatchError::AdminNamespace => {
                ErrorCode::UNKNOWN_NAMESPACE
            }
            DispatchError::EmptyEvent | DispatchError::ReservedEvent(_) => {
                ErrorCode::INVALID_REQUEST
            }
            DispatchError::InvalidPayload(_) => ErrorCode::INVALID_PAYLOAD,
            DispatchError::Encoding(_) => ErrorCode::INTERNAL,
            DispatchError::RecoveryOff => ErrorCode::RECOVERY_OFF,
        }
    }
}

/// A cheap, cloneable handle for publishing to connected browsers.
#[derive(Clone)]
pub struct Dispatcher {
    io: Io,
    metrics: Arc<Metrics>,
    /// Set when missed-message recovery is on.
    recovery: Option<Arc<Recovery>>,
    /// Set when this node is one of a cluster.
    cluster: Option<Arc<Cluster>>,
    /// Set in a cluster: how publishes reach the other nodes.
    sharing: Option<Sharing>,
    /// Set when the Admin UI is on: its namespace is not the site's, and
    /// nothing a publisher sends may reach or count it.
    admin_namespace: Option<&'static str>,
}

impl Dispatcher {
    pub(crate) fn new(
        io: Io,
        metrics: Arc<Metrics>,
        recovery: Option<Arc<Recovery>>,
        cluster: Option<Arc<Cluster>>,
        sharing: Option<Sharing>,
        admin_namespace: Option<&'static str>,
    ) -> Self {
        Self {
            io,
            metrics,
            recovery,
            cluster,
            sharing,
            admin_namespace,
        }
    }

    /// Delivers `publish`; returns how many connections it was handed to,
    /// on every node.
    pub async fn publish(&self, publish: &Publish<'_>) -> Result<Count, DispatchError> {
        Ok(self.start_publish(publish).await?.finish().await)
    }

    /// Hands `publish` on and returns its count, or, in a cluster, what
    /// waits for it: Redis's reply. By the time
    /// this returns the message has its place in its namespace's order (on
    /// this node, or in the queue to Redis), so a caller may start the next
    /// publish while this one's count is still coming.
    ///
    /// With recovery on, the message is numbered and kept first, and handed
    /// out under its namespace's lock, so every connection receives a
    /// namespace's messages in the order of their offsets.
    pub async fn start_publish(&self, publish: &Publish<'_>) -> Result<Counting, DispatchError> {
        self.check_site_namespace(publish.namespace)?;
        check_event(publish.event)?;
        let payload = parse_payload(publish.payload)?;
        match &self.sharing {
            None => Ok(Counting::Done(self.publish_alone(publish, payload).await?)),
            Some(Sharing::History(shared)) => self.publish_numbered(shared, publish, payload),
            Some(Sharing::Relay(relay)) => self.publish_relayed(relay, publish, payload).await,
        }
    }

    /// A node on its own: the message is handed to its connections now.
    async fn publish_alone(
        &self,
        publish: &Publish<'_>,
        payload: &RawValue,
    ) -> Result<Count, DispatchError> {
        let handed = match &self.recovery {
            None => self.deliver_here(publish, payload, None).await?,
            Some(recovery) => {
                let mut stream = recovery
                    .lock(publish.namespace)
                    .await
                    .ok_or_else(|| DispatchError::UnknownNamespace(publish.namespace.to_owned()))?;
                let offset = stream.record(publish.event, payload, &publish.target);
                let argument = OffsetArgument {
                    offset: offset.to_string(),
                };
                self.deliver_here(publish, &(payload, argument), Some(offset))
                    .await?
            }
        };
        let mut count = Count::default();
        count.add(handed as u64);
        Ok(self.published(count, publish.payload.len()))
    }

    /// A cluster with recovery on: the message is queued to be numbered in
    /// the cluster's history, and every node (this one too) hands it out
    /// as it reads it there (see `cluster::history`). The count is of the
    /// connections the message is for now, here and in the other nodes'
    /// presence; the publish waits only for Redis to number it, so that
    /// what the publisher is told is kept.
    fn publish_numbered(
        &self,
        shared: &Arc<SharedHistory>,
        publish: &Publish<'_>,
        payload: &RawValue,
    ) -> Result<Counting, DispatchError> {
        let here = self.recipients_here(publish)?;
        let message = Entry::encode(Entry::now_ms(), publish.event, payload, &publish.target)
            .map_err(|error| DispatchError::Encoding(error.to_string()))?;
        let appending = shared.append(publish.namespace, message);
        let elsewhere = self.counted_elsewhere(publish);
        let namespace = publish.namespace.to_owned();
        let payload_bytes = publish.payload.len();
        let dispatcher = self.clone();
        let shared = shared.clone();
        Ok(Counting::Waiting(Box::pin(async move {
            let mut count = Count::default();
            match appending.await {
                Ok(_) => {
                    count.add(here as u64);
                    // The stream keeps the message for a node that reads
                    // it late.
                    count.add_elsewhere(elsewhere);
                }
                Err(Unnumbered { error, message }) => {
                    // Redis cannot be reached: this node's connections get
                    // it now, without an offset, since it has no place in
                    // the history. (If the connection broke after Redis
                    // numbered it, they get it a second time from the
                    // history: docs/scaling.md, "When Redis is down".)
                    tracing::debug!(%error, "a publish could not be added to the cluster's history");
                    let mark = shared.note_unnumbered(&namespace);
                    if let Ok(entry) = serde_json::from_slice::<Entry>(&message) {
                        count.add(dispatcher.emit_local(&namespace, &entry, mark).await as u64);
                    }
                    count.partial = true;
                }
            }
            dispatcher.published(count, payload_bytes)
        })))
    }

    /// A cluster with recovery off: the message is handed to this node's
    /// connections now, and relayed to the other nodes (`cluster::relay`).
    /// The publish waits for Redis's reply to the relay's `PUBLISH`: it says
    /// the message left this node, and how many nodes received it, which
    /// checks the presence's count. By the time this returns the message
    /// is queued for the other nodes, in the order the publishes came.
    async fn publish_relayed(
        &self,
        relay: &Relay,
        publish: &Publish<'_>,
        payload: &RawValue,
    ) -> Result<Counting, DispatchError> {
        let handed = self.deliver_here(publish, payload, None).await?;
        let message = Entry::encode(Entry::now_ms(), publish.event, payload, &publish.target)
            .map_err(|error| DispatchError::Encoding(error.to_string()))?;
        let relaying = relay.send(publish.namespace, &message);
        let elsewhere = self.counted_elsewhere(publish);
        let payload_bytes = publish.payload.len();
        let dispatcher = self.clone();
        Ok(Counting::Waiting(Box::pin(async move {
            let mut count = Count::default();
            count.add(handed as u64);
            match relaying.await {
                Ok(nodes_reached) => {
                    count.add_elsewhere(elsewhere);
                    // Redis handed the message to another set of nodes
                    // than the presence counted: one counted did not get
                    // it (its link is down, not yet overdue), or one got
                    // it whose presence is not known yet.
                    if nodes_reached != elsewhere.nodes + 1 {
                        count.partial = true;
                    }
                }
                // Redis cannot be reached: this node's connections have it,
                // the others' cannot be reached or counted.
                Err(error) => {
                    tracing::debug!(%error, "a publish could not reach the other nodes");
                    count.partial = true;
                }
            }
            dispatcher.published(count, payload_bytes)
        })))
    }

    /// How many of this node's connections `publish` is for, pages being
    /// replayed to included (see [`Self::recipients`]). socketioxide's emit
    /// does not say how many it reached, so they are counted first.
    fn recipients_here(&self, publish: &Publish<'_>) -> Result<usize, DispatchError> {
        Ok(self
            .recipients(publish.namespace, &publish.target)?
            .sockets()
            .len())
    }

    /// Hands `entry` to this node's connections only, without an offset
    /// (with `mark` in its place, if any: see `cluster::history`); returns
    /// how many took it.
    async fn emit_local(&self, namespace: &str, entry: &Entry, mark: Option<Mark>) -> usize {
        let Ok(recipients) = self.select(namespace, &entry.target()) else {
            return 0;
        };
        let recipients = recipients.sockets().len();
        let argument = mark.map(|mark| OffsetArgument {
            offset: mark.to_string(),
        });
        let emitted = self
            .emit_entry_here(namespace, entry, None, argument.as_ref())
            .await;
        if let Some(argument) = &argument {
            self.hand_out_mark(namespace, argument).await;
        }
        match emitted {
            Ok(undelivered) => recipients.saturating_sub(undelivered),
            Err(_) => 0,
        }
    }

    /// Gives every page of `namespace` on this node the mark of a message
    /// handed out without an offset, those it was not for too: whichever
    /// of them reconnects to another node first tells the cluster (see
    /// `cluster::history`), and a private message may have no recipient
    /// here at all.
    async fn hand_out_mark(&self, namespace: &str, mark: &OffsetArgument) {
        let Ok(everyone) = self.namespace(namespace) else {
            return;
        };
        let delivery = Delivery {
            namespace,
            target: &Target::everyone(),
            offset: None,
        };
        if let Err(error) = self
            .emit_here(everyone.local(), delivery, UNNUMBERED_EVENT, mark)
            .await
        {
            tracing::debug!(%error, "pages could not be given a mark");
        }
    }

    /// Hands a message another node published to this node's connections:
    /// read from the cluster's history, with its offset (the caller holds
    /// the namespace's lock), or relayed, without.
    pub async fn deliver_from_cluster(
        &self,
        namespace: &str,
        offset: Option<Offset>,
        entry: &Entry,
    ) {
        let argument = offset.map(|offset| OffsetArgument {
            offset: offset.to_string(),
        });
        if let Err(error) = self
            .emit_entry_here(namespace, entry, offset, argument.as_ref())
            .await
        {
            tracing::warn!(%error, "a message from the cluster could not be handed out");
        }
    }

    /// Emits `entry` to this node's connections it is for, with `argument`
    /// (its offset, or a mark in its place) beside the payload if given;
    /// returns how many lost it (see [`Self::emit`]). `offset` is the
    /// message's, when it is numbered.
    async fn emit_entry_here(
        &self,
        namespace: &str,
        entry: &Entry,
        offset: Option<Offset>,
        argument: Option<&OffsetArgument>,
    ) -> Result<usize, DispatchError> {
        let target = entry.target();
        let selection = self.select(namespace, &target)?.local();
        let delivery = Delivery {
            namespace,
            target: &target,
            offset,
        };
        let (event, payload) = (&*entry.event, &*entry.payload);
        match argument {
            Some(argument) => {
                self.emit_here(selection, delivery, event, &(payload, argument))
                    .await
            }
            None => self.emit_here(selection, delivery, event, payload).await,
        }
    }

    /// Tells this node's pages in `namespace` that the history they were
    /// following starts over at `position` (`cluster::history`): the
    /// `push:recovery` status of a reset, so that they reload their state.
    pub async fn reset_pages(&self, namespace: &str, position: Offset) {
        let Ok(everyone) = self.namespace(namespace) else {
            return;
        };
        let status = Status {
            recovered: false,
            replayed: 0,
            offset: position.to_string(),
        };
        // Connections still waiting for their identity get their status,
        // with the position then, once admitted.
        let selection = everyone.local().except(UNIDENTIFIED_ROOM);
        // A page whose buffer is full is caught up from the new start,
        // which begins with this same status.
        let delivery = Delivery {
            namespace,
            target: &Target::everyone(),
            offset: None,
        };
        if let Err(error) = self
            .emit_here(selection, delivery, STATUS_EVENT, &status)
            .await
        {
            tracing::warn!(%error, "pages could not be told to reload");
        }
    }

    /// The namespace's current offset, for a page to start from.
    pub async fn position(&self, namespace: &str) -> Result<String, DispatchError> {
        self.check_site_namespace(namespace)?;
        let recovery = self.recovery.as_ref().ok_or(DispatchError::RecoveryOff)?;
        recovery
            .position(namespace)
            .await
            .map(|offset| offset.to_string())
            .ok_or_else(|| DispatchError::UnknownNamespace(namespace.to_owned()))
    }

    /// Hands `data` (the payload, or the payload and its offset argument)
    /// to the publish's recipients on this node, a node on its own; returns
    /// how many took it, or get it from a catch-up. `offset` is the
    /// message's, when it is numbered.
    async fn deliver_here<T: ?Sized + serde::Serialize>(
        &self,
        publish: &Publish<'_>,
        data: &T,
        offset: Option<Offset>,
    ) -> Result<usize, DispatchError> {
        let delivery = Delivery {
            namespace: publish.namespace,
            target: &publish.target,
            offset,
        };
        if publish.target.is_everyone() {
            return self.broadcast_here(delivery, publish.event, data).await;
        }
        // socketioxide's emit does not say how many connections it reached,
        // so the recipients are selected first, to count them.
        let recipients = self
            .recipients(publish.namespace, &publish.target)?
            .sockets();
        if recipients.len() <= FEW_RECIPIENTS {
            // A private message: each of the user's connections is sent it
            // directly, instead of a second selection by room.
            return self.emit_each(&recipients, delivery, publish.event, data);
        }
        let selection = self.select(publish.namespace, &publish.target)?.local();
        let undelivered = self
            .emit_here(selection, delivery, publish.event, data)
            .await?;
        Ok(recipients.len().saturating_sub(undelivered))
    }

    /// A broadcast on a node alone, counted as it is handed out: the
    /// transport counts the connections a corked burst reaches, so the
    /// namespace is not selected a second time just to count it (at 5,000
    /// connections that was a fifth of a delivery's user-space time,
    /// docs/benchmarks.md). Pages being sent what they missed are counted
    /// too: their replay brings the message; so are those whose buffer it
    /// found full, with recovery on: their catch-up brings it.
    async fn broadcast_here<T: ?Sized + serde::Serialize>(
        &self,
        delivery: Delivery<'_>,
        event: &str,
        data: &T,
    ) -> Result<usize, DispatchError> {
        let selection = self.select(delivery.namespace, delivery.target)?.local();
        let emitted = emit_corked(selection, event, data).await;
        let handed = emitted.handed;
        let lost = self
            .lost(emitted, delivery)
            .map_err(|error| DispatchError::Encoding(error.to_string()))?;
        let handed = match handed {
            Some(handed) => handed,
            // Not done within the burst (not so for a local emit): what it
            // handed afterwards went uncounted, so count by selecting.
            None => {
                let live = self.select(delivery.namespace, delivery.target)?.local();
                live.sockets().len().saturating_sub(lost)
            }
        };
        Ok(handed + self.replaying(delivery))
    }

    /// The connections of `delivery`'s target being sent what they missed.
    fn replaying(&self, delivery: Delivery<'_>) -> usize {
        if self.recovery.is_none() {
            return 0;
        }
        self.recipients(delivery.namespace, delivery.target)
            .map_or(0, |recipients| recipients.to(RESUMING_ROOM).sockets().len())
    }

    /// Emits to `selection`; returns how many of this node's connections
    /// lost the message: they were closing, or their buffer was full and
    /// recovery is off (see [`slow_consumers`]). Everyone else got it, or
    /// gets it from a catch-up.
    async fn emit<T: ?Sized + serde::Serialize>(
        &self,
        selection: BroadcastOperators<NodeAdapter>,
        delivery: Delivery<'_>,
        event: &str,
        data: &T,
    ) -> Result<usize, BroadcastError> {
        let emitted = emit_corked(selection, event, data).await;
        self.lost(emitted, delivery)
    }

    /// How many connections lost an emitted message, counted as dropped:
    /// those closing, and those whose buffer was full unless their
    /// catch-up brings it ([`Self::queues_full`]).
    fn lost(&self, emitted: Emitted, delivery: Delivery<'_>) -> Result<usize, BroadcastError> {
        match emitted.result {
            Ok(()) => Ok(0),
            Err(BroadcastError::Socket(failed)) => {
                let closing = failed
                    .iter()
                    .filter(|error| matches!(error, SocketError::Closed))
                    .count();
                let lost = closing + self.queues_full(&emitted.full, delivery);
                tracing::debug!(
                    closing,
                    full = emitted.full.len(),
                    lost,
                    "some connections could not take the message"
                );
                self.metrics.deliveries_dropped(lost as u64);
                Ok(lost)
            }
            Err(error) => Err(error),
        }
    }

    /// Emits to each of `sockets` on its own; returns how many took it, or
    /// get it from a catch-up. Each encodes its own packet, so this is for
    /// a few sockets only. A connection being sent what it missed is
    /// counted and not sent this now: its replay brings it (see
    /// [`Self::select`]).
    ///
    /// The burst is corked: each connection is written right after it, in
    /// this task, before the publisher hears back (docs/transport.md).
    fn emit_each<T: ?Sized + serde::Serialize>(
        &self,
        sockets: &[Socket],
        delivery: Delivery<'_>,
        event: &str,
        data: &T,
    ) -> Result<usize, DispatchError> {
        engineioxide::corked(|| self.emit_each_corked(sockets, delivery, event, data))
    }

    fn emit_each_corked<T: ?Sized + serde::Serialize>(
        &self,
        sockets: &[Socket],
        delivery: Delivery<'_>,
        event: &str,
        data: &T,
    ) -> Result<usize, DispatchError> {
        let mut handed = 0;
        for socket in sockets {
            if self.recovery.is_some() && socketio::is_resuming(socket) {
                handed += 1;
                continue;
            }
            match socket.emit(event, data) {
                Ok(()) => handed += 1,
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    match self.queue_full(socket, delivery.offset) {
                        Fate::Later => handed += 1,
                        Fate::Lost => self.metrics.deliveries_dropped(1),
                    }
                }
                Err(SendError::Socket(error)) => {
                    tracing::debug!(%error, "a connection could not take the message");
                    self.metrics.deliveries_dropped(1);
                }
                Err(SendError::Serialize(error)) => {
                    return Err(DispatchError::Encoding(error.to_string()));
                }
            }
        }
        Ok(handed)
    }

    /// [`Self::emit`] to a selection of this node's connections, where the
    /// only failure left is the message's encoding.
    async fn emit_here<T: ?Sized + serde::Serialize>(
        &self,
        selection: BroadcastOperators<NodeAdapter>,
        delivery: Delivery<'_>,
        event: &str,
        data: &T,
    ) -> Result<usize, DispatchError> {
        self.emit(selection, delivery, event, data)
            .await
            .map_err(|error| DispatchError::Encoding(error.to_string()))
    }

    /// Refuses the Admin UI's namespace, which is not the site's.
    fn check_site_namespace(&self, namespace: &str) -> Result<(), DispatchError> {
        match self.admin_namespace {
            Some(admin) if admin == namespace => Err(DispatchError::AdminNamespace),
            _ => Ok(()),
        }
    }

    fn namespace(&self, namespace: &str) -> Result<BroadcastOperators<NodeAdapter>, DispatchError> {
        self.check_site_namespace(namespace)?;
        self.io
            .of(namespace)
            .ok_or_else(|| DispatchError::UnknownNamespace(namespace.to_owned()))
    }

    /// The connections a publish to `target` is for: those it is sent to
    /// now ([`Self::select`]) and those being sent what they missed, whose
    /// replay brings it. Its size is the publish's count.
    fn recipients(
        &self,
        namespace: &str,
        target: &Target<'_>,
    ) -> Result<BroadcastOperators<NodeAdapter>, DispatchError> {
        let operators = self.namespace(namespace)?;
        let operators = if target.is_everyone() {
            // Connections still waiting for their identity under
            // auth_required get nothing. When none wait, the room does not
            // exist and leaving it out costs one map lookup.
            operators.broadcast().except(UNIDENTIFIED_ROOM)
        } else {
            let rooms: Vec<String> = target
                .users
                .iter()
                .map(|user| user_room(user))
                .chain(target.rooms.iter().map(|room| public_room(room)))
                .collect();
            operators.to(rooms)
        };
        Ok(if target.except_users.is_empty() {
            operators
        } else {
            operators.except(
                target
                    .except_users
                    .iter()
                    .map(|user| user_room(user))
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// The connections a publish to `target` is sent to now.
    fn select(
        &self,
        namespace: &str,
        target: &Target<'_>,
    ) -> Result<BroadcastOperators<NodeAdapter>, DispatchError> {
        let operators = self.recipients(namespace, target)?;
        // A connection still being sent what it missed gets this message
        // from its replay, after the older ones, not now. When none is
        // replaying the room does not exist and this is one map lookup.
        Ok(if self.recovery.is_some() {
            operators.except(RESUMING_ROOM)
        } else {
            operators
        })
    }
}

fn check_event(event: &str) -> Result<(), DispatchError> {
    if event.is_empty() {
        return Err(DispatchError::EmptyEvent);
    }
    if RESERVED_EVENTS.contains(&event) {
        return Err(DispatchError::ReservedEvent(event.to_owned()));
    }
    Ok(())
}

/// Deepest nesting of arrays and objects accepted in a payload. Browsers
/// parse messages recursively, and real notifications are a few levels
/// deep; 128 is also serde_json's own limit for parsed values.
const MAX_PAYLOAD_DEPTH: usize = 128;

/// Checks that the payload is one JSON value, without building a tree: the
/// raw text is passed through to socket.io as it came.
fn parse_payload(payload: &[u8]) -> Result<&RawValue, DispatchError> {
    if may_nest_too_deep(payload) && nesting_depth(payload) > MAX_PAYLOAD_DEPTH {
        return Err(DispatchError::InvalidPayload(format!(
            "it nests deeper than {MAX_PAYLOAD_DEPTH} levels"
        )));
    }
    // Checks the UTF-8 too: a raw value is handed out as text.
    serde_json::from_slice(payload).map_err(|e| DispatchError::InvalidPayload(e.to_string()))
}

/// Whether `json` has enough opening brackets to nest past the limit at
/// all. A short payload cannot, and counting brackets is a branch-free pass
/// several times cheaper than the string-aware [`nesting_depth`], which so
/// runs only for the rare payload with that many brackets.
fn may_nest_too_deep(json: &[u8]) -> bool {
    json.len() > MAX_PAYLOAD_DEPTH
        && json
            .iter()
            .map(|&byte| usize::from(matches!(byte, b'[' | b'{')))
            .sum::<usize>()
            > MAX_PAYLOAD_DEPTH
}

/// The deepest nesting of `[` and `{` outside strings. Validating raw JSON
/// does not limit depth by itself, so this linear scan does.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_empty_events_are_refused() {
        assert!(check_event("").is_err());
        assert!(check_event("disconnect").is_err());
        assert!(check_event("message").is_ok());
    }

    #[test]
    fn payload_must_be_one_json_value() {
        assert!(parse_payload(br#"{"a":[1,2]}"#).is_ok());
        assert!(parse_payload(b"\"text\"").is_ok());
        assert!(parse_payload(b"{").is_err());
        assert!(parse_payload(b"1 2").is_err());
        assert!(parse_payload(&[0xff, 0xfe]).is_err());
        assert!(parse_payload(b"\"\xff\"").is_err());
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse_payload(deep.as_bytes()).is_err());
        let limit = "[".repeat(MAX_PAYLOAD_DEPTH) + &"]".repeat(MAX_PAYLOAD_DEPTH);
        assert!(parse_payload(limit.as_bytes()).is_ok());
    }

    #[test]
    fn many_shallow_brackets_are_not_too_deep() {
        let wide = format!("[{}]", vec!["[]"; 1000].join(","));
        assert!(may_nest_too_deep(wide.as_bytes()));
        assert!(parse_payload(wide.as_bytes()).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        assert_eq!(nesting_depth(br#"{"a":"[[[{{\"]]"}"#), 1);
        assert_eq!(nesting_depth(br#"[[1],{"b":[2]}]"#), 3);
    }
}

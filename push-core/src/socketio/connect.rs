//! Admitting a socket.io connection to a namespace.
//!
//! The admission check runs as socketioxide connect middleware, before the
//! client is told it is connected. That ordering matters: the connection
//! joins its user's private room and the site's rooms here, so a message
//! published the moment the page sees `connect` already reaches it.
//!
//! Admission takes a place under the connection limits first (cheap), then
//! asks the site who the browser is (slow), so a flood is turned away before
//! it costs the site anything.
//!
//! When the site cannot say (overloaded, failing), the connection is
//! admitted all the same and identified later, in the background: see
//! [`super::auth_retry`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cluster::history::SharedHistory;
use crate::cluster::{Io, Socket};
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use socketioxide::socket::DisconnectReason;
use tokio_util::sync::CancellationToken;

use super::auth_retry::{Unidentified, identify_later};
use super::client_address::forwarded_for_site;
use super::event_data::EventSize;
use super::limits::{AddressKey, ConnectionLimits, EventBudget, Spent};
use super::origin::AdminPage;
use super::resume::{self, AdmittedAt};
use crate::auth::{Answer, CurrentAuthenticator, Handshake, Identity, Urgency};
use crate::cluster::presence::LocalPresence;
use crate::log_throttle::{Line, LogThrottle, Source};
use crate::metrics::Metrics;
use crate::outcomes::Refusal;
use crate::recovery::Recovery;
use crate::rooms::{UNIDENTIFIED_ROOM, public_room, user_room};

/// Why a connection is refused; the text is what the browser's
/// `connect_error` handler receives as `err.message`.
#[derive(Debug)]
pub struct Refused(Refusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.label())
    }
}

/// A connection the auth URL could not identify at connect.
const UNIDENTIFIED_LINE: Line = Line {
    kind: "auth_unavailable",
    level: tracing::Level::WARN,
};

/// A connection closed for flooding events.
const FLOODER_LINE: Line = Line {
    kind: "event_flood",
    level: tracing::Level::INFO,
};

/// The offset a connection sent, kept until it is identified.
#[derive(Clone)]
struct HeldResume(Option<String>);

/// Decides whether a connection may join a namespace, and as whom.
#[derive(Clone)]
pub struct Admission {
    /// Read at each connect, so a reload's auth settings apply to the
    /// next connection.
    authenticator: Arc<CurrentAuthenticator>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<Metrics>,
    recovery: Option<Arc<Recovery>>,
    /// The cluster's history, with recovery on in a cluster: hears the
    /// marks pages bring back (see `cluster::history`).
    shared: Option<Arc<SharedHistory>>,
    /// Lines repeated for every connection of a storm (not identified at
    /// connect, not identified by any retry, closed for flooding): one per
    /// kind and address and interval.
    log_throttle: LogThrottle,
    /// Tell the Admin UI of each connection (its full mode).
    admin_ui_full: bool,
    /// In a cluster: where this node's connections are told to the others.
    presence: Option<Arc<LocalPresence>>,
    /// What a connection's close is told to.
    closing: Arc<Closing>,
}

/// What a connection's close is told to: the metrics, the Admin UI (its
/// full mode) and, in a cluster, this node's presence.
struct Closing {
    metrics: Arc<Metrics>,
    admin_ui_full: bool,
    presence: Option<Arc<LocalPresence>>,
}

impl Closing {
    fn closed(&self, socket: &Socket, io: &Io, reason: DisconnectReason) {
        if let Some(presence) = &self.presence {
            presence.closed(socket);
        }
        self.metrics.connection_closed();
        if self.admin_ui_full {
            crate::admin_ui::socket_disconnected(io, socket, reason);
        }
    }
}

impl Admission {
    pub fn new(
        authenticator: Arc<CurrentAuthenticator>,
        limits: Arc<ConnectionLimits>,
        metrics: Arc<Metrics>,
        recovery: Option<Arc<Recovery>>,
        shared: Option<Arc<SharedHistory>>,
        admin_ui_full: bool,
        presence: Option<Arc<LocalPresence>>,
    ) -> Self {
        let closing = Arc::new(Closing {
            metrics: metrics.clone(),
            admin_ui_full,
            presence: presence.clone(),
        });
        Self {
            authenticator,
            limits,
            metrics,
            recovery,
            shared,
            log_throttle: LogThrottle::default(),
            admin_ui_full,
            presence,
            closing,
        }
    }

    /// Changes the rooms of `socket` with `change`; in a cluster, this
    /// node's presence follows (`LocalPresence::change_rooms`).
    pub(super) fn change_rooms(&self, socket: &Socket, change: impl FnOnce()) {
        match &self.presence {
            Some(presence) => presence.change_rooms(socket, change),
            None => change(),
        }
    }

    /// The limits connections are admitted under.
    pub(super) fn limits(&self) -> &Arc<ConnectionLimits> {
        &self.limits
    }

    /// Whether admitted connections are sent what they missed.
    pub(super) fn recovers(&self) -> bool {
        self.recovery.is_some()
    }

    /// Decides whether `socket` may join; runs before the client is told.
    pub async fn admit(&self, socket: Socket) -> Result<(), Refused> {
        self.check_and_identify(&socket).await?;
        // Watched from before the client is told it is connected: it may
        // emit as soon as it hears, before the connect handler runs.
        self.count_events(&socket);
        Ok(())
    }

    async fn check_and_identify(&self, socket: &Socket) -> Result<(), Refused> {
        let parts = socket.req_parts();
        // The Admin UI's page was let through the Origin guard for `/admin`
        // alone; a site namespace would hand it the visitor's identity.
        if parts.extensions.get::<AdminPage>().is_some() {
            return self.refuse(Refusal::Origin);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        self.limits.check_not_flooder(socket.id).map_err(Refused)?;
        let address = peer.and_then(|peer| {
            self.limits
                .client_address(peer.ip(), &parts.headers)
                .limit_key()
        });
        let permit = self.limits.admit(address).map_err(Refused)?;
        // Kept with the socket, so the place is given back when it goes.
        socket.extensions.insert(Arc::new(permit));
        if let Some(recovery) = &self.recovery {
            // Live messages wait until what it missed has been sent; what
            // is published from now on is sent with it.
            resume::begin(socket);
            if let Some(position) = recovery.position(socket.ns()).await {
                socket.extensions.insert(AdmittedAt(position));
            }
        }

        let Some(authenticator) = self.authenticator.get() else {
            return Ok(());
        };
        let cookie = cookie_header(&parts.headers);
        let handshake = Handshake {
            namespace: socket.ns(),
            cookie: cookie.as_deref(),
            forwarded_for: forwarded_for_site(&parts.headers, peer),
        };
        match authenticator.identify(&handshake, Urgency::Connect).await {
            Answer::User(identity) => {
                self.join_rooms(socket, &identity);
                Ok(())
            }
            Answer::Guest if authenticator.required() => self.refuse(Refusal::Unauthorized),
            Answer::Guest => Ok(()),
            Answer::Unavailable(reason) => {
                let source = Source(address.map(AddressKey::from));
                if self.log_throttle.allow(UNIDENTIFIED_LINE, source) {
                    tracing::warn!(sid = %socket.id, ns = socket.ns(), %reason, "auth URL could not identify a connection; asking again in the background");
                }
                if authenticator.required() {
                    // Admitted, but it receives nothing until identified.
                    socket.join(UNIDENTIFIED_ROOM);
                }
                // Without auth_required it is a guest meanwhile, and
                // broadcasts reach it. The retry starts once the client is
                // connected (see `connected`).
                if let Some(cookie) = &cookie {
                    socket
                        .extensions
                        .insert(Unidentified::new(cookie, &handshake.forwarded_for));
                }
                Ok(())
            }
        }
    }

    /// Joins the user's private room and at most `max_rooms_per_connection`
    /// of the rooms the site named, and keeps who it is for the replay of
    /// missed messages.
    pub(super) fn join_rooms(&self, socket: &Socket, identity: &Identity) {
        tracing::debug!(sid = %socket.id, ns = socket.ns(), user = %identity.user_id, "connection identified");
        let max_rooms = self.limits.settings().max_rooms_per_connection;
        if identity.rooms.len() > max_rooms {
            self.metrics.rooms_truncated();
            tracing::warn!(
                user = %identity.user_id,
                rooms = identity.rooms.len(),
                kept = max_rooms,
                "the auth URL named more rooms than max_rooms_per_connection; the rest are ignored"
            );
        }
        let rooms: Vec<String> = std::iter::once(user_room(&identity.user_id))
            .chain(
                identity
                    .rooms
                    .iter()
                    .take(max_rooms)
                    .map(|room| public_room(room)),
            )
            .collect();
        socket.join(rooms);
        if self.recovery.is_some() {
            socket.extensions.insert(Arc::new(Identity {
                user_id: identity.user_id.clone(),
                rooms: identity.rooms.iter().take(max_rooms).cloned().collect(),
            }));
        }
    }

    /// Starts the replay of a connection that was held back until it was
    /// identified (under `auth_required`).
    pub(super) fn resume_held(&self, socket: &Socket) {
        if let Some(recovery) = &self.recovery
            && let Some(HeldResume(offset)) = socket.extensions.remove::<HeldResume>()
        {
            resume::start(socket.clone(), recovery.clone(), offset);
        }
    }

    /// The throttle for lines repeated for every connection of a storm.
    pub(super) fn log_throttle(&self) -> &LogThrottle {
        &self.log_throttle
    }

    /// The address a connection's lines are throttled by: the client's as
    /// the connection limits count it (IPv6 by /64).
    pub(super) fn log_source(&self, socket: &Socket) -> Source<AddressKey> {
        let parts = socket.req_parts();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Source(peer.and_then(|peer| {
            self.limits
                .client_address(peer.0.ip(), &parts.headers)
                .limit_key()
                .map(AddressKey::from)
        }))
    }

    fn refuse(&self, refusal: Refusal) -> Result<(), Refused> {
        self.metrics.connection_refused(refusal);
        Err(Refused(refusal))
    }

    /// Runs once the client has been told it is connected: with recovery
    /// on, it is sent what it missed since `offset` (see [`resume`]).
    pub fn connected(&self, socket: Socket, io: &Io, offset: Option<String>) {
        tracing::debug!(sid = %socket.id, ns = socket.ns(), transport = ?socket.transport_type(), "connected");
        self.metrics.connection_opened();
        if self.admin_ui_full {
            crate::admin_ui::socket_connected(io, &socket);
        }
        if let (Some(shared), Some(offset)) = (&self.shared, &offset) {
            // Whoever the page is: a mark is news of the whole cluster.
            shared.heard_from_page(socket.ns(), offset);
        }
        if let Some(recovery) = &self.recovery {
            let waits_for_identity = self
                .authenticator
                .get()
                .is_some_and(|authenticator| authenticator.required())
                && socket.extensions.get::<Unidentified>().is_some();
            if waits_for_identity {
                // It may receive nothing yet, not even a replay of
                // broadcasts: its replay starts once it is identified.
                socket.extensions.insert(HeldResume(offset));
            } else if socket.extensions.get::<Unidentified>().is_some() {
                // A guest for now: replaying a guest's share would leave
                // out its user's messages while saying "recovered", so it
                // is told to reload its state instead.
                resume::start(socket.clone(), recovery.clone(), None);
            } else {
                resume::start(socket.clone(), recovery.clone(), offset);
            }
        }
        let retry = self.identify_later(&socket);
        // Counted from here, with the rooms the connect middleware joined,
        // until its disconnect handler, which runs while it is still in
        // its rooms.
        if let Some(presence) = &self.presence {
            presence.connected(&socket);
        }
        // One shared handle, not a copy of each part: every connection
        // keeps this handler for its whole life.
        let closing = self.closing.clone();
        socket.on_disconnect(move |socket: Socket, reason: DisconnectReason, io: Io| {
            if let Some(retry) = &retry {
                retry.cancel();
            }
            closing.closed(&socket, &io, reason);
            async move {
                tracing::debug!(sid = %socket.id, ns = socket.ns(), ?reason, "disconnected");
            }
        });
    }

    /// Counts and ignores the events a connection emits; too many of them
    /// end the connection.
    fn count_events(&self, socket: &Socket) {
        let budget = Arc::new(EventBudget::new());
        let admission = self.clone();
        socket.on_fallback(move |socket: Socket, EventSize(size): EventSize| {
            let budget = budget.clone();
            let admission = admission.clone();
            async move {
                let (metrics, limits) = (&admission.metrics, &admission.limits);
                metrics.client_event_ignored(size as u64);
                let limit = limits.settings().client_events_per_minute;
                if budget.spend(limit) == Spent::JustExceeded {
                    metrics.flooder_disconnected();
                    limits.ban_flooder(socket.id);
                    if admission
                        .log_throttle
                        .allow(FLOODER_LINE, admission.log_source(&socket))
                    {
                        tracing::info!(sid = %socket.id, ns = socket.ns(), "disconnecting a connection that floods events");
                    }
                    let _ = socket.disconnect();
                }
            }
        });
    }

    /// Starts asking the site again about a connection it could not
    /// identify at connect. The token stops that when the connection goes.
    fn identify_later(&self, socket: &Socket) -> Option<CancellationToken> {
        let unidentified = socket.extensions.remove::<Unidentified>()?;
        let authenticator = self.authenticator.get()?;
        let gone = CancellationToken::new();
        tokio::spawn(identify_later(
            socket.clone(),
            unidentified,
            authenticator,
            self.clone(),
            self.metrics.clone(),
            gone.clone(),
        ));
        Some(gone)
    }
}

/// The browser's cookies, exactly as sent (several headers are joined the
/// way HTTP/2 splits them).
fn cookie_header(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join("; "))
}

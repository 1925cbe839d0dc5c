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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;

use super::client_address::forwarded_for_site;
use super::limits::{ConnectionLimits, EventBudget, Spent};
use super::resume;
use crate::auth::{Answer, Authenticator, Handshake, Identity};
use crate::metrics::{Metrics, Refusal};
use crate::recovery::Recovery;
use crate::rooms::{RESUMING_ROOM, public_room, user_room};

/// Why a connection is refused; the text is what the browser's
/// `connect_error` handler receives as `err.message`.
#[derive(Debug)]
pub struct Refused(Refusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.label())
    }
}

/// Decides whether a connection may join a namespace, and as whom.
#[derive(Clone)]
pub struct Admission {
    authenticator: Option<Arc<Authenticator>>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<Metrics>,
    recovery: Option<Arc<Recovery>>,
}

impl Admission {
    pub fn new(
        authenticator: Option<Arc<Authenticator>>,
        limits: Arc<ConnectionLimits>,
        metrics: Arc<Metrics>,
        recovery: Option<Arc<Recovery>>,
    ) -> Self {
        Self {
            authenticator,
            limits,
            metrics,
            recovery,
        }
    }

    pub async fn admit(&self, socket: SocketRef) -> Result<(), Refused> {
        let parts = socket.req_parts();
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
        if self.recovery.is_some() {
            // Live messages wait until what it missed has been sent.
            socket.join(RESUMING_ROOM);
        }

        let Some(authenticator) = &self.authenticator else {
            return Ok(());
        };
        let cookie = cookie_header(&parts.headers);
        let handshake = Handshake {
            namespace: socket.ns(),
            cookie: cookie.as_deref(),
            forwarded_for: forwarded_for_site(&parts.headers, peer),
        };
        match authenticator.identify(&handshake).await {
            Answer::User(identity) => {
                self.join_rooms(&socket, &identity);
                Ok(())
            }
            Answer::Guest if authenticator.required() => self.refuse(Refusal::Unauthorized),
            Answer::Guest => Ok(()),
            Answer::Unavailable(reason) => {
                tracing::warn!(ns = socket.ns(), %reason, "auth URL could not identify a connection");
                if authenticator.required() {
                    self.refuse(Refusal::AuthUnavailable)
                } else {
                    // Degrade to a guest: broadcasts still arrive, and the
                    // next reconnect asks the site again.
                    Ok(())
                }
            }
        }
    }

    /// Joins the user's private room and at most `max_rooms_per_connection`
    /// of the rooms the site named, and keeps who it is for the replay of
    /// missed messages.
    fn join_rooms(&self, socket: &SocketRef, identity: &Identity) {
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

    fn refuse(&self, refusal: Refusal) -> Result<(), Refused> {
        self.metrics.connection_refused(refusal);
        Err(Refused(refusal))
    }

    /// Runs once the client has been told it is connected: with recovery
    /// on, it is sent what it missed since `offset` (see [`resume`]);
    /// events it emits are counted and ignored, and too many of them end
    /// the connection.
    pub fn connected(&self, socket: SocketRef, offset: Option<String>) {
        tracing::debug!(sid = %socket.id, ns = socket.ns(), transport = ?socket.transport_type(), "connected");
        if let Some(recovery) = &self.recovery {
            resume::start(socket.clone(), recovery.clone(), offset);
        }
        let budget = Arc::new(EventBudget::new(
            self.limits.settings().client_events_per_minute,
        ));
        let metrics = self.metrics.clone();
        let limits = self.limits.clone();
        socket.on_fallback(move |socket: SocketRef| {
            let budget = budget.clone();
            let metrics = metrics.clone();
            let limits = limits.clone();
            async move {
                metrics.client_event_ignored();
                if budget.spend() == Spent::JustExceeded {
                    metrics.flooder_disconnected();
                    limits.ban_flooder(socket.id);
                    tracing::info!(sid = %socket.id, ns = socket.ns(), "disconnecting a connection that floods events");
                    let _ = socket.disconnect();
                }
            }
        });
        socket.on_disconnect(async |socket: SocketRef, reason: DisconnectReason| {
            tracing::debug!(sid = %socket.id, ns = socket.ns(), ?reason, "disconnected");
        });
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

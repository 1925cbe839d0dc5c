//! The socket.io Admin UI (npm `@socket.io/admin-ui`) against push-core.
//!
//! A Node server calls `instrument(io, { auth, readonly })`; push-core
//! speaks the same protocol, written from that package's server code, when
//! `admin_ui_username` and `admin_ui_password_hash` are set:
//! - the `/admin` namespace on the socket.io listener, which only the UI
//!   joins ([`login`]: basic auth against a bcrypt hash, and session ids);
//! - on joining, the UI is sent its `config` (the features it may offer);
//! - every two seconds every UI is sent this node's `server_stats`
//!   ([`stats`]);
//! - in full mode, every connection and what may be done to them
//!   ([`full`]);
//! - its page, on the admin listener at `/admin-ui/` ([`page`]).
//!
//! In a cluster each node sends its `server_stats` to `/admin` through
//! socketioxide's Redis adapter, as `instrument()` does with Node's
//! adapters, so a UI connected to any node receives every node's, one
//! `serverId` each. Nothing a publisher sends reaches `/admin`: the
//! dispatcher refuses the namespace, and the site's figures (STATS,
//! `/metrics`) leave it out.

mod full;
mod login;
mod page;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use serde_json::json;
use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tokio_util::sync::CancellationToken;

pub use self::full::{socket_connected, socket_disconnected};
use self::login::{Login, LoginAuth, LoginOutcome};
use self::page::Page;
pub use self::page::PageError;
use self::stats::{NamespaceDetails, ServerStats, TrafficSampler};
use crate::cluster::{Io, Socket};
use crate::config::{AdminUiMode, AdminUiSettings, NodeId};
use crate::dispatch::Dispatcher;
use crate::log_throttle::{Line, LogThrottle, Source};
use crate::metrics::Metrics;
use crate::outcomes::Refusal;
use crate::socketio::{self, ConnectionLimits};

/// The namespace the UI joins, as `instrument()` names it by default.
pub const NAMESPACE: &str = crate::config::ADMIN_UI_NAMESPACE;

/// Why a join to `/admin` was refused; the text is what the UI receives.
#[derive(Debug)]
enum LoginRefused {
    /// The UI shows its login form again on exactly this text.
    InvalidCredentials,
    HandshakeRate,
}

impl std::fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginRefused::InvalidCredentials => f.write_str("invalid credentials"),
            LoginRefused::HandshakeRate => f.write_str(Refusal::HandshakeRate.label()),
        }
    }
}

/// A session id handed out at login, to send once the UI is connected.
#[derive(Clone)]
struct NewSession(String);

/// The Admin UI's part of a running server.
pub struct AdminUi {
    page: Option<Arc<Page>>,
    /// Stops the `server_stats` task at shutdown.
    stop: CancellationToken,
}

/// What joining `/admin` needs.
#[derive(Clone)]
struct Door {
    login: Arc<Login>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<Metrics>,
    /// Refused logins' lines: one per address and interval.
    refusal_lines: LogThrottle,
    dispatcher: Dispatcher,
    mode: AdminUiMode,
}

impl AdminUi {
    /// Serves `/admin` on `io` and starts sending `server_stats`; reads
    /// the page's files, if it is served. `clustered`: other nodes'
    /// UIs may be listening, so stats are sent even with no UI here.
    pub fn start(
        settings: &AdminUiSettings,
        io: &Io,
        limits: Arc<ConnectionLimits>,
        metrics: Arc<Metrics>,
        dispatcher: Dispatcher,
        clustered: bool,
    ) -> Result<Self, PageError> {
        let page = match &settings.files {
            Some(dir) => Some(Arc::new(Page::load(dir)?)),
            None => None,
        };
        let door = Door {
            login: Login::new(settings.username.clone(), settings.password_hash.clone()),
            limits,
            metrics: metrics.clone(),
            refusal_lines: LogThrottle::default(),
            dispatcher,
            mode: settings.mode,
        };
        let on_admit = door.clone();
        let handler = (move |socket: Socket, io: Io| {
            let door = door.clone();
            async move { door.connected(socket, &io) }
        })
        .with(move |socket: Socket, TryData(auth): TryData<LoginAuth>| {
            let door = on_admit.clone();
            async move { door.admit(socket, auth.unwrap_or_default()).await }
        });
        socketio::serve_namespace(io, NAMESPACE, handler);
        let stop = CancellationToken::new();
        let stats = StatsSender {
            io: io.clone(),
            metrics,
            server_id: settings.server_id.clone(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|name| name.into_string().ok())
                .unwrap_or_default(),
            started: Instant::now(),
            clustered,
        };
        tokio::spawn(stats.run(stop.clone()));
        tracing::info!(
            mode = ?settings.mode,
            page = settings.files.is_some(),
            "the socket.io Admin UI can connect to {NAMESPACE}"
        );
        Ok(Self { page, stop })
    }

    /// The page's routes for the admin listener, when it is served.
    pub fn page_router(&self) -> Option<Router> {
        self.page.clone().map(Page::router)
    }

    /// Stops sending `server_stats`.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Door {
    /// Decides a join: one of the address's handshakes, then the login.
    async fn admit(&self, socket: Socket, auth: LoginAuth) -> Result<(), LoginRefused> {
        let parts = socket.req_parts();
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .and_then(|peer| {
                self.limits
                    .client_address(peer.0.ip(), &parts.headers)
                    .limit_key()
            });
        if let Some(address) = address
            && !self.limits.allow_handshake(address)
        {
            return Err(LoginRefused::HandshakeRate);
        }
        match self.login.check(auth).await {
            LoginOutcome::Admitted { new_session } => {
                if let Some(id) = new_session {
                    socket.extensions.insert(NewSession(id));
                }
                Ok(())
            }
            LoginOutcome::Refused => {
                self.metrics.connection_refused(Refusal::AdminUiLogin);
                let line = Line {
                    kind: Refusal::AdminUiLogin.label(),
                    level: tracing::Level::INFO,
                };
                if self.refusal_lines.allow(line, Source(address)) {
                    tracing::info!(address = ?address, "refused an Admin UI login: invalid credentials");
                }
                Err(LoginRefused::InvalidCredentials)
            }
        }
    }

    /// Runs once the UI is connected: its session id, its config and, in
    /// full mode, every connection and its commands.
    fn connected(&self, socket: Socket, io: &Io) {
        self.metrics.connection_opened();
        if let Some(NewSession(id)) = socket.extensions.remove::<NewSession>() {
            let _ = socket.emit("session", &id);
        }
        let full = self.mode == AdminUiMode::Full;
        let features: &[&str] = if full {
            &full::FEATURES
        } else {
            &["AGGREGATED_EVENTS"]
        };
        let _ = socket.emit("config", &json!({ "supportedFeatures": features }));
        if full {
            full::register_commands(&socket, self.dispatcher.clone());
            let _ = socket.emit("all_sockets", &full::all_sockets(io));
            full::socket_connected(io, &socket);
        }
        let metrics = self.metrics.clone();
        socket.on_disconnect(move |socket: Socket, reason: DisconnectReason, io: Io| {
            metrics.connection_closed();
            if full {
                full::socket_disconnected(&io, &socket, reason);
            }
            async {}
        });
    }
}

/// Sends this node's `server_stats` every [`stats::STATS_EVERY`].
struct StatsSender {
    io: Io,
    metrics: Arc<Metrics>,
    server_id: NodeId,
    hostname: String,
    started: Instant,
    clustered: bool,
}

impl StatsSender {
    async fn run(self, stop: CancellationToken) {
        let mut sampler = TrafficSampler::new(self.metrics.traffic());
        let mut ticks = tokio::time::interval(stats::SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let samples_per_stats =
            (stats::STATS_EVERY.as_secs() / stats::SAMPLE_EVERY.as_secs()).max(1);
        let mut samples = 0u64;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            sampler.sample(self.metrics.traffic(), SystemTime::now());
            samples += 1;
            if samples.is_multiple_of(samples_per_stats) {
                let events = sampler.take();
                self.send(&events).await;
            }
        }
    }

    async fn send(&self, events: &[stats::AggregatedEvent]) {
        let Some(admin) = self.io.of(NAMESPACE) else {
            return;
        };
        // Alone, with no UI connected, nobody would read it.
        if !self.clustered && admin.clone().local().sockets().is_empty() {
            return;
        }
        let connections = stats::connections(&self.io);
        let document = ServerStats {
            server_id: self.server_id.as_str(),
            hostname: &self.hostname,
            pid: std::process::id(),
            uptime: self.started.elapsed().as_secs_f64(),
            clients_count: connections.clients,
            polling_clients_count: connections.polling_clients,
            aggregated_events: events,
            namespaces: connections
                .namespaces
                .into_iter()
                .map(|(name, sockets_count)| NamespaceDetails {
                    name,
                    sockets_count,
                })
                .collect(),
        };
        if let Err(error) = admin.clone().emit("server_stats", &document).await {
            // The adapter sends to the other nodes first and stops there
            // when Redis cannot be reached: this node's UIs still get it.
            tracing::debug!(%error, "server_stats could not reach the other nodes");
            let _ = admin.local().emit("server_stats", &document).await;
        }
    }
}

//! push-core: real-time push for PHP sites.
//!
//! A site's PHP code publishes `namespace + event + message` over a local
//! Unix socket; push-core delivers it to browsers connected with the stock
//! socket.io v4 client, to everyone or to chosen users and rooms. Browsers
//! are identified by forwarding their cookies to an endpoint of the site.
//!
//! The daemon is [`serve`]. To embed push-core in another axum application
//! instead, build a [`PushCore`]: it gives the router to mount and a
//! [`Dispatcher`] to publish with.
//!
//! How the modules fit:
//! - [`config`]: settings from flags, environment and file;
//! - `publish`: the two ways in for publishes: `publish::socket`, the
//!   Unix-socket listener with a thread per publisher connection, and
//!   `publish::http`, the optional HTTP publish API for other hosts;
//! - `socketio`: socket.io namespaces, the Origin policy, admission;
//! - `auth`: asking the site who a browser is, with a cache;
//! - [`dispatch`]: turning a publish target into recipients;
//! - `recovery`: offsets, the history of recent messages, its journal;
//! - `rooms`: how user and site rooms are kept apart;
//! - `router`: the HTTP listener's routes and layers, and the admin
//!   listener's;
//! - `metrics`, `readiness`, [`reload`], `open_files`, [`shutdown`]:
//!   operations;
//! - `admin_ui`: the socket.io Admin UI's `/admin` namespace and page;
//! - `static_file`: files from npm packages served from memory;
//! - `outcomes`: the words the layers above report in and `metrics`
//!   counts by, kept below both.

mod admin_ui;
mod auth;
pub mod cluster;
pub mod config;
pub mod dispatch;
mod log_throttle;
mod metrics;
mod open_files;
mod outcomes;
mod publish;
mod readiness;
mod recovery;
pub mod reload;
mod rooms;
mod router;
pub mod shutdown;
mod socketio;
mod static_file;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use cluster::Io;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use crate::auth::AuthSetupError;
pub use crate::config::{Config, PublishSettings};
pub use crate::dispatch::{DispatchError, Dispatcher};
pub use crate::publish::socket::{BindError, PublishSocket};
pub use crate::recovery::journal::JournalError;
pub use crate::reload::{LogLevelHook, ReloadError, ReloadReport};

/// How long browsers and publishers get to be closed cleanly at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections the kernel may hold for us before we accept them.
/// `TcpListener::bind` asks for 128; when a reconnect storm (every browser
/// after a restart) brings more at once, the kernel drops the extra SYNs
/// and those browsers retry after 1 s, 3 s, 7 s… (docs/benchmarks.md,
/// "Connect storms", counts such retries). Linux caps the value at
/// `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the HTTP listener with [`LISTEN_BACKLOG`].
fn bind_http(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does, so a restart is not refused while connections of
    // the previous process linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A push server ready to be mounted: socket.io, auth, limits, metrics.
pub struct PushCore {
    io: Io,
    dispatcher: Dispatcher,
    /// Stops the cluster link and survey once browsers are closed.
    leaving_cluster: CancellationToken,
    metrics: Arc<metrics::Metrics>,
    publish: PublishSettings,
    recovery: Option<Arc<recovery::Recovery>>,
    readiness: Arc<readiness::Readiness>,
    /// Set when the Admin UI is on.
    admin_ui: Option<admin_ui::AdminUi>,
    live: LiveParts,
}

/// What a reload changes in a running server, and what it compares with.
struct LiveParts {
    origins: socketio::OriginPolicy,
    limits: Arc<socketio::ConnectionLimits>,
    authenticator: Arc<auth::CurrentAuthenticator>,
    log_level: Option<LogLevelHook>,
    /// The configuration at start: what restart-only settings still are.
    started: Config,
    /// The last configuration applied; one reload at a time.
    applied: Mutex<Config>,
}

/// Why a [`PushCore`] could not be built.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error(transparent)]
    StateDir(#[from] JournalError),
    #[error(transparent)]
    ClientScript(#[from] socketio::ClientScriptError),
    #[error(transparent)]
    Cluster(#[from] cluster::link::LinkSetupError),
    #[error(transparent)]
    AdminUiPage(#[from] admin_ui::PageError),
}

impl PushCore {
    /// Builds the server from `config`, returning it with the axum router
    /// that serves `/socket.io/`, `/healthz`, `/metrics` and, when turned on,
    /// the HTTP publish API.
    pub fn new(config: &Config) -> Result<(Self, Router), SetupError> {
        let metrics = Arc::new(metrics::Metrics::default());
        let recovery = match config.recovery_settings() {
            Some(settings) => {
                let namespaces = config.served_namespaces();
                let keep = recovery::journal::Keep {
                    window: settings.window,
                    max_messages: settings.max_messages,
                    namespaces: &namespaces,
                };
                let journal = match &config.state_dir {
                    Some(dir) => Some(recovery::journal::Journal::open(dir, keep)?),
                    None => None,
                };
                Some(Arc::new(recovery::Recovery::new(
                    settings,
                    &namespaces,
                    journal,
                )))
            }
            None => None,
        };
        let publish = config.publish_settings();
        let authenticator = Arc::new(auth::CurrentAuthenticator::new(authenticator_for(
            config, &metrics,
        )?));
        let limits = socketio::ConnectionLimits::new(config.client_limits(), metrics.clone());
        let cluster = match config.cluster_settings() {
            Some(settings) => Some(Arc::new(cluster::Cluster::new(settings)?)),
            None => None,
        };
        let admin_ui_settings = config.admin_ui_settings();
        let admin_page_port = admin_ui_settings.as_ref().and_then(|s| s.page_port);
        let origins =
            socketio::OriginPolicy::new(config.origins(), admin_page_port, metrics.clone());
        let sharing = cluster
            .as_ref()
            .map(|cluster| cluster.sharing(&config.served_namespaces(), recovery.as_ref()));
        let readiness = Arc::new(readiness::Readiness::default());
        let admission = socketio::Admission::new(
            authenticator.clone(),
            limits.clone(),
            metrics.clone(),
            recovery.clone(),
            sharing
                .as_ref()
                .and_then(cluster::Sharing::history)
                .cloned(),
            admin_ui_settings
                .as_ref()
                .is_some_and(|s| s.mode == config::AdminUiMode::Full),
            cluster
                .as_ref()
                .map(|cluster| cluster.presence().local().clone()),
        );
        let (socketio, io) = socketio::build(
            &config.served_namespaces(),
            config.connection_timers(),
            admission,
            cluster.as_deref(),
        );
        let admin_namespace = admin_ui_settings.as_ref().map(|_| admin_ui::NAMESPACE);
        let dispatcher = Dispatcher::new(
            io.clone(),
            metrics.clone(),
            recovery.clone(),
            cluster.clone(),
            sharing.clone(),
            admin_namespace,
        );
        let leaving_cluster = CancellationToken::new();
        if let (Some(cluster), Some(sharing)) = (&cluster, sharing) {
            join_cluster(
                cluster,
                &dispatcher,
                &metrics,
                sharing,
                leaving_cluster.clone(),
            );
        }
        let publish_api = publish.http_token.as_deref().map(|token| {
            publish::http::router(
                token,
                dispatcher.clone(),
                metrics.clone(),
                publish.max_frame_size,
            )
        });
        let client_script = match &config.client_script {
            Some(path) => Some(Arc::new(socketio::ClientScript::load(path)?)),
            None => None,
        };
        let admin_ui = match &admin_ui_settings {
            Some(settings) => Some(admin_ui::AdminUi::start(
                settings,
                &io,
                limits.clone(),
                metrics.clone(),
                dispatcher.clone(),
                cluster.is_some(),
            )?),
            None => None,
        };
        let router = router::router(router::HttpParts {
            socketio,
            metrics: router::MetricsState {
                io: io.clone(),
                metrics: metrics.clone(),
                admin_namespace,
            },
            public_metrics: config.admin_listen.is_none(),
            readiness: readiness.clone(),
            origins: origins.clone(),
            limits: limits.clone(),
            publish_api,
            client_script,
        });
        let core = Self {
            io,
            dispatcher,
            leaving_cluster,
            metrics,
            publish,
            recovery,
            readiness,
            admin_ui,
            live: LiveParts {
                origins,
                limits,
                authenticator,
                log_level: None,
                started: config.clone(),
                applied: Mutex::new(config.clone()),
            },
        };
        Ok((core, router))
    }

    /// The admin listener's router: `/metrics`, `/healthz` and `/readyz`,
    /// and the Admin UI's page when `admin_ui_files` is set. [`serve`]
    /// serves it on `admin_listen`; an embedding program mounts it where it
    /// likes.
    pub fn admin_router(&self) -> Router {
        router::admin_router(
            router::MetricsState {
                io: self.io.clone(),
                metrics: self.metrics.clone(),
                admin_namespace: self.admin_ui.as_ref().map(|_| admin_ui::NAMESPACE),
            },
            self.readiness.clone(),
            self.admin_ui
                .as_ref()
                .and_then(admin_ui::AdminUi::page_router),
        )
    }

    /// Marks the server ready for `/readyz` (browsers and publishes are
    /// served). [`serve`] does this once it serves both.
    pub fn mark_ready(&self) {
        self.readiness.browsers_accepted();
        self.readiness.publishes_accepted();
    }

    /// Marks the server as stopping: `/readyz` answers 503 from now on.
    pub fn mark_stopping(&self) {
        self.readiness.stopping();
    }

    /// Lets reloads change the log level: `hook` is called with the new
    /// `log_level` when it changes. Without one, a changed `log_level` is
    /// reported as needing a restart.
    pub fn set_log_level_hook(&mut self, hook: LogLevelHook) {
        self.live.log_level = Some(hook);
    }

    /// Applies `config` to the running server without dropping a
    /// connection: the settings of [`reload::is_live_key`] take effect,
    /// the others are reported (and logged) as needing a restart. A
    /// configuration that fails its checks, or whose new parts cannot be
    /// built, is refused and changes nothing.
    pub fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let result = self.apply(config);
        match &result {
            Ok(report) => {
                self.metrics
                    .config_reloaded(outcomes::ReloadResult::Applied);
                for key in &report.needs_restart {
                    tracing::warn!(
                        key,
                        "the configuration changes {key}, which needs a restart to take effect; the running value is kept"
                    );
                }
                tracing::info!(applied = ?report.applied, needs_restart = ?report.needs_restart, "configuration reloaded");
            }
            Err(error) => self.reload_refused(error),
        }
        result
    }

    /// Logs and counts a reload refused before it reached [`PushCore::reload`],
    /// e.g. a configuration file that could not be read.
    pub fn reload_refused(&self, error: &dyn std::fmt::Display) {
        self.metrics
            .config_reloaded(outcomes::ReloadResult::Refused);
        tracing::error!(
            %error,
            "configuration reload refused; the running configuration is kept"
        );
    }

    fn apply(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        config.validate()?;
        let live = &self.live;
        let mut applied = live.applied.lock().unwrap_or_else(|p| p.into_inner());
        let report = reload::plan(&live.started, &applied, &config, live.log_level.is_some());
        let changed = |keys: &[&str]| report.applied.iter().any(|key| keys.contains(key));
        // Everything that can fail comes first, so a refusal changes nothing.
        let authenticator = if changed(reload::AUTH_KEYS) {
            Some(authenticator_for(&config, &self.metrics)?)
        } else {
            None
        };
        if report.applied.contains(&"log_level")
            && let Some(set_level) = &live.log_level
        {
            set_level(&config.log_level).map_err(ReloadError::LogLevel)?;
        }
        if let Some(authenticator) = authenticator {
            live.authenticator.set(authenticator);
        }
        if changed(reload::LIMIT_KEYS) {
            live.limits.update(config.client_limits());
        }
        if changed(&["allowed_origins"]) {
            live.origins.set(config.origins());
        }
        warn_about_open_origins(&config);
        *applied = config;
        Ok(report)
    }

    /// The handle for publishing to connected browsers.
    pub fn dispatcher(&self) -> Dispatcher {
        self.dispatcher.clone()
    }

    /// Serves the publish protocol on `socket` until `shutdown` fires.
    pub async fn serve_publishers(&self, socket: PublishSocket, shutdown: CancellationToken) {
        let services = publish::socket::Services {
            dispatcher: self.dispatcher.clone(),
            metrics: self.metrics.clone(),
            max_frame_size: self.publish.max_frame_size,
            max_publishers: self.publish.max_publishers,
            access: publish::socket::PeerAccess::new(
                self.publish.allowed_uids.clone(),
                self.publish.allowed_gids.clone(),
            ),
        };
        socket.serve(services, shutdown).await;
    }

    /// Disconnects every browser cleanly, then writes the recovery
    /// history out to `state_dir`, if one is set.
    pub async fn close(&self) {
        self.close_browsers().await;
        self.save_history().await;
    }

    async fn close_browsers(&self) {
        if let Some(admin_ui) = &self.admin_ui {
            admin_ui.stop();
        }
        self.io.close().await;
        self.dispatcher.leave_cluster().await;
        self.leaving_cluster.cancel();
    }

    /// Writes and syncs the recovery journal and records a clean stop; on
    /// a blocking thread, since it waits for the disk.
    async fn save_history(&self) {
        if let Some(recovery) = self.recovery.clone()
            && tokio::task::spawn_blocking(move || recovery.close())
                .await
                .is_err()
        {
            tracing::error!("writing the recovery journal at shutdown failed");
        }
    }
}

/// Starts this node's part in the cluster: the link to Redis, answers to
/// the other nodes' questions and, with recovery on, reading the cluster's
/// history into this node.
fn join_cluster(
    cluster: &cluster::Cluster,
    dispatcher: &Dispatcher,
    metrics: &metrics::Metrics,
    sharing: cluster::Sharing,
    leaving: CancellationToken,
) {
    let answering = dispatcher.clone();
    let census_taker: cluster::survey::CensusTaker = Arc::new(move || {
        let dispatcher = answering.clone();
        Box::pin(async move { dispatcher.census().await })
    });
    cluster.start(census_taker, leaving.clone());
    metrics.watch_cluster_link(cluster.state());
    let delivering = dispatcher.clone();
    match sharing {
        cluster::Sharing::History(shared) => {
            let deliver: cluster::history::Deliver = Arc::new(move |namespace, delivery| {
                let dispatcher = delivering.clone();
                Box::pin(async move {
                    match delivery {
                        cluster::history::Delivery::Messages(messages) => {
                            for (offset, entry) in messages {
                                dispatcher
                                    .deliver_from_cluster(&namespace, Some(offset), &entry)
                                    .await;
                            }
                        }
                        cluster::history::Delivery::Reset(position) => {
                            dispatcher.reset_pages(&namespace, position).await;
                        }
                    }
                })
            });
            shared.run(deliver, leaving);
        }
        cluster::Sharing::Relay(relay) => {
            let deliver: cluster::relay::DeliverRelayed = Arc::new(move |namespace, entry| {
                let dispatcher = delivering.clone();
                Box::pin(async move {
                    dispatcher
                        .deliver_from_cluster(&namespace, None, &entry)
                        .await;
                })
            });
            relay.run(deliver, leaving);
        }
    }
    tracing::info!(
        node = cluster.node_id().as_str(),
        "cluster mode: sharing publishes, counts and presence through Redis"
    );
}

/// The authenticator `config` asks for, if it sets an auth URL.
fn authenticator_for(
    config: &Config,
    metrics: &Arc<metrics::Metrics>,
) -> Result<Option<Arc<auth::Authenticator>>, AuthSetupError> {
    config
        .auth_settings()
        .map(|settings| auth::Authenticator::new(settings, metrics.clone()).map(Arc::new))
        .transpose()
}

/// Cookies make any page's connection its visitor's; say so when nothing
/// stops a foreign page.
fn warn_about_open_origins(config: &Config) {
    if config.auth_url.is_some() && config.allowed_origins.is_empty() {
        tracing::warn!(
            "auth_url is set but allowed_origins is not: any web site can open a connection with your visitors' cookies; set --allowed-origin"
        );
    }
}

/// Why the daemon could not run.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot listen on {addr} ({key}): {source}")]
    Listen {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// New configurations for a running daemon, and how to set its log level:
/// what [`serve_with_reloads`] takes besides [`serve`]'s arguments.
pub struct Reloads {
    /// Each item is a configuration to apply, or why the program could not
    /// read one (logged and counted as a refused reload).
    pub configs: tokio::sync::mpsc::Receiver<Result<Config, String>>,
    pub log_level: Option<LogLevelHook>,
}

/// Runs the daemon until `shutdown` completes, then stops gracefully: no new
/// connections, publishes already received are answered, browsers are
/// disconnected cleanly and the socket file is removed.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let (_none, configs) = tokio::sync::mpsc::channel(1);
    let reloads = Reloads {
        configs,
        log_level: None,
    };
    serve_with_reloads(config, shutdown, reloads).await
}

/// [`serve`], also applying each configuration that `reloads` brings
/// ([`PushCore::reload`]); the `push-core` binary sends one at each SIGHUP.
pub async fn serve_with_reloads(
    config: Config,
    shutdown: impl Future<Output = ()>,
    reloads: Reloads,
) -> Result<(), ServeError> {
    open_files::raise_for(config.max_connections);
    let (mut core, router) = PushCore::new(&config)?;
    if let Some(hook) = reloads.log_level {
        core.set_log_level_hook(hook);
    }
    // First, so that it answers /readyz with 503 while the rest starts.
    let admin = match config.admin_listen {
        Some(addr) => Some(bind_http(addr).map_err(|source| ServeError::Listen {
            key: "admin_listen",
            addr,
            source,
        })?),
        None => None,
    };
    let admin_stopped = CancellationToken::new();
    let admin_address = admin.as_ref().and_then(|a| a.local_addr().ok());
    if let Some(listener) = admin {
        let app = core
            .admin_router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let stopped = admin_stopped.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "the admin listener failed");
            }
        });
    }
    let http_listener = bind_http(config.listen).map_err(|source| ServeError::Listen {
        key: "listen",
        addr: config.listen,
        source,
    })?;
    let publish_socket = PublishSocket::bind(&config.publish_settings())?;
    let listen = http_listener.local_addr().unwrap_or(config.listen);
    warn_about_open_origins(&config);

    let stopping = CancellationToken::new();
    let http = tokio::spawn({
        let stopped = stopping.clone().cancelled_owned();
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    });
    tracing::info!(
        %listen,
        admin = ?admin_address,
        socket = %publish_socket.path().display(),
        socket_mode = %config.socket_mode,
        namespaces = ?config.served_namespaces(),
        auth = config.auth_url.is_some(),
        "push-core ready"
    );
    let core = Arc::new(core);
    let mut publishers = tokio::spawn({
        let (core, stopping) = (core.clone(), stopping.clone());
        async move { core.serve_publishers(publish_socket, stopping).await }
    });
    core.mark_ready();

    let mut configs = reloads.configs;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(reload) = configs.recv() => match reload {
                // Logged and counted by reload itself.
                Ok(config) => { let _ = core.reload(config); }
                Err(error) => core.reload_refused(&error),
            },
        }
    }
    core.mark_stopping();
    let stopped = stop_in_order(stopping, &mut publishers, &core, http).await;
    admin_stopped.cancel();
    stopped
}

/// Stops the daemon's parts in order, each given [`SHUTDOWN_GRACE`], and
/// goes on to the next whatever the one before did: a publisher that never
/// stops sending must not leave browsers connected or the HTTP server up.
///
/// 1. Publishers: the socket file is removed, no new publisher is accepted,
///    and those connected get their pending publishes answered, then a
///    `shutting_down` error.
/// 2. Browsers: each is disconnected cleanly, so its client reconnects (to
///    the next daemon) instead of waiting for a timeout.
/// 3. The recovery journal, if `state_dir` is set: written, synced and
///    marked as a clean stop, whatever the steps before did.
/// 4. The HTTP server, which by then has nothing left to serve.
async fn stop_in_order(
    stopping: CancellationToken,
    publishers: &mut tokio::task::JoinHandle<()>,
    core: &PushCore,
    mut http: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), ServeError> {
    stopping.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut *publishers)
        .await
        .is_err()
    {
        tracing::warn!("publish connections did not finish in time; closing browsers anyway");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, core.close_browsers())
        .await
        .is_err()
    {
        tracing::warn!("browser connections did not close in time");
    }
    core.save_history().await;
    let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut http).await {
        Ok(Ok(served)) => served.map_err(ServeError::Http),
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            tracing::warn!("the HTTP server did not stop in time");
            http.abort();
            Ok(())
        }
    };
    tracing::info!("push-core stopped");
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    async fn status(router: Router, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router.oneshot(request).await.unwrap().status()
    }

    /// /readyz on the admin listener: 503 while starting, 200 once both
    /// ways in are served, 503 again from the start of the shutdown.
    #[tokio::test]
    async fn readyz_follows_start_and_stop() {
        let config = Config {
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            ..Config::default()
        };
        let (core, public) = PushCore::new(&config).unwrap();
        assert_eq!(
            status(core.admin_router(), "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        core.mark_ready();
        assert_eq!(status(core.admin_router(), "/readyz").await, StatusCode::OK);
        assert_eq!(
            status(core.admin_router(), "/metrics").await,
            StatusCode::OK
        );
        assert_eq!(status(public.clone(), "/readyz").await, StatusCode::OK);
        assert_eq!(status(public.clone(), "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(public, "/metrics").await,
            StatusCode::NOT_FOUND,
            "with an admin listener, metrics are not public"
        );
        core.mark_stopping();
        assert_eq!(
            status(core.admin_router(), "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    /// A reload that fails its checks changes nothing; a good one applies
    /// its live settings and names the rest.
    #[tokio::test]
    async fn a_refused_reload_keeps_everything() {
        let (core, _router) = PushCore::new(&Config::default()).unwrap();
        let bad = Config {
            max_publishers: 0,
            max_connections: 7,
            ..Config::default()
        };
        assert!(matches!(core.reload(bad), Err(ReloadError::Invalid(_))));
        assert_eq!(
            core.live.limits.settings().max_connections,
            Config::default().max_connections
        );

        let good = Config {
            max_connections: 7,
            max_publishers: 9,
            ..Config::default()
        };
        let report = core.reload(good).unwrap();
        assert_eq!(report.applied, ["max_connections"]);
        assert_eq!(report.needs_restart, ["max_publishers"]);
        assert_eq!(core.live.limits.settings().max_connections, 7);
    }

    /// A log level the program's logging refuses refuses the whole reload,
    /// before any other part changes.
    #[tokio::test]
    async fn a_refused_log_level_refuses_the_reload() {
        let (mut core, _router) = PushCore::new(&Config::default()).unwrap();
        core.set_log_level_hook(Box::new(|level| Err(format!("{level} is no level"))));
        let config = Config {
            log_level: "loud".to_owned(),
            max_connections: 7,
            ..Config::default()
        };
        assert!(matches!(core.reload(config), Err(ReloadError::LogLevel(_))));
        assert_eq!(
            core.live.limits.settings().max_connections,
            Config::default().max_connections
        );
    }

    /// Publishers that never finish, and an HTTP server that never stops:
    /// the shutdown still closes the browsers and returns.
    #[tokio::test(start_paused = true)]
    async fn shutdown_goes_on_past_parts_that_do_not_stop() {
        let (core, _router) = PushCore::new(&Config::default()).unwrap();
        let stopping = CancellationToken::new();
        let mut publishers = tokio::spawn(std::future::pending::<()>());
        let http = tokio::spawn(std::future::pending::<std::io::Result<()>>());
        let started = tokio::time::Instant::now();

        let result = stop_in_order(stopping.clone(), &mut publishers, &core, http).await;

        assert!(result.is_ok());
        assert!(stopping.is_cancelled());
        assert!(
            started.elapsed() <= SHUTDOWN_GRACE * 3,
            "each part had its grace and no more"
        );
        publishers.abort();
    }
}

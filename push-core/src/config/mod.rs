//! The daemon's settings: what they are, their defaults, and their checks.
//!
//! [`Config`] is the one place a setting is declared: its key (the field
//! name, used as is in the TOML file and as `PUSH_CORE_<KEY>` in the
//! environment), its type, its default and its doc. Each value type in
//! [`values`] checks what it is given, so a bad value is refused at start
//! with a message naming the key, the flag and the variable
//! ([`ConfigError`]); [`Config::validate`] adds the checks that span
//! settings or ranges.
//!
//! Settings are layered with `figment`: the defaults, then whatever the
//! program merges over them. The `push-core` binary merges the TOML file,
//! then the environment, then its flags (see its `settings` module); a
//! program that embeds [`PushCore`](crate::PushCore) uses
//! [`Config::builder`] or plain struct syntax, and pulls in no
//! command-line or file parsing.
//!
//! The modules that use settings get views of the groups they need
//! ([`PublishSettings`], [`AuthSettings`], [`ClientLimits`],
//! [`ClusterSettings`], [`RecoverySettings`], [`AdminUiSettings`]).

pub mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

use self::values::duration;
pub use self::values::{
    AdapterKind, AdminUiMode, AuthUrl, ByteCount, FileMode, LogFormat, Namespace, NodeId, Origin,
    PasswordHash, ProxyRange, RedisHost, RedisPlace, RedisUrl, Secret, SocketGroup,
};

/// The namespace the Admin UI joins, as `instrument()` names it by default;
/// a site's namespace may not take it while the Admin UI is on.
pub(crate) const ADMIN_UI_NAMESPACE: &str = "/admin";

/// Defaults, named so the help text, the docs and the code agree.
pub mod defaults {
    use std::time::Duration;

    pub const SOCKET_MODE: u32 = 0o660;
    pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);
    /// A cached answer outlives a logout or a ban for this long at most;
    /// a day is already far past any sensible setting.
    pub const AUTH_CACHE_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);
    /// Enough for every tab of a busy site's online users; each entry is a
    /// hash, a user id and a few room names.
    pub const AUTH_CACHE_SIZE: usize = 100_000;
    /// Calls in flight to the auth URL at once; more connects wait. Keeps a
    /// reconnect storm from occupying every PHP worker of the site.
    pub const AUTH_MAX_CONCURRENCY: usize = 32;
    /// Background attempts to identify a connection the site could not
    /// identify at connect. With the delays below they span four to five
    /// minutes: long enough to ride out a deploy or a restart of the site,
    /// not so long that a site that is really down is asked forever.
    pub const AUTH_RETRY_ATTEMPTS: u32 = 10;
    /// Past this many attempts a connection would be asked about for
    /// hours; a site down that long is better served by reconnects.
    pub const AUTH_RETRY_ATTEMPTS_MAX: u32 = 100;
    /// The longest wait between two background attempts, so a connection
    /// is identified within about a minute of the site coming back.
    pub const AUTH_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// The first wait; the cap may not be shorter.
    pub const AUTH_RETRY_FIRST_DELAY: Duration = Duration::from_secs(1);
    /// How long a background attempt may queue for a call slot. Nobody's
    /// handshake waits on it, so it queues far longer than a connect: a
    /// storm's backlog then drains at the pace the site can take, in
    /// arrival order, instead of timing out and coming back.
    pub const AUTH_RETRY_SLOT_WAIT: Duration = Duration::from_secs(60);
    /// Past an hour, a setting of the auth retries is a typo: nobody
    /// waits that long between two questions to the site.
    pub const AUTH_RETRY_DURATION_MAX: Duration = Duration::from_secs(60 * 60);
    /// Far above what one 2-core machine serves, low enough to stop a flood
    /// before memory runs out.
    pub const MAX_CONNECTIONS: usize = 100_000;
    /// A household or a small office behind one address has a few tabs
    /// each; an office behind a NAT with hundreds of users needs more (see
    /// docs/configuration.md). A script opening connections without end
    /// from one address is stopped here.
    pub const MAX_CONNECTIONS_PER_IP: usize = 500;
    /// After a deploy every tab behind one address reconnects within
    /// seconds: the budget lets all of [`MAX_CONNECTIONS_PER_IP`] come
    /// back at once, with room for retries.
    pub const HANDSHAKES_PER_IP_PER_MINUTE: u32 = 600;
    /// Publisher connections at once. A PHP process keeps one, so this is
    /// room for every worker of several big php-fpm pools, while a runaway
    /// local process cannot open connections (each with its buffers)
    /// without end.
    pub const MAX_PUBLISHERS: usize = 4096;
    /// Past this, a typo would allow more publishers than any site has
    /// processes (and tokio's semaphore panics past its own limit).
    pub const MAX_PUBLISHERS_CEILING: usize = 65_536;
    /// Smaller than this cannot hold a HELLO and a useful publish, nor a
    /// browser's connect packet.
    pub const MIN_PACKET: u64 = 1024;
    /// Browsers send only pings and the connect packet; 16 KiB is plenty.
    pub const MAX_CLIENT_PACKET: u64 = 16 * 1024;
    /// Events a browser may emit per minute before it is disconnected.
    pub const CLIENT_EVENTS_PER_MINUTE: u32 = 60;
    /// Rooms the auth endpoint may put one connection in.
    pub const MAX_ROOMS_PER_CONNECTION: usize = 64;
    /// Messages queued for one slow connection before new ones are dropped.
    /// A site publishing a burst to one user (a batch job, a deferred flush)
    /// outpaces the WebSocket writer for a moment; 1024 absorbs such bursts
    /// while bounding a stalled connection to about 1024 messages of memory.
    pub const MAX_BUFFERED_MESSAGES: usize = 1024;
    /// Node socket.io's defaults, which socket.io clients expect: a ping
    /// every 25 seconds, 20 seconds to answer it.
    pub const PING_INTERVAL: Duration = Duration::from_secs(25);
    pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
    /// Node socket.io's default: a connection that joins no namespace in
    /// this time is closed. Clients join at once; a slow network still has
    /// room.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
    /// Past an hour a heartbeat no longer finds dead connections in any
    /// useful time, and browsers' timers misbehave far past it.
    pub const CONNECTION_TIMER_MAX: Duration = Duration::from_secs(60 * 60);

    /// Long enough for a train tunnel, a laptop lid or a deploy; short
    /// enough that a page away longer reloads its state anyway.
    pub const RECOVERY_WINDOW: Duration = Duration::from_secs(120);
    /// Messages kept per namespace: a site publishing 800 a second keeps
    /// the whole default window.
    pub const RECOVERY_MAX_MESSAGES: usize = 100_000;
    /// Memory all histories may take together, counted per message as its
    /// text plus bookkeeping.
    pub const RECOVERY_MAX_MEMORY: u64 = 64 * 1024 * 1024;
    /// Most messages replayed to one connection. A page that missed more
    /// reloads its state, which is cheaper; and a client cannot make every
    /// connect cost a replay of the whole history.
    pub const RECOVERY_MAX_REPLAY: usize = 10_000;

    /// Redis keys and channels start with this, so that several sites (or
    /// a staging and a production cluster) can share one Redis.
    pub const REDIS_PREFIX: &str = "push-core";
    /// A few Redis round trips and a busy node's scheduling delay fit many
    /// times over; a publisher waits at most this for another node's count.
    pub const CLUSTER_WAIT: Duration = Duration::from_millis(300);
    /// Past this a publisher would wait longer than a PHP request should.
    pub const CLUSTER_WAIT_MAX: Duration = Duration::from_secs(10);

    /// Loopback: the daemon listens there by default, behind a proxy on
    /// the same host.
    pub fn trusted_proxies() -> Vec<ipnet::IpNet> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        vec![
            ipnet::IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            ipnet::IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ]
    }
}

/// Every setting of the daemon. Field names are the keys of the TOML file;
/// docs/configuration.md explains each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for socket.io, /healthz, /readyz, and /metrics unless
    /// `admin_listen` is set.
    pub listen: SocketAddr,
    /// Address of the admin listener (/metrics, /healthz, /readyz, and the
    /// Admin UI's page); unset: none, and /metrics is on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// socket.io namespaces served besides `/`.
    pub namespaces: Vec<Namespace>,
    /// Web origins whose pages may connect; empty: any.
    pub allowed_origins: Vec<Origin>,

    /// The Unix socket the site publishes on.
    pub socket: PathBuf,
    /// Permissions of the publish socket file.
    pub socket_mode: FileMode,
    /// Allows a `socket_mode` that lets every local user publish, for
    /// setups where `publisher_uids`/`publisher_gids` decide instead.
    pub allow_world_writable_socket: bool,
    /// Group given the publish socket file.
    pub socket_group: Option<SocketGroup>,
    /// When set, only processes of these user ids may publish.
    pub publisher_uids: Vec<u32>,
    /// When set, only processes of these group ids may publish.
    pub publisher_gids: Vec<u32>,
    /// Largest publish frame accepted.
    pub max_frame_size: ByteCount,
    /// Most publisher connections at once.
    pub max_publishers: usize,
    /// Turns on the HTTP publish API, which then requires this token.
    pub http_publish_token: Option<Secret>,

    /// Site URL asked who a connecting browser is.
    pub auth_url: Option<AuthUrl>,
    /// Refuse connections that the site does not identify as a user.
    pub auth_required: bool,
    /// How long to wait for the auth URL.
    #[serde(with = "duration")]
    pub auth_timeout: Duration,
    /// How long an auth answer is reused for the same cookies; 0: never.
    #[serde(with = "duration")]
    pub auth_cache_ttl: Duration,
    /// Most auth answers kept.
    pub auth_cache_size: usize,
    /// Most calls to the auth URL in flight at once.
    pub auth_max_concurrency: usize,
    /// Background attempts to identify a connection the site could not
    /// identify at connect.
    pub auth_retry_attempts: u32,
    /// Longest wait between two background attempts.
    #[serde(with = "duration")]
    pub auth_retry_backoff_max: Duration,
    /// How long a background attempt may wait for a free call slot.
    #[serde(with = "duration")]
    pub auth_retry_slot_wait: Duration,

    /// Most browser connections in total; 0: no limit.
    pub max_connections: usize,
    /// Most browser connections from one address; 0: no limit.
    pub max_connections_per_ip: usize,
    /// New connections one address may open per minute; 0: no limit.
    pub handshakes_per_ip_per_minute: u32,
    /// Largest packet a browser may send.
    pub max_client_packet: ByteCount,
    /// Events a browser may emit per minute before it is disconnected.
    pub client_events_per_minute: u32,
    /// Most rooms the auth URL may put one connection in.
    pub max_rooms_per_connection: usize,
    /// Messages queued for a slow connection before more are dropped.
    pub max_buffered_messages: usize,
    /// How often the server pings a browser (protocol 4), or tells it to
    /// ping (protocol 3).
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "duration")]
    pub ping_timeout: Duration,
    /// How long a connection may stay without joining a namespace.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Proxies whose forwarding headers name the browser's address.
    pub trusted_proxies: Vec<ProxyRange>,
    /// A socket.io client bundle served at `/socket.io/socket.io.js`, for
    /// pages that load it from the server; unset: not served.
    pub client_script: Option<PathBuf>,

    /// How long published messages are kept for pages that reconnect; 0
    /// turns recovery off.
    #[serde(with = "duration")]
    pub recovery_window: Duration,
    /// Most messages kept per namespace for recovery.
    pub recovery_max_messages: usize,
    /// Most memory the recovery history takes, all namespaces together.
    pub recovery_max_memory: ByteCount,
    /// Most messages replayed to one connection; a page that missed more
    /// is told to reload its state.
    pub recovery_max_replay: usize,
    /// Directory where the recovery history is kept across restarts; unset:
    /// in memory only.
    pub state_dir: Option<PathBuf>,

    /// `memory`: this node alone. `redis`: several nodes share publishes,
    /// counts and the recovery history through Redis (docs/scaling.md).
    pub adapter: AdapterKind,
    /// The cluster's Redis: one server (`redis://HOST[:PORT][/DB]`), the
    /// master Sentinels name (`redis+sentinel://...`) or a Redis Cluster
    /// (`redis+cluster://...`); needed with `adapter = "redis"`.
    pub redis_url: Option<RedisUrl>,
    /// This node's name in logs, metrics and partial answers; unset: the
    /// host name.
    pub node_id: Option<NodeId>,
    /// Prefix of every Redis key and channel the cluster uses.
    pub redis_prefix: String,
    /// How long STATS waits for the other nodes' figures; an answer
    /// missing a node says it is partial. (Publish counts and `isOnline`
    /// come from the nodes' presence and wait for no other node.)
    #[serde(with = "duration")]
    pub cluster_wait: Duration,

    /// How log lines are written.
    pub log_format: LogFormat,
    /// Log level or tracing filter, e.g. `info` or `push_core=debug`.
    pub log_level: String,

    /// User name of the socket.io Admin UI; with `admin_ui_password_hash`,
    /// turns on its `/admin` namespace. Unset: off.
    pub admin_ui_username: Option<String>,
    /// bcrypt hash of the Admin UI's password.
    pub admin_ui_password_hash: Option<PasswordHash>,
    /// `readonly`: the Admin UI shows figures; `full`: also each
    /// connection, and acts on them (docs/security.md).
    pub admin_ui_mode: AdminUiMode,
    /// The Admin UI's page (npm `@socket.io/admin-ui`'s `ui/dist`), served
    /// at `/admin-ui/` on `admin_listen`; unset: not served.
    pub admin_ui_files: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            admin_listen: None,
            namespaces: Vec::new(),
            allowed_origins: Vec::new(),
            socket: PathBuf::from(push_client::DEFAULT_SOCKET_PATH),
            socket_mode: FileMode::new(defaults::SOCKET_MODE),
            allow_world_writable_socket: false,
            socket_group: None,
            publisher_uids: Vec::new(),
            publisher_gids: Vec::new(),
            max_frame_size: ByteCount::new(u64::from(push_client::DEFAULT_MAX_FRAME_SIZE)),
            max_publishers: defaults::MAX_PUBLISHERS,
            http_publish_token: None,
            auth_url: None,
            auth_required: false,
            auth_timeout: defaults::AUTH_TIMEOUT,
            auth_cache_ttl: defaults::AUTH_CACHE_TTL,
            auth_cache_size: defaults::AUTH_CACHE_SIZE,
            auth_max_concurrency: defaults::AUTH_MAX_CONCURRENCY,
            auth_retry_attempts: defaults::AUTH_RETRY_ATTEMPTS,
            auth_retry_backoff_max: defaults::AUTH_RETRY_BACKOFF_MAX,
            auth_retry_slot_wait: defaults::AUTH_RETRY_SLOT_WAIT,
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            handshakes_per_ip_per_minute: defaults::HANDSHAKES_PER_IP_PER_MINUTE,
            max_client_packet: ByteCount::new(defaults::MAX_CLIENT_PACKET),
            client_events_per_minute: defaults::CLIENT_EVENTS_PER_MINUTE,
            max_rooms_per_connection: defaults::MAX_ROOMS_PER_CONNECTION,
            max_buffered_messages: defaults::MAX_BUFFERED_MESSAGES,
            ping_interval: defaults::PING_INTERVAL,
            ping_timeout: defaults::PING_TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            trusted_proxies: defaults::trusted_proxies()
                .into_iter()
                .map(ProxyRange::new)
                .collect(),
            client_script: None,
            recovery_window: defaults::RECOVERY_WINDOW,
            recovery_max_messages: defaults::RECOVERY_MAX_MESSAGES,
            recovery_max_memory: ByteCount::new(defaults::RECOVERY_MAX_MEMORY),
            recovery_max_replay: defaults::RECOVERY_MAX_REPLAY,
            state_dir: None,
            adapter: AdapterKind::Memory,
            redis_url: None,
            node_id: None,
            redis_prefix: defaults::REDIS_PREFIX.to_owned(),
            cluster_wait: defaults::CLUSTER_WAIT,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            admin_ui_username: None,
            admin_ui_password_hash: None,
            admin_ui_mode: AdminUiMode::Readonly,
            admin_ui_files: None,
        }
    }
}

/// A setting that cannot be used, named the way the user can find it.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid value for {key} (--{flag} / PUSH_CORE_{env}): {message}", flag = flag_for(key), env = key.to_uppercase())]
    Value { key: String, message: String },
    #[error("unknown setting `{key}`; the settings are listed in docs/configuration.md")]
    Unknown { key: String },
}

impl ConfigError {
    /// A bad value for `key`, said in `message`.
    pub fn value(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Value {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The setting the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Value { key, .. } | Self::Unknown { key } => key,
        }
    }

    /// Reads figment's error as ours: its path names the key.
    fn from_figment(error: figment::Error) -> Self {
        use figment::error::Kind;
        let key = error.path.first().map_or("(config)", String::as_str);
        match &error.kind {
            Kind::UnknownField(key, _) => Self::Unknown { key: key.clone() },
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                Self::value(
                    key,
                    format!("{} is not {}", written(actual), plain(expected)),
                )
            }
            kind => Self::value(key, kind.to_string()),
        }
    }
}

/// A value as the user wrote it.
fn written(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(text) => format!("{text:?}"),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Bool(b) => b.to_string(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

/// What serde expected, in the words of this page's users.
fn plain(expected: &str) -> &str {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number in range",
        "a boolean" => "true or false",
        "a sequence" => "a list (an array in TOML, comma-separated in the environment)",
        "a string" => "text",
        other => other,
    }
}

/// The flag of a key: list settings take one item per flag, so their flag
/// is singular.
pub fn flag_for(key: &str) -> String {
    let singular = match key {
        "namespaces" => "namespace",
        "allowed_origins" => "allowed_origin",
        "publisher_uids" => "publisher_uid",
        "publisher_gids" => "publisher_gid",
        "trusted_proxies" => "trusted_proxy",
        other => other,
    };
    singular.replace('_', "-")
}

/// The key of a flag, as [`flag_for`] in reverse.
pub fn key_for_flag(flag: &str) -> Option<&'static str> {
    Config::keys()
        .iter()
        .copied()
        .find(|key| flag_for(key) == flag)
}

/// Builds a [`Config`] from layers of settings: the defaults first, each
/// later layer over the ones before.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    figment: Figment,
}

impl ConfigBuilder {
    /// Sets one setting, by its key, to a value checked as a file's would
    /// be: `set("auth_timeout", "500ms")`, `set("max_connections", 5000)`.
    pub fn set(self, key: &str, value: impl Serialize) -> Self {
        self.merge((key, value))
    }

    /// Merges a whole layer over the settings so far.
    pub fn merge(self, layer: impl figment::Provider) -> Self {
        Self {
            figment: self.figment.merge(layer),
        }
    }

    /// Reads and checks every setting.
    pub fn build(self) -> Result<Config, ConfigError> {
        let config: Config = self
            .figment
            .extract_lossy()
            .map_err(ConfigError::from_figment)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The defaults, ready for [`ConfigBuilder::set`] and the layers a
    /// program has.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            figment: Figment::from(Serialized::defaults(Config::default())),
        }
    }

    /// The defaults, with the publish socket at `socket`. Handy for
    /// embedding and tests.
    pub fn with_socket(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            ..Self::default()
        }
    }

    /// A copy fit to print or log: secrets are replaced by `(hidden)`.
    pub fn with_secrets_hidden(&self) -> Config {
        Config {
            http_publish_token: self.http_publish_token.as_ref().map(|_| Secret::hidden()),
            redis_url: self.redis_url.as_ref().map(RedisUrl::without_password),
            admin_ui_password_hash: self
                .admin_ui_password_hash
                .as_ref()
                .map(|_| PasswordHash::hidden()),
            ..self.clone()
        }
    }

    /// Every key, in the order declared.
    pub fn keys() -> &'static [&'static str] {
        introspect::field_names::<Config>()
    }

    /// True for the settings that hold a list: one flag per item, items
    /// separated by commas in the environment.
    pub fn is_list_key(key: &str) -> bool {
        figment::value::Value::serialize(Config::default())
            .ok()
            .and_then(|defaults| defaults.find(key))
            .is_some_and(|value| matches!(value, figment::value::Value::Array(..)))
    }

    /// The checks that one value's type cannot make on its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.admin_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::value(
                "admin_listen",
                format!(
                    "{} is also `listen`; the admin listener needs an address of its own",
                    self.listen
                ),
            ));
        }
        if self.socket.as_os_str().is_empty() {
            return Err(ConfigError::value("socket", "the path is empty"));
        }
        if self.socket_mode.others_may_write() && !self.allow_world_writable_socket {
            return Err(ConfigError::value(
                "socket_mode",
                format!(
                    "{} lets every local user connect and publish to every browser; use 0660 with socket_group (or 0600), or set allow_world_writable_socket if publisher_uids/publisher_gids decide who may publish",
                    self.socket_mode
                ),
            ));
        }
        at_least(
            "max_frame_size",
            self.max_frame_size.get(),
            defaults::MIN_PACKET,
        )?;
        if u32::try_from(self.max_frame_size.get()).is_err() {
            return Err(ConfigError::value(
                "max_frame_size",
                format!(
                    "{} is over the most a frame can say, {}",
                    self.max_frame_size,
                    u32::MAX
                ),
            ));
        }
        at_least("max_publishers", self.max_publishers, 1)?;
        if self.max_publishers > defaults::MAX_PUBLISHERS_CEILING {
            return Err(ConfigError::value(
                "max_publishers",
                format!(
                    "{} is over the most this daemon allows, {}: each publisher connection is a thread",
                    self.max_publishers,
                    defaults::MAX_PUBLISHERS_CEILING
                ),
            ));
        }
        if self.auth_required && self.auth_url.is_none() {
            return Err(ConfigError::value(
                "auth_required",
                "is set but auth_url is not; every connection would be refused",
            ));
        }
        if self.auth_timeout.is_zero() {
            return Err(ConfigError::value("auth_timeout", "must be more than 0"));
        }
        if self.auth_cache_ttl > defaults::AUTH_CACHE_TTL_MAX {
            return Err(ConfigError::value(
                "auth_cache_ttl",
                "must be at most 1 day: a cached answer outlives a logout for that long",
            ));
        }
        at_least("auth_max_concurrency", self.auth_max_concurrency, 1)?;
        self.validate_auth_retry()?;
        at_least(
            "max_client_packet",
            self.max_client_packet.get(),
            defaults::MIN_PACKET,
        )?;
        if usize::try_from(self.max_client_packet.get()).is_err() {
            return Err(ConfigError::value("max_client_packet", "is too large"));
        }
        at_least("max_buffered_messages", self.max_buffered_messages, 1)?;
        for (key, value) in [
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() || value > defaults::CONNECTION_TIMER_MAX {
                return Err(ConfigError::value(
                    key,
                    "must be more than 0 and at most 1h",
                ));
            }
        }
        if !self.recovery_window.is_zero() {
            at_least("recovery_max_messages", self.recovery_max_messages, 1)?;
        }
        if self
            .state_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(ConfigError::value("state_dir", "the path is empty"));
        }
        if self.state_dir.is_some() && self.recovery_window.is_zero() {
            return Err(ConfigError::value(
                "state_dir",
                "is set but recovery_window is 0: there is no history to keep",
            ));
        }
        self.validate_cluster()?;
        self.validate_admin_ui()?;
        if let Some(script) = &self.client_script
            && !script.is_file()
        {
            return Err(ConfigError::value(
                "client_script",
                format!(
                    "{} is not a file; name a socket.io client bundle, e.g. node_modules/socket.io-client/dist/socket.io.js",
                    script.display()
                ),
            ));
        }
        Ok(())
    }

    /// The auth retries' settings: some attempts, spaced and queued for
    /// between their shortest sensible and an hour.
    fn validate_auth_retry(&self) -> Result<(), ConfigError> {
        at_least("auth_retry_attempts", self.auth_retry_attempts, 1)?;
        if self.auth_retry_attempts > defaults::AUTH_RETRY_ATTEMPTS_MAX {
            return Err(ConfigError::value(
                "auth_retry_attempts",
                format!(
                    "{} is over {}: a connection would be asked about for hours; let the site's outage end in reconnects instead",
                    self.auth_retry_attempts,
                    defaults::AUTH_RETRY_ATTEMPTS_MAX
                ),
            ));
        }
        let first = defaults::AUTH_RETRY_FIRST_DELAY;
        let most = defaults::AUTH_RETRY_DURATION_MAX;
        if self.auth_retry_backoff_max < first || self.auth_retry_backoff_max > most {
            return Err(ConfigError::value(
                "auth_retry_backoff_max",
                "must be at least 1s (the first wait) and at most 1h",
            ));
        }
        if self.auth_retry_slot_wait.is_zero() || self.auth_retry_slot_wait > most {
            return Err(ConfigError::value(
                "auth_retry_slot_wait",
                "must be more than 0 and at most 1h",
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        match (self.adapter, &self.redis_url) {
            (AdapterKind::Redis, None) => {
                return Err(ConfigError::value(
                    "adapter",
                    "is redis but redis_url is not set; add --redis-url redis://HOST:PORT",
                ));
            }
            (AdapterKind::Memory, Some(_)) => {
                return Err(ConfigError::value(
                    "redis_url",
                    "is set but adapter is memory, so it would not be used; add --adapter redis",
                ));
            }
            _ => {}
        }
        if self.adapter == AdapterKind::Redis && self.state_dir.is_some() {
            return Err(ConfigError::value(
                "state_dir",
                "is for a node on its own; with adapter = \"redis\" the recovery history is kept in Redis (docs/scaling.md)",
            ));
        }
        let prefix_allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if self.redis_prefix.is_empty() || !self.redis_prefix.chars().all(prefix_allowed) {
            return Err(ConfigError::value(
                "redis_prefix",
                format!(
                    "{:?} must be letters, digits, '.', '-', '_' or ':', and not empty",
                    self.redis_prefix
                ),
            ));
        }
        if self.cluster_wait.is_zero() || self.cluster_wait > defaults::CLUSTER_WAIT_MAX {
            return Err(ConfigError::value(
                "cluster_wait",
                "must be more than 0 and at most 10s: a publisher waits this long for the other nodes",
            ));
        }
        Ok(())
    }

    fn validate_admin_ui(&self) -> Result<(), ConfigError> {
        let on = match (&self.admin_ui_username, &self.admin_ui_password_hash) {
            (Some(username), Some(_)) if username.trim().is_empty() => {
                return Err(ConfigError::value("admin_ui_username", "is empty"));
            }
            (Some(_), Some(_)) => true,
            (Some(_), None) => {
                return Err(ConfigError::value(
                    "admin_ui_username",
                    "is set but admin_ui_password_hash is not; the Admin UI needs both",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::value(
                    "admin_ui_password_hash",
                    "is set but admin_ui_username is not; the Admin UI needs both",
                ));
            }
            (None, None) => false,
        };
        if !on && self.admin_ui_mode != AdminUiMode::Readonly {
            return Err(ConfigError::value(
                "admin_ui_mode",
                "is set but the Admin UI is off; set admin_ui_username and admin_ui_password_hash",
            ));
        }
        if on
            && self
                .namespaces
                .iter()
                .any(|ns| ns.as_str() == ADMIN_UI_NAMESPACE)
        {
            return Err(ConfigError::value(
                "namespaces",
                "names /admin, which is the Admin UI's namespace while admin_ui_username is set; rename the site's namespace or turn the Admin UI off",
            ));
        }
        let Some(files) = &self.admin_ui_files else {
            return Ok(());
        };
        if !on {
            return Err(ConfigError::value(
                "admin_ui_files",
                "is set but the Admin UI is off; set admin_ui_username and admin_ui_password_hash",
            ));
        }
        if self.admin_listen.is_none() {
            return Err(ConfigError::value(
                "admin_ui_files",
                "is set but admin_listen is not: the page is served on the admin listener; add --admin-listen 127.0.0.1:9464",
            ));
        }
        if !files.join("index.html").is_file() {
            return Err(ConfigError::value(
                "admin_ui_files",
                format!(
                    "{} holds no index.html; name the ui/dist directory of the npm package @socket.io/admin-ui, e.g. node_modules/@socket.io/admin-ui/ui/dist",
                    files.display()
                ),
            ));
        }
        Ok(())
    }

    /// What the Admin UI needs, when it is on.
    pub fn admin_ui_settings(&self) -> Option<AdminUiSettings> {
        let username = self.admin_ui_username.clone()?;
        let password_hash = self.admin_ui_password_hash.clone()?;
        Some(AdminUiSettings {
            username,
            password_hash,
            mode: self.admin_ui_mode,
            files: self.admin_ui_files.clone(),
            server_id: self.node_id.clone().unwrap_or_else(NodeId::of_this_host),
            page_port: self
                .admin_ui_files
                .as_ref()
                .and(self.admin_listen)
                .map(|admin| admin.port()),
        })
    }

    /// What a node needs to join a cluster, when `adapter = "redis"`.
    pub fn cluster_settings(&self) -> Option<ClusterSettings> {
        let url = self.redis_url.as_ref()?;
        (self.adapter == AdapterKind::Redis).then(|| ClusterSettings {
            redis_url: url.clone(),
            node_id: self.node_id.clone().unwrap_or_else(NodeId::of_this_host),
            prefix: self.redis_prefix.clone(),
            wait: self.cluster_wait,
        })
    }

    /// The namespaces served: `/`, which socket.io clients join by default,
    /// then the configured ones, each once.
    pub fn served_namespaces(&self) -> Vec<String> {
        let mut served = vec!["/".to_owned()];
        for namespace in &self.namespaces {
            if !served.iter().any(|s| s == namespace.as_str()) {
                served.push(namespace.as_str().to_owned());
            }
        }
        served
    }

    /// The allowed origins as browsers write them; empty means any.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .map(|origin| origin.as_str().to_owned())
            .collect()
    }

    /// What the publish socket and the HTTP publish API need.
    pub fn publish_settings(&self) -> PublishSettings {
        PublishSettings {
            socket: self.socket.clone(),
            socket_mode: self.socket_mode.bits(),
            socket_group: self.socket_group.as_ref().map(SocketGroup::gid),
            allowed_uids: self.publisher_uids.clone(),
            allowed_gids: self.publisher_gids.clone(),
            max_frame_size: u32::try_from(self.max_frame_size.get()).unwrap_or(u32::MAX),
            max_publishers: self.max_publishers,
            http_token: self
                .http_publish_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
        }
    }

    /// What asking the site needs; `None` when no auth URL is set.
    pub fn auth_settings(&self) -> Option<AuthSettings> {
        self.auth_url.as_ref().map(|url| AuthSettings {
            url: url.url().clone(),
            required: self.auth_required,
            timeout: self.auth_timeout,
            cache_ttl: self.auth_cache_ttl,
            cache_size: self.auth_cache_size,
            max_concurrency: self.auth_max_concurrency,
            retry: AuthRetrySettings {
                attempts: self.auth_retry_attempts,
                backoff_max: self.auth_retry_backoff_max,
                slot_wait: self.auth_retry_slot_wait,
            },
        })
    }

    /// How much history recovery keeps; `None` when it is off.
    pub fn recovery_settings(&self) -> Option<RecoverySettings> {
        (!self.recovery_window.is_zero()).then(|| RecoverySettings {
            window: self.recovery_window,
            max_messages: self.recovery_max_messages,
            max_memory: usize::try_from(self.recovery_max_memory.get()).unwrap_or(usize::MAX),
            max_replay: self.recovery_max_replay,
        })
    }

    /// How the socket.io listener times its connections.
    pub fn connection_timers(&self) -> ConnectionTimers {
        ConnectionTimers {
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            connect_timeout: self.connect_timeout,
        }
    }

    /// The limits on what browsers can make the daemon hold.
    pub fn client_limits(&self) -> ClientLimits {
        ClientLimits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            handshakes_per_ip_per_minute: self.handshakes_per_ip_per_minute,
            max_client_packet: usize::try_from(self.max_client_packet.get()).unwrap_or(usize::MAX),
            client_events_per_minute: self.client_events_per_minute,
            max_rooms_per_connection: self.max_rooms_per_connection,
            max_buffered_messages: self.max_buffered_messages,
            trusted_proxies: self
                .trusted_proxies
                .iter()
                .map(|proxy| proxy.range())
                .collect(),
        }
    }
}

fn at_least<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
) -> Result<(), ConfigError> {
    if value >= min {
        Ok(())
    } else if min.to_string() == "1" {
        Err(ConfigError::value(key, "must be at least 1"))
    } else {
        Err(ConfigError::value(
            key,
            format!("{value} is below the minimum of {min} bytes"),
        ))
    }
}

/// Settings for asking the site who a browser is.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub url: Url,
    pub required: bool,
    pub timeout: Duration,
    pub cache_ttl: Duration,
    pub cache_size: usize,
    pub max_concurrency: usize,
    pub retry: AuthRetrySettings,
}

/// How a connection the site could not identify at connect is asked about
/// again, in the background.
#[derive(Debug, Clone, Copy)]
pub struct AuthRetrySettings {
    pub attempts: u32,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long an attempt may queue for a call slot.
    pub slot_wait: Duration,
}

/// Who may publish, and how.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// Group id given to the socket file.
    pub socket_group: Option<u32>,
    /// When either list is non-empty, a peer must match one of them.
    pub allowed_uids: Vec<u32>,
    pub allowed_gids: Vec<u32>,
    pub max_frame_size: u32,
    /// Publisher connections served at once.
    pub max_publishers: usize,
    /// Set: the HTTP publish API is on and requires this bearer token.
    pub http_token: Option<String>,
}

/// What a node needs to join a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub redis_url: RedisUrl,
    pub node_id: NodeId,
    /// Prefix of every Redis channel and key.
    pub prefix: String,
    /// How long STATS, and the adapter's own requests, wait for the other
    /// nodes.
    pub wait: Duration,
}

/// How much history recovery keeps.
#[derive(Debug, Clone, Copy)]
pub struct RecoverySettings {
    pub window: Duration,
    pub max_messages: usize,
    pub max_memory: usize,
    /// More missed messages than this are not replayed: the page resets.
    pub max_replay: usize,
}

/// What the Admin UI needs from the configuration.
#[derive(Debug, Clone)]
pub struct AdminUiSettings {
    pub username: String,
    pub password_hash: PasswordHash,
    pub mode: AdminUiMode,
    /// The page's files, when it is served.
    pub files: Option<PathBuf>,
    /// The node's name, sent as `serverId`.
    pub server_id: NodeId,
    /// The admin listener's port, when it serves the page: the page's
    /// origin, which the socket.io listener lets join `/admin`.
    pub page_port: Option<u16>,
}

/// The heartbeat and the namespace-join deadline of browser connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimers {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ConnectionTimers {
    fn default() -> Self {
        Config::default().connection_timers()
    }
}

/// Limits on what browsers can make the daemon do. 0 means no limit where
/// the field says so.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// 0: no limit.
    pub max_connections: usize,
    /// 0: no limit.
    pub max_connections_per_ip: usize,
    /// 0: no limit.
    pub handshakes_per_ip_per_minute: u32,
    pub max_client_packet: usize,
    pub client_events_per_minute: u32,
    pub max_rooms_per_connection: usize,
    pub max_buffered_messages: usize,
    /// Peers whose forwarding headers are believed for per-IP limits.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Config::default().client_limits()
    }
}

/// The field names of a struct, read from its `Deserialize` impl, so that
/// the list of keys is never written down a second time.
mod introspect {
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(FieldNames {
            fields: &mut fields,
        });
        fields
    }

    /// A deserializer that records the fields it is asked for, then stops.
    struct FieldNames<'a> {
        fields: &'a mut &'static [&'static str],
    }

    #[derive(Debug)]
    struct Stop;

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = Stop;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            *self.fields = fields;
            Err(Stop)
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let config = Config::builder().build().unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            config.socket,
            PathBuf::from(push_client::DEFAULT_SOCKET_PATH)
        );
        assert_eq!(config.socket_mode.bits(), 0o660);
        assert_eq!(config.served_namespaces(), vec!["/"]);
        assert!(config.auth_settings().is_none());
        assert!(config.publish_settings().http_token.is_none());
    }

    #[test]
    fn keys_are_the_fields() {
        let keys = Config::keys();
        assert_eq!(keys.first(), Some(&"listen"));
        assert!(keys.contains(&"trusted_proxies"));
        assert!(keys.contains(&"log_level"));
        assert_eq!(key_for_flag("allowed-origin"), Some("allowed_origins"));
        assert_eq!(key_for_flag("auth-timeout"), Some("auth_timeout"));
    }

    #[test]
    fn values_are_read_in_every_spelling() {
        let config = Config::builder()
            .set("socket_mode", 0o600)
            .set("auth_url", "http://127.0.0.1:1/auth")
            .set("auth_timeout", "500ms")
            .set("auth_cache_ttl", 10)
            .set("max_frame_size", "64KiB")
            .set("max_connections", "5")
            .set("auth_required", "yes")
            .set("namespaces", ["/a", "/b", "/a"])
            .build()
            .unwrap();
        assert_eq!(config.socket_mode.bits(), 0o600);
        let auth = config.auth_settings().unwrap();
        assert_eq!(auth.timeout, Duration::from_millis(500));
        assert_eq!(auth.cache_ttl, Duration::from_secs(10));
        assert!(auth.required);
        assert_eq!(config.publish_settings().max_frame_size, 64 * 1024);
        assert_eq!(config.max_connections, 5);
        assert_eq!(config.served_namespaces(), vec!["/", "/a", "/b"]);
    }

    #[test]
    fn a_mode_that_lets_others_write_needs_saying_so() {
        let error = Config::builder()
            .set("socket_mode", "0666")
            .build()
            .unwrap_err();
        assert_eq!(error.key(), "socket_mode");
        let allowed = Config::builder()
            .set("socket_mode", "0666")
            .set("allow_world_writable_socket", true)
            .build()
            .unwrap();
        assert_eq!(allowed.socket_mode.bits(), 0o666);
    }

    #[test]
    fn printed_settings_hide_secrets() {
        let token = "t".repeat(40);
        let hash = "$2y$04$TzNigAPReA7mzVj4l26rkuGISuk67OHMdaIInV/vz/vMrcFnmGI2a";
        let config = Config::builder()
            .set("http_publish_token", &token)
            .set("admin_ui_username", "admin")
            .set("admin_ui_password_hash", hash)
            .build()
            .unwrap();
        let shown = format!("{:?}", config.with_secrets_hidden());
        assert!(!shown.contains(&token), "{shown}");
        assert!(!shown.contains(hash), "{shown}");
        let serialized = serde_json::to_string(&config.with_secrets_hidden()).unwrap();
        assert!(!serialized.contains(hash), "{serialized}");
        assert_eq!(
            config.publish_settings().http_token.as_deref(),
            Some(token.as_str())
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = Config::builder().set("lisen", "x").build().unwrap_err();
        assert!(matches!(error, ConfigError::Unknown { .. }), "{error}");
        assert!(error.to_string().contains("lisen"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key_flag_and_variable() {
        let cases: &[(&str, &str)] = &[
            ("listen", "nowhere"),
            ("admin_listen", "nowhere"),
            ("admin_listen", "127.0.0.1:3000"),
            ("socket_mode", "999"),
            ("socket_group", "no-such-group-here"),
            ("namespaces", "chat"),
            ("max_frame_size", "12"),
            ("max_publishers", "0"),
            ("http_publish_token", "short"),
            ("auth_url", "ftp://x"),
            ("auth_required", "maybe"),
            ("auth_timeout", "soon"),
            ("auth_timeout", "0s"),
            ("auth_cache_ttl", "2days"),
            ("max_connections", "-1"),
            ("max_client_packet", "10"),
            ("publisher_uids", "root"),
            ("allowed_origins", "https://a.example/path"),
            ("trusted_proxies", "proxy.example"),
            ("log_format", "xml"),
            ("admin_ui_password_hash", "correct horse battery staple"),
            ("admin_ui_mode", "admin"),
        ];
        for (key, value) in cases {
            let builder = Config::builder();
            let builder = if Config::is_list_key(key) {
                builder.set(key, [value])
            } else {
                builder.set(key, value)
            };
            let error = builder.build().unwrap_err();
            assert_eq!(error.key(), *key, "{error}");
            let text = error.to_string();
            let flag = flag_for(key);
            assert!(
                text.starts_with(&format!(
                    "invalid value for {key} (--{flag} / PUSH_CORE_{}): ",
                    key.to_uppercase()
                )),
                "{text}"
            );
        }
        let error = Config::builder()
            .set("auth_required", true)
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value for auth_required (--auth-required / PUSH_CORE_AUTH_REQUIRED): is set but auth_url is not; every connection would be refused"
        );
    }
}

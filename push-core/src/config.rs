//! The daemon's settings and where they come from.
//!
//! Every setting can be given three ways, and the first one found wins:
//! a command-line flag, an environment variable `PUSH_CORE_<KEY>`, or a key
//! in the TOML file named by `--config`. Anything left unset takes the
//! default documented in `push-core serve --help` and `docs/configuration.md`.
//!
//! All checking happens in [`ServeArgs::resolve`], before anything is bound,
//! so a bad value stops the daemon at start with a message naming the key.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use thiserror::Error;
use url::Url;

/// Defaults, named so the help text, the docs and the code agree.
pub mod defaults {
    use std::time::Duration;

    pub const SOCKET_MODE: u32 = 0o660;
    pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);
    /// Enough for every tab of a busy site's online users; each entry is a
    /// hash, a user id and a few room names.
    pub const AUTH_CACHE_SIZE: usize = 100_000;
    /// Calls in flight to the auth URL at once; more connects wait. Keeps a
    /// reconnect storm from occupying every PHP worker of the site.
    pub const AUTH_MAX_CONCURRENCY: usize = 32;
    /// Far above what one 2-core machine serves, low enough to stop a flood
    /// before memory runs out.
    pub const MAX_CONNECTIONS: usize = 100_000;
    /// Publisher connections, each served by a thread of its own. A PHP
    /// process keeps one, so this is room for every worker of several big
    /// php-fpm pools, while a runaway local process cannot make threads
    /// without end.
    pub const MAX_PUBLISHERS: usize = 4096;
    /// Browsers send only pings and the connect packet; 16 KiB is plenty.
    pub const MAX_CLIENT_PACKET: usize = 16 * 1024;
    /// Events a browser may emit per minute before it is disconnected.
    pub const CLIENT_EVENTS_PER_MINUTE: u32 = 60;
    /// Rooms the auth endpoint may put one connection in.
    pub const MAX_ROOMS_PER_CONNECTION: usize = 64;
    /// Messages queued for one slow connection before new ones are dropped.
    /// A site publishing a burst to one user (a batch job, a deferred flush)
    /// outpaces the WebSocket writer for a moment; 1024 absorbs such bursts
    /// while bounding a stalled connection to about 1024 messages of memory.
    pub const MAX_BUFFERED_MESSAGES: usize = 1024;

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

/// Flags of `push-core serve`. Each is optional here so that the config file
/// and the defaults can fill what the command line leaves out.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as in
    /// docs/configuration.md, e.g. `auth_url = "..."`).
    #[arg(long, env = "PUSH_CORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address for socket.io, /healthz and /metrics [default: 127.0.0.1:3000]
    #[arg(long, env = "PUSH_CORE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// A socket.io namespace to serve besides `/`; repeat for more
    /// (comma-separated in the environment)
    #[arg(
        long = "namespace",
        env = "PUSH_CORE_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// A web origin (scheme://host[:port]) whose pages may connect; repeat
    /// for more (comma-separated in the environment). Unset: any origin.
    #[arg(
        long = "allowed-origin",
        env = "PUSH_CORE_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Unix socket the site publishes on [default: /run/push-core/push.sock]
    #[arg(
        long,
        env = "PUSH_CORE_SOCKET",
        value_name = "PATH",
        help_heading = "Publishing"
    )]
    pub socket: Option<PathBuf>,

    /// Permissions of the publish socket file, in octal [default: 0660]
    #[arg(
        long,
        env = "PUSH_CORE_SOCKET_MODE",
        value_name = "MODE",
        help_heading = "Publishing"
    )]
    pub socket_mode: Option<String>,

    /// Group (name or id) given the publish socket file, e.g. www-data
    #[arg(
        long,
        env = "PUSH_CORE_SOCKET_GROUP",
        value_name = "GROUP",
        help_heading = "Publishing"
    )]
    pub socket_group: Option<String>,

    /// Only processes of this user id may publish; repeat for more
    #[arg(
        long = "publisher-uid",
        env = "PUSH_CORE_PUBLISHER_UIDS",
        value_name = "UID",
        value_delimiter = ',',
        help_heading = "Publishing"
    )]
    pub publisher_uids: Vec<String>,

    /// Only processes of this group id may publish; repeat for more
    #[arg(
        long = "publisher-gid",
        env = "PUSH_CORE_PUBLISHER_GIDS",
        value_name = "GID",
        value_delimiter = ',',
        help_heading = "Publishing"
    )]
    pub publisher_gids: Vec<String>,

    /// Largest publish frame accepted, in bytes [default: 1048576]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_FRAME_SIZE",
        value_name = "BYTES",
        help_heading = "Publishing"
    )]
    pub max_frame_size: Option<String>,

    /// Most publisher connections at once; more are refused with
    /// too_many_publishers [default: 4096]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_PUBLISHERS",
        value_name = "N",
        help_heading = "Publishing"
    )]
    pub max_publishers: Option<String>,

    /// Secret that turns on the HTTP publish API (POST /api/publish, ...)
    /// for app servers on other hosts; at least 32 characters. Unset: off.
    #[arg(
        long,
        env = "PUSH_CORE_HTTP_PUBLISH_TOKEN",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = "Publishing"
    )]
    pub http_publish_token: Option<String>,

    /// Site URL asked who a connecting browser is (its cookies are forwarded)
    #[arg(
        long,
        env = "PUSH_CORE_AUTH_URL",
        value_name = "URL",
        help_heading = "Identity"
    )]
    pub auth_url: Option<String>,

    /// Refuse connections that the site does not identify as a user
    #[arg(long, env = "PUSH_CORE_AUTH_REQUIRED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Identity")]
    pub auth_required: Option<String>,

    /// How long to wait for the auth URL [default: 2s]
    #[arg(
        long,
        env = "PUSH_CORE_AUTH_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Identity"
    )]
    pub auth_timeout: Option<String>,

    /// How long an auth answer is reused for the same cookies; 0 disables
    /// the cache [default: 30s]
    #[arg(
        long,
        env = "PUSH_CORE_AUTH_CACHE_TTL",
        value_name = "DURATION",
        help_heading = "Identity"
    )]
    pub auth_cache_ttl: Option<String>,

    /// Most auth answers kept in the cache [default: 100000]
    #[arg(
        long,
        env = "PUSH_CORE_AUTH_CACHE_SIZE",
        value_name = "N",
        help_heading = "Identity"
    )]
    pub auth_cache_size: Option<String>,

    /// Most calls to the auth URL in flight at once [default: 32]
    #[arg(
        long,
        env = "PUSH_CORE_AUTH_MAX_CONCURRENCY",
        value_name = "N",
        help_heading = "Identity"
    )]
    pub auth_max_concurrency: Option<String>,

    /// Most browser connections in total; 0 for no limit [default: 100000]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_connections: Option<String>,

    /// Most browser connections from one IP address; 0 for no limit
    /// (the default: behind a proxy every browser has the proxy's address)
    #[arg(
        long,
        env = "PUSH_CORE_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_connections_per_ip: Option<String>,

    /// New connections one IP address may open per minute; 0 for no limit
    /// [default: 0]
    #[arg(
        long,
        env = "PUSH_CORE_HANDSHAKES_PER_IP_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub handshakes_per_ip_per_minute: Option<String>,

    /// Largest packet a browser may send, in bytes [default: 16384]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_CLIENT_PACKET",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub max_client_packet: Option<String>,

    /// Events a browser may emit per minute (they are ignored) before it is
    /// disconnected [default: 60]
    #[arg(
        long,
        env = "PUSH_CORE_CLIENT_EVENTS_PER_MINUTE",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub client_events_per_minute: Option<String>,

    /// Most rooms the auth URL may put one connection in [default: 64]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_ROOMS_PER_CONNECTION",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_rooms_per_connection: Option<String>,

    /// Messages queued for a connection that does not keep up before
    /// further ones are dropped for it [default: 1024]
    #[arg(
        long,
        env = "PUSH_CORE_MAX_BUFFERED_MESSAGES",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_buffered_messages: Option<String>,

    /// A proxy (address or CIDR range) whose X-Forwarded-For / Forwarded
    /// header names the browser's address for per-IP limits; repeat for
    /// more (comma-separated in the environment) [default: 127.0.0.0/8, ::1]
    #[arg(
        long = "trusted-proxy",
        env = "PUSH_CORE_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ',',
        help_heading = "Limits"
    )]
    pub trusted_proxies: Vec<String>,

    /// Log format: text or json [default: text]
    #[arg(long, env = "PUSH_CORE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log level or tracing filter, e.g. `info` or `push_core=debug`
    /// [default: info]
    #[arg(long, env = "PUSH_CORE_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The same settings as found in the config file. Scalars are kept as TOML
/// values so that `"0660"` and `0660`, `"30s"` and `30` all work, and unknown
/// keys are refused so a typo is reported instead of silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<toml::Value>,
    namespaces: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    socket: Option<toml::Value>,
    socket_mode: Option<toml::Value>,
    socket_group: Option<toml::Value>,
    publisher_uids: Option<Vec<toml::Value>>,
    publisher_gids: Option<Vec<toml::Value>>,
    max_frame_size: Option<toml::Value>,
    max_publishers: Option<toml::Value>,
    http_publish_token: Option<toml::Value>,
    auth_url: Option<toml::Value>,
    auth_required: Option<toml::Value>,
    auth_timeout: Option<toml::Value>,
    auth_cache_ttl: Option<toml::Value>,
    auth_cache_size: Option<toml::Value>,
    auth_max_concurrency: Option<toml::Value>,
    max_connections: Option<toml::Value>,
    max_connections_per_ip: Option<toml::Value>,
    handshakes_per_ip_per_minute: Option<toml::Value>,
    max_client_packet: Option<toml::Value>,
    client_events_per_minute: Option<toml::Value>,
    max_rooms_per_connection: Option<toml::Value>,
    max_buffered_messages: Option<toml::Value>,
    trusted_proxies: Option<Vec<String>>,
    log_format: Option<toml::Value>,
    log_level: Option<toml::Value>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
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
        Self {
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: 0,
            handshakes_per_ip_per_minute: 0,
            max_client_packet: defaults::MAX_CLIENT_PACKET,
            client_events_per_minute: defaults::CLIENT_EVENTS_PER_MINUTE,
            max_rooms_per_connection: defaults::MAX_ROOMS_PER_CONNECTION,
            max_buffered_messages: defaults::MAX_BUFFERED_MESSAGES,
            trusted_proxies: defaults::trusted_proxies(),
        }
    }
}

/// The checked, complete configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Always starts with `/`, which socket.io clients join by default.
    pub namespaces: Vec<String>,
    /// Empty means every origin may connect.
    pub allowed_origins: Vec<String>,
    pub publish: PublishSettings,
    pub auth: Option<AuthSettings>,
    pub limits: ClientLimits,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Config {
    /// The defaults, with the publish socket at `socket`. Handy for
    /// embedding and tests.
    pub fn with_socket(socket: impl Into<PathBuf>) -> Self {
        Self {
            listen: default_listen(),
            namespaces: vec!["/".to_owned()],
            allowed_origins: Vec::new(),
            publish: PublishSettings {
                socket: socket.into(),
                socket_mode: defaults::SOCKET_MODE,
                socket_group: None,
                allowed_uids: Vec::new(),
                allowed_gids: Vec::new(),
                max_frame_size: push_client::DEFAULT_MAX_FRAME_SIZE,
                max_publishers: defaults::MAX_PUBLISHERS,
                http_token: None,
            },
            auth: None,
            limits: ClientLimits::default(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
        }
    }
}

/// A setting that cannot be used, named the way the user wrote it.
#[derive(Debug, Error)]
#[error("invalid value for {key} (--{flag} / PUSH_CORE_{env}): {message}")]
pub struct ConfigError {
    key: &'static str,
    flag: String,
    env: String,
    message: String,
}

impl ConfigError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        let flag = match key {
            "namespaces" => "namespace".to_owned(),
            "allowed_origins" => "allowed-origin".to_owned(),
            "publisher_uids" => "publisher-uid".to_owned(),
            "publisher_gids" => "publisher-gid".to_owned(),
            "trusted_proxies" => "trusted-proxy".to_owned(),
            other => other.replace('_', "-"),
        };
        Self {
            key,
            flag,
            env: key.to_uppercase(),
            message: message.into(),
        }
    }
}

/// Errors reading the config file itself.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Anything that keeps the configuration from being resolved.
#[derive(Debug, Error)]
pub enum ResolveError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Value(#[from] ConfigError),
}

/// Reads one scalar setting: the command line (or environment) wins over
/// the file; no value at all gives the default.
fn setting<T>(
    key: &'static str,
    command_line: Option<String>,
    file: Option<toml::Value>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match command_line.or_else(|| file.map(toml_to_text)) {
        Some(text) => parse(&text).map_err(|message| ConfigError::new(key, message)),
        None => Ok(default),
    }
}

/// Reads one list setting; a list on the command line replaces the file's.
fn list_setting<T>(
    key: &'static str,
    command_line: Vec<String>,
    file: Option<Vec<String>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let items = if command_line.is_empty() {
        file.unwrap_or_default()
    } else {
        command_line
    };
    items
        .iter()
        .map(|item| parse(item).map_err(|message| ConfigError::new(key, message)))
        .collect()
}

impl ServeArgs {
    /// Merges flags, environment (already folded in by clap), the config
    /// file and defaults, and checks every value.
    pub fn resolve(self) -> Result<Config, ResolveError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let texts = |values: Option<Vec<toml::Value>>| {
            values.map(|v| v.into_iter().map(toml_to_text).collect())
        };

        let listen = setting(
            "listen",
            self.listen,
            file.listen,
            default_listen(),
            |text| {
                text.trim()
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{text:?} is not an address like 127.0.0.1:3000 ({e})"))
            },
        )?;

        let mut namespaces = vec!["/".to_owned()];
        for namespace in list_setting(
            "namespaces",
            self.namespaces,
            file.namespaces,
            check_namespace,
        )? {
            if !namespaces.contains(&namespace) {
                namespaces.push(namespace);
            }
        }
        let allowed_origins = list_setting(
            "allowed_origins",
            self.allowed_origins,
            file.allowed_origins,
            normalize_origin,
        )?;

        let publish = PublishSettings {
            socket: setting(
                "socket",
                self.socket.map(|p| p.to_string_lossy().into_owned()),
                file.socket,
                PathBuf::from(push_client::DEFAULT_SOCKET_PATH),
                parse_path,
            )?,
            socket_mode: setting(
                "socket_mode",
                self.socket_mode,
                file.socket_mode,
                defaults::SOCKET_MODE,
                parse_mode,
            )?,
            socket_group: setting(
                "socket_group",
                self.socket_group,
                file.socket_group,
                None,
                |text| parse_group(text, Path::new("/etc/group")).map(Some),
            )?,
            allowed_uids: list_setting(
                "publisher_uids",
                self.publisher_uids,
                texts(file.publisher_uids),
                parse_id,
            )?,
            allowed_gids: list_setting(
                "publisher_gids",
                self.publisher_gids,
                texts(file.publisher_gids),
                parse_id,
            )?,
            max_frame_size: setting(
                "max_frame_size",
                self.max_frame_size,
                file.max_frame_size,
                push_client::DEFAULT_MAX_FRAME_SIZE,
                parse_frame_size,
            )?,
            max_publishers: setting(
                "max_publishers",
                self.max_publishers,
                file.max_publishers,
                defaults::MAX_PUBLISHERS,
                parse_max_publishers,
            )?,
            http_token: setting(
                "http_publish_token",
                self.http_publish_token,
                file.http_publish_token,
                None,
                |text| parse_token(text).map(Some),
            )?,
        };

        let auth_required = setting(
            "auth_required",
            self.auth_required,
            file.auth_required,
            false,
            parse_bool,
        )?;
        let auth_url = setting("auth_url", self.auth_url, file.auth_url, None, |text| {
            parse_auth_url(text).map(Some)
        })?;
        let auth_timeout = setting(
            "auth_timeout",
            self.auth_timeout,
            file.auth_timeout,
            defaults::AUTH_TIMEOUT,
            |text| {
                parse_duration(text).and_then(|d| {
                    if d.is_zero() {
                        Err("must be more than 0".to_owned())
                    } else {
                        Ok(d)
                    }
                })
            },
        )?;
        let auth_cache_ttl = setting(
            "auth_cache_ttl",
            self.auth_cache_ttl,
            file.auth_cache_ttl,
            defaults::AUTH_CACHE_TTL,
            parse_duration,
        )?;
        let auth_cache_size = setting(
            "auth_cache_size",
            self.auth_cache_size,
            file.auth_cache_size,
            defaults::AUTH_CACHE_SIZE,
            parse_count,
        )?;
        let auth_max_concurrency = setting(
            "auth_max_concurrency",
            self.auth_max_concurrency,
            file.auth_max_concurrency,
            defaults::AUTH_MAX_CONCURRENCY,
            |text| parse_count(text).and_then(at_least_one),
        )?;
        let auth = match auth_url {
            Some(url) => Some(AuthSettings {
                url,
                required: auth_required,
                timeout: auth_timeout,
                cache_ttl: auth_cache_ttl,
                cache_size: auth_cache_size,
                max_concurrency: auth_max_concurrency,
            }),
            None if auth_required => {
                return Err(ConfigError::new(
                    "auth_required",
                    "is set but auth_url is not; every connection would be refused",
                )
                .into());
            }
            None => None,
        };

        let limits = ClientLimits {
            max_connections: setting(
                "max_connections",
                self.max_connections,
                file.max_connections,
                defaults::MAX_CONNECTIONS,
                parse_count,
            )?,
            max_connections_per_ip: setting(
                "max_connections_per_ip",
                self.max_connections_per_ip,
                file.max_connections_per_ip,
                0,
                parse_count,
            )?,
            handshakes_per_ip_per_minute: setting(
                "handshakes_per_ip_per_minute",
                self.handshakes_per_ip_per_minute,
                file.handshakes_per_ip_per_minute,
                0,
                parse_number,
            )?,
            max_client_packet: setting(
                "max_client_packet",
                self.max_client_packet,
                file.max_client_packet,
                defaults::MAX_CLIENT_PACKET,
                |text| {
                    parse_count(text).and_then(|n| {
                        if n >= 1024 {
                            Ok(n)
                        } else {
                            Err(format!("{n} is below the minimum of 1024 bytes"))
                        }
                    })
                },
            )?,
            client_events_per_minute: setting(
                "client_events_per_minute",
                self.client_events_per_minute,
                file.client_events_per_minute,
                defaults::CLIENT_EVENTS_PER_MINUTE,
                parse_number,
            )?,
            max_rooms_per_connection: setting(
                "max_rooms_per_connection",
                self.max_rooms_per_connection,
                file.max_rooms_per_connection,
                defaults::MAX_ROOMS_PER_CONNECTION,
                parse_count,
            )?,
            max_buffered_messages: setting(
                "max_buffered_messages",
                self.max_buffered_messages,
                file.max_buffered_messages,
                defaults::MAX_BUFFERED_MESSAGES,
                |text| parse_count(text).and_then(at_least_one),
            )?,
            trusted_proxies: if self.trusted_proxies.is_empty() && file.trusted_proxies.is_none() {
                defaults::trusted_proxies()
            } else {
                list_setting(
                    "trusted_proxies",
                    self.trusted_proxies,
                    file.trusted_proxies,
                    parse_proxy,
                )?
            },
        };

        let log_format = setting(
            "log_format",
            self.log_format,
            file.log_format,
            LogFormat::Text,
            |text| {
                LogFormat::from_str(text, true)
                    .map_err(|_| format!("{text:?} is not one of: text, json"))
            },
        )?;
        let log_level = setting(
            "log_level",
            self.log_level,
            file.log_level,
            "info".to_owned(),
            |text| {
                tracing_subscriber::EnvFilter::try_new(text)
                    .map(|_| text.to_owned())
                    .map_err(|e| format!("{text:?} is not a level or filter ({e})"))
            },
        )?;

        Ok(Config {
            listen,
            namespaces,
            allowed_origins,
            publish,
            auth,
            limits,
            log_format,
            log_level,
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigFileError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Numbers may be written as TOML integers or strings; read both as text.
fn toml_to_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        Err("the path is empty".to_owned())
    } else {
        Ok(PathBuf::from(text))
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{text:?} is not an octal file mode like 0660")),
    }
}

fn parse_number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse::<T>()
        .map_err(|_| format!("{text:?} is not a whole number in range"))
}

fn parse_count(text: &str) -> Result<usize, String> {
    parse_number(text)
}

fn at_least_one(n: usize) -> Result<usize, String> {
    if n >= 1 {
        Ok(n)
    } else {
        Err("must be at least 1".to_owned())
    }
}

fn parse_id(text: &str) -> Result<u32, String> {
    parse_number(text)
}

/// A group name is looked up in `group_file`; a number is taken as is.
fn parse_group(text: &str, group_file: &Path) -> Result<u32, String> {
    if let Ok(gid) = text.trim().parse::<u32>() {
        return Ok(gid);
    }
    let groups = fs::read_to_string(group_file)
        .map_err(|e| format!("cannot read {}: {e}", group_file.display()))?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?;
            (name == text.trim())
                .then(|| gid.parse::<u32>().ok())
                .flatten()
        })
        .next()
        .ok_or_else(|| format!("no group named {text:?}"))
}

/// Each publisher connection is a thread: the upper bound keeps a typo from
/// allowing a number no machine could run.
fn parse_max_publishers(text: &str) -> Result<usize, String> {
    const MAX: usize = 65_536;
    match parse_count(text)? {
        0 => Err("must be at least 1".to_owned()),
        n if n > MAX => Err(format!(
            "{n} is over the most this daemon allows, {MAX}: each publisher connection is a thread"
        )),
        n => Ok(n),
    }
}

fn parse_frame_size(text: &str) -> Result<u32, String> {
    /// Smaller than this cannot hold a HELLO and a useful publish.
    const MIN: u32 = 1024;
    match text.trim().parse::<u32>() {
        Ok(size) if size >= MIN => Ok(size),
        Ok(_) => Err(format!("{text} is below the minimum of {MIN} bytes")),
        Err(_) => Err(format!(
            "{text:?} is not a number of bytes up to {}",
            u32::MAX
        )),
    }
}

/// Long enough that guessing is hopeless; printable so it fits a header.
fn parse_token(text: &str) -> Result<String, String> {
    const MIN_LEN: usize = 32;
    if text.len() < MIN_LEN {
        return Err(format!(
            "the token must be at least {MIN_LEN} characters (for example `openssl rand -hex 32`)"
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token may hold only printable ASCII without spaces".to_owned());
    }
    Ok(text.to_owned())
}

/// An address (`10.0.0.1`) or a CIDR range (`10.0.0.0/8`).
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR range like 10.0.0.0/8"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

/// Accepts `500ms`, `2s`, `5m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 5m"))
}

fn parse_auth_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

fn check_namespace(namespace: &str) -> Result<String, String> {
    let valid = namespace.starts_with('/')
        && namespace.len() > 1
        && !namespace
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '?' || c == '#');
    if valid {
        Ok(namespace.to_owned())
    } else {
        Err(format!(
            "{namespace:?} is not a namespace; it must start with '/', like /notifications, and hold no spaces, commas, '?' or '#'"
        ))
    }
}

/// Browsers send `Origin: scheme://host[:port]` with no path or trailing
/// slash; store allowed origins in exactly that form so comparison is a
/// plain string match.
fn normalize_origin(text: &str) -> Result<String, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("{text:?} is not an origin like https://www.example.com ({e})"))?;
    let has_path = !matches!(url.path(), "" | "/");
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || has_path
        || url.query().is_some()
    {
        return Err(format!(
            "{text:?} is not an origin like https://www.example.com (scheme and host only)"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs::default()
    }

    #[test]
    fn defaults_resolve() {
        let config = args().resolve().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            config.publish.socket,
            PathBuf::from(push_client::DEFAULT_SOCKET_PATH)
        );
        assert_eq!(config.publish.socket_mode, 0o660);
        assert_eq!(config.namespaces, vec!["/"]);
        assert!(config.auth.is_none());
        assert!(config.publish.http_token.is_none());
        assert_eq!(config.limits.max_connections, defaults::MAX_CONNECTIONS);
    }

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("push.toml");
        fs::write(
            &path,
            "listen = \"127.0.0.1:4000\"\nsocket_mode = \"0600\"\nnamespaces = [\"/a\"]\nmax_connections = 5\npublisher_uids = [33]\n",
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:5000".into()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.publish.socket_mode, 0o600);
        assert_eq!(config.namespaces, vec!["/", "/a"]);
        assert_eq!(config.limits.max_connections, 5);
        assert_eq!(config.publish.allowed_uids, vec![33]);
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("push.toml");
        fs::write(&path, "lisen = \"x\"\n").unwrap();
        let error = ServeArgs {
            config: Some(path),
            ..args()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(ServeArgs, &str)> = vec![
            (
                ServeArgs {
                    listen: Some("nowhere".into()),
                    ..args()
                },
                "listen",
            ),
            (
                ServeArgs {
                    socket_mode: Some("999".into()),
                    ..args()
                },
                "socket_mode",
            ),
            (
                ServeArgs {
                    socket_group: Some("no-such-group-here".into()),
                    ..args()
                },
                "socket_group",
            ),
            (
                ServeArgs {
                    namespaces: vec!["chat".into()],
                    ..args()
                },
                "namespaces",
            ),
            (
                ServeArgs {
                    max_frame_size: Some("12".into()),
                    ..args()
                },
                "max_frame_size",
            ),
            (
                ServeArgs {
                    http_publish_token: Some("short".into()),
                    ..args()
                },
                "http_publish_token",
            ),
            (
                ServeArgs {
                    auth_url: Some("ftp://x".into()),
                    ..args()
                },
                "auth_url",
            ),
            (
                ServeArgs {
                    auth_required: Some("true".into()),
                    ..args()
                },
                "auth_required",
            ),
            (
                ServeArgs {
                    auth_timeout: Some("soon".into()),
                    ..args()
                },
                "auth_timeout",
            ),
            (
                ServeArgs {
                    max_connections: Some("-1".into()),
                    ..args()
                },
                "max_connections",
            ),
            (
                ServeArgs {
                    max_client_packet: Some("10".into()),
                    ..args()
                },
                "max_client_packet",
            ),
            (
                ServeArgs {
                    publisher_uids: vec!["root".into()],
                    ..args()
                },
                "publisher_uids",
            ),
            (
                ServeArgs {
                    allowed_origins: vec!["https://a.example/path".into()],
                    ..args()
                },
                "allowed_origins",
            ),
            (
                ServeArgs {
                    log_format: Some("xml".into()),
                    ..args()
                },
                "log_format",
            ),
        ];
        for (args, key) in cases {
            let error = args.resolve().unwrap_err().to_string();
            assert!(error.contains(key), "{error} should name {key}");
        }
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group");
        fs::write(&path, "root:x:0:\nwww-data:x:33:\n").unwrap();
        assert_eq!(parse_group("www-data", &path).unwrap(), 33);
        assert_eq!(parse_group("1000", &path).unwrap(), 1000);
        assert!(parse_group("nobody-here", &path).is_err());
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("https://Example.COM/").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            normalize_origin("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }
}

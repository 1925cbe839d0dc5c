//! Where the daemon's settings come from: flags, the environment and the
//! TOML file, over the defaults of [`Config`].
//!
//! The first source that sets a key wins, in this order: a command-line
//! flag, an environment variable `PUSH_CORE_<KEY>`, the file named by
//! `--config`. Each layer is merged whole by figment, so no setting needs
//! code of its own here beyond its flag.
//!
//! Every value is read by the same types whatever its source (see
//! `push_core::config::values`): the flags parse text with them (clap's
//! typed value parsers), the environment hands them text as written, and
//! the file hands them TOML values (`socket_mode = 0o660` is the mode
//! 0o660; `"0660"` is octal text).

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use figment::providers::Serialized;
use figment::value::{Dict, Value};
use push_core::config::values::{duration, parse_bool, parse_listen, parse_number};
use push_core::config::{
    AdapterKind, AdminUiMode, AuthUrl, ByteCount, Config, ConfigError, FileMode, LogFormat,
    Namespace, NodeId, Origin, PasswordHash, ProxyRange, RedisUrl, Secret, SocketGroup,
};
use serde::Serialize;
use thiserror::Error;

use crate::default_socket;

/// Flags of `push-core serve`. Each is optional, so that a flag left out
/// leaves the key to the environment, the file or the default.
#[derive(Debug, Default, Clone, Args, Serialize)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as in
    /// docs/configuration.md, e.g. `auth_url = "..."`).
    #[arg(long, env = "PUSH_CORE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Print the effective settings (secrets hidden) as TOML, and exit
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// Address for socket.io, /healthz, /readyz, and /metrics unless
    /// --admin-listen is set [default: 127.0.0.1:3000]
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    listen: Option<SocketAddr>,

    /// Address of an admin listener serving only /metrics, /healthz,
    /// /readyz and the Admin UI's page (--admin-ui-files), e.g.
    /// 127.0.0.1:9464; when set, /metrics leaves --listen. Unset: no admin
    /// listener
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    admin_listen: Option<SocketAddr>,

    /// A socket.io namespace to serve besides `/`; repeat for more
    /// (comma-separated in the environment)
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<Namespace>,

    /// A web origin (scheme://host[:port]) whose pages may connect; repeat
    /// for more (comma-separated in the environment). Unset: any origin.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<Origin>,

    /// Unix socket the site publishes on. Default: /run/push-core/push.sock
    /// as root; for other users $XDG_RUNTIME_DIR/push-core/push.sock, or
    /// /tmp/push-core-UID/push.sock without XDG_RUNTIME_DIR
    #[arg(long, value_name = "PATH", help_heading = "Publishing")]
    socket: Option<PathBuf>,

    /// Permissions of the publish socket file, in octal; a mode that lets
    /// others write needs --allow-world-writable-socket [default: 0660]
    #[arg(long, value_name = "MODE", help_heading = "Publishing")]
    socket_mode: Option<FileMode>,

    /// Allow a socket mode that lets every local user publish, when
    /// --publisher-uid / --publisher-gid decide who may
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, help_heading = "Publishing")]
    allow_world_writable_socket: Option<bool>,

    /// Group (name or id) given the publish socket file, e.g. www-data
    #[arg(long, value_name = "GROUP", help_heading = "Publishing")]
    socket_group: Option<SocketGroup>,

    /// Only processes of this user id may publish; repeat for more
    #[arg(
        long = "publisher-uid",
        value_name = "UID", value_parser = parse_number::<u32>,
        help_heading = "Publishing"
    )]
    publisher_uids: Vec<u32>,

    /// Only processes of this group id may publish; repeat for more
    #[arg(
        long = "publisher-gid",
        value_name = "GID", value_parser = parse_number::<u32>,
        help_heading = "Publishing"
    )]
    publisher_gids: Vec<u32>,

    /// Largest publish frame accepted, in bytes or with a unit (1MiB)
    /// [default: 1048576]
    #[arg(long, value_name = "BYTES", help_heading = "Publishing")]
    max_frame_size: Option<ByteCount>,

    /// Most publisher connections at once; more are refused with
    /// too_many_publishers [default: 4096]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Publishing")]
    max_publishers: Option<usize>,

    /// Secret that turns on the HTTP publish API (POST /api/publish, ...)
    /// for app servers on other hosts; at least 32 characters. Unset: off.
    #[arg(long, value_name = "SECRET", help_heading = "Publishing")]
    http_publish_token: Option<Secret>,

    /// Site URL asked who a connecting browser is (its cookies are forwarded)
    #[arg(long, value_name = "URL", help_heading = "Identity")]
    auth_url: Option<AuthUrl>,

    /// Refuse connections that the site does not identify as a user
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, help_heading = "Identity")]
    auth_required: Option<bool>,

    /// How long to wait for the auth URL [default: 2s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Identity")]
    #[serde(with = "humantime_serde::option")]
    auth_timeout: Option<Duration>,

    /// How long an auth answer is reused for the same cookies; 0 disables
    /// the cache [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Identity")]
    #[serde(with = "humantime_serde::option")]
    auth_cache_ttl: Option<Duration>,

    /// Most auth answers kept in the cache [default: 100000]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Identity")]
    auth_cache_size: Option<usize>,

    /// Most calls to the auth URL in flight at once [default: 32]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Identity")]
    auth_max_concurrency: Option<usize>,

    /// Background attempts to identify a connection the auth URL could not
    /// identify at connect [default: 10]
    #[arg(long, value_name = "N", value_parser = parse_number::<u32>, help_heading = "Identity")]
    auth_retry_attempts: Option<u32>,

    /// Longest wait between two background attempts [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Identity")]
    #[serde(with = "humantime_serde::option")]
    auth_retry_backoff_max: Option<Duration>,

    /// How long a background attempt may wait for a free call slot
    /// [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Identity")]
    #[serde(with = "humantime_serde::option")]
    auth_retry_slot_wait: Option<Duration>,

    /// Most browser connections in total; 0 for no limit [default: 100000]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Limits")]
    max_connections: Option<usize>,

    /// Most browser connections from one IP address (an IPv6 /64); 0 for
    /// no limit [default: 500]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Limits")]
    max_connections_per_ip: Option<usize>,

    /// New connections one IP address (an IPv6 /64) may open per minute;
    /// 0 for no limit [default: 600]
    #[arg(long, value_name = "N", value_parser = parse_number::<u32>, help_heading = "Limits")]
    handshakes_per_ip_per_minute: Option<u32>,

    /// Largest packet a browser may send, in bytes or with a unit
    /// [default: 16384]
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    max_client_packet: Option<ByteCount>,

    /// Events a browser may emit per minute (they are ignored) before it is
    /// disconnected [default: 60]
    #[arg(long, value_name = "N", value_parser = parse_number::<u32>, help_heading = "Limits")]
    client_events_per_minute: Option<u32>,

    /// Most rooms the auth URL may put one connection in [default: 64]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Limits")]
    max_rooms_per_connection: Option<usize>,

    /// Messages queued for a connection that does not keep up before
    /// further ones are dropped for it [default: 1024]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Limits")]
    max_buffered_messages: Option<usize>,

    /// How often the server pings a browser, e.g. 25s; announced in the
    /// handshake as pingInterval [default: 25s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Connections")]
    #[serde(with = "humantime_serde::option")]
    ping_interval: Option<Duration>,

    /// How long a ping may go unanswered before the connection is closed;
    /// announced as pingTimeout [default: 20s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Connections")]
    #[serde(with = "humantime_serde::option")]
    ping_timeout: Option<Duration>,

    /// How long a connection may stay without joining a namespace before
    /// it is closed [default: 45s]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Connections")]
    #[serde(with = "humantime_serde::option")]
    connect_timeout: Option<Duration>,

    /// A proxy (address or CIDR range) whose X-Forwarded-For / Forwarded
    /// header names the browser's address for per-IP limits; repeat for
    /// more (comma-separated in the environment) [default: 127.0.0.0/8, ::1]
    #[arg(long = "trusted-proxy", value_name = "CIDR", help_heading = "Limits")]
    trusted_proxies: Vec<ProxyRange>,

    /// How long published messages are kept for pages that reconnect, e.g.
    /// 2m; 0 turns recovery off [default: 2m]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Recovery")]
    #[serde(with = "humantime_serde::option")]
    recovery_window: Option<Duration>,

    /// Most messages kept per namespace for recovery [default: 100000]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Recovery")]
    recovery_max_messages: Option<usize>,

    /// Most memory the recovery history takes, all namespaces together
    /// [default: 64MiB]
    #[arg(long, value_name = "SIZE", help_heading = "Recovery")]
    recovery_max_memory: Option<ByteCount>,

    /// Most messages replayed to one connection; a page that missed more is
    /// told to reload its state [default: 10000]
    #[arg(long, value_name = "N", value_parser = parse_number::<usize>, help_heading = "Recovery")]
    recovery_max_replay: Option<usize>,

    /// Directory (made 0700 if missing) where the recovery history is kept,
    /// so a restart loses no message; unset: memory only
    #[arg(long, value_name = "DIR", help_heading = "Recovery")]
    state_dir: Option<PathBuf>,

    /// A socket.io client bundle to serve at /socket.io/socket.io.js, for
    /// pages that load it from the server (old pages: the 1.x or 2.x bundle
    /// of the socket.io-client npm package). Unset: not served.
    #[arg(long, value_name = "FILE")]
    client_script: Option<PathBuf>,

    /// memory (one node on its own) or redis (several nodes sharing
    /// publishes, counts and history through Redis; docs/scaling.md)
    /// [default: memory]
    #[arg(long, value_name = "KIND", help_heading = "Cluster")]
    adapter: Option<AdapterKind>,

    /// The cluster's Redis (needs --adapter redis): redis://HOST[:PORT][/DB],
    /// rediss:// (TLS), redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER or
    /// redis+cluster://HOST:PORT[,HOST:PORT...]; docs/scaling.md
    #[arg(long, value_name = "URL", help_heading = "Cluster")]
    redis_url: Option<RedisUrl>,

    /// This node's name in logs, metrics and partial answers [default: the
    /// host name]
    #[arg(long, value_name = "NAME", help_heading = "Cluster")]
    node_id: Option<NodeId>,

    /// Prefix of every Redis key and channel the cluster uses, so that
    /// sites can share one Redis [default: push-core]
    #[arg(long, value_name = "PREFIX", help_heading = "Cluster")]
    redis_prefix: Option<String>,

    /// How long STATS waits for the other nodes' figures, e.g. 300ms
    /// [default: 300ms]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, help_heading = "Cluster")]
    #[serde(with = "humantime_serde::option")]
    cluster_wait: Option<Duration>,

    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. `info` or `push_core=debug`
    /// [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,

    /// User name for the socket.io Admin UI; with --admin-ui-password-hash,
    /// turns on its /admin namespace on --listen. Unset: off
    #[arg(long, value_name = "NAME", help_heading = "Admin UI")]
    admin_ui_username: Option<String>,

    /// bcrypt hash of the Admin UI's password, e.g. from `php -r 'echo
    /// password_hash(trim(fgets(STDIN)), PASSWORD_BCRYPT);'`; never printed
    #[arg(long, value_name = "HASH", help_heading = "Admin UI")]
    admin_ui_password_hash: Option<PasswordHash>,

    /// readonly (figures and charts) or full (also every connection, and
    /// disconnect, join, leave and emit; docs/security.md) [default:
    /// readonly]
    #[arg(long, value_name = "MODE", help_heading = "Admin UI")]
    admin_ui_mode: Option<AdminUiMode>,

    /// The Admin UI's page, the ui/dist directory of the npm package
    /// @socket.io/admin-ui (the Debian package ships it in
    /// /usr/share/push-core/admin-ui), served at /admin-ui/ on
    /// --admin-listen. Unset: not served
    #[arg(long, value_name = "DIR", help_heading = "Admin UI")]
    admin_ui_files: Option<PathBuf>,
}

/// Why the settings could not be read.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Value(#[from] ConfigError),
}

/// The prefix of the environment variables that hold settings.
const ENV_PREFIX: &str = "PUSH_CORE_";

impl ServeArgs {
    /// Merges the defaults, the file, the environment and the flags, and
    /// checks every value.
    pub fn resolve(self) -> Result<Config, SettingsError> {
        // The socket's default depends on who runs the daemon; the tools
        // apply the same rule (see `default_socket`).
        let mut builder = Config::builder().set("socket", default_socket::for_this_user());
        if let Some(path) = &self.config {
            builder = builder.merge(Serialized::globals(read_file(path)?));
        }
        let flags = given(&self);
        let config = builder
            .merge(Serialized::globals(environment(std::env::vars())))
            .merge(Serialized::globals(flags))
            .build()
            .map_err(|error| match error {
                ConfigError::Unknown { key } => SettingsError::File {
                    path: self.config.clone().unwrap_or_default(),
                    message: format!(
                        "unknown setting `{key}`; the settings are listed in docs/configuration.md"
                    ),
                },
                other => SettingsError::Value(other),
            })?;
        check_log_level(&config.log_level)?;
        Ok(config)
    }
}

impl ServeArgs {
    /// The settings given as flags, as TOML values (for `config-template`).
    pub fn given_as_toml(&self) -> toml::Table {
        toml::Table::try_from(given(self)).unwrap_or_default()
    }
}

/// The effective settings as a TOML file would write them, secrets
/// hidden. Unset optional settings are left out.
pub fn printable(config: &Config) -> String {
    toml::to_string(&config.with_secrets_hidden())
        .unwrap_or_else(|error| format!("# the settings could not be written as TOML: {error}\n"))
}

/// The file's settings, as TOML values.
fn read_file(path: &Path) -> Result<toml::Table, SettingsError> {
    let text = fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| SettingsError::File {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// The settings in `PUSH_CORE_<KEY>` variables, as the text written. Other
/// `PUSH_CORE_*` variables are not settings (`PUSH_CORE_CONFIG` names the
/// file) and are left alone. A list setting takes comma-separated items.
fn environment(vars: impl Iterator<Item = (String, String)>) -> Dict {
    let variables: BTreeMap<String, String> = vars.collect();
    Config::keys()
        .iter()
        .filter_map(|key| {
            let text = variables.get(&format!("{ENV_PREFIX}{}", key.to_uppercase()))?;
            let value = if Config::is_list_key(key) {
                Value::from(
                    text.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(Value::from)
                        .collect::<Vec<_>>(),
                )
            } else {
                Value::from(text.as_str())
            };
            Some(((*key).to_owned(), value))
        })
        .collect()
}

/// The flags that were given: an absent flag or an empty list sets nothing.
fn given(args: &ServeArgs) -> Dict {
    let Ok(Value::Dict(_, flags)) = Value::serialize(args) else {
        return Dict::new();
    };
    flags
        .into_iter()
        .filter(|(_, value)| match value {
            Value::Empty(..) => false,
            Value::Array(_, items) => !items.is_empty(),
            _ => true,
        })
        .collect()
}

fn check_log_level(level: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(drop)
        .map_err(|e| {
            ConfigError::value(
                "log_level",
                format!("{level:?} is not a level or filter ({e})"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn flags(args: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|cli| cli.serve)
            .unwrap()
    }

    #[test]
    fn every_key_has_a_flag() {
        let command = <Cli as clap::CommandFactory>::command();
        for key in Config::keys() {
            let flag = push_core::config::flag_for(key);
            assert!(
                command
                    .get_arguments()
                    .any(|arg| arg.get_long() == Some(&flag)),
                "no --{flag} for {key}"
            );
        }
    }

    #[test]
    fn only_given_flags_are_layered() {
        let layer = given(&flags(&["--socket-mode", "0600", "--namespace", "/a"]));
        assert_eq!(
            layer.keys().map(String::as_str).collect::<Vec<_>>(),
            ["namespaces", "socket_mode"]
        );
    }

    #[test]
    fn the_environment_is_text_and_lists_split_on_commas() {
        let env = environment(
            [
                ("PUSH_CORE_SOCKET_MODE", "0640"),
                ("PUSH_CORE_NAMESPACES", "/a, /b"),
                ("PUSH_CORE_CONFIG", "/etc/push.toml"),
                ("PUSH_CORE_TEST_LOGS", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(env.len(), 2);
        let config = Config::builder()
            .merge(Serialized::globals(env))
            .build()
            .unwrap();
        assert_eq!(config.socket_mode.bits(), 0o640);
        assert_eq!(config.served_namespaces(), ["/", "/a", "/b"]);
    }

    #[test]
    fn the_file_reads_modes_as_toml_writes_them() {
        for (text, mode) in [
            ("socket_mode = 0o640\n", 0o640),
            ("socket_mode = \"0640\"\n", 0o640),
            ("socket_mode = \"640\"\n", 0o640),
            ("socket_mode = 416\n", 0o640),
        ] {
            let table: toml::Table = toml::from_str(text).unwrap();
            let config = Config::builder()
                .merge(Serialized::globals(table))
                .build()
                .unwrap();
            assert_eq!(config.socket_mode.bits(), mode, "{text}");
        }
        let table: toml::Table = toml::from_str("socket_mode = 0o666\n").unwrap();
        let error = Config::builder()
            .merge(Serialized::globals(table))
            .build()
            .unwrap_err();
        assert_eq!(error.key(), "socket_mode");
    }
}

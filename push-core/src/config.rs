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
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use thiserror::Error;
use url::Url;

/// Defaults, named so the help text and the docs can quote them.
pub mod defaults {
    use std::time::Duration;

    pub const LISTEN: &str = "127.0.0.1:3000";
    pub const SOCKET_MODE: u32 = 0o660;
    pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);
    /// Enough for every tab of a busy site's online users; each entry is a
    /// hash, a user id and a few room names.
    pub const AUTH_CACHE_SIZE: usize = 100_000;
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

    /// Unix socket the site publishes on [default: /run/push-core/push.sock]
    #[arg(long, env = "PUSH_CORE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Permissions of the publish socket file, in octal [default: 0660]
    #[arg(long, env = "PUSH_CORE_SOCKET_MODE", value_name = "MODE")]
    pub socket_mode: Option<String>,

    /// A socket.io namespace to serve besides `/`; repeat for more
    /// (comma-separated in the environment)
    #[arg(
        long = "namespace",
        env = "PUSH_CORE_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// Largest publish frame accepted, in bytes [default: 1048576]
    #[arg(long, env = "PUSH_CORE_MAX_FRAME_SIZE", value_name = "BYTES")]
    pub max_frame_size: Option<String>,

    /// Site URL asked who a connecting browser is (its cookies are forwarded)
    #[arg(long, env = "PUSH_CORE_AUTH_URL", value_name = "URL")]
    pub auth_url: Option<String>,

    /// Refuse connections that the site does not identify as a user
    #[arg(long, env = "PUSH_CORE_AUTH_REQUIRED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub auth_required: Option<String>,

    /// How long to wait for the auth URL [default: 2s]
    #[arg(long, env = "PUSH_CORE_AUTH_TIMEOUT", value_name = "DURATION")]
    pub auth_timeout: Option<String>,

    /// How long an auth answer is reused for the same cookies; 0 disables
    /// the cache [default: 30s]
    #[arg(long, env = "PUSH_CORE_AUTH_CACHE_TTL", value_name = "DURATION")]
    pub auth_cache_ttl: Option<String>,

    /// Most auth answers kept in the cache [default: 100000]
    #[arg(long, env = "PUSH_CORE_AUTH_CACHE_SIZE", value_name = "N")]
    pub auth_cache_size: Option<String>,

    /// A web origin (scheme://host[:port]) whose pages may connect; repeat
    /// for more (comma-separated in the environment). Unset: any origin.
    #[arg(
        long = "allowed-origin",
        env = "PUSH_CORE_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Log format [default: text]
    #[arg(long, env = "PUSH_CORE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log level or tracing filter, e.g. `info` or `push_core=debug`
    /// [default: info]
    #[arg(long, env = "PUSH_CORE_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The same settings as found in the config file. Unknown keys are refused,
/// so a typo is reported instead of silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    socket: Option<PathBuf>,
    socket_mode: Option<toml::Value>,
    namespaces: Option<Vec<String>>,
    max_frame_size: Option<toml::Value>,
    auth_url: Option<String>,
    auth_required: Option<bool>,
    auth_timeout: Option<String>,
    auth_cache_ttl: Option<String>,
    auth_cache_size: Option<toml::Value>,
    allowed_origins: Option<Vec<String>>,
    log_format: Option<String>,
    log_level: Option<String>,
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
}

/// The checked, complete configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// Always starts with `/`, which socket.io clients join by default.
    pub namespaces: Vec<String>,
    pub max_frame_size: u32,
    pub auth: Option<AuthSettings>,
    /// Empty means every origin may connect.
    pub allowed_origins: Vec<String>,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Config {
    /// The defaults, with the publish socket at `socket`. Handy for
    /// embedding and tests.
    pub fn with_socket(socket: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            socket: socket.into(),
            socket_mode: defaults::SOCKET_MODE,
            namespaces: vec!["/".to_owned()],
            max_frame_size: push_client::DEFAULT_MAX_FRAME_SIZE,
            auth: None,
            allowed_origins: Vec::new(),
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

impl ServeArgs {
    /// Merges flags, environment (already folded in by clap), the config
    /// file and defaults, and checks every value.
    pub fn resolve(self) -> Result<Config, ResolveError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };

        let listen = pick(self.listen, file.listen).unwrap_or_else(|| defaults::LISTEN.to_owned());
        let listen = listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError::new(
                "listen",
                format!("{listen:?} is not an address like 127.0.0.1:3000 ({e})"),
            )
        })?;

        let socket = pick(self.socket, file.socket)
            .unwrap_or_else(|| PathBuf::from(push_client::DEFAULT_SOCKET_PATH));
        if socket.as_os_str().is_empty() {
            return Err(ConfigError::new("socket", "the path is empty").into());
        }

        let socket_mode = match pick(self.socket_mode, file.socket_mode.map(toml_to_text)) {
            Some(text) => parse_mode(&text).map_err(|m| ConfigError::new("socket_mode", m))?,
            None => defaults::SOCKET_MODE,
        };

        let mut namespaces = vec!["/".to_owned()];
        let extra = if self.namespaces.is_empty() {
            file.namespaces.unwrap_or_default()
        } else {
            self.namespaces
        };
        for namespace in extra {
            check_namespace(&namespace).map_err(|m| ConfigError::new("namespaces", m))?;
            if !namespaces.contains(&namespace) {
                namespaces.push(namespace);
            }
        }

        let max_frame_size = match pick(self.max_frame_size, file.max_frame_size.map(toml_to_text))
        {
            Some(text) => {
                parse_frame_size(&text).map_err(|m| ConfigError::new("max_frame_size", m))?
            }
            None => push_client::DEFAULT_MAX_FRAME_SIZE,
        };

        let auth_required = match pick(
            self.auth_required,
            file.auth_required.map(|b| b.to_string()),
        ) {
            Some(text) => parse_bool(&text).map_err(|m| ConfigError::new("auth_required", m))?,
            None => false,
        };
        let auth_timeout = parse_setting_duration(
            "auth_timeout",
            pick(self.auth_timeout, file.auth_timeout),
            defaults::AUTH_TIMEOUT,
        )?;
        if auth_timeout.is_zero() {
            return Err(ConfigError::new("auth_timeout", "must be more than 0").into());
        }
        let auth_cache_ttl = parse_setting_duration(
            "auth_cache_ttl",
            pick(self.auth_cache_ttl, file.auth_cache_ttl),
            defaults::AUTH_CACHE_TTL,
        )?;
        let auth_cache_size =
            match pick(self.auth_cache_size, file.auth_cache_size.map(toml_to_text)) {
                Some(text) => text.trim().parse::<usize>().map_err(|_| {
                    ConfigError::new("auth_cache_size", format!("{text:?} is not a whole number"))
                })?,
                None => defaults::AUTH_CACHE_SIZE,
            };
        let auth = match pick(self.auth_url, file.auth_url) {
            Some(text) => Some(AuthSettings {
                url: parse_auth_url(&text).map_err(|m| ConfigError::new("auth_url", m))?,
                required: auth_required,
                timeout: auth_timeout,
                cache_ttl: auth_cache_ttl,
                cache_size: auth_cache_size,
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

        let origins = if self.allowed_origins.is_empty() {
            file.allowed_origins.unwrap_or_default()
        } else {
            self.allowed_origins
        };
        let allowed_origins = origins
            .iter()
            .map(|origin| {
                normalize_origin(origin).map_err(|m| ConfigError::new("allowed_origins", m))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let log_format = match pick(self.log_format, file.log_format) {
            Some(text) => LogFormat::from_str(&text, true).map_err(|_| {
                ConfigError::new("log_format", format!("{text:?} is not one of: text, json"))
            })?,
            None => LogFormat::Text,
        };
        let log_level = pick(self.log_level, file.log_level).unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_level).map_err(|e| {
            ConfigError::new(
                "log_level",
                format!("{log_level:?} is not a level or filter ({e})"),
            )
        })?;

        Ok(Config {
            listen,
            socket,
            socket_mode,
            namespaces,
            max_frame_size,
            auth,
            allowed_origins,
            log_format,
            log_level,
        })
    }
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

/// The command line (or environment) wins over the file.
fn pick<T>(command_line: Option<T>, file: Option<T>) -> Option<T> {
    command_line.or(file)
}

/// Numbers may be written as TOML integers or strings; read both as text.
fn toml_to_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{text:?} is not an octal file mode like 0660")),
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

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

fn parse_setting_duration(
    key: &'static str,
    text: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match text {
        Some(text) => parse_duration(&text).map_err(|m| ConfigError::new(key, m)),
        None => Ok(default),
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

fn check_namespace(namespace: &str) -> Result<(), String> {
    let valid = namespace.starts_with('/')
        && namespace.len() > 1
        && !namespace
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '?' || c == '#');
    if valid {
        Ok(())
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
            config.socket,
            PathBuf::from(push_client::DEFAULT_SOCKET_PATH)
        );
        assert_eq!(config.socket_mode, 0o660);
        assert_eq!(config.namespaces, vec!["/"]);
        assert!(config.auth.is_none());
    }

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("push.toml");
        fs::write(
            &path,
            "listen = \"127.0.0.1:4000\"\nsocket_mode = \"0600\"\nnamespaces = [\"/a\"]\n",
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
        assert_eq!(config.socket_mode, 0o600);
        assert_eq!(config.namespaces, vec!["/", "/a"]);
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

//! The value types of settings, each checked where it is read.
//!
//! A setting arrives as a TOML value from the file, as text from the
//! environment or a flag, or as a Rust value from an embedding program.
//! Each type here accepts the spellings a user would write and refuses the
//! rest with a message that says what was expected; [`Config`](super::Config)
//! then only has to name the key.
//!
//! Numbers written as text (`"5"`, from the environment) are read by
//! figment's lossy extraction, so plain integers need no type of their own.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

/// Implements `Deserialize` by way of `FromStr`, so that a value is checked
/// the same way from a flag, the environment and the file. A TOML integer
/// (`socket_group = 33`) is read as its text.
macro_rules! deserialize_from_text {
    ($type:ty) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(TextVisitor)?
                    .parse()
                    .map_err(de::Error::custom)
            }
        }
    };
}

mod redis_url;
pub use self::redis_url::{RedisHost, RedisPlace, RedisUrl};

/// Reads a scalar as text, for [`deserialize_from_text`].
struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<String, E> {
        Ok(number.to_string())
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<String, E> {
        Ok(number.to_string())
    }
}

/// Permissions of the publish socket file.
///
/// A TOML integer is a mode as written (`0o660`); text is octal (`"0660"`,
/// `"660"` or `"0o660"`), because that is how `chmod` spells it. An
/// integer over `0o777`, such as `660` meant as octal, is refused rather
/// than read as decimal 660 (`0o1224`); a smaller decimal integer cannot be
/// told from the mode it is, so docs/configuration.md asks for `0o` or
/// text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(u32);

impl FileMode {
    pub const fn new(mode: u32) -> Self {
        Self(mode)
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// True when local users outside the socket's owner and group may
    /// connect, and so publish.
    pub fn others_may_write(self) -> bool {
        self.0 & 0o002 != 0
    }

    fn checked(mode: u32, written: &dyn fmt::Display) -> Result<Self, String> {
        if mode <= 0o777 {
            Ok(Self(mode))
        } else {
            Err(format!(
                "{written} is not a file mode like 0o660 (TOML integer) or \"0660\" (octal text)"
            ))
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl FromStr for FileMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.trim().trim_start_matches("0o");
        match u32::from_str_radix(digits, 8) {
            Ok(mode) => Self::checked(mode, &format!("{text:?}")),
            Err(_) => Err(format!(
                "{text:?} is not an octal file mode like \"0660\" (or 0o660 as a TOML integer)"
            )),
        }
    }
}

impl Serialize for FileMode {
    /// As octal text, the one spelling every source reads the same way.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;
        impl Visitor<'_> for ModeVisitor {
            type Value = FileMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file mode: a TOML integer like 0o660 or octal text like \"0660\"")
            }

            fn visit_u64<E: de::Error>(self, mode: u64) -> Result<FileMode, E> {
                let mode = u32::try_from(mode).unwrap_or(u32::MAX);
                FileMode::checked(mode, &mode).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, mode: i64) -> Result<FileMode, E> {
                match u64::try_from(mode) {
                    Ok(mode) => self.visit_u64(mode),
                    Err(_) => Err(E::custom(format!("{mode} is not a file mode"))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<FileMode, E> {
                text.parse().map_err(E::custom)
            }
        }
        // `deserialize_any`, so that text reaches us as text: a lossy read
        // would turn "0660" into the decimal number 660.
        deserializer.deserialize_any(ModeVisitor)
    }
}

/// A number of bytes: an integer, or text with a unit (`"16KiB"`, `"1MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteCount(u64);

impl ByteCount {
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for ByteCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| Self(size.as_u64()))
            .map_err(|_| format!("{text:?} is not a size like 16384, \"16KiB\" or \"1MiB\""))
    }
}

impl Serialize for ByteCount {
    /// As a plain integer, so that it reads back exactly.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteCount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes or text like \"16KiB\"")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteCount, E> {
                Ok(ByteCount(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteCount, E> {
                u64::try_from(bytes)
                    .map(ByteCount)
                    .map_err(|_| E::custom(format!("{bytes} is not a size")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteCount, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// Durations: text like `"500ms"`, `"2s"` or `"5m"` (read by `humantime`),
/// or a bare number of seconds.
pub mod duration {
    use super::*;

    /// The text form, shared by the flags' value parser.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Duration::from_secs(seconds));
        }
        humantime::parse_duration(text)
            .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 5m"))
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(value, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"500ms\", \"2s\" or a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(seconds))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
                match u64::try_from(seconds) {
                    Ok(seconds) => self.visit_u64(seconds),
                    Err(_) => Err(E::custom(format!("{seconds} is not a duration"))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A socket.io namespace other than `/`, like `/notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Namespace {
    type Err = String;

    fn from_str(namespace: &str) -> Result<Self, String> {
        let valid = namespace.starts_with('/')
            && namespace.len() > 1
            && !namespace
                .chars()
                .any(|c| c.is_whitespace() || c == ',' || c == '?' || c == '#');
        if valid {
            Ok(Self(namespace.to_owned()))
        } else {
            Err(format!(
                "{namespace:?} is not a namespace; it must start with '/', like /notifications, and hold no spaces, commas, '?' or '#'"
            ))
        }
    }
}
deserialize_from_text!(Namespace);

/// A web origin, kept the way browsers send it in `Origin:`
/// (`scheme://host[:port]`, no path or trailing slash), so that checking
/// a request is a plain string comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
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
        Ok(Self(url.origin().ascii_serialization()))
    }
}
deserialize_from_text!(Origin);

/// A proxy whose forwarding headers are believed: one address
/// (`10.0.0.1`) or a CIDR range (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProxyRange(#[serde(serialize_with = "serialize_display")] ipnet::IpNet);

impl ProxyRange {
    pub const fn new(range: ipnet::IpNet) -> Self {
        Self(range)
    }

    pub fn range(self) -> ipnet::IpNet {
        self.0
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Self)
            .map_err(|_| format!("{text:?} is not an address or CIDR range like 10.0.0.0/8"))
    }
}
deserialize_from_text!(ProxyRange);

/// The group given the publish socket: a name, looked up in the system's
/// group database (so LDAP and sssd groups work as local ones do), or a
/// numeric id taken as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketGroup {
    written: String,
    gid: u32,
}

impl SocketGroup {
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl FromStr for SocketGroup {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.trim();
        if let Ok(gid) = name.parse::<u32>() {
            return Ok(Self {
                written: name.to_owned(),
                gid,
            });
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(Self {
                written: name.to_owned(),
                gid: group.gid.as_raw(),
            }),
            Ok(None) => Err(format!("no group named {name:?}")),
            Err(error) => Err(format!("cannot look up group {name:?}: {error}")),
        }
    }
}
deserialize_from_text!(SocketGroup);

impl Serialize for SocketGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.written)
    }
}

/// A secret such as the HTTP publish token: long enough that guessing is
/// hopeless, printable so it fits a header, and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Fewer characters than this could be guessed.
    const MIN_LEN: usize = 32;

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is printed in a secret's place.
    pub(super) fn hidden() -> Self {
        Self("(hidden)".to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() < Self::MIN_LEN {
            return Err(format!(
                "the token must be at least {} characters (for example `openssl rand -hex 32`)",
                Self::MIN_LEN
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token may hold only printable ASCII without spaces".to_owned());
        }
        Ok(Self(text.to_owned()))
    }
}
deserialize_from_text!(Secret);

/// The site's auth endpoint: an `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AuthUrl(#[serde(serialize_with = "serialize_display")] Url);

impl AuthUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl FromStr for AuthUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "{text:?} must be an http:// or https:// URL with a host"
            ));
        }
        Ok(Self(url))
    }
}
deserialize_from_text!(AuthUrl);

/// Where a node shares publishes with the other nodes of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// One node on its own: rooms and history in this process.
    Memory,
    /// Several nodes sharing publishes, counts and history through Redis.
    Redis,
}

impl FromStr for AdapterKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            _ => Err(format!("{text:?} is not one of: memory, redis")),
        }
    }
}

/// A name for this node in a cluster, shown in logs, metrics and answers
/// about which node did not reply: letters, digits, `.`, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This machine's host name, the default; `node` where it has none
    /// usable.
    pub fn of_this_host() -> Self {
        nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .and_then(|name| name.parse().ok())
            .unwrap_or_else(|| Self("node".to_owned()))
    }
}

impl FromStr for NodeId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        /// Long enough for any host name, short enough for a metric label.
        const MAX_LEN: usize = 64;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if text.is_empty() || text.len() > MAX_LEN || !text.chars().all(allowed) {
            return Err(format!(
                "{text:?} must be 1 to {MAX_LEN} letters, digits, '.', '-' or '_'"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}
deserialize_from_text!(NodeId);

/// The bcrypt hash of the Admin UI's password, as `instrument()`'s
/// `auth.password` takes it: `$2b$`, `$2a$` or `$2y$` (PHP's
/// `password_hash`), a cost and 53 characters of salt and hash. Never shown
/// by `Debug`, `--print-config` or the logs.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is printed in the hash's place.
    pub(super) fn hidden() -> Self {
        Self("(hidden)".to_owned())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl FromStr for PasswordHash {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parts = text.parse::<bcrypt::HashParts>().map_err(|_| {
            "is not a bcrypt hash like $2b$12$ followed by 53 characters; make one with `php -r 'echo password_hash(trim(fgets(STDIN)), PASSWORD_BCRYPT), \"\\n\";'` (docs/operations.md, \"The socket.io Admin UI\")".to_owned()
        })?;
        // bcrypt's own range; a hash outside it could never match.
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(format!(
                "has cost {}, outside bcrypt's 4 to 31",
                parts.get_cost()
            ));
        }
        Ok(Self(text.to_owned()))
    }
}
deserialize_from_text!(PasswordHash);

/// What the Admin UI may do besides watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminUiMode {
    /// Server figures and charts only, as `instrument()` with `readonly`.
    Readonly,
    /// Also the connections themselves and what may be done to them: see
    /// docs/security.md, "The Admin UI's full mode".
    Full,
}

impl FromStr for AdminUiMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "readonly" => Ok(Self::Readonly),
            "full" => Ok(Self::Full),
            _ => Err(format!("{text:?} is not one of: readonly, full")),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{text:?} is not one of: text, json")),
        }
    }
}

/// A whole number, for the flags; the message is the one the file and the
/// environment give.
pub fn parse_number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number in range"))
}

/// An address to listen on, for the flags.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("{text:?} is not an address like 127.0.0.1:3000 ({e})"))
}

/// A yes/no flag value, spelled as people do in environment files.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

fn serialize_display<T: fmt::Display, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_written() {
        assert_eq!("0660".parse::<FileMode>().unwrap().bits(), 0o660);
        assert_eq!("660".parse::<FileMode>().unwrap().bits(), 0o660);
        assert_eq!("0o600".parse::<FileMode>().unwrap().bits(), 0o600);
        assert!("999".parse::<FileMode>().is_err());
        assert!("rw-rw----".parse::<FileMode>().is_err());
        assert!(FileMode::new(0o666).others_may_write());
        assert!(!FileMode::new(0o664).others_may_write());
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!("16384".parse::<ByteCount>().unwrap().get(), 16384);
        assert_eq!("16KiB".parse::<ByteCount>().unwrap().get(), 16384);
        assert_eq!("1 MiB".parse::<ByteCount>().unwrap().get(), 1 << 20);
        assert!("lots".parse::<ByteCount>().is_err());
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(duration::parse("2").unwrap(), Duration::from_secs(2));
        assert_eq!(
            duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(duration::parse("soon").is_err());
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            "https://Example.COM/".parse::<Origin>().unwrap().as_str(),
            "https://example.com"
        );
        assert_eq!(
            "http://localhost:8080".parse::<Origin>().unwrap().as_str(),
            "http://localhost:8080"
        );
        assert!("https://a.example/path".parse::<Origin>().is_err());
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!("root".parse::<SocketGroup>().unwrap().gid(), 0);
        assert_eq!("1000".parse::<SocketGroup>().unwrap().gid(), 1000);
        assert!("no-such-group-here".parse::<SocketGroup>().is_err());
    }

    #[test]
    fn proxies_are_addresses_or_ranges() {
        assert_eq!(
            "10.0.0.1"
                .parse::<ProxyRange>()
                .unwrap()
                .range()
                .to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            "fd00::/8"
                .parse::<ProxyRange>()
                .unwrap()
                .range()
                .to_string(),
            "fd00::/8"
        );
        assert!("proxy.example".parse::<ProxyRange>().is_err());
    }

    #[test]
    fn password_hashes_are_bcrypt_and_do_not_show() {
        let php = "$2y$04$TzNigAPReA7mzVj4l26rkuGISuk67OHMdaIInV/vz/vMrcFnmGI2a";
        let hash: PasswordHash = php.parse().unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash(***)");
        assert_eq!(hash.expose(), php);
        assert!("secret".parse::<PasswordHash>().is_err());
        let too_costly = php.replacen("$04$", "$32$", 1);
        assert!(too_costly.parse::<PasswordHash>().is_err());
    }

    #[test]
    fn secrets_do_not_show() {
        let secret: Secret = "x".repeat(40).parse().unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert!("short".parse::<Secret>().is_err());
    }
}

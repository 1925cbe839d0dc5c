//! `redis_url`: where a cluster's Redis is, in one of the forms users of
//! Redis clients know.
//!
//! - `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: one server;
//!   `rediss://` the same over TLS; `redis+unix:///PATH[?db=DB]` over a
//!   Unix socket.
//! - `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]`:
//!   the master that these Sentinels name, followed through failovers.
//!   The user and password are the master's; `?sentinel_password=...` is
//!   the Sentinels' own, if they have one.
//! - `redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]`: a
//!   Redis Cluster, found from any of these nodes.
//!
//! `rediss+sentinel://` and `rediss+cluster://` speak TLS throughout. The
//! URL is checked whole when the settings are read, so a mistake stops the
//! daemon at start with a message that lists these forms, rather than
//! showing up as a connection that never comes up.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use super::TextVisitor;

/// The port a Redis server or Cluster node listens on unless told.
const REDIS_PORT: u16 = 6379;
/// The port a Sentinel listens on unless told.
const SENTINEL_PORT: u16 = 26379;

/// What every refusal ends with.
const FORMS: &str = "use redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), \
    redis+unix:///PATH[?db=DB], \
    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB] \
    or redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...] \
    (rediss+sentinel:// and rediss+cluster:// for TLS)";

/// How the cluster's Redis is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisPlace {
    /// One server, as the `redis` crate reads its URL (also `redis+unix`).
    Server(Url),
    /// Whichever server these Sentinels name master of `master`.
    Sentinel {
        sentinels: Vec<RedisHost>,
        master: String,
        /// The Sentinels' own password, if they require one.
        sentinel_password: Option<String>,
    },
    /// A Redis Cluster, found from any of `nodes`.
    Cluster { nodes: Vec<RedisHost> },
}

/// One address of a multi-host URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisHost {
    pub name: String,
    pub port: u16,
}

/// A checked `redis_url`. Its password never shows in logs or in
/// `--print-config`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    place: RedisPlace,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    /// The URL as given, with the password replaced, for showing.
    shown: String,
}

impl RedisUrl {
    pub fn place(&self) -> &RedisPlace {
        &self.place
    }

    /// Whether the Sentinel or Cluster forms speak TLS (`rediss+...`); a
    /// single server's URL says so itself.
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database of the Sentinel form (a single server's URL carries its
    /// own; a Cluster has only 0).
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The same URL with its password replaced, for showing.
    pub fn without_password(&self) -> Self {
        Self {
            password: self.password.as_ref().map(|_| "(hidden)".to_owned()),
            ..self.clone()
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.shown)
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        parse(text).map_err(|reason| format!("{text:?} {reason}; {FORMS}"))
    }
}
deserialize_from_text!(RedisUrl);

/// Reads `text`; the error says what is wrong with it.
fn parse(text: &str) -> Result<RedisUrl, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("is not a URL".to_owned());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" | "redis+unix" | "unix" => parse_server(text),
        "redis+sentinel" => parse_spread(rest, false, Spread::Sentinel),
        "rediss+sentinel" => parse_spread(rest, true, Spread::Sentinel),
        "redis+cluster" => parse_spread(rest, false, Spread::Cluster),
        "rediss+cluster" => parse_spread(rest, true, Spread::Cluster),
        _ => Err(format!("has the scheme {scheme}://, which is not Redis's")),
    }
}

/// `redis://`, `rediss://` and `redis+unix://`: one server.
fn parse_server(text: &str) -> Result<RedisUrl, String> {
    let url = Url::parse(text).map_err(|error| format!("is not a valid URL ({error})"))?;
    let unix = matches!(url.scheme(), "redis+unix" | "unix");
    if unix && url.path().is_empty() {
        return Err("names no socket path".to_owned());
    }
    if !unix {
        if url.host().is_none() {
            return Err("names no host".to_owned());
        }
        parse_db(url.path().trim_start_matches('/'))?;
    }
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: the URL has a host to hold a password.
        let _ = shown.set_password(Some("(hidden)"));
    }
    Ok(RedisUrl {
        tls: url.scheme() == "rediss",
        username: Some(url.username().to_owned()).filter(|name| !name.is_empty()),
        password: url.password().map(decode),
        db: 0,
        shown: shown.to_string(),
        place: RedisPlace::Server(url),
    })
}

#[derive(Clone, Copy)]
enum Spread {
    Sentinel,
    Cluster,
}

/// The multi-host forms: `[USERINFO@]HOST[:PORT][,...][/PATH][?QUERY]`.
fn parse_spread(rest: &str, tls: bool, spread: Spread) -> Result<RedisUrl, String> {
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (path_and_query, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let default_port = match spread {
        Spread::Sentinel => SENTINEL_PORT,
        Spread::Cluster => REDIS_PORT,
    };
    let hosts = hosts
        .split(',')
        .map(|host| parse_host(host, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (
                Some(decode(user)).filter(|user| !user.is_empty()),
                Some(decode(password)),
            ),
            None => (Some(decode(userinfo)), None),
        },
    };
    let mut sentinel_password = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match (spread, &*name) {
            (Spread::Sentinel, "sentinel_password") => sentinel_password = Some(value.into_owned()),
            _ => {
                return Err(format!(
                    "has the parameter {name}, which is not one push-core reads"
                ));
            }
        }
    }
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let (place, db) = match (spread, segments.as_slice()) {
        (Spread::Sentinel, [master]) => (sentinel(hosts, master, sentinel_password), 0),
        (Spread::Sentinel, [master, db]) => {
            (sentinel(hosts, master, sentinel_password), parse_db(db)?)
        }
        (Spread::Sentinel, _) => {
            return Err(
                "must name the master after the Sentinels: .../MASTER_NAME[/DB]".to_owned(),
            );
        }
        (Spread::Cluster, []) => (RedisPlace::Cluster { nodes: hosts }, 0),
        (Spread::Cluster, _) => {
            return Err(
                "has a path, but a Redis Cluster has one database only: give the nodes alone"
                    .to_owned(),
            );
        }
    };
    let scheme = match (spread, tls) {
        (Spread::Sentinel, false) => "redis+sentinel",
        (Spread::Sentinel, true) => "rediss+sentinel",
        (Spread::Cluster, false) => "redis+cluster",
        (Spread::Cluster, true) => "rediss+cluster",
    };
    let shown_userinfo = match (&username, &password) {
        (_, Some(_)) => format!("{}:(hidden)@", username.as_deref().unwrap_or("")),
        (Some(user), None) => format!("{user}@"),
        (None, None) => String::new(),
    };
    let shown_query = if query.is_empty() {
        String::new()
    } else {
        "?sentinel_password=(hidden)".to_owned()
    };
    Ok(RedisUrl {
        place,
        tls,
        username,
        password,
        db,
        shown: format!(
            "{scheme}://{shown_userinfo}{authority_hosts}{path}{shown_query}",
            authority_hosts = authority
                .rsplit_once('@')
                .map_or(authority, |(_, hosts)| hosts)
        ),
    })
}

fn sentinel(
    sentinels: Vec<RedisHost>,
    master: &str,
    sentinel_password: Option<String>,
) -> RedisPlace {
    RedisPlace::Sentinel {
        sentinels,
        master: decode(master),
        sentinel_password,
    }
}

/// `HOST[:PORT]`, `[IPV6][:PORT]`.
fn parse_host(text: &str, default_port: u16) -> Result<RedisHost, String> {
    if text.is_empty() {
        return Err("has an empty host in its list".to_owned());
    }
    // The url crate checks the host and port as it would in any URL.
    let url = Url::parse(&format!("redis://{text}"))
        .map_err(|error| format!("has the host {text:?}, which is not valid ({error})"))?;
    let name = match url.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => return Err(format!("has the host {text:?}, which is not valid")),
    };
    Ok(RedisHost {
        name,
        port: url.port().unwrap_or(default_port),
    })
}

fn parse_db(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<i64>()
        .ok()
        .filter(|db| *db >= 0)
        .ok_or_else(|| format!("has {text:?} where the database number goes"))
}

/// Percent-decodes a part of a URL (a password may hold `@` or `:` that
/// way).
fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(String::new, |(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[(&str, u16)]) -> Vec<RedisHost> {
        list.iter()
            .map(|(name, port)| RedisHost {
                name: (*name).to_owned(),
                port: *port,
            })
            .collect()
    }

    #[test]
    fn a_single_server_keeps_its_url_and_hides_its_password() {
        let url: RedisUrl = "redis://:s3cret@127.0.0.1:6380/2".parse().unwrap();
        assert!(matches!(url.place(), RedisPlace::Server(_)));
        assert_eq!(url.password(), Some("s3cret"));
        assert_eq!(url.to_string(), "redis://:(hidden)@127.0.0.1:6380/2");
        assert!(
            "rediss://cache.example:6380"
                .parse::<RedisUrl>()
                .unwrap()
                .tls()
        );
        assert!("redis+unix:///run/redis.sock".parse::<RedisUrl>().is_ok());
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let url: RedisUrl =
            "redis+sentinel://app:p%40ss@10.0.0.1,10.0.0.2:26380/mymaster/3?sentinel_password=x"
                .parse()
                .unwrap();
        assert_eq!(
            url.place(),
            &RedisPlace::Sentinel {
                sentinels: hosts(&[("10.0.0.1", 26379), ("10.0.0.2", 26380)]),
                master: "mymaster".to_owned(),
                sentinel_password: Some("x".to_owned()),
            }
        );
        assert_eq!(
            (url.username(), url.password(), url.db()),
            (Some("app"), Some("p@ss"), 3)
        );
        assert_eq!(
            url.to_string(),
            "redis+sentinel://app:(hidden)@10.0.0.1,10.0.0.2:26380/mymaster/3?sentinel_password=(hidden)"
        );
        assert!(!url.tls());
        assert!(
            "rediss+sentinel://[::1]:26379/m"
                .parse::<RedisUrl>()
                .unwrap()
                .tls()
        );
    }

    #[test]
    fn cluster_urls_list_nodes_and_have_no_database() {
        let url: RedisUrl = "redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001,localhost"
            .parse()
            .unwrap();
        assert_eq!(
            url.place(),
            &RedisPlace::Cluster {
                nodes: hosts(&[
                    ("127.0.0.1", 7000),
                    ("127.0.0.1", 7001),
                    ("localhost", 6379)
                ]),
            }
        );
        assert_eq!(
            url.to_string(),
            "redis+cluster://:(hidden)@127.0.0.1:7000,127.0.0.1:7001,localhost"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_accepted_forms() {
        for (text, says) in [
            ("http://127.0.0.1:6379", "not Redis's"),
            ("127.0.0.1:6379", "is not a URL"),
            ("redis://127.0.0.1:6379/x", "database number"),
            ("redis+sentinel://127.0.0.1:26379", "must name the master"),
            (
                "redis+sentinel://127.0.0.1:26379/a/b/c",
                "must name the master",
            ),
            ("redis+sentinel://127.0.0.1,,h/m", "empty host"),
            ("redis+sentinel://127.0.0.1:99999/m", "not valid"),
            ("redis+cluster://127.0.0.1:7000/0", "one database only"),
            ("redis+cluster://h?db=2", "not one push-core reads"),
        ] {
            let error = text.parse::<RedisUrl>().unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
            assert!(
                error.contains("redis+sentinel://[[USER]:PASSWORD@]"),
                "{error}"
            );
        }
    }
}

//! Applying a new configuration to a running daemon, without dropping a
//! connection.
//!
//! [`is_live_key`] is the one place that says which settings a running
//! daemon can change; every other key needs a restart. That way a setting
//! added later is safe by default: until someone makes it live here, a
//! reload reports it as needing a restart instead of pretending.
//!
//! The live parts read their settings from something swappable, each the
//! part that owns them: the Origin allow-list (`OriginPolicy`), the
//! connection limits (`ConnectionLimits`), the authenticator
//! (`CurrentAuthenticator`), and the log filter through a hook the program
//! that owns logging gives ([`LogLevelHook`]).
//!
//! A reload either applies every live change or none: the new
//! configuration is checked, and anything that can fail is built, before
//! the first swap.

use figment::value::{Dict, Value};
use thiserror::Error;

use crate::auth::AuthSetupError;
use crate::config::{Config, ConfigError};

/// Whether a running daemon applies `key` on reload: the Origin allow-list
/// (checked when a connection opens; open connections stay), the auth
/// settings, the limits on browsers, and the log level (through the
/// program's hook; a restart without one).
pub fn is_live_key(key: &str) -> bool {
    matches!(key, "allowed_origins" | "log_level")
        || AUTH_KEYS.contains(&key)
        || LIMIT_KEYS.contains(&key)
}

/// The auth settings: a change to any of them builds a new authenticator,
/// which the next connect asks, with a fresh cache.
pub(crate) const AUTH_KEYS: &[&str] = &[
    "auth_url",
    "auth_required",
    "auth_timeout",
    "auth_cache_ttl",
    "auth_cache_size",
    "auth_max_concurrency",
    "auth_retry_attempts",
    "auth_retry_backoff_max",
    "auth_retry_slot_wait",
];

/// The limits on browsers that a reload changes: the next decision uses
/// the new limit; nothing open is closed.
pub(crate) const LIMIT_KEYS: &[&str] = &[
    "max_connections",
    "max_connections_per_ip",
    "handshakes_per_ip_per_minute",
    "client_events_per_minute",
    "max_rooms_per_connection",
    "trusted_proxies",
];

/// Puts a new log level or filter in force; `Err` says why it cannot.
/// Given by the program that set up logging (the `push-core` binary gives
/// one over its `tracing-subscriber` reload layer).
pub type LogLevelHook = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Live settings that changed and are now in force.
    pub applied: Vec<&'static str>,
    /// Settings that differ from the running daemon's and are not in force
    /// until a restart. They are reported at every reload until then.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload was refused; the running configuration is kept whole.
#[derive(Debug, Error)]
pub enum ReloadError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("invalid value for log_level: {0}")]
    LogLevel(String),
}

/// The keys whose values differ between `old` and `new`, in declaration
/// order.
pub(crate) fn changed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let (old, new) = (as_dict(old), as_dict(new));
    Config::keys()
        .iter()
        .copied()
        .filter(|key| old.get(*key) != new.get(*key))
        .collect()
}

/// Sorts what changed into what a reload applies and what needs a
/// restart. `started` is the configuration the daemon started with (what
/// restart-only settings still are), `applied` the last one applied.
/// Without a log level hook, `log_level` needs a restart like any other.
pub(crate) fn plan(
    started: &Config,
    applied: &Config,
    new: &Config,
    can_set_log_level: bool,
) -> ReloadReport {
    let is_live = |key: &str| is_live_key(key) && (key != "log_level" || can_set_log_level);
    ReloadReport {
        applied: changed_keys(applied, new)
            .into_iter()
            .filter(|key| is_live(key))
            .collect(),
        needs_restart: changed_keys(started, new)
            .into_iter()
            .filter(|key| !is_live(key))
            .collect(),
    }
}

/// The settings as a table of values, to compare key by key.
fn as_dict(config: &Config) -> Dict {
    match Value::serialize(config) {
        Ok(Value::Dict(_, dict)) => dict,
        // Config is a struct of serializable fields: always a table.
        _ => Dict::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .fold(Config::builder(), |builder, (key, value)| {
                if Config::is_list_key(key) {
                    builder.set(key, [value])
                } else {
                    builder.set(key, value)
                }
            })
            .build()
            .unwrap()
    }

    #[test]
    fn live_keys_are_keys() {
        let named = ["allowed_origins", "log_level"];
        for key in named.iter().chain(AUTH_KEYS).chain(LIMIT_KEYS) {
            assert!(Config::keys().contains(key), "{key} is not a setting");
            assert!(is_live_key(key), "{key} is applied but not live");
        }
        assert!(!is_live_key("listen"));
    }

    #[test]
    fn live_changes_apply_and_the_rest_waits_for_a_restart() {
        let started = Config::default();
        let new = config(&[
            ("allowed_origins", "https://a.example"),
            ("max_connections", "10"),
            ("listen", "127.0.0.1:4000"),
            ("log_level", "debug"),
        ]);
        let report = plan(&started, &started, &new, true);
        assert_eq!(
            report.applied,
            ["allowed_origins", "max_connections", "log_level"]
        );
        assert_eq!(report.needs_restart, ["listen"]);

        let without_hook = plan(&started, &started, &new, false);
        assert_eq!(without_hook.needs_restart, ["listen", "log_level"]);
    }

    #[test]
    fn a_restart_only_change_is_reported_until_the_restart() {
        let started = Config::default();
        let first = config(&[("socket", "/tmp/other.sock")]);
        let second = config(&[("socket", "/tmp/other.sock"), ("max_connections", "9")]);
        assert_eq!(
            plan(&started, &started, &first, true).needs_restart,
            ["socket"]
        );
        let again = plan(&started, &first, &second, true);
        assert_eq!(again.applied, ["max_connections"]);
        assert_eq!(again.needs_restart, ["socket"]);
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let config = config(&[("http_publish_token", &"t".repeat(40))]);
        assert_eq!(
            plan(&config, &config, &config.clone(), true),
            ReloadReport::default()
        );
    }
}

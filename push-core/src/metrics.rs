//! Counters for `/metrics` (Prometheus text format) and the STATS request.
//!
//! Things that only ever grow (publishes, deliveries, auth calls, errors)
//! are atomic counters bumped on the hot path. Things that go up and down
//! with the live connection set (connections per namespace and transport,
//! users online) are not counted at all: they are read from the socket.io
//! server when someone asks, in a [`Census`], so they can never drift from
//! the truth after a missed decrement.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use push_client::ErrorCode;
use serde_json::json;

/// Upper bounds (seconds) of the auth latency histogram buckets, spread
/// around the default 2 s timeout.
const AUTH_LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The highest protocol error code we keep a separate counter for.
const MAX_ERROR_CODE: usize = 16;

/// How an auth call ended, for the failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The site named a user.
    User,
    /// The site answered 401 or 403.
    Guest,
    /// No answer in time.
    Timeout,
    /// Connection refused, reset, or similar.
    Unreachable,
    /// An unexpected status, such as a 5xx or a redirect.
    BadStatus,
    /// A 200 whose body was not the documented JSON.
    BadBody,
    /// Not asked: the site failed repeatedly and the breaker is open.
    CircuitOpen,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 7] = [
        AuthOutcome::User,
        AuthOutcome::Guest,
        AuthOutcome::Timeout,
        AuthOutcome::Unreachable,
        AuthOutcome::BadStatus,
        AuthOutcome::BadBody,
        AuthOutcome::CircuitOpen,
    ];

    fn label(self) -> &'static str {
        match self {
            AuthOutcome::User => "user",
            AuthOutcome::Guest => "guest",
            AuthOutcome::Timeout => "timeout",
            AuthOutcome::Unreachable => "unreachable",
            AuthOutcome::BadStatus => "bad_status",
            AuthOutcome::BadBody => "bad_body",
            AuthOutcome::CircuitOpen => "circuit_open",
        }
    }

    fn is_failure(self) -> bool {
        !matches!(self, AuthOutcome::User | AuthOutcome::Guest)
    }
}

/// Why a socket.io connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `auth_required` and the site said guest.
    Unauthorized,
    /// `auth_required` and the site could not be asked.
    AuthUnavailable,
    /// The page's Origin is not allowed.
    Origin,
    /// `max_connections` reached.
    TooManyConnections,
    /// `max_connections_per_ip` reached for the client's address.
    TooManyFromAddress,
    /// `handshakes_per_ip_per_minute` exceeded.
    HandshakeRate,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::Unauthorized,
        Refusal::AuthUnavailable,
        Refusal::Origin,
        Refusal::TooManyConnections,
        Refusal::TooManyFromAddress,
        Refusal::HandshakeRate,
    ];

    /// The label in metrics, and the text a refused page receives.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::AuthUnavailable => "auth_unavailable",
            Refusal::Origin => "origin_not_allowed",
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::TooManyFromAddress => "too_many_connections_from_address",
            Refusal::HandshakeRate => "handshake_rate_exceeded",
        }
    }
}

/// Live connection figures of one namespace, read at the time of asking.
#[derive(Debug, Clone, Default)]
pub struct NamespaceCensus {
    pub namespace: String,
    pub websocket: u64,
    pub polling: u64,
    pub users_online: u64,
}

/// Live connection figures of the whole server.
#[derive(Debug, Clone, Default)]
pub struct Census {
    pub namespaces: Vec<NamespaceCensus>,
}

/// All counters of one daemon.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    publishes: AtomicU64,
    deliveries: AtomicU64,
    publishers_accepted: AtomicU64,
    publishers_connected: AtomicU64,
    protocol_errors: [AtomicU64; MAX_ERROR_CODE + 1],
    auth_outcomes: [AtomicU64; AuthOutcome::ALL.len()],
    auth_cache_hits: AtomicU64,
    auth_latency_buckets: [AtomicU64; AUTH_LATENCY_BUCKETS.len()],
    auth_latency_micros_sum: AtomicU64,
    auth_latency_count: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    deliveries_dropped: AtomicU64,
    client_events_ignored: AtomicU64,
    flooders_disconnected: AtomicU64,
    rooms_truncated: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            publishes: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            publishers_accepted: AtomicU64::new(0),
            publishers_connected: AtomicU64::new(0),
            protocol_errors: Default::default(),
            auth_outcomes: Default::default(),
            auth_cache_hits: AtomicU64::new(0),
            auth_latency_buckets: Default::default(),
            auth_latency_micros_sum: AtomicU64::new(0),
            auth_latency_count: AtomicU64::new(0),
            refusals: Default::default(),
            deliveries_dropped: AtomicU64::new(0),
            client_events_ignored: AtomicU64::new(0),
            flooders_disconnected: AtomicU64::new(0),
            rooms_truncated: AtomicU64::new(0),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    pub fn publish_delivered(&self, recipients: u64) {
        bump(&self.publishes);
        self.deliveries.fetch_add(recipients, Ordering::Relaxed);
    }

    pub fn publisher_connected(&self) {
        bump(&self.publishers_accepted);
        bump(&self.publishers_connected);
    }

    pub fn publisher_disconnected(&self) {
        self.publishers_connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn protocol_error(&self, code: ErrorCode) {
        let index = usize::from(code.0).min(MAX_ERROR_CODE);
        bump(&self.protocol_errors[index]);
    }

    pub fn auth_call(&self, outcome: AuthOutcome, took: Duration) {
        let index = AuthOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        bump(&self.auth_outcomes[index]);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in AUTH_LATENCY_BUCKETS.iter().zip(&self.auth_latency_buckets) {
            if seconds <= *bound {
                bump(bucket);
            }
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.auth_latency_micros_sum
            .fetch_add(micros, Ordering::Relaxed);
        bump(&self.auth_latency_count);
    }

    pub fn auth_cache_hit(&self) {
        bump(&self.auth_cache_hits);
    }

    pub fn connection_refused(&self, refusal: Refusal) {
        let index = Refusal::ALL.iter().position(|r| *r == refusal).unwrap_or(0);
        bump(&self.refusals[index]);
    }

    /// Messages not queued for a connection whose buffer was full.
    pub fn deliveries_dropped(&self, count: u64) {
        self.deliveries_dropped.fetch_add(count, Ordering::Relaxed);
    }

    pub fn client_event_ignored(&self) {
        bump(&self.client_events_ignored);
    }

    pub fn flooder_disconnected(&self) {
        bump(&self.flooders_disconnected);
    }

    pub fn rooms_truncated(&self) {
        bump(&self.rooms_truncated);
    }

    fn auth_failures(&self) -> u64 {
        AuthOutcome::ALL
            .iter()
            .zip(&self.auth_outcomes)
            .filter(|(outcome, _)| outcome.is_failure())
            .map(|(_, count)| read(count))
            .sum()
    }

    fn protocol_errors_total(&self) -> u64 {
        self.protocol_errors.iter().map(read).sum()
    }

    /// The STATS reply: a JSON object meant for scripts and dashboards.
    pub fn stats_json(&self, census: &Census) -> String {
        let namespaces: serde_json::Map<String, serde_json::Value> = census
            .namespaces
            .iter()
            .map(|ns| {
                (
                    ns.namespace.clone(),
                    json!({
                        "connections": ns.websocket + ns.polling,
                        "websocket": ns.websocket,
                        "polling": ns.polling,
                        "users_online": ns.users_online,
                    }),
                )
            })
            .collect();
        let connections: u64 = census
            .namespaces
            .iter()
            .map(|ns| ns.websocket + ns.polling)
            .sum();
        let auth_calls: u64 = self.auth_outcomes.iter().map(read).sum();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol_version": push_client::PROTOCOL_VERSION,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "connections": connections,
            "namespaces": namespaces,
            "publishes": read(&self.publishes),
            "deliveries": read(&self.deliveries),
            "deliveries_dropped": read(&self.deliveries_dropped),
            "publishers": {
                "connected": read(&self.publishers_connected),
                "accepted_total": read(&self.publishers_accepted),
            },
            "protocol_errors": self.protocol_errors_total(),
            "auth": {
                "calls": auth_calls,
                "failures": self.auth_failures(),
                "cache_hits": read(&self.auth_cache_hits),
            },
        })
        .to_string()
    }

    /// The `/metrics` page in Prometheus text exposition format.
    pub fn prometheus_text(&self, census: &Census) -> String {
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            name.to_owned()
        };
        let connections = family("push_connections", "gauge", "Open socket.io connections.");
        let users = family(
            "push_users_online",
            "gauge",
            "Distinct identified users with at least one connection.",
        );
        let publishes = family(
            "push_publishes_total",
            "counter",
            "Publishes accepted from the site.",
        );
        let deliveries = family(
            "push_deliveries_total",
            "counter",
            "Messages handed to socket.io connections.",
        );
        let publishers = family(
            "push_publishers_connected",
            "gauge",
            "Open publish socket connections.",
        );
        let accepted = family(
            "push_publishers_accepted_total",
            "counter",
            "Publish socket connections accepted.",
        );
        let errors = family(
            "push_protocol_errors_total",
            "counter",
            "Error replies on the publish socket, by code.",
        );
        let auth = family(
            "push_auth_calls_total",
            "counter",
            "Calls to the auth URL, by outcome.",
        );
        let hits = family(
            "push_auth_cache_hits_total",
            "counter",
            "Connections identified from the auth cache.",
        );
        let latency = family(
            "push_auth_latency_seconds",
            "histogram",
            "Time taken by calls to the auth URL.",
        );
        let refused = family(
            "push_connections_refused_total",
            "counter",
            "socket.io connections refused, by reason.",
        );
        let dropped = family(
            "push_deliveries_dropped_total",
            "counter",
            "Messages dropped for connections whose send buffer was full.",
        );
        let ignored = family(
            "push_client_events_ignored_total",
            "counter",
            "Events sent by browsers, which are ignored.",
        );
        let flooders = family(
            "push_client_flood_disconnects_total",
            "counter",
            "Connections closed for sending more than client_events_per_minute.",
        );
        let truncated = family(
            "push_rooms_truncated_total",
            "counter",
            "Connections given more rooms than max_rooms_per_connection.",
        );
        let uptime = family(
            "push_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );

        for ns in &census.namespaces {
            let name = escape_label(&ns.namespace);
            let _ = writeln!(
                out,
                "{connections}{{namespace=\"{name}\",transport=\"websocket\"}} {}",
                ns.websocket
            );
            let _ = writeln!(
                out,
                "{connections}{{namespace=\"{name}\",transport=\"polling\"}} {}",
                ns.polling
            );
            let _ = writeln!(out, "{users}{{namespace=\"{name}\"}} {}", ns.users_online);
        }
        let _ = writeln!(out, "{publishes} {}", read(&self.publishes));
        let _ = writeln!(out, "{deliveries} {}", read(&self.deliveries));
        let _ = writeln!(out, "{publishers} {}", read(&self.publishers_connected));
        let _ = writeln!(out, "{accepted} {}", read(&self.publishers_accepted));
        for (code, count) in self.protocol_errors.iter().enumerate() {
            let count = read(count);
            if count > 0 {
                let name = ErrorCode(u16::try_from(code).unwrap_or(u16::MAX)).name();
                let _ = writeln!(out, "{errors}{{code=\"{name}\"}} {count}");
            }
        }
        for (outcome, count) in AuthOutcome::ALL.iter().zip(&self.auth_outcomes) {
            let _ = writeln!(
                out,
                "{auth}{{outcome=\"{}\"}} {}",
                outcome.label(),
                read(count)
            );
        }
        let _ = writeln!(out, "{hits} {}", read(&self.auth_cache_hits));
        for (bound, bucket) in AUTH_LATENCY_BUCKETS.iter().zip(&self.auth_latency_buckets) {
            let _ = writeln!(out, "{latency}_bucket{{le=\"{bound}\"}} {}", read(bucket));
        }
        let count = read(&self.auth_latency_count);
        let _ = writeln!(out, "{latency}_bucket{{le=\"+Inf\"}} {count}");
        let sum = read(&self.auth_latency_micros_sum) as f64 / 1e6;
        let _ = writeln!(out, "{latency}_sum {sum}\n{latency}_count {count}");
        for (refusal, count) in Refusal::ALL.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "{refused}{{reason=\"{}\"}} {}",
                refusal.label(),
                read(count)
            );
        }
        let _ = writeln!(out, "{dropped} {}", read(&self.deliveries_dropped));
        let _ = writeln!(out, "{ignored} {}", read(&self.client_events_ignored));
        let _ = writeln!(out, "{flooders} {}", read(&self.flooders_disconnected));
        let _ = writeln!(out, "{truncated} {}", read(&self.rooms_truncated));
        let _ = writeln!(out, "{uptime} {}", self.started.elapsed().as_secs());
        out
    }
}

/// Prometheus label values escape backslash, quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.auth_call(AuthOutcome::User, Duration::from_millis(20));
        let text = metrics.prometheus_text(&Census::default());
        assert!(text.contains("push_auth_latency_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("push_auth_latency_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("push_auth_latency_seconds_bucket{le=\"5\"} 1"));
        assert!(text.contains("push_auth_latency_seconds_count 1"));
    }

    #[test]
    fn stats_json_sums_namespaces() {
        let metrics = Metrics::default();
        metrics.publish_delivered(3);
        let census = Census {
            namespaces: vec![NamespaceCensus {
                namespace: "/".into(),
                websocket: 2,
                polling: 1,
                users_online: 1,
            }],
        };
        let stats: serde_json::Value = serde_json::from_str(&metrics.stats_json(&census)).unwrap();
        assert_eq!(stats["connections"], 3);
        assert_eq!(stats["deliveries"], 3);
        assert_eq!(stats["namespaces"]["/"]["users_online"], 1);
    }
}

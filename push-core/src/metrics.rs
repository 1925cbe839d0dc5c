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
    /// `auth_required` and the site said guest: at connect, or later about a
    /// connection admitted while it could not answer (then disconnected).
    Unauthorized,
    /// `auth_required`, admitted while the site could not answer, and every
    /// background attempt failed too: disconnected.
    AuthUnavailable,
    /// The page's Origin is not allowed.
    Origin,
    /// `max_connections` reached.
    TooManyConnections,
    /// `max_connections_per_ip` reached for the client's address.
    TooManyFromAddress,
    /// `handshakes_per_ip_per_minute` exceeded.
    HandshakeRate,
    /// The session was disconnected for flooding events in the last minute.
    Flooding,
}

impl Refusal {
    const ALL: [Refusal; 7] = [
        Refusal::Unauthorized,
        Refusal::AuthUnavailable,
        Refusal::Origin,
        Refusal::TooManyConnections,
        Refusal::TooManyFromAddress,
        Refusal::HandshakeRate,
        Refusal::Flooding,
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
            Refusal::Flooding => "event_flood",
        }
    }
}

/// How a trusted proxy failed to name the browser it forwards for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingProblem {
    /// No X-Forwarded-For or Forwarded header: no per-IP limits.
    Missing,
    /// A header whose deciding hop is not an address: limited as the proxy.
    Unreadable,
}

impl ForwardingProblem {
    const ALL: [ForwardingProblem; 2] = [ForwardingProblem::Missing, ForwardingProblem::Unreadable];

    pub fn label(self) -> &'static str {
        match self {
            ForwardingProblem::Missing => "missing",
            ForwardingProblem::Unreadable => "unreadable",
        }
    }
}

/// Live connection figures of one namespace, read at the time of asking.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NamespaceCensus {
    pub namespace: String,
    /// Connections of clients on socket.io protocol 5 (clients 3.x and 4.x).
    pub websocket: u64,
    pub polling: u64,
    /// Connections of old clients on protocol 4 (clients 1.x and 2.x).
    pub websocket_protocol4: u64,
    pub polling_protocol4: u64,
    pub users_online: u64,
}

impl NamespaceCensus {
    fn websocket_total(&self) -> u64 {
        self.websocket + self.websocket_protocol4
    }

    fn polling_total(&self) -> u64 {
        self.polling + self.polling_protocol4
    }
}

/// Live connection figures of the whole server.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Census {
    pub namespaces: Vec<NamespaceCensus>,
}

/// Every node's connections, for the `cluster` section of STATS.
pub struct ClusterSummary<'a> {
    pub node: &'a str,
    pub link_up: bool,
    pub census: &'a Census,
    /// Some node did not answer in time.
    pub partial: bool,
}

impl Census {
    /// The total, and the figures by namespace, as STATS shows them.
    fn summary(&self) -> (u64, serde_json::Map<String, serde_json::Value>) {
        let namespaces = self
            .namespaces
            .iter()
            .map(|ns| {
                (
                    ns.namespace.clone(),
                    json!({
                        "connections": ns.websocket_total() + ns.polling_total(),
                        "websocket": ns.websocket_total(),
                        "polling": ns.polling_total(),
                        "protocol4": ns.websocket_protocol4 + ns.polling_protocol4,
                        "users_online": ns.users_online,
                    }),
                )
            })
            .collect();
        let connections = self
            .namespaces
            .iter()
            .map(|ns| ns.websocket_total() + ns.polling_total())
            .sum();
        (connections, namespaces)
    }

    /// Adds another node's figures to these. A user connected to two nodes
    /// counts once on each.
    pub fn add(&mut self, other: &Census) {
        for theirs in &other.namespaces {
            let position = self
                .namespaces
                .iter()
                .position(|ours| ours.namespace == theirs.namespace);
            let Some(ours) = position.map(|at| &mut self.namespaces[at]) else {
                self.namespaces.push(theirs.clone());
                continue;
            };
            ours.websocket += theirs.websocket;
            ours.polling += theirs.polling;
            ours.websocket_protocol4 += theirs.websocket_protocol4;
            ours.polling_protocol4 += theirs.polling_protocol4;
            ours.users_online += theirs.users_online;
        }
    }
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
    auth_merged: AtomicU64,
    auth_retries: AtomicU64,
    auth_retries_exhausted: AtomicU64,
    auth_latency_buckets: [AtomicU64; AUTH_LATENCY_BUCKETS.len()],
    auth_latency_micros_sum: AtomicU64,
    auth_latency_count: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    deliveries_dropped: AtomicU64,
    client_events_ignored: AtomicU64,
    flooders_disconnected: AtomicU64,
    rooms_truncated: AtomicU64,
    forwarding_problems: [AtomicU64; ForwardingProblem::ALL.len()],
    /// A gauge, set by the handshake rate limit whenever its table changes.
    handshake_addresses: AtomicU64,
    handshakes_unremembered: AtomicU64,
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
            auth_merged: AtomicU64::new(0),
            auth_retries: AtomicU64::new(0),
            auth_retries_exhausted: AtomicU64::new(0),
            auth_latency_buckets: Default::default(),
            auth_latency_micros_sum: AtomicU64::new(0),
            auth_latency_count: AtomicU64::new(0),
            refusals: Default::default(),
            deliveries_dropped: AtomicU64::new(0),
            client_events_ignored: AtomicU64::new(0),
            flooders_disconnected: AtomicU64::new(0),
            rooms_truncated: AtomicU64::new(0),
            forwarding_problems: Default::default(),
            handshake_addresses: AtomicU64::new(0),
            handshakes_unremembered: AtomicU64::new(0),
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

    /// A lookup answered by an identical lookup's call in flight.
    pub fn auth_merged(&self) {
        bump(&self.auth_merged);
    }

    /// A background attempt to identify an admitted connection.
    pub fn auth_retry(&self) {
        bump(&self.auth_retries);
    }

    /// A connection whose background attempts all failed.
    pub fn auth_retries_exhausted(&self) {
        bump(&self.auth_retries_exhausted);
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

    pub fn forwarding_problem(&self, problem: ForwardingProblem) {
        let index = ForwardingProblem::ALL
            .iter()
            .position(|p| *p == problem)
            .unwrap_or(0);
        bump(&self.forwarding_problems[index]);
    }

    /// How many addresses the handshake rate limit remembers now.
    pub fn set_handshake_addresses(&self, addresses: u64) {
        self.handshake_addresses.store(addresses, Ordering::Relaxed);
    }

    /// A handshake let through unremembered because the table was full.
    pub fn handshake_unremembered(&self) {
        bump(&self.handshakes_unremembered);
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
    /// Its figures are this node's; in a cluster, `cluster` adds every
    /// node's connections.
    pub fn stats_json(&self, census: &Census, cluster: Option<ClusterSummary<'_>>) -> String {
        let (connections, namespaces) = census.summary();
        let auth_calls: u64 = self.auth_outcomes.iter().map(read).sum();
        let mut stats = json!({
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
                "merged": read(&self.auth_merged),
                "retries": read(&self.auth_retries),
                "retries_exhausted": read(&self.auth_retries_exhausted),
            },
        });
        if let Some(cluster) = cluster {
            let (connections, namespaces) = cluster.census.summary();
            stats["cluster"] = json!({
                "node": cluster.node,
                "link_up": cluster.link_up,
                "partial": cluster.partial,
                "connections": connections,
                "namespaces": namespaces,
            });
        }
        stats.to_string()
    }

    /// The `/metrics` page in Prometheus text exposition format: each
    /// family's HELP and TYPE lines followed by all of its samples.
    pub fn prometheus_text(&self, census: &Census) -> String {
        let mut page = Page::default();

        page.family(
            "push_connections",
            "gauge",
            "Open socket.io connections, by namespace, transport and socket.io protocol.",
        );
        for ns in &census.namespaces {
            let name = escape_label(&ns.namespace);
            // Protocol 5 is spoken by socket.io clients 3.x and 4.x, 4 by
            // the old 1.x and 2.x clients (docs/old-clients.md).
            for (transport, protocol, count) in [
                ("websocket", 5, ns.websocket),
                ("polling", 5, ns.polling),
                ("websocket", 4, ns.websocket_protocol4),
                ("polling", 4, ns.polling_protocol4),
            ] {
                page.sample(
                    &format!(
                        "{{namespace=\"{name}\",transport=\"{transport}\",protocol=\"{protocol}\"}}"
                    ),
                    count,
                );
            }
        }
        page.family(
            "push_users_online",
            "gauge",
            "Distinct identified users with at least one connection.",
        );
        for ns in &census.namespaces {
            let name = escape_label(&ns.namespace);
            page.sample(&format!("{{namespace=\"{name}\"}}"), ns.users_online);
        }
        page.counter(
            "push_publishes_total",
            "Publishes accepted from the site.",
            &self.publishes,
        );
        page.counter(
            "push_deliveries_total",
            "Messages handed to socket.io connections.",
            &self.deliveries,
        );
        page.counter(
            "push_deliveries_dropped_total",
            "Messages dropped for connections whose send buffer was full.",
            &self.deliveries_dropped,
        );
        page.family(
            "push_publishers_connected",
            "gauge",
            "Open publish socket connections.",
        );
        page.sample("", read(&self.publishers_connected));
        page.counter(
            "push_publishers_accepted_total",
            "Publish socket connections accepted.",
            &self.publishers_accepted,
        );

        page.family(
            "push_protocol_errors_total",
            "counter",
            "Error replies to publishers, by code.",
        );
        for (code, count) in self.protocol_errors.iter().enumerate() {
            let count = read(count);
            if count > 0 {
                let name = ErrorCode(u16::try_from(code).unwrap_or(u16::MAX)).name();
                page.sample(&format!("{{code=\"{name}\"}}"), count);
            }
        }

        page.family(
            "push_auth_calls_total",
            "counter",
            "Calls to the auth URL, by outcome.",
        );
        for (outcome, count) in AuthOutcome::ALL.iter().zip(&self.auth_outcomes) {
            page.sample(&format!("{{outcome=\"{}\"}}", outcome.label()), read(count));
        }
        page.counter(
            "push_auth_cache_hits_total",
            "Connections identified from the auth cache.",
            &self.auth_cache_hits,
        );
        page.counter(
            "push_auth_merged_total",
            "Connections identified by an identical lookup's call already in flight.",
            &self.auth_merged,
        );
        page.counter(
            "push_auth_retries_total",
            "Background attempts to identify connections the site could not identify at connect.",
            &self.auth_retries,
        );
        page.counter(
            "push_auth_retries_exhausted_total",
            "Connections still unidentified after every background attempt.",
            &self.auth_retries_exhausted,
        );
        page.family(
            "push_auth_latency_seconds",
            "histogram",
            "Time taken by calls to the auth URL.",
        );
        for (bound, bucket) in AUTH_LATENCY_BUCKETS.iter().zip(&self.auth_latency_buckets) {
            page.sample_with_suffix("_bucket", &format!("{{le=\"{bound}\"}}"), read(bucket));
        }
        let count = read(&self.auth_latency_count);
        page.sample_with_suffix("_bucket", "{le=\"+Inf\"}", count);
        let sum = read(&self.auth_latency_micros_sum) as f64 / 1e6;
        page.line(&format!("push_auth_latency_seconds_sum {sum}"));
        page.sample_with_suffix("_count", "", count);

        page.family(
            "push_connections_refused_total",
            "counter",
            "socket.io connections refused, by reason.",
        );
        for (refusal, count) in Refusal::ALL.iter().zip(&self.refusals) {
            page.sample(&format!("{{reason=\"{}\"}}", refusal.label()), read(count));
        }
        page.counter(
            "push_client_events_ignored_total",
            "Events sent by browsers, which are ignored.",
            &self.client_events_ignored,
        );
        page.counter(
            "push_client_flood_disconnects_total",
            "Connections closed for sending more than client_events_per_minute.",
            &self.flooders_disconnected,
        );
        page.counter(
            "push_rooms_truncated_total",
            "Connections given more rooms than max_rooms_per_connection.",
            &self.rooms_truncated,
        );
        page.family(
            "push_forwarding_header_problems_total",
            "counter",
            "New sessions from a trusted proxy that named no browser: a missing header (no per-IP limits), an unreadable one (limited as the proxy).",
        );
        for (problem, count) in ForwardingProblem::ALL.iter().zip(&self.forwarding_problems) {
            page.sample(&format!("{{problem=\"{}\"}}", problem.label()), read(count));
        }
        page.family(
            "push_handshake_rate_addresses",
            "gauge",
            "Addresses (IPv4, IPv6 /64) the handshake rate limit remembers.",
        );
        page.sample("", read(&self.handshake_addresses));
        page.counter(
            "push_handshake_rate_unremembered_total",
            "New sessions not rate-limited because the handshake rate table was full.",
            &self.handshakes_unremembered,
        );
        page.family(
            "push_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        page.sample("", self.started.elapsed().as_secs());
        page.text
    }
}

/// Writes the exposition format one family at a time.
#[derive(Default)]
struct Page {
    text: String,
    family: &'static str,
}

impl Page {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, labels: &str, value: u64) {
        self.sample_with_suffix("", labels, value);
    }

    fn sample_with_suffix(&mut self, suffix: &str, labels: &str, value: u64) {
        let _ = writeln!(self.text, "{}{suffix}{labels} {value}", self.family);
    }

    fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{line}");
    }

    fn counter(&mut self, name: &'static str, help: &str, counter: &AtomicU64) {
        self.family(name, "counter", help);
        self.sample("", read(counter));
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

    /// The format requires each family's samples to follow its own HELP
    /// and TYPE lines, as one group.
    #[test]
    fn samples_follow_their_family() {
        let census = Census {
            namespaces: vec![NamespaceCensus {
                namespace: "/".into(),
                ..NamespaceCensus::default()
            }],
        };
        let text = Metrics::default().prometheus_text(&census);
        let (mut family, mut kind) = ("", "");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                (family, kind) = rest.split_once(' ').unwrap();
            } else if !line.starts_with('#') {
                // By exact name: `push_connections_refused_total` is not a
                // sample of `push_connections`.
                let series = line.split(['{', ' ']).next().unwrap();
                let belongs = match kind {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| series.strip_suffix(suffix) == Some(family)),
                    _ => series == family,
                };
                assert!(belongs, "{line} is outside its family {family}");
            }
        }
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
                websocket_protocol4: 1,
                polling_protocol4: 0,
                users_online: 1,
            }],
        };
        let stats: serde_json::Value =
            serde_json::from_str(&metrics.stats_json(&census, None)).unwrap();
        assert_eq!(stats["connections"], 4);
        assert_eq!(stats["namespaces"]["/"]["websocket"], 3);
        assert_eq!(stats["namespaces"]["/"]["protocol4"], 1);
        assert_eq!(stats["deliveries"], 3);
        assert_eq!(stats["namespaces"]["/"]["users_online"], 1);
    }
}

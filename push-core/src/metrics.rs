//! The daemon's metrics: `/metrics` (Prometheus text format, version 0.0.4)
//! and the STATS request.
//!
//! Metrics are kept with the `prometheus-client` crate: one [`Registry`]
//! holding every family, so the exposition (HELP and TYPE lines, escaping,
//! grouping) is the crate's and not ours. Things that only ever grow
//! (publishes, deliveries, auth calls, refusals) are counters bumped on the
//! hot path; the time auth calls take is a histogram.
//!
//! Things that go up and down with the live connection set (connections per
//! namespace, transport and protocol, users online) are not counted at all:
//! they are read from the socket.io server when someone scrapes, in a
//! [`Census`], and written by [`LiveGauges`], a collector, so they can never
//! drift from the truth after a missed decrement.
//!
//! The names are documented, with what to alert on, in docs/operations.md;
//! they are an interface, so renaming one is a breaking change.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use push_client::ErrorCode;
use serde_json::json;

use tokio::sync::watch;

use crate::outcomes::{
    AuthOutcome, CatchUpOutcome, ForwardingProblem, LinkState, Refusal, ReloadResult,
};

/// The `Content-Type` of the `/metrics` page.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the auth latency histogram buckets, spread
/// around the default 2 s timeout.
const AUTH_LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// One label: its name and value.
type Label = [(&'static str, &'static str); 1];

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

/// All metrics of one daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// What the live gauges are written from; set by each scrape.
    live: std::sync::Arc<LiveGauges>,
    /// One scrape at a time: each sets the census, then encodes it.
    scraping: Mutex<()>,
    publishes: Counter,
    deliveries: Counter,
    deliveries_dropped: Counter,
    catch_ups_started: Counter,
    catch_ups: Family<Label, Counter>,
    missed_notices: Counter,
    publishers_accepted: Counter,
    publishers_connected: Gauge,
    protocol_errors: Family<Label, Counter>,
    /// All protocol errors, for STATS; not a family of its own on the
    /// page, where `sum(push_protocol_errors_total)` says the same.
    protocol_errors_sum: Counter,
    auth_calls: Family<Label, Counter>,
    auth_latency: Histogram,
    auth_cache_hits: Counter,
    auth_merged: Counter,
    auth_retries: Counter,
    auth_retries_exhausted: Counter,
    refusals: Family<Label, Counter>,
    client_events_ignored: Counter,
    flooders_disconnected: Counter,
    rooms_truncated: Counter,
    forwarding_problems: Family<Label, Counter>,
    handshake_addresses: Gauge,
    handshakes_unremembered: Counter,
    reloads: Family<Label, Counter>,
    cluster_partial_answers: Counter,
    connections_opened: Counter,
    connections_closed: Counter,
    delivered_bytes: Counter,
    client_event_bytes: Counter,
}

/// socket.io traffic since start, for the Admin UI's charts
/// (`admin_ui::stats` sends its changes each second as `aggregatedEvents`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Connections to a namespace opened (`/admin` included).
    pub connections_opened: u64,
    pub connections_closed: u64,
    /// Events browsers emitted, and the size of their data as received.
    pub events_in: u64,
    pub bytes_in: u64,
    /// Messages handed to connections by publishes (each recipient counts
    /// one), and their payloads' size (each recipient counts the payload's
    /// JSON text once).
    pub messages_out: u64,
    pub bytes_out: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let live = std::sync::Arc::new(LiveGauges {
            started: Instant::now(),
            census: Mutex::default(),
            cluster_link: Mutex::default(),
        });
        let mut metrics = Self {
            registry: Registry::default(),
            live: live.clone(),
            scraping: Mutex::new(()),
            publishes: Counter::default(),
            deliveries: Counter::default(),
            deliveries_dropped: Counter::default(),
            catch_ups_started: Counter::default(),
            catch_ups: Family::default(),
            missed_notices: Counter::default(),
            publishers_accepted: Counter::default(),
            publishers_connected: Gauge::default(),
            protocol_errors: Family::default(),
            protocol_errors_sum: Counter::default(),
            auth_calls: Family::default(),
            auth_latency: Histogram::new(AUTH_LATENCY_BUCKETS),
            auth_cache_hits: Counter::default(),
            auth_merged: Counter::default(),
            auth_retries: Counter::default(),
            auth_retries_exhausted: Counter::default(),
            refusals: Family::default(),
            client_events_ignored: Counter::default(),
            flooders_disconnected: Counter::default(),
            rooms_truncated: Counter::default(),
            forwarding_problems: Family::default(),
            handshake_addresses: Gauge::default(),
            handshakes_unremembered: Counter::default(),
            reloads: Family::default(),
            cluster_partial_answers: Counter::default(),
            connections_opened: Counter::default(),
            connections_closed: Counter::default(),
            delivered_bytes: Counter::default(),
            client_event_bytes: Counter::default(),
        };
        // Every known label value is shown from the start, at 0, so a
        // rate() over it works before the first event and a dashboard
        // does not show "no data" for "none happened".
        for outcome in AuthOutcome::ALL {
            drop(
                metrics
                    .auth_calls
                    .get_or_create(&[("outcome", outcome.label())]),
            );
        }
        for refusal in Refusal::ALL {
            drop(
                metrics
                    .refusals
                    .get_or_create(&[("reason", refusal.label())]),
            );
        }
        for problem in ForwardingProblem::ALL {
            drop(
                metrics
                    .forwarding_problems
                    .get_or_create(&[("problem", problem.label())]),
            );
        }
        for result in ReloadResult::ALL {
            drop(metrics.reloads.get_or_create(&[("result", result.label())]));
        }
        for outcome in CatchUpOutcome::ALL {
            drop(
                metrics
                    .catch_ups
                    .get_or_create(&[("outcome", outcome.label())]),
            );
        }
        metrics.register(live);
        metrics
    }
}

impl Metrics {
    /// Puts every family in the registry, in the order of the page. The
    /// registry adds `_total` to counters' names and a full stop to help.
    fn register(&mut self, live: std::sync::Arc<LiveGauges>) {
        let r = &mut self.registry;
        r.register_collector(Box::new(LiveConnections(live.clone())));
        r.register(
            "push_publishes",
            "Publishes accepted from the site",
            self.publishes.clone(),
        );
        r.register(
            "push_deliveries",
            "Messages handed to socket.io connections",
            self.deliveries.clone(),
        );
        r.register(
            "push_delivered_bytes",
            "Payload bytes handed to socket.io connections: each delivery counts its message's JSON text once",
            self.delivered_bytes.clone(),
        );
        r.register(
            "push_deliveries_dropped",
            "Messages lost for connections whose send buffer was full (recovery off) or that were closing",
            self.deliveries_dropped.clone(),
        );
        r.register(
            "push_slow_consumer_catch_ups_started",
            "Connections taken off live messages because their send buffer was full, to be caught up from the history (recovery on)",
            self.catch_ups_started.clone(),
        );
        r.register(
            "push_slow_consumer_catch_ups",
            "Catch-ups of connections whose send buffer was full, by how they ended: recovered (sent every message), reset (sent push:recovery recovered false: the history no longer held them), closed (the connection closed first)",
            self.catch_ups.clone(),
        );
        r.register(
            "push_missed_notices",
            "push:missed events sent to pages that missed messages because their send buffer was full (recovery off)",
            self.missed_notices.clone(),
        );
        r.register(
            "push_publishers_connected",
            "Open publish socket connections",
            self.publishers_connected.clone(),
        );
        r.register(
            "push_publishers_accepted",
            "Publish socket connections accepted",
            self.publishers_accepted.clone(),
        );
        r.register(
            "push_protocol_errors",
            "Error replies to publishers, by code",
            self.protocol_errors.clone(),
        );
        r.register(
            "push_auth_calls",
            "Calls to the auth URL, by outcome",
            self.auth_calls.clone(),
        );
        r.register(
            "push_auth_cache_hits",
            "Connections identified from the auth cache",
            self.auth_cache_hits.clone(),
        );
        r.register(
            "push_auth_merged",
            "Connections identified by an identical lookup's call already in flight",
            self.auth_merged.clone(),
        );
        r.register(
            "push_auth_retries",
            "Background attempts to identify connections the site could not identify at connect",
            self.auth_retries.clone(),
        );
        r.register(
            "push_auth_retries_exhausted",
            "Connections still unidentified after every background attempt",
            self.auth_retries_exhausted.clone(),
        );
        r.register(
            "push_auth_latency_seconds",
            "Time taken by calls to the auth URL",
            self.auth_latency.clone(),
        );
        r.register(
            "push_connections_opened",
            "socket.io connections to a namespace opened, /admin included",
            self.connections_opened.clone(),
        );
        r.register(
            "push_connections_closed",
            "socket.io connections to a namespace closed, /admin included",
            self.connections_closed.clone(),
        );
        r.register(
            "push_connections_refused",
            "socket.io connections refused, by reason",
            self.refusals.clone(),
        );
        r.register(
            "push_client_events_ignored",
            "Events sent by browsers, which are ignored",
            self.client_events_ignored.clone(),
        );
        r.register(
            "push_client_event_bytes",
            "Bytes of the events sent by browsers, as received (their JSON text)",
            self.client_event_bytes.clone(),
        );
        r.register(
            "push_client_flood_disconnects",
            "Connections closed for sending more than client_events_per_minute",
            self.flooders_disconnected.clone(),
        );
        r.register(
            "push_rooms_truncated",
            "Connections given more rooms than max_rooms_per_connection",
            self.rooms_truncated.clone(),
        );
        r.register(
            "push_forwarding_header_problems",
            "New sessions from a trusted proxy that named no browser: a missing header (no per-IP limits), an unreadable one (limited as the proxy)",
            self.forwarding_problems.clone(),
        );
        r.register(
            "push_handshake_rate_addresses",
            "Addresses (IPv4, IPv6 /64) the handshake rate limit remembers",
            self.handshake_addresses.clone(),
        );
        r.register(
            "push_handshake_rate_unremembered",
            "New sessions not rate-limited because the handshake rate table was full",
            self.handshakes_unremembered.clone(),
        );
        r.register(
            "push_config_reloads",
            "Configuration reloads, by result: applied, or refused and the running configuration kept",
            self.reloads.clone(),
        );
        r.register(
            "push_cluster_partial_answers",
            "Counts marked partial (a publish's recipients or a user's connections while another node's presence was overdue or being resent; STATS where a node did not answer within cluster_wait; anything while this node could not reach Redis)",
            self.cluster_partial_answers.clone(),
        );
        r.register_collector(Box::new(ClusterLink(live.clone())));
        r.register_collector(Box::new(Uptime(live)));
    }

    /// Shows `push_cluster_link_up` from now on, following `state`.
    pub fn watch_cluster_link(&self, state: watch::Receiver<LinkState>) {
        *self
            .live
            .cluster_link
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(state);
    }

    pub fn cluster_partial_answer(&self) {
        self.cluster_partial_answers.inc();
    }

    /// A publish handed to `recipients` connections, its payload
    /// `payload_bytes` long: three relaxed atomic adds, whatever the
    /// number of recipients.
    pub fn publish_delivered(&self, recipients: u64, payload_bytes: u64) {
        self.publishes.inc();
        self.deliveries.inc_by(recipients);
        self.delivered_bytes
            .inc_by(recipients.saturating_mul(payload_bytes));
    }

    pub fn connection_opened(&self) {
        self.connections_opened.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_closed.inc();
    }

    /// The socket.io traffic so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            connections_opened: self.connections_opened.get(),
            connections_closed: self.connections_closed.get(),
            events_in: self.client_events_ignored.get(),
            bytes_in: self.client_event_bytes.get(),
            messages_out: self.deliveries.get(),
            bytes_out: self.delivered_bytes.get(),
        }
    }

    pub fn publisher_connected(&self) {
        self.publishers_accepted.inc();
        self.publishers_connected.inc();
    }

    pub fn publisher_disconnected(&self) {
        self.publishers_connected.dec();
    }

    pub fn protocol_error(&self, code: ErrorCode) {
        self.protocol_errors
            .get_or_create(&[("code", code.name())])
            .inc();
        self.protocol_errors_sum.inc();
    }

    pub fn auth_call(&self, outcome: AuthOutcome, took: Duration) {
        self.auth_calls
            .get_or_create(&[("outcome", outcome.label())])
            .inc();
        self.auth_latency.observe(took.as_secs_f64());
    }

    pub fn auth_cache_hit(&self) {
        self.auth_cache_hits.inc();
    }

    /// A lookup answered by an identical lookup's call in flight.
    pub fn auth_merged(&self) {
        self.auth_merged.inc();
    }

    /// A background attempt to identify an admitted connection.
    pub fn auth_retry(&self) {
        self.auth_retries.inc();
    }

    /// A connection whose background attempts all failed.
    pub fn auth_retries_exhausted(&self) {
        self.auth_retries_exhausted.inc();
    }

    pub fn connection_refused(&self, refusal: Refusal) {
        self.refusals
            .get_or_create(&[("reason", refusal.label())])
            .inc();
    }

    /// Messages lost for connections: their buffer was full (recovery
    /// off), or they were closing.
    pub fn deliveries_dropped(&self, count: u64) {
        self.deliveries_dropped.inc_by(count);
    }

    /// A connection whose buffer was full is to be caught up.
    pub fn catch_up_started(&self) {
        self.catch_ups_started.inc();
    }

    pub fn catch_up_ended(&self, outcome: CatchUpOutcome) {
        self.catch_ups
            .get_or_create(&[("outcome", outcome.label())])
            .inc();
    }

    /// A page was told, with `push:missed`, that it missed messages.
    pub fn missed_notice_sent(&self) {
        self.missed_notices.inc();
    }

    /// An event a browser emitted, `bytes` long as received.
    pub fn client_event_ignored(&self, bytes: u64) {
        self.client_events_ignored.inc();
        self.client_event_bytes.inc_by(bytes);
    }

    pub fn flooder_disconnected(&self) {
        self.flooders_disconnected.inc();
    }

    pub fn rooms_truncated(&self) {
        self.rooms_truncated.inc();
    }

    pub fn forwarding_problem(&self, problem: ForwardingProblem) {
        self.forwarding_problems
            .get_or_create(&[("problem", problem.label())])
            .inc();
    }

    /// How many addresses the handshake rate limit remembers now.
    pub fn set_handshake_addresses(&self, addresses: u64) {
        self.handshake_addresses
            .set(i64::try_from(addresses).unwrap_or(i64::MAX));
    }

    /// A handshake let through unremembered because the table was full.
    pub fn handshake_unremembered(&self) {
        self.handshakes_unremembered.inc();
    }

    pub fn config_reloaded(&self, result: ReloadResult) {
        self.reloads
            .get_or_create(&[("result", result.label())])
            .inc();
    }

    fn auth_calls_where(&self, keep: impl Fn(AuthOutcome) -> bool) -> u64 {
        AuthOutcome::ALL
            .into_iter()
            .filter(|outcome| keep(*outcome))
            .map(|outcome| {
                self.auth_calls
                    .get_or_create(&[("outcome", outcome.label())])
                    .get()
            })
            .sum()
    }

    /// The STATS reply: a JSON object meant for scripts and dashboards.
    /// Its figures are this node's; in a cluster, `cluster` adds every
    /// node's connections.
    pub fn stats_json(&self, census: &Census, cluster: Option<ClusterSummary<'_>>) -> String {
        let (connections, namespaces) = census.summary();
        let auth_calls = self.auth_calls_where(|_| true);
        let mut stats = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol_version": push_client::PROTOCOL_VERSION,
            "uptime_seconds": self.live.started.elapsed().as_secs(),
            "connections": connections,
            "namespaces": namespaces,
            "publishes": self.publishes.get(),
            "deliveries": self.deliveries.get(),
            "deliveries_dropped": self.deliveries_dropped.get(),
            "publishers": {
                "connected": self.publishers_connected.get(),
                "accepted_total": self.publishers_accepted.get(),
            },
            "protocol_errors": self.protocol_errors_sum.get(),
            "auth": {
                "calls": auth_calls,
                "failures": self.auth_calls_where(AuthOutcome::is_failure),
                "cache_hits": self.auth_cache_hits.get(),
                "merged": self.auth_merged.get(),
                "retries": self.auth_retries.get(),
                "retries_exhausted": self.auth_retries_exhausted.get(),
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

    /// The `/metrics` page: every family, the live gauges written from
    /// `census`.
    pub fn prometheus_text(&self, census: Census) -> String {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        *self.live.census.lock().unwrap_or_else(|p| p.into_inner()) = census;
        let mut page = String::new();
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut page, &self.registry)
        {
            // Writing to a String cannot fail; a collector could only
            // fail by a bug, which is logged rather than served half.
            tracing::error!(%error, "the metrics page could not be written");
            page.clear();
        }
        page
    }
}

/// What the collectors write at each scrape: the census the scrape took,
/// and when the daemon started.
#[derive(Debug)]
struct LiveGauges {
    started: Instant,
    census: Mutex<Census>,
    /// The cluster link's state, on a node of a cluster.
    cluster_link: Mutex<Option<watch::Receiver<LinkState>>>,
}

/// Writes `push_connections` and `push_users_online` from the census of
/// the scrape.
#[derive(Debug)]
struct LiveConnections(std::sync::Arc<LiveGauges>);

impl Collector for LiveConnections {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let census = self.0.census.lock().unwrap_or_else(|p| p.into_inner());
        let mut connections = encoder.encode_descriptor(
            "push_connections",
            "Open socket.io connections, by namespace, transport and socket.io protocol.",
            None,
            MetricType::Gauge,
        )?;
        for ns in &census.namespaces {
            // Protocol 5 is spoken by socket.io clients 3.x and 4.x, 4 by
            // the old 1.x and 2.x clients (docs/old-clients.md).
            for (transport, protocol, count) in [
                ("websocket", "5", ns.websocket),
                ("polling", "5", ns.polling),
                ("websocket", "4", ns.websocket_protocol4),
                ("polling", "4", ns.polling_protocol4),
            ] {
                let labels = [
                    ("namespace", ns.namespace.as_str()),
                    ("transport", transport),
                    ("protocol", protocol),
                ];
                ConstGauge::new(count).encode(connections.encode_family(&labels)?)?;
            }
        }
        let mut users = encoder.encode_descriptor(
            "push_users_online",
            "Distinct identified users with at least one connection.",
            None,
            MetricType::Gauge,
        )?;
        for ns in &census.namespaces {
            let labels = [("namespace", ns.namespace.as_str())];
            ConstGauge::new(ns.users_online).encode(users.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Writes `push_cluster_link_up`, on a node of a cluster only: a node on
/// its own has no link to be down.
#[derive(Debug)]
struct ClusterLink(std::sync::Arc<LiveGauges>);

impl Collector for ClusterLink {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let link = self
            .0
            .cluster_link
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(state) = link.as_ref() else {
            return Ok(());
        };
        let up = encoder.encode_descriptor(
            "push_cluster_link_up",
            "1 while this node is connected to the cluster's Redis, 0 while it reconnects (it then delivers to its own browsers only).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(*state.borrow() == LinkState::Up)).encode(up)
    }
}

/// Writes `push_uptime_seconds`.
#[derive(Debug)]
struct Uptime(std::sync::Arc<LiveGauges>);

impl Collector for Uptime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let uptime = encoder.encode_descriptor(
            "push_uptime_seconds",
            "Seconds since the daemon started.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.0.started.elapsed().as_secs()).encode(uptime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.auth_call(AuthOutcome::User, Duration::from_millis(20));
        let text = metrics.prometheus_text(Census::default());
        assert!(
            text.contains("push_auth_latency_seconds_bucket{le=\"0.01\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("push_auth_latency_seconds_bucket{le=\"0.025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("push_auth_latency_seconds_bucket{le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("push_auth_latency_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("push_auth_calls_total{outcome=\"user\"} 1\n"),
            "{text}"
        );
    }

    /// The series names are the interface dashboards and alerts use; a
    /// counter's `_total` is written once, by the crate.
    #[test]
    fn series_keep_their_names() {
        let metrics = Metrics::default();
        metrics.publish_delivered(2, 10);
        metrics.connection_refused(Refusal::Origin);
        let census = Census {
            namespaces: vec![NamespaceCensus {
                namespace: "/chat\"x".into(),
                websocket: 3,
                users_online: 2,
                ..NamespaceCensus::default()
            }],
        };
        let text = metrics.prometheus_text(census);
        for line in [
            "# TYPE push_publishes_total counter",
            "push_publishes_total 1",
            "push_deliveries_total 2",
            "push_delivered_bytes_total 20",
            "push_connections_refused_total{reason=\"origin_not_allowed\"} 1",
            "push_connections_refused_total{reason=\"unauthorized\"} 0",
            "push_connections{namespace=\"/chat\\\"x\",transport=\"websocket\",protocol=\"5\"} 3",
            "push_users_online{namespace=\"/chat\\\"x\"} 2",
            "# TYPE push_uptime_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("_total_total"), "{text}");
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
        let text = Metrics::default().prometheus_text(census);
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
        metrics.publish_delivered(3, 10);
        metrics.auth_call(AuthOutcome::Timeout, Duration::from_secs(2));
        metrics.auth_call(AuthOutcome::Guest, Duration::from_millis(2));
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
        assert_eq!(stats["auth"]["calls"], 2);
        assert_eq!(stats["auth"]["failures"], 1);
    }
}

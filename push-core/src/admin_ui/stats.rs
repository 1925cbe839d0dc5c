//! `server_stats`: what this node tells every Admin UI every two seconds.
//!
//! The document is `instrument()`'s: the node's name, host, pid and
//! uptime, its engine.io connections (and how many of them poll), each
//! namespace's socket.io connections, and `aggregatedEvents`, the traffic
//! of each second since the last document. The UI adds up the documents of
//! every node (one `serverId` each) for its dashboard and charts.
//!
//! The traffic figures are push-core's own counters (`metrics::Traffic`,
//! also on `/metrics`), sampled each second:
//! - `rawConnection`, `rawDisconnection`: socket.io connections to a
//!   namespace opened and closed (a browser on two namespaces counts two);
//! - `packetsIn`, `bytesIn`: events browsers emitted, and their JSON text;
//! - `packetsOut`, `bytesOut`: messages that publishes taken by this node
//!   handed to connections on every node, and each one's payload size.
//!   Recovery replays and socket.io's own packets (connect, ping) are not
//!   counted.
//!
//! Counting is at the socket.io level, not in the transport, so it costs
//! the delivery path one relaxed atomic add per publish for each figure,
//! whatever the number of recipients.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use socketioxide::TransportType;

use crate::cluster::Io;
use crate::metrics::Traffic;

/// How often `server_stats` is sent, as `instrument()` does.
pub const STATS_EVERY: Duration = Duration::from_secs(2);

/// How often the traffic counters are sampled: the UI charts per second.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The `server_stats` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStats<'a> {
    pub server_id: &'a str,
    pub hostname: &'a str,
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime: f64,
    pub clients_count: usize,
    pub polling_clients_count: usize,
    pub aggregated_events: &'a [AggregatedEvent],
    pub namespaces: Vec<NamespaceDetails>,
}

/// One namespace's connections.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceDetails {
    pub name: String,
    pub sockets_count: usize,
}

/// How many of one kind of event happened in one second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatedEvent {
    /// The start of the second, in milliseconds since the epoch.
    pub timestamp: u64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub count: u64,
}

/// The connections of this node, as `server_stats` counts them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Connections {
    pub clients: usize,
    pub polling_clients: usize,
    pub namespaces: Vec<(String, usize)>,
}

/// Counts this node's engine.io connections and each namespace's sockets.
///
/// A browser joined to two namespaces (as old clients are, to `/` and their
/// own) is one engine.io connection with two sockets. socketioxide keeps
/// one request head per engine.io connection, shared by its sockets, so
/// the head's address tells connections apart while they are alive; it is
/// compared, never shown.
pub fn connections(io: &Io) -> Connections {
    let mut seen = HashSet::new();
    let mut polling = 0;
    let mut namespaces = Vec::new();
    for operators in io.nsps() {
        let name = operators.ns_path().to_owned();
        let sockets = operators.sockets();
        for socket in &sockets {
            let head: *const _ = socket.req_parts();
            if seen.insert(head) && socket.transport_type() == TransportType::Polling {
                polling += 1;
            }
        }
        namespaces.push((name, sockets.len()));
    }
    namespaces.sort();
    Connections {
        clients: seen.len(),
        polling_clients: polling,
        namespaces,
    }
}

/// Turns the running totals into the events of each second.
#[derive(Debug, Default)]
pub struct TrafficSampler {
    last: Traffic,
    pending: Vec<AggregatedEvent>,
}

impl TrafficSampler {
    pub fn new(now: Traffic) -> Self {
        Self {
            last: now,
            pending: Vec::new(),
        }
    }

    /// Records what happened since the last sample, as the events of the
    /// second that ended at `at`; kinds with nothing are left out, as
    /// `instrument()` leaves them.
    pub fn sample(&mut self, now: Traffic, at: SystemTime) {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let second = (millis / 1000).saturating_sub(1) * 1000;
        let last = std::mem::replace(&mut self.last, now);
        for (kind, total, before) in [
            (
                "rawConnection",
                now.connections_opened,
                last.connections_opened,
            ),
            (
                "rawDisconnection",
                now.connections_closed,
                last.connections_closed,
            ),
            ("packetsIn", now.events_in, last.events_in),
            ("bytesIn", now.bytes_in, last.bytes_in),
            ("packetsOut", now.messages_out, last.messages_out),
            ("bytesOut", now.bytes_out, last.bytes_out),
        ] {
            let count = total.saturating_sub(before);
            if count > 0 {
                self.pending.push(AggregatedEvent {
                    timestamp: second,
                    kind,
                    count,
                });
            }
        }
    }

    /// The events sampled since the last call.
    pub fn take(&mut self) -> Vec<AggregatedEvent> {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_keeps_what_changed() {
        let mut sampler = TrafficSampler::new(Traffic::default());
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        sampler.sample(
            Traffic {
                connections_opened: 3,
                messages_out: 10,
                bytes_out: 250,
                ..Traffic::default()
            },
            at,
        );
        sampler.sample(
            Traffic {
                connections_opened: 3,
                connections_closed: 1,
                messages_out: 10,
                bytes_out: 250,
                ..Traffic::default()
            },
            at + SAMPLE_EVERY,
        );
        let events = sampler.take();
        let first = 1_699_999_999_000;
        let second = 1_700_000_000_000;
        assert_eq!(
            events,
            [
                AggregatedEvent {
                    timestamp: first,
                    kind: "rawConnection",
                    count: 3
                },
                AggregatedEvent {
                    timestamp: first,
                    kind: "packetsOut",
                    count: 10
                },
                AggregatedEvent {
                    timestamp: first,
                    kind: "bytesOut",
                    count: 250
                },
                AggregatedEvent {
                    timestamp: second,
                    kind: "rawDisconnection",
                    count: 1
                },
            ]
        );
        assert!(sampler.take().is_empty());
    }

    #[test]
    fn the_document_has_instrument_s_names() {
        let stats = ServerStats {
            server_id: "node-1",
            hostname: "host",
            pid: 7,
            uptime: 1.5,
            clients_count: 2,
            polling_clients_count: 1,
            aggregated_events: &[AggregatedEvent {
                timestamp: 1000,
                kind: "packetsOut",
                count: 4,
            }],
            namespaces: vec![NamespaceDetails {
                name: "/".to_owned(),
                sockets_count: 2,
            }],
        };
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            serde_json::json!({
                "serverId": "node-1",
                "hostname": "host",
                "pid": 7,
                "uptime": 1.5,
                "clientsCount": 2,
                "pollingClientsCount": 1,
                "aggregatedEvents": [{ "timestamp": 1000, "type": "packetsOut", "count": 4 }],
                "namespaces": [{ "name": "/", "socketsCount": 2 }],
            })
        );
    }
}

//! The site, publishing at a steady rate to the nodes in turn, and noting
//! which publishes were acknowledged: those every page they were meant for
//! must receive (or be told it cannot).
//!
//! Publishes go one at a time, each waiting for its answer, so message ids
//! follow the order the cluster numbered them in, except for a publish
//! that timed out on a stopped node and was numbered when it woke up: that
//! one was not acknowledged, and the pages' order is judged by offsets, not
//! ids.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use push_client::{Client, ClientOptions, Publish, Target};

use super::cluster::NAMESPACE;

/// The socket.io event of every message of the run.
pub const EVENT: &str = "tick";

/// How long one publish may take; a stopped node takes forever.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes of filler in each message, for a payload of about 150 bytes.
const FILLER: usize = 100;

/// One message the site published.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// For one user only, or everyone.
    pub to: Option<u32>,
    /// A node answered PUBLISHED.
    pub acknowledged: bool,
    /// The answer said some node was left out (Redis could not be reached).
    pub partial: bool,
}

/// What the site published, by message id (id 0 is never used).
#[derive(Debug, Default)]
pub struct Ledger {
    pub sent: Vec<Sent>,
}

/// Publishes `rate` messages a second, one in `private_share` of them to a
/// random user of `0..users`, the rest to everyone, until `stop`; each
/// through the next node's socket.
pub fn publish(
    sockets: Vec<PathBuf>,
    rate: f64,
    users: u32,
    private_share: f64,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut clients: Vec<Client> = sockets
        .into_iter()
        .map(|socket_path| {
            Client::new(ClientOptions {
                socket_path,
                timeout: PUBLISH_TIMEOUT,
                client_name: "push-core-chaos".to_owned(),
            })
        })
        .collect();
    let filler = "x".repeat(FILLER);
    let started = Instant::now();
    let mut id: usize = 1;
    ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sent
        .push(Sent {
            to: None,
            acknowledged: false,
            partial: false,
        });
    while !stop.load(Ordering::Acquire) {
        let due = started + Duration::from_secs_f64(id as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let to = (fastrand::f64() < private_share).then(|| fastrand::u32(0..users));
        let payload = serde_json::json!({ "id": id, "to": to, "p": filler }).to_string();
        let user = to.map(|to| to.to_string());
        let target = match &user {
            Some(user) => Target::users([user.as_str()]),
            None => Target::everyone(),
        };
        let node = id % clients.len();
        let client = &mut clients[node];
        let answer = client.publish(&Publish {
            namespace: NAMESPACE,
            event: EVENT,
            target,
            payload: payload.as_bytes(),
        });
        let sent = match answer {
            Ok(count) => Sent {
                to,
                acknowledged: true,
                partial: count.partial,
            },
            Err(_) => Sent {
                to,
                acknowledged: false,
                partial: false,
            },
        };
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sent
            .push(sent);
        id += 1;
    }
}

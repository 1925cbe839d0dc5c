//! Limits on what browsers can make the daemon hold.
//!
//! - Connections: at most `max_connections` in total and
//!   `max_connections_per_ip` from one address. A connection holds a
//!   [`ConnectionPermit`] for as long as it lives; dropping the permit (when
//!   socketioxide drops the socket) gives the place back, so no code path can
//!   forget to.
//! - New connections per address and minute (`handshakes_per_ip_per_minute`),
//!   checked on the engine.io handshake request, before any state is made.
//! - Events a browser emits: push-core never acts on them, and a connection
//!   that sends more than `client_events_per_minute` is disconnected. Its
//!   engine.io session may not join any namespace again for a minute, so a
//!   client that ignores the disconnect cannot come back with a fresh budget.
//!   (socketioxide offers no way to close the engine.io transport from a
//!   handler, as socket.io's `disconnect(true)` does; refusing every rejoin
//!   is the closest we get.)
//!
//! Limits set to 0 are off.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use socketioxide::socket::Sid;

use crate::config::ClientLimits;
use crate::metrics::{Metrics, Refusal};

/// The window of the per-address handshake and per-connection event limits.
const WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered for the handshake limit before stale ones are swept;
/// bounds that table's memory under a flood from many addresses.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// A count within a fixed one-minute window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            count: 0,
        }
    }

    /// Counts one more; false once `limit` is exceeded in this window.
    fn count_one(&mut self, now: Instant, limit: u32) -> bool {
        if now.duration_since(self.started) >= WINDOW {
            *self = Self::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

/// Shared counters behind the connection and handshake limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    settings: ClientLimits,
    metrics: Arc<Metrics>,
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    handshakes: Mutex<HashMap<IpAddr, Window>>,
    /// engine.io sessions disconnected for flooding, and when.
    flooders: Mutex<HashMap<Sid, Instant>>,
}

/// A connection's place under the limits; released when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    address: Option<IpAddr>,
}

impl ConnectionLimits {
    pub fn new(settings: ClientLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            metrics,
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            handshakes: Mutex::new(HashMap::new()),
            flooders: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &ClientLimits {
        &self.settings
    }

    /// Takes a place for a new connection from `address`, if one is free.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<ConnectionPermit, Refusal> {
        let max_total = self.settings.max_connections;
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        // The permit releases what was taken, including on the refusals below.
        let mut permit = ConnectionPermit {
            limits: self.clone(),
            address: None,
        };
        if max_total != 0 && previous >= max_total {
            return Err(self.refuse(Refusal::TooManyConnections, address));
        }
        if let Some(address) = address {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let open = per_address.entry(address).or_insert(0);
            let max = self.settings.max_connections_per_ip;
            if max != 0 && *open >= max {
                drop(per_address);
                return Err(self.refuse(Refusal::TooManyFromAddress, Some(address)));
            }
            *open += 1;
            permit.address = Some(address);
        }
        Ok(permit)
    }

    /// May `address` start one more connection this minute?
    pub fn allow_handshake(&self, address: IpAddr) -> bool {
        let limit = self.settings.handshakes_per_ip_per_minute;
        if limit == 0 {
            return true;
        }
        let now = Instant::now();
        let mut handshakes = self.handshakes.lock().unwrap_or_else(|p| p.into_inner());
        if handshakes.len() >= MAX_TRACKED_ADDRESSES {
            handshakes.retain(|_, window| now.duration_since(window.started) < WINDOW);
        }
        let allowed = handshakes
            .entry(address)
            .or_insert_with(|| Window::new(now))
            .count_one(now, limit);
        if !allowed {
            drop(handshakes);
            self.refuse(Refusal::HandshakeRate, Some(address));
        }
        allowed
    }

    /// Remembers that the engine.io session `sid` flooded events.
    pub fn ban_flooder(&self, sid: Sid) {
        let now = Instant::now();
        let mut flooders = self.flooders.lock().unwrap_or_else(|p| p.into_inner());
        if flooders.len() >= MAX_TRACKED_ADDRESSES {
            flooders.retain(|_, banned| now.duration_since(*banned) < WINDOW);
        }
        flooders.insert(sid, now);
    }

    /// Refuses a namespace join from a session banned for flooding.
    pub fn check_not_flooder(&self, sid: Sid) -> Result<(), Refusal> {
        let flooders = self.flooders.lock().unwrap_or_else(|p| p.into_inner());
        match flooders.get(&sid) {
            Some(banned) if banned.elapsed() < WINDOW => {
                drop(flooders);
                Err(self.refuse(Refusal::Flooding, None))
            }
            _ => Ok(()),
        }
    }

    fn refuse(&self, refusal: Refusal, address: Option<IpAddr>) -> Refusal {
        self.metrics.connection_refused(refusal);
        tracing::info!(reason = refusal.label(), address = ?address, "refused a connection");
        refusal
    }

    fn release(&self, address: Option<IpAddr>) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(address) = address {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(open) = per_address.get_mut(&address) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.release(self.address);
    }
}

/// Refuses engine.io handshakes (requests that open a new session, i.e.
/// carry no `sid`) from addresses over their per-minute budget.
pub async fn guard_handshake_rate(
    State(limits): State<Arc<ConnectionLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let opens_session = request.uri().path().starts_with("/socket.io")
        && !request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("sid=")));
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if opens_session
        && let Some(address) = address
        && !limits.allow_handshake(address)
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many new connections from this address\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// Counts the events one connection emits; see the module documentation.
#[derive(Debug)]
pub struct EventBudget {
    limit: u32,
    window: Mutex<Window>,
}

impl EventBudget {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            window: Mutex::new(Window::new(Instant::now())),
        }
    }

    /// Counts one event.
    pub fn spend(&self) -> Spent {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.count_one(Instant::now(), self.limit) {
            Spent::Within
        } else if window.count == self.limit.saturating_add(1) {
            Spent::JustExceeded
        } else {
            // Events read before the disconnect took effect.
            Spent::AlreadyExceeded
        }
    }
}

/// What one more event did to a connection's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    Within,
    /// This event went over: disconnect now, once.
    JustExceeded,
    AlreadyExceeded,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(settings: ClientLimits) -> Arc<ConnectionLimits> {
        ConnectionLimits::new(settings, Arc::new(Metrics::default()))
    }

    #[test]
    fn permits_are_given_back_when_dropped() {
        let limits = limits(ClientLimits {
            max_connections: 2,
            ..ClientLimits::default()
        });
        let a = limits.admit(None).unwrap();
        let _b = limits.admit(None).unwrap();
        assert_eq!(limits.admit(None).unwrap_err(), Refusal::TooManyConnections);
        drop(a);
        assert!(limits.admit(None).is_ok());
    }

    #[test]
    fn per_address_limit_counts_each_address() {
        let limits = limits(ClientLimits {
            max_connections_per_ip: 1,
            ..ClientLimits::default()
        });
        let one: IpAddr = "127.0.0.2".parse().unwrap();
        let two: IpAddr = "127.0.0.3".parse().unwrap();
        let _first = limits.admit(Some(one)).unwrap();
        assert_eq!(
            limits.admit(Some(one)).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        let _second = limits.admit(Some(two)).unwrap();
        assert_eq!(
            limits.total.load(Ordering::Relaxed),
            2,
            "refusals give their place back"
        );
    }

    #[test]
    fn handshake_budget_is_per_minute() {
        let limits = limits(ClientLimits {
            handshakes_per_ip_per_minute: 2,
            ..ClientLimits::default()
        });
        let address: IpAddr = "127.0.0.4".parse().unwrap();
        assert!(limits.allow_handshake(address));
        assert!(limits.allow_handshake(address));
        assert!(!limits.allow_handshake(address));
        assert!(limits.allow_handshake("127.0.0.5".parse().unwrap()));
    }

    #[test]
    fn event_budget_runs_out() {
        let budget = EventBudget::new(3);
        assert!((0..3).all(|_| budget.spend() == Spent::Within));
        assert_eq!(budget.spend(), Spent::JustExceeded);
        assert_eq!(budget.spend(), Spent::AlreadyExceeded);
    }
}

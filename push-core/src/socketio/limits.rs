//! Limits on what browsers can make the daemon hold.
//!
//! - Connections: at most `max_connections` in total and
//!   `max_connections_per_ip` from one address. A connection holds a
//!   [`ConnectionPermit`] for as long as it lives; dropping the permit (when
//!   socketioxide drops the socket) gives the place back, so no code path can
//!   forget to. An address's count is removed when it drops to zero, so that
//!   table never holds more entries than there are open connections.
//! - New connections per address and minute (`handshakes_per_ip_per_minute`),
//!   checked on the engine.io handshake request, before any state is made.
//!   governor's keyed GCRA limiter does the counting: a burst of the whole
//!   minute's budget, then one more every minute / budget. See
//!   [`HandshakeRate`] for how its table is kept bounded.
//! - Events a browser emits: push-core never acts on them, and a connection
//!   that sends more than `client_events_per_minute` is disconnected. Its
//!   engine.io session may not join any namespace again for a minute, so a
//!   client that ignores the disconnect cannot come back with a fresh budget.
//!   (socketioxide offers no way to close the engine.io transport from a
//!   handler, as socket.io's `disconnect(true)` does; refusing every rejoin
//!   is the closest we get.)
//!
//! The limits change on a configuration reload ([`ConnectionLimits::update`]):
//! a new value applies to the next decision. Lowering `max_connections` or
//! `max_connections_per_ip` closes no connection already open; a new
//! `handshakes_per_ip_per_minute` starts a fresh table, so every address
//! has its whole budget again; a new `client_events_per_minute` applies to
//! connections already open too.
//!
//! "Address" means the browser's, worked out by [`ClientAddress`], counted
//! per IPv4 address and per IPv6 /64 ([`AddressKey`]). Limits set to 0 are
//! off.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::Quota;
use governor::clock::DefaultClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{RateLimiter, StateStore};
use socketioxide::socket::Sid;
use tracing::Level;

use super::client_address::{ClientAddress, TrustedProxies};
use crate::config::ClientLimits;
use crate::log_throttle::{Line, LogThrottle, Source};
use crate::metrics::Metrics;
use crate::outcomes::{ForwardingProblem, Refusal};

/// The window of the per-connection event limit and of a flooder's ban.
const WINDOW: Duration = Duration::from_secs(60);

/// Most addresses the handshake rate limit remembers at once. An entry is
/// a few dozen bytes, so the table stays within a few megabytes. A sweep
/// forgets an address once its state is that of a fresh one (at 600 a
/// minute, 0.2 s after a single handshake), so only more addresses than
/// this between two sweeps fill it: a flood from many IPv4 addresses or IPv6
/// /64s (one /48 holds 65,536 of them).
const MAX_RATE_LIMITED_ADDRESSES: usize = 65_536;

/// How often the handshake table drops addresses whose budget is whole
/// again (governor's `retain_recent`). Sweeping scans the whole table, so
/// it runs on a clock, not on every handshake.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How often the table is swept while it is full, to make room sooner.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);

/// Engine.io sessions remembered as flooders; past this, bans older than
/// [`WINDOW`] are swept.
const MAX_REMEMBERED_FLOODERS: usize = 65_536;

/// What per-address limits count: an IPv4 address, or the /64 network of
/// an IPv6 address. One IPv6 host is usually given a whole /64 and can use
/// any address in it, so counting single IPv6 addresses would hand it
/// 2^64 budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(Ipv4Addr),
    /// The top 64 bits of the address.
    V6Network(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => AddressKey::V4(v4),
            IpAddr::V6(v6) => AddressKey::V6Network((v6.to_bits() >> 64) as u64),
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressKey::V4(v4) => write!(f, "{v4}"),
            AddressKey::V6Network(network) => {
                write!(f, "{}/64", Ipv6Addr::from_bits(u128::from(*network) << 64))
            }
        }
    }
}

/// governor's DashMap store that stops growing at a capacity.
///
/// When it is full (after a sweep), a handshake from an address it does
/// not know is judged as a first handshake and not remembered: it gets
/// through. The alternative, refusing every new address, would let a
/// flood from many addresses lock out every browser arriving meanwhile, a
/// reconnect storm after a restart included; a per-address limit cannot
/// stop a flood from that many addresses anyway (`max_connections` and the
/// OS still bound it). Addresses already in the table stay limited.
///
/// The bound is checked, not locked: handshakes from new addresses that
/// race each other may each add one past it, a handful at most.
#[derive(Debug)]
struct BoundedStore {
    table: DashMapStateStore<AddressKey>,
    metrics: Arc<Metrics>,
    /// Set when an address was let through unremembered, so that a flood
    /// is logged once; cleared when a sweep leaves room again.
    overflowed: AtomicBool,
}

impl StateStore for BoundedStore {
    type Key = AddressKey;

    fn measure_and_replace<T, F, E>(&self, key: &AddressKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !self.table.contains_key(key) && self.table.len() >= MAX_RATE_LIMITED_ADDRESSES {
            self.metrics.handshake_unremembered();
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    addresses = MAX_RATE_LIMITED_ADDRESSES,
                    "the handshake rate table is full: new addresses are not rate-limited until it is swept (see docs/security.md)"
                );
            }
            return f(None).map(|(decision, _)| decision);
        }
        let decision = self.table.measure_and_replace(key, f);
        self.metrics
            .set_handshake_addresses(self.table.len() as u64);
        decision
    }
}

impl ShrinkableKeyedStateStore<AddressKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.table.retain_recent(drop_below);
        let remembered = self.table.len();
        if remembered < MAX_RATE_LIMITED_ADDRESSES {
            self.overflowed.store(false, Ordering::Relaxed);
        }
        self.metrics.set_handshake_addresses(remembered as u64);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.table);
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The handshakes-per-address-and-minute limit.
///
/// Memory: governor forgets nothing by itself, so the table is swept of
/// addresses whose budget is whole again every [`SWEEP_EVERY`] (every
/// [`SWEEP_WHEN_FULL_EVERY`] while full), and it never holds more than
/// [`MAX_RATE_LIMITED_ADDRESSES`]; see [`BoundedStore`] for what happens
/// past that.
#[derive(Debug)]
struct HandshakeRate {
    limiter: RateLimiter<AddressKey, BoundedStore, DefaultClock, NoOpMiddleware>,
    last_sweep: Mutex<Instant>,
}

impl HandshakeRate {
    fn new(per_minute: NonZeroU32, metrics: Arc<Metrics>) -> Self {
        let store = BoundedStore {
            table: DashMapStateStore::default(),
            metrics,
            overflowed: AtomicBool::new(false),
        };
        Self {
            limiter: RateLimiter::new(
                Quota::per_minute(per_minute),
                store,
                DefaultClock::default(),
            ),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    fn allow(&self, key: AddressKey) -> bool {
        self.sweep_if_due();
        self.limiter.check_key(&key).is_ok()
    }

    /// Drops forgettable addresses when a sweep is due; one caller sweeps,
    /// the others go on.
    fn sweep_if_due(&self) {
        let Ok(mut last_sweep) = self.last_sweep.try_lock() else {
            return;
        };
        let full = self.limiter.len() >= MAX_RATE_LIMITED_ADDRESSES;
        let every = if full {
            SWEEP_WHEN_FULL_EVERY
        } else {
            SWEEP_EVERY
        };
        if last_sweep.elapsed() < every {
            return;
        }
        *last_sweep = Instant::now();
        let before = self.limiter.len();
        self.limiter.retain_recent();
        // Give the memory of a flood back once it is over, but do not
        // reallocate on every sweep.
        if self.limiter.len() < before / 2 {
            self.limiter.shrink_to_fit();
        }
    }
}

/// The limits in force, swapped whole on a reload.
#[derive(Debug)]
struct Current {
    settings: Arc<ClientLimits>,
    trusted_proxies: TrustedProxies,
    /// None when `handshakes_per_ip_per_minute` is 0.
    handshakes: Option<Arc<HandshakeRate>>,
}

/// Shared counters behind the connection and handshake limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    current: ArcSwap<Current>,
    metrics: Arc<Metrics>,
    total: AtomicUsize,
    per_address: Mutex<HashMap<AddressKey, usize>>,
    /// engine.io sessions disconnected for flooding, and when.
    flooders: Mutex<HashMap<Sid, Instant>>,
    /// Whether each forwarding problem was logged yet: once is enough to
    /// show a misconfigured proxy, every time would flood the log.
    warned_missing_header: AtomicBool,
    warned_unreadable_header: AtomicBool,
    /// The refusals' lines, one per reason and address and interval.
    refusal_lines: LogThrottle,
}

/// A connection's place under the limits; released when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    address: Option<AddressKey>,
}

impl ConnectionLimits {
    pub fn new(settings: ClientLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        let current = Current::new(settings, None, &metrics);
        Arc::new(Self {
            current: ArcSwap::from_pointee(current),
            metrics,
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            flooders: Mutex::new(HashMap::new()),
            warned_missing_header: AtomicBool::new(false),
            warned_unreadable_header: AtomicBool::new(false),
            refusal_lines: LogThrottle::default(),
        })
    }

    /// The limits in force now.
    pub fn settings(&self) -> Arc<ClientLimits> {
        self.current.load().settings.clone()
    }

    /// Puts `settings` in force for every decision from now on. The
    /// handshake table is kept unless its per-minute budget changed.
    /// `max_client_packet` and `max_buffered_messages` keep their values:
    /// socketioxide fixed them when the server was built, so they need a
    /// restart (`reload::is_live_key`), and `settings()` shows what runs.
    pub fn update(&self, settings: ClientLimits) {
        let current = self.current.load_full();
        let settings = ClientLimits {
            max_client_packet: current.settings.max_client_packet,
            max_buffered_messages: current.settings.max_buffered_messages,
            ..settings
        };
        let handshakes = (settings.handshakes_per_ip_per_minute
            == current.settings.handshakes_per_ip_per_minute)
            .then(|| current.handshakes.clone())
            .flatten();
        self.current
            .store(Arc::new(Current::new(settings, handshakes, &self.metrics)));
    }

    /// Whether any limit is counted per address; if none is, which address
    /// a browser has does not matter.
    fn limits_per_address(&self) -> bool {
        let current = self.current.load();
        current.settings.max_connections_per_ip != 0 || current.handshakes.is_some()
    }

    /// Who a request from `peer` with `headers` comes from.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddress {
        ClientAddress::of(peer, headers, &self.current.load().trusted_proxies)
    }

    /// Takes a place for a new connection from `address`, if one is free.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<ConnectionPermit, Refusal> {
        let settings = self.settings();
        let max_total = settings.max_connections;
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        // The permit releases what was taken, including on the refusals below.
        let mut permit = ConnectionPermit {
            limits: self.clone(),
            address: None,
        };
        if max_total != 0 && previous >= max_total {
            return Err(self.refuse(Refusal::TooManyConnections, address.map(AddressKey::from)));
        }
        if let Some(key) = address.map(AddressKey::from) {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let open = per_address.entry(key).or_insert(0);
            let max = settings.max_connections_per_ip;
            if max != 0 && *open >= max {
                drop(per_address);
                return Err(self.refuse(Refusal::TooManyFromAddress, Some(key)));
            }
            *open += 1;
            permit.address = Some(key);
        }
        Ok(permit)
    }

    /// May the browser at `address` start one more connection this minute?
    pub fn allow_handshake(&self, address: IpAddr) -> bool {
        let current = self.current.load();
        let Some(handshakes) = &current.handshakes else {
            return true;
        };
        let key = AddressKey::from(address);
        let allowed = handshakes.allow(key);
        if !allowed {
            self.refuse(Refusal::HandshakeRate, Some(key));
        }
        allowed
    }

    /// Addresses the handshake rate limit remembers right now.
    #[cfg(test)]
    fn rate_limited_addresses(&self) -> usize {
        self.current
            .load()
            .handshakes
            .as_ref()
            .map_or(0, |h| h.limiter.len())
    }

    /// Counts, and logs once, a trusted proxy that did not say which
    /// browser it forwards for.
    fn note_forwarding_problem(&self, address: ClientAddress) {
        let (problem, warned, consequence) = match address {
            ClientAddress::Unnamed => (
                ForwardingProblem::Missing,
                &self.warned_missing_header,
                "per-IP limits do not apply to its connections",
            ),
            ClientAddress::Unreadable(_) => (
                ForwardingProblem::Unreadable,
                &self.warned_unreadable_header,
                "its connections are limited as if they all came from the proxy",
            ),
            ClientAddress::Direct(_) | ClientAddress::Forwarded(_) => return,
        };
        self.metrics.forwarding_problem(problem);
        if !warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                problem = problem.label(),
                "a trusted proxy sent a request without a usable X-Forwarded-For or Forwarded header; {consequence} (logged once; counted in push_forwarding_header_problems_total; see docs/security.md)"
            );
        }
    }

    /// Remembers that the engine.io session `sid` flooded events.
    pub fn ban_flooder(&self, sid: Sid) {
        let now = Instant::now();
        let mut flooders = self.flooders.lock().unwrap_or_else(|p| p.into_inner());
        if flooders.len() >= MAX_REMEMBERED_FLOODERS {
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

    fn refuse(&self, refusal: Refusal, address: Option<AddressKey>) -> Refusal {
        self.metrics.connection_refused(refusal);
        let line = Line {
            kind: refusal.label(),
            level: Level::INFO,
        };
        if !self.refusal_lines.allow(line, Source(address)) {
            return refusal;
        }
        match address {
            Some(address) => {
                tracing::info!(reason = refusal.label(), %address, "refused a connection");
            }
            None => tracing::info!(reason = refusal.label(), "refused a connection"),
        }
        refusal
    }

    fn release(&self, address: Option<AddressKey>) {
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

impl Current {
    /// The limits of `settings`, keeping `handshakes` when given (the
    /// table of a budget that did not change).
    fn new(
        settings: ClientLimits,
        handshakes: Option<Arc<HandshakeRate>>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let handshakes = handshakes.or_else(|| {
            NonZeroU32::new(settings.handshakes_per_ip_per_minute)
                .map(|per_minute| Arc::new(HandshakeRate::new(per_minute, metrics.clone())))
        });
        Self {
            trusted_proxies: TrustedProxies::new(settings.trusted_proxies.clone()),
            settings: Arc::new(settings),
            handshakes,
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.release(self.address);
    }
}

/// Refuses engine.io handshakes (requests that open a new session, i.e.
/// carry no `sid`) from browsers over their per-minute budget.
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
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if opens_session
        && limits.limits_per_address()
        && let Some(peer) = peer
    {
        let address = limits.client_address(peer, request.headers());
        limits.note_forwarding_problem(address);
        if let Some(address) = address.limit_key()
            && !limits.allow_handshake(address)
        {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many new connections from this address\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

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

/// Counts the events one connection emits; see the module documentation.
#[derive(Debug)]
pub struct EventBudget {
    window: Mutex<Window>,
    /// Set once the connection went over, so it is disconnected once.
    exceeded: AtomicBool,
}

impl Default for EventBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBudget {
    pub fn new() -> Self {
        Self {
            window: Mutex::new(Window::new(Instant::now())),
            exceeded: AtomicBool::new(false),
        }
    }

    /// Counts one event against `limit` a minute: the limit in force when
    /// the event arrives, so a reload applies to open connections too.
    pub fn spend(&self, limit: u32) -> Spent {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.count_one(Instant::now(), limit) {
            Spent::Within
        } else if !self.exceeded.swap(true, Ordering::Relaxed) {
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_addresses_and_ipv6_networks_are_keys() {
        assert_eq!(
            AddressKey::from(ip("203.0.113.7")),
            AddressKey::from(ip("::ffff:203.0.113.7")),
            "an IPv4 browser on a dual-stack listener"
        );
        assert_ne!(
            AddressKey::from(ip("203.0.113.7")),
            AddressKey::from(ip("203.0.113.8"))
        );
        assert_eq!(
            AddressKey::from(ip("2001:db8:1:2::1")),
            AddressKey::from(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            AddressKey::from(ip("2001:db8:1:2::1")),
            AddressKey::from(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            AddressKey::from(ip("2001:db8:1:2:3:4:5:6")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            AddressKey::from(ip("203.0.113.7")).to_string(),
            "203.0.113.7"
        );
    }

    #[test]
    fn one_ipv6_network_shares_its_budgets() {
        let limits = limits(ClientLimits {
            max_connections_per_ip: 1,
            handshakes_per_ip_per_minute: 1,
            ..ClientLimits::default()
        });
        let _first = limits.admit(Some(ip("2001:db8::1"))).unwrap();
        assert_eq!(
            limits.admit(Some(ip("2001:db8::2"))).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        let _other_network = limits.admit(Some(ip("2001:db8:0:1::1"))).unwrap();

        assert!(limits.allow_handshake(ip("2001:db8::1")));
        assert!(!limits.allow_handshake(ip("2001:db8::ffff")));
        assert!(limits.allow_handshake(ip("2001:db8:0:1::1")));
    }

    #[test]
    fn an_address_is_forgotten_when_its_last_connection_goes() {
        let limits = limits(ClientLimits {
            max_connections_per_ip: 2,
            ..ClientLimits::default()
        });
        let permits: Vec<_> = (1..=100u8)
            .map(|n| limits.admit(Some(IpAddr::from([198, 51, 100, n]))).unwrap())
            .collect();
        let tracked = || limits.per_address.lock().unwrap().len();
        assert_eq!(tracked(), 100);
        drop(permits);
        assert_eq!(tracked(), 0);
        let refused = limits.admit(Some(ip("198.51.100.1")));
        assert!(refused.is_ok());
        drop(refused);
        assert_eq!(tracked(), 0, "nothing is left behind");
    }

    #[test]
    fn the_handshake_table_stops_growing_when_full() {
        let metrics = Arc::new(Metrics::default());
        let limits = ConnectionLimits::new(
            ClientLimits {
                handshakes_per_ip_per_minute: 1,
                ..ClientLimits::default()
            },
            metrics.clone(),
        );
        let early = ip("198.51.100.1");
        assert!(limits.allow_handshake(early));
        let flood = MAX_RATE_LIMITED_ADDRESSES as u32 + 1_000;
        for n in 0..flood {
            // At one handshake a minute, none of these is forgotten by a
            // sweep while the loop runs: only the bound holds the table.
            assert!(limits.allow_handshake(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))));
        }
        assert_eq!(limits.rate_limited_addresses(), MAX_RATE_LIMITED_ADDRESSES);
        assert!(
            !limits.allow_handshake(early),
            "an address it knows stays limited"
        );
        let late = ip("203.0.113.1");
        assert!(limits.allow_handshake(late));
        assert!(
            limits.allow_handshake(late),
            "a new address is let through, unremembered"
        );
        assert_eq!(limits.rate_limited_addresses(), MAX_RATE_LIMITED_ADDRESSES);
        let page = metrics.prometheus_text(Default::default());
        assert!(
            page.contains(&format!(
                "push_handshake_rate_addresses {MAX_RATE_LIMITED_ADDRESSES}\n"
            )),
            "{page}"
        );
        // The flood past the early address's place, and the late address twice.
        let unremembered = flood as usize + 1 - MAX_RATE_LIMITED_ADDRESSES + 2;
        assert!(
            page.contains(&format!(
                "push_handshake_rate_unremembered_total {unremembered}\n"
            )),
            "{page}"
        );
    }

    #[test]
    fn an_update_applies_to_the_next_decision_and_closes_nothing() {
        let limits = limits(ClientLimits {
            max_connections: 2,
            handshakes_per_ip_per_minute: 1,
            ..ClientLimits::default()
        });
        let address = ip("198.51.100.9");
        let _a = limits.admit(None).unwrap();
        let _b = limits.admit(None).unwrap();
        assert!(limits.allow_handshake(address));
        assert!(!limits.allow_handshake(address));

        limits.update(ClientLimits {
            max_connections: 1,
            handshakes_per_ip_per_minute: 2,
            max_buffered_messages: 1,
            ..ClientLimits::default()
        });
        assert_eq!(limits.total.load(Ordering::Relaxed), 2, "nothing closed");
        assert_eq!(limits.admit(None).unwrap_err(), Refusal::TooManyConnections);
        assert!(limits.allow_handshake(address), "a new budget, a new table");
        assert_eq!(
            limits.settings().max_buffered_messages,
            ClientLimits::default().max_buffered_messages,
            "fixed at start"
        );
    }

    #[test]
    fn event_budget_runs_out() {
        let budget = EventBudget::new();
        assert!((0..3).all(|_| budget.spend(3) == Spent::Within));
        assert_eq!(budget.spend(3), Spent::JustExceeded);
        assert_eq!(budget.spend(3), Spent::AlreadyExceeded);
    }
}

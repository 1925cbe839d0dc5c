//! A socket.io v4 client over WebSocket, written for the load generator.
//!
//! The Node client would be the bottleneck long before either server, so
//! each simulated browser is one tokio task speaking engine.io v4 itself:
//! open the WebSocket straight away (`transport=websocket`, no polling
//! upgrade), join the namespace with `40/ns,`, answer pings, and parse the
//! events the servers push. Only what the bench needs is understood.
//!
//! A [`Target`] may also ask for the protocol of the socket.io 1.x and 2.x
//! clients that old pages load (socket.io protocol 4, engine.io 3): the
//! same packets, but `EIO=3`, the server connects the client to `/` by
//! itself, and the client sends the pings (`2`) and the server answers.
//!
//! A [`Fleet`] opens many of these from one process. Linux gives each
//! source address about 28k ephemeral ports, and TIME_WAIT keeps them for a
//! minute after a run, so connections are spread round-robin over the
//! loopback addresses 127.0.0.2, 127.0.0.3, ... (the whole of 127/8 reaches
//! the loopback interface without configuration).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::recorder::Recorder;

/// The start of the event push-core sends first after each connect.
const RECOVERY_STATUS: &str = "[\"push:recovery\",";

/// Loopback source addresses the connections are spread over. 64 addresses
/// × ~28k ports is far more than one run opens, even with every port of a
/// previous scenario still in TIME_WAIT.
const SOURCE_ADDRESSES: u32 = 64;

/// How long one connection may take to be joined to the namespace.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how the simulated browsers connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub server: SocketAddr,
    pub namespace: String,
    /// Speak socket.io protocol 4, as a 1.x or 2.x client does.
    pub protocol4: bool,
}

/// Counts shared by every connection of a fleet.
#[derive(Default)]
pub struct FleetCounters {
    /// Connections joined to the namespace and still open.
    pub joined: AtomicUsize,
    /// Connections that failed to open or to join.
    pub failed: AtomicUsize,
    /// Connections the server closed (or that broke) while the bench was
    /// not shutting down.
    pub dropped: AtomicUsize,
}

/// Many simulated browsers, opened from this process.
pub struct Fleet {
    target: Target,
    recorder: Arc<Recorder>,
    pub counters: Arc<FleetCounters>,
    stop: CancellationToken,
    next_source: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    pub fn new(target: Target, recorder: Arc<Recorder>, next_source: Arc<AtomicUsize>) -> Self {
        Self {
            target,
            recorder,
            counters: Arc::new(FleetCounters::default()),
            stop: CancellationToken::new(),
            next_source,
            tasks: Vec::new(),
        }
    }

    /// Opens one connection per entry of `users` (the `uid` cookie it
    /// carries, `None` for an anonymous browser), at most `in_flight`
    /// handshakes at a time, and waits until every one is joined or failed.
    /// Returns how long that took.
    pub async fn connect(&mut self, users: &[Option<u32>], in_flight: usize) -> Duration {
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(in_flight.max(1)));
        let before = self.settled();
        for &user in users {
            let source = self.next_source.fetch_add(1, Ordering::Relaxed) as u32;
            let source =
                Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + source % SOURCE_ADDRESSES);
            let browser = Browser {
                target: self.target.clone(),
                user,
                source,
                recorder: self.recorder.clone(),
                counters: self.counters.clone(),
                stop: self.stop.clone(),
            };
            let gate = gate.clone();
            self.tasks.push(tokio::spawn(async move {
                browser.run(gate).await;
            }));
        }
        let expected = before + users.len();
        while self.settled() < expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if started.elapsed() > JOIN_TIMEOUT * 2 {
                break;
            }
        }
        started.elapsed()
    }

    fn settled(&self) -> usize {
        self.counters.joined.load(Ordering::Acquire)
            + self.counters.failed.load(Ordering::Acquire)
            + self.counters.dropped.load(Ordering::Acquire)
    }

    pub fn joined(&self) -> usize {
        self.counters.joined.load(Ordering::Acquire)
    }

    pub fn failed(&self) -> usize {
        self.counters.failed.load(Ordering::Acquire)
    }

    pub fn dropped(&self) -> usize {
        self.counters.dropped.load(Ordering::Acquire)
    }

    /// Closes every connection (without a close handshake: the sockets are
    /// simply dropped, as a browser tab that goes away).
    pub async fn close(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// One simulated browser tab.
struct Browser {
    target: Target,
    user: Option<u32>,
    source: Ipv4Addr,
    recorder: Arc<Recorder>,
    counters: Arc<FleetCounters>,
    stop: CancellationToken,
}

impl Browser {
    async fn run(self, gate: Arc<Semaphore>) {
        let permit = gate.acquire_owned().await;
        let joined: Result<anyhow::Result<(WebSocket, Duration)>, _> = tokio::select! {
            joined = tokio::time::timeout(JOIN_TIMEOUT, self.open()) => joined,
            () = self.stop.cancelled() => return,
        };
        drop(permit);
        let (ws, ping_interval) = match joined {
            Ok(Ok(joined)) => joined,
            Ok(Err(error)) => {
                tracing_failure(&error);
                self.counters.failed.fetch_add(1, Ordering::AcqRel);
                return;
            }
            Err(_) => {
                self.counters.failed.fetch_add(1, Ordering::AcqRel);
                return;
            }
        };
        self.counters.joined.fetch_add(1, Ordering::AcqRel);
        let ended_by_server = self.listen(ws, ping_interval).await;
        self.counters.joined.fetch_sub(1, Ordering::AcqRel);
        if ended_by_server {
            self.counters.dropped.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Opens the WebSocket and joins the namespace. Returns the socket and
    /// the ping interval the server announced.
    async fn open(&self) -> anyhow::Result<(WebSocket, Duration)> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(self.source.into(), 0))
            .with_context(|| format!("binding {}", self.source))?;
        let stream = socket
            .connect(self.target.server)
            .await
            .context("connecting")?;
        stream.set_nodelay(true)?;
        let engineio = if self.target.protocol4 { 3 } else { 4 };
        let url = format!(
            "ws://{}/socket.io/?EIO={engineio}&transport=websocket",
            self.target.server
        );
        let mut request = url.into_client_request()?;
        // What a desktop browser sends besides the WebSocket headers: both
        // servers keep the handshake's headers for the connection's life,
        // so their size is part of the memory per connection.
        let headers = request.headers_mut();
        for (name, value) in BROWSER_HEADERS {
            headers.insert(*name, value.parse()?);
        }
        headers.insert("origin", format!("http://{}", self.target.server).parse()?);
        if let Some(user) = self.user {
            request
                .headers_mut()
                .insert("cookie", format!("uid={user}").parse()?);
        }
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .context("websocket handshake")?;

        // engine.io open packet, then socket.io connect to the namespace.
        let ping_interval = match ws.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with('0') => ping_interval(&text[1..]),
            other => bail!("expected the engine.io open packet, got {other:?}"),
        };
        // Protocol 4 writes a connect without data as `40/ns`, and the
        // server may answer `40/ns` or `40/ns,`; protocol 5 always has the
        // comma.
        let connect = if self.target.protocol4 {
            format!("40{}", self.target.namespace)
        } else {
            format!("40{},", self.target.namespace)
        };
        ws.send(Message::text(connect.clone())).await?;
        let refused_prefix = format!("44{}", self.target.namespace);
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let rest = text.strip_prefix(connect.as_str());
                    if rest.is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', ','])) {
                        return Ok((ws, ping_interval));
                    }
                    if text.starts_with(&refused_prefix) {
                        bail!("the server refused the namespace: {text}");
                    }
                    if text.as_str() == "2" {
                        ws.send(Message::text("3")).await?;
                    }
                }
                other => bail!("expected the namespace connect ack, got {other:?}"),
            }
        }
    }

    /// Answers pings (protocol 5) or sends them (protocol 4) and records
    /// events until the bench stops (false) or the connection ends (true).
    async fn listen(&self, mut ws: WebSocket, ping_interval: Duration) -> bool {
        let event_prefix = format!("42{},", self.target.namespace);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        loop {
            let message = tokio::select! {
                message = ws.next() => message,
                _ = ping.tick(), if self.target.protocol4 => {
                    if ws.send(Message::text("2")).await.is_err() {
                        return !self.stop.is_cancelled();
                    }
                    continue;
                }
                () = self.stop.cancelled() => return false,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(event) = text.strip_prefix(event_prefix.as_str()) {
                        // push-core's recovery status after each connect
                        // (docs/recovery.md) is not a message of the bench.
                        if !event.starts_with(RECOVERY_STATUS) {
                            self.recorder.record_event(event, self.user);
                        }
                    } else if text.as_str() == "2" && ws.send(Message::text("3")).await.is_err() {
                        return !self.stop.is_cancelled();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return !self.stop.is_cancelled();
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The ping interval of an engine.io open packet's JSON, or the default
/// both servers use (25 s) when it has none.
fn ping_interval(open: &str) -> Duration {
    let millis = serde_json::from_str::<serde_json::Value>(open)
        .ok()
        .and_then(|open| open.get("pingInterval")?.as_u64())
        .unwrap_or(DEFAULT_PING_INTERVAL_MS);
    Duration::from_millis(millis.max(1))
}

/// engine.io's default ping interval.
const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;

type WebSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Headers of a desktop Chrome's socket.io WebSocket request, besides the
/// WebSocket handshake's own, the Origin and the cookie.
const BROWSER_HEADERS: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9,de;q=0.8"),
    ("cache-control", "no-cache"),
    ("pragma", "no-cache"),
];

/// The generator keeps thousands of sockets; tungstenite's default 128 KiB
/// read buffer each would cost it gigabytes of address space for nothing.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

fn tracing_failure(error: &anyhow::Error) {
    static REPORTED: AtomicUsize = AtomicUsize::new(0);
    // A handful of examples is enough to see what went wrong.
    if REPORTED.fetch_add(1, Ordering::Relaxed) < 3 {
        eprintln!("bench: a connection failed: {error:#}");
    }
}

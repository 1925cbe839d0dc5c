//! A page with missed-message recovery, as the page helper runs one
//! (clients/js): it keeps the last offset it saw, reconnects with it after
//! any failure, and notes everything that arrives, for the verdict.
//!
//! It speaks socket.io v4 over a WebSocket itself, like the load
//! generator's browsers (`crate::client`), through the chaos relay, from an
//! address of its own. It notices a dead connection by its heartbeat: no
//! ping from the server within the ping interval and timeout ends it.
//!
//! A page can be told to stop reading for a while (a frozen tab, a phone
//! that lost its network but not its connection): it reads nothing, not
//! even pings, until then.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use super::cluster::NAMESPACE;

/// The page's socket buffers the kernel what it has not read yet; small,
/// as a phone's, so a page that stops reading is soon seen by its node.
const RECEIVE_BUFFER: u32 = 4 * 1024;

/// How long opening a connection and joining may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's heartbeat (the nodes' `--ping-interval` and
/// `--ping-timeout`): a connection silent for longer is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// Waits before reconnecting: the first, then doubling to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// What the page received of one published message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Receipt {
    /// Times received.
    pub count: u8,
    /// Resets (`push:recovery` with `recovered: false`) received before
    /// the first receipt.
    pub resets_before: u16,
    /// The first receipt had no offset (a mark or nothing): the page's node
    /// handed it out while it could not reach Redis.
    pub unnumbered: bool,
}

/// Everything the page noted.
#[derive(Debug, Default)]
pub struct PageRecord {
    /// By message id.
    pub receipts: Vec<Receipt>,
    pub received: u64,
    /// Messages with a lower offset than the one before them in the same
    /// epoch.
    pub out_of_order: u64,
    /// Private messages for another user.
    pub misdelivered: u64,
    /// `push:recovery` with `recovered: false` after the first status.
    pub resets: u16,
    /// `push:missed` notices (only with recovery off).
    pub missed_notices: u64,
    pub connects: u64,
    /// The page had joined at least once.
    pub joined: bool,
    /// The offset of the last message received, as the server wrote it.
    last_offset: Option<String>,
    last_position: Option<(u64, u64)>,
    statuses: u64,
}

impl PageRecord {
    /// The last message id received, if any.
    pub fn last_id(&self) -> Option<usize> {
        self.receipts.iter().rposition(|receipt| receipt.count > 0)
    }

    fn message(&mut self, id: usize, to: Option<u32>, user: u32, offset: Option<&str>) {
        self.received += 1;
        if to.is_some_and(|to| to != user) {
            self.misdelivered += 1;
        }
        if self.receipts.len() <= id {
            self.receipts.resize(id + 1, Receipt::default());
        }
        let receipt = &mut self.receipts[id];
        if receipt.count == 0 {
            receipt.resets_before = self.resets;
            receipt.unnumbered = offset.and_then(parse_offset).is_none();
        }
        receipt.count = receipt.count.saturating_add(1);
        // Messages handed out while the cluster's history could not be
        // reached carry a mark instead of an offset (or nothing): nothing
        // to order them by, but the mark goes back at the next reconnect.
        if let Some(offset) = offset {
            if let Some(position) = parse_offset(offset) {
                if let Some((epoch, seq)) = self.last_position
                    && epoch == position.0
                    && position.1 < seq
                {
                    self.out_of_order += 1;
                }
                self.last_position = Some(position);
            }
            self.last_offset = Some(offset.to_owned());
        }
    }

    fn status(&mut self, recovered: bool, offset: Option<&str>) {
        self.statuses += 1;
        if !recovered {
            if self.statuses > 1 {
                self.resets = self.resets.saturating_add(1);
            }
            // It goes on from where the stream is now.
            if let Some(offset) = offset {
                self.last_offset = Some(offset.to_owned());
                self.last_position = parse_offset(offset);
            }
        } else if self.last_offset.is_none() {
            self.last_offset = offset.map(str::to_owned);
        }
    }
}

/// `<epoch hex>-<seq>`.
fn parse_offset(offset: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = offset.split_once('-')?;
    Some((u64::from_str_radix(epoch, 16).ok()?, seq.parse().ok()?))
}

/// A page's controls and record, shared with the run.
pub struct Page {
    pub index: usize,
    pub user: u32,
    pub record: Mutex<PageRecord>,
    /// Connected and joined now.
    pub connected: AtomicBool,
    /// Reads nothing until this time (milliseconds on the run's clock).
    slow_until_ms: AtomicU64,
}

impl Page {
    pub fn new(index: usize, user: u32) -> Arc<Self> {
        Arc::new(Self {
            index,
            user,
            record: Mutex::new(PageRecord::default()),
            connected: AtomicBool::new(false),
            slow_until_ms: AtomicU64::new(0),
        })
    }

    pub fn address(&self) -> Ipv4Addr {
        super::relay::page_address(self.index)
    }

    /// Stops reading for `duration`.
    pub fn stall(&self, clock: Instant, duration: Duration) {
        let until = clock.elapsed() + duration;
        self.slow_until_ms
            .store(until.as_millis() as u64, Ordering::Release);
    }

    /// Reads again at once.
    pub fn unstall(&self) {
        self.slow_until_ms.store(0, Ordering::Release);
    }

    fn record(&self) -> std::sync::MutexGuard<'_, PageRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects through `relay` and stays connected, reconnecting with the
    /// last offset after every failure, until `stop`.
    pub async fn run(self: Arc<Self>, relay: SocketAddr, clock: Instant, stop: CancellationToken) {
        let mut retry = FIRST_RETRY;
        while !stop.is_cancelled() {
            let session = self.session(relay, clock, &stop);
            if let Ok(Ok(ws)) = tokio::time::timeout(JOIN_TIMEOUT, session.joined()).await {
                retry = FIRST_RETRY;
                self.connected.store(true, Ordering::Release);
                let _ = session.listen(ws).await;
                self.connected.store(false, Ordering::Release);
            }
            let wait = retry.mul_f64(0.5 + fastrand::f64() / 2.0);
            retry = (retry * 2).min(LAST_RETRY);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn session<'a>(
        &'a self,
        relay: SocketAddr,
        clock: Instant,
        stop: &'a CancellationToken,
    ) -> Session<'a> {
        Session {
            page: self,
            relay,
            clock,
            stop,
        }
    }
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// One connection of a page.
struct Session<'a> {
    page: &'a Page,
    relay: SocketAddr,
    clock: Instant,
    stop: &'a CancellationToken,
}

impl Session<'_> {
    /// Opens the WebSocket and joins the namespace with the last offset.
    async fn joined(&self) -> anyhow::Result<WebSocket> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.page.address().into(), 0))?;
        socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
        let stream = socket.connect(self.relay).await.context("connecting")?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{}/socket.io/?EIO=4&transport=websocket", self.relay)
            .into_client_request()?;
        request
            .headers_mut()
            .insert("cookie", format!("uid={}", self.page.user).parse()?);
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with('0') => {}
            other => bail!("expected the engine.io open packet, got {other:?}"),
        }
        let offset = self.page.record().last_offset.clone();
        let auth = match offset {
            Some(offset) => serde_json::json!({ "offset": offset }).to_string(),
            None => "{}".to_owned(),
        };
        ws.send(Message::text(format!("40{NAMESPACE},{auth}")))
            .await?;
        let joined = format!("40{NAMESPACE},");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.starts_with(&joined) => {
                    let mut record = self.page.record();
                    record.connects += 1;
                    record.joined = true;
                    return Ok(ws);
                }
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    ws.send(Message::text("3")).await?;
                }
                other => bail!("expected the namespace's connect, got {other:?}"),
            }
        }
    }

    /// Reads events until the connection ends, or the run stops.
    async fn listen(&self, mut ws: WebSocket) -> anyhow::Result<()> {
        let prefix = format!("42{NAMESPACE},");
        let mut last_heard = Instant::now();
        loop {
            self.wait_while_stalled().await;
            let deadline = last_heard + SILENCE_LIMIT;
            let message = tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(deadline) => bail!("the server went silent"),
                message = ws.next() => message,
            };
            last_heard = Instant::now();
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(_)) => continue,
            };
            if text.as_str() == "2" {
                ws.send(Message::text("3")).await?;
            } else if let Some(event) = text.strip_prefix(prefix.as_str()) {
                self.note(event);
            } else if text.starts_with("41") || text.starts_with('1') {
                return Ok(()); // Disconnected by the server.
            }
        }
    }

    async fn wait_while_stalled(&self) {
        let until = self.page.slow_until_ms.load(Ordering::Acquire);
        let now = self.clock.elapsed().as_millis() as u64;
        if until > now {
            tokio::select! {
                () = self.stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(until - now)) => {}
            }
        }
    }

    /// Notes one socket.io event: `["name", data, {"offset"}]`.
    fn note(&self, event: &str) {
        let Ok(Value::Array(arguments)) = serde_json::from_str::<Value>(event) else {
            return;
        };
        let name = arguments.first().and_then(Value::as_str).unwrap_or("");
        let data = arguments.get(1);
        let mut record = self.page.record();
        match name {
            "push:recovery" => {
                let recovered = data
                    .and_then(|status| status.get("recovered"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let offset = data
                    .and_then(|status| status.get("offset"))
                    .and_then(Value::as_str);
                record.status(recovered, offset);
            }
            "push:missed" => record.missed_notices += 1,
            // The mark of a message its node handed out to others while
            // cut off from Redis: kept as the offset, like any other.
            "push:unnumbered" => {
                if let Some(mark) = data
                    .and_then(|mark| mark.get("offset"))
                    .and_then(Value::as_str)
                {
                    record.last_offset = Some(mark.to_owned());
                }
            }
            super::publisher::EVENT => {
                let Some(id) = data.and_then(|data| data.get("id")).and_then(Value::as_u64) else {
                    return;
                };
                let to = data
                    .and_then(|data| data.get("to"))
                    .and_then(Value::as_u64)
                    .map(|to| to as u32);
                let offset = arguments
                    .get(2)
                    .and_then(|argument| argument.get("offset"))
                    .and_then(Value::as_str);
                record.message(id as usize, to, self.page.user, offset);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_counts_duplicates_order_and_resets() {
        let mut record = PageRecord::default();
        record.status(false, Some("a-0"));
        record.message(1, None, 7, Some("a-1"));
        record.message(2, Some(8), 7, Some("a-2"));
        record.message(1, None, 7, Some("a-1"));
        record.status(false, Some("b-0"));
        record.message(4, Some(7), 7, Some("b-1"));
        assert_eq!(record.receipts[1].count, 2);
        assert_eq!(record.out_of_order, 1, "a-1 after a-2");
        assert_eq!(record.misdelivered, 1);
        assert_eq!(record.resets, 1, "the first status is no reset");
        assert_eq!(record.receipts[4].resets_before, 1);
        assert_eq!(record.last_id(), Some(4));
    }
}

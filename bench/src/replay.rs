//! How long push-core takes to replay a backlog to one reconnecting browser.
//!
//! Missed-message recovery (docs/recovery.md) keeps recent messages so that
//! a page that lost its connection gets what it missed when it reconnects
//! with the last offset it saw. This mode measures the worst case a user
//! notices: one browser away while many messages were published, then back.
//!
//! Each run starts a fresh push-core (recovery on, its default), connects
//! one browser and takes the offset from its `push:recovery` status,
//! disconnects it, publishes the backlog over the Unix socket (pipelined,
//! one flush), reconnects with that offset and times, from the start of the
//! reconnect (TCP connect, WebSocket handshake, namespace connect) to the
//! last replayed message. The browser is a minimal socket.io v4 client over
//! WebSocket, like the fleet's in `client`, but it keeps every event to
//! check it: the status first, then exactly the backlog, in order, each with
//! its offset.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use push_client::{Publish, Target};
use tokio_tungstenite::tungstenite::Message;

use crate::publisher::{EVENT, push_core_client};
use crate::recorder::payload;
use crate::servers::{Kind, NAMESPACE, Programs, PublishEndpoint, Server};

/// The event push-core sends first after each namespace connect.
const RECOVERY_EVENT: &str = "push:recovery";

/// Longest wait for any one packet from the server. Bounded so that a
/// daemon that stops replaying ends the run with an error instead of
/// hanging it.
const PACKET_TIMEOUT: Duration = Duration::from_secs(30);

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct ReplayRun {
    /// From the start of the reconnect to the `push:recovery` status.
    pub to_status: Duration,
    /// From the start of the reconnect to the last replayed message.
    pub to_last: Duration,
    /// push-core's user and system CPU time over the reconnect, in µs.
    pub server_user_us: u64,
    pub server_system_us: u64,
}

/// Runs the measurement `runs` times with a backlog of `messages`.
pub async fn measure(
    programs: &Programs,
    messages: u64,
    runs: usize,
) -> anyhow::Result<Vec<ReplayRun>> {
    let mut results = Vec::with_capacity(runs);
    for run in 1..=runs {
        let result = one_run(programs, messages).await?;
        eprintln!(
            "replay run {run}/{runs}: {messages} messages, status after {:.2} ms, last after {:.2} ms, server cpu user {:.1} ms system {:.1} ms",
            result.to_status.as_secs_f64() * 1e3,
            result.to_last.as_secs_f64() * 1e3,
            result.server_user_us as f64 / 1e3,
            result.server_system_us as f64 / 1e3,
        );
        results.push(result);
    }
    Ok(results)
}

async fn one_run(programs: &Programs, messages: u64) -> anyhow::Result<ReplayRun> {
    let server = Server::start(Kind::PushCore, programs, None)?;

    // First visit: the status carries the namespace's current position.
    let mut first = Browser::connect(server.addr, None).await?;
    let status = first.next_event().await?;
    let offset = recovery_offset(&status, false, 0)?;
    drop(first);

    // While away: the backlog, pipelined, one flush. Every message is a
    // broadcast to a namespace nobody is connected to, so the daemon only
    // numbers and keeps it.
    let socket = match &server.publish {
        PublishEndpoint::Unix(path) => path.clone(),
        PublishEndpoint::Http(_) => bail!("push-core publishes on a Unix socket"),
    };
    tokio::task::spawn_blocking(move || publish_backlog(socket, messages))
        .await
        .context("the publisher thread failed")??;

    let before = server.sample()?;
    let started = Instant::now();
    let mut browser = Browser::connect(server.addr, Some(&offset)).await?;
    let status = browser.next_event().await?;
    let to_status = started.elapsed();
    recovery_offset(&status, true, messages)?;
    for expected in 0..messages {
        let event = browser.next_event().await?;
        check_replayed(&event, expected)?;
    }
    let to_last = started.elapsed();
    let after = server.sample()?;
    server.stop();
    Ok(ReplayRun {
        to_status,
        to_last,
        server_user_us: after.user_us.saturating_sub(before.user_us),
        server_system_us: after.system_us.saturating_sub(before.system_us),
    })
}

/// Publishes `messages` broadcasts to the bench namespace in one pipelined
/// batch. Message `i` carries `i` where the fan-out carries its due time,
/// so the replay's order can be checked.
fn publish_backlog(socket: PathBuf, messages: u64) -> anyhow::Result<()> {
    let mut client = push_core_client(socket)?;
    let payloads: Vec<String> = (0..messages).map(|i| payload(i, None, 0)).collect();
    for body in &payloads {
        client.queue_publish(&Publish {
            namespace: NAMESPACE,
            event: EVENT,
            target: Target::everyone(),
            payload: body.as_bytes(),
        })?;
    }
    for reply in client.flush() {
        reply.context("publishing the backlog")?;
    }
    Ok(())
}

/// Checks a `push:recovery` status and returns its offset.
fn recovery_offset(
    event: &serde_json::Value,
    recovered: bool,
    replayed: u64,
) -> anyhow::Result<String> {
    let status = match event.as_array().map(Vec::as_slice) {
        Some([name, status]) if name == RECOVERY_EVENT => status,
        _ => bail!("expected the {RECOVERY_EVENT} status first, got {event}"),
    };
    ensure!(
        status["recovered"] == recovered && status["replayed"] == replayed,
        "expected recovered: {recovered}, replayed: {replayed}, got {status}"
    );
    status["offset"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no offset in {status}"))
}

/// Checks that `event` is backlog message number `expected`, with its offset.
fn check_replayed(event: &serde_json::Value, expected: u64) -> anyhow::Result<()> {
    match event.as_array().map(Vec::as_slice) {
        Some([name, message, position])
            if name == EVENT && message["t"] == expected && position["offset"].is_string() =>
        {
            Ok(())
        }
        _ => bail!("expected replayed message {expected} with its offset, got {event}"),
    }
}

/// One browser tab: engine.io v4 over WebSocket, joined to the bench
/// namespace.
struct Browser {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl Browser {
    /// Connects and joins, sending `offset` in the socket.io auth as
    /// `io(url, { auth: { offset } })` does.
    async fn connect(server: SocketAddr, offset: Option<&str>) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(server)
            .await
            .context("connecting")?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .context("websocket handshake")?;
        let mut browser = Self { ws };
        match browser.next_text().await?.as_str() {
            open if open.starts_with('0') => {}
            other => bail!("expected the engine.io open packet, got {other}"),
        }
        let auth = match offset {
            Some(offset) => serde_json::json!({ "offset": offset }).to_string(),
            None => String::new(),
        };
        browser
            .ws
            .send(Message::text(format!("40{NAMESPACE},{auth}")))
            .await?;
        let ack = browser.next_text().await?;
        ensure!(
            ack.starts_with(&format!("40{NAMESPACE},")),
            "expected the namespace connect ack, got {ack}"
        );
        Ok(browser)
    }

    /// The next socket.io event of the namespace, as its JSON array.
    async fn next_event(&mut self) -> anyhow::Result<serde_json::Value> {
        let prefix = format!("42{NAMESPACE},");
        loop {
            let text = self.next_text().await?;
            if let Some(event) = text.strip_prefix(&prefix) {
                return serde_json::from_str(event)
                    .with_context(|| format!("unreadable event {event}"));
            }
        }
    }

    /// The next text frame, answering engine.io pings on the way.
    async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            let message = tokio::time::timeout(PACKET_TIMEOUT, self.ws.next())
                .await
                .context("the server sent nothing in time")?;
            match message {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await?;
                }
                Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("reading from the server"),
                None => bail!("the server closed the connection"),
            }
        }
    }
}

/// The table of a replay run.
pub fn table(messages: u64, runs: &[ReplayRun]) -> String {
    let mut out = format!(
        "\n### Replay of {messages} messages to one reconnecting browser (WebSocket)\n\n| run | reconnect to status ms | reconnect to last message ms | µs per message | server CPU user ms | server CPU system ms |\n|---|---|---|---|---|---|\n"
    );
    for (i, run) in runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            i + 1,
            run.to_status.as_secs_f64() * 1e3,
            run.to_last.as_secs_f64() * 1e3,
            run.to_last.as_secs_f64() * 1e6 / messages.max(1) as f64,
            run.server_user_us as f64 / 1e3,
            run.server_system_us as f64 / 1e3,
        );
    }
    let mut totals: Vec<Duration> = runs.iter().map(|r| r.to_last).collect();
    totals.sort();
    if let (Some(low), Some(high)) = (totals.first(), totals.last()) {
        let median = totals[totals.len() / 2];
        let _ = writeln!(
            out,
            "\nMedian of {} runs: {:.2} ms from reconnect to the last replayed message ({:.2} µs per message); lowest {:.2} ms, highest {:.2} ms.",
            totals.len(),
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / messages.max(1) as f64,
            low.as_secs_f64() * 1e3,
            high.as_secs_f64() * 1e3,
        );
    }
    out
}

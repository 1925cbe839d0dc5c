//! Admitting browsers: the WebSocket upgrade, the engine.io open packet and
//! the socket.io join, the way the bench's client (bench/src/client.rs)
//! expects them.
//!
//! None of this is measured: the bench opens every browser before it
//! publishes. Each handshake runs on a short-lived thread of its own, so a
//! slow or silent peer (the bench's readiness probe connects and hangs up)
//! holds up nobody else, and the finished socket is handed to the
//! publishing thread over a channel, in blocking mode, with the user its
//! `uid` cookie names.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::bail;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{self, HandshakeError, Message, http};

/// How long a browser may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one delivery may wait for room in a browser's socket buffer
/// before the floor gives up on that browser. The bench's browsers always
/// read, so this only ends a browser that went away without closing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handshake thread needs little stack: the handshake's buffers are on
/// the heap.
const HANDSHAKE_STACK: usize = 256 * 1024;

/// The pause after a failed accept (out of descriptors, say) before the
/// next try, so that the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// The ping interval and timeout announced in the open packet: engine.io's
/// defaults. The floor never pings; the bench's client only answers pings,
/// so announcing them costs nothing.
const OPEN_PACKET_TIMING: &str =
    r#""upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000"#;

/// A browser joined to the namespace, ready for deliveries.
pub struct Joined {
    /// The `uid` cookie's value, if it carried one.
    pub user: Option<String>,
    pub stream: TcpStream,
}

/// Accepts browsers for ever, admitting each on a thread of its own.
pub fn accept_browsers(listener: TcpListener, namespace: &str, joined: Sender<Joined>) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        let namespace = namespace.to_owned();
        let joined = joined.clone();
        let spawned = std::thread::Builder::new()
            .stack_size(HANDSHAKE_STACK)
            .spawn(move || {
                // A failed handshake (the readiness probe, a refused
                // namespace) just closes that socket.
                if let Ok(browser) = admit(stream, &namespace) {
                    let _ = joined.send(browser);
                }
            });
        if spawned.is_err() {
            std::thread::sleep(ACCEPT_RETRY);
        }
    }
}

/// Upgrades one connection and joins it to `namespace`.
// The handshake callback's error is tungstenite's `ErrorResponse`, an HTTP
// response, whatever its size.
#[allow(clippy::result_large_err)]
fn admit(stream: TcpStream, namespace: &str) -> anyhow::Result<Joined> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    // One write is one frame on the wire, as soon as it is written.
    stream.set_nodelay(true)?;

    let mut user = None;
    let upgraded = tungstenite::accept_hdr(stream, |request: &Request, response: Response| {
        if !request.uri().query().unwrap_or("").contains("EIO=4") {
            return Err(refusal("the one-write floor speaks engine.io 4 only"));
        }
        user = uid_cookie(request);
        Ok(response)
    });
    let mut ws = match upgraded {
        Ok(ws) => ws,
        Err(HandshakeError::Failure(error)) => return Err(error.into()),
        Err(HandshakeError::Interrupted(_)) => bail!("the handshake timed out"),
    };

    let sid = session_id();
    ws.send(Message::text(format!(
        r#"0{{"sid":"{sid}",{OPEN_PACKET_TIMING}}}"#
    )))?;
    let connect = format!("40{namespace}");
    loop {
        let Message::Text(text) = ws.read()? else {
            continue;
        };
        let rest = text.strip_prefix(connect.as_str());
        if rest.is_some_and(|rest| rest.is_empty() || rest.starts_with(',')) {
            ws.send(Message::text(format!(r#"40{namespace},{{"sid":"{sid}"}}"#)))?;
            break;
        }
        if let Some(other) = text.strip_prefix("40") {
            let other = other.split(',').next().unwrap_or("/");
            ws.send(Message::text(format!(
                r#"44{other},{{"message":"Invalid namespace"}}"#
            )))?;
            bail!("a browser asked for namespace {other}");
        }
    }

    let stream = ws.into_inner();
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok(Joined { user, stream })
}

/// The value of the request's `uid` cookie.
fn uid_cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("uid="))
        .map(str::to_owned)
}

fn refusal(reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    response
}

/// A session id unique within this process: the bench's client reads it
/// but does not use it.
fn session_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("floor{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

//! The one-write floor: the least a push server can do per delivery.
//!
//! The bench compares push-core with a Node socket.io server; this program
//! gives both a floor to be measured against. It speaks just enough of
//! socket.io to the bench's browsers, and just enough of the publish
//! protocol to the bench's publisher, to deliver every message, and per
//! delivery it does one thing: one `write(2)` of a WebSocket frame built
//! once per publish, on a blocking socket, from one thread. Whatever a real
//! server spends above that (its event loop, wake-ups, task switches,
//! per-socket queues, pings, recovery) is what the bench's tables show
//! between this row and the others; see docs/benchmarks.md.
//!
//! It is a floor, not a server: it sends no pings, trusts the `uid` cookie
//! instead of asking an auth backend, keeps no history, serves one
//! publisher at a time and drops a browser at the first write that fails.
//!
//! - `admit`: browsers' WebSocket upgrades and socket.io joins, on
//!   short-lived threads, handed over to the publishing thread;
//! - `deliver`: the publishing thread: publish frames in, one write per
//!   recipient out, the recipient count back.
//!
//!   write-floor --listen 127.0.0.1:3000 --socket /tmp/floor.sock --namespace /bench

mod admit;
mod deliver;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "The bench's one-write floor: one write(2) per delivery.")]
struct Args {
    /// Where the browsers connect (WebSocket, socket.io v4).
    #[arg(long)]
    listen: SocketAddr,
    /// The Unix socket the publisher connects to (push-core's protocol).
    #[arg(long)]
    socket: PathBuf,
    /// The one namespace served.
    #[arg(long, default_value = "/bench")]
    namespace: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Both listeners are bound before anything is served: the bench takes
    // "the socket file exists and the port accepts" as "ready".
    let browsers =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let _ = std::fs::remove_file(&args.socket);
    let publishers = UnixListener::bind(&args.socket)
        .with_context(|| format!("binding {}", args.socket.display()))?;

    let (joined_tx, joined_rx) = mpsc::channel();
    let namespace = args.namespace.clone();
    std::thread::Builder::new()
        .name("admit".to_owned())
        .spawn(move || admit::accept_browsers(browsers, &namespace, joined_tx))
        .context("starting the admitting thread")?;
    deliver::serve_publishers(publishers, &args.namespace, joined_rx)
}

//! The network between the pages and the nodes: a TCP relay that a chaos
//! run can cut, like a train tunnel or a dead Wi-Fi.
//!
//! Each page connects from a loopback address of its own (127.1.x.y), so
//! the relay knows whose connection it holds; it connects on to a node
//! from that same address, so each node sees one address per page. New
//! connections go to the running nodes in turn.
//!
//! Cutting a page freezes its links: the relay stops reading and writing
//! them, without closing anything, as packets that no longer arrive. Both
//! ends see silence, and their heartbeats, not a close, end the connection
//! if the cut lasts; a short cut just delays what was sent. New connections
//! of a cut page are dropped at once. When the cut ends, the links carry on
//! whatever state their ends are in.
//!
//! The relay's sockets have small buffers, as a phone's network has, so a
//! page that stops reading fills its node's queue within seconds rather
//! than after megabytes of loopback buffers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Bytes each relay socket buffers in the kernel, each way.
const SOCKET_BUFFER: usize = 8 * 1024;

/// How long a connection to a node may take before the page is dropped
/// (a stopped node accepts nothing).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The address page `index` connects from.
pub fn page_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + index as u32)
}

/// The relay; cheap to clone.
#[derive(Clone)]
pub struct Relay {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Vec<SocketAddr>,
    /// Nodes the relay sends no new connection to (killed, not yet back).
    down: Vec<AtomicBool>,
    next: AtomicUsize,
    /// Per page address: whether it is cut now, which its links follow.
    cuts: Mutex<HashMap<IpAddr, watch::Sender<bool>>>,
}

impl Relay {
    /// Listens on a free loopback port and relays to `nodes`.
    pub async fn start(nodes: Vec<SocketAddr>, stop: CancellationToken) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let relay = Self {
            addr: listener.local_addr()?,
            inner: Arc::new(Inner {
                down: nodes.iter().map(|_| AtomicBool::new(false)).collect(),
                nodes,
                next: AtomicUsize::new(0),
                cuts: Mutex::new(HashMap::new()),
            }),
        };
        let accepting = relay.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                if let Ok((page, peer)) = accepted {
                    let relay = accepting.clone();
                    tokio::spawn(async move { relay.serve(page, peer.ip()).await });
                }
            }
        });
        Ok(relay)
    }

    /// Marks node `index` as down (no new connections) or up.
    pub fn set_down(&self, index: usize, down: bool) {
        self.inner.down[index].store(down, Ordering::Release);
    }

    /// Cuts (`true`) or restores (`false`) the network of the page at
    /// `address`.
    pub fn cut(&self, address: Ipv4Addr, cut: bool) {
        self.cut_gate(address.into()).send_replace(cut);
    }

    fn cut_gate(&self, address: IpAddr) -> watch::Sender<bool> {
        let mut cuts = self.inner.cuts.lock().unwrap_or_else(|p| p.into_inner());
        cuts.entry(address)
            .or_insert_with(|| watch::Sender::new(false))
            .clone()
    }

    async fn serve(&self, page: TcpStream, address: IpAddr) {
        let gate = self.cut_gate(address);
        if *gate.borrow() {
            return; // Cut: the connection goes nowhere.
        }
        let Some(node) = self.connect(address).await else {
            return;
        };
        let _ = set_buffers(&page);
        let (page_read, page_write) = page.into_split();
        let (node_read, node_write) = node.into_split();
        tokio::join!(
            carry(page_read, node_write, gate.subscribe()),
            carry(node_read, page_write, gate.subscribe()),
        );
    }

    /// Connects to the next running node, from `address`.
    async fn connect(&self, address: IpAddr) -> Option<TcpStream> {
        let inner = &self.inner;
        for _ in 0..inner.nodes.len() {
            let index = inner.next.fetch_add(1, Ordering::Relaxed) % inner.nodes.len();
            if inner.down[index].load(Ordering::Acquire) {
                continue;
            }
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::new(address, 0)).ok()?;
            let _ = socket.set_recv_buffer_size(SOCKET_BUFFER as u32);
            let _ = socket.set_send_buffer_size(SOCKET_BUFFER as u32);
            let connecting = socket.connect(inner.nodes[index]);
            return match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(stream)) => Some(stream),
                _ => None,
            };
        }
        None
    }
}

/// Copies `from` to `to` while the link is not cut; ends the other way's
/// writing when `from` ends.
async fn carry(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buffer = vec![0; SOCKET_BUFFER];
    loop {
        if cut.wait_for(|cut| !cut).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if cut.wait_for(|cut| !cut).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Small kernel buffers on an accepted socket.
fn set_buffers(stream: &TcpStream) -> rustix::io::Result<()> {
    use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
    set_socket_recv_buffer_size(stream.as_fd(), SOCKET_BUFFER)?;
    set_socket_send_buffer_size(stream.as_fd(), SOCKET_BUFFER)
}

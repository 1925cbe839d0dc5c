//! Publishing at a fixed rate, the way a site's backend would.
//!
//! The schedule is fixed in advance: message `i` is due at `start + i/rate`
//! and carries that due time, not the time it happened to be written. If a
//! server's publish path pushes back, the delay shows in the latencies
//! instead of quietly lowering the offered load (no coordinated omission).
//! Messages that fell due together are written together: a pipelined batch
//! of frames for push-core, one POST with a JSON array for the Node peer.
//!
//! - push-core: the publish protocol on its Unix socket, through
//!   `push_client::Client` (`queue_publish` then `flush`).
//! - Node: HTTP/1.1 POST `/publish` on a kept-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use push_client::{Client, ClientOptions, Publish, Target};

use crate::recorder::{now_us, payload};
use crate::servers::{NAMESPACE, PublishEndpoint};

/// The socket.io event name of every benchmark message.
pub const EVENT: &str = "m";

/// Who each message goes to.
#[derive(Clone, Copy, Debug)]
pub enum Audience {
    Everyone,
    /// One user chosen at random among `0..users`.
    RandomUser {
        users: u32,
    },
    /// Users `0..users` in turn, each once per round.
    EachUser {
        users: u32,
    },
}

/// What a publishing run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    pub messages: u64,
    pub errors: u64,
    /// Recipients the server reported (push-core only; 0 for Node).
    pub recipients: u64,
    /// Time from the first due message to the end of the last write.
    pub elapsed: Duration,
}

struct Message {
    user: Option<u32>,
    payload: String,
}

/// Writes messages to one server.
enum Sink {
    PushCore(Box<Client>),
    Node(HttpPublisher),
}

impl Sink {
    fn open(endpoint: &PublishEndpoint) -> anyhow::Result<Self> {
        Ok(match endpoint {
            PublishEndpoint::Unix(path) => {
                Sink::PushCore(Box::new(push_core_client(path.clone())?))
            }
            PublishEndpoint::Http(addr) => Sink::Node(HttpPublisher::connect(*addr)?),
        })
    }

    /// Sends a batch; returns (errors, recipients reported).
    fn send(&mut self, batch: &[Message]) -> anyhow::Result<(u64, u64)> {
        match self {
            Sink::PushCore(client) => {
                for message in batch {
                    let user = message.user.map(|u| u.to_string());
                    let target = match &user {
                        Some(user) => Target::users([user.as_str()]),
                        None => Target::everyone(),
                    };
                    client.queue_publish(&Publish {
                        namespace: NAMESPACE,
                        event: EVENT,
                        target,
                        payload: message.payload.as_bytes(),
                    })?;
                }
                let (mut errors, mut recipients) = (0, 0);
                for reply in client.flush() {
                    match reply {
                        Ok(count) => recipients += u64::from(count.total),
                        Err(_) => errors += 1,
                    }
                }
                Ok((errors, recipients))
            }
            Sink::Node(http) => {
                let mut body = String::with_capacity(batch.len() * 128 + 2);
                body.push('[');
                for (i, message) in batch.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    match message.user {
                        Some(user) => body.push_str(&format!(r#"{{"u":"{user}","p":"#)),
                        None => body.push_str(r#"{"u":null,"p":"#),
                    }
                    body.push_str(&message.payload);
                    body.push('}');
                }
                body.push(']');
                http.post("/publish", &body)?;
                Ok((0, 0))
            }
        }
    }
}

pub fn push_core_client(socket_path: PathBuf) -> anyhow::Result<Client> {
    let mut client = Client::new(ClientOptions {
        socket_path,
        // Generous: at saturation the daemon answers late, and a timed-out
        // pipelined batch would be an error rather than a latency.
        timeout: Duration::from_secs(30),
        client_name: "push-core-bench".to_owned(),
    });
    client.connect()?;
    Ok(client)
}

/// Publishes `rate` messages a second for `duration` to `endpoint`,
/// stamping each with `step`. Blocks; run it on its own thread.
pub fn publish_at_rate(
    endpoint: &PublishEndpoint,
    audience: Audience,
    rate: f64,
    duration: Duration,
    step: u64,
) -> anyhow::Result<Published> {
    let mut sink = Sink::open(endpoint)?;
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let interval_us = 1_000_000.0 / rate;
    let start = Instant::now();
    let start_us = now_us();
    let mut published = Published::default();
    let mut batch = Vec::new();
    while published.messages < total {
        let elapsed_us = start.elapsed().as_micros() as f64;
        let due = ((elapsed_us / interval_us).floor() as u64 + 1).min(total);
        if due <= published.messages {
            let next_us = published.messages as f64 * interval_us - elapsed_us;
            std::thread::sleep(Duration::from_micros(next_us.clamp(50.0, 1000.0) as u64));
            continue;
        }
        batch.clear();
        for i in published.messages..due {
            let user = match audience {
                Audience::Everyone => None,
                Audience::RandomUser { users } => Some(fastrand::u32(0..users)),
                Audience::EachUser { users } => Some((i % u64::from(users)) as u32),
            };
            let due_us = start_us + (i as f64 * interval_us) as u64;
            batch.push(Message {
                user,
                payload: payload(due_us, user, step),
            });
        }
        let (errors, recipients) = sink.send(&batch)?;
        published.messages = due;
        published.errors += errors;
        published.recipients += recipients;
    }
    published.elapsed = start.elapsed();
    Ok(published)
}

/// A minimal HTTP/1.1 client on one kept-alive connection: enough to POST
/// small JSON bodies to the Node peer and read its short answers.
struct HttpPublisher {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl HttpPublisher {
    fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            addr,
            reader: BufReader::new(stream),
        })
    }

    fn post(&mut self, path: &str, body: &str) -> anyhow::Result<()> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the Node peer closed the publish connection");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().context("bad Content-Length")?;
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer)?;
        if !status.contains(" 200 ") {
            bail!(
                "the Node peer answered {}: {}",
                status.trim(),
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }
}

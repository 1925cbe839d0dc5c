//! One connection per daemon per PHP process, shared by every `PushClient`.
//!
//! A php-fpm worker serves thousands of requests one after another. Opening
//! a Unix socket and doing the HELLO handshake costs more than a publish, so
//! the worker keeps one [`Client`] per socket path for its whole life (when
//! `push.persistent` is on) and every `PushClient` object, in this request or
//! a later one, borrows it. `push_client::Client` reconnects on its own after
//! a daemon restart and never sends a message twice; see its documentation
//! for the exact guarantee.
//!
//! Sharing one connection has one consequence for pipelining: the client
//! answers queued publishes in queue order, whoever queued them. This module
//! remembers which `PushClient` queued each publish, so that each object's
//! `flush()` returns its own results and only those.
//!
//! PHP runs one request per thread, and never re-enters this code while it
//! holds the table (no PHP code runs while a client is borrowed), so a
//! thread-local `RefCell` is all the synchronisation needed.
//!
//! The table is a short list searched in order, not a hash map: a process
//! talks to one daemon, rarely two, and comparing a path is cheaper than
//! hashing it on every publish.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use push_client::{Client, ClientError, ClientOptions, ErrorKind, PipelinedReply, Publish};

use crate::error::PushError;

/// Which daemon, and how patiently. Two `PushClient`s with the same endpoint
/// share a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub socket_path: PathBuf,
    pub timeout: Duration,
}

/// Identifies one `PushClient` object in the pipeline bookkeeping.
pub type Owner = u64;

/// A publish in the shared queue, in the order it was queued.
enum Slot {
    /// Written (or about to be); its reply comes from the client.
    Awaiting(Owner),
    /// Decided without the daemon, e.g. a publish to an empty list of users.
    Done(Owner, PipelinedReply),
}

struct Connection {
    client: Client,
    /// Dropped at the end of the request unless set.
    persistent: bool,
    queue: VecDeque<Slot>,
    /// Results taken from the client, waiting for their owner's `flush()`.
    results: HashMap<Owner, Vec<PipelinedReply>>,
}

thread_local! {
    static CONNECTIONS: RefCell<Vec<(Endpoint, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `operation` with the shared client for `endpoint`, creating it (not
/// yet connected) on first use.
pub fn with_client<R>(
    endpoint: &Endpoint,
    persistent: bool,
    operation: impl FnOnce(&mut Client) -> R,
) -> Result<R, PushError> {
    with_connection(endpoint, persistent, |connection| {
        operation(&mut connection.client)
    })
}

/// Queues a publish for `owner`; its result comes from that owner's next
/// [`flush`]. Errors known before anything is written (the daemon is down, the
/// frame is too large) are returned at once instead.
pub fn queue(
    endpoint: &Endpoint,
    persistent: bool,
    owner: Owner,
    publish: &Publish<'_>,
) -> Result<(), PushError> {
    with_connection(endpoint, persistent, |connection| {
        connection.client.queue_publish(publish)?;
        connection.queue.push_back(Slot::Awaiting(owner));
        Ok::<_, ClientError>(())
    })?
    .map_err(PushError::from)
}

/// Records a publish that needed no daemon, keeping its place in the queue.
pub fn queue_done(
    endpoint: &Endpoint,
    persistent: bool,
    owner: Owner,
    result: PipelinedReply,
) -> Result<(), PushError> {
    with_connection(endpoint, persistent, |connection| {
        connection.queue.push_back(Slot::Done(owner, result));
    })
}

/// Writes everything queued on this connection and returns `owner`'s
/// results, in the order `owner` queued them.
pub fn flush(endpoint: &Endpoint, owner: Owner) -> Vec<PipelinedReply> {
    let flushed = CONNECTIONS.with(|connections| {
        let mut connections = connections.try_borrow_mut().ok()?;
        let connection = find(&mut connections, endpoint)?;
        connection.collect_replies();
        connection.results.remove(&owner)
    });
    flushed.unwrap_or_default()
}

/// Flushes, keeping the results for their owners, then closes the
/// connection. The next call reconnects.
pub fn close(endpoint: &Endpoint) {
    CONNECTIONS.with(|connections| {
        if let Ok(mut connections) = connections.try_borrow_mut()
            && let Some(connection) = find(&mut connections, endpoint)
        {
            connection.collect_replies();
            connection.client.close();
        }
    });
}

/// Called at the end of every request: forgets results nobody can collect
/// any more and drops the connections that are not persistent.
///
/// Every `PushClient` flushes its own queue when it is destroyed, so a queue
/// is only left over after a fatal error. Its publishes are still written and
/// their replies read, so the next request starts on a clean connection.
pub fn end_request() {
    CONNECTIONS.with(|connections| {
        if let Ok(mut connections) = connections.try_borrow_mut() {
            for (_, connection) in connections.iter_mut() {
                connection.collect_replies();
                connection.results.clear();
            }
            connections.retain(|(_, connection)| connection.persistent);
        }
    });
}

fn with_connection<R>(
    endpoint: &Endpoint,
    persistent: bool,
    operation: impl FnOnce(&mut Connection) -> R,
) -> Result<R, PushError> {
    CONNECTIONS.with(|connections| {
        let mut connections = connections.try_borrow_mut().map_err(|_| {
            PushError::new(
                ErrorKind::Protocol,
                "the push connection table is already in use (re-entrant call); this is a bug in the push extension",
            )
        })?;
        // Looked up before inserting, so the hot path does not clone the
        // endpoint's path.
        if find(&mut connections, endpoint).is_none() {
            connections.push((endpoint.clone(), Connection::new(endpoint, persistent)));
        }
        let connection = find(&mut connections, endpoint).ok_or_else(|| {
            PushError::new(ErrorKind::Protocol, "the connection table lost an entry")
        })?;
        // The most recent PushClient's setting decides.
        connection.persistent = persistent;
        Ok(operation(connection))
    })
}

/// The entry for `endpoint`, if the table has one.
fn find<'a>(
    connections: &'a mut [(Endpoint, Connection)],
    endpoint: &Endpoint,
) -> Option<&'a mut Connection> {
    connections
        .iter_mut()
        .find(|(key, _)| key == endpoint)
        .map(|(_, connection)| connection)
}

impl Connection {
    /// A connection entry whose client connects on first use.
    fn new(endpoint: &Endpoint, persistent: bool) -> Self {
        Self {
            client: Client::new(ClientOptions {
                socket_path: endpoint.socket_path.clone(),
                timeout: endpoint.timeout,
                client_name: format!(
                    "php-push/{} (pid {})",
                    env!("CARGO_PKG_VERSION"),
                    std::process::id()
                ),
            }),
            persistent,
            queue: VecDeque::new(),
            results: HashMap::new(),
        }
    }

    /// Takes every reply the client has and hands each to the owner of its
    /// publish.
    fn collect_replies(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut replies = VecDeque::from(self.client.flush());
        if self.client.queued() > 0 {
            // The connection broke with replies outstanding; the client
            // keeps those publishes until it is closed. Closing fails them
            // as "connection lost", so each still gets its result.
            self.client.close();
            replies.extend(self.client.flush());
        }
        for slot in self.queue.drain(..) {
            let (owner, result) = match slot {
                Slot::Done(owner, result) => (owner, result),
                Slot::Awaiting(owner) => (owner, replies.pop_front().unwrap_or_else(missing_reply)),
            };
            self.results.entry(owner).or_default().push(result);
        }
    }
}

fn missing_reply() -> PipelinedReply {
    Err(ClientError::Protocol(
        "the client returned fewer results than publishes were queued".into(),
    ))
}

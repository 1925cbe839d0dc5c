//! A blocking publisher that keeps one connection to the daemon.
//!
//! The PHP extension and the C ABI are thin layers over this type, so the
//! delivery guarantee is defined here, once:
//!
//! - The connection is opened lazily and kept. A daemon that went away (for
//!   example a restart) is noticed when a request is written: on a Unix
//!   socket, writing to a peer that closed fails at once (`EPIPE`), so the
//!   client reconnects and sends again. No extra system call is spent on a
//!   liveness check before each synchronous request. A pipeline, whose
//!   frames are written in batches, peeks once before its first publish
//!   instead, so a restart between two pipelines costs none of them.
//! - A request is sent again on a fresh connection only when writing its
//!   frame failed because the daemon was gone. A frame the daemon did not
//!   receive whole is never processed, so the retry cannot duplicate it.
//! - Once the frame is written, a lost connection is reported as
//!   [`ClientError::ConnectionLost`] and never retried: the daemon may already
//!   have delivered the message. At most once, never twice.
//!
//! Pipelining: [`Client::queue_publish`] encodes into a buffer and returns
//! without waiting; [`Client::flush`] returns one result per queued publish,
//! in order.
//!
//! The parts, one concept each:
//!
//! - [`connection`]: the socket, and every system call made on it;
//! - [`pipeline`]: what a pipeline has queued, what it is owed, what it got;
//! - [`retry`]: when a request is sent again, and what each failure means;
//! - [`reply`]: replies as the client keeps them;
//! - [`error`]: what the caller is told.
//!
//! [`Client`] here ties them together: it asks the policy, drives the
//! connection and tells the pipeline what happened.

mod connection;
mod error;
mod pipeline;
mod reply;
mod retry;

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use error::ClientError;
pub use pipeline::PipelinedReply;
pub use reply::Count;

use crate::protocol::{
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_SOCKET_PATH, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
    Publish, Request,
};
use connection::{Connection, ReadError};
use pipeline::Pipeline;
use reply::OwnedReply;
use retry::{Liveness, Resends, Stage};

/// The shortest timeout a connect is given.
///
/// The connect is bounded by the socket's send timeout, and a send timeout
/// of zero means "wait forever" to the kernel: the opposite of what a
/// timeout of zero asks for.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(1);

/// How to reach the daemon.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub socket_path: PathBuf,
    /// Bounds each connect, write and read, so a stuck daemon cannot hang the
    /// caller for longer than this per step.
    pub timeout: Duration,
    /// Sent in the HELLO; shows up in the daemon's debug log.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
            timeout: Duration::from_secs(1),
            client_name: concat!("push-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A blocking client; see the module documentation for its guarantees.
pub struct Client {
    options: ClientOptions,
    connection: Option<Connection>,
    next_request_id: u32,
    /// The frame of the request being sent synchronously; kept between
    /// requests so its memory is reused.
    request_frame: Vec<u8>,
    pipeline: Pipeline,
    /// Connections opened over this client's life; tells reuse from churn.
    connects: u64,
}

impl Client {
    /// A client that connects on first use.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            connection: None,
            next_request_id: 1,
            request_frame: Vec::new(),
            pipeline: Pipeline::default(),
            connects: 0,
        }
    }

    /// How many times this client opened a connection.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Publishes pipelined with [`Client::queue_publish`] and not yet flushed.
    pub fn queued(&self) -> usize {
        self.pipeline.queued()
    }

    /// Opens the connection now instead of on first use.
    pub fn connect(&mut self) -> Result<(), ClientError> {
        self.ensure_connected(Liveness::Peek)
    }

    /// Drops the connection. Queued publishes whose replies have not been
    /// read are reported by the next [`Client::flush`] as lost.
    pub fn close(&mut self) {
        if let Some(connection) = &self.connection {
            connection.shutdown();
        }
        self.drop_connection();
    }

    /// Delivers a message; returns the number of connections it reached,
    /// and whether that count left out cluster nodes ([`Count`]).
    pub fn publish(&mut self, publish: &Publish<'_>) -> Result<Count, ClientError> {
        match self.call(&Request::Publish(publish.clone()))? {
            OwnedReply::Published(count) => Ok(count),
            other => Err(other.unexpected()),
        }
    }

    /// How many connections `user` has in `namespace` (0 means offline),
    /// and whether that count left out cluster nodes ([`Count`]).
    pub fn online(&mut self, namespace: &str, user: &str) -> Result<Count, ClientError> {
        match self.call(&Request::Online { namespace, user })? {
            OwnedReply::Online(count) => Ok(count),
            other => Err(other.unexpected()),
        }
    }

    /// The daemon's counters as JSON text.
    pub fn stats(&mut self) -> Result<String, ClientError> {
        match self.call(&Request::Stats)? {
            OwnedReply::Stats { json } => Ok(json),
            other => Err(other.unexpected()),
        }
    }

    /// The namespace's current recovery offset. A page rendered with it
    /// and connecting with it receives every message published after.
    pub fn position(&mut self, namespace: &str) -> Result<String, ClientError> {
        match self.call(&Request::Position { namespace })? {
            OwnedReply::Position { offset } => Ok(offset),
            other => Err(other.unexpected()),
        }
    }

    /// Measures one round trip.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        let started = Instant::now();
        match self.call(&Request::Ping)? {
            OwnedReply::Pong => Ok(started.elapsed()),
            other => Err(other.unexpected()),
        }
    }

    /// Queues a publish without waiting for its reply; see [`Client::flush`].
    pub fn queue_publish(&mut self, publish: &Publish<'_>) -> Result<(), ClientError> {
        self.ensure_connected(Liveness::Peek)?;
        let max = self.max_frame_size();
        let id = self.take_request_id();
        let request = Request::Publish(publish.clone());
        self.pipeline
            .push(id, |frames| request.encode(id, max, frames))?;
        if self.pipeline.piece_is_ready() {
            // A failed write is recorded per publish and reported by flush.
            self.write_piece();
        }
        Ok(())
    }

    /// Writes every queued publish and returns their results in queue order.
    pub fn flush(&mut self) -> Vec<PipelinedReply> {
        self.finish_pipeline();
        self.pipeline.take_results()
    }

    /// Sends one request and waits for its reply, owning the reply's data.
    fn call(&mut self, request: &Request<'_>) -> Result<OwnedReply, ClientError> {
        // Replies arrive in order, so earlier pipelined ones come first.
        self.finish_pipeline();
        let mut resends = Resends::new();
        loop {
            self.ensure_connected(Liveness::AssumeAlive)?;
            let max = self.max_frame_size();
            let id = self.take_request_id();
            self.request_frame.clear();
            request.encode(id, max, &mut self.request_frame)?;
            let sent = match &self.connection {
                Some(connection) => connection.send(&self.request_frame),
                None => Err(io::Error::from(io::ErrorKind::NotConnected)),
            };
            match sent {
                Ok(()) => return self.receive(id),
                Err(error) => {
                    self.drop_connection();
                    if !resends.resend_after(&error) {
                        return Err(self.classify(error, Stage::BeforeDelivery));
                    }
                }
            }
        }
    }

    /// Writes what the pipeline has unwritten and reads every reply it is
    /// owed, keeping the results for the next flush.
    fn finish_pipeline(&mut self) {
        if !self.pipeline.unwritten_frames().is_empty() {
            self.write_piece();
        }
        // Checked here, not only in the loop: this runs before every
        // synchronous request, which usually follows no pipeline at all.
        if self.pipeline.owes_replies() {
            self.read_owed_replies(usize::MAX);
        }
        self.pipeline.all_read();
    }

    /// Writes the pipeline's unwritten frames as one more piece in flight,
    /// first reading the replies of the oldest pieces if the bound would be
    /// passed.
    fn write_piece(&mut self) {
        while let Some(replies) = self.pipeline.retire_piece_over_bound() {
            self.read_owed_replies(replies);
            if self.connection.is_none() {
                // Lost: every owed publish, written or not, has its result.
                return;
            }
        }
        let sent = match &self.connection {
            Some(connection) => connection.send(self.pipeline.unwritten_frames()),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        };
        match sent {
            Ok(()) => self.pipeline.wrote_unwritten(),
            Err(error) => {
                let error = self.classify(error, Stage::BeforeDelivery);
                self.connection = None;
                self.pipeline.write_failed(error, &self.options.socket_path);
            }
        }
    }

    /// Reads up to `limit` replies owed to the pipeline, recording each.
    fn read_owed_replies(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some(id) = self.pipeline.next_owed() else {
                return;
            };
            let result = self.read_reply(id).and_then(|reply| match reply {
                OwnedReply::Published(count) => Ok(count),
                other => Err(other.unexpected()),
            });
            let ends_connection = result.as_ref().is_err_and(retry::ends_connection);
            // This publish's own failure first, then the others' loss.
            self.pipeline.complete(result);
            if ends_connection {
                self.drop_connection();
                return;
            }
        }
    }

    /// Reads the reply to request `id`, and drops the connection after a
    /// failure that leaves it unusable.
    fn receive(&mut self, id: u32) -> Result<OwnedReply, ClientError> {
        let reply = self.read_reply(id);
        if let Err(error) = &reply
            && retry::ends_connection(error)
        {
            self.drop_connection();
        }
        reply
    }

    fn read_reply(&mut self, expected_id: u32) -> Result<OwnedReply, ClientError> {
        match self.connection.as_mut() {
            Some(connection) => read_reply(connection, &self.options, expected_id),
            None => Err(ClientError::ConnectionLost {
                path: self.options.socket_path.clone(),
                source: io::Error::from(io::ErrorKind::NotConnected),
            }),
        }
    }

    fn ensure_connected(&mut self, liveness: Liveness) -> Result<(), ClientError> {
        let alive = match &self.connection {
            Some(connection) => {
                !liveness.should_peek(self.pipeline.owes_replies()) || connection.peer_still_there()
            }
            None => false,
        };
        if !alive {
            self.drop_connection();
            self.connection = Some(self.open()?);
            self.connects += 1;
        }
        Ok(())
    }

    /// Connects and performs the HELLO handshake.
    fn open(&mut self) -> Result<Connection, ClientError> {
        let path = &self.options.socket_path;
        let timeout = self.options.timeout.max(MIN_CONNECT_TIMEOUT);
        let mut connection = Connection::open(path, timeout)
            .map_err(|error| retry::classify(error, Stage::BeforeDelivery, path, timeout))?;
        let id = self.take_request_id();
        self.request_frame.clear();
        Request::Hello {
            version: PROTOCOL_VERSION,
            client: &self.options.client_name,
        }
        .encode(id, DEFAULT_MAX_FRAME_SIZE, &mut self.request_frame)?;
        connection
            .send(&self.request_frame)
            .map_err(|error| self.classify(error, Stage::BeforeDelivery))?;
        let reply =
            read_reply(&mut connection, &self.options, id).map_err(retry::handshake_failed)?;
        match reply {
            // The daemon answers in the version asked for; one that answers
            // in a version this crate cannot decode is not speaking to us.
            OwnedReply::Hello {
                version,
                max_frame_size,
            } if (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) => {
                connection.handshaken(version, max_frame_size);
                Ok(connection)
            }
            other => Err(other.unexpected()),
        }
    }

    fn max_frame_size(&self) -> u32 {
        self.connection
            .as_ref()
            .map_or(DEFAULT_MAX_FRAME_SIZE, Connection::max_frame_size)
    }

    fn take_request_id(&mut self) -> u32 {
        let id = self.next_request_id;
        // 0 is reserved for errors about the connection as a whole.
        self.next_request_id = self.next_request_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Forgets the connection, and with it every reply the pipeline was owed.
    fn drop_connection(&mut self) {
        self.connection = None;
        self.pipeline.connection_lost(&self.options.socket_path);
    }

    fn classify(&self, error: io::Error, stage: Stage) -> ClientError {
        retry::classify(
            error,
            stage,
            &self.options.socket_path,
            self.options.timeout,
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Queued publishes not yet written still go out, unanswered: a
        // script that queues and never flushes loses no message.
        if let Some(connection) = &self.connection {
            let unwritten = self.pipeline.unwritten_frames();
            if !unwritten.is_empty() {
                let _ = connection.send(unwritten);
            }
        }
    }
}

/// Reads the reply to request `expected_id` from `connection`, waiting at
/// most the configured timeout for all of it. Inline, as it runs once per
/// reply (see [`reply`]).
#[inline]
fn read_reply(
    connection: &mut Connection,
    options: &ClientOptions,
    expected_id: u32,
) -> Result<OwnedReply, ClientError> {
    let deadline = Instant::now() + options.timeout;
    let (header, reply) = connection.receive(deadline).map_err(|error| match error {
        // Only a written request is waited for.
        ReadError::Io(error) => retry::classify(
            error,
            Stage::AfterWrite,
            &options.socket_path,
            options.timeout,
        ),
        ReadError::Malformed(reason) => ClientError::Protocol(reason),
    })?;
    reply.answering(header, expected_id)
}

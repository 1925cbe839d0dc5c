//! Sending a connecting page what it missed, before anything live.
//!
//! With recovery on, a connection joins the resuming room at admission, so
//! no live message reaches it directly (dispatch leaves that room out of
//! every publish). Once it is connected:
//!
//! 1. it gets the `push:recovery` status, first of all;
//! 2. if its offset could be honoured, every kept message after it that
//!    was meant for it, in order, paced by its send buffer;
//! 3. then whatever was published meanwhile, the same way, until little
//!    is left; that last part is sent under the namespace's lock, and the
//!    connection leaves the resuming room under it too. Publishes hand out
//!    messages under the same lock, so the next one after that is the first
//!    live message it receives: nothing twice, nothing lost, all in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Socket;
use serde::{Deserialize, Serialize};
use socketioxide::{ProtocolVersion, SendError, SocketError};

use crate::auth::Identity;
use crate::recovery::{
    Entry, Offset, OffsetArgument, Recipient, Recovery, Resume, STATUS_EVENT, Status,
};
use crate::rooms::RESUMING_ROOM;

/// Messages few enough to send while holding the namespace's lock. More
/// are sent without it first, so publishers never wait on a long replay.
const CATCH_UP_UNDER_LOCK: usize = 64;

/// The first wait for room in a connection's send buffer. socketio gives
/// no signal when the buffer drains, so the replay tries again: soon at
/// first, since a WebSocket page drains a full buffer within a millisecond
/// or two, then less often while the buffer stays full (a long-polling page
/// fetches in rounds), up to [`LONGEST_BUFFER_WAIT`]. docs/benchmarks.md
/// ("The cost of recovery") measured the replay with a fixed wait.
const BUFFER_WAIT: Duration = Duration::from_millis(1);
const LONGEST_BUFFER_WAIT: Duration = Duration::from_millis(16);

/// A page that takes nothing for this long during its replay is left to
/// its transport's own timeout; it resumes from its last offset when it
/// comes back.
const STALLED_AFTER: Duration = Duration::from_secs(30);

/// Where the namespace's stream stood when the connection was admitted:
/// a connection that sent no offset (or one that cannot be honoured)
/// starts here, so what is published while it connects reaches it too.
#[derive(Debug, Clone, Copy)]
pub struct AdmittedAt(pub Offset);

/// What a page sends in the socket.io `auth` object.
#[derive(Debug, Default, Deserialize)]
pub struct ResumeAuth {
    #[serde(default)]
    pub offset: Option<String>,
}

/// The query parameter an old client (socket.io protocol 4) puts its
/// offset in.
const OFFSET_QUERY_PARAMETER: &str = "offset";

/// The offset a connection asks to resume from.
///
/// Clients 3.x and 4.x (protocol 5) send it in the `auth` object of their
/// namespace connect. Clients 1.x and 2.x (protocol 4) have no `auth`
/// object: they send it as `offset` in the query string of the engine.io
/// request (`io.opts.query`), the only place protocol 4 carries data at
/// connect (docs/recovery.md).
pub fn sent_offset(socket: &Socket, auth: Option<ResumeAuth>) -> Option<String> {
    match socket.protocol() {
        ProtocolVersion::V5 => auth.and_then(|auth| auth.offset),
        ProtocolVersion::V4 => {
            let query = socket.req_parts().uri.query()?;
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == OFFSET_QUERY_PARAMETER)
                .map(|(_, offset)| offset.into_owned())
        }
    }
}

/// Marks a connection that is being sent what it missed; kept in step with
/// its membership of [`RESUMING_ROOM`] by [`begin`] and [`end`].
#[derive(Debug, Clone, Copy)]
struct Resuming;

/// Holds `socket`'s live messages back until its replay has caught up:
/// publishes leave it out (the room), and count it, since its replay
/// brings it what they publish meanwhile (the marker, see
/// [`is_resuming`]).
pub fn begin(socket: &Socket) {
    socket.extensions.insert(Resuming);
    socket.join(RESUMING_ROOM);
}

/// `socket` has caught up: live messages reach it from now on.
fn end(socket: &Socket) {
    socket.leave(RESUMING_ROOM);
    socket.extensions.remove::<Resuming>();
}

/// Whether `socket` is between [`begin`] and the end of its replay.
pub fn is_resuming(socket: &Socket) -> bool {
    socket.extensions.get::<Resuming>().is_some()
}

/// The connection closed, or stopped reading, before its replay ended.
#[derive(Debug)]
struct Gone;

/// Sends the status, the replay and the catch-up to `socket`, in the
/// background.
pub fn start(socket: Socket, recovery: Arc<Recovery>, requested: Option<String>) {
    tokio::spawn(async move {
        if let Err(Gone) = resume(&socket, &recovery, requested.as_deref()).await {
            tracing::debug!(sid = %socket.id, ns = socket.ns(), "the connection went away during its replay");
        }
    });
}

async fn resume(socket: &Socket, recovery: &Recovery, requested: Option<&str>) -> Result<(), Gone> {
    let identity = socket.extensions.get::<Arc<Identity>>();
    let recipient = Recipient {
        user: identity.as_ref().map(|identity| identity.user_id.as_str()),
        rooms: identity.as_ref().map_or(&[], |identity| &identity.rooms),
    };
    let namespace = socket.ns();
    let Some(resume) = recovery.resume(namespace, requested, recipient).await else {
        end(socket);
        return Ok(());
    };
    let mut seen = match resume {
        Resume::Recovered {
            from,
            entries,
            upto,
        } => {
            send_status(socket, true, entries.len(), from).await?;
            tracing::debug!(sid = %socket.id, ns = namespace, replayed = entries.len(), "recovering missed messages");
            send_paced(socket, from.epoch, &entries).await?;
            upto.seq
        }
        Resume::Reset { position } => {
            let start = socket
                .extensions
                .get::<AdmittedAt>()
                .map_or(position, |admitted| admitted.0);
            send_status(socket, false, 0, start).await?;
            start.seq
        }
    };
    let mut full = Backoff::default();
    loop {
        let Some(stream) = recovery.lock(namespace).await else {
            break;
        };
        let epoch = stream.position().epoch;
        let Ok(batch) = stream.after(seen, recipient) else {
            // The window or a cap dropped messages not yet sent: say so,
            // as for an offset that is too old.
            let position = stream.position();
            drop(stream);
            send_status(socket, false, 0, position).await?;
            seen = position.seq;
            continue;
        };
        if batch.len() <= CATCH_UP_UNDER_LOCK {
            match send_now(socket, epoch, &batch) {
                Ok(()) => {
                    end(socket);
                    return Ok(());
                }
                Err(Sent::Some(last)) => seen = last,
                Err(Sent::Closed) => return Err(Gone),
            }
            drop(stream);
            full.wait().await?;
            continue;
        }
        let position = stream.position();
        drop(stream);
        send_paced(socket, epoch, &batch).await?;
        seen = position.seq;
    }
    end(socket);
    Ok(())
}

async fn send_status(
    socket: &Socket,
    recovered: bool,
    replayed: usize,
    offset: Offset,
) -> Result<(), Gone> {
    let status = Status {
        recovered,
        replayed,
        offset: offset.to_string(),
    };
    send_waiting(socket, STATUS_EVENT, &status).await
}

/// Sends `entries` in order, waiting for room in the send buffer.
async fn send_paced(socket: &Socket, epoch: u64, entries: &[Arc<Entry>]) -> Result<(), Gone> {
    for entry in entries {
        send_waiting(socket, &entry.event, &delivered(epoch, entry)).await?;
    }
    Ok(())
}

/// The arguments of a delivered event: the message, then its offset.
fn delivered(epoch: u64, entry: &Entry) -> (&serde_json::value::RawValue, OffsetArgument) {
    let offset = Offset {
        epoch,
        seq: entry.seq,
    };
    (
        &entry.payload,
        OffsetArgument {
            offset: offset.to_string(),
        },
    )
}

async fn send_waiting<T: Serialize + ?Sized>(
    socket: &Socket,
    event: &str,
    data: &T,
) -> Result<(), Gone> {
    let mut full = Backoff::default();
    loop {
        match socket.emit(event, data) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => full.wait().await?,
            Err(_) => return Err(Gone),
        }
    }
}

/// Waiting for room in a full send buffer: [`BUFFER_WAIT`] first, doubling
/// to [`LONGEST_BUFFER_WAIT`], and giving up after [`STALLED_AFTER`].
#[derive(Default)]
struct Backoff {
    since: Option<Instant>,
    next: Option<Duration>,
}

impl Backoff {
    async fn wait(&mut self) -> Result<(), Gone> {
        if self.since.get_or_insert_with(Instant::now).elapsed() > STALLED_AFTER {
            return Err(Gone);
        }
        let wait = self.next.unwrap_or(BUFFER_WAIT);
        tokio::time::sleep(wait).await;
        self.next = Some((wait * 2).min(LONGEST_BUFFER_WAIT));
        Ok(())
    }
}

/// How far [`send_now`] got.
enum Sent {
    /// The buffer filled after the entry with this sequence number (or
    /// before the first, which leaves `seen` as it was).
    Some(u64),
    Closed,
}

/// Sends `entries` without waiting: under the namespace's lock, a full
/// buffer means trying again after releasing it.
fn send_now(socket: &Socket, epoch: u64, entries: &[Arc<Entry>]) -> Result<(), Sent> {
    let mut last_sent = None;
    for entry in entries {
        match socket.emit(&*entry.event, &delivered(epoch, entry)) {
            Ok(()) => last_sent = Some(entry.seq),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                return Err(Sent::Some(last_sent.unwrap_or(entry.seq.saturating_sub(1))));
            }
            Err(_) => return Err(Sent::Closed),
        }
    }
    Ok(())
}

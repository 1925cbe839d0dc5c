//! Sending a page what it missed, before anything live.
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
//!
//! A connected page whose send buffer fills goes the same way from step 3
//! ([`catch_up`]): dispatch puts it back in the resuming room, under the
//! lock of the publish it could not take, and it is sent everything after
//! the last message it did take once it reads again. It hears
//! `push:recovery` only if the history no longer holds all of that.

use std::sync::Arc;

use crate::cluster::Socket;
use serde::Deserialize;
use socketioxide::{ProtocolVersion, SendError, SocketError};

use super::send_buffer::{Backoff, Gone, send_waiting};
use crate::auth::Identity;
use crate::metrics::Metrics;
use crate::outcomes::CatchUpOutcome;
use crate::recovery::{
    Entry, Offset, OffsetArgument, Recipient, Recovery, Resume, STATUS_EVENT, Status,
};
use crate::rooms::RESUMING_ROOM;

/// Messages few enough to send while holding the namespace's lock. More
/// are sent without it first, so publishers never wait on a long replay.
const CATCH_UP_UNDER_LOCK: usize = 64;

/// Messages taken from the history at a time while catching up. A page far
/// behind holds this many at most, not the whole history: a thousand slow
/// pages must not keep a thousand lists of what they missed, nor hold on
/// to messages the history has already let go.
const CATCH_UP_BATCH: usize = 1024;

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

/// Sends the status, the replay and the catch-up to `socket`, in the
/// background.
pub fn start(socket: Socket, recovery: Arc<Recovery>, requested: Option<String>) {
    tokio::spawn(async move {
        if let Err(Gone) = resume(&socket, &recovery, requested.as_deref()).await {
            tracing::debug!(sid = %socket.id, ns = socket.ns(), "the connection went away during its replay");
        }
    });
}

/// Takes `socket`, whose send buffer is full, off live messages, and sends
/// it everything after `received` (the last message it took, if known) in
/// the background once it reads again. The caller holds the namespace's
/// lock: the next publish already leaves the connection out.
pub fn catch_up(
    socket: &Socket,
    recovery: Arc<Recovery>,
    metrics: Arc<Metrics>,
    received: Option<Offset>,
) {
    if is_resuming(socket) {
        return; // Already being sent what it misses.
    }
    begin(socket);
    metrics.catch_up_started();
    let socket = socket.clone();
    tokio::spawn(async move {
        tracing::debug!(sid = %socket.id, ns = socket.ns(), "a connection's send buffer is full; it will be caught up from the history");
        let identity = socket.extensions.get::<Arc<Identity>>();
        let recipient = recipient_of(identity.as_deref());
        let outcome = match follow(&socket, &recovery, recipient, received).await {
            Ok(Followed::Complete) => CatchUpOutcome::Recovered,
            Ok(Followed::AfterReset) => CatchUpOutcome::Reset,
            Err(Gone) => CatchUpOutcome::Closed,
        };
        metrics.catch_up_ended(outcome);
    });
}

fn recipient_of(identity: Option<&Identity>) -> Recipient<'_> {
    Recipient {
        user: identity.map(|identity| identity.user_id.as_str()),
        rooms: identity.map_or(&[], |identity| &identity.rooms),
    }
}

async fn resume(socket: &Socket, recovery: &Recovery, requested: Option<&str>) -> Result<(), Gone> {
    let identity = socket.extensions.get::<Arc<Identity>>();
    let recipient = recipient_of(identity.as_deref());
    let namespace = socket.ns();
    let Some(resume) = recovery.resume(namespace, requested, recipient).await else {
        end(socket);
        return Ok(());
    };
    let seen = match resume {
        Resume::Recovered {
            from,
            entries,
            upto,
        } => {
            send_status(socket, true, entries.len(), from).await?;
            tracing::debug!(sid = %socket.id, ns = namespace, replayed = entries.len(), "recovering missed messages");
            send_paced(socket, from.epoch, &entries).await?;
            upto
        }
        Resume::Reset { position } => {
            let start = socket
                .extensions
                .get::<AdmittedAt>()
                .map_or(position, |admitted| admitted.0);
            send_status(socket, false, 0, start).await?;
            start
        }
    };
    follow(socket, recovery, recipient, Some(seen)).await?;
    Ok(())
}

/// How [`follow`] ended.
enum Followed {
    /// Every message after the first offset was sent.
    Complete,
    /// Some were no longer kept: the page was sent `recovered: false`.
    AfterReset,
}

/// Sends `socket` every message for it after `seen` (all that is kept, if
/// `None`) until it has caught up, then makes it live again (step 3 of the
/// module's list). A message no longer kept, or a new epoch, makes it send
/// the `recovered: false` status and go on from the stream's position.
async fn follow(
    socket: &Socket,
    recovery: &Recovery,
    recipient: Recipient<'_>,
    mut seen: Option<Offset>,
) -> Result<Followed, Gone> {
    let namespace = socket.ns();
    let mut followed = Followed::Complete;
    let mut full = Backoff::default();
    loop {
        let Some(stream) = recovery.lock(namespace).await else {
            break;
        };
        let position = stream.position();
        let batch = seen
            .filter(|seen| seen.epoch == position.epoch)
            .and_then(|seen| stream.after(seen.seq, recipient, CATCH_UP_BATCH).ok());
        let Some(batch) = batch else {
            // The window or a cap dropped messages not yet sent, or the
            // history began again: say so, as for an offset too old.
            drop(stream);
            send_status(socket, false, 0, position).await?;
            followed = Followed::AfterReset;
            seen = Some(position);
            continue;
        };
        if batch.len() <= CATCH_UP_UNDER_LOCK {
            match send_now(socket, position.epoch, &batch) {
                Ok(()) => {
                    end(socket);
                    return Ok(followed);
                }
                Err(Sent::Until(None)) => {}
                Err(Sent::Until(Some(last))) => {
                    // It reads: the next wait starts short again.
                    full = Backoff::default();
                    seen = Some(stream.offset(last));
                }
                Err(Sent::Closed) => return Err(Gone),
            }
            drop(stream);
            full.wait().await;
            continue;
        }
        drop(stream);
        send_paced(socket, position.epoch, &batch).await?;
        seen = match batch.last() {
            // A full batch: more may follow it.
            Some(last) if batch.len() == CATCH_UP_BATCH => Some(stream_offset(position, last)),
            _ => Some(position),
        };
    }
    end(socket);
    Ok(followed)
}

/// The offset of `entry`, in the epoch of `position`.
fn stream_offset(position: Offset, entry: &Entry) -> Offset {
    Offset {
        seq: entry.seq,
        ..position
    }
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

/// How far [`send_now`] got.
enum Sent {
    /// The buffer filled after the entry with this sequence number, or
    /// before the first (`None`).
    Until(Option<u64>),
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
                return Err(Sent::Until(last_sent));
            }
            Err(_) => return Err(Sent::Closed),
        }
    }
    Ok(())
}

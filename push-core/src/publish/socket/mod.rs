//! The Unix socket the site publishes on.
//!
//! Binding is careful about the socket file, because it outlives crashes:
//! a file left by a dead daemon is replaced, but a file a live daemon is
//! still answering on is left alone and we refuse to start, so two daemons
//! never fight over one path. On shutdown the file is removed only if it is
//! still the one we created.
//!
//! Who may publish is decided by the socket file's mode and group and,
//! optionally, an allow-list of peer user and group ids checked with
//! `SO_PEERCRED` on every connection ([`access`]).
//!
//! Each admitted connection is served by a task of its own
//! ([`connection`], which says how it keeps a publish to one wake-up),
//! where requests are decoded and answered ([`session`]); at most
//! `max_publishers` at once.
//! A peer that is refused (not on the allow-list, or one too many) is told
//! why by a small task instead.

mod access;
mod connection;
mod session;

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use push_client::ErrorCode;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use self::access::PeerAccess;
use self::session::Session;
use crate::config::PublishSettings;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;

/// How long a refused publisher gets to read its refusal before we close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why the publish socket could not be set up.
#[derive(Debug, Error)]
pub enum BindError {
    #[error(
        "another push-core is already listening on {0}; stop it first, or choose another --socket"
    )]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it, choose another --socket")]
    NotASocket(PathBuf),
    #[error("cannot create the directory {path} for the publish socket: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot replace the stale socket file {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set the permissions or group of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
}

/// What every connection needs to answer requests.
#[derive(Clone)]
pub(crate) struct Services {
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    pub max_frame_size: u32,
    pub max_publishers: usize,
    pub access: PeerAccess,
}

/// A bound publish socket, not yet accepting.
pub struct PublishSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the file we created, to recognise it at removal.
    file_id: (u64, u64),
}

impl PublishSocket {
    /// Binds the socket of `settings` with its mode and group, replacing a
    /// stale socket file. Must be called from within a tokio runtime.
    pub fn bind(settings: &PublishSettings) -> Result<Self, BindError> {
        let path = settings.socket.as_path();
        clear_stale_socket(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|source| BindError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        let bind_error = |source| BindError::Bind {
            path: path.to_owned(),
            source,
        };
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let listener = UnixListener::from_std(listener).map_err(bind_error)?;

        let permissions_error = |source| BindError::Permissions {
            path: path.to_owned(),
            source,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(settings.socket_mode))
            .map_err(permissions_error)?;
        if let Some(gid) = settings.socket_group {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(permissions_error)?;
        }
        let metadata = std::fs::metadata(path).map_err(permissions_error)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            file_id: (metadata.dev(), metadata.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts publishers until `shutdown` fires, then removes the socket
    /// file, tells every connection to finish and waits for them to answer
    /// what they have read.
    pub(crate) async fn serve(self, services: Services, shutdown: CancellationToken) {
        let connections = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(services.max_publishers));
        let stop = CancellationToken::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => admit(stream, &services, &slots, &stop, &connections),
                    Err(error) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!(%error, "could not accept a publish connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = shutdown.cancelled() => break,
            }
        }
        self.remove_file();
        drop(self);
        stop.cancel();
        connections.close();
        connections.wait().await;
    }

    fn remove_file(&self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file_id);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "could not remove the publish socket file");
        }
    }
}

/// Serves `stream` on a task of its own, or tells the peer why not.
fn admit(
    stream: UnixStream,
    services: &Services,
    slots: &Arc<Semaphore>,
    stop: &CancellationToken,
    connections: &TaskTracker,
) {
    if let Err(reason) = services.access.check(&stream) {
        tracing::warn!(%reason, "refused a publisher");
        connections.spawn(refuse(
            stream,
            ErrorCode::FORBIDDEN,
            reason,
            services.clone(),
        ));
        return;
    }
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        let limit = services.max_publishers;
        tracing::warn!(
            limit,
            "refused a publisher: max_publishers connections are open"
        );
        let message = format!(
            "push-core already serves {limit} publisher connections, its max_publishers setting; raise it, or have fewer processes keep a connection open"
        );
        connections.spawn(refuse(
            stream,
            ErrorCode::TOO_MANY_PUBLISHERS,
            message,
            services.clone(),
        ));
        return;
    };
    let (services, stop) = (services.clone(), stop.clone());
    connections.spawn(async move {
        connection::serve(stream, services, stop).await;
        drop(slot);
    });
}

/// Tells a peer that may not publish why, then closes.
async fn refuse(mut stream: UnixStream, code: ErrorCode, reason: String, services: Services) {
    services.metrics.publisher_connected();
    let mut refusal = Vec::new();
    Session::new(services.clone()).refuse_connection(code, &reason, &mut refusal);
    let _ = stream.write_all(&refusal).await;
    // Close our side only, and read (and drop) what the peer sends for a
    // moment: closing outright would fail the client's HELLO write with
    // EPIPE before it could read why it was refused.
    let _ = stream.shutdown().await;
    let mut discard = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {}
    })
    .await;
    services.metrics.publisher_disconnected();
}

/// Removes a socket file nobody answers on; refuses if somebody does.
fn clear_stale_socket(path: &Path) -> Result<(), BindError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Bind {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(BindError::NotASocket(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::AlreadyRunning(path.to_owned())),
        // Only "nobody listens" proves the file stale. Any other failure
        // (say, no permission to connect) could hide a live daemon.
        Err(error) if error.kind() != io::ErrorKind::ConnectionRefused => Err(BindError::Bind {
            path: path.to_owned(),
            source: io::Error::new(
                error.kind(),
                format!(
                    "cannot tell whether the existing socket file is in use ({error}); remove it if no daemon runs"
                ),
            ),
        }),
        Err(_) => {
            tracing::info!(path = %path.display(), "replacing a stale publish socket file");
            std::fs::remove_file(path).map_err(|source| BindError::RemoveStale {
                path: path.to_owned(),
                source,
            })
        }
    }
}

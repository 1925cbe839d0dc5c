//! Checking who is on the other end of a publish connection.
//!
//! The socket file's permissions are the first gate. This is the second, for
//! hosts where more users than the web server's can reach the file: the
//! kernel tells us the peer's user and group ids (`SO_PEERCRED`), and when an
//! allow-list is configured, a peer on neither list is refused.

use tokio::net::UnixStream;

/// The configured allow-lists; both empty lets every peer through.
#[derive(Debug, Clone, Default)]
pub struct PeerAccess {
    uids: Vec<u32>,
    gids: Vec<u32>,
}

impl PeerAccess {
    pub fn new(uids: Vec<u32>, gids: Vec<u32>) -> Self {
        Self { uids, gids }
    }

    /// `Ok` when the peer may publish; otherwise a message for the peer and
    /// the log.
    pub fn check(&self, stream: &UnixStream) -> Result<(), String> {
        if self.uids.is_empty() && self.gids.is_empty() {
            return Ok(());
        }
        let credentials = stream
            .peer_cred()
            .map_err(|e| format!("the peer's credentials could not be read ({e})"))?;
        let (uid, gid) = (credentials.uid(), credentials.gid());
        if self.uids.contains(&uid) || self.gids.contains(&gid) {
            Ok(())
        } else {
            Err(format!(
                "processes of uid {uid} / gid {gid} may not publish here; add one of them to publisher_uids or publisher_gids"
            ))
        }
    }
}

//! Where the publish socket is when no one says: one rule for `serve` and
//! for the tools (`send`, `stats`, `online`, `position`), so that a daemon
//! started without `--socket` is found by tools started without it, by the
//! same user.
//!
//! - root: `/run/push-core/push.sock`, the system daemon's place (the
//!   packaged service names it in its config, as it runs as its own user);
//! - any other user: `$XDG_RUNTIME_DIR/push-core/push.sock`, the login
//!   session's private runtime directory, or, without one (a cron job, an
//!   `su` shell), `/tmp/push-core-<uid>/push.sock`.
//!
//! The PHP extension keeps `/run/push-core/push.sock` as its default:
//! php-fpm talks to the system daemon, whatever user it runs as.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use push_client::DEFAULT_SOCKET_PATH;

/// The socket's file name inside a per-user directory.
const SOCKET_FILE: &str = "push.sock";

/// The default socket path for the user running this process.
pub fn for_this_user() -> PathBuf {
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return PathBuf::from(DEFAULT_SOCKET_PATH);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(runtime_dir) => Path::new(&runtime_dir).join("push-core").join(SOCKET_FILE),
        None => shared_tmp_dir(uid.as_raw()).join(SOCKET_FILE),
    }
}

/// The per-user directory under /tmp, for users without a runtime directory.
fn shared_tmp_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/push-core-{uid}"))
}

/// Makes the directory of a socket under /tmp private to this user, before
/// `serve` binds there. /tmp is shared: another user could have made the
/// directory first and then replace the socket with one of their own, so a
/// directory that is not this user's alone is refused. Elsewhere (`/run`,
/// `$XDG_RUNTIME_DIR`, a directory the operator chose) nothing is checked.
pub fn secure_parent(socket: &Path) -> io::Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let dir = shared_tmp_dir(uid);
    if socket.parent() != Some(dir.as_path()) {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let metadata = std::fs::symlink_metadata(&dir)?;
    let private = metadata.is_dir() && metadata.uid() == uid && metadata.mode() & 0o077 == 0;
    if private {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} exists but is not a directory of this user's alone (mode 0700); remove it or choose --socket",
                dir.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_system_path_for_root_and_a_private_one_otherwise() {
        let path = for_this_user();
        if rustix::process::getuid().is_root() {
            assert_eq!(path, Path::new(DEFAULT_SOCKET_PATH));
        } else {
            assert_ne!(path, Path::new(DEFAULT_SOCKET_PATH));
            assert!(path.ends_with("push-core/push.sock") || path.starts_with("/tmp/push-core-"));
        }
    }

    #[test]
    fn only_the_tmp_directory_is_checked() {
        assert!(secure_parent(Path::new("/nonexistent/dir/push.sock")).is_ok());
    }
}

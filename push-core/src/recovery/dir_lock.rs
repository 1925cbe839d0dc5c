//! One daemon per state directory.
//!
//! Two daemons started on the same `state_dir` would both append to its
//! journal and both rewrite its epoch: each would read back a history
//! mixed with the other's, numbered twice. So the first daemon takes an
//! exclusive `flock` on a file in the directory and holds it for as long as
//! it runs; a second one finds the lock taken and refuses to start, naming
//! the directory and the pid the holder wrote into the file.
//!
//! The kernel lets go of the lock when the holder's process ends, however
//! it ends, so a daemon killed with `kill -9` leaves nothing that stops the
//! next one: the file stays, with a stale pid in it, but unlocked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The file the lock is taken on.
const LOCK_FILE: &str = "lock";

/// The lock on a state directory; held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its pid, if it could be read.
    Held {
        pid: Option<u32>,
    },
    Io(io::Error),
}

impl From<io::Error> for LockError {
    fn from(error: io::Error) -> Self {
        LockError::Io(error)
    }
}

impl DirLock {
    /// Takes the lock on `dir`, without waiting, and writes this process's
    /// pid into its file.
    pub fn take(dir: &Path) -> Result<Self, LockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(error)) => return Err(LockError::Io(error)),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

/// The pid the holder wrote, if the file holds one (a holder that has just
/// taken the lock may not have written it yet).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::take(dir.path()).unwrap();
        match DirLock::take(dir.path()) {
            Err(LockError::Held { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected the lock to be held: {other:?}"),
        }
        drop(held);
        assert!(DirLock::take(dir.path()).is_ok(), "free again once dropped");
    }
}

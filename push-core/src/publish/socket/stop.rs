//! Telling every publisher thread at once that the daemon is stopping.
//!
//! Publisher connections are served by threads that wait in poll(2) (see
//! [`super::connection`]), so the signal must be a file descriptor they can
//! wait on beside their connection. It is the read end of a pipe whose write
//! end is dropped at shutdown: from then on the read end polls as hung up,
//! for every thread and for good, with no one having to wake each of them.

use std::io::{self, PipeReader, PipeWriter};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

/// Held by the accept loop; dropping it signals the stop.
pub(super) struct StopTrigger {
    /// Never written to: closing it is the signal.
    _write_end: PipeWriter,
}

/// Waited on by the publisher threads.
#[derive(Clone)]
pub(super) struct StopSignal(Arc<PipeReader>);

/// A new, unsignalled stop.
pub(super) fn stop_signal() -> io::Result<(StopTrigger, StopSignal)> {
    let (reader, writer) = io::pipe()?;
    Ok((
        StopTrigger { _write_end: writer },
        StopSignal(Arc::new(reader)),
    ))
}

impl AsFd for StopSignal {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

//! Making room for many connections in the open-file limit.
//!
//! Every browser connection is a file descriptor, and the usual soft limit
//! of 1024 would cap the daemon far below `max_connections`. Like most
//! servers, push-core raises its soft limit to the hard limit at start, and
//! warns when even the hard limit cannot hold `max_connections`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but browsers: listeners, publishers,
/// auth calls, logs.
const SPARE_DESCRIPTORS: u64 = 1024;

/// Raises the soft open-file limit to the hard one and checks it against
/// `max_connections` (0: no limit configured).
pub fn raise_for(max_connections: usize) {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if limit.current != limit.maximum
        && let Err(error) = setrlimit(Resource::Nofile, raised)
    {
        tracing::warn!(%error, "could not raise the open-file limit");
    }
    let available = getrlimit(Resource::Nofile).current;
    let needed = (max_connections as u64).saturating_add(SPARE_DESCRIPTORS);
    match available {
        Some(available) if max_connections > 0 && available < needed => tracing::warn!(
            open_files = available,
            max_connections,
            "the open-file limit cannot hold max_connections; raise it (LimitNOFILE= in systemd, ulimit -n) or lower max_connections"
        ),
        _ => tracing::debug!(open_files = ?available, "open-file limit"),
    }
}

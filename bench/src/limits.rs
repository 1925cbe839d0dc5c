//! The open-file limit: one file descriptor per connection, on both sides.
//!
//! The bench raises its own soft RLIMIT_NOFILE to the hard limit; the
//! servers it starts inherit it. The hard limit cannot be raised without
//! privileges (and on this machine not at all), so when it is below what a
//! plan needs, the bench says so and the caller shrinks the plan.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors a process needs besides its connections: listeners, the
/// publish socket, the auth backend's connections, files.
pub const SPARE_DESCRIPTORS: u64 = 512;

/// Raises the soft limit to the hard one; returns the limit now in force.
pub fn raise_open_files(wanted: u64) -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft < hard {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => eprintln!("bench: raised the open-file limit from {soft} to {hard}"),
            Err(error) => {
                eprintln!("bench: could not raise the open-file limit from {soft}: {error}")
            }
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < wanted {
        eprintln!(
            "bench: the open-file limit is {now} (hard limit {hard}), below the {wanted} this plan needs; \
             raise the hard limit (ulimit -Hn, or LimitNOFILE in systemd) to run it in full"
        );
    }
    now
}

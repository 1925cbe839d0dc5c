//! The reconnect and retry policy: when a request is sent again, and what
//! each failure tells the caller about delivery.
//!
//! The client promises at most once, never twice (see [`super`]). That
//! promise rests on one fact about Unix sockets: a write to a peer that has
//! closed fails at once (`EPIPE`), so a frame whose write failed that way
//! never reached a daemon that could act on it. Such a request is sent again
//! on a fresh connection, once. Any failure after a frame was written may
//! follow a delivery, so it is reported and never retried.
//!
//! Everything here is a decision about errors already observed; no system
//! call is made, which keeps the policy testable without a daemon.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::ClientError;
use crate::protocol::ErrorCode;

/// How many times one synchronous request is sent again after its write
/// found the daemon gone.
///
/// One covers the case it exists for, a daemon restarted while this client
/// kept a connection to the old one: the fresh connection reaches the new
/// daemon. A second failure in a row means the daemon is going away again
/// (or keeps crashing), which the caller should hear about rather than wait
/// through.
pub(super) const RESENDS_AFTER_DAEMON_LEFT: u32 = 1;

/// Whether a kept connection is checked before it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    /// Peek at an idle connection: one system call. Used before a pipeline,
    /// whose frames are written later in batches, where a dead connection
    /// would fail a whole batch that can no longer be resent safely.
    Peek,
    /// Trust it: a synchronous request's own write reports a daemon that went
    /// away, before anything is delivered, and is resent. No extra system
    /// call on the send path.
    AssumeAlive,
}

impl Liveness {
    /// Whether to peek at a kept connection before using it. With replies
    /// still owed, unread bytes are expected on the socket, so only an idle
    /// connection can be checked by peeking; a busy one is trusted.
    pub(super) fn should_peek(self, replies_owed: bool) -> bool {
        self == Liveness::Peek && !replies_owed
    }
}

/// The resends left to one synchronous request.
#[derive(Debug)]
pub(super) struct Resends {
    left: u32,
}

impl Resends {
    pub(super) fn new() -> Self {
        Self {
            left: RESENDS_AFTER_DAEMON_LEFT,
        }
    }

    /// Whether a request whose write failed with `error` is sent again on a
    /// fresh connection. Takes one resend when it is.
    pub(super) fn resend_after(&mut self, error: &io::Error) -> bool {
        if self.left == 0 || !daemon_went_away(error) {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Errors that mean the daemon end of the socket is gone, so nothing written
/// could have been acted upon.
fn daemon_went_away(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// Where a request was when a socket error ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Connecting, or writing a frame: nothing can have been delivered.
    BeforeDelivery,
    /// Waiting for the reply to a frame that was written: the daemon may
    /// already have delivered it.
    AfterWrite,
}

/// What a socket error means for the caller.
pub(super) fn classify(
    error: io::Error,
    stage: Stage,
    path: &Path,
    timeout: Duration,
) -> ClientError {
    let path = path.to_path_buf();
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ClientError::Timeout { path, timeout }
        }
        _ => match stage {
            Stage::BeforeDelivery => ClientError::Unreachable {
                path,
                source: error,
            },
            Stage::AfterWrite => ClientError::ConnectionLost {
                path,
                source: error,
            },
        },
    }
}

/// A failed HELLO, as the caller sees it. No request was sent yet, so a
/// daemon that hangs up during the handshake has delivered nothing: it is as
/// good as unreachable, not a lost connection.
pub(super) fn handshake_failed(error: ClientError) -> ClientError {
    match error {
        ClientError::ConnectionLost { path, source } => ClientError::Unreachable { path, source },
        other => other,
    }
}

/// The result of a pipelined publish whose connection ended before its
/// reply came: it may or may not have been delivered.
pub(super) fn lost_with_connection(path: &Path) -> ClientError {
    ClientError::ConnectionLost {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the connection ended before this publish's reply arrived",
        ),
    }
}

/// Whether the connection can carry no further request after `error`, so the
/// client drops it and the next request reconnects.
///
/// After a timeout, a lost connection or bytes that are not a reply, the
/// stream's position is unknown: a late reply could be taken for the next
/// request's. Refusals about the connection itself are followed by the
/// daemon closing it. Any other refusal concerns only its request.
pub(super) fn ends_connection(error: &ClientError) -> bool {
    match error {
        ClientError::Timeout { .. }
        | ClientError::ConnectionLost { .. }
        | ClientError::Protocol(_) => true,
        ClientError::Refused { code, .. } => matches!(
            *code,
            ErrorCode::FRAME_TOO_LARGE | ErrorCode::MALFORMED_FRAME | ErrorCode::SHUTTING_DOWN
        ),
        ClientError::Unreachable { .. }
        | ClientError::FrameTooLarge { .. }
        | ClientError::Encode(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/run/push-core/push.sock";
    const TIMEOUT: Duration = Duration::from_millis(250);

    fn errno(kind: io::ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    #[test]
    fn a_daemon_gone_at_write_is_resent_once() {
        let mut resends = Resends::new();
        assert!(resends.resend_after(&errno(io::ErrorKind::BrokenPipe)));
        assert!(!resends.resend_after(&errno(io::ErrorKind::BrokenPipe)));
    }

    #[test]
    fn every_sign_of_a_closed_peer_is_resent() {
        for kind in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::NotConnected,
        ] {
            assert!(Resends::new().resend_after(&errno(kind)), "{kind:?}");
        }
    }

    #[test]
    fn other_write_failures_are_not_resent() {
        // A full send buffer past the timeout: the daemon is there but stuck,
        // and may yet read what was written.
        for kind in [
            io::ErrorKind::WouldBlock,
            io::ErrorKind::TimedOut,
            io::ErrorKind::WriteZero,
            io::ErrorKind::PermissionDenied,
        ] {
            assert!(!Resends::new().resend_after(&errno(kind)), "{kind:?}");
        }
    }

    #[test]
    fn a_refused_resend_keeps_the_budget() {
        let mut resends = Resends::new();
        assert!(!resends.resend_after(&errno(io::ErrorKind::TimedOut)));
        assert!(resends.resend_after(&errno(io::ErrorKind::BrokenPipe)));
    }

    #[test]
    fn only_an_idle_connection_is_peeked_at() {
        assert!(Liveness::Peek.should_peek(false));
        assert!(!Liveness::Peek.should_peek(true));
        assert!(!Liveness::AssumeAlive.should_peek(false));
        assert!(!Liveness::AssumeAlive.should_peek(true));
    }

    #[test]
    fn a_timeout_is_a_timeout_at_any_stage() {
        for stage in [Stage::BeforeDelivery, Stage::AfterWrite] {
            for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
                let error = classify(errno(kind), stage, Path::new(PATH), TIMEOUT);
                assert!(
                    matches!(&error, ClientError::Timeout { timeout, .. } if *timeout == TIMEOUT),
                    "{stage:?} {kind:?}: {error:?}"
                );
            }
        }
    }

    #[test]
    fn a_failure_before_delivery_is_unreachable_and_after_a_write_is_lost() {
        let before = classify(
            errno(io::ErrorKind::ConnectionRefused),
            Stage::BeforeDelivery,
            Path::new(PATH),
            TIMEOUT,
        );
        assert!(
            matches!(&before, ClientError::Unreachable { path, .. } if path == Path::new(PATH)),
            "{before:?}"
        );
        let after = classify(
            errno(io::ErrorKind::UnexpectedEof),
            Stage::AfterWrite,
            Path::new(PATH),
            TIMEOUT,
        );
        assert!(
            matches!(after, ClientError::ConnectionLost { .. }),
            "{after:?}"
        );
    }

    #[test]
    fn a_hang_up_during_the_handshake_is_unreachable() {
        let lost = lost_with_connection(Path::new(PATH));
        assert!(matches!(
            handshake_failed(lost),
            ClientError::Unreachable { .. }
        ));
        let timeout = ClientError::Timeout {
            path: PATH.into(),
            timeout: TIMEOUT,
        };
        assert!(matches!(
            handshake_failed(timeout),
            ClientError::Timeout { .. }
        ));
    }

    #[test]
    fn failures_that_leave_the_stream_unknown_end_the_connection() {
        let path = || Path::new(PATH).to_path_buf();
        let ending = [
            ClientError::Timeout {
                path: path(),
                timeout: TIMEOUT,
            },
            lost_with_connection(Path::new(PATH)),
            ClientError::Protocol("reply for request 3 while waiting for 2".into()),
            refused(ErrorCode::FRAME_TOO_LARGE),
            refused(ErrorCode::MALFORMED_FRAME),
            refused(ErrorCode::SHUTTING_DOWN),
        ];
        for error in &ending {
            assert!(ends_connection(error), "{error:?}");
        }
        let kept = [
            refused(ErrorCode::UNKNOWN_NAMESPACE),
            refused(ErrorCode::INVALID_PAYLOAD),
            refused(ErrorCode::FORBIDDEN),
            ClientError::FrameTooLarge { len: 2, max: 1 },
            ClientError::Unreachable {
                path: path(),
                source: errno(io::ErrorKind::NotFound),
            },
        ];
        for error in &kept {
            assert!(!ends_connection(error), "{error:?}");
        }
    }

    fn refused(code: ErrorCode) -> ClientError {
        ClientError::Refused {
            code,
            message: code.name().to_owned(),
        }
    }
}

//! The error codes C callers see, one per [`ErrorKind`].
//!
//! The numbers are push-client's stable [`ErrorKind`] codes, the same ones
//! the PHP extension puts in `PushException::getCode()`. They are spelled
//! out again here because the C header is generated from this file and C
//! needs literal values; a test checks that the two lists agree.

use push_client::ErrorKind;

/// Why the last call on a handle failed. `PUSH_OK` means it did not.
// The variants carry their C names, so the header reads like C.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushErrorCode {
    PUSH_OK = 0,
    /// The daemon is not there (no socket, refused, stopping). Nothing was
    /// delivered.
    PUSH_ERROR_UNREACHABLE = 1,
    /// The daemon did not answer within the timeout.
    PUSH_ERROR_TIMEOUT = 2,
    /// The connection broke after the request was written: the message may
    /// have been delivered and was not sent again.
    PUSH_ERROR_CONNECTION_LOST = 3,
    /// The request is larger than the daemon accepts.
    PUSH_ERROR_FRAME_TOO_LARGE = 4,
    /// The namespace is not configured on the daemon.
    PUSH_ERROR_UNKNOWN_NAMESPACE = 5,
    /// The library and the daemon speak different protocol versions.
    PUSH_ERROR_VERSION_MISMATCH = 6,
    /// The payload is not valid JSON.
    PUSH_ERROR_ENCODING = 7,
    /// An argument is NULL, not UTF-8, or refused by the daemon.
    PUSH_ERROR_INVALID_ARGUMENT = 8,
    /// The daemon refused the request for another reason.
    PUSH_ERROR_REFUSED = 9,
    /// The two ends do not understand each other, or this library failed
    /// internally.
    PUSH_ERROR_PROTOCOL = 10,
    /// The call needs missed-message recovery, which the daemon runs
    /// without (its recovery_window is 0).
    PUSH_ERROR_RECOVERY_OFF = 11,
}

impl From<ErrorKind> for PushErrorCode {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Unreachable => PushErrorCode::PUSH_ERROR_UNREACHABLE,
            ErrorKind::Timeout => PushErrorCode::PUSH_ERROR_TIMEOUT,
            ErrorKind::ConnectionLost => PushErrorCode::PUSH_ERROR_CONNECTION_LOST,
            ErrorKind::FrameTooLarge => PushErrorCode::PUSH_ERROR_FRAME_TOO_LARGE,
            ErrorKind::UnknownNamespace => PushErrorCode::PUSH_ERROR_UNKNOWN_NAMESPACE,
            ErrorKind::VersionMismatch => PushErrorCode::PUSH_ERROR_VERSION_MISMATCH,
            ErrorKind::Encoding => PushErrorCode::PUSH_ERROR_ENCODING,
            ErrorKind::InvalidArgument => PushErrorCode::PUSH_ERROR_INVALID_ARGUMENT,
            ErrorKind::Refused => PushErrorCode::PUSH_ERROR_REFUSED,
            ErrorKind::Protocol => PushErrorCode::PUSH_ERROR_PROTOCOL,
            ErrorKind::RecoveryOff => PushErrorCode::PUSH_ERROR_RECOVERY_OFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_codes_are_the_stable_error_kind_codes() {
        for kind in ErrorKind::ALL {
            assert_eq!(PushErrorCode::from(kind) as i32, kind.code(), "{kind:?}");
        }
    }
}

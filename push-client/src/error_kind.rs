//! A stable number for each way a call can fail, for the language bindings.
//!
//! [`ClientError`] carries the details a Rust caller wants; a PHP or C caller
//! wants one number to branch on that never changes meaning. Both bindings
//! (the PHP extension's `PushException` codes and the C ABI's error codes)
//! take their numbers from here, so a code means the same thing everywhere.

use crate::client::ClientError;
use crate::protocol::ErrorCode;

/// What kind of failure a call ended in. The numbers are part of the public
/// interface of the bindings: add new kinds, never renumber old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The daemon is not there: no socket, connection refused, or stopping.
    /// Nothing was delivered.
    Unreachable = 1,
    /// The daemon did not answer within the timeout.
    Timeout = 2,
    /// The connection broke after the request was written; the message may
    /// have been delivered, so it was not sent again.
    ConnectionLost = 3,
    /// The request is larger than the daemon accepts.
    FrameTooLarge = 4,
    /// The namespace is not configured on the daemon.
    UnknownNamespace = 5,
    /// The client and daemon speak different protocol versions.
    VersionMismatch = 6,
    /// The payload is not valid JSON, or a value could not be encoded as JSON.
    Encoding = 7,
    /// An argument cannot be sent as given (an empty event name, a string
    /// that is too long or not UTF-8).
    InvalidArgument = 8,
    /// The daemon refused the request for another reason (for example, this
    /// peer may not publish).
    Refused = 9,
    /// The two ends do not understand each other: a bug or incompatible
    /// versions.
    Protocol = 10,
    /// The request needs missed-message recovery, which the daemon runs
    /// without (its recovery_window is 0).
    RecoveryOff = 11,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Unreachable,
        ErrorKind::Timeout,
        ErrorKind::ConnectionLost,
        ErrorKind::FrameTooLarge,
        ErrorKind::UnknownNamespace,
        ErrorKind::VersionMismatch,
        ErrorKind::Encoding,
        ErrorKind::InvalidArgument,
        ErrorKind::Refused,
        ErrorKind::Protocol,
        ErrorKind::RecoveryOff,
    ];

    /// The stable number.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The stable name, as used for constants (`PushException::UNREACHABLE`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "UNREACHABLE",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::ConnectionLost => "CONNECTION_LOST",
            ErrorKind::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorKind::UnknownNamespace => "UNKNOWN_NAMESPACE",
            ErrorKind::VersionMismatch => "VERSION_MISMATCH",
            ErrorKind::Encoding => "ENCODING",
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::Refused => "REFUSED",
            ErrorKind::Protocol => "PROTOCOL",
            ErrorKind::RecoveryOff => "RECOVERY_OFF",
        }
    }
}

impl ClientError {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Unreachable { .. } => ErrorKind::Unreachable,
            ClientError::Timeout { .. } => ErrorKind::Timeout,
            ClientError::ConnectionLost { .. } => ErrorKind::ConnectionLost,
            ClientError::FrameTooLarge { .. } => ErrorKind::FrameTooLarge,
            ClientError::Encode(_) => ErrorKind::InvalidArgument,
            ClientError::Refused { code, .. } => kind_of_refusal(*code),
            ClientError::Protocol(_) => ErrorKind::Protocol,
        }
    }
}

fn kind_of_refusal(code: ErrorCode) -> ErrorKind {
    match code {
        ErrorCode::UNKNOWN_NAMESPACE => ErrorKind::UnknownNamespace,
        ErrorCode::UNSUPPORTED_VERSION => ErrorKind::VersionMismatch,
        ErrorCode::FRAME_TOO_LARGE => ErrorKind::FrameTooLarge,
        ErrorCode::INVALID_PAYLOAD => ErrorKind::Encoding,
        ErrorCode::INVALID_REQUEST => ErrorKind::InvalidArgument,
        // A stopping daemon took nothing: for the caller that is the same
        // as a daemon that is not there, and retrying later is the answer.
        ErrorCode::SHUTTING_DOWN => ErrorKind::Unreachable,
        ErrorCode::RECOVERY_OFF => ErrorKind::RecoveryOff,
        ErrorCode::MALFORMED_FRAME
        | ErrorCode::HANDSHAKE_REQUIRED
        | ErrorCode::UNKNOWN_OPERATION => ErrorKind::Protocol,
        _ => ErrorKind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_in_order() {
        for (index, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.code(), index as i32 + 1, "{kind:?}");
        }
    }

    #[test]
    fn refusals_map_to_the_kind_a_caller_acts_on() {
        let refused = |code| ClientError::Refused {
            code,
            message: String::new(),
        };
        assert_eq!(
            refused(ErrorCode::UNKNOWN_NAMESPACE).kind(),
            ErrorKind::UnknownNamespace
        );
        assert_eq!(
            refused(ErrorCode::UNSUPPORTED_VERSION).kind(),
            ErrorKind::VersionMismatch
        );
        assert_eq!(
            refused(ErrorCode::RECOVERY_OFF).kind(),
            ErrorKind::RecoveryOff
        );
        assert_eq!(refused(ErrorCode::FORBIDDEN).kind(), ErrorKind::Refused);
        assert_eq!(refused(ErrorCode(999)).kind(), ErrorKind::Refused);
    }
}

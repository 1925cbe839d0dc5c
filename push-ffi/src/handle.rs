//! What a C caller holds: a client and the last error it ran into.
//!
//! C has no exceptions, so each call returns -1 on failure and leaves the
//! reason on the handle, where `push_last_error_code` and
//! `push_last_error_message` read it, errno-style. The message is kept as a
//! C string so the pointer handed out stays valid until the next call on the
//! same handle. A call that answers with a string (`push_position`) keeps
//! its answer on the handle the same way, and a call that answers with a
//! count keeps whether that count was partial, for `push_last_count_partial`.

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use push_client::{Client, ClientError, Count, ErrorKind};

use crate::error_code::PushErrorCode;

/// An open publisher. Opaque to C: created by `push_open`, freed by
/// `push_close`, used by one thread at a time.
pub struct PushClient {
    pub client: Client,
    last_error: Option<(PushErrorCode, CString)>,
    /// The last string a call answered with; the pointer handed to C
    /// points into it.
    last_text: CString,
    /// Whether the last call's count left out cluster nodes.
    last_count_partial: bool,
}

/// Why a call failed, before it is stored on the handle.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::new(error.kind(), error.to_string())
    }
}

impl PushClient {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            last_error: None,
            last_text: CString::default(),
            last_count_partial: false,
        }
    }

    /// Stores the outcome of a call and turns it into the C return value:
    /// the count, or -1. A failed call has no count, so it is not partial.
    pub fn finish(&mut self, outcome: Result<Count, Failure>) -> i64 {
        match outcome {
            Ok(count) => {
                self.last_error = None;
                self.last_count_partial = count.partial;
                i64::from(count.total)
            }
            Err(failure) => {
                self.last_count_partial = false;
                self.fail(failure);
                -1
            }
        }
    }

    /// Whether the count the last counting call returned is partial.
    pub fn last_count_partial(&self) -> bool {
        self.last_count_partial
    }

    /// Stores the outcome of a call that answers with a string and turns it
    /// into the C return value: the string, kept on the handle until the
    /// next call, or NULL.
    pub fn finish_text(&mut self, outcome: Result<String, Failure>) -> *const c_char {
        let text = outcome.and_then(|text| {
            CString::new(text).map_err(|_| {
                Failure::new(
                    ErrorKind::Protocol,
                    "the daemon answered with a string that contains a NUL byte",
                )
            })
        });
        match text {
            Ok(text) => {
                self.last_error = None;
                self.last_text = text;
                self.last_text.as_ptr()
            }
            Err(failure) => {
                self.fail(failure);
                ptr::null()
            }
        }
    }

    fn fail(&mut self, failure: Failure) {
        // A message cannot carry a NUL into C; drop any.
        let message = CString::new(failure.message.replace('\0', "")).unwrap_or_default();
        self.last_error = Some((failure.kind.into(), message));
    }

    pub fn last_error_code(&self) -> PushErrorCode {
        self.last_error
            .as_ref()
            .map_or(PushErrorCode::PUSH_OK, |(code, _)| *code)
    }

    /// The last error's message, or an empty string.
    pub fn last_error_message(&self) -> &CStr {
        self.last_error
            .as_ref()
            .map_or(c"", |(_, message)| message.as_c_str())
    }
}

#[cfg(test)]
mod tests {
    use push_client::ClientOptions;

    use super::*;

    fn handle() -> PushClient {
        PushClient::new(Client::new(ClientOptions::default()))
    }

    #[test]
    fn a_partial_count_is_remembered_until_the_next_count() {
        let mut handle = handle();
        let partial = Count {
            total: 2,
            partial: true,
        };
        assert_eq!(handle.finish(Ok(partial)), 2);
        assert!(handle.last_count_partial());

        assert_eq!(handle.finish(Ok(Count::default())), 0);
        assert!(!handle.last_count_partial());

        handle.finish(Ok(partial));
        assert_eq!(
            handle.finish(Err(Failure::new(ErrorKind::Timeout, "slow"))),
            -1
        );
        assert!(!handle.last_count_partial());
    }

    #[test]
    fn a_string_answer_is_kept_on_the_handle_and_clears_the_last_error() {
        let mut handle = handle();
        handle.finish(Err(Failure::new(ErrorKind::Timeout, "slow")));

        let pointer = handle.finish_text(Ok("18ecede38e9a4833-7".to_owned()));

        // SAFETY: the handle owns the string until its next call.
        assert_eq!(unsafe { CStr::from_ptr(pointer) }, c"18ecede38e9a4833-7");
        assert_eq!(handle.last_error_code(), PushErrorCode::PUSH_OK);
        assert_eq!(handle.last_error_message(), c"");
    }

    #[test]
    fn a_failed_string_answer_is_null_with_the_error_on_the_handle() {
        let mut handle = handle();

        let refused = handle.finish_text(Err(Failure::new(ErrorKind::RecoveryOff, "off")));
        assert!(refused.is_null());
        assert_eq!(
            handle.last_error_code(),
            PushErrorCode::PUSH_ERROR_RECOVERY_OFF
        );
        assert_eq!(handle.last_error_message(), c"off");

        // C cannot be handed a string with a NUL inside.
        let with_nul = handle.finish_text(Ok("a\0b".to_owned()));
        assert!(with_nul.is_null());
        assert_eq!(handle.last_error_code(), PushErrorCode::PUSH_ERROR_PROTOCOL);
    }
}

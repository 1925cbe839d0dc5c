//! Everything that can go wrong talking to the daemon, worded for the person
//! who reads it in a log.
//!
//! The variants follow the delivery guarantee (see [`super::retry`]): a
//! caller can tell "nothing was delivered" ([`ClientError::Unreachable`])
//! from "it may have been" ([`ClientError::ConnectionLost`]).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::protocol::wire::EncodeError;
use crate::protocol::{ErrorCode, FrameError};

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot connect to push-core at {path}: {source}; check that the daemon is running and that this user may open the socket (see its socket_mode and socket_group settings)"
    )]
    Unreachable { path: PathBuf, source: io::Error },
    #[error(
        "push-core at {path} did not answer within {timeout:?}; the daemon may be overloaded or stuck"
    )]
    Timeout { path: PathBuf, timeout: Duration },
    #[error(
        "the connection to push-core at {path} was lost before the reply arrived ({source}); the message may or may not have been delivered, so it was not resent"
    )]
    ConnectionLost { path: PathBuf, source: io::Error },
    #[error(
        "the request is {len} bytes but the daemon accepts at most {max} (its max_frame_size setting); send a smaller message"
    )]
    FrameTooLarge { len: u64, max: u32 },
    #[error("cannot encode the request: {0}")]
    Encode(EncodeError),
    #[error("push-core refused the request: {message} [{code}]")]
    Refused { code: ErrorCode, message: String },
    #[error(
        "push-core sent a reply this client cannot understand ({0}); are the client and daemon versions compatible?"
    )]
    Protocol(String),
}

impl From<EncodeError> for ClientError {
    fn from(error: EncodeError) -> Self {
        match error {
            EncodeError::Frame(FrameError::TooLarge { len, max }) => {
                ClientError::FrameTooLarge { len, max }
            }
            other => ClientError::Encode(other),
        }
    }
}

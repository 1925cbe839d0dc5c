//! The publish side of push-core, with no async runtime.
//!
//! A site's backend publishes to the push-core daemon over a local Unix
//! socket. This crate holds everything both ends of that socket agree on:
//!
//! - [`protocol`]: the framed wire format, the requests a publisher sends and
//!   the replies the daemon answers with;
//! - [`Client`]: a small blocking client that keeps one connection, performs
//!   the version handshake, reconnects after a daemon restart and can pipeline.
//! - [`ErrorKind`]: one stable number per kind of failure, which the PHP
//!   extension and the C ABI hand to their callers.
//!
//! The daemon (`push-core`) decodes with the same types, and the PHP
//! extension links this crate directly, which is why it must not pull in
//! tokio or anything else that wants a runtime.

mod client;
mod error_kind;
pub mod protocol;

pub use client::{Client, ClientError, ClientOptions, Count, PipelinedReply};
pub use error_kind::ErrorKind;
pub use protocol::{
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_SOCKET_PATH, ErrorCode, OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION, Publish, Reply, Request, Target, version_mismatch_message,
};

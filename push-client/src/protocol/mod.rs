//! The publish protocol spoken on push-core's Unix socket.
//!
//! Every message is a frame: a 4-byte big-endian length followed by that many
//! bytes of body. A body starts with a one-byte kind and a 4-byte request id,
//! then the fields of that kind. `docs/protocol.md` is the normative
//! description; the modules here are its implementation:
//!
//! - [`frame`]: splitting a byte stream into frames, and the size limit;
//! - [`wire`]: the field encodings (integers, strings, lists, blobs);
//! - [`request`]: what a publisher sends;
//! - [`reply`]: what the daemon answers, including error codes.

pub mod frame;
pub mod reply;
pub mod request;
pub mod wire;

pub use frame::{FrameError, FrameHeader};
pub use reply::{ErrorCode, Reply, count_flags};
pub use request::{Publish, Request, Target};
pub use wire::DecodeError;

/// The protocol version this crate speaks. A daemon refuses a HELLO with a
/// version it does not speak, so any incompatible change bumps this number.
///
/// Version 2 added the flags byte after a count ([`reply::count_flags`]).
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest version a daemon still accepts in a HELLO. It answers each
/// connection in the version that connection asked for, so a PHP extension
/// built for an older version keeps working against a newer daemon.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

/// What a daemon speaking `daemon` answers a HELLO asking for `client`:
/// which side is older, so that the reader upgrades the right one. Written
/// here, next to the version, so that every daemon words it the same way.
pub fn version_mismatch_message(daemon: u16, client: u16) -> String {
    if client < daemon {
        format!(
            "the client speaks publish protocol {client}, older than this push-core's {daemon}: upgrade the client (the PHP extension, push-client, the Yii component) to a release that speaks protocol {daemon}"
        )
    } else {
        format!(
            "the client speaks publish protocol {client}, newer than this push-core's {daemon}: upgrade push-core to a release that speaks protocol {client} (`push-core --version` shows it)"
        )
    }
}

/// The largest frame body a daemon accepts unless configured otherwise.
///
/// One MiB holds any realistic notification payload while keeping a single
/// misbehaving publisher from making the daemon buffer arbitrary amounts.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// Where the daemon listens and where clients look when given no path.
///
/// `/run` is the conventional place for runtime sockets; the systemd unit
/// creates `push-core/` there with `RuntimeDirectory=`.
pub const DEFAULT_SOCKET_PATH: &str = "/run/push-core/push.sock";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_the_side_to_upgrade() {
        let older_client = version_mismatch_message(2, 1);
        assert!(
            older_client.contains("older than this push-core's 2: upgrade the client"),
            "{older_client}"
        );
        let newer_client = version_mismatch_message(1, 2);
        assert!(
            newer_client.contains("newer than this push-core's 1: upgrade push-core"),
            "{newer_client}"
        );
    }
}

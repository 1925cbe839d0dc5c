//! The publishing thread: publish frames in, one `write(2)` per recipient
//! out, the recipient count back.
//!
//! This is the part the bench measures, so it does as little as a push
//! server can: `poll(2)` waits for the publisher, one `read(2)` takes
//! whatever publishes have arrived, each PUBLISH becomes one socket.io event in one WebSocket frame,
//! built once, and that frame goes to each recipient's socket with one
//! `write(2)`; the replies of everything read go back in one write. Nothing
//! wakes another thread and nothing is queued. Browsers admitted meanwhile
//! are picked up from the admitting threads' channel before each batch.
//!
//! Why `poll(2)` before the read rather than a read that blocks: a thread
//! blocked in `read(2)` on a Unix stream socket sleeps on the socket's one
//! wait queue without saying what it waits for, so it is also woken when
//! the publisher reads a reply (freeing the reply's buffer wakes the
//! writer's side: "room to write"), finds nothing to read and sleeps again:
//! a second context switch per publish. `poll(2)` waits for POLLIN alone
//! and the kernel filters the other wake-ups out; one more system call is
//! far cheaper than one more switch. (push-core waits in `epoll_wait(2)`,
//! which likewise asks for readability alone.)
//!
//! The publish protocol is push-client's own: its framing, request decoding
//! and reply encoding, so the bench's publisher cannot tell this from
//! push-core. Only what the bench sends is served: HELLO, PING, and PUBLISH
//! to everyone or to users; anything else is answered with an error.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::Receiver;

use push_client::protocol::frame::{self, FrameHeader, LENGTH_PREFIX_LEN};
use push_client::protocol::wire::Reader;
use push_client::{
    DEFAULT_MAX_FRAME_SIZE, ErrorCode, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, Publish, Reply,
    Request, version_mismatch_message,
};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

use crate::admit::Joined;

/// Bytes asked of each `read(2)` on the publisher's socket: far more than
/// one of the bench's batches, so one read takes all that has arrived.
const READ_SIZE: usize = 256 * 1024;

/// The name the floor gives in its HELLO reply.
const SERVER_NAME: &str = "push-core-bench write-floor";

/// Serves one publisher at a time, for ever. The bench opens one publisher
/// connection per step and closes it before the next.
pub fn serve_publishers(
    listener: UnixListener,
    namespace: &str,
    joined: Receiver<Joined>,
) -> anyhow::Result<()> {
    let mut browsers = Browsers::new(namespace, joined);
    for publisher in listener.incoming() {
        let Ok(publisher) = publisher else {
            continue;
        };
        if let Err(error) = serve(publisher, &mut browsers) {
            eprintln!("write-floor: publisher connection ended: {error}");
        }
    }
    Ok(())
}

/// Reads frames from one publisher until it hangs up, delivering each
/// publish as it is decoded.
fn serve(mut publisher: UnixStream, browsers: &mut Browsers) -> std::io::Result<()> {
    let mut input = vec![0u8; READ_SIZE];
    // Bytes of `input` read and not yet handled: the start of a frame
    // whose end has not arrived.
    let mut filled = 0;
    let mut replies: Vec<u8> = Vec::new();
    // The version the HELLO agreed on; None until then.
    let mut version: Option<u16> = None;
    loop {
        if filled == input.len() {
            // A frame larger than the buffer (up to the frame size limit,
            // which `frame::check` enforces).
            input.resize(input.len() * 2, 0);
        }
        wait_readable(&publisher)?;
        let read = match publisher.read(&mut input[filled..]) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        filled += read;
        browsers.admit_waiting();

        let mut start = 0;
        loop {
            let total = match frame::check(&input[start..filled], DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(total)) => total,
                Ok(None) => break,
                Err(error) => {
                    // The rest of the stream cannot be framed: say why and
                    // hang up, as push-core does.
                    let reply = Reply::Error {
                        code: ErrorCode::FRAME_TOO_LARGE,
                        message: &error.to_string(),
                    };
                    encode(&reply, version, 0, &mut replies);
                    return publisher.write_all(&replies);
                }
            };
            let body = &input[start + LENGTH_PREFIX_LEN..start + total];
            start += total;
            answer(body, &mut version, browsers, &mut replies);
        }
        input.copy_within(start..filled, 0);
        filled -= start;
        if !replies.is_empty() {
            publisher.write_all(&replies)?;
            replies.clear();
        }
    }
}

/// Blocks until `publisher` has bytes to read (or has hung up).
fn wait_readable(publisher: &UnixStream) -> std::io::Result<()> {
    let mut fds = [PollFd::new(publisher, PollFlags::IN)];
    loop {
        match poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Handles one frame body and appends its reply to `replies`.
fn answer(body: &[u8], version: &mut Option<u16>, browsers: &mut Browsers, replies: &mut Vec<u8>) {
    let mut reader = Reader::new(body);
    let Ok(header) = FrameHeader::read(&mut reader) else {
        let reply = Reply::Error {
            code: ErrorCode::MALFORMED_FRAME,
            message: "the frame is shorter than its header",
        };
        return encode(&reply, *version, 0, replies);
    };
    let id = header.request_id;
    let request = match Request::decode(header.kind, reader) {
        Ok(request) => request,
        Err(error) => {
            let reply = Reply::Error {
                code: ErrorCode::MALFORMED_FRAME,
                message: &error.to_string(),
            };
            return encode(&reply, *version, id, replies);
        }
    };
    match (request, *version) {
        (Request::Hello { version: asked, .. }, _) => {
            if (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&asked) {
                *version = Some(asked);
                let reply = Reply::Hello {
                    version: asked,
                    max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                    server: SERVER_NAME,
                };
                encode(&reply, *version, id, replies);
            } else {
                let message = version_mismatch_message(PROTOCOL_VERSION, asked);
                let reply = Reply::Error {
                    code: ErrorCode::UNSUPPORTED_VERSION,
                    message: &message,
                };
                encode(&reply, *version, id, replies);
            }
        }
        (_, None) => {
            let reply = Reply::Error {
                code: ErrorCode::HANDSHAKE_REQUIRED,
                message: "send HELLO first",
            };
            encode(&reply, None, id, replies);
        }
        (Request::Ping, _) => encode(&Reply::Pong, *version, id, replies),
        (Request::Publish(publish), _) => {
            let reply = match browsers.deliver(&publish) {
                Ok(recipients) => Reply::Published {
                    recipients,
                    partial: false,
                },
                Err((code, message)) => Reply::Error { code, message },
            };
            encode(&reply, *version, id, replies);
        }
        (_, _) => {
            let reply = Reply::Error {
                code: ErrorCode::UNKNOWN_OPERATION,
                message: "the one-write floor serves HELLO, PING and PUBLISH only",
            };
            encode(&reply, *version, id, replies);
        }
    }
}

fn encode(reply: &Reply<'_>, version: Option<u16>, id: u32, replies: &mut Vec<u8>) {
    // Every reply the floor sends is small; encoding cannot fail.
    let _ = reply.encode(version.unwrap_or(PROTOCOL_VERSION), id, replies);
}

/// Why a publish was refused: the code and the message of the error reply.
type Refusal = (ErrorCode, &'static str);

/// The joined browsers, owned by the publishing thread alone.
struct Browsers {
    namespace: String,
    joined: Receiver<Joined>,
    /// One slot per browser ever admitted; a slot is emptied (and the
    /// socket closed) when a write to it fails. Slots are not reused: the
    /// bench starts a fresh floor for every scenario.
    sockets: Vec<Option<TcpStream>>,
    /// Each user's slots.
    by_user: HashMap<String, Vec<usize>>,
    /// The WebSocket frame of the publish being delivered, reused.
    frame: Vec<u8>,
}

impl Browsers {
    fn new(namespace: &str, joined: Receiver<Joined>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            joined,
            sockets: Vec::new(),
            by_user: HashMap::new(),
            frame: Vec::new(),
        }
    }

    /// Takes in the browsers admitted since the last call.
    fn admit_waiting(&mut self) {
        while let Ok(browser) = self.joined.try_recv() {
            let slot = self.sockets.len();
            self.sockets.push(Some(browser.stream));
            if let Some(user) = browser.user {
                self.by_user.entry(user).or_default().push(slot);
            }
        }
    }

    /// Delivers one publish; returns how many browsers it was written to.
    fn deliver(&mut self, publish: &Publish<'_>) -> Result<u32, Refusal> {
        if publish.namespace != self.namespace {
            return Err((
                ErrorCode::UNKNOWN_NAMESPACE,
                "the floor serves one namespace",
            ));
        }
        let target = &publish.target;
        if !target.rooms.is_empty() || !target.except_users.is_empty() {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "the one-write floor delivers to everyone or to users only",
            ));
        }
        if !is_plain(publish.event) {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "the one-write floor takes event names that need no JSON escaping",
            ));
        }
        event_frame(
            &mut self.frame,
            &self.namespace,
            publish.event,
            publish.payload,
        );
        let mut recipients = 0;
        if target.is_everyone() {
            for socket in &mut self.sockets {
                recipients += u32::from(write_frame(socket, &self.frame));
            }
        } else {
            for user in &target.users {
                let Some(slots) = self.by_user.get(user.as_ref()) else {
                    continue;
                };
                for &slot in slots {
                    recipients += u32::from(write_frame(&mut self.sockets[slot], &self.frame));
                }
            }
        }
        Ok(recipients)
    }
}

/// Writes `frame` to the browser in `socket` with one `write(2)`, or
/// closes it if that fails. A blocking socket with room in its buffer takes
/// the whole frame; a short write (a signal, a full buffer at the timeout)
/// is finished with more writes rather than losing the frame.
fn write_frame(socket: &mut Option<TcpStream>, frame: &[u8]) -> bool {
    let Some(stream) = socket else {
        return false;
    };
    let written = match stream.write(frame) {
        Ok(written) if written == frame.len() => Ok(()),
        Ok(written) => stream.write_all(&frame[written..]),
        Err(error) => Err(error),
    };
    if written.is_err() {
        *socket = None;
    }
    written.is_ok()
}

/// True when `event` can go between JSON quotes as it is.
fn is_plain(event: &str) -> bool {
    event
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
}

/// Builds the WebSocket text frame (server to browser: unmasked) of the
/// socket.io event `42<namespace>,["<event>",<payload>]` into `out`.
fn event_frame(out: &mut Vec<u8>, namespace: &str, event: &str, payload: &[u8]) {
    let parts: [&[u8]; 7] = [
        b"42",
        namespace.as_bytes(),
        b",[\"",
        event.as_bytes(),
        b"\",",
        payload,
        b"]",
    ];
    let len: usize = parts.iter().map(|part| part.len()).sum();
    out.clear();
    // FIN and opcode 1 (text), then the length in the shortest form.
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    for part in parts {
        out.extend_from_slice(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_frame_is_one_unmasked_text_frame() {
        let mut out = Vec::new();
        event_frame(&mut out, "/bench", "m", br#"{"a":1}"#);
        let text = br#"42/bench,["m",{"a":1}]"#;
        assert_eq!(out[0], 0x81);
        assert_eq!(usize::from(out[1]), text.len());
        assert_eq!(&out[2..], text);

        let long = vec![b'1'; 300];
        event_frame(&mut out, "/bench", "m", &long);
        assert_eq!(out[1], 126);
        let len = u16::from_be_bytes([out[2], out[3]]);
        assert_eq!(usize::from(len), out.len() - 4);
    }

    #[test]
    fn event_names_needing_escapes_are_not_plain() {
        assert!(is_plain("message"));
        assert!(!is_plain("a\"b"));
        assert!(!is_plain("a\\b"));
        assert!(!is_plain("a\nb"));
    }
}

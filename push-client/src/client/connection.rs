//! One Unix socket to the daemon: connecting, writing frames, reading replies.
//!
//! This is the only module that makes system calls, and the synchronous
//! publish is at the floor of a local round trip (docs/benchmarks.md, "PHP
//! publish path"), so each step here is the fewest calls that do the job: a
//! frame goes out in one `send`, and a reply is waited for in one `poll` and
//! read with one `recv`. Nothing here decides what a failure means for the
//! request; that is [`super::retry`]'s business.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::net::{RecvFlags, SendFlags};

use super::reply::OwnedReply;
use crate::protocol::frame::{self, FrameHeader, LENGTH_PREFIX_LEN};
use crate::protocol::{DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION};

/// How much room each read of replies asks for: a synchronous reply is a few
/// bytes, a batch of pipelined ones a few KiB, STATS a few KiB.
const READ_CHUNK: usize = 4096;

/// What a fresh connection's read buffer holds before it grows: a few
/// synchronous replies.
const INITIAL_READ_BUFFER: usize = 256;

/// Why no reply could be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The socket failed, the daemon hung up, or the deadline passed
    /// (`TimedOut`).
    Io(io::Error),
    /// Bytes arrived that are not a reply.
    Malformed(String),
}

/// A connected socket and what has been read from it.
pub(super) struct Connection {
    stream: UnixStream,
    /// The largest request body the daemon accepts; its HELLO reply says.
    max_frame_size: u32,
    /// The protocol version replies are encoded in; its HELLO reply says.
    version: u16,
    /// Bytes received and not yet taken as replies.
    read_buffer: Vec<u8>,
}

impl Connection {
    /// Connects to the daemon's socket with a send timeout of `timeout`.
    ///
    /// A daemon that has stopped accepting (stuck, or paused) lets
    /// connections queue until its listen backlog is full; a connect then
    /// waits for room, for as long as the socket's send timeout allows. So
    /// that timeout is set before connecting, which `UnixStream::connect`
    /// cannot do; it then bounds every blocking write too. No read blocks:
    /// replies are waited for in [`wait_readable`].
    pub(super) fn open(path: &Path, timeout: Duration) -> io::Result<Self> {
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        let socket = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        set_socket_timeout(&socket, Timeout::Send, Some(timeout))?;
        rustix::net::connect(&socket, &rustix::net::SocketAddrUnix::new(path)?)?;
        Ok(Self {
            stream: UnixStream::from(socket),
            // Until the HELLO reply says otherwise.
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            // The version the HELLO asks for; its reply has no versioned field.
            version: PROTOCOL_VERSION,
            read_buffer: Vec::with_capacity(INITIAL_READ_BUFFER),
        })
    }

    pub(super) fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Takes what the daemon's HELLO reply agreed on.
    pub(super) fn handshaken(&mut self, version: u16, max_frame_size: u32) {
        self.version = version;
        self.max_frame_size = max_frame_size;
    }

    /// Writes all of `bytes`.
    pub(super) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < bytes.len() {
            // MSG_NOSIGNAL: a PHP worker must get an error, not a SIGPIPE
            // that kills it, when the daemon has gone away.
            match rustix::net::send(&self.stream, &bytes[written..], SendFlags::NOSIGNAL) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
        Ok(())
    }

    /// Reads the next reply, waiting for it until `deadline`.
    pub(super) fn receive(
        &mut self,
        deadline: Instant,
    ) -> Result<(FrameHeader, OwnedReply), ReadError> {
        let total = loop {
            // Replies are not bound by the request size limit (a STATS
            // reply may be larger), and the daemon is trusted to frame
            // them; only requests are checked against a limit.
            match frame::check(&self.read_buffer, u32::MAX) {
                Ok(Some(total)) => break total,
                Ok(None) => {}
                Err(error) => return Err(ReadError::Malformed(error.to_string())),
            }
            wait_readable(&self.stream, deadline).map_err(ReadError::Io)?;
            // Straight into the buffer's spare room: no chunk to zero and
            // copy on every reply.
            self.read_buffer.reserve(READ_CHUNK);
            let spare = rustix::buffer::spare_capacity(&mut self.read_buffer);
            match rustix::net::recv(&self.stream, spare, RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    return Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon closed the connection",
                    )));
                }
                // AGAIN: woken without data after all; wait again.
                Ok(_) | Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(errno) => return Err(ReadError::Io(io::Error::from(errno))),
            }
        };
        let decoded = OwnedReply::decode(self.version, &self.read_buffer[LENGTH_PREFIX_LEN..total]);
        self.read_buffer.drain(..total);
        decoded.map_err(|error| ReadError::Malformed(error.to_string()))
    }

    /// A non-blocking peek: an idle connection whose daemon has gone reads as
    /// end-of-file (or an error) instead of "would block".
    pub(super) fn peer_still_there(&self) -> bool {
        let mut byte = [0u8; 1];
        match rustix::net::recv(
            &self.stream,
            &mut byte,
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            Err(rustix::io::Errno::AGAIN) => true,
            // Unsolicited bytes on an idle connection are an error notice
            // from the daemon (it is about to close); reconnect rather than
            // misread.
            Ok(_) | Err(_) => false,
        }
    }

    /// Tells the daemon this end is done, before the socket is dropped.
    pub(super) fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Waits until `stream` has something to read, or fails with `TimedOut` once
/// `deadline` has passed.
///
/// Waiting in poll(2) and then reading without blocking costs one system
/// call more than a read that blocks, yet made the faster round trip when
/// measured pinned to one CPU (docs/benchmarks.md, "How the synchronous
/// publish came down to the floor", step 1). It also bounds the whole reply
/// by one deadline rather than each read by the timeout.
fn wait_readable(stream: &UnixStream, deadline: Instant) -> io::Result<()> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = rustix::event::Timespec::try_from(remaining)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut polled = [rustix::event::PollFd::new(
            stream,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut polled, Some(&timeout)) {
            // Readable, or hung up or failed: the read that follows says which.
            Ok(ready) if ready > 0 => return Ok(()),
            Ok(_) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}

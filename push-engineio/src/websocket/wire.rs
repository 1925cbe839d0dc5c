//! The byte stream under a WebSocket.
//!
//! Normally a TCP stream, recovered from hyper after the upgrade so that
//! each read and write is one system call on the socket, with no buffer in
//! between. While a WebSocket probes an upgrade the connection's task holds
//! the stream alone; once it serves its session the stream is *attached* to
//! the session (`Socket::stream`), where flushes after a corked burst write
//! to it too ([`crate::cork`]). Any other stream (TLS terminated in the
//! process, a test's in-memory pipe) stays with the task and is served
//! through its `AsyncRead` and `AsyncWrite`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A stream the transport can serve a WebSocket on.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

pub(crate) enum Wire {
    /// TCP, held by the task alone.
    Tcp(TcpStream),
    /// TCP, attached to the session.
    Attached,
    /// Another stream, held by the task alone.
    Other(Pin<Box<dyn ByteStream>>),
}

/// The stream to read or write now.
pub(crate) enum Stream<'a> {
    Tcp(&'a TcpStream),
    Other(Pin<&'a mut dyn ByteStream>),
}

impl Wire {
    /// The stream under an upgraded HTTP connection, with the bytes hyper
    /// read past the request (the client's first frames, if it was quick).
    pub(crate) fn from_upgraded(upgraded: Upgraded) -> (Self, Bytes) {
        // axum serves connections through hyper-util's auto builder, which
        // wraps the stream in a type of its own; hyper's own builder does not.
        let upgraded =
            match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded)
            {
                Ok(parts) => return (Wire::Tcp(parts.io.into_inner()), parts.read_buf),
                Err(upgraded) => upgraded,
            };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Wire::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => (Wire::Other(Box::pin(TokioIo::new(upgraded))), Bytes::new()),
        }
    }

    pub(crate) fn from_stream(stream: impl ByteStream) -> Self {
        Wire::Other(Box::pin(stream))
    }

    /// Moves a TCP stream into `slot`, the session's; other streams stay.
    pub(crate) fn attach(&mut self, slot: &OnceLock<TcpStream>) -> bool {
        match std::mem::replace(self, Wire::Attached) {
            Wire::Tcp(stream) => slot.set(stream).is_ok(),
            other => {
                *self = other;
                false
            }
        }
    }

    /// The stream, wherever it is; `None` for an attached stream that is
    /// not there (it always is, once attached).
    pub(crate) fn stream<'a>(
        &'a mut self,
        attached: &'a OnceLock<TcpStream>,
    ) -> Option<Stream<'a>> {
        match self {
            Wire::Tcp(stream) => Some(Stream::Tcp(stream)),
            Wire::Attached => attached.get().map(Stream::Tcp),
            Wire::Other(stream) => Some(Stream::Other(stream.as_mut())),
        }
    }
}

impl Stream<'_> {
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(stream) => loop {
                ready!(stream.poll_read_ready(cx))?;
                match stream.try_read(buf) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return Poll::Ready(result),
                }
            },
            Stream::Other(stream) => {
                let mut buf = ReadBuf::new(buf);
                ready!(stream.as_mut().poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
        }
    }

    /// One `writev`, or `WouldBlock`. A stream other than TCP registers
    /// `waker` to hear when it can take more; for TCP,
    /// [`Self::poll_write_ready`] does.
    pub(crate) fn write_vectored(
        &mut self,
        waker: &Waker,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let polled = match self {
            Stream::Tcp(stream) => return stream.try_write_vectored(bufs),
            Stream::Other(stream) => {
                let mut cx = Context::from_waker(waker);
                stream.as_mut().poll_write_vectored(&mut cx, bufs)
            }
        };
        match polled {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Ready once the stream can take more (a buffering stream is flushed).
    pub(crate) fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(stream) => stream.poll_write_ready(cx),
            Stream::Other(stream) => stream.as_mut().poll_flush(cx),
        }
    }

    /// Pushes out what a buffering stream (TLS, say) holds; a TCP stream
    /// holds nothing.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(_) => Poll::Ready(Ok(())),
            Stream::Other(stream) => stream.as_mut().poll_flush(cx),
        }
    }

    /// Ends the sending side (a FIN after what was written).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(stream) => Poll::Ready(
                rustix::net::shutdown(stream, rustix::net::Shutdown::Write)
                    .map_err(io::Error::from),
            ),
            Stream::Other(stream) => stream.as_mut().poll_shutdown(cx),
        }
    }
}

//! The byte stream under a WebSocket.
//!
//! Normally a TCP stream, recovered from hyper after the upgrade so that the
//! connection's task reads and writes the socket itself: readiness and one
//! system call, no buffer in between. Any other stream (TLS terminated in
//! the process, a test's in-memory pipe) is served through its `AsyncRead`
//! and `AsyncWrite`, at the cost of the buffering those bring.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A stream the transport can serve a WebSocket on.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

pub(crate) enum Wire {
    Tcp(TcpStream),
    Other(Pin<Box<dyn Stream>>),
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

    pub(crate) fn from_stream(stream: impl Stream) -> Self {
        Wire::Other(Box::pin(stream))
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Wire::Tcp(stream) => loop {
                ready!(stream.poll_read_ready(cx))?;
                match stream.try_read(buf) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return Poll::Ready(result),
                }
            },
            Wire::Other(stream) => {
                let mut buf = ReadBuf::new(buf);
                ready!(stream.as_mut().poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
        }
    }

    pub(crate) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Wire::Tcp(stream) => loop {
                ready!(stream.poll_write_ready(cx))?;
                match stream.try_write_vectored(bufs) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return Poll::Ready(result),
                }
            },
            Wire::Other(stream) => stream.as_mut().poll_write_vectored(cx, bufs),
        }
    }

    /// Pushes out what a buffering stream holds; a TCP stream holds nothing.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Wire::Tcp(_) => Poll::Ready(Ok(())),
            Wire::Other(stream) => stream.as_mut().poll_flush(cx),
        }
    }

    /// Ends the sending side (a FIN after what was written).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Wire::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Wire::Other(stream) => stream.as_mut().poll_shutdown(cx),
        }
    }
}

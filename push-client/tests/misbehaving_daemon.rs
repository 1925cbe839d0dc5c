//! The client against a daemon that stops answering or answers the wrong
//! request: what the caller is told, and that the next request starts over
//! on a fresh connection.
//!
//! The real daemon does neither, so a scripted one stands in for it: it
//! speaks the protocol with the crate's own codec and misbehaves on cue.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use push_client::protocol::frame::{FrameHeader, LENGTH_PREFIX_LEN};
use push_client::protocol::wire::Reader;
use push_client::{
    Client, ClientError, ClientOptions, Count, DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION, Publish,
    Reply, Target,
};

/// How long the client waits for a reply. Short, because every test here
/// waits it out once.
const TIMEOUT: Duration = Duration::from_millis(200);

/// A socket in a directory of its own, removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("push-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("push.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The next frame's header, or `None` once the client has closed.
fn read_frame(stream: &mut UnixStream) -> Option<FrameHeader> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    stream.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(FrameHeader::read(&mut Reader::new(&body)).unwrap())
}

fn answer(stream: &mut UnixStream, request_id: u32, reply: Reply<'_>) {
    let mut frame = Vec::new();
    reply
        .encode(PROTOCOL_VERSION, request_id, &mut frame)
        .unwrap();
    stream.write_all(&frame).unwrap();
}

/// Answers the HELLO as the daemon does.
fn handshake(stream: &mut UnixStream) {
    let hello = read_frame(stream).expect("a HELLO");
    answer(
        stream,
        hello.request_id,
        Reply::Hello {
            version: PROTOCOL_VERSION,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            server: "scripted",
        },
    );
}

/// Reads and ignores frames until the client closes the connection.
fn ignore_until_closed(stream: &mut UnixStream) {
    while read_frame(stream).is_some() {}
}

fn client(path: PathBuf) -> Client {
    Client::new(ClientOptions {
        socket_path: path,
        timeout: TIMEOUT,
        ..ClientOptions::default()
    })
}

fn publish() -> Publish<'static> {
    Publish {
        namespace: "/",
        event: "e",
        target: Target::everyone(),
        payload: b"{}",
    }
}

#[test]
fn a_pipeline_whose_daemon_falls_silent_reports_each_publish_in_order() {
    let dir = SocketDir::new("silent-pipeline");
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let daemon = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        handshake(&mut stream);
        let first = read_frame(&mut stream).expect("the first publish");
        answer(
            &mut stream,
            first.request_id,
            Reply::Published {
                recipients: 7,
                partial: false,
            },
        );
        ignore_until_closed(&mut stream);
    });

    let mut client = client(dir.socket());
    for _ in 0..3 {
        client.queue_publish(&publish()).unwrap();
    }
    let results = client.flush();

    // The second publish's reply is the one that timed out; the third's
    // was never going to come on that connection.
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(
        matches!(
            results[0],
            Ok(Count {
                total: 7,
                partial: false
            })
        ),
        "{results:?}"
    );
    assert!(
        matches!(results[1], Err(ClientError::Timeout { .. })),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Err(ClientError::ConnectionLost { .. })),
        "{results:?}"
    );
    assert_eq!(client.queued(), 0);
    // The connection was dropped, so the scripted daemon sees it close.
    daemon.join().unwrap();
}

#[test]
fn a_reply_to_another_request_is_a_protocol_error_and_the_next_call_reconnects() {
    let dir = SocketDir::new("wrong-reply");
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let daemon = thread::spawn(move || {
        // First connection: a PONG for a request that was never sent.
        let (mut stream, _) = listener.accept().unwrap();
        handshake(&mut stream);
        let ping = read_frame(&mut stream).expect("a PING");
        answer(&mut stream, ping.request_id + 100, Reply::Pong);
        ignore_until_closed(&mut stream);
        // Second connection: answered properly.
        let (mut stream, _) = listener.accept().unwrap();
        handshake(&mut stream);
        let ping = read_frame(&mut stream).expect("a PING");
        answer(&mut stream, ping.request_id, Reply::Pong);
        ignore_until_closed(&mut stream);
    });

    let mut client = client(dir.socket());
    let error = client.ping().unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
    // The stream could not be trusted any more: the next call starts over.
    client.ping().unwrap();
    assert_eq!(client.connects(), 2);
    drop(client);
    daemon.join().unwrap();
}

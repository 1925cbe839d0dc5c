//! The transport over a stream that is not TCP (TLS terminated in the
//! process, say): a WebSocket served on an in-memory pipe through the
//! service's `(stream, request)` entry, read and written by the connection's
//! task through `AsyncRead`/`AsyncWrite`. The daemon's tests cover TCP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineioxide::config::EngineIoConfig;
use engineioxide::handler::EngineIoHandler;
use engineioxide::service::EngineIoService;
use engineioxide::{DisconnectReason, Socket, Str};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tower_service::Service;

/// Sends every message back, and says when a session closes.
#[derive(Debug)]
struct Echo {
    closed: mpsc::UnboundedSender<DisconnectReason>,
}

impl EngineIoHandler for Echo {
    type Data = ();

    fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}

    fn on_disconnect(&self, _: Arc<Socket<()>>, reason: DisconnectReason) {
        let _ = self.closed.send(reason);
    }

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) {
        let _ = socket.emit(msg);
    }

    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<()>>) {
        let _ = socket.emit_binary(data);
    }
}

/// A client frame: masked, as RFC 6455 requires.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The next server frame: its opcode and payload (server frames are not
/// masked; the tests' frames are under 64 KiB).
async fn next_frame(client: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.expect("a frame header");
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            client.read_exact(&mut ext).await.expect("a length");
            usize::from(u16::from_be_bytes(ext))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    client.read_exact(&mut payload).await.expect("a payload");
    (head[0] & 0x0f, payload)
}

fn serve(config: EngineIoConfig) -> (DuplexStream, mpsc::UnboundedReceiver<DisconnectReason>) {
    let (closed, closes) = mpsc::unbounded_channel();
    let mut service = EngineIoService::with_config(Arc::new(Echo { closed }), config);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let request = http::Request::get("/engine.io/?EIO=4&transport=websocket")
        .body(())
        .expect("a request");
    // The service's future for a stream is ready at once.
    Service::call(&mut service, (server, request))
        .into_inner()
        .expect("the stream is served");
    (client, closes)
}

#[tokio::test]
async fn messages_go_both_ways_over_a_stream_that_is_not_tcp() {
    let (mut client, _closes) = serve(EngineIoConfig::default());
    let (opcode, open) = next_frame(&mut client).await;
    assert_eq!(opcode, 1, "a text frame");
    let open = String::from_utf8(open).expect("text");
    assert!(open.starts_with(r#"0{"sid":""#), "{open}");
    assert!(open.contains(r#""upgrades":[]"#), "{open}");

    client
        .write_all(&masked(1, b"4hello"))
        .await
        .expect("written");
    assert_eq!(next_frame(&mut client).await, (1, b"4hello".to_vec()));

    client
        .write_all(&masked(2, &[1, 2, 3]))
        .await
        .expect("written");
    assert_eq!(next_frame(&mut client).await, (2, vec![1, 2, 3]));

    // A WebSocket ping frame is answered with a pong frame.
    client.write_all(&masked(9, b"hi")).await.expect("written");
    assert_eq!(next_frame(&mut client).await, (10, b"hi".to_vec()));
}

#[tokio::test]
async fn the_heartbeat_closes_a_client_that_stops_answering() {
    let config = EngineIoConfig::builder()
        .ping_interval(Duration::from_millis(50))
        .ping_timeout(Duration::from_millis(50))
        .build();
    let (mut client, mut closes) = serve(config);
    next_frame(&mut client).await;
    for _ in 0..3 {
        assert_eq!(next_frame(&mut client).await, (1, b"2".to_vec()), "a ping");
        client.write_all(&masked(1, b"3")).await.expect("a pong");
    }
    assert_eq!(
        next_frame(&mut client).await,
        (1, b"2".to_vec()),
        "a ping left unanswered"
    );
    let reason = tokio::time::timeout(Duration::from_secs(5), closes.recv())
        .await
        .expect("closed in time");
    assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
    let (opcode, payload) = next_frame(&mut client).await;
    assert_eq!(
        (opcode, payload),
        (8, 1000u16.to_be_bytes().to_vec()),
        "a close frame"
    );
}

//! The publish socket of a real daemon, driven by the real blocking client:
//! socket file lifecycle, reconnects across restarts, pipelining, refusals.
//! (Delivery to browsers is covered by the end-to-end suite in tests/.)

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use push_client::{Client, ClientError, ClientOptions, Count, ErrorCode, Publish, Target};
use push_core::{BindError, Config, PublishSocket, ServeError};
use tokio::sync::oneshot;

/// A daemon running on its own runtime in a background thread.
struct Daemon {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Daemon {
    fn start(socket: &Path) -> Self {
        let config = Config::builder()
            .set("socket", socket)
            .set("listen", "127.0.0.1:0")
            .set("namespaces", ["/chat"])
            .build()
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(push_core::serve(config, async {
                let _ = stopped.await;
            }))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not start listening on {}",
                socket.display()
            );
            assert!(!thread.is_finished(), "daemon exited at start");
            thread::sleep(Duration::from_millis(10));
        }
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("push.sock")
}

fn client(socket: &Path) -> Client {
    Client::new(ClientOptions {
        socket_path: socket.to_owned(),
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    })
}

fn broadcast<'a>(namespace: &'a str, payload: &'a [u8]) -> Publish<'a> {
    Publish {
        namespace,
        event: "news",
        target: Target::everyone(),
        payload,
    }
}

#[test]
fn stale_socket_file_is_replaced_and_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    drop(UnixListener::bind(&socket).unwrap()); // a crash leaves this behind
    assert!(socket.exists());

    let daemon = Daemon::start(&socket);
    assert_eq!(
        client(&socket).publish(&broadcast("/", b"{}")).unwrap(),
        Count::default()
    );
    daemon.stop().unwrap();
    assert!(
        !socket.exists(),
        "the socket file should be removed at shutdown"
    );
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let second = runtime
        .block_on(async { PublishSocket::bind(&Config::with_socket(&socket).publish_settings()) });
    assert!(matches!(second, Err(BindError::AlreadyRunning(_))));
    assert!(socket.exists(), "the live daemon's socket must stay");
}

#[test]
fn a_file_that_is_not_a_socket_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("important.txt");
    std::fs::write(&path, "keep me").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bound = runtime
        .block_on(async { PublishSocket::bind(&Config::with_socket(&path).publish_settings()) });
    assert!(matches!(bound, Err(BindError::NotASocket(_))));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn socket_mode_is_applied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn the_client_reconnects_after_a_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let mut client = client(&socket);

    let first = Daemon::start(&socket);
    client.publish(&broadcast("/", b"1")).unwrap();
    first.stop().unwrap();

    let second = Daemon::start(&socket);
    client.publish(&broadcast("/", b"2")).unwrap();
    assert_eq!(client.connects(), 2);
    let stats: serde_json::Value = serde_json::from_str(&client.stats().unwrap()).unwrap();
    assert_eq!(
        stats["publishes"], 1,
        "the second daemon saw exactly one publish"
    );
    second.stop().unwrap();
}

#[test]
fn a_down_daemon_fails_fast_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let error = client(&socket).publish(&broadcast("/", b"{}")).unwrap_err();
    assert!(matches!(error, ClientError::Unreachable { .. }));
    assert!(error.to_string().contains(&socket.display().to_string()));
}

#[test]
fn pipelined_publishes_are_all_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);
    let mut client = client(&socket);
    let payload = br#"{"text":"a message of some realistic length for a notification"}"#;

    for i in 0..20_000 {
        let namespace = if i == 777 { "/missing" } else { "/chat" };
        client
            .queue_publish(&broadcast(namespace, payload))
            .unwrap();
    }
    let replies = client.flush();
    assert_eq!(replies.len(), 20_000);
    for (i, reply) in replies.iter().enumerate() {
        match (i, reply) {
            (777, Err(ClientError::Refused { code, .. })) => {
                assert_eq!(*code, ErrorCode::UNKNOWN_NAMESPACE)
            }
            (777, other) => panic!("publish 777 should be refused, got {other:?}"),
            (_, Ok(Count { total: 0, .. })) => {}
            (i, other) => panic!("publish {i}: {other:?}"),
        }
    }
    let stats: serde_json::Value = serde_json::from_str(&client.stats().unwrap()).unwrap();
    assert_eq!(stats["publishes"], 19_999);
    assert_eq!(client.connects(), 1, "one connection carried everything");
}

#[test]
fn refusals_carry_stable_codes_and_keep_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);
    let mut client = client(&socket);

    let cases: [(Publish<'_>, ErrorCode); 3] = [
        (broadcast("/nope", b"{}"), ErrorCode::UNKNOWN_NAMESPACE),
        (broadcast("/", b"{not json"), ErrorCode::INVALID_PAYLOAD),
        (
            Publish {
                event: "disconnect",
                ..broadcast("/", b"{}")
            },
            ErrorCode::INVALID_REQUEST,
        ),
    ];
    for (publish, expected) in cases {
        match client.publish(&publish) {
            Err(ClientError::Refused { code, .. }) => assert_eq!(code, expected),
            other => panic!("expected {expected}, got {other:?}"),
        }
    }
    assert_eq!(client.online("/", "42").unwrap(), Count::default());
    assert!(client.ping().is_ok());
    assert_eq!(client.connects(), 1);
}

#[test]
fn an_oversized_message_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);
    let mut client = client(&socket);
    let payload = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let error = client
        .publish(&broadcast("/", payload.as_bytes()))
        .unwrap_err();
    assert!(
        matches!(error, ClientError::FrameTooLarge { max: 1_048_576, .. }),
        "{error:?}"
    );
    assert_eq!(
        client.publish(&broadcast("/", b"{}")).unwrap(),
        Count::default()
    );
}

#[test]
fn a_pipeline_cut_by_a_restart_reports_every_publish_and_mixes_no_replies() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let mut client = client(&socket);

    let first = Daemon::start(&socket);
    for _ in 0..500 {
        client.queue_publish(&broadcast("/", b"{}")).unwrap();
    }
    first.stop().unwrap();
    let cut = client.flush();
    assert_eq!(cut.len(), 500, "one result per queued publish");
    assert!(
        cut.iter().all(Result::is_err),
        "no reply came from a stopped daemon"
    );

    let _second = Daemon::start(&socket);
    for _ in 0..5 {
        client.queue_publish(&broadcast("/chat", b"{}")).unwrap();
    }
    let replies = client.flush();
    assert_eq!(replies.len(), 5);
    assert!(
        replies
            .iter()
            .all(|r| matches!(r, Ok(Count { total: 0, .. }))),
        "{replies:?}"
    );
}

/// A stalled half frame must not pin the connection and its buffer forever;
/// an idle connection, on the other hand, is a kept connection and stays.
#[test]
fn a_frame_left_unfinished_is_given_up_after_a_while() {
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _daemon = Daemon::start(&socket);

    let mut idle = UnixStream::connect(&socket).unwrap();
    let mut stalled = UnixStream::connect(&socket).unwrap();
    // The length prefix of a 100-byte body, then only 3 bytes of it.
    stalled.write_all(&[0, 0, 0, 100, 1, 0, 0]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "given up too early"
    );
    // One ERROR frame (kind 0xff) with code 1, malformed_frame, then EOF.
    assert_eq!(answer[4], 0xff, "{answer:?}");
    assert_eq!(
        u16::from_be_bytes([answer[9], answer[10]]),
        ErrorCode::MALFORMED_FRAME.0
    );

    idle.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let still_open =
        matches!(idle.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(still_open, "an idle connection is kept");
}

//! The client against a daemon that accepts but never answers.

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use push_client::{Client, ClientError, ClientOptions};

#[test]
fn a_silent_daemon_is_a_timeout_not_a_protocol_error() {
    let dir = std::env::temp_dir().join(format!("push-client-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("push.sock");
    let _ = std::fs::remove_file(&path);
    // Connections queue in the backlog; nobody reads the HELLO.
    let _listener = UnixListener::bind(&path).unwrap();

    let mut client = Client::new(ClientOptions {
        socket_path: path.clone(),
        timeout: Duration::from_millis(100),
        ..ClientOptions::default()
    });
    let started = Instant::now();
    let error = client.ping().unwrap_err();

    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
}

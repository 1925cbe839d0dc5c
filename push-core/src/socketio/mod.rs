//! The socket.io side: namespaces, who may connect, and what is connected.
//!
//! Browsers connect with the stock socket.io client over WebSocket or HTTP
//! long-polling: clients 3.x and 4.x speak socket.io protocol 5, and the old
//! 1.x and 2.x clients, still loaded by pages nobody wants to touch, speak
//! protocol 4 (docs/old-clients.md). The server only ever sends: events a browser emits are
//! counted and ignored, and a flood of them ends the connection.

mod auth_retry;
mod client_address;
mod client_script;
mod connect;
mod event_data;
mod limits;
mod missed;
mod origin;
mod request_head;
mod resume;
mod send_buffer;

use futures_util::FutureExt;
use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;
use socketioxide::{ProtocolVersion, SocketIo, TransportType};

pub use self::client_script::{ClientScript, ClientScriptError, serve_client_script};
pub use self::connect::Admission;
pub use self::event_data::EventArguments;
pub use self::limits::{ConnectionLimits, guard_handshake_rate};
pub use self::missed::tell_missed;
pub use self::origin::{OriginPolicy, cors_layer, guard_origin};
pub use self::request_head::detach_request_head;
pub use self::resume::{catch_up, is_resuming};
use crate::cluster::{Cluster, Io, Layer, NodeAdapter, Socket};
use crate::config::ConnectionTimers;
use crate::metrics::{Census, NamespaceCensus};
use crate::rooms::is_user_room;

/// Builds the socket.io server with every configured namespace, each
/// joined through `admission`.
pub fn build(
    namespaces: &[String],
    timers: ConnectionTimers,
    admission: Admission,
    cluster: Option<&Cluster>,
) -> (Layer, Io) {
    let settings = admission.limits().settings();
    let max_packet = settings.max_client_packet;
    let (layer, io) = SocketIo::builder()
        .with_adapter::<NodeAdapter>(Cluster::adapter_state(cluster))
        .max_payload(max_packet as u64)
        .ws_max_message_size(max_packet)
        .ws_max_frame_size(max_packet)
        .max_buffer_size(settings.max_buffered_messages)
        .ping_interval(timers.ping_interval)
        .ping_timeout(timers.ping_timeout)
        .connect_timeout(timers.connect_timeout)
        .build_layer();
    // What protocol 4 does differently, said once where operators look
    // (docs/old-clients.md). A build without the `old-clients` feature
    // refuses those clients, and says nothing about them.
    let old_clients = cfg!(feature = "old-clients");
    if old_clients {
        tracing::info!(
            "socket.io protocol 4 (clients 1.x and 2.x) accepted; each such client is also connected to \"/\", which takes a connection place and an auth ask (docs/old-clients.md)"
        );
    }
    if old_clients && admission.recovers() {
        tracing::info!(
            "socket.io protocol 4 clients have no auth object: they send a recovery offset as `offset` in the connect query string (docs/recovery.md)"
        );
    }
    for namespace in namespaces {
        let on_connect = admission.clone();
        let on_admit = admission.clone();
        let handler =
            (move |socket: Socket, io: Io, TryData(auth): TryData<resume::ResumeAuth>| {
                let admission = on_connect.clone();
                let offset = resume::sent_offset(&socket, auth.ok());
                async move { admission.connected(socket, &io, offset) }
            })
            .with(move |socket| {
                let admission = on_admit.clone();
                async move { admission.admit(socket).await }
            });
        serve_namespace(&io, namespace, handler);
    }
    (layer, io)
}

/// Serves `namespace` on `io`, its connections handled by `handler`.
///
/// The namespace is served once its adapter is set up. Setting up never
/// waits for Redis (cluster::link subscribes in the background), so it is
/// done by the first poll, and a publish made right after start finds the
/// namespace.
pub fn serve_namespace<C, T>(io: &Io, namespace: &str, handler: C)
where
    C: ConnectHandler<NodeAdapter, T>,
    T: Send + Sync + 'static,
{
    let mut setup = Box::pin(io.ns(namespace.to_owned(), handler));
    match (&mut setup).now_or_never() {
        Some(Ok(())) => {}
        Some(Err(error)) => tracing::error!(namespace, "cannot serve the namespace: {error}"),
        None => {
            tokio::spawn(async move {
                if let Err(error) = setup.await {
                    tracing::error!("cannot serve a namespace: {error}");
                }
            });
        }
    }
}

/// Counts connections by namespace and transport, and users online, from
/// the live state of the server: the site's namespaces, so not
/// `admin_namespace`, the Admin UI's when it is on.
pub async fn census(io: &Io, admin_namespace: Option<&str>) -> Census {
    let mut namespaces = Vec::new();
    for operators in io.nsps() {
        let namespace = operators.ns_path().to_owned();
        if admin_namespace == Some(namespace.as_str()) {
            continue;
        }
        let mut entry = NamespaceCensus {
            namespace: namespace.clone(),
            ..NamespaceCensus::default()
        };
        if let Some(operators) = io.of(&namespace) {
            for socket in operators.sockets() {
                let count = match (socket.transport_type(), socket.protocol()) {
                    (TransportType::Websocket, ProtocolVersion::V5) => &mut entry.websocket,
                    (TransportType::Polling, ProtocolVersion::V5) => &mut entry.polling,
                    (TransportType::Websocket, ProtocolVersion::V4) => {
                        &mut entry.websocket_protocol4
                    }
                    (TransportType::Polling, ProtocolVersion::V4) => &mut entry.polling_protocol4,
                };
                *count += 1;
            }
        }
        // This node's rooms only: the local list cannot fail.
        let rooms = operators.local().rooms().await.unwrap_or_default();
        entry.users_online = rooms.iter().filter(|room| is_user_room(room)).count() as u64;
        namespaces.push(entry);
    }
    namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Census { namespaces }
}

#[cfg(test)]
mod tests {
    /// Compiles only while socketioxide runs on push-engineio: the
    /// workspace's `[patch.crates-io]` stops applying if a socketioxide
    /// upgrade asks for another engineioxide version, and then
    /// socketioxide's disconnect reasons come from the crates.io crate,
    /// which this conversion does not accept (docs/transport.md).
    #[test]
    fn socketioxide_runs_on_push_engineio() {
        let reason: socketioxide::socket::DisconnectReason =
            engineioxide::DisconnectReason::HeartbeatTimeout.into();
        assert!(matches!(
            reason,
            socketioxide::socket::DisconnectReason::HeartbeatTimeout
        ));
    }
}

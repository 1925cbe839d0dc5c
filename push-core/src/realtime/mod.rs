//! The socket.io side: namespaces, who may connect, and what is connected.
//!
//! Browsers connect with the stock socket.io v4 client over WebSocket or
//! HTTP long-polling. The server only ever sends: events a browser emits
//! have no handler and are dropped by socketioxide.

mod connect;
mod origin;

use std::sync::Arc;

use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, TransportType, layer::SocketIoLayer};

pub use self::origin::{OriginPolicy, cors_layer, guard_origin};
use crate::auth::Authenticator;
use crate::metrics::{Census, Metrics, NamespaceCensus};
use crate::rooms::is_user_room;

/// Builds the socket.io server with every configured namespace.
pub fn build(
    namespaces: &[String],
    authenticator: Option<Arc<Authenticator>>,
    metrics: Arc<Metrics>,
) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder().build_layer();
    for namespace in namespaces {
        let admission = connect::Admission::new(authenticator.clone(), metrics.clone());
        let handler = connect::on_connect.with(move |socket| {
            let admission = admission.clone();
            async move { admission.admit(socket).await }
        });
        io.ns(namespace.clone(), handler);
    }
    (layer, io)
}

/// Counts connections by namespace and transport, and users online, from
/// the live state of the server.
pub async fn census(io: &SocketIo) -> Census {
    let mut namespaces = Vec::new();
    for operators in io.nsps() {
        let namespace = operators.ns_path().to_owned();
        let mut entry = NamespaceCensus {
            namespace: namespace.clone(),
            ..NamespaceCensus::default()
        };
        if let Some(operators) = io.of(&namespace) {
            for socket in operators.sockets() {
                match socket.transport_type() {
                    TransportType::Websocket => entry.websocket += 1,
                    TransportType::Polling => entry.polling += 1,
                }
            }
        }
        // The local adapter cannot fail to list its rooms.
        let Ok(rooms) = operators.rooms().await;
        entry.users_online = rooms.iter().filter(|room| is_user_room(room)).count() as u64;
        namespaces.push(entry);
    }
    namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Census { namespaces }
}

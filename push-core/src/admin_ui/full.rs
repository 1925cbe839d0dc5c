//! Full mode (`admin_ui_mode = "full"`): every connection of this node,
//! and what the UI may do to them.
//!
//! What is offered, and why (docs/security.md, "The Admin UI's full
//! mode"):
//! - `all_sockets` when the UI connects, then `socket_connected` and
//!   `socket_disconnected` as connections come and go, and `room_joined`
//!   and `room_left` for what the UI itself changes. A connection shows
//!   its id, namespace, transport, address, rooms (its user's private
//!   room names the user) and the query and forwarding headers of its
//!   request; never its cookies.
//! - `_disconnect`: ends connections, as a deploy would (a page's client
//!   does not reconnect by itself after a server-side disconnect).
//! - `join` and `leave`: the site's public rooms only. A name is taken as
//!   a site room (`news` and `room:news` are the same room), so the UI
//!   cannot put a connection in a user's private room, where it would
//!   receive that user's messages; it may take a connection out of one,
//!   which only makes it receive less. Rooms push-core keeps for itself
//!   (connections still being identified or sent their missed messages)
//!   are neither joined nor left.
//! - `emit`: a publish like the site's, through the dispatcher: the same
//!   checks (reserved events, `/admin` refused), numbered for recovery,
//!   counted. Its filter is a room name (`user:42`, `room:news`), or a
//!   connection's id (then sent to it alone, outside recovery).
//! - Not sent: `event_received` (browsers' events are ignored, and their
//!   content is the visitor's) and `event_sent` (one per recipient of
//!   every publish would cost as much as the delivery itself).
//!
//! Everything here is about the node the UI is connected to; in a cluster
//! the other nodes' connections show in their `server_stats` figures.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::extract::ConnectInfo;
use push_client::{Publish, Target};
use serde::Serialize;
use serde_json::{Map, Value, json};
use socketioxide::TransportType;
use socketioxide::socket::{DisconnectReason, Sid};

use super::NAMESPACE;
use crate::cluster::{Io, Socket};
use crate::dispatch::Dispatcher;
use crate::rooms::{self, public_room};
use crate::socketio::EventArguments;

/// The features the UI offers in full mode, as `instrument()` names them:
/// acting on one connection or many, and seeing every connection.
pub const FEATURES: [&str; 9] = [
    "EMIT",
    "JOIN",
    "LEAVE",
    "DISCONNECT",
    "MJOIN",
    "MLEAVE",
    "MDISCONNECT",
    "AGGREGATED_EVENTS",
    "ALL_EVENTS",
];

/// A connection as the UI's Sockets and Clients pages show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SerializedSocket {
    id: String,
    /// The UI groups sockets by client; each socket is shown as its own.
    client_id: String,
    transport: &'static str,
    nsp: String,
    data: Map<String, Value>,
    handshake: Handshake,
    rooms: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Handshake {
    address: String,
    headers: Map<String, Value>,
    query: Map<String, Value>,
    url: String,
}

fn serialize(socket: &Socket) -> SerializedSocket {
    let parts = socket.req_parts();
    // The TCP peer: a forwarding header, which only a trusted proxy's is
    // worth believing, shows among the headers.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    // The headers push-core keeps of a request are few
    // (`socketio::request_head`); the cookies are the visitor's and stay.
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != "cookie")
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), json!(value)))
        .collect();
    let id = socket.id.to_string();
    let rooms = std::iter::once(id.clone())
        .chain(socket.rooms().into_iter().map(Cow::into_owned))
        .collect();
    SerializedSocket {
        client_id: id.clone(),
        id,
        transport: match socket.transport_type() {
            TransportType::Websocket => "websocket",
            TransportType::Polling => "polling",
        },
        nsp: socket.ns().to_owned(),
        data: Map::new(),
        handshake: Handshake {
            address: peer.unwrap_or_default(),
            headers,
            query,
            url: parts.uri.to_string(),
        },
        rooms,
    }
}

/// Most connections `all_sockets` lists: at a few hundred bytes each, one
/// message of a few megabytes, which the UI still shows. A busier node
/// lists this many, and says so in its log; its figures stay whole in
/// `server_stats`.
const MAX_LISTED_SOCKETS: usize = 10_000;

/// The connections of this node, for `all_sockets`.
pub fn all_sockets(io: &Io) -> Value {
    let sockets: Vec<Socket> = io
        .nsps()
        .into_iter()
        .flat_map(|operators| operators.local().sockets())
        .collect();
    if sockets.len() > MAX_LISTED_SOCKETS {
        tracing::info!(
            connections = sockets.len(),
            listed = MAX_LISTED_SOCKETS,
            "the Admin UI is sent the first connections only"
        );
    }
    let listed: Vec<SerializedSocket> = sockets
        .iter()
        .take(MAX_LISTED_SOCKETS)
        .map(serialize)
        .collect();
    json!(listed)
}

/// The time as the UI reads it (JavaScript's `Date` in JSON).
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Sends `event` to the UIs connected to this node, if any.
fn tell_uis<T: Serialize + Send + Sync + 'static>(io: &Io, event: &'static str, data: T) {
    let Some(admin) = io.of(NAMESPACE) else {
        return;
    };
    let uis = admin.local();
    tokio::spawn(async move {
        if let Err(error) = uis.emit(event, &data).await {
            tracing::debug!(%error, event, "an Admin UI event could not be sent");
        }
    });
}

/// Tells the UIs of a new connection.
pub fn socket_connected(io: &Io, socket: &Socket) {
    tell_uis(io, "socket_connected", (serialize(socket), now()));
}

/// Tells the UIs a connection has gone, with `instrument()`'s words for why.
pub fn socket_disconnected(io: &Io, socket: &Socket, reason: DisconnectReason) {
    let reason = match reason {
        DisconnectReason::TransportClose => "transport close",
        DisconnectReason::MultipleHttpPollingError | DisconnectReason::TransportError => {
            "transport error"
        }
        DisconnectReason::PacketParsingError => "parse error",
        DisconnectReason::HeartbeatTimeout => "ping timeout",
        DisconnectReason::ClientNSDisconnect => "client namespace disconnect",
        DisconnectReason::ServerNSDisconnect => "server namespace disconnect",
        DisconnectReason::ClosingServer => "server shutting down",
    };
    tell_uis(
        io,
        "socket_disconnected",
        (socket.ns().to_owned(), socket.id.to_string(), reason, now()),
    );
}

/// Registers the UI's commands on its connection.
pub fn register_commands(socket: &Socket, dispatcher: Dispatcher) {
    socket.on(
        "_disconnect",
        |io: Io, EventArguments(args): EventArguments| async move {
            let (Some(namespace), filter) = (text(&args, 0), text(&args, 2)) else {
                return;
            };
            for socket in select(&io, namespace, filter) {
                let _ = socket.disconnect();
            }
        },
    );
    let joining = dispatcher.clone();
    socket.on(
        "join",
        move |io: Io, EventArguments(args): EventArguments| async move {
            change_rooms(&io, &joining, &args, RoomChange::Join);
        },
    );
    let leaving = dispatcher.clone();
    socket.on(
        "leave",
        move |io: Io, EventArguments(args): EventArguments| async move {
            change_rooms(&io, &leaving, &args, RoomChange::Leave);
        },
    );
    socket.on(
        "emit",
        move |io: Io, EventArguments(args): EventArguments| {
            let dispatcher = dispatcher.clone();
            async move { emit(&io, &dispatcher, &args).await }
        },
    );
}

/// What `join` and `leave` do.
#[derive(Clone, Copy)]
enum RoomChange {
    Join,
    Leave,
}

/// `join(namespace, room, filter)` or `leave(namespace, room, filter)`:
/// the room as [`site_room`] or [`leavable_room`] allows it, for each
/// selected connection, told to the UIs (and, in a cluster, to the other
/// nodes' presence).
fn change_rooms(io: &Io, dispatcher: &Dispatcher, args: &[Value], change: RoomChange) {
    let (Some(namespace), Some(room), filter) = (text(args, 0), text(args, 1), text(args, 2))
    else {
        return;
    };
    let (room, event) = match change {
        RoomChange::Join => (Some(site_room(room)), "room_joined"),
        RoomChange::Leave => (leavable_room(room), "room_left"),
    };
    let Some(room) = room else {
        return;
    };
    for socket in select(io, namespace, filter) {
        dispatcher.change_rooms(&socket, || match change {
            RoomChange::Join => socket.join(room.clone()),
            RoomChange::Leave => socket.leave(room.clone()),
        });
        let told = (
            namespace.to_owned(),
            room.clone(),
            socket.id.to_string(),
            now(),
        );
        tell_uis(io, event, told);
    }
}

/// `emit(namespace, filter, event, payload)`: a publish, or a message to
/// one connection when the filter is a connection's id.
async fn emit(io: &Io, dispatcher: &Dispatcher, args: &[Value]) {
    let (Some(namespace), filter, Some(event), [_, _, _, payload]) =
        (text(args, 0), text(args, 1), text(args, 2), args)
    else {
        tracing::info!("an Admin UI emit needs a namespace, a filter, an event and one payload");
        return;
    };
    if let Some(socket) = filter.and_then(|filter| one_socket(io, namespace, filter)) {
        if namespace != NAMESPACE {
            let _ = socket.emit(event, payload);
        }
        return;
    }
    let target = match filter {
        None => Target::everyone(),
        Some(room) => match rooms::user_of(room) {
            Some(user) => Target::users([user]),
            None => Target::rooms([rooms::site_name_of(room).unwrap_or(room)]),
        },
    };
    let payload = payload.to_string();
    let publish = Publish {
        namespace,
        event,
        target,
        payload: payload.as_bytes(),
    };
    match dispatcher.publish(&publish).await {
        Ok(count) => tracing::info!(
            namespace,
            event,
            recipients = count.total,
            "published from the Admin UI"
        ),
        Err(error) => tracing::info!(%error, "a publish from the Admin UI was refused"),
    }
}

/// The argument at `index`, when it is text.
fn text(args: &[Value], index: usize) -> Option<&str> {
    args.get(index).and_then(Value::as_str)
}

/// This node's connections to `namespace` that `filter` names: one
/// connection by its id, those in a room, or all of them.
fn select(io: &Io, namespace: &str, filter: Option<&str>) -> Vec<Socket> {
    let Some(operators) = io.of(namespace) else {
        return Vec::new();
    };
    match filter {
        None => operators.local().sockets(),
        Some(filter) => match one_socket(io, namespace, filter) {
            Some(socket) => vec![socket],
            None => operators.local().within(filter.to_owned()).sockets(),
        },
    }
}

fn one_socket(io: &Io, namespace: &str, id: &str) -> Option<Socket> {
    let sid = id.parse::<Sid>().ok()?;
    io.of(namespace)?.get_socket(sid)
}

/// The site room a name given in the UI means: `news` and `room:news` are
/// both the site's room `news`.
fn site_room(name: &str) -> String {
    match rooms::site_name_of(name) {
        Some(_) => name.to_owned(),
        None => public_room(name),
    }
}

/// A room the UI may take connections out of: a site room, or a user's
/// private room. push-core's own rooms are not.
fn leavable_room(name: &str) -> Option<String> {
    (rooms::site_name_of(name).is_some() || rooms::user_of(name).is_some()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::{RESUMING_ROOM, UNIDENTIFIED_ROOM, user_room};

    #[test]
    fn the_ui_joins_site_rooms_only() {
        assert_eq!(site_room("news"), public_room("news"));
        assert_eq!(site_room(&public_room("news")), public_room("news"));
        assert_ne!(site_room(&user_room("42")), user_room("42"));
        assert_ne!(site_room(UNIDENTIFIED_ROOM), UNIDENTIFIED_ROOM);
    }

    #[test]
    fn the_ui_leaves_site_and_user_rooms_only() {
        assert_eq!(
            leavable_room(&public_room("news")),
            Some(public_room("news"))
        );
        assert_eq!(leavable_room(&user_room("42")), Some(user_room("42")));
        assert_eq!(leavable_room(UNIDENTIFIED_ROOM), None);
        assert_eq!(leavable_room(RESUMING_ROOM), None);
        assert_eq!(leavable_room("news"), None);
    }
}

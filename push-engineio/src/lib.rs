//! push-core's engine.io transport, under socketioxide.
//!
//! socketioxide speaks socket.io (namespaces, rooms, packets) and leaves the
//! connection itself, the engine.io protocol, to a crate it calls
//! `engineioxide`. This is that crate, written for what a push server holds
//! and does: many idle connections, and the same message written to many of
//! them. The workspace puts it in place of the upstream crate with
//! `[patch.crates-io]`, so it offers the interface socketioxide 0.18 calls
//! and nothing else; docs/transport.md says why it exists and how it is
//! measured.
//!
//! Where the bytes and the work go:
//!
//! - one task per connection reads, writes and keeps the heartbeat
//!   ([`websocket`] for WebSocket, [`polling`] for long-polling sessions);
//! - a connection's queue ([`outbox`]) holds nothing while idle and is
//!   bounded by `max_buffer_size`, the backpressure socketioxide reports;
//!   [`watch_full`] tells the layer above which sessions refused a packet;
//! - a broadcast's packet is encoded once by socketioxide; each delivery
//!   is a frame header on the stack and the shared bytes, written with one
//!   `writev` ([`websocket::frame`]);
//! - emits in a [`corked`] burst are written after it by a few flush tasks
//!   (or on the spot, for a private message), not by waking each
//!   recipient's task;
//! - reads land in a buffer per thread; a connection keeps only the bytes of
//!   a frame that has not fully arrived.
//!
//! Engine.io protocol 4 (socket.io 3 and 4 clients) and, with the `v3`
//! feature, protocol 3 (socket.io 1 and 2 clients), with the reference
//! server's rules for refusals, heartbeats and upgrades ([`service`]).

pub use cork::{corked, corked_counting};
pub use engineioxide_core::{ProtocolVersion, Sid, Str, TransportType};
pub use full::{SessionKey, watch_full};
pub use socket::{DisconnectReason, Socket};

pub mod config;
pub mod handler;
pub mod service;
pub mod socket;

mod cork;
mod engine;
mod full;
mod heartbeat;
mod outbox;
mod packet;
mod polling;
mod websocket;

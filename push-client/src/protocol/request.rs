//! What a publisher sends to the daemon.
//!
//! Requests borrow their strings and payload from wherever they were decoded
//! or built, so neither the daemon nor a client copies a payload just to put
//! it on or take it off the wire.

use std::borrow::Cow;

use super::frame::{self, FrameHeader};
use super::wire::{DecodeError, EncodeError, Reader};

/// Message kinds of requests. Replies use the same number with the high bit
/// set; see [`super::reply`].
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const PING: u8 = 0x02;
    pub const PUBLISH: u8 = 0x03;
    pub const ONLINE: u8 = 0x04;
    pub const STATS: u8 = 0x05;
    pub const POSITION: u8 = 0x06;
}

/// Who receives a publish.
///
/// With no users and no rooms, everyone connected to the namespace does.
/// Otherwise the recipients are the union of those users' connections and
/// those rooms' members. Connections of `except_users` are then removed in
/// every case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target<'a> {
    pub users: Vec<Cow<'a, str>>,
    pub rooms: Vec<Cow<'a, str>>,
    pub except_users: Vec<Cow<'a, str>>,
}

impl<'a> Target<'a> {
    /// Everyone connected to the namespace.
    pub fn everyone() -> Self {
        Self::default()
    }

    /// The connections of these users.
    pub fn users(users: impl IntoIterator<Item = impl Into<Cow<'a, str>>>) -> Self {
        Self {
            users: users.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The members of these rooms.
    pub fn rooms(rooms: impl IntoIterator<Item = impl Into<Cow<'a, str>>>) -> Self {
        Self {
            rooms: rooms.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The same target, minus the connections of these users.
    pub fn except(mut self, users: impl IntoIterator<Item = impl Into<Cow<'a, str>>>) -> Self {
        self.except_users.extend(users.into_iter().map(Into::into));
        self
    }

    /// True when the publish goes to every connection of the namespace.
    pub fn is_everyone(&self) -> bool {
        self.users.is_empty() && self.rooms.is_empty()
    }
}

/// One message for the browsers: an event with a JSON payload, to a target
/// within a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub namespace: &'a str,
    pub event: &'a str,
    pub target: Target<'a>,
    /// JSON text. The daemon checks that it parses before delivering it.
    pub payload: &'a [u8],
}

/// Every request a publisher can make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Must be the first request on a connection: agrees on the version.
    Hello { version: u16, client: &'a str },
    /// Answered with a pong, to measure the round trip or check liveness.
    Ping,
    /// Deliver a message; answered with the number of connections reached.
    Publish(Publish<'a>),
    /// How many connections does this user have in this namespace?
    Online { namespace: &'a str, user: &'a str },
    /// Counters and gauges of the daemon, as a JSON object.
    Stats,
    /// The namespace's current recovery offset, for a page to render: its
    /// first connect with it receives what was published after.
    Position { namespace: &'a str },
}

impl<'a> Request<'a> {
    fn kind(&self) -> u8 {
        match self {
            Request::Hello { .. } => kind::HELLO,
            Request::Ping => kind::PING,
            Request::Publish(_) => kind::PUBLISH,
            Request::Online { .. } => kind::ONLINE,
            Request::Stats => kind::STATS,
            Request::Position { .. } => kind::POSITION,
        }
    }

    /// Appends this request as one whole frame to `out`.
    pub fn encode(
        &self,
        request_id: u32,
        max_body: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        frame::encode(out, max_body, |w| {
            FrameHeader {
                kind: self.kind(),
                request_id,
            }
            .write(w);
            match self {
                Request::Hello { version, client } => {
                    w.u16(*version);
                    w.str("client name", client)?;
                }
                Request::Ping | Request::Stats => {}
                Request::Publish(publish) => {
                    w.str("namespace", publish.namespace)?;
                    w.str("event", publish.event)?;
                    w.list("users", &publish.target.users)?;
                    w.list("rooms", &publish.target.rooms)?;
                    w.list("except_users", &publish.target.except_users)?;
                    w.blob("payload", publish.payload)?;
                }
                Request::Online { namespace, user } => {
                    w.str("namespace", namespace)?;
                    w.str("user", user)?;
                }
                Request::Position { namespace } => w.str("namespace", namespace)?,
            }
            Ok(())
        })
    }

    /// Decodes the fields that follow a header of the given kind, and checks
    /// that nothing is left over.
    pub fn decode(kind: u8, mut reader: Reader<'a>) -> Result<Self, DecodeError> {
        let request = match kind {
            kind::HELLO => Request::Hello {
                version: reader.u16("version")?,
                client: reader.str("client name")?,
            },
            kind::PING => Request::Ping,
            kind::PUBLISH => Request::Publish(Publish {
                namespace: reader.str("namespace")?,
                event: reader.str("event")?,
                target: Target {
                    users: borrowed(reader.list("users")?),
                    rooms: borrowed(reader.list("rooms")?),
                    except_users: borrowed(reader.list("except_users")?),
                },
                payload: reader.blob("payload")?,
            }),
            kind::ONLINE => Request::Online {
                namespace: reader.str("namespace")?,
                user: reader.str("user")?,
            },
            kind::STATS => Request::Stats,
            kind::POSITION => Request::Position {
                namespace: reader.str("namespace")?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        reader.finish()?;
        Ok(request)
    }
}

fn borrowed(list: Vec<&str>) -> Vec<Cow<'_, str>> {
    list.into_iter().map(Cow::Borrowed).collect()
}

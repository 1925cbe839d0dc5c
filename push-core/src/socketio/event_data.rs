//! What push-core reads of an event a client sends, without decoding it
//! twice: its size, and its arguments as JSON values.
//!
//! socketioxide hands a handler the event as the text the client sent
//! (`["name", arg1, arg2, ...]`, with any binary attachments beside it).
//! Browsers' events are ignored, so all that is read of them is their size,
//! for the traffic figures ([`EventSize`]). The Admin UI's commands take a
//! varying number of arguments, so they are read as a list
//! ([`EventArguments`]) rather than as a fixed tuple.

use std::convert::Infallible;
use std::sync::Arc;

use socketioxide::adapter::Adapter;
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;

/// The size of an event as received: its JSON text and binary attachments.
pub struct EventSize(pub usize);

impl<A: Adapter> FromMessageParts<A> for EventSize {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        value: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let size = match value {
            Value::Str(text, attachments) => {
                text.len()
                    + attachments
                        .iter()
                        .flatten()
                        .map(|bin| bin.len())
                        .sum::<usize>()
            }
            Value::Bytes(bytes) => bytes.len(),
        };
        Ok(Self(size))
    }
}

/// An event's arguments, the event name left out; empty when they are not
/// a JSON list (a binary event, or text that does not parse).
pub struct EventArguments(pub Vec<serde_json::Value>);

impl<A: Adapter> FromMessageParts<A> for EventArguments {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        value: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let mut arguments = value
            .as_str()
            .and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).ok())
            .unwrap_or_default();
        if !arguments.is_empty() {
            arguments.remove(0);
        }
        Ok(Self(arguments))
    }
}

//! Channel messages sent to the other nodes many per `PUBLISH`.
//!
//! With recovery off, the relay sends each publish to the other nodes as
//! one channel message (`relay`), and socketioxide's adapter each broadcast
//! of its own. One `PUBLISH` each costs a round trip and, on every other
//! node, a wake-up per message, so a pipelining publisher's burst would
//! cost the cluster as much as that many separate publishers. The link
//! therefore queues what they publish, and a task sends whatever gathered
//! while the previous round trip was under way: one message alone as it
//! is, several for one channel as a bundle that the receiving link splits
//! again. The receivers on either side see the messages one by one, in
//! order.
//!
//! A bundle starts with the byte 0xC1, which neither MessagePack (the
//! adapter's encoding) nor a relay message starts with, then holds each
//! message with its length (`u32`, big-endian) before it.

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::link::{LinkError, RedisLink};

/// The first byte of a bundle; no message of the adapter or the relay
/// starts with it.
pub(super) const BUNDLE_MARK: u8 = 0xC1;

/// Messages put in one bundle at most: few enough that a bundle is a few
/// tens of KiB.
const MAX_BUNDLE: usize = 256;

/// Messages taken from the queue at once.
const MAX_ROUND: usize = 1024;

/// A message waiting to be published.
pub(super) struct Queued {
    channel: String,
    message: Vec<u8>,
    /// How many nodes received it, this one included.
    sent: oneshot::Sender<Result<usize, LinkError>>,
}

impl Queued {
    pub fn new(
        channel: String,
        message: Vec<u8>,
    ) -> (Self, oneshot::Receiver<Result<usize, LinkError>>) {
        let (sent, receiver) = oneshot::channel();
        let queued = Self {
            channel,
            message,
            sent,
        };
        (queued, receiver)
    }
}

/// Publishes the queued messages, round after round, until the queue
/// closes.
pub(super) async fn send_rounds(link: RedisLink, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut round = Vec::with_capacity(MAX_ROUND);
    while queue.recv_many(&mut round, MAX_ROUND).await > 0 {
        send_round(&link, std::mem::take(&mut round)).await;
    }
}

/// What one `PUBLISH` of a round carries, and whom to tell.
struct Part {
    channel: String,
    messages: Vec<Vec<u8>>,
    senders: Vec<oneshot::Sender<Result<usize, LinkError>>>,
}

/// Publishes one round: a message or a bundle per channel and part, all in
/// one round trip (the connection pipelines them).
async fn send_round(link: &RedisLink, round: Vec<Queued>) {
    let mut parts: Vec<Part> = Vec::new();
    for queued in round {
        let part = match parts
            .iter()
            .rposition(|part| part.channel == queued.channel && part.messages.len() < MAX_BUNDLE)
        {
            Some(at) => &mut parts[at],
            None => {
                parts.push(Part {
                    channel: queued.channel,
                    messages: Vec::new(),
                    senders: Vec::new(),
                });
                let last = parts.len() - 1;
                &mut parts[last]
            }
        };
        part.messages.push(queued.message);
        part.senders.push(queued.sent);
    }
    let sending = parts.iter_mut().map(|part| {
        let payload = if part.messages.len() == 1 {
            std::mem::take(&mut part.messages[0])
        } else {
            bundle(part.messages.iter().map(Vec::as_slice))
        };
        link.publish_to(&part.channel, payload)
    });
    let sent = join_all(sending).await;
    for (part, sent) in parts.into_iter().zip(sent) {
        for sender in part.senders {
            let _ = sender.send(sent.clone());
        }
    }
}

/// The bundle of `messages`.
fn bundle<'a>(messages: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let size: usize = messages.clone().map(|message| 4 + message.len()).sum();
    let mut bundle = Vec::with_capacity(1 + size);
    bundle.push(BUNDLE_MARK);
    for message in messages {
        // A message over 4 GiB cannot be queued: the publish frame limit
        // is far below.
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        bundle.extend_from_slice(&length.to_be_bytes());
        bundle.extend_from_slice(message);
    }
    bundle
}

/// The messages a channel message holds, in place: itself, or a bundle's
/// parts. A bundle cut short yields the parts that are whole.
pub(super) fn parts(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (whole, mut rest) = match message.split_first() {
        Some((&BUNDLE_MARK, rest)) => (None, rest),
        _ => (Some(message), &[][..]),
    };
    whole.into_iter().chain(std::iter::from_fn(move || {
        let (length, after) = rest.split_first_chunk::<4>()?;
        let length = u32::from_be_bytes(*length) as usize;
        let Some((part, after)) = after.split_at_checked(length) else {
            tracing::warn!("a bundle of cluster messages was cut short; its end is ignored");
            rest = &[];
            return None;
        };
        rest = after;
        Some(part)
    }))
}

/// The messages a channel message holds, each on its own: itself, or a
/// bundle's parts.
pub(super) fn unbundle(message: Vec<u8>) -> Vec<Vec<u8>> {
    if message.first() != Some(&BUNDLE_MARK) {
        return vec![message];
    }
    parts(&message).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_splits_into_its_messages_and_a_plain_message_stays_whole() {
        let messages: [&[u8]; 3] = [b"\x92one", b"", b"three"];
        let bundled = bundle(messages.iter().copied());
        assert_eq!(unbundle(bundled.clone()), messages.map(<[u8]>::to_vec));
        assert_eq!(unbundle(b"\x92plain".to_vec()), [b"\x92plain".to_vec()]);
        let cut = bundled[..bundled.len() - 2].to_vec();
        assert_eq!(unbundle(cut), [b"\x92one".to_vec(), Vec::new()]);
    }
}

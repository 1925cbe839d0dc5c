//! Messages a node handed out without a place in the history, and how the
//! whole cluster comes to hear of them.
//!
//! A node that cannot reach Redis still hands a publish to its own pages
//! (docs/scaling.md, "When Redis is down"). The other nodes' pages never
//! get it, and nothing in the stream says so; once the node's link is
//! back it starts a new epoch, which tells every page to reload. But a
//! node can die before its link is back, and the knowledge would die with
//! it. So each such message carries, where an offset would be, a **mark**:
//! which node handed it out, how many it had handed out so far, and a
//! signature. The node's other pages of the namespace get the mark too, in
//! a [`UNNUMBERED_EVENT`] of its own (a private message may have no
//! recipient on that node). A page keeps the mark as its offset and sends
//! it back when it reconnects, to any node; that node then starts the new
//! epoch in the dead node's place.
//!
//! The signature is an HMAC with a key the nodes keep in Redis next to the
//! namespace's history (and put back after Redis restarts empty), so a
//! page cannot make up marks to make every page of the cluster reload. A
//! mark is acted on once: Redis keeps, for each node, the highest count a
//! new epoch has covered.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The event that gives a page a mark without a message: `{offset: MARK}`.
pub const UNNUMBERED_EVENT: &str = "push:unnumbered";

/// How many keys a node remembers per namespace: the current one and those
/// before it, for marks signed before Redis restarted and another node
/// chose a new key.
const KEPT_KEYS: usize = 4;
/// Marks heard from pages and not yet acted on, at most: one per node that
/// handed messages out, so a handful.
const MAX_HEARD: usize = 64;

/// What a message handed out without an offset carries instead:
/// `u<node>.<handed>.<signature>` (hexadecimal, decimal, hexadecimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The handing node's random name for itself, new at each start.
    pub node: u64,
    /// How many messages of the namespace that node had handed out
    /// without a place in the history, this one included.
    pub handed: u64,
    signature: u64,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{:x}.{}.{:x}", self.node, self.handed, self.signature)
    }
}

/// A string that is not a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAMark;

impl FromStr for Mark {
    type Err = NotAMark;

    fn from_str(text: &str) -> Result<Self, NotAMark> {
        let mut parts = text.strip_prefix('u').ok_or(NotAMark)?.splitn(3, '.');
        let mut next = || parts.next().ok_or(NotAMark);
        let (node, handed, signature) = (next()?, next()?, next()?);
        Ok(Self {
            node: u64::from_str_radix(node, 16).map_err(|_| NotAMark)?,
            handed: handed.parse().map_err(|_| NotAMark)?,
            signature: u64::from_str_radix(signature, 16).map_err(|_| NotAMark)?,
        })
    }
}

/// One namespace's unnumbered hand-outs on this node, and the marks its
/// pages brought back from other nodes.
pub(super) struct HandedOut {
    /// This node's name in its marks.
    node: u64,
    /// Messages handed out without a place in the history since start.
    handed: AtomicU64,
    /// Of those, how many a new epoch already told every page about.
    covered: AtomicU64,
    /// The signing keys known, newest first; empty until the link first
    /// came up (marks are then left off).
    keys: Mutex<Vec<String>>,
    /// Valid marks heard from reconnecting pages, not yet acted on.
    heard: Mutex<Vec<Mark>>,
}

impl HandedOut {
    pub(super) fn new() -> Self {
        Self {
            node: fastrand::u64(..),
            handed: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            keys: Mutex::new(Vec::new()),
            heard: Mutex::new(Vec::new()),
        }
    }

    /// Counts one more message handed out; its mark, if a key is known.
    pub(super) fn hand_out(&self, namespace: &str) -> Option<Mark> {
        let handed = self.handed.fetch_add(1, Ordering::AcqRel) + 1;
        let key = lock(&self.keys).first().cloned()?;
        Some(Mark {
            node: self.node,
            handed,
            signature: signature(&key, namespace, self.node, handed),
        })
    }

    /// Keeps `mark`, brought back by a page, if one of the known keys
    /// signed it; false if none did.
    pub(super) fn hear(&self, namespace: &str, mark: Mark) -> bool {
        let signed = lock(&self.keys)
            .iter()
            .any(|key| signature(key, namespace, mark.node, mark.handed) == mark.signature);
        if !signed {
            return false;
        }
        let mut heard = lock(&self.heard);
        if let Some(kept) = heard.iter_mut().find(|kept| kept.node == mark.node) {
            if mark.handed > kept.handed {
                *kept = mark;
            }
        } else if heard.len() < MAX_HEARD {
            heard.push(mark);
        }
        true
    }

    /// The key Redis holds for the namespace now: signs this node's marks
    /// from now on.
    pub(super) fn use_key(&self, key: String) {
        let mut keys = lock(&self.keys);
        keys.retain(|known| *known != key);
        keys.insert(0, key);
        keys.truncate(KEPT_KEYS);
    }

    /// The key to offer Redis if it has none (it restarted empty): the
    /// one marks were signed with so far, so they stay good.
    pub(super) fn key_to_offer(&self) -> String {
        lock(&self.keys)
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
    }

    /// What no new epoch has told the pages about yet: this node's own
    /// hand-outs and the marks heard. Taken: give them back with
    /// [`HandedOut::not_acted_on`] if no epoch could be started.
    pub(super) fn pending(&self) -> Vec<Mark> {
        let mut pending = std::mem::take(&mut *lock(&self.heard));
        let handed = self.handed.load(Ordering::Acquire);
        if handed > self.covered.load(Ordering::Acquire) {
            pending.push(Mark {
                node: self.node,
                handed,
                signature: 0, // Not sent: this node's own count.
            });
        }
        pending
    }

    /// A new epoch (started here or found in Redis) told every page about
    /// `marks`.
    pub(super) fn acted_on(&self, marks: &[Mark]) {
        for mark in marks.iter().filter(|mark| mark.node == self.node) {
            self.covered.fetch_max(mark.handed, Ordering::AcqRel);
        }
    }

    /// No epoch could be started for `marks` yet: they wait for the next
    /// try.
    pub(super) fn not_acted_on(&self, marks: Vec<Mark>) {
        let own = self.node;
        let mut heard = lock(&self.heard);
        for mark in marks.into_iter().filter(|mark| mark.node != own) {
            if heard.len() < MAX_HEARD {
                heard.push(mark);
            }
        }
    }
}

/// The first 64 bits of HMAC-SHA256 over the namespace, node and count.
fn signature(key: &str, namespace: &str, node: u64, handed: u64) -> u64 {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return 0; // HMAC takes keys of any length: not reached.
    };
    mac.update(namespace.as_bytes());
    mac.update(&[0]);
    mac.update(&node.to_be_bytes());
    mac.update(&handed.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_as_written_and_is_no_offset() {
        let handed_out = HandedOut::new();
        assert_eq!(handed_out.hand_out("/"), None, "no key yet: no mark");
        handed_out.use_key("k1".to_owned());
        let mark = handed_out.hand_out("/").unwrap();
        assert_eq!(mark.handed, 2);
        let text = mark.to_string();
        assert_eq!(text.parse::<Mark>(), Ok(mark));
        assert!(text.parse::<crate::recovery::Offset>().is_err());
        for garbage in ["", "u", "u1.2", "x1.2.3", "u1.x.3", "uzz.1.1", "1-2"] {
            assert_eq!(garbage.parse::<Mark>(), Err(NotAMark), "{garbage:?}");
        }
    }

    #[test]
    fn only_marks_signed_with_a_known_key_for_their_namespace_are_heard() {
        let (a, b) = (HandedOut::new(), HandedOut::new());
        a.use_key("old".to_owned());
        let before = a.hand_out("/").unwrap();
        a.use_key("new".to_owned());
        let after = a.hand_out("/").unwrap();
        b.use_key("old".to_owned());
        b.use_key("new".to_owned());
        assert!(b.hear("/", before), "signed with a key b knew before");
        assert!(b.hear("/", after));
        assert!(!b.hear("/chat", after), "another namespace's mark");
        let forged = Mark {
            handed: after.handed + 1,
            ..after
        };
        assert!(!b.hear("/", forged), "a count the signature is not for");
        assert_eq!(b.pending(), vec![after], "one per node, the highest count");
        assert_eq!(b.pending(), vec![], "taken");
    }

    #[test]
    fn own_hand_outs_are_pending_until_an_epoch_covers_them() {
        let node = HandedOut::new();
        node.hand_out("/");
        let pending = node.pending();
        assert_eq!(pending.iter().map(|m| m.handed).collect::<Vec<_>>(), [1]);
        node.not_acted_on(pending);
        assert_eq!(node.pending().len(), 1, "still uncovered");
        node.acted_on(&node.pending());
        assert_eq!(node.pending(), vec![]);
        node.hand_out("/");
        assert_eq!(node.pending().len(), 1, "a later hand-out");
    }
}

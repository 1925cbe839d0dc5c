//! Which sessions turned a packet away because their queue was full.
//!
//! socketioxide hands a broadcast to every session of a room in one loop,
//! and reports only how many could not take it. The layer above needs to
//! know which: push-core catches such a connection up later, from its
//! history, instead of losing the message for it (docs/recovery.md, "Slow
//! pages"). That loop runs on one thread without yielding, so the caller
//! wraps it in [`watch_full`], and every session whose queue refuses a data
//! packet on this thread meanwhile is noted. Nothing is noted, and nothing
//! is allocated, outside a watch.

use std::cell::RefCell;

use http::request::Parts;

thread_local! {
    /// The sessions noted by the innermost [`watch_full`] on this thread;
    /// `None` while no watch runs.
    static WATCHED: RefCell<Option<Vec<SessionKey>>> = const { RefCell::new(None) };
}

/// Names a session while it lives, by where the head of the request that
/// opened it is kept. socketioxide shows that head to the layer above
/// (`SocketRef::req_parts`), so both sides can name the same session, and
/// no two sessions alive at once share the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(usize);

impl SessionKey {
    /// The key of the session whose request head is `req_parts`.
    pub fn of(req_parts: &Parts) -> Self {
        Self(std::ptr::from_ref(req_parts) as usize)
    }
}

/// Runs `send`, and returns with its result the sessions that refused a
/// data packet on this thread while it ran, in the order they refused.
pub fn watch_full<R>(send: impl FnOnce() -> R) -> (R, Vec<SessionKey>) {
    /// Puts back the watch that ran before, even if `send` panics.
    struct Restore(Option<Vec<SessionKey>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            WATCHED.with(|watched| *watched.borrow_mut() = outer);
        }
    }
    let outer = WATCHED.with(|watched| watched.borrow_mut().replace(Vec::new()));
    let restore = Restore(outer);
    let result = send();
    let full = WATCHED.with(|watched| watched.borrow_mut().take().unwrap_or_default());
    drop(restore);
    (result, full)
}

/// Notes that the session named `key` refused a data packet, if a watch
/// runs on this thread.
pub(crate) fn note_full(key: SessionKey) {
    WATCHED.with(|watched| {
        if let Some(full) = watched.borrow_mut().as_mut() {
            full.push(key);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        http::Request::new(()).into_parts().0
    }

    #[test]
    fn a_watch_sees_what_refused_within_it_only() {
        let (a, b) = (parts(), parts());
        note_full(SessionKey::of(&a)); // no watch: nowhere to go
        let ((), full) = watch_full(|| {
            note_full(SessionKey::of(&a));
            let ((), inner) = watch_full(|| note_full(SessionKey::of(&b)));
            assert_eq!(inner, [SessionKey::of(&b)]);
        });
        assert_eq!(full, [SessionKey::of(&a)]);
        let ((), none) = watch_full(|| ());
        assert!(none.is_empty());
        assert_ne!(SessionKey::of(&a), SessionKey::of(&b));
    }
}

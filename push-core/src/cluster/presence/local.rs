//! This node's own connections, as the other nodes are told of them.
//!
//! The node counts its own connections from socketio's room map at publish
//! time, exactly; this summary exists only to be sent. Each connection
//! event (connected, rooms changed, closed) moves one connection from one
//! profile to another here and in the changes not yet sent, which coalesce:
//! a page that opens and closes between two sends costs nothing on the
//! wire. Nothing is kept per connection: a connection's profile is read
//! from its rooms when it changes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::summary::Profile;
use super::wire::{NamespaceChanges, NamespaceSnapshot};
use crate::cluster::Socket;

/// Connections by profile, of one namespace.
type Profiles = HashMap<Profile, u64>;

#[derive(Default)]
struct State {
    namespaces: HashMap<String, Profiles>,
    /// Changes since the last send, by namespace and profile.
    unsent: HashMap<String, HashMap<Profile, i64>>,
}

impl State {
    /// One connection of `namespace` moves from profile `from` to `to`
    /// (`None`: it was not, or is no longer, connected). A connection this
    /// node never counted (one of the Admin UI's own) has no profile to
    /// leave and is left alone.
    fn change(&mut self, namespace: &str, from: Option<Profile>, to: Option<Profile>) {
        let profiles = self.namespaces.entry(namespace.to_owned()).or_default();
        if let Some(from) = &from {
            let Some(connections) = profiles.get_mut(from) else {
                return;
            };
            *connections -= 1;
            if *connections == 0 {
                profiles.remove(from);
            }
        }
        let unsent = self.unsent.entry(namespace.to_owned()).or_default();
        if let Some(from) = from {
            *unsent.entry(from).or_default() -= 1;
        }
        if let Some(to) = to {
            *profiles.entry(to.clone()).or_default() += 1;
            *unsent.entry(to).or_default() += 1;
        }
    }
}

fn profile_of(socket: &Socket) -> Profile {
    Profile::of(socket.rooms())
}

/// This node's connections by namespace and profile, and the changes not
/// yet sent. One lock serialises every change, so a connection's room
/// change and its close never cross: the profile counted out at the close
/// is the one counted in.
#[derive(Default)]
pub struct LocalPresence {
    state: Mutex<State>,
    /// Woken by the first change after a send.
    changed: Notify,
}

impl LocalPresence {
    /// `socket` is connected, in the rooms it is in now.
    pub fn connected(&self, socket: &Socket) {
        let mut state = self.lock();
        state.change(socket.ns(), None, Some(profile_of(socket)));
        self.changed.notify_one();
    }

    /// `socket` is closing; called from its disconnect handler, while it
    /// is still in its rooms.
    pub fn closed(&self, socket: &Socket) {
        let mut state = self.lock();
        state.change(socket.ns(), Some(profile_of(socket)), None);
        self.changed.notify_one();
    }

    /// Changes the rooms of `socket` with `change`, and its profile with
    /// them. A closed connection's rooms are left alone: its disconnect
    /// handler has counted it out (or waits for this lock and will, with
    /// its rooms as they are then), so changing them would count it again.
    pub fn change_rooms(&self, socket: &Socket, change: impl FnOnce()) {
        let mut state = self.lock();
        if !socket.connected() {
            return;
        }
        let before = profile_of(socket);
        change();
        let after = profile_of(socket);
        if before != after {
            state.change(socket.ns(), Some(before), Some(after));
            self.changed.notify_one();
        }
    }

    /// Waits for a change since the last [`Self::take_changes`].
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The changes since the last call (or snapshot), emptied.
    pub fn take_changes(&self) -> Vec<NamespaceChanges> {
        let unsent = std::mem::take(&mut self.lock().unsent);
        unsent
            .into_iter()
            .filter_map(|(namespace, changes)| {
                let changes: Vec<(Vec<String>, i64)> = changes
                    .into_iter()
                    .filter(|(_, delta)| *delta != 0)
                    .map(|(profile, delta)| (profile.rooms().to_vec(), delta))
                    .collect();
                (!changes.is_empty()).then_some(NamespaceChanges { namespace, changes })
            })
            .collect()
    }

    /// Every connection by profile; the changes so far are in it, so they
    /// are emptied too.
    pub fn snapshot(&self) -> Vec<NamespaceSnapshot> {
        let mut state = self.lock();
        state.unsent.clear();
        state
            .namespaces
            .iter()
            .map(|(namespace, profiles)| NamespaceSnapshot {
                namespace: namespace.clone(),
                profiles: profiles
                    .iter()
                    .map(|(profile, connections)| (profile.rooms().to_vec(), *connections))
                    .collect(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(rooms: &[&str]) -> Option<Profile> {
        Some(Profile::of(rooms))
    }

    #[test]
    fn a_page_that_opens_and_closes_between_sends_costs_nothing() {
        let local = LocalPresence::default();
        local.lock().change("/", None, profile(&["user:1"]));
        local.lock().change("/", profile(&["user:1"]), None);
        assert!(local.take_changes().is_empty());
        assert!(local.snapshot()[0].profiles.is_empty());
    }

    #[test]
    fn a_connection_never_counted_changes_nothing() {
        let local = LocalPresence::default();
        local.lock().change("/", None, profile(&["user:1"]));
        local.take_changes();
        local
            .lock()
            .change("/", profile(&["user:2"]), profile(&["user:2", "room:a"]));
        local.lock().change("/", profile(&["user:3"]), None);
        assert!(local.take_changes().is_empty());
        let snapshot = local.snapshot().remove(0).profiles;
        assert_eq!(snapshot, vec![(vec!["user:1".to_owned()], 1)]);
    }

    #[test]
    fn changes_coalesce_by_profile() {
        let local = LocalPresence::default();
        local
            .lock()
            .change("/", None, profile(&["user:1", "room:a"]));
        let resuming = profile(&["room:a", "user:1", "push:resuming"]);
        local.lock().change("/", None, resuming);
        local
            .lock()
            .change("/", profile(&["user:1", "room:a"]), profile(&["user:1"]));
        let mut changes = local.take_changes().remove(0).changes;
        changes.sort();
        assert_eq!(
            changes,
            vec![
                (vec!["room:a".to_owned(), "user:1".to_owned()], 1),
                (vec!["user:1".to_owned()], 1),
            ]
        );
        assert!(local.take_changes().is_empty());
        let mut snapshot = local.snapshot().remove(0).profiles;
        snapshot.sort();
        assert_eq!(
            snapshot,
            vec![
                (vec!["room:a".to_owned(), "user:1".to_owned()], 1),
                (vec!["user:1".to_owned()], 1),
            ]
        );
    }
}

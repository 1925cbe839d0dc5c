//! One node's connections in a namespace, summed up small enough to send
//! to every other node and exact enough to count any publish's target.
//!
//! A publish's recipients depend only on which rooms a connection is in:
//! its user's private room, the site's rooms, and whether it still waits
//! for its identity (see `rooms`). So connections in the same rooms are
//! interchangeable for counting, and a node is summed up as a multiset of
//! [`Profile`]s, the sorted rooms of a connection, each with how many
//! connections have it. A user's tabs share one profile; a site's users
//! make about one profile each.
//!
//! Counting a target never scans every profile: each room knows its
//! connections and the profiles that have it, so the common targets
//! (everyone, one user, one room) are one lookup, and the others visit
//! only the profiles of the rooms they name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use push_client::Target;

use crate::rooms::{UNIDENTIFIED_ROOM, is_user_room, public_room, site_name_of, user_room};

/// The rooms of a connection that matter for counting, sorted: its user's
/// private room, the site's rooms, and [`UNIDENTIFIED_ROOM`] while it waits
/// for its identity. Cheap to clone: a room index shares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Profile(Arc<[String]>);

impl Profile {
    /// The profile of a connection in `rooms` (socketioxide's room names);
    /// rooms that no target can name are left out.
    pub fn of<R: AsRef<str>>(rooms: impl IntoIterator<Item = R>) -> Self {
        let mut counted: Vec<String> = rooms
            .into_iter()
            .map(|room| room.as_ref().to_owned())
            .filter(|room| counts(room))
            .collect();
        counted.sort_unstable();
        counted.dedup();
        Self(counted.into())
    }

    /// The rooms, as they travel between nodes.
    pub fn rooms(&self) -> &[String] {
        &self.0
    }

    fn has(&self, room: &str) -> bool {
        self.0
            .binary_search_by(|member| member.as_str().cmp(room))
            .is_ok()
    }

    fn has_any(&self, rooms: &[String]) -> bool {
        rooms.iter().any(|room| self.has(room))
    }

    fn identified(&self) -> bool {
        !self.has(UNIDENTIFIED_ROOM)
    }
}

/// True for the rooms a target can name or that leave a connection out.
fn counts(room: &str) -> bool {
    is_user_room(room) || site_name_of(room).is_some() || room == UNIDENTIFIED_ROOM
}

/// A room's connections, and the profiles that have it.
#[derive(Debug, Default)]
struct Members {
    connections: u64,
    profiles: HashSet<Profile>,
}

/// A change that would take a profile below no connections: the summary
/// and the changes sent for it disagree, and only a fresh snapshot mends
/// that.
#[derive(Debug, thiserror::Error)]
#[error("a presence change removes connections the summary does not have")]
pub struct Inconsistent;

/// One node's connections in one namespace, by profile, with the counters
/// that answer targets without a scan.
#[derive(Debug, Default)]
pub struct Summary {
    connections: HashMap<Profile, u64>,
    rooms: HashMap<String, Members>,
    /// Connections not waiting for their identity: a publish to everyone's
    /// recipients.
    identified: u64,
}

impl Summary {
    /// Adds `delta` connections (fewer, if negative) of `profile`.
    pub fn apply(&mut self, profile: &Profile, delta: i64) -> Result<(), Inconsistent> {
        let had = self.connections.get(profile).copied().unwrap_or(0);
        let has = had.checked_add_signed(delta).ok_or(Inconsistent)?;
        let change = |count: &mut u64| {
            *count = count.checked_add_signed(delta).ok_or(Inconsistent)?;
            Ok(())
        };
        for room in profile.rooms() {
            let members = self.rooms.entry(room.clone()).or_default();
            change(&mut members.connections)?;
            if has == 0 {
                members.profiles.remove(profile);
            } else {
                members.profiles.insert(profile.clone());
            }
            if members.connections == 0 {
                self.rooms.remove(room);
            }
        }
        if profile.identified() {
            change(&mut self.identified)?;
        }
        if has == 0 {
            self.connections.remove(profile);
        } else {
            self.connections.insert(profile.clone(), has);
        }
        Ok(())
    }

    /// How many connections `user` has open.
    pub fn connections_of(&self, user: &str) -> u64 {
        self.in_room(&user_room(user))
    }

    /// How many connections a publish to `target` reaches: those in any of
    /// its users' or rooms' (everyone identified, if it names none), less
    /// those of its `except_users`. The same selection as the dispatcher's
    /// `recipients`.
    pub fn recipients(&self, target: &Target<'_>) -> u64 {
        let excepted: Vec<String> = target
            .except_users
            .iter()
            .map(|user| user_room(user))
            .collect();
        if target.is_everyone() {
            let left_out = self.sum_profiles_in_any(&excepted, Profile::identified);
            return self.identified.saturating_sub(left_out);
        }
        let named: Vec<String> = target
            .users
            .iter()
            .map(|user| user_room(user))
            .chain(target.rooms.iter().map(|room| public_room(room)))
            .collect();
        let reached = match named.as_slice() {
            [room] => self.in_room(room),
            _ => self.sum_profiles_in_any(&named, |_| true),
        };
        let left_out = self.sum_profiles_in_any(&excepted, |profile| profile.has_any(&named));
        reached.saturating_sub(left_out)
    }

    fn in_room(&self, room: &str) -> u64 {
        self.rooms
            .get(room)
            .map_or(0, |members| members.connections)
    }

    /// The connections whose profile has one of `rooms` and passes `keep`;
    /// a profile in several of them is counted once (under the first).
    fn sum_profiles_in_any(&self, rooms: &[String], keep: impl Fn(&Profile) -> bool) -> u64 {
        let mut sum = 0;
        for (at, room) in rooms.iter().enumerate() {
            let Some(members) = self.rooms.get(room) else {
                continue;
            };
            for profile in &members.profiles {
                let counted_before = profile.has_any(&rooms[..at]);
                if !counted_before && keep(profile) {
                    sum += self.connections.get(profile).copied().unwrap_or(0);
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const USERS: [&str; 5] = ["1", "2", "3", "4", "5"];
    const ROOMS: [&str; 4] = ["a", "b", "c", "d"];

    /// A connection's socketioxide rooms, drawn at random: a guest, a user,
    /// or one waiting for its identity; some of the site's rooms; and the
    /// rooms a profile leaves out.
    fn random_connection() -> Vec<String> {
        let mut rooms = vec!["push:resuming".to_owned()];
        match fastrand::u8(0..4) {
            0 => {}
            1 => rooms.push(UNIDENTIFIED_ROOM.to_owned()),
            _ => rooms.push(user_room(fastrand::choice(USERS).unwrap_or("1"))),
        }
        for room in ROOMS {
            if fastrand::bool() {
                rooms.push(public_room(room));
            }
        }
        rooms
    }

    fn random_subset(of: &[&'static str]) -> Vec<Cow<'static, str>> {
        let mut picked: Vec<Cow<'static, str>> = of
            .iter()
            .filter(|_| fastrand::u8(0..3) == 0)
            .map(|item| Cow::Borrowed(*item))
            .collect();
        // Sometimes twice the same: a site may repeat itself.
        if let Some(first) = picked.first().cloned()
            && fastrand::bool()
        {
            picked.push(first);
        }
        picked
    }

    /// What socketioxide would select: in one of the named rooms (or, when
    /// none is named, not waiting for an identity) and in none of the
    /// excepted users' rooms.
    fn selected(rooms: &[String], target: &Target<'_>) -> bool {
        let has = |room: &str| rooms.iter().any(|r| r == room);
        let reached = if target.is_everyone() {
            !has(UNIDENTIFIED_ROOM)
        } else {
            target.users.iter().any(|user| has(&user_room(user)))
                || target.rooms.iter().any(|room| has(&public_room(room)))
        };
        reached && !target.except_users.iter().any(|user| has(&user_room(user)))
    }

    #[test]
    fn counts_match_a_brute_force_count_over_random_connections() {
        for _ in 0..200 {
            let mut connections: Vec<Vec<String>> = (0..fastrand::usize(0..40))
                .map(|_| random_connection())
                .collect();
            let mut summary = Summary::default();
            for rooms in &connections {
                summary.apply(&Profile::of(rooms), 1).unwrap();
            }
            // Some leave again, as pages close.
            for _ in 0..fastrand::usize(0..10) {
                if connections.is_empty() {
                    break;
                }
                let rooms = connections.swap_remove(fastrand::usize(..connections.len()));
                summary.apply(&Profile::of(&rooms), -1).unwrap();
            }
            for _ in 0..50 {
                let target = Target {
                    users: random_subset(&USERS),
                    rooms: random_subset(&ROOMS),
                    except_users: random_subset(&USERS),
                };
                let expected = connections
                    .iter()
                    .filter(|rooms| selected(rooms, &target))
                    .count() as u64;
                assert_eq!(summary.recipients(&target), expected, "{target:?}");
            }
            for user in USERS {
                let expected = connections
                    .iter()
                    .filter(|rooms| rooms.contains(&user_room(user)))
                    .count() as u64;
                assert_eq!(summary.connections_of(user), expected);
            }
        }
    }

    #[test]
    fn an_emptied_summary_keeps_nothing() {
        let mut summary = Summary::default();
        let profile = Profile::of([user_room("1"), public_room("a")]);
        summary.apply(&profile, 2).unwrap();
        summary.apply(&profile, -2).unwrap();
        assert!(summary.connections.is_empty());
        assert!(summary.rooms.is_empty());
        assert_eq!(summary.identified, 0);
    }

    #[test]
    fn removing_connections_it_does_not_have_is_inconsistent() {
        let mut summary = Summary::default();
        let profile = Profile::of([user_room("1")]);
        summary.apply(&profile, 1).unwrap();
        assert!(summary.apply(&profile, -2).is_err());
        assert!(summary.apply(&Profile::of([user_room("2")]), -1).is_err());
    }
}

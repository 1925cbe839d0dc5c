//! How users and rooms are named inside the socket.io server.
//!
//! socketioxide has one flat set of room names per namespace. We keep two
//! kinds in it: a user's private room, joined by every connection of that
//! user, and public rooms named by the site. Each kind gets its own prefix,
//! and every name is wrapped on the way in, so no room name the site or its
//! auth backend chooses can ever equal a user's private room: isolation by
//! construction rather than by validation.
//!
//! One more room, [`UNIDENTIFIED_ROOM`], has neither prefix, so no site
//! name can reach it either.

/// The socket.io room holding every connection of `user_id`.
pub fn user_room(user_id: &str) -> String {
    format!("{USER_PREFIX}{user_id}")
}

/// The socket.io room for a site-chosen room name.
pub fn public_room(name: &str) -> String {
    format!("{PUBLIC_PREFIX}{name}")
}

/// True for rooms made by [`user_room`].
pub fn is_user_room(room: &str) -> bool {
    room.starts_with(USER_PREFIX)
}

/// The user whose private room `room` is, if it is one.
pub fn user_of(room: &str) -> Option<&str> {
    room.strip_prefix(USER_PREFIX)
}

/// The site's name for `room`, if it is a room made by [`public_room`].
pub fn site_name_of(room: &str) -> Option<&str> {
    room.strip_prefix(PUBLIC_PREFIX)
}

/// Under `auth_required`, connections whose identity is still being asked
/// in the background wait here; publishes to everyone leave this room out,
/// so such a connection receives nothing until it is identified.
pub const UNIDENTIFIED_ROOM: &str = "unidentified";

/// Connections being sent the messages they missed (see
/// `socketio::resume`): live messages leave them out until the replay has
/// caught up. Neither prefix can make this name.
pub const RESUMING_ROOM: &str = "push:resuming";

const USER_PREFIX: &str = "user:";
const PUBLIC_PREFIX: &str = "room:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_room_cannot_name_a_user_room() {
        for hostile in ["user:42", "room:user:42", "", "42"] {
            assert_ne!(public_room(hostile), user_room("42"));
            assert!(!is_user_room(&public_room(hostile)));
            assert_ne!(public_room(hostile), UNIDENTIFIED_ROOM);
            assert_ne!(user_room(hostile), UNIDENTIFIED_ROOM);
            assert_eq!(site_name_of(&public_room(hostile)), Some(hostile));
            assert_eq!(user_of(&public_room(hostile)), None);
            assert_eq!(user_of(&user_room(hostile)), Some(hostile));
        }
    }
}

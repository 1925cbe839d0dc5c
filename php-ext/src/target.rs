//! From PHP arguments to a publish's [`Target`].
//!
//! PHP code names users by whatever its user table uses, usually an integer
//! id, sometimes a string. On the wire, and in the browser's auth, a user is a
//! string, so integers are written in decimal: user `42` and user `"42"` are
//! the same user. Rooms follow the same rule. Anything else (a float, an
//! array where a name was expected) is an argument error, not a guess.

use std::borrow::Cow;

use ext_php_rs::types::{ZendCallable, ZendHashTable, Zval};
use push_client::{ErrorKind, Target};

use crate::error::PushError;

/// One user id or room name: a string or an integer.
pub fn name(value: &Zval, what: &str) -> Result<String, PushError> {
    let value = value.dereference();
    if let Some(number) = value.long() {
        return Ok(number.to_string());
    }
    if let Some(text) = value.zend_str() {
        return text.as_str().map(str::to_owned).map_err(|_| {
            PushError::new(
                ErrorKind::InvalidArgument,
                format!("{what} must be valid UTF-8"),
            )
        });
    }
    Err(PushError::new(
        ErrorKind::InvalidArgument,
        format!(
            "{what} must be a string or an integer, not {}",
            debug_type(value)
        ),
    ))
}

/// PHP's name for the value's type, as in its own TypeErrors.
fn debug_type(value: &Zval) -> String {
    ZendCallable::try_from_name("get_debug_type")
        .and_then(|get_debug_type| get_debug_type.try_call(vec![value]))
        .ok()
        .and_then(|name| name.string())
        .unwrap_or_else(|| value.get_type().to_string())
}

/// Every value of a PHP array, each a string or an integer. Keys are ignored.
pub fn names(values: &ZendHashTable, what: &str) -> Result<Vec<String>, PushError> {
    values
        .values()
        .map(|value| name(value, &format!("each of {what}")))
        .collect()
}

/// A room name or an array of room names.
pub fn rooms(value: &Zval) -> Result<Vec<String>, PushError> {
    match value.dereference().array() {
        Some(rooms) => names(rooms, "the rooms"),
        None => Ok(vec![name(value, "the room")?]),
    }
}

/// The users to leave out, if any were given.
pub fn except(except_users: Option<&ZendHashTable>) -> Result<Vec<String>, PushError> {
    except_users.map_or(Ok(Vec::new()), |users| names(users, "the excepted users"))
}

/// Builds the target from owned names.
pub fn target<'a>(users: Vec<String>, rooms: Vec<String>, except_users: Vec<String>) -> Target<'a> {
    let owned = |names: Vec<String>| names.into_iter().map(Cow::Owned).collect();
    Target {
        users: owned(users),
        rooms: owned(rooms),
        except_users: owned(except_users),
    }
}

//! Messages become JSON through PHP's own `json_encode`.
//!
//! A message must arrive in the browser exactly as `json_encode` would have
//! written it: `JsonSerializable`, key order, `[]` for an empty array, the
//! same float and string rules. Re-implementing that in Rust could only drift
//! from PHP, so the extension calls the real function. A value that cannot
//! be encoded fails here, before anything is written to the daemon.

use ext_php_rs::boxed::ZBox;
use ext_php_rs::types::{ZendCallable, ZendHashTable, Zval};
use push_client::ErrorKind;

use crate::error::PushError;

/// JSON text produced by `json_encode`, kept in its PHP string.
pub struct Json(Zval);

impl Json {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.zend_str().map_or(&[], |s| s.as_bytes())
    }
}

/// `json_encode($value)` with its default flags, or the reason it failed.
///
/// An exception thrown by a `jsonSerialize()` method is left pending, so it
/// reaches the caller unchanged.
pub fn encode(value: &Zval) -> Result<Json, PushError> {
    let encoded = call("json_encode", vec![value])?;
    if encoded.is_string() {
        return Ok(Json(encoded));
    }
    let reason = call("json_last_error_msg", vec![])?
        .string()
        .unwrap_or_else(|| "unknown error".into());
    Err(PushError::new(
        ErrorKind::Encoding,
        format!(
            "the message cannot be encoded as JSON ({reason}); nothing was sent. Pass only values json_encode() accepts: no resources, INF or NAN, and valid UTF-8 strings"
        ),
    ))
}

/// `json_decode($json, true)`, for the daemon's STATS object.
pub fn decode_object(json: &str) -> Result<ZBox<ZendHashTable>, PushError> {
    let decoded = call("json_decode", vec![&json, &true])?;
    decoded.array().map(ToOwned::to_owned).ok_or_else(|| {
        PushError::new(
            ErrorKind::Protocol,
            "the daemon's STATS reply is not a JSON object; are the extension and daemon versions compatible?",
        )
    })
}

fn call(
    function: &str,
    arguments: Vec<&dyn ext_php_rs::convert::IntoZvalDyn>,
) -> Result<Zval, PushError> {
    ZendCallable::try_from_name(function)
        .and_then(|callable| callable.try_call(arguments))
        .map_err(|error| {
            PushError::new(
                ErrorKind::Encoding,
                format!("calling {function}() failed: {error}"),
            )
        })
}

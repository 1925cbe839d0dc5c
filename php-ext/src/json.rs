//! Messages become JSON through PHP's own `json_encode`.
//!
//! A message must arrive in the browser exactly as `json_encode` would have
//! written it: `JsonSerializable`, key order, `[]` for an empty array, the
//! same float and string rules. Re-implementing that in Rust could only drift
//! from PHP, so the extension calls the real function. A value that cannot
//! be encoded fails here, before anything is written to the daemon.
//!
//! Plain values (arrays of strings, integers, booleans and nulls) are the
//! exception: [`crate::plain_json`] writes exactly what json_encode() would,
//! for a fraction of the cost, and hands everything else back to it.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use ext_php_rs::boxed::ZBox;
use ext_php_rs::ffi::{zend_call_known_function, zend_fetch_function_str, zend_function};
use ext_php_rs::types::{ZendCallable, ZendHashTable, Zval};
use ext_php_rs::zend::ExecutorGlobals;
use push_client::ErrorKind;

use crate::error::PushError;
use crate::plain_json;

/// `json_encode`'s entry in PHP's function table, looked up once.
///
/// Every publish encodes its message, so the lookup by name (a hash of the
/// name, a callability check, an argument vector) is done only on first use.
/// Internal functions are registered at startup and live as long as the
/// process, so the pointer stays valid.
static JSON_ENCODE: AtomicPtr<zend_function> = AtomicPtr::new(ptr::null_mut());

/// A message's JSON text.
pub enum Json {
    /// Written by [`crate::plain_json`].
    Plain(Vec<u8>),
    /// Produced by `json_encode`, kept in its PHP string.
    Php(Zval),
}

impl Json {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Json::Plain(bytes) => bytes,
            Json::Php(encoded) => encoded.zend_str().map_or(&[], |s| s.as_bytes()),
        }
    }
}

/// Room for a typical notification without growing.
const PLAIN_CAPACITY: usize = 256;

/// `json_encode($value)` with its default flags, or the reason it failed.
///
/// An exception thrown by a `jsonSerialize()` method is left pending, so it
/// reaches the caller unchanged.
pub fn encode(value: &Zval) -> Result<Json, PushError> {
    let mut plain = Vec::with_capacity(PLAIN_CAPACITY);
    if plain_json::encode(value, &mut plain) {
        return Ok(Json::Plain(plain));
    }
    let encoded = call_json_encode(value)?;
    if encoded.is_string() {
        return Ok(Json::Php(encoded));
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

/// `json_encode($value)`, called through the cached function entry.
fn call_json_encode(value: &Zval) -> Result<Zval, PushError> {
    let mut function = JSON_ENCODE.load(Ordering::Relaxed);
    if function.is_null() {
        const NAME: &str = "json_encode";
        // SAFETY: the name is valid for its length; the engine returns the
        // function table's entry or null.
        function = unsafe { zend_fetch_function_str(NAME.as_ptr().cast(), NAME.len()) };
        if function.is_null() {
            return Err(PushError::new(
                ErrorKind::Encoding,
                "calling json_encode() failed: the function does not exist",
            ));
        }
        JSON_ENCODE.store(function, Ordering::Relaxed);
    }
    let mut encoded = Zval::new();
    // SAFETY: `function` is the engine's own json_encode, which takes its one
    // argument by value: the engine copies the zval into the call frame and
    // never writes through the pointer.
    unsafe {
        zend_call_known_function(
            function,
            ptr::null_mut(),
            ptr::null_mut(),
            &raw mut encoded,
            1,
            ptr::from_ref(value).cast_mut(),
            ptr::null_mut(),
        );
    }
    // An exception from a jsonSerialize() method stays pending and reaches
    // the caller unchanged.
    if let Some(class) = ExecutorGlobals::pending_exception_class() {
        return Err(PushError::new(
            ErrorKind::Encoding,
            format!("calling json_encode() failed: a PHP exception of class {class} is pending"),
        ));
    }
    Ok(encoded)
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

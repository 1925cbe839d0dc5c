//! Reading C arguments: NUL-terminated strings and arrays of them.
//!
//! This is the only place that dereferences pointers handed in by C. Each
//! function checks for NULL and UTF-8 and names the argument in its error, so
//! a C caller learns which argument was wrong from `push_last_error_message`.

use std::ffi::{CStr, c_char};

use push_client::ErrorKind;

use crate::handle::Failure;

/// A required UTF-8 string.
///
/// # Safety
///
/// `pointer` is NULL or points to a NUL-terminated string that stays valid
/// for `'a`.
pub unsafe fn text<'a>(pointer: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: the caller guarantees the pointer is NULL or a valid C string.
    let bytes = unsafe { bytes(pointer, what)? };
    std::str::from_utf8(bytes)
        .map_err(|_| Failure::new(ErrorKind::InvalidArgument, format!("{what} is not UTF-8")))
}

/// A required NUL-terminated byte string, without its NUL.
///
/// # Safety
///
/// As for [`text`].
pub unsafe fn bytes<'a>(pointer: *const c_char, what: &str) -> Result<&'a [u8], Failure> {
    if pointer.is_null() {
        return Err(Failure::new(
            ErrorKind::InvalidArgument,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: not NULL, and the caller guarantees a NUL-terminated string
    // valid for 'a.
    Ok(unsafe { CStr::from_ptr(pointer) }.to_bytes())
}

/// An array of `len` UTF-8 strings. NULL is allowed when `len` is 0.
///
/// # Safety
///
/// `array` is NULL or points to `len` pointers, each a NUL-terminated string,
/// all valid for `'a`.
pub unsafe fn texts<'a>(
    array: *const *const c_char,
    len: usize,
    what: &str,
) -> Result<Vec<&'a str>, Failure> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if array.is_null() {
        return Err(Failure::new(
            ErrorKind::InvalidArgument,
            format!("{what} is NULL but its length is {len}"),
        ));
    }
    // SAFETY: not NULL, and the caller guarantees `len` readable pointers.
    let pointers = unsafe { std::slice::from_raw_parts(array, len) };
    pointers
        .iter()
        .enumerate()
        // SAFETY: the caller guarantees each element is a valid C string.
        .map(|(index, &pointer)| unsafe { text(pointer, &format!("{what}[{index}]")) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_bad_utf8_name_the_argument() {
        // SAFETY: NULL is allowed.
        let error = unsafe { text(std::ptr::null(), "event") }.unwrap_err();
        assert_eq!(error.message, "event is NULL");

        let invalid = c"\xff";
        // SAFETY: a valid C string literal.
        let error = unsafe { text(invalid.as_ptr(), "event") }.unwrap_err();
        assert_eq!(error.message, "event is not UTF-8");
    }

    #[test]
    fn arrays_are_read_in_order_and_may_be_null_when_empty() {
        let strings = [c"alice".as_ptr(), c"bob".as_ptr()];
        // SAFETY: two valid C strings.
        let read = unsafe { texts(strings.as_ptr(), 2, "users") }.unwrap();
        assert_eq!(read, ["alice", "bob"]);
        // SAFETY: NULL with a length of 0 is allowed.
        assert!(
            unsafe { texts(std::ptr::null(), 0, "users") }
                .unwrap()
                .is_empty()
        );
        // SAFETY: NULL is checked before it is read.
        let error = unsafe { texts(std::ptr::null(), 1, "rooms") }.unwrap_err();
        assert_eq!(error.message, "rooms is NULL but its length is 1");
    }
}

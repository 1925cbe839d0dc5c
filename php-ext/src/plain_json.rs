//! `json_encode()` of plain values, written without calling into PHP.
//!
//! Most messages are arrays of strings, integers, booleans and nulls. For
//! those, what `json_encode()` writes with its default flags follows from a
//! handful of rules, and writing them here takes fewer instructions than
//! calling the engine's encoder (measured with callgrind on the benchmark's
//! message: docs/benchmarks.md, "How the synchronous publish came down to
//! the floor", step 4). Everything else is left to the real
//! `json_encode()` ([`crate::json`]), so that its output and its errors stay
//! PHP's own: floats (PHP's shortest round-trip printing), objects
//! (`JsonSerializable`, public properties, enums), references, strings that
//! are not UTF-8, and nesting deeper than [`MAX_DEPTH`].
//!
//! The rules, as PHP 8.2's ext/json/json_encoder.c applies them with no
//! flags:
//! - `null`, `true`, `false`; integers in decimal;
//! - a string in double quotes, with `"`, `\` and `/` escaped by a
//!   backslash; backspace, form feed, newline, carriage return and tab as
//!   `\b \f \n \r \t`; other bytes below 0x20 as `\u00xx`; every character
//!   beyond ASCII as `\uxxxx`, a surrogate pair beyond U+FFFF; hex digits in
//!   lower case; everything else (DEL, `<`, `&`, `'` included) as it is;
//! - an array whose keys are 0, 1, 2, … in order, or that is empty, as a
//!   JSON array of its values; any other array as an object, integer keys
//!   written as strings.
//!
//! `tests/php/EncodingTest.php` holds the encoder to `json_encode()` byte
//! for byte over thousands of generated values.

use ext_php_rs::ffi::{IS_ARRAY, IS_FALSE, IS_LONG, IS_NULL, IS_STRING, IS_TRUE, IS_UNDEF};
use ext_php_rs::types::{ZendHashTable, ZendStr, Zval};

/// Deeper nesting is left to `json_encode()`, whose own limit (512 levels)
/// then applies as PHP applies it.
const MAX_DEPTH: usize = 64;

/// From Zend/zend_hash.h: the array keeps bare values, keyed by position.
const HASH_FLAG_PACKED: u32 = 1 << 2;

/// Appends `json_encode($value)` to `out` and returns true; or returns
/// false, leaving `out` to be thrown away, when `value` is not plain.
pub fn encode(value: &Zval, out: &mut Vec<u8>) -> bool {
    write_value(value, out, 0)
}

fn write_value(value: &Zval, out: &mut Vec<u8>, depth: usize) -> bool {
    // A reference, like every type not named here, is left to json_encode().
    match type_of(value) {
        IS_STRING => value
            .zend_str()
            .is_some_and(|text| write_string(text.as_bytes(), out)),
        IS_LONG => value.long().is_some_and(|number| {
            write_integer(number, out);
            true
        }),
        IS_ARRAY => {
            depth < MAX_DEPTH
                && value
                    .array()
                    .is_some_and(|array| write_array(array, out, depth + 1))
        }
        IS_NULL => write_literal(b"null", out),
        IS_TRUE => write_literal(b"true", out),
        IS_FALSE => write_literal(b"false", out),
        _ => false,
    }
}

/// The type byte of a zval, one of the engine's `IS_*` constants.
fn type_of(value: &Zval) -> u32 {
    // SAFETY: reading the type byte of an initialised zval.
    u32::from(unsafe { value.u1.v.type_ })
}

fn write_literal(literal: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(literal);
    true
}

fn write_integer(number: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        start -= 1;
        // A remainder of 10 is below 10: the cast keeps it whole.
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

fn write_array(array: &ZendHashTable, out: &mut Vec<u8>, depth: usize) -> bool {
    let is_list = elements(array)
        .enumerate()
        .all(|(position, (key, _))| matches!(key, Key::Index(index) if Ok(index) == i64::try_from(position)));
    out.push(if is_list { b'[' } else { b'{' });
    for (count, (key, value)) in elements(array).enumerate() {
        if count > 0 {
            out.push(b',');
        }
        if !is_list {
            match key {
                Key::Index(index) => {
                    out.push(b'"');
                    write_integer(index, out);
                    out.push(b'"');
                }
                Key::Name(name) => {
                    if !write_string(name.as_bytes(), out) {
                        return false;
                    }
                }
            }
            out.push(b':');
        }
        if !write_value(value, out, depth) {
            return false;
        }
    }
    out.push(if is_list { b']' } else { b'}' });
    true
}

/// An array element's key.
enum Key<'a> {
    Index(i64),
    Name(&'a ZendStr),
}

/// The elements of `array` in order, each with its key, skipping deleted
/// ones.
fn elements(array: &ZendHashTable) -> impl Iterator<Item = (Key<'_>, &Zval)> {
    // SAFETY: `u` is a union of two views of the same 32 bits of flags.
    let packed = unsafe { array.u.flags } & HASH_FLAG_PACKED != 0;
    let used = usize::try_from(array.nNumUsed).unwrap_or(0);
    (0..used).filter_map(move |slot| {
        // SAFETY: the engine keeps `nNumUsed` initialised slots: bare
        // values for a packed array, buckets otherwise. They are not
        // changed while the array is borrowed (no PHP code runs meanwhile),
        // and a bucket's key is null or a live string.
        let (key, value) = unsafe {
            if packed {
                let value = &*array.__bindgen_anon_1.arPacked.add(slot);
                (Key::Index(i64::try_from(slot).unwrap_or(i64::MAX)), value)
            } else {
                let bucket = &*array.__bindgen_anon_1.arData.add(slot);
                let key = match bucket.key.as_ref() {
                    Some(name) => Key::Name(name),
                    // An integer key, stored as its two's complement bits.
                    None => Key::Index(bucket.h as i64),
                };
                (key, &bucket.val)
            }
        };
        // Deleted: the slot waits for the array to be compacted.
        (type_of(value) != IS_UNDEF).then_some((key, value))
    })
}

/// Which bytes go into a JSON string as they are: printable ASCII and DEL,
/// except `"`, `\` and `/`.
static AS_IS: [bool; 256] = {
    let mut as_is = [false; 256];
    let mut byte = 0x20;
    while byte < 0x80 {
        as_is[byte] = !matches!(byte as u8, b'"' | b'\\' | b'/');
        byte += 1;
    }
    as_is
};

/// Writes `bytes` as a JSON string; false if they are not UTF-8, which
/// json_encode() reports as an error of its own.
fn write_string(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Runs of bytes that need no escape are copied whole. The rest of the
    // string is checked for UTF-8 once, at its first byte beyond ASCII.
    let (mut copied, mut at) = (0, 0);
    let mut unicode: Option<(usize, &str)> = None;
    while at < bytes.len() {
        let byte = bytes[at];
        if AS_IS[usize::from(byte)] {
            at += 1;
            continue;
        }
        out.extend_from_slice(&bytes[copied..at]);
        if byte < 0x80 {
            match byte {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'/' => out.extend_from_slice(b"\\/"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                control => write_unicode_escape(u16::from(control), out),
            }
            at += 1;
        } else {
            if unicode.is_none() {
                // `at` follows whole characters, so the rest starts one.
                let Ok(rest) = std::str::from_utf8(&bytes[at..]) else {
                    return false;
                };
                unicode = Some((at, rest));
            }
            let Some(character) = unicode
                .and_then(|(start, text)| text.get(at - start..))
                .and_then(|rest| rest.chars().next())
            else {
                return false;
            };
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                write_unicode_escape(*unit, out);
            }
            at += character.len_utf8();
        }
        copied = at;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
    true
}

/// `\u` and four lower-case hex digits.
fn write_unicode_escape(unit: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

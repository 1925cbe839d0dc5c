//! A C ABI over push-client, so any language that can call C can publish.
//!
//! The PHP extension is the fast path for PHP, but it has to be installed
//! into PHP. This library needs nothing but `dlopen`: PHP's FFI, Python's
//! ctypes or a C program can load `libpush_ffi.so` and declare the functions
//! from `include/push_ffi.h`, which cbindgen generates from this crate.
//!
//! The functions here are thin: each checks its handle, reads its arguments
//! with [`c_args`], calls [`push_client::Client`] and records the outcome on
//! the handle ([`handle`]). Calls that can fail return -1 (NULL for the one
//! that answers with a string) and leave the error code ([`error_code`]) and
//! a message on the handle. No panic crosses into
//! C: every function catches unwinding at the boundary and reports it as an
//! error.
//!
//! The delivery guarantee is push-client's: the connection is kept and
//! re-opened after a daemon restart, and a publish is resent only if the
//! daemon provably never received it, so a message is never delivered twice.

pub mod c_args;
pub mod error_code;
pub mod handle;

use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr;
use std::time::Duration;

use push_client::{Client, ClientOptions, ErrorKind, Publish, Target};

pub use crate::error_code::PushErrorCode;
use crate::handle::Failure;
pub use crate::handle::PushClient;

/// Used when `push_open` is given a timeout of 0: long enough for a busy
/// daemon, short enough that a dead one cannot hang the caller.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates a handle. `socket_path` NULL means the daemon's default socket;
/// `timeout_ms` 0 means one second. The connection is opened by the first
/// call that needs it, so this fails only if memory runs out (NULL).
///
/// # Safety
///
/// `socket_path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_open(socket_path: *const c_char, timeout_ms: u32) -> *mut PushClient {
    let open = || {
        let mut options = ClientOptions::default();
        if !socket_path.is_null() {
            // SAFETY: not NULL, and the caller guarantees a C string.
            let path = unsafe { c_args::bytes(socket_path, "socket_path") }?;
            options.socket_path = PathBuf::from(OsStr::from_bytes(path));
        }
        options.timeout = match timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        options.client_name = concat!("push-ffi/", env!("CARGO_PKG_VERSION")).to_owned();
        Ok::<_, Failure>(Box::into_raw(Box::new(PushClient::new(Client::new(
            options,
        )))))
    };
    match catch_unwind(open) {
        Ok(Ok(handle)) => handle,
        Ok(Err(_)) | Err(_) => ptr::null_mut(),
    }
}

/// Publishes `payload_json` as `event` in namespace `ns` and returns the
/// number of connections it reached, or -1. `push_last_count_partial` then
/// says whether that number left out cluster nodes.
///
/// The target: the connections of `users`, plus the members of `rooms`,
/// minus the connections of `except_users`. With no users and no rooms the
/// message goes to everyone in the namespace (minus `except_users`). An
/// array may be NULL when its length is 0.
///
/// # Safety
///
/// `client` is NULL or a handle from `push_open` not yet closed. Every string
/// is NUL-terminated; each array holds its length's worth of strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_send(
    client: *mut PushClient,
    ns: *const c_char,
    event: *const c_char,
    payload_json: *const c_char,
    users: *const *const c_char,
    users_len: usize,
    rooms: *const *const c_char,
    rooms_len: usize,
    except_users: *const *const c_char,
    except_users_len: usize,
) -> i64 {
    // SAFETY: the caller guarantees `client` and every argument, as documented.
    unsafe {
        with_handle(client, |handle| {
            let publish = Publish {
                namespace: c_args::text(ns, "ns")?,
                event: c_args::text(event, "event")?,
                target: Target {
                    users: into_cows(c_args::texts(users, users_len, "users")?),
                    rooms: into_cows(c_args::texts(rooms, rooms_len, "rooms")?),
                    except_users: into_cows(c_args::texts(
                        except_users,
                        except_users_len,
                        "except_users",
                    )?),
                },
                payload: c_args::bytes(payload_json, "payload_json")?,
            };
            Ok(handle.client.publish(&publish)?)
        })
    }
}

/// How many connections `user` has in namespace `ns` (0: offline), or -1.
/// `push_last_count_partial` then says whether that number left out cluster
/// nodes.
///
/// # Safety
///
/// As for [`push_send`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_online(
    client: *mut PushClient,
    ns: *const c_char,
    user: *const c_char,
) -> i64 {
    // SAFETY: the caller guarantees `client` and the strings, as documented.
    unsafe {
        with_handle(client, |handle| {
            let ns = c_args::text(ns, "ns")?;
            let user = c_args::text(user, "user")?;
            Ok(handle.client.online(ns, user)?)
        })
    }
}

/// The current recovery offset of namespace `ns`, or NULL (see
/// `push_last_error_code`; `PUSH_ERROR_RECOVERY_OFF` when the daemon runs
/// without recovery). A page rendered with it and connecting with it
/// (`auth: {offset}`) receives every message published after this call.
/// The string belongs to the handle and is valid until the next call on it;
/// copy it to keep it.
///
/// # Safety
///
/// As for [`push_send`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_position(
    client: *mut PushClient,
    ns: *const c_char,
) -> *const c_char {
    // SAFETY: the caller guarantees `client` and `ns`, as documented.
    let Some(handle) = (unsafe { client.as_mut() }) else {
        return ptr::null();
    };
    let outcome = catching_panics(|| {
        // SAFETY: the caller guarantees `ns` is NULL or a C string.
        let ns = unsafe { c_args::text(ns, "ns") }?;
        Ok(handle.client.position(ns)?)
    });
    handle.finish_text(outcome)
}

/// 1 when the count the last `push_send` or `push_online` on `client`
/// returned is partial, else 0 (also after a failed call, which has no
/// count).
///
/// In a cluster (push-core's Redis adapter) the daemon adds up every node's
/// answer within a bounded wait; partial means some node did not answer in
/// time, or the daemon could not reach the cluster, so the count is a lower
/// bound: the message may have reached more connections. A single daemon
/// never answers partial.
///
/// # Safety
///
/// `client` is NULL or a handle from `push_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_last_count_partial(client: *const PushClient) -> i32 {
    // SAFETY: the caller guarantees the pointer is NULL or a live handle.
    match unsafe { client.as_ref() } {
        Some(handle) => i32::from(handle.last_count_partial()),
        None => 0,
    }
}

/// Why the last call on `client` failed; `PUSH_OK` if it did not.
///
/// # Safety
///
/// `client` is NULL or a handle from `push_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_last_error_code(client: *const PushClient) -> PushErrorCode {
    // SAFETY: the caller guarantees the pointer is NULL or a live handle.
    match unsafe { client.as_ref() } {
        Some(handle) => handle.last_error_code(),
        None => PushErrorCode::PUSH_ERROR_INVALID_ARGUMENT,
    }
}

/// The last error's message, "" if the last call succeeded. The string
/// belongs to the handle and is valid until the next call on it.
///
/// # Safety
///
/// `client` is NULL or a handle from `push_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_last_error_message(client: *const PushClient) -> *const c_char {
    // SAFETY: the caller guarantees the pointer is NULL or a live handle.
    match unsafe { client.as_ref() } {
        Some(handle) => handle.last_error_message().as_ptr(),
        None => c"the push client handle is NULL".as_ptr(),
    }
}

/// Closes the connection and frees the handle. NULL is ignored.
///
/// # Safety
///
/// `client` is NULL or a handle from `push_open`, not used again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn push_close(client: *mut PushClient) {
    if client.is_null() {
        return;
    }
    // SAFETY: the handle came from Box::into_raw in push_open and the caller
    // gives up its pointer.
    let handle = unsafe { Box::from_raw(client) };
    // Dropping closes the socket; nothing in it should panic, but if it did
    // the panic must stay on this side.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(handle)));
}

/// Runs one call on a live handle, catching panics, and records its outcome.
///
/// # Safety
///
/// `client` is NULL or a live handle from `push_open`.
unsafe fn with_handle(
    client: *mut PushClient,
    call: impl FnOnce(&mut PushClient) -> Result<push_client::Count, Failure>,
) -> i64 {
    // SAFETY: the caller guarantees the pointer is NULL or a live handle
    // used by one thread at a time.
    let Some(handle) = (unsafe { client.as_mut() }) else {
        return -1;
    };
    let outcome = catching_panics(|| call(&mut *handle));
    handle.finish(outcome)
}

/// Runs `call`, turning a panic into a failure: no panic may unwind into C.
fn catching_panics<T>(call: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::new(
            ErrorKind::Protocol,
            format!("push-ffi failed internally ({reason}); please report this bug"),
        ))
    })
}

fn into_cows(names: Vec<&str>) -> Vec<std::borrow::Cow<'_, str>> {
    names.into_iter().map(Into::into).collect()
}

//! The `push` PHP extension: publish to push-core from PHP in microseconds.
//!
//! The alternatives PHP has for reaching browsers in real time cost an HTTP
//! request, a socket.io handshake or a Redis hop per message. This extension
//! links push-client directly and speaks the daemon's own protocol over its
//! Unix socket, on a connection the PHP process keeps between requests.
//!
//! The pieces, each in its own module:
//!
//! - [`push_client_class`]: the `PushClient` class PHP code uses;
//! - [`connections`]: the per-process connection table behind it;
//! - [`target`]: PHP user ids and rooms into a publish target;
//! - [`json`]: messages encoded by PHP's own `json_encode`, and
//!   [`plain_json`] for plain values, byte for byte the same;
//! - [`error`]: `PushException` and its stable codes;
//! - [`settings`]: the `push.*` INI settings.
//!
//! This file wires them into the module: startup registers the settings and
//! the exception class, request shutdown releases what a request leaves
//! behind, and the info function feeds `php --ri push`.

#![cfg_attr(windows, feature(abi_vectorcall))]

mod connections;
mod error;
mod json;
mod plain_json;
mod push_client_class;
mod settings;
mod target;

use ext_php_rs::error::php_error;
use ext_php_rs::flags::ErrorType;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, ModuleEntry};
use ext_php_rs::{info_table_end, info_table_header, info_table_row, info_table_start};
use push_client::PROTOCOL_VERSION;

use crate::push_client_class::PushClient;

/// The name PHP knows the extension by (`php -m`, `extension_loaded('push')`).
const EXTENSION_NAME: &str = "push";

/// PHP's `SUCCESS` and `FAILURE` for startup and shutdown hooks.
const SUCCESS: i32 = 0;
const FAILURE: i32 = -1;

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .name(EXTENSION_NAME)
        .class::<PushClient>()
        .request_shutdown_function(request_shutdown)
        .info_function(module_info)
}

/// MINIT: the INI settings and `PushException`. `PushClient` is registered
/// by ext-php-rs right after.
fn startup(_type: i32, module_number: i32) -> i32 {
    IniEntryDef::register(settings::INI_ENTRIES.as_slice(), module_number);
    match error::register_class() {
        Ok(()) => SUCCESS,
        Err(cause) => {
            php_error(
                &ErrorType::CoreWarning,
                &format!("push: cannot register PushException: {cause}"),
            );
            FAILURE
        }
    }
}

/// RSHUTDOWN: drops connections that are not persistent.
extern "C" fn request_shutdown(_type: i32, _module_number: i32) -> i32 {
    // A panic must not unwind into the engine; the connection table is then
    // simply left as it is.
    match std::panic::catch_unwind(connections::end_request) {
        Ok(()) => SUCCESS,
        Err(_) => FAILURE,
    }
}

/// `php --ri push` and `phpinfo()`.
extern "C" fn module_info(_module: *mut ModuleEntry) {
    let ini = ExecutorGlobals::get().ini_values();
    let setting = |name: &str| {
        ini.get(name)
            .cloned()
            .flatten()
            .unwrap_or_default()
            .replace('\0', "")
    };
    info_table_start!();
    info_table_row!("push support", "enabled");
    info_table_row!("version", env!("CARGO_PKG_VERSION"));
    info_table_row!("protocol version", PROTOCOL_VERSION.to_string());
    info_table_end!();
    info_table_start!();
    info_table_header!("Directive", "Value");
    for name in [settings::SOCKET, settings::TIMEOUT_MS, settings::PERSISTENT] {
        info_table_row!(name, setting(name));
    }
    info_table_end!();
}

//! `PushException`, the one exception class of the extension, and the Rust
//! error that becomes it.
//!
//! Every failure reaches PHP as a `PushException` whose code is one of
//! push-client's stable [`ErrorKind`] numbers, exposed as class constants
//! (`PushException::UNREACHABLE`, ...), and whose message says what to do.
//!
//! The class is registered with a plain `ClassBuilder` rather than
//! `#[php_class]`: it has no Rust state, so it keeps `Exception`'s own object
//! handlers and constructor and behaves exactly like an exception class
//! written in PHP (constructible, file/line/trace filled in).

use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::ConstantFlags;
use ext_php_rs::types::{ZendObject, Zval};
use ext_php_rs::zend::{ClassEntry, ce};
use push_client::{ClientError, ErrorKind, PROTOCOL_VERSION};
use thiserror::Error;

pub const CLASS_NAME: &str = "PushException";

/// A failure on its way to PHP: a stable kind and a message for the reader.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct PushError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PushError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The `PushException` object, as a value (for `flush()` results).
    pub fn into_object(self) -> Zval {
        let object = ZendObject::new(exception_class());
        let code = i64::from(self.kind.code());
        // Exception::__construct sets the protected message and code.
        let constructed = object.try_call_method("__construct", vec![&self.message, &code]);
        match constructed.and_then(|_| object.into_zval(false)) {
            Ok(value) => value,
            // Only an engine out of memory gets here, and it bails out first.
            Err(_) => Zval::null(),
        }
    }
}

impl From<ClientError> for PushError {
    /// The client's message, plus advice where the fix is on the PHP side.
    fn from(error: ClientError) -> Self {
        let kind = error.kind();
        let advice = match kind {
            ErrorKind::UnknownNamespace => {
                "; give PushClient's constructor, setNamespace() or position() a namespace the daemon serves"
                    .to_owned()
            }
            ErrorKind::RecoveryOff => {
                "; position() needs missed-message recovery: start push-core with --recovery-window above 0 (the default is 2m), or render the page without an offset"
                    .to_owned()
            }
            // The daemon's message says which side to upgrade.
            ErrorKind::VersionMismatch => {
                format!("; the PHP client speaks publish protocol {PROTOCOL_VERSION}")
            }
            _ => String::new(),
        };
        Self::new(kind, format!("{error}{advice}"))
    }
}

impl From<PushError> for PhpException {
    fn from(error: PushError) -> Self {
        PhpException::new(error.message, error.kind.code(), exception_class())
    }
}

/// Registers `class PushException extends \Exception` with one constant per
/// [`ErrorKind`]. Called from the module startup.
pub fn register_class() -> ext_php_rs::error::Result<()> {
    let mut class = ClassBuilder::new(CLASS_NAME)
        .extends((ce::exception, "\\Exception"))
        // Nothing to remember: the class is looked up by name when thrown.
        .registration(|_, _| {});
    for kind in ErrorKind::ALL {
        class = class.constant(
            kind.name(),
            i64::from(kind.code()),
            &[],
            ConstantFlags::Public,
        )?;
    }
    class.register()
}

fn exception_class() -> &'static ClassEntry {
    // Registered at startup, so the lookup only fails if startup failed, and
    // then the module is not loaded at all; a plain Exception is still right.
    ClassEntry::try_find(CLASS_NAME).unwrap_or_else(ce::exception)
}

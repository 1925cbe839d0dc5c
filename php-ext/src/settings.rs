//! The extension's INI settings: where the daemon is and how long to wait.
//!
//! They follow the PHP convention `extension.setting` and may be changed at
//! every level (php.ini, pool config, `ini_set`). A `PushClient` reads them
//! once, when it is constructed, through PHP's own `ini_get`, so the values
//! are exactly the ones `ini_get` and `php --ri push` show.

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;

use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::types::ZendCallable;
use ext_php_rs::zend::{IniEntryDef, IniEntryDefs};
use push_client::{DEFAULT_SOCKET_PATH, ErrorKind};

use crate::error::PushError;

pub const SOCKET: &str = "push.socket";
pub const TIMEOUT_MS: &str = "push.timeout_ms";
pub const PERSISTENT: &str = "push.persistent";

/// The daemon's own default, so an unconfigured PHP finds an unconfigured
/// daemon. Checked against push-client's constant below.
const DEFAULT_SOCKET: &CStr = c"/run/push-core/push.sock";

const _: () = assert!(
    bytes_equal(DEFAULT_SOCKET.to_bytes(), DEFAULT_SOCKET_PATH.as_bytes()),
    "push.socket's default must be push_client::DEFAULT_SOCKET_PATH"
);

/// One second bounds a request that talks to a daemon that is down or stuck,
/// while leaving a loaded daemon far more time than a publish ever takes.
const DEFAULT_TIMEOUT_MS: &CStr = c"1000";

/// The table PHP keeps for the life of the process.
pub static INI_ENTRIES: IniEntryDefs<4> = IniEntryDefs::new([
    IniEntryDef::new(c"push.socket", DEFAULT_SOCKET, IniEntryPermission::All),
    IniEntryDef::new(
        c"push.timeout_ms",
        DEFAULT_TIMEOUT_MS,
        IniEntryPermission::All,
    ),
    IniEntryDef::new(c"push.persistent", c"1", IniEntryPermission::All),
    IniEntryDef::end(),
]);

/// The settings in effect for this request.
#[derive(Debug, Clone)]
pub struct Settings {
    pub socket_path: PathBuf,
    pub timeout: Duration,
    /// Keep the connection after the request ends (php-fpm, mod_php).
    pub persistent: bool,
}

impl Settings {
    /// Reads the current values with `ini_get`.
    pub fn current() -> Result<Self, PushError> {
        let timeout_text = ini_get(TIMEOUT_MS)?;
        let timeout_ms: u64 = timeout_text.trim().parse().map_err(|_| {
            PushError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{TIMEOUT_MS} must be a whole number of milliseconds, not '{timeout_text}'; fix it in php.ini or ini_set()"
                ),
            )
        })?;
        Ok(Self {
            socket_path: PathBuf::from(ini_get(SOCKET)?),
            timeout: Duration::from_millis(timeout_ms),
            persistent: parse_bool(&ini_get(PERSISTENT)?),
        })
    }
}

fn ini_get(name: &str) -> Result<String, PushError> {
    let unavailable = |detail: String| {
        PushError::new(
            ErrorKind::InvalidArgument,
            format!("cannot read the INI setting {name}: {detail}"),
        )
    };
    let ini_get = ZendCallable::try_from_name("ini_get").map_err(|e| unavailable(e.to_string()))?;
    let value = ini_get
        .try_call(vec![&name])
        .map_err(|e| unavailable(e.to_string()))?;
    value
        .zend_str()
        .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
        .ok_or_else(|| unavailable("the push extension's settings are not registered".into()))
}

/// PHP's reading of a boolean INI value (`zend_ini_parse_bool`): "on",
/// "yes" and "true" in any case, or a non-zero number.
fn parse_bool(value: &str) -> bool {
    let value = value.trim();
    ["on", "yes", "true"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
        || leading_integer(value) != 0
}

/// Like C's `atoi`: the digits at the start, 0 when there are none.
fn leading_integer(value: &str) -> i64 {
    let digits: String = value
        .chars()
        .enumerate()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))
        .map(|(_, c)| c)
        .collect();
    digits.parse().unwrap_or(0)
}

const fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

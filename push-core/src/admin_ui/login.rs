//! Who may join `/admin`: the Admin UI's basic auth and its sessions.
//!
//! The UI sends `{ username, password }` in the socket.io auth object, or
//! `{ sessionId }` when it comes back (a page reload keeps the id in its
//! local storage). As `instrument()` does, a good password is answered
//! with a new session id in a `session` event, and anything else with the
//! connect error `invalid credentials`, which the UI shows on its login
//! form.
//!
//! Guessing is held back three ways:
//! - every attempt spends one of the address's `handshakes_per_ip_per_minute`,
//!   as a new engine.io session does, so one engine.io session cannot try
//!   passwords without end by joining `/admin` again and again;
//! - bcrypt is slow on purpose, and checks run one at a time on a blocking
//!   thread ([`PASSWORD_CHECKS_AT_ONCE`]): guessing can never take more
//!   than one core, and the runtime that serves browsers never waits;
//! - a wrong user name costs the same bcrypt check as a wrong password, so
//!   timing does not tell which was wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::config::PasswordHash;

/// Password checks run at once. bcrypt takes tens to hundreds of
/// milliseconds of CPU by design; one at a time leaves the other core to
/// browsers whatever a guesser sends.
const PASSWORD_CHECKS_AT_ONCE: usize = 1;

/// How long a session id lets the UI back in without the password: a
/// working day and a night, as `instrument()`'s Redis store keeps them.
const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Sessions remembered at once; past this the oldest is forgotten (its UI
/// asks for the password again). Each is a few dozen bytes.
const MAX_SESSIONS: usize = 1024;

/// What the UI sends when it joins `/admin`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub session_id: Option<String>,
}

/// How a login went.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Let in; with good credentials, a new session id for the `session`
    /// event (none when the UI came back with a valid one).
    Admitted {
        new_session: Option<String>,
    },
    Refused,
}

/// Checks logins against the configured user name and bcrypt hash, and
/// keeps the sessions it hands out.
pub struct Login {
    username: String,
    password_hash: PasswordHash,
    checks: Semaphore,
    /// Session id to when it was handed out.
    sessions: Mutex<HashMap<String, Instant>>,
}

impl Login {
    pub fn new(username: String, password_hash: PasswordHash) -> Arc<Self> {
        Arc::new(Self {
            username,
            password_hash,
            checks: Semaphore::new(PASSWORD_CHECKS_AT_ONCE),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Decides a login: a session id first, then the user name and
    /// password.
    pub async fn check(self: &Arc<Self>, auth: LoginAuth) -> LoginOutcome {
        if let Some(id) = &auth.session_id
            && self.session_is_valid(id)
        {
            return LoginOutcome::Admitted { new_session: None };
        }
        let (Some(username), Some(password)) = (auth.username, auth.password) else {
            return LoginOutcome::Refused;
        };
        if self.credentials_match(username, password).await {
            LoginOutcome::Admitted {
                new_session: self.new_session(),
            }
        } else {
            LoginOutcome::Refused
        }
    }

    async fn credentials_match(self: &Arc<Self>, username: String, password: String) -> bool {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_turn) = self.checks.acquire().await else {
            return false;
        };
        let login = self.clone();
        let checked = tokio::task::spawn_blocking(move || {
            // Both checks always run: a wrong name takes as long as a
            // wrong password.
            let password_matches =
                bcrypt::verify(password.as_bytes(), login.password_hash.expose()).unwrap_or(false);
            let name_matches = same_bytes(username.as_bytes(), login.username.as_bytes());
            password_matches && name_matches
        })
        .await;
        checked.unwrap_or(false)
    }

    fn session_is_valid(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(id)
            .is_some_and(|given| given.elapsed() < SESSION_LIFETIME)
    }

    /// A new session id, remembered; none if the system has no randomness
    /// to give (the UI then asks for the password at its next connect).
    fn new_session(&self) -> Option<String> {
        let id = random_session_id()?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, given| given.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, given)| **given)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), Instant::now());
        Some(id)
    }
}

/// 128 random bits from the operating system, as hex: a session id is a
/// bearer credential, so it must not be guessable.
fn random_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(error) = getrandom::fill(&mut bytes) {
        tracing::error!(%error, "no randomness for an Admin UI session id");
        return None;
    }
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Compares in a time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "correct horse" at cost 4, bcrypt's cheapest, from PHP's
    /// `password_hash`.
    const HASH: &str = "$2y$04$TzNigAPReA7mzVj4l26rkuGISuk67OHMdaIInV/vz/vMrcFnmGI2a";

    fn login() -> Arc<Login> {
        Login::new("admin".to_owned(), HASH.parse().unwrap())
    }

    fn credentials(username: &str, password: &str) -> LoginAuth {
        LoginAuth {
            username: Some(username.to_owned()),
            password: Some(password.to_owned()),
            session_id: None,
        }
    }

    #[tokio::test]
    async fn good_credentials_open_a_session_that_lets_the_ui_back_in() {
        let login = login();
        let LoginOutcome::Admitted {
            new_session: Some(id),
        } = login.check(credentials("admin", "correct horse")).await
        else {
            panic!("refused good credentials");
        };
        assert_eq!(id.len(), 32);
        let back = LoginAuth {
            session_id: Some(id),
            ..LoginAuth::default()
        };
        assert_eq!(
            login.check(back).await,
            LoginOutcome::Admitted { new_session: None }
        );
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let login = login();
        for auth in [
            credentials("admin", "wrong"),
            credentials("root", "correct horse"),
            credentials("", ""),
            LoginAuth::default(),
            LoginAuth {
                session_id: Some("0123456789abcdef0123456789abcdef".to_owned()),
                ..LoginAuth::default()
            },
        ] {
            assert_eq!(login.check(auth).await, LoginOutcome::Refused);
        }
    }

    #[test]
    fn the_oldest_session_makes_room() {
        let login = login();
        let first = login.new_session().unwrap();
        for _ in 0..MAX_SESSIONS {
            login.new_session();
        }
        assert!(!login.session_is_valid(&first));
        assert_eq!(login.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }
}

//! Asking the site who a connecting browser is.
//!
//! At each socket.io connect the daemon sends `GET auth_url` to the site with
//! the browser's `Cookie` header unchanged, `X-Forwarded-For` and
//! `X-Push-Namespace`. The site answers `200 {"user_id": ..., "rooms": [...]}`
//! for a logged-in user, or `401`/`403` for a guest. Anything else (a
//! timeout, a 5xx, a redirect, a body that is not that JSON) means the site
//! could not be asked; what happens then is the connect handler's decision,
//! not this module's.
//!
//! Cookies go to the configured URL and nowhere else: redirects are never
//! followed, so a misconfigured or compromised endpoint cannot bounce them to
//! another host.
//!
//! The site is protected from us too: answers are cached, lookups of the
//! same cookies at the same moment share one call, at most
//! `auth_max_concurrency` calls are in flight, and a circuit breaker stops
//! calls to a site that keeps failing.

mod breaker;
mod cache;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, COOKIE, HeaderValue, USER_AGENT};
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::Semaphore;

use self::breaker::CircuitBreaker;
use self::cache::{AuthCache, LookupError, Source};
use crate::config::{AuthRetrySettings, AuthSettings};
use crate::metrics::Metrics;
use crate::outcomes::AuthOutcome;

/// The auth answer is tiny JSON; anything bigger is a misconfigured endpoint
/// (an HTML login page, say), and reading it all would only cost memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Longest user id accepted; ids are used in room names and logs.
const MAX_USER_ID_LEN: usize = 256;

/// Who waits for an answer, which decides how long it may queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A browser's connect is waiting: bounded by `auth_timeout`.
    Connect,
    /// A retry for a connection that is already admitted.
    Background,
}

/// A user as identified by the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// Public rooms this connection joins, as named by the site.
    pub rooms: Vec<String>,
}

/// What the site said about one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    User(Identity),
    Guest,
    /// The site could not be asked; the text says why, for the log.
    Unavailable(String),
}

/// What we know about a connecting browser, to forward to the site.
#[derive(Debug)]
pub struct Handshake<'a> {
    pub namespace: &'a str,
    /// The browser's Cookie header, exactly as received.
    pub cookie: Option<&'a str>,
    pub forwarded_for: String,
}

#[derive(Debug, Error)]
#[error("cannot build the HTTP client for the auth URL: {0}")]
pub struct AuthSetupError(#[from] reqwest::Error);

/// The authenticator in force: `None` while no auth URL is set. A reload
/// that changes an auth setting puts a new one in place (with an empty
/// cache and a closed breaker); calls already made to the old one finish
/// there.
#[derive(Default)]
pub struct CurrentAuthenticator(ArcSwapOption<Authenticator>);

impl CurrentAuthenticator {
    pub fn new(authenticator: Option<Arc<Authenticator>>) -> Self {
        Self(ArcSwapOption::new(authenticator))
    }

    pub fn get(&self) -> Option<Arc<Authenticator>> {
        self.0.load_full()
    }

    pub fn set(&self, authenticator: Option<Arc<Authenticator>>) {
        self.0.store(authenticator);
    }
}

/// Calls the site's auth URL, with a cache in front.
pub struct Authenticator {
    http: reqwest::Client,
    settings: AuthSettings,
    cache: AuthCache,
    in_flight: Semaphore,
    breaker: CircuitBreaker,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, metrics: Arc<Metrics>) -> Result<Self, AuthSetupError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            cache: AuthCache::new(settings.cache_ttl, settings.cache_size),
            in_flight: Semaphore::new(settings.max_concurrency),
            breaker: CircuitBreaker::default(),
            settings,
            metrics,
        })
    }

    /// True when guests are refused rather than served broadcasts.
    /// How connections it could not identify at connect are asked about
    /// again.
    pub fn retry(&self) -> AuthRetrySettings {
        self.settings.retry
    }

    pub fn required(&self) -> bool {
        self.settings.required
    }

    /// Who is this browser? Answers from the cache, or from an identical
    /// lookup's call in flight, when it can.
    pub async fn identify(&self, handshake: &Handshake<'_>, urgency: Urgency) -> Answer {
        // Without cookies there is no session for the site to find, so
        // asking would only add load: such a browser is a guest.
        let Some(cookie) = handshake.cookie.filter(|c| !c.trim().is_empty()) else {
            return Answer::Guest;
        };
        let key = AuthCache::key(handshake.namespace, cookie);
        // A connect may find a background lookup's call in flight, and those
        // queue far longer for a slot than a handshake may wait. It waits for
        // it as long as its own lookup could take (a slot, then a call, each
        // up to auth_timeout), then is handled like any other failure.
        let patience = match urgency {
            Urgency::Connect => Some(self.settings.timeout.saturating_mul(2)),
            Urgency::Background => None,
        };
        let lookup = self
            .cache
            .get_or_ask(key, self.ask(handshake, cookie, urgency), patience);
        match lookup.await {
            Ok((verdict, source)) => {
                match source {
                    Source::Cache => self.metrics.auth_cache_hit(),
                    Source::Merged => self.metrics.auth_merged(),
                    Source::Asked => {}
                }
                verdict.map_or(Answer::Guest, Answer::User)
            }
            Err(LookupError::Failed(reason)) => Answer::Unavailable(reason.to_string()),
            Err(LookupError::GaveUpWaiting(waited)) => Answer::Unavailable(format!(
                "the call in flight for the same cookies did not end within {waited:?}"
            )),
        }
    }

    /// One call to the site, within the concurrency limit and the breaker.
    /// `Err` means the site could not be asked, with the reason for the log.
    async fn ask(
        &self,
        handshake: &Handshake<'_>,
        cookie: &str,
        urgency: Urgency,
    ) -> Result<Option<Identity>, String> {
        if self.breaker.is_open() {
            return Err(self.skip_failing_site());
        }
        let started = Instant::now();
        let slot_wait = match urgency {
            // Waiting for a free slot counts against the same timeout as the call.
            Urgency::Connect => self.settings.timeout,
            // Nobody's handshake waits on a background lookup, so it may
            // queue far longer (auth_retry_slot_wait): a storm's backlog
            // then drains at the pace the site can take, in arrival order,
            // instead of timing out and coming back. Past it the attempt
            // counts as failed and is retried later, like any other failure.
            Urgency::Background => self.settings.retry.slot_wait,
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(slot_wait, self.in_flight.acquire()).await
        else {
            self.metrics
                .auth_call(AuthOutcome::Timeout, started.elapsed());
            return Err(format!(
                "not asked: {} calls were already in flight for {slot_wait:?} (auth_max_concurrency)",
                self.settings.max_concurrency
            ));
        };
        // The site may have been declared down while this call waited.
        if !self.breaker.allow() {
            return Err(self.skip_failing_site());
        }
        let (outcome, answer) = self.ask_site(handshake, cookie).await;
        self.metrics.auth_call(outcome, started.elapsed());
        let succeeded = matches!(outcome, AuthOutcome::User | AuthOutcome::Guest);
        if self.breaker.record(succeeded) {
            tracing::warn!(
                "the auth URL failed {} times in a row; skipping it for {:?}",
                breaker::FAILURES_TO_OPEN,
                breaker::OPEN_FOR
            );
        }
        match answer {
            Answer::User(identity) => Ok(Some(identity)),
            Answer::Guest => Ok(None),
            Answer::Unavailable(reason) => Err(reason),
        }
    }

    fn skip_failing_site(&self) -> String {
        self.metrics
            .auth_call(AuthOutcome::CircuitOpen, Duration::ZERO);
        format!(
            "not asked: it failed {} times in a row, next try within {:?}",
            breaker::FAILURES_TO_OPEN,
            breaker::OPEN_FOR
        )
    }

    async fn ask_site(&self, handshake: &Handshake<'_>, cookie: &str) -> (AuthOutcome, Answer) {
        let Ok(cookie) = HeaderValue::from_str(cookie) else {
            return (AuthOutcome::BadBody, Answer::Guest);
        };
        let request = self
            .http
            .get(self.settings.url.clone())
            .header(COOKIE, cookie)
            .header("X-Forwarded-For", &handshake.forwarded_for)
            .header("X-Push-Namespace", handshake.namespace)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("push-core/", env!("CARGO_PKG_VERSION")));

        let response = match request.send().await {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return unavailable(
                    AuthOutcome::Timeout,
                    format!("no answer within {:?}", self.settings.timeout),
                );
            }
            Err(error) => {
                return unavailable(AuthOutcome::Unreachable, format!("request failed: {error}"));
            }
        };

        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return (AuthOutcome::Guest, Answer::Guest);
            }
            status if status.is_redirection() => {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("nowhere");
                return unavailable(
                    AuthOutcome::BadStatus,
                    format!(
                        "answered {status} redirecting to {location}; it must answer 200 or 401 itself (is it behind a login filter?)"
                    ),
                );
            }
            status => return unavailable(AuthOutcome::BadStatus, format!("answered {status}")),
        }

        let body = match read_limited(response).await {
            Ok(body) => body,
            Err(reason) => return unavailable(AuthOutcome::BadBody, reason),
        };
        match parse_identity(&body) {
            Ok(Some(identity)) => (AuthOutcome::User, Answer::User(identity)),
            Ok(None) => (AuthOutcome::Guest, Answer::Guest),
            Err(reason) => unavailable(AuthOutcome::BadBody, reason),
        }
    }
}

fn unavailable(outcome: AuthOutcome, reason: String) -> (AuthOutcome, Answer) {
    (outcome, Answer::Unavailable(reason))
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "answered with more than {MAX_RESPONSE_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) if error.is_timeout() => {
                return Err("the body did not arrive in time".to_owned());
            }
            Err(error) => return Err(format!("the body could not be read: {error}")),
        }
    }
}

#[derive(Deserialize)]
struct AuthBody {
    user_id: Option<UserId>,
    #[serde(default)]
    rooms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Text(String),
    Number(i64),
}

/// Reads the documented body: `Ok(None)` for a null or missing `user_id`.
fn parse_identity(body: &[u8]) -> Result<Option<Identity>, String> {
    let parsed: AuthBody = serde_json::from_slice(body).map_err(|e| {
        format!("answered 200 but not with {{\"user_id\": ..., \"rooms\": [...]}} ({e})")
    })?;
    let user_id = match parsed.user_id {
        None => return Ok(None),
        Some(UserId::Number(n)) => n.to_string(),
        Some(UserId::Text(text)) => text,
    };
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN {
        return Err(format!(
            "answered a user_id of {} bytes; it must be 1 to {MAX_USER_ID_LEN}",
            user_id.len()
        ));
    }
    Ok(Some(Identity {
        user_id,
        rooms: parsed.rooms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_may_be_strings_or_integers() {
        let text = parse_identity(br#"{"user_id":"42","rooms":["group:7"]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(text.user_id, "42");
        assert_eq!(text.rooms, vec!["group:7"]);
        let number = parse_identity(br#"{"user_id":42}"#).unwrap().unwrap();
        assert_eq!(number.user_id, "42");
    }

    #[test]
    fn null_user_is_a_guest_and_garbage_is_an_error() {
        assert_eq!(parse_identity(br#"{"user_id":null}"#).unwrap(), None);
        assert!(parse_identity(b"<html>login</html>").is_err());
        assert!(parse_identity(br#"{"user_id":""}"#).is_err());
        assert!(parse_identity(br#"{"user_id":1.5}"#).is_err());
    }
}

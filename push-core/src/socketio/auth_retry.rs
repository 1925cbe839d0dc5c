//! Identifying, in the background, a connection the site could not
//! identify at connect.
//!
//! When push-core restarts, every browser reconnects within seconds, and
//! the site cannot answer them all within `auth_timeout`. A connection whose
//! identity could not be decided (no call slot in time, a timeout, a 5xx, a
//! bad answer, the breaker open) is therefore admitted anyway, and the site
//! is asked again from here, with backoff, until it gives an answer:
//!
//! - a user: the connection joins its private room and the site's rooms,
//!   exactly as it would have at connect;
//! - a guest: under `auth_required` the connection is disconnected,
//!   otherwise it simply stays the guest it already was.
//!
//! Under `auth_required` the connection waits in
//! [`UNIDENTIFIED_ROOM`] meanwhile, which publishes to everyone leave out,
//! so it receives nothing before it is identified.
//!
//! Refusing the connect instead, or disconnecting it to make the browser
//! come back, would not work with the stock socket.io client: it does not
//! retry a refused connect, and a server-side disconnect stops its
//! reconnecting too. Only closing the underlying transport makes it come
//! back, which socketioxide gives a handler no way to do; and every
//! comeback would repeat the handshake and the auth call, adding to the
//! storm it was meant to wait out.
//!
//! Attempts are bounded (`auth_retry_attempts`), spaced by an exponential
//! backoff with jitter up to `auth_retry_backoff_max`, so a storm's failures
//! do not come back all at once, and stop as soon as the connection goes
//! away.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Socket;
use tokio_util::sync::CancellationToken;

use super::connect::Admission;
use crate::auth::{Answer, Authenticator, Handshake, Urgency};
use crate::config::defaults;
use crate::log_throttle::Line;
use crate::metrics::Metrics;
use crate::outcomes::Refusal;
use crate::rooms::UNIDENTIFIED_ROOM;

/// Delay before the first background attempt. Short, because the usual
/// cause is a burst of connects that the site clears within seconds.
const FIRST_RETRY_AFTER: Duration = defaults::AUTH_RETRY_FIRST_DELAY;

/// A connection still unidentified after every attempt.
const GIVEN_UP_LINE: Line = Line {
    kind: "auth_retries_exhausted",
    level: tracing::Level::WARN,
};

/// What is needed to ask the site again about a connection: the request
/// parts of its handshake, kept with the socket until the retry starts.
#[derive(Clone)]
pub struct Unidentified {
    cookie: Arc<str>,
    forwarded_for: Arc<str>,
}

impl Unidentified {
    pub fn new(cookie: &str, forwarded_for: &str) -> Self {
        Self {
            cookie: cookie.into(),
            forwarded_for: forwarded_for.into(),
        }
    }
}

/// Asks the site again about `socket` until it answers, the attempts run
/// out, or `gone` is cancelled because the connection closed.
pub async fn identify_later(
    socket: Socket,
    unidentified: Unidentified,
    authenticator: Arc<Authenticator>,
    admission: Admission,
    metrics: Arc<Metrics>,
    gone: CancellationToken,
) {
    let retry = Retry {
        socket,
        unidentified,
        authenticator,
        admission,
        metrics,
    };
    tokio::select! {
        () = gone.cancelled() => {
            tracing::debug!(sid = %retry.socket.id, "connection closed before it was identified; no more auth retries");
        }
        () = retry.run() => {}
    }
}

struct Retry {
    socket: Socket,
    unidentified: Unidentified,
    authenticator: Arc<Authenticator>,
    admission: Admission,
    metrics: Arc<Metrics>,
}

impl Retry {
    async fn run(&self) {
        let socket = &self.socket;
        let handshake = Handshake {
            namespace: socket.ns(),
            cookie: Some(&self.unidentified.cookie),
            forwarded_for: self.unidentified.forwarded_for.to_string(),
        };
        let required = self.authenticator.required();
        let retry = self.authenticator.retry();
        for attempt in 1..=retry.attempts {
            tokio::time::sleep(delay_before(attempt, retry.backoff_max)).await;
            // The disconnect handler cancels this task, but a connection
            // can close before that handler is in place.
            if !socket.connected() {
                tracing::debug!(sid = %socket.id, "connection closed before it was identified; no more auth retries");
                return;
            }
            self.metrics.auth_retry();
            match self
                .authenticator
                .identify(&handshake, Urgency::Background)
                .await
            {
                Answer::User(identity) => {
                    self.admission.change_rooms(socket, || {
                        self.admission.join_rooms(socket, &identity);
                        socket.leave(UNIDENTIFIED_ROOM);
                    });
                    self.admission.resume_held(socket);
                    // A disconnect between the answer and the join would
                    // leave the rooms holding a closed connection: the
                    // close marks the socket first and then leaves its
                    // rooms, so whichever came second cleans up.
                    if !socket.connected() {
                        socket.leave_all();
                    }
                    tracing::debug!(sid = %socket.id, ns = socket.ns(), attempt, "identified by a background auth attempt");
                    return;
                }
                Answer::Guest if required => {
                    tracing::info!(sid = %socket.id, ns = socket.ns(), "the auth URL answered guest for a connection admitted while it was unavailable; disconnecting it (auth_required)");
                    self.disconnect(Refusal::Unauthorized);
                    return;
                }
                Answer::Guest => return,
                Answer::Unavailable(reason) => {
                    tracing::debug!(sid = %socket.id, ns = socket.ns(), attempt, %reason, "background auth attempt failed");
                }
            }
        }
        self.metrics.auth_retries_exhausted();
        let outcome = if required {
            "disconnecting it (auth_required)"
        } else {
            "it stays a guest"
        };
        let source = self.admission.log_source(socket);
        if self.admission.log_throttle().allow(GIVEN_UP_LINE, source) {
            tracing::warn!(sid = %socket.id, ns = socket.ns(), attempts = retry.attempts, "the auth URL could not identify a connection after every retry; {outcome}");
        }
        if required {
            self.disconnect(Refusal::AuthUnavailable);
        }
    }

    fn disconnect(&self, why: Refusal) {
        self.metrics.connection_refused(why);
        if let Err(error) = self.socket.clone().disconnect() {
            // It stays in the unidentified room, so it still receives
            // nothing; its own close will end it.
            tracing::warn!(sid = %self.socket.id, %error, "could not disconnect an unidentified connection");
        }
    }
}

/// The wait before background attempt `attempt` (from 1): doubling from
/// [`FIRST_RETRY_AFTER`] up to `longest`, then a random point in its upper
/// half, so connections that failed together spread out.
fn delay_before(attempt: u32, longest: Duration) -> Duration {
    let doubled = FIRST_RETRY_AFTER.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let ceiling = doubled.min(longest);
    ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = defaults::AUTH_RETRY_BACKOFF_MAX;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        for _ in 0..100 {
            let first = delay_before(1, LONGEST);
            assert!(first >= FIRST_RETRY_AFTER / 2 && first <= FIRST_RETRY_AFTER);
            let third = delay_before(3, LONGEST);
            assert!(third >= FIRST_RETRY_AFTER * 2 && third <= FIRST_RETRY_AFTER * 4);
            for attempt in [8, defaults::AUTH_RETRY_ATTEMPTS, u32::MAX] {
                let late = delay_before(attempt, LONGEST);
                assert!(late >= LONGEST / 2 && late <= LONGEST);
            }
            let capped = delay_before(8, Duration::from_secs(5));
            assert!(capped >= Duration::from_millis(2500) && capped <= Duration::from_secs(5));
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| delay_before(4, LONGEST)).collect();
        assert!(delays.len() > 1);
    }
}

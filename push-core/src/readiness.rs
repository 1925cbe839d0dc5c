//! Whether this node should be sent traffic: what `/readyz` answers.
//!
//! `/healthz` says the process answers; `/readyz` says it does its job: it
//! accepts browsers and publishes, and is not stopping. A load balancer or
//! an orchestrator takes a node out of rotation on a 503 here, before its
//! browsers are disconnected at shutdown.
//!
//! Readiness is the conjunction of conditions, each gathered in
//! [`Readiness::unmet`]; a new condition is one more line there.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The conditions of readiness, set by the daemon as it starts and stops.
#[derive(Debug, Default)]
pub struct Readiness {
    browsers_accepted: AtomicBool,
    publishes_accepted: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    /// The HTTP listener serves socket.io.
    pub fn browsers_accepted(&self) {
        self.browsers_accepted.store(true, Ordering::Release);
    }

    /// The publish socket accepts publishers.
    pub fn publishes_accepted(&self) {
        self.publishes_accepted.store(true, Ordering::Release);
    }

    /// The shutdown began: from now on the node is never ready again.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Why the node is not ready, one reason a line; empty when it is.
    pub fn unmet(&self) -> Vec<&'static str> {
        let conditions = [
            (
                !self.stopping.load(Ordering::Acquire),
                "stopping: the daemon is shutting down",
            ),
            (
                self.browsers_accepted.load(Ordering::Acquire),
                "starting: the socket.io listener is not serving yet",
            ),
            (
                self.publishes_accepted.load(Ordering::Acquire),
                "starting: the publish socket is not accepting yet",
            ),
        ];
        conditions
            .into_iter()
            .filter(|(met, _)| !met)
            .map(|(_, reason)| reason)
            .collect()
    }
}

/// `/readyz`: 200 `ready`, or 503 with every unmet condition.
pub async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let unmet = readiness.unmet();
    if unmet.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let mut body = unmet.join("\n");
        body.push('\n');
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_start_and_stop() {
        let readiness = Readiness::default();
        assert_eq!(readiness.unmet().len(), 2, "starting");
        readiness.browsers_accepted();
        assert_eq!(
            readiness.unmet(),
            ["starting: the publish socket is not accepting yet"]
        );
        readiness.publishes_accepted();
        assert!(readiness.unmet().is_empty());
        readiness.stopping();
        assert_eq!(readiness.unmet(), ["stopping: the daemon is shutting down"]);
    }
}

//! Stops asking a site that keeps failing.
//!
//! When the auth endpoint is down, every connect would otherwise wait for a
//! timeout, and a reconnect storm would pile thousands of doomed requests
//! onto a site that is trying to come back. After [`FAILURES_TO_OPEN`]
//! failures in a row the breaker opens: calls are skipped (the connection is
//! handled as "site unavailable") for [`OPEN_FOR`]. Then one trial call is let
//! through; its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 5;

/// How long calls are skipped once open.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

#[derive(Debug, Default)]
pub struct CircuitBreaker {
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// True while calls are being skipped. Unlike [`CircuitBreaker::allow`]
    /// it takes no trial call, so it can be asked before queueing.
    pub fn is_open(&self) -> bool {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.open_until.is_some_and(|until| Instant::now() < until)
    }

    /// May a call be made now? In the half-open state this takes the one
    /// trial call, so ask it right before calling.
    pub fn allow(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            // Half-open: exactly one trial call at a time.
            Some(_) if state.trial_in_flight => false,
            Some(_) => {
                state.trial_in_flight = true;
                true
            }
        }
    }

    /// Reports how an allowed call ended. Returns true when this report
    /// opened the breaker, so the caller can log it once.
    pub fn record(&self, succeeded: bool) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.trial_in_flight = false;
        if succeeded {
            *state = State::default();
            return false;
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let was_open = state.open_until.is_some();
        if state.consecutive_failures >= FAILURES_TO_OPEN {
            state.open_until = Some(Instant::now() + OPEN_FOR);
            return !was_open;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_success() {
        let breaker = CircuitBreaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(breaker.allow());
            assert!(!breaker.record(false));
        }
        assert!(breaker.allow());
        assert!(breaker.record(false), "the fifth failure opens it");
        assert!(!breaker.allow());

        // Pretend the cool-down passed.
        breaker.state.lock().unwrap().open_until = Some(Instant::now());
        assert!(breaker.allow(), "one trial call");
        assert!(!breaker.allow(), "only one at a time");
        breaker.record(true);
        assert!(breaker.allow());
        assert!(breaker.allow());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breaker.record(false);
        }
        breaker.record(true);
        breaker.record(false);
        assert!(breaker.allow());
    }
}

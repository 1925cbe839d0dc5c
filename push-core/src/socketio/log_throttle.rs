//! Keeps a warning that a storm repeats for every connection from flooding
//! the log.
//!
//! After a deploy, thousands of connects can meet the same condition within
//! seconds (a site too busy to answer them all in time). One line a second,
//! saying how many like it were left out, tells the operator as much as
//! thousands of lines, and keeps the rest of the log readable.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per this interval.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct LogThrottle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_line: Option<Instant>,
    left_out: u64,
}

impl LogThrottle {
    /// `Some(n)` when a line may be written now, `n` being how many were
    /// left out since the last one; `None` when this one is left out.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if state
            .last_line
            .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            state.left_out += 1;
            return None;
        }
        state.last_line = Some(now);
        Some(std::mem::take(&mut state.left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let throttle = LogThrottle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        // Pretend the interval passed.
        throttle.state.lock().unwrap().last_line = Some(Instant::now() - INTERVAL);
        assert_eq!(throttle.allow(), Some(2));
        assert_eq!(throttle.allow(), None);
    }
}

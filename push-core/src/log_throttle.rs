//! Keeps log lines that clients can make the daemon repeat from filling the
//! disk.
//!
//! A wrong token sent to the HTTP API, a refused connection, a failed
//! Admin UI login: each is worth a line, and a client that repeats it
//! thousands of times a second would otherwise write thousands of lines a
//! second (3,000 wrong tokens once added 366 KB). So the lines of one kind
//! from one source (a client's address) are throttled: the first is
//! written; the ones that follow within [`INTERVAL`] are counted, and at
//! the end of the interval one line says how many were not written. A
//! source that keeps at it gets only that count, once an interval, until it
//! is quiet for a whole interval. At most [`MAX_SOURCES`] sources of a kind
//! are told apart in an interval; the lines of any others are counted
//! together. Metrics count every event, throttled or not.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::Level;

/// How long the lines of one kind and source are counted rather than
/// written, and how often their count is written.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Sources of one kind told apart in an interval. A flood from many
/// addresses gets this many lines of its own, plus one count for the rest.
const MAX_SOURCES: usize = 16;

/// What the line for the sources past [`MAX_SOURCES`] names as its source.
const OTHER_SOURCES: &str = "other addresses";

/// A kind of line that is throttled: a stable name for it, written in the
/// count's line, and the level of the line it stands for.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub kind: &'static str,
    pub level: Level,
}

/// A source that may not be known: written as `unknown` then.
#[derive(Debug, Clone, Copy)]
pub struct Source<T>(pub Option<T>);

impl<T: Display> Display for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(source) => source.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// The throttle; clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct LogThrottle {
    window: Arc<Mutex<Window>>,
}

/// The counts of the current interval.
#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    /// Lines not written, by kind and source; a source written once in this
    /// interval is here with 0.
    sources: HashMap<(&'static str, String), Tally>,
    /// Lines not written of sources past [`MAX_SOURCES`], by kind.
    others: HashMap<&'static str, Tally>,
    /// A task will write the counts at the end of the interval.
    closing_scheduled: bool,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    level: Level,
    not_written: u64,
}

impl LogThrottle {
    /// Whether a `line` from `source` may be written now; if not, it is
    /// counted, and the count is written at the end of the interval.
    pub fn allow(&self, line: Line, source: impl Display) -> bool {
        let mut window = self.lock();
        let now = Instant::now();
        if window
            .started
            .is_some_and(|started| now.duration_since(started) >= INTERVAL)
        {
            window.close(now);
        }
        let started = *window.started.get_or_insert(now);
        let allowed = window.count(line, source.to_string());
        if !allowed && !window.closing_scheduled {
            window.closing_scheduled = self.schedule_closing(started + INTERVAL);
        }
        allowed
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the counts once the interval ends, even if nothing more comes
    /// (outside a runtime, the next line does it). Returns whether it will.
    fn schedule_closing(&self, at: Instant) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let throttle = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let mut window = throttle.lock();
            window.closing_scheduled = false;
            let now = Instant::now();
            if window
                .started
                .is_some_and(|started| now.duration_since(started) >= INTERVAL)
            {
                window.close(now);
            }
        });
        true
    }
}

impl Window {
    /// Counts a line; true if it is to be written.
    fn count(&mut self, line: Line, source: String) -> bool {
        let key = (line.kind, source);
        if let Some(tally) = self.sources.get_mut(&key) {
            tally.not_written += 1;
            return false;
        }
        let told_apart = self.sources.keys().filter(|(kind, _)| *kind == line.kind);
        if told_apart.count() < MAX_SOURCES {
            let tally = Tally {
                level: line.level,
                not_written: 0,
            };
            self.sources.insert(key, tally);
            return true;
        }
        let others = self.others.entry(line.kind).or_insert(Tally {
            level: line.level,
            not_written: 0,
        });
        others.not_written += 1;
        false
    }

    /// Ends the interval: writes what was not written, and keeps the
    /// sources that are still at it, so that their next line is counted too.
    fn close(&mut self, now: Instant) {
        for ((kind, source), tally) in &mut self.sources {
            write_count(kind, source, *tally);
        }
        for (kind, tally) in self.others.drain() {
            write_count(kind, OTHER_SOURCES, tally);
        }
        self.sources.retain(|_, tally| tally.not_written > 0);
        for tally in self.sources.values_mut() {
            tally.not_written = 0;
        }
        self.started = Some(now);
    }
}

fn write_count(kind: &str, source: &str, tally: Tally) {
    let Tally { level, not_written } = tally;
    if not_written == 0 {
        return;
    }
    let seconds = INTERVAL.as_secs();
    if level <= Level::WARN {
        tracing::warn!(
            kind,
            source,
            not_written,
            seconds,
            "lines like the last one of this kind and source were not written (log throttling; metrics count every one)"
        );
    } else {
        tracing::info!(
            kind,
            source,
            not_written,
            seconds,
            "lines like the last one of this kind and source were not written (log throttling; metrics count every one)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: Line = Line {
        kind: "refused",
        level: Level::INFO,
    };
    const OTHER_KIND: Line = Line {
        kind: "other",
        level: Level::WARN,
    };

    fn tally(throttle: &LogThrottle, kind: &'static str, source: &str) -> Option<u64> {
        let window = throttle.lock();
        let key = (kind, source.to_owned());
        window.sources.get(&key).map(|tally| tally.not_written)
    }

    /// Pretends the interval has passed.
    fn age(throttle: &LogThrottle) {
        let mut window = throttle.lock();
        window.started = window.started.map(|started| started - INTERVAL);
    }

    #[test]
    fn one_line_per_kind_and_source_and_interval() {
        let throttle = LogThrottle::default();
        assert!(throttle.allow(REFUSED, "192.0.2.1"));
        assert!(!throttle.allow(REFUSED, "192.0.2.1"));
        assert!(!throttle.allow(REFUSED, "192.0.2.1"));
        assert!(throttle.allow(REFUSED, "192.0.2.2"), "another source");
        assert!(throttle.allow(OTHER_KIND, "192.0.2.1"), "another kind");
        assert_eq!(tally(&throttle, "refused", "192.0.2.1"), Some(2));

        // A source still at it when the interval ends stays counted...
        age(&throttle);
        assert!(!throttle.allow(REFUSED, "192.0.2.1"));
        assert_eq!(tally(&throttle, "refused", "192.0.2.1"), Some(1));
        // ...while one that was quiet is written again.
        assert!(throttle.allow(REFUSED, "192.0.2.2"));
        // An interval in which it was quiet, then: written again.
        age(&throttle);
        assert!(throttle.allow(OTHER_KIND, "192.0.2.9"));
        age(&throttle);
        assert!(throttle.allow(REFUSED, "192.0.2.1"));
    }

    #[test]
    fn sources_past_the_limit_are_counted_together() {
        let throttle = LogThrottle::default();
        for n in 0..MAX_SOURCES {
            assert!(throttle.allow(REFUSED, format!("192.0.2.{n}")));
        }
        assert!(!throttle.allow(REFUSED, "198.51.100.1"));
        assert!(!throttle.allow(REFUSED, "198.51.100.2"));
        assert!(
            throttle.allow(OTHER_KIND, "198.51.100.1"),
            "kinds are limited apart"
        );
        let window = throttle.lock();
        assert_eq!(window.others.get("refused").map(|t| t.not_written), Some(2));
        assert_eq!(window.sources.len(), MAX_SOURCES + 1);
    }
}

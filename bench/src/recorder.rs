//! What arrives at the simulated browsers: latency histograms and counts.
//!
//! Every message carries the time it was due to be published, in
//! microseconds since the bench started (one clock, one process), the user
//! it was addressed to and the step of the run it belongs to:
//! `{"t":123456,"u":42,"s":3,"p":"xx…"}`, padded to [`PAYLOAD_BYTES`].
//! Receipt subtracts `t` from now and records the difference in an
//! HdrHistogram. Messages of an earlier step that arrive late are counted,
//! not recorded, so one step's backlog cannot colour the next step's figures.
//!
//! Browsers run on every worker thread of the runtime; one histogram behind
//! one lock would be contended at hundreds of thousands of receipts a
//! second, so each thread records into its own shard and the shards are
//! merged when a step ends.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;

/// Size of each published message's JSON payload, as in the issue.
pub const PAYLOAD_BYTES: usize = 100;

/// Longest latency the histograms hold: one minute, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Shards of the histogram; more than the runtime has worker threads.
const SHARDS: usize = 16;

/// Microseconds since the bench process started; the clock of `t`.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The payload of one message; `user` is `None` for a broadcast.
pub fn payload(due_us: u64, user: Option<u32>, step: u64) -> String {
    let user = user.map_or(-1, i64::from);
    let mut json = format!(r#"{{"t":{due_us},"u":{user},"s":{step},"p":""#);
    let padding = PAYLOAD_BYTES.saturating_sub(json.len() + 2);
    json.extend(std::iter::repeat_n('x', padding));
    json.push_str("\"}");
    json
}

/// Latencies and counts of one step, merged from every shard.
pub struct StepFigures {
    pub histogram: Histogram<u64>,
    pub late: u64,
    pub misdelivered: u64,
}

impl StepFigures {
    pub fn delivered(&self) -> u64 {
        self.histogram.len()
    }

    /// A percentile in milliseconds.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.histogram.is_empty() {
            return f64::NAN;
        }
        self.histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }
}

/// Shared by every browser of the bench.
pub struct Recorder {
    step: AtomicU64,
    shards: Vec<Mutex<Histogram<u64>>>,
    late: AtomicU64,
    misdelivered: AtomicU64,
    unparsed: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            step: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            late: AtomicU64::new(0),
            misdelivered: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// Starts a new step: clears the figures, and from now on only messages
    /// stamped with the returned step number are recorded.
    pub fn begin_step(&self) -> u64 {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
        self.late.store(0, Ordering::Release);
        self.misdelivered.store(0, Ordering::Release);
        self.step.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Messages recorded so far in the current step.
    pub fn delivered(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn figures(&self) -> StepFigures {
        let mut histogram = new_histogram();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds, so adding cannot fail.
            let _ = histogram.add(&*shard);
        }
        StepFigures {
            histogram,
            late: self.late.load(Ordering::Acquire),
            misdelivered: self.misdelivered.load(Ordering::Acquire),
        }
    }

    /// Messages of an earlier step received since the current one began.
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Acquire)
    }

    /// Events whose payload the bench could not read; should stay 0.
    pub fn unparsed(&self) -> u64 {
        self.unparsed.load(Ordering::Acquire)
    }

    /// Records one socket.io event, `["event",{payload}]`, received by a
    /// browser of user `me`.
    pub fn record_event(&self, event: &str, me: Option<u32>) {
        let now = now_us();
        let (Some(due), Some(user), Some(step)) = (
            number_after(event, "\"t\":"),
            number_after(event, "\"u\":"),
            number_after(event, "\"s\":"),
        ) else {
            self.unparsed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if step as u64 != self.step.load(Ordering::Acquire) {
            self.late.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if user >= 0 && me.map(i64::from) != Some(user) {
            self.misdelivered.fetch_add(1, Ordering::Relaxed);
        }
        let latency = now.saturating_sub(due as u64).clamp(1, MAX_LATENCY_US);
        let mut shard = self.shards[shard_index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Clamped into range above, so recording cannot fail.
        let _ = shard.record(latency);
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// This thread's shard: threads take the next index the first time they
/// record.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

/// The integer right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<i64> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_the_issue_size_and_reads_back() {
        let text = payload(123_456, Some(42), 7);
        assert_eq!(text.len(), PAYLOAD_BYTES);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
        let event = format!(r#"["m",{text}]"#);
        assert_eq!(number_after(&event, "\"t\":"), Some(123_456));
        assert_eq!(number_after(&event, "\"u\":"), Some(42));
        assert_eq!(number_after(&event, "\"s\":"), Some(7));
        let broadcast = payload(1, None, 1);
        assert_eq!(number_after(&broadcast, "\"u\":"), Some(-1));
    }

    #[test]
    fn a_message_for_someone_else_is_a_misdelivery() {
        let recorder = Recorder::default();
        let step = recorder.begin_step();
        let event = format!(r#"["m",{}]"#, payload(now_us(), Some(5), step));
        recorder.record_event(&event, Some(5));
        recorder.record_event(&event, Some(6));
        let stale = format!(r#"["m",{}]"#, payload(now_us(), None, step + 1));
        recorder.record_event(&stale, Some(6));
        let figures = recorder.figures();
        assert_eq!(figures.delivered(), 2);
        assert_eq!(figures.misdelivered, 1);
        assert_eq!(figures.late, 1);
    }
}

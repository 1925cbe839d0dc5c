//! How the catch-up of a connection whose send buffer filled ended: what
//! `socketio::resume` reports and `push_slow_consumer_catch_ups_total` is
//! labelled with.

/// How the catch-up of a connection whose send buffer filled ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpOutcome {
    /// It was sent every message it had missed.
    Recovered,
    /// The history no longer held them all: it was told to reload.
    Reset,
    /// The connection closed first.
    Closed,
}

impl CatchUpOutcome {
    pub const ALL: [CatchUpOutcome; 3] = [
        CatchUpOutcome::Recovered,
        CatchUpOutcome::Reset,
        CatchUpOutcome::Closed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CatchUpOutcome::Recovered => "recovered",
            CatchUpOutcome::Reset => "reset",
            CatchUpOutcome::Closed => "closed",
        }
    }
}

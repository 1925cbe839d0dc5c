//! Offsets: where a page is in a namespace's stream of messages.
//!
//! An offset is the epoch of the history it belongs to and the sequence
//! number of a message in it. Pages treat it as an opaque string; the
//! daemon reads it back to know what a reconnecting page has seen. A new
//! epoch begins whenever the history starts empty (a start without
//! `state_dir`), so an offset from before cannot be mistaken for one of the
//! new sequence, whose numbers start over.

use std::fmt;
use std::str::FromStr;

/// An epoch and a sequence number; `seq` 0 means "before the first message".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub epoch: u64,
    pub seq: u64,
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.epoch, self.seq)
    }
}

/// An offset string that this daemon did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnOffset;

impl FromStr for Offset {
    type Err = NotAnOffset;

    fn from_str(text: &str) -> Result<Self, NotAnOffset> {
        /// Longer than any offset we write; bounds the parsing of garbage.
        const MAX_LEN: usize = 40;
        if text.len() > MAX_LEN {
            return Err(NotAnOffset);
        }
        let (epoch, seq) = text.split_once('-').ok_or(NotAnOffset)?;
        Ok(Self {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| NotAnOffset)?,
            seq: seq.parse().map_err(|_| NotAnOffset)?,
        })
    }
}

/// A new epoch: the clock in nanoseconds, which differs between any two
/// starts of a daemon and so between any two histories.
pub fn new_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_back_as_written() {
        let offset = Offset {
            epoch: 0x18a2b3c4d5e6f708,
            seq: 42,
        };
        assert_eq!(offset.to_string(), "18a2b3c4d5e6f708-42");
        assert_eq!(offset.to_string().parse::<Offset>(), Ok(offset));
    }

    #[test]
    fn anything_else_is_not_an_offset() {
        for garbage in [
            "",
            "42",
            "-",
            "x-1",
            "1-x",
            "1-2-3",
            "1--2",
            &"1".repeat(100),
        ] {
            assert_eq!(garbage.parse::<Offset>(), Err(NotAnOffset), "{garbage:?}");
        }
    }
}

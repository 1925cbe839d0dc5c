//! The heartbeat's rules, apart from any timer or socket.
//!
//! Protocol 4: the server pings every `ping_interval` and the client must
//! pong within `ping_timeout`; the next ping is due `ping_interval` after
//! the pong. While a pong is awaited, the first other packet from the
//! client pushes the deadline back once (a client busy sending is alive).
//!
//! Protocol 3: the client pings and the server answers; a client silent for
//! `ping_interval + ping_timeout` is gone.
//!
//! The task serving the connection owns one [`Heartbeat`], sleeps until its
//! [`Heartbeat::deadline`] and tells it what arrived.

use std::time::Duration;

use engineioxide_core::ProtocolVersion;
use tokio::time::Instant;

/// What to do at the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a ping (protocol 4); the deadline moved to the pong's.
    SendPing,
    /// The client is gone.
    TimedOut,
}

#[derive(Debug)]
pub(crate) struct Heartbeat {
    protocol: ProtocolVersion,
    interval: Duration,
    timeout: Duration,
    deadline: Instant,
    /// Protocol 4: a ping was sent and its pong has not come.
    awaiting_pong: bool,
    /// Protocol 4: the deadline for this pong was already pushed back once.
    refreshed: bool,
}

impl Heartbeat {
    pub(crate) fn new(
        protocol: ProtocolVersion,
        interval: Duration,
        timeout: Duration,
        now: Instant,
    ) -> Self {
        let first = match protocol {
            ProtocolVersion::V4 => interval,
            ProtocolVersion::V3 => interval + timeout,
        };
        Self {
            protocol,
            interval,
            timeout,
            deadline: now + first,
            awaiting_pong: false,
            refreshed: false,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The deadline passed.
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Beat {
        match self.protocol {
            ProtocolVersion::V4 if !self.awaiting_pong => {
                self.awaiting_pong = true;
                self.refreshed = false;
                self.deadline = now + self.timeout;
                Beat::SendPing
            }
            _ => Beat::TimedOut,
        }
    }

    /// The client's heartbeat arrived: a pong in protocol 4, a ping in
    /// protocol 3 (which the caller answers).
    pub(crate) fn on_heartbeat(&mut self, now: Instant) {
        self.awaiting_pong = false;
        self.deadline = match self.protocol {
            ProtocolVersion::V4 => now + self.interval,
            ProtocolVersion::V3 => now + self.interval + self.timeout,
        };
    }

    /// Any other packet arrived.
    pub(crate) fn on_packet(&mut self, now: Instant) {
        if self.awaiting_pong && !self.refreshed {
            self.refreshed = true;
            self.deadline = now + self.timeout;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(300);
    const TIMEOUT: Duration = Duration::from_millis(200);

    #[test]
    fn protocol_4_pings_then_waits_for_the_pong() {
        let start = Instant::now();
        let mut beat = Heartbeat::new(ProtocolVersion::V4, INTERVAL, TIMEOUT, start);
        assert_eq!(beat.deadline(), start + INTERVAL);
        let pinged = start + INTERVAL;
        assert_eq!(beat.on_deadline(pinged), Beat::SendPing);
        assert_eq!(beat.deadline(), pinged + TIMEOUT);
        let ponged = pinged + Duration::from_millis(10);
        beat.on_heartbeat(ponged);
        assert_eq!(beat.deadline(), ponged + INTERVAL);
        assert_eq!(beat.on_deadline(ponged + INTERVAL), Beat::SendPing);
        assert_eq!(
            beat.on_deadline(ponged + INTERVAL + TIMEOUT),
            Beat::TimedOut
        );
    }

    #[test]
    fn protocol_4_pushes_the_pong_deadline_back_once() {
        let start = Instant::now();
        let mut beat = Heartbeat::new(ProtocolVersion::V4, INTERVAL, TIMEOUT, start);
        beat.on_deadline(start + INTERVAL);
        let busy = start + INTERVAL + Duration::from_millis(150);
        beat.on_packet(busy);
        assert_eq!(beat.deadline(), busy + TIMEOUT);
        beat.on_packet(busy + Duration::from_millis(100));
        assert_eq!(beat.deadline(), busy + TIMEOUT);
    }

    #[test]
    fn protocol_3_waits_for_the_clients_ping() {
        let start = Instant::now();
        let mut beat = Heartbeat::new(ProtocolVersion::V3, INTERVAL, TIMEOUT, start);
        assert_eq!(beat.deadline(), start + INTERVAL + TIMEOUT);
        let pinged = start + INTERVAL;
        beat.on_heartbeat(pinged);
        assert_eq!(beat.deadline(), pinged + INTERVAL + TIMEOUT);
        assert_eq!(beat.on_deadline(beat.deadline()), Beat::TimedOut);
    }
}

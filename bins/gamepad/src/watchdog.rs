//! The control watchdog: when no valid control datagram arrived for `control_timeout`, every
//! gamepad is set neutral and marked disconnected. [`Watchdog`] keeps the deadline and the
//! trip state. Stopping the motors is not its job: the device broker, the one gate to the
//! devices, disables the robot when the driver links go silent (robot-state.md).

use std::time::{Duration, Instant};

/// Trip state and deadline of the watchdog.
#[derive(Debug)]
pub struct Watchdog {
    timeout: Duration,
    last_valid: Option<Instant>,
    tripped: bool,
    trips: u64,
}

/// What changed when the watchdog was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Control was already live.
    Steady,
    /// First valid datagram since start, or since a trip.
    Recovered,
}

impl Watchdog {
    /// A watchdog with `timeout`; it is not armed until the first valid datagram, since
    /// nothing was under control before it.
    pub fn new(timeout: Duration) -> Watchdog {
        Watchdog {
            timeout,
            last_valid: None,
            tripped: true,
            trips: 0,
        }
    }

    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records a valid datagram.
    pub fn feed(&mut self, now: Instant) -> Feed {
        self.last_valid = Some(now);
        if std::mem::replace(&mut self.tripped, false) {
            Feed::Recovered
        } else {
            Feed::Steady
        }
    }

    /// When the watchdog trips unless fed; `None` while tripped (or never armed).
    pub fn deadline(&self) -> Option<Instant> {
        match (self.tripped, self.last_valid) {
            (false, Some(t)) => Some(t + self.timeout),
            _ => None,
        }
    }

    /// Trips if the deadline passed; returns true when it tripped now.
    pub fn check(&mut self, now: Instant) -> bool {
        if self.deadline().is_some_and(|d| now >= d) {
            self.force_trip();
            true
        } else {
            false
        }
    }

    /// Trips now (e.g. on shutdown) unless already tripped; returns true when it tripped.
    pub fn force_trip(&mut self) -> bool {
        if self.tripped {
            return false;
        }
        self.tripped = true;
        self.trips += 1;
        true
    }

    /// Whether control is currently lost.
    pub fn tripped(&self) -> bool {
        self.tripped
    }

    /// How many times the watchdog tripped.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Time since the last valid datagram.
    pub fn last_valid_age(&self, now: Instant) -> Option<Duration> {
        self.last_valid.map(|t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_once_and_recovers() {
        let t = Instant::now();
        let mut w = Watchdog::new(Duration::from_millis(100));
        assert_eq!(w.deadline(), None, "not armed before the first datagram");
        assert!(!w.check(t + Duration::from_secs(9)));
        assert_eq!(w.feed(t), Feed::Recovered);
        assert_eq!(w.feed(t), Feed::Steady);
        assert!(!w.check(t + Duration::from_millis(99)));
        assert!(w.check(t + Duration::from_millis(100)));
        assert!(!w.check(t + Duration::from_millis(200)), "trips once");
        assert_eq!(w.trips(), 1);
        assert_eq!(w.feed(t + Duration::from_millis(300)), Feed::Recovered);
    }
}

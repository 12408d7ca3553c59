//! The control watchdog: when no valid control datagram arrived for `control_timeout`, the
//! robot must stop. [`Watchdog`] keeps the deadline and the trip state; [`write_safe_values`]
//! drives every connected device's params that have a catalog `safe` value (every
//! `duty_cycle*` to 0) by writing them into the devices' write blocks, which wakes the
//! device broker at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_buffer::{Buffer, SegmentKey};
use pitcrew_catalog::{Catalog, DeviceType, Value};

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

/// What [`write_safe_values`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SafeReport {
    /// Devices written.
    pub devices: usize,
    /// Params written, over all devices.
    pub params: usize,
    /// Devices that could not be written (logged each).
    pub failed: usize,
}

/// The params of `ty` that have a safe value and a write slot.
fn safe_params(ty: &DeviceType) -> Vec<(&str, Value)> {
    ty.params()
        .iter()
        .filter(|p| p.writeable())
        .filter_map(|p| p.safe().map(|v| (p.name(), v)))
        .collect()
}

/// Writes the catalog's safe values into every connected device buffer of `namespace` that
/// has some. A device that fails is logged and skipped; the others are still written.
pub fn write_safe_values(namespace: &str, catalog: &Catalog) -> SafeReport {
    let mut report = SafeReport::default();
    let segments = match pitcrew_buffer::list(namespace) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot list device buffers for the safe values");
            report.failed += 1;
            return report;
        }
    };
    for seg in segments {
        if !seg.valid || !seg.owner_alive {
            continue;
        }
        let Some(ty) = catalog.get(&seg.type_name) else {
            continue;
        };
        let values = safe_params(ty);
        if values.is_empty() {
            continue;
        }
        match write_one(namespace, Arc::clone(ty), seg.key, &values) {
            Ok(()) => {
                report.devices += 1;
                report.params += values.len();
            }
            Err(e) => {
                report.failed += 1;
                tracing::error!(buffer = %seg.name, error = %e, "cannot write the safe values");
            }
        }
    }
    report
}

fn write_one(
    namespace: &str,
    ty: Arc<DeviceType>,
    key: SegmentKey,
    values: &[(&str, Value)],
) -> Result<(), pitcrew_buffer::BufferError> {
    let buf = Buffer::open(namespace, ty, key)?;
    buf.write_values(values)?;
    Ok(())
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

    #[test]
    fn shipped_motor_types_have_safe_duty_cycles() {
        let c = Catalog::embedded();
        let polar = safe_params(c.get("polar-bear").unwrap());
        assert!(
            polar.contains(&("duty_cycle", Value::F32(0.0))),
            "{polar:?}"
        );
        let koala = safe_params(c.get("koala-bear").unwrap());
        assert!(koala.iter().any(|(n, _)| *n == "duty_cycle_b"));
        assert!(safe_params(c.get("gamepad").unwrap()).is_empty());
    }
}

//! A hobby servo: it moves toward its commanded position at its rated speed.

use crate::{positive, ParamError};

/// A servo whose position (in the catalog's units, [-1, 1]) moves toward the command at
/// `speed` units per second, and holds it once there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Servo {
    speed: f64,
    position: f64,
}

impl Servo {
    /// A servo rated at `speed` units per second (> 0), centred.
    ///
    /// # Errors
    /// [`ParamError`] for a speed that is not positive.
    pub fn new(speed: f64) -> Result<Servo, ParamError> {
        Ok(Servo {
            speed: positive("speed", speed)?,
            position: 0.0,
        })
    }

    /// The position now.
    pub fn position(&self) -> f64 {
        self.position
    }

    /// Moves `dt` seconds toward `target` (clamped to [-1, 1]); a servo without signal
    /// (`None`: disabled) holds where it is.
    pub fn step(&mut self, target: Option<f64>, dt: f64) {
        if let Some(target) = target {
            let target = target.clamp(-1.0, 1.0);
            let max = self.speed * dt;
            self.position += (target - self.position).clamp(-max, max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_at_its_rated_speed_and_stops_on_target() {
        let mut s = Servo::new(2.0).unwrap();
        s.step(Some(1.0), 0.25);
        assert!((s.position() - 0.5).abs() < 1e-12);
        s.step(Some(1.0), 0.5);
        assert_eq!(s.position(), 1.0);
        s.step(None, 1.0);
        assert_eq!(s.position(), 1.0);
        s.step(Some(-5.0), 10.0);
        assert_eq!(s.position(), -1.0);
    }
}

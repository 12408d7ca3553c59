//! The control law, free of I/O so that it can be read and tested on its own: stick y axes
//! to motor duty cycles, the slow-mode toggle on the press (not the hold) of button A, and
//! the autonomous routine ([`Routine`]: both motors at [`AUTO_DUTY`] for [`AUTO_TIME`],
//! then stopped).

use pitcrew_controller::gamepad::{Button, GamepadState};

/// Duty cycles for the two motors of a koala-bear, each in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// `duty_cycle_a`.
    pub a: f32,
    /// `duty_cycle_b`.
    pub b: f32,
}

impl Target {
    /// Motors stopped.
    pub const STOP: Target = Target { a: 0.0, b: 0.0 };
}

/// Duty cycle of both motors during the autonomous routine.
pub const AUTO_DUTY: f32 = 0.5;
/// How long the autonomous routine drives before it stops.
pub const AUTO_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// The autonomous routine: drive forward at [`AUTO_DUTY`] for [`AUTO_TIME`] from the moment
/// the robot was enabled in autonomous, then stop and stay stopped.
#[derive(Debug, Clone, Copy)]
pub struct Routine {
    started: std::time::Instant,
}

impl Routine {
    /// The routine, started at `now` (when autonomous began).
    pub fn start(now: std::time::Instant) -> Routine {
        Routine { started: now }
    }

    /// The target at `now`.
    pub fn target(&self, now: std::time::Instant) -> Target {
        if now.saturating_duration_since(self.started) < AUTO_TIME {
            Target {
                a: AUTO_DUTY,
                b: AUTO_DUTY,
            }
        } else {
            Target::STOP
        }
    }
}

/// The driver's state across gamepad readings.
#[derive(Debug, Clone)]
pub struct Drive {
    slow_scale: f32,
    slow: bool,
    a_was_pressed: bool,
}

impl Drive {
    /// A drive at full speed, slowed to `slow_scale` while slow mode is on.
    pub fn new(slow_scale: f32) -> Drive {
        Drive {
            slow_scale,
            slow: false,
            a_was_pressed: false,
        }
    }

    /// Whether slow mode is on.
    pub fn slow(&self) -> bool {
        self.slow
    }

    /// The motors' target for one reading. A disconnected gamepad reads neutral, so it
    /// stops the motors; its buttons read released, so slow mode survives a reconnect.
    pub fn update(&mut self, pad: &GamepadState) -> Target {
        let a = pad.pressed(Button::A);
        if a && !self.a_was_pressed {
            self.slow = !self.slow;
        }
        self.a_was_pressed = a;
        let scale = if self.slow { self.slow_scale } else { 1.0 };
        Target {
            a: (pad.left_y() * scale).clamp(-1.0, 1.0),
            b: (pad.right_y() * scale).clamp(-1.0, 1.0),
        }
    }
}

#[cfg(test)]
mod in_simulation;

/// `--slow-scale`: a factor in (0, 1].
pub fn parse_scale(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x > 0.0 && x <= 1.0 => Ok(x),
        _ => Err("expected a factor greater than 0 and at most 1 (e.g. 0.3)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_controller::gamepad::PadState;

    #[test]
    fn the_routine_drives_for_its_time_then_stops() {
        let t = std::time::Instant::now();
        let r = Routine::start(t);
        assert_eq!(
            r.target(t),
            Target {
                a: AUTO_DUTY,
                b: AUTO_DUTY
            }
        );
        assert_eq!(r.target(t + AUTO_TIME / 2).a, AUTO_DUTY);
        assert_eq!(r.target(t + AUTO_TIME), Target::STOP);
    }

    fn pad(ly: f32, ry: f32, a: bool) -> GamepadState {
        GamepadState::from(PadState {
            ly,
            ry,
            btn: u32::from(a) << (Button::A as u32),
            ..PadState::NEUTRAL
        })
    }

    #[test]
    fn sticks_drive_the_motors_and_a_press_toggles_slow_mode() {
        let mut drive = Drive::new(0.5);
        assert_eq!(
            drive.update(&pad(0.8, -0.4, false)),
            Target { a: 0.8, b: -0.4 }
        );
        // Press A: slow from this reading on; holding it does not toggle again.
        assert_eq!(
            drive.update(&pad(0.8, -0.4, true)),
            Target { a: 0.4, b: -0.2 }
        );
        assert_eq!(
            drive.update(&pad(0.8, -0.4, true)),
            Target { a: 0.4, b: -0.2 }
        );
        assert!(drive.slow());
        // Release, press again: full speed.
        drive.update(&pad(0.0, 0.0, false));
        assert_eq!(
            drive.update(&pad(1.0, 1.0, true)),
            Target { a: 1.0, b: 1.0 }
        );
        assert!(!drive.slow());
    }

    #[test]
    fn a_lost_gamepad_stops_the_motors() {
        let mut drive = Drive::new(0.3);
        drive.update(&pad(1.0, 1.0, false));
        assert_eq!(drive.update(&GamepadState::NEUTRAL), Target::STOP);
    }

    #[test]
    fn slow_scale_is_a_factor() {
        assert_eq!(parse_scale("0.25"), Ok(0.25));
        for bad in ["0", "-1", "1.5", "fast", "NaN"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
    }
}

//! Robot physics for the simulated robot (issue 23): what the emulated Smart Devices read
//! when they are backed by a model instead of constants.
//!
//! * [`motor`]: a brushed DC motor from its datasheet numbers, behind a gearbox, driving an
//!   inertia ([`motor::Shaft`]), commanded as a motor controller drives it ([`Drive`]:
//!   a duty cycle, brake or coast);
//! * [`encoder`]: counts of a shaft's angle, with optional noise;
//! * [`battery`]: a battery with internal resistance, whose voltage sags under the motors'
//!   current (solved exactly each step, no lag);
//! * [`drivetrain`]: two motor groups on a differential drive moving a pose;
//! * [`field`]: walls, tape lines, RFID tags, and what the robot's sensors see of them;
//! * [`servo`]: a hobby servo moving toward its commanded position at its rated speed;
//! * [`description`]: the robot description (YAML): which Smart Device is which part;
//! * [`world`]: the robot of a description, stepped, and read and written by param name;
//! * [`integrate`]: the fixed-step fourth-order Runge–Kutta integrator all of it uses.
//!
//! Everything is plain data and pure steps: no I/O, no clock, no global state. Given the
//! same parameters, seed and step, a run is the same on every machine, which is what lets
//! team code be tested in virtual time and a soak replay a seed. Units are SI throughout:
//! metres, seconds, radians, volts, amperes, newton-metres, kilograms.
#![warn(missing_docs)]

pub mod battery;
pub mod description;
pub mod drivetrain;
pub mod encoder;
pub mod field;
pub mod integrate;
pub mod motor;
pub mod servo;
pub mod world;

pub use battery::Battery;
pub use description::{Description, DescriptionError};
pub use drivetrain::{Drivetrain, Pose};
pub use encoder::Encoder;
pub use field::Field;
pub use motor::{DcMotor, Drive, Gearbox, Shaft};
pub use servo::Servo;
pub use world::{Snapshot, World};

/// A physical parameter that cannot describe a real part (zero, negative or not a number
/// where the physics needs a positive value), named so a robot description can point at it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} must be a positive number, got {value}")]
pub struct ParamError {
    /// Which parameter (`stall_current`, `wheel_radius`, ...).
    pub what: &'static str,
    /// The value given.
    pub value: f64,
}

/// `value` if it is finite and above zero.
pub(crate) fn positive(what: &'static str, value: f64) -> Result<f64, ParamError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ParamError { what, value })
    }
}

/// `value` if it is finite and not negative.
pub(crate) fn non_negative(what: &'static str, value: f64) -> Result<f64, ParamError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ParamError { what, value })
    }
}

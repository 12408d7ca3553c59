//! The robot description: which Smart Device is which part of the simulated robot.
//!
//! ```yaml
//! field: field.yaml                # a field file next to this one, or the field inline
//! start: {x: 0.5, y: 1.0, heading: 0}
//! seed: 1                          # sensor noise (optional)
//! battery: {uid: 4951760157141521099596496896, open_circuit_v: 12.6, resistance: 0.02, cells: 3}
//! motors:                          # datasheet models, by name
//!   gearmotor: {nominal_voltage: 12, stall_torque: 0.03, stall_current: 5.5,
//!               free_current: 0.25, free_speed_rpm: 11000}
//! drivetrain:
//!   wheel_radius: 0.05             # metres
//!   track_width: 0.3
//!   mass: 5.0                      # kg
//!   moment: 0.15                   # kg·m² about the centre
//!   radius: 0.2                    # footprint, for the walls
//!   left:  {controller: UID, channel: a, motor: gearmotor, ratio: 30, counts_per_rev: 1440}
//!   right: {controller: UID, channel: b, motor: gearmotor, ratio: 30, inverted: false}
//! mechanisms:                      # other motor-driven shafts (an arm, a flywheel)
//!   arm: {controller: ..., motor: gearmotor, ratio: 100, inertia: 0.02}
//! sensors:                         # the type is the UID's (catalog device id)
//!   - {uid: ..., on: left, counts_per_rev: 1440}                   # encoder
//!   - {uid: ..., left: [0.15, 0.02], center: [0.15, 0], right: [0.15, -0.02]}  # line-follower
//!   - {uid: ..., switch0: [0.2, 0.1], switch1: [0.2, -0.1]}         # limit-switch
//!   - {uid: ..., at: [0, 0]}                                        # rfid
//!   - {uid: ..., speed: 2.0}                                        # servo-motor
//! ```
//!
//! `examples/sim/robot.yaml` is a whole one. Points on the robot are `[forward, left]`
//! metres from its centre. Every rule is checked when the file loads and every error names
//! the file and line, like the catalog's.

mod fields;
mod parts;

use std::path::Path;

use pitcrew_catalog::{Catalog, Uid};

use crate::drivetrain::{Chassis, Pose};
use crate::field::Field;
use crate::{Battery, Gearbox};
use fields::{At, Fields};

pub use parts::field_from_yaml_str;

/// Which output of a motor controller drives a shaft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// `duty_cycle_a`, `enc_pos_a`, ... of a koala-bear.
    A,
    /// `duty_cycle_b`, `enc_pos_b`, ... of a koala-bear.
    B,
    /// The one output of a polar-bear or yogi-bear (`duty_cycle`, `enc_pos`, ...).
    Only,
}

impl Port {
    /// The suffix of this port's params (`_a`, `_b`, or none).
    pub fn suffix(self) -> &'static str {
        match self {
            Port::A => "_a",
            Port::B => "_b",
            Port::Only => "",
        }
    }
}

/// What a motor controller does when not driving (duty cycle 0 or within its deadband).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neutral {
    /// Shorts the motor: it brakes on its own back-EMF.
    Brake,
    /// Opens the motor: it coasts.
    Coast,
}

/// One motor controller output and the motors, gearbox and encoder behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The motor controller's UID.
    pub controller: Uid,
    /// Which of its outputs.
    pub port: Port,
    /// The motors and their gearing.
    pub gearbox: Gearbox,
    /// Positive duty turns the shaft backwards (the right side of a drive, usually).
    pub inverted: bool,
    /// Counts per output revolution of the controller's encoder (`enc_pos`).
    pub counts_per_rev: f64,
    /// What the controller does at zero duty.
    pub neutral: Neutral,
}

/// The drivetrain: its chassis and the two sides.
#[derive(Debug, Clone, PartialEq)]
pub struct DrivetrainSpec {
    /// Wheels, track, mass and moment.
    pub chassis: Chassis,
    /// The footprint's radius (m): how close the centre comes to a wall.
    pub radius: f64,
    /// The left side.
    pub left: Channel,
    /// The right side.
    pub right: Channel,
}

/// A motor-driven shaft that is not a wheel.
#[derive(Debug, Clone, PartialEq)]
pub struct Mechanism {
    /// Its name (what `on:` of an encoder names).
    pub name: String,
    /// The motor controller output driving it.
    pub channel: Channel,
    /// Inertia at the output (kg·m²).
    pub inertia: f64,
}

/// A shaft a sensor can be on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShaftRef {
    /// The left wheels' axle.
    Left,
    /// The right wheels' axle.
    Right,
    /// A mechanism, by index into [`Description::mechanisms`].
    Mechanism(usize),
}

/// A sensor or servo device and what it sees.
#[derive(Debug, Clone, PartialEq)]
pub enum Sensor {
    /// An `encoder` device on a shaft.
    Encoder {
        /// Its UID.
        uid: Uid,
        /// The shaft.
        on: ShaftRef,
        /// Counts per revolution.
        counts_per_rev: f64,
        /// Noise (counts, standard deviation).
        noise: f64,
    },
    /// A `line-follower`: its `left`, `center` and `right` sensors' mounts.
    LineFollower {
        /// Its UID.
        uid: Uid,
        /// Mounts of left, center, right (`[forward, left]` m).
        mounts: [(f64, f64); 3],
    },
    /// A `limit-switch`: each wired switch's mount (switch index, mount).
    LimitSwitch {
        /// Its UID.
        uid: Uid,
        /// `(0..=2, [forward, left])` for each wired switch.
        switches: Vec<(usize, (f64, f64))>,
    },
    /// An `rfid` reader at a mount.
    Rfid {
        /// Its UID.
        uid: Uid,
        /// Mount (`[forward, left]` m).
        at: (f64, f64),
    },
    /// A `servo-motor` whose two servos move at `speed` units/s.
    Servo {
        /// Its UID.
        uid: Uid,
        /// Rated speed.
        speed: f64,
    },
}

/// A loaded, validated robot description.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Where it was read from.
    pub origin: String,
    /// Where the robot starts.
    pub start: Pose,
    /// Seed of the sensors' noise.
    pub seed: u64,
    /// The battery and its device, if the robot has one.
    pub battery: (Battery, Option<Uid>),
    /// The drivetrain, if the robot has one.
    pub drivetrain: Option<DrivetrainSpec>,
    /// Other motor-driven shafts.
    pub mechanisms: Vec<Mechanism>,
    /// Sensors and servos.
    pub sensors: Vec<Sensor>,
    /// The field.
    pub field: Field,
}

/// Why a description did not load: `robot.yaml:12: ...`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct DescriptionError {
    /// The file.
    pub file: String,
    /// 1-based line, when the error has one.
    pub line: Option<usize>,
    /// What is wrong, as a sentence a student can act on.
    pub message: String,
}

impl Description {
    /// Loads `path`; a field given as a file name is read relative to it.
    ///
    /// # Errors
    /// [`DescriptionError`] naming the file (and line) that is unreadable or wrong.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<Description, DescriptionError> {
        let text = read(path)?;
        Description::from_yaml_str(&text, &path.display().to_string(), path.parent(), catalog)
    }

    /// Parses a description; `dir` is where a field file named in it is looked for.
    ///
    /// # Errors
    /// As [`Description::load`].
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        dir: Option<&Path>,
        catalog: &Catalog,
    ) -> Result<Description, DescriptionError> {
        let error = |e: At| e.in_file(origin);
        let root = fields::document(text, "a robot description").map_err(error)?;
        let top = Fields::of(
            &root,
            "the description",
            &[
                "field",
                "start",
                "seed",
                "battery",
                "motors",
                "drivetrain",
                "mechanisms",
                "sensors",
            ],
        )
        .map_err(error)?;
        let field = match top.get("field") {
            Some(node) => match node.as_scalar() {
                Some(name) => load_field(&dir.unwrap_or(Path::new(".")).join(name))?,
                None => parts::field(node).map_err(error)?,
            },
            None => {
                return Err(error(At {
                    line: top.line(),
                    message: "the description needs `field` (a field file, or the field inline)"
                        .into(),
                }))
            }
        };
        let mut description = parts::robot(&top, catalog, field).map_err(error)?;
        description.origin = origin.to_owned();
        Ok(description)
    }

    /// Every device the description backs with physics, with its catalog type name.
    pub fn devices(&self) -> Vec<Uid> {
        let mut out: Vec<Uid> = Vec::new();
        let mut add = |uid: Uid| {
            if !out.contains(&uid) {
                out.push(uid);
            }
        };
        if let Some(uid) = self.battery.1 {
            add(uid);
        }
        if let Some(d) = &self.drivetrain {
            add(d.left.controller);
            add(d.right.controller);
        }
        for m in &self.mechanisms {
            add(m.channel.controller);
        }
        for s in &self.sensors {
            add(s.uid());
        }
        out
    }
}

impl Sensor {
    /// The sensor's UID.
    pub fn uid(&self) -> Uid {
        match self {
            Sensor::Encoder { uid, .. }
            | Sensor::LineFollower { uid, .. }
            | Sensor::LimitSwitch { uid, .. }
            | Sensor::Rfid { uid, .. }
            | Sensor::Servo { uid, .. } => *uid,
        }
    }
}

fn read(path: &Path) -> Result<String, DescriptionError> {
    std::fs::read_to_string(path).map_err(|e| DescriptionError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot read: {e}"),
    })
}

/// Loads a field file.
///
/// # Errors
/// [`DescriptionError`] naming the field file.
pub fn load_field(path: &Path) -> Result<Field, DescriptionError> {
    field_from_yaml_str(&read(path)?, &path.display().to_string())
}

//! A differential drivetrain: a motor group per side, wheels, and the robot's pose.
//!
//! The state is each side's ground speed, the pose and the wheel angles. Each side's
//! gearbox pushes its wheels with force `T/r`; the sum accelerates the mass and the
//! difference, at half the track width, turns the moment of inertia:
//! `v' = (F_l + F_r)/m`, `ω' = (F_r − F_l)·(w/2)/J`, with `v_l = v − ω·w/2`,
//! `v_r = v + ω·w/2`, and the pose following `x' = v·cos θ`, `y' = v·sin θ`, `θ' = ω`.
//! Wheels do not slip (a robot against a wall is held by [`Drivetrain::halt`]).

use crate::integrate::rk4;
use crate::motor::{friction_over_piece, settle, Drive, Gearbox, Load};
use crate::{positive, ParamError};

/// Where the robot is: metres on the field and radians counter-clockwise from +x.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose {
    /// Metres.
    pub x: f64,
    /// Metres.
    pub y: f64,
    /// Radians, counter-clockwise from the field's +x axis.
    pub heading: f64,
}

impl Pose {
    /// The field position of a point `forward` metres ahead of and `left` metres to the
    /// left of the robot's centre (a sensor's mount).
    pub fn at(&self, forward: f64, left: f64) -> (f64, f64) {
        let (s, c) = self.heading.sin_cos();
        (
            self.x + forward * c - left * s,
            self.y + forward * s + left * c,
        )
    }
}

/// The robot's build: what does not change while it drives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chassis {
    /// Wheel radius (m).
    pub wheel_radius: f64,
    /// Distance between the left and right wheels (m).
    pub track_width: f64,
    /// Mass (kg).
    pub mass: f64,
    /// Moment of inertia about the vertical axis through the centre (kg·m²).
    pub moment: f64,
}

impl Chassis {
    /// The accelerations of the left and right sides' ground speeds under the wheel force
    /// `force(side, speed)` of each side that moves (`held[side]` is `Some` of its friction;
    /// `None`: at rest, held by static friction).
    ///
    /// Both sides free: the sum of the forces accelerates the mass, their difference at half
    /// the track turns the moment. One side held: the robot pivots on it, so the free side
    /// moves an effective mass `m/4 + J/w²` (its kinetic energy `½·v²·(m/4 + J/w²)` at
    /// ground speed `v`) and the held side stays exactly at rest; without this, the held
    /// side would be dragged back and forth by the chassis and never come to rest.
    fn accelerations(
        &self,
        held: [Option<f64>; 2],
        force: impl Fn(usize, f64) -> f64,
        (left, right): (f64, f64),
    ) -> (f64, f64) {
        let (fl, fr) = (force(0, left), force(1, right));
        let pivot = self.mass / 4.0 + self.moment / (self.track_width * self.track_width);
        match held {
            [Some(_), Some(_)] => {
                let accel = (fl + fr) / self.mass;
                let spin = (fr - fl) * (self.track_width / 2.0) / self.moment;
                let half = spin * self.track_width / 2.0;
                (accel - half, accel + half)
            }
            [Some(_), None] => (fl / pivot, 0.0),
            [None, Some(_)] => (0.0, fr / pivot),
            [None, None] => (0.0, 0.0),
        }
    }

    /// Checks every dimension is positive.
    ///
    /// # Errors
    /// [`ParamError`] naming the first that is not.
    pub fn checked(self) -> Result<Chassis, ParamError> {
        positive("wheel_radius", self.wheel_radius)?;
        positive("track_width", self.track_width)?;
        positive("mass", self.mass)?;
        positive("moment", self.moment)?;
        Ok(self)
    }
}

/// A drivetrain with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Drivetrain {
    left: Gearbox,
    right: Gearbox,
    chassis: Chassis,
    pose: Pose,
    /// Ground speed of the left and right wheels (m/s).
    speeds: [f64; 2],
    /// Wheel angles, left and right (rad).
    angles: [f64; 2],
    /// Current of each motor of each side during the last step (A).
    currents: [f64; 2],
}

impl Drivetrain {
    /// `left` and `right` gearboxes (their output is the wheel axle) on `chassis`, at rest
    /// at `pose`.
    ///
    /// # Errors
    /// [`ParamError`] for a chassis dimension that is not positive.
    pub fn new(
        left: Gearbox,
        right: Gearbox,
        chassis: Chassis,
        pose: Pose,
    ) -> Result<Drivetrain, ParamError> {
        Ok(Drivetrain {
            left,
            right,
            chassis: chassis.checked()?,
            pose,
            speeds: [0.0; 2],
            angles: [0.0; 2],
            currents: [0.0; 2],
        })
    }

    /// The pose.
    pub fn pose(&self) -> Pose {
        self.pose
    }

    /// Forward speed (m/s).
    pub fn speed(&self) -> f64 {
        (self.speeds[0] + self.speeds[1]) / 2.0
    }

    /// Turn rate (rad/s, counter-clockwise).
    pub fn turn_rate(&self) -> f64 {
        (self.speeds[1] - self.speeds[0]) / self.chassis.track_width
    }

    /// Ground speed of the left and right wheels (m/s).
    pub fn wheel_speeds(&self) -> [f64; 2] {
        self.speeds
    }

    /// Angle of the left and right wheel axles (rad): what an encoder on them counts.
    pub fn wheel_angles(&self) -> [f64; 2] {
        self.angles
    }

    /// Current of each motor on the left and right (A).
    pub fn currents(&self) -> [f64; 2] {
        self.currents
    }

    /// How the two sides load the battery under `left` and `right`.
    pub fn loads(&self, left: Drive, right: Drive) -> [Load; 2] {
        let r = self.chassis.wheel_radius;
        [
            self.left.load(self.speeds[0] / r, left),
            self.right.load(self.speeds[1] / r, right),
        ]
    }

    /// Puts the robot at `pose`, at rest (the wheel angles keep counting from where they are).
    pub fn place(&mut self, pose: Pose) {
        self.pose = pose;
        self.halt();
    }

    /// Stops the robot where it is (it ran into a wall: the wheels are held, the motors
    /// stall).
    pub fn halt(&mut self) {
        self.speeds = [0.0; 2];
    }

    /// Advances `dt` seconds with `left` and `right` held and the battery at `battery_v`,
    /// split into pieces of at most 5 % of the fastest time constant (as [`crate::Shaft::step`]).
    pub fn step(&mut self, left: Drive, right: Drive, battery_v: f64, dt: f64) {
        let c = self.chassis;
        let pieces = ((self.stiffness() * dt / 0.05).ceil().max(1.0) as u32).min(10_000);
        let h = dt / f64::from(pieces);
        let (gl, gr) = (self.left, self.right);
        let drives = [left, right];
        let boxes = [gl, gr];
        let at_rest = [0, 1].map(|i| boxes[i].torque(0.0, drives[i], battery_v));
        for _ in 0..pieces {
            let before = self.speeds;
            // Each side's friction held over the piece; a side at rest that its drive
            // cannot move stays at rest, and the robot pivots on it
            // (`Chassis::accelerations`).
            let held =
                [0, 1].map(|i| friction_over_piece(before[i], at_rest[i], boxes[i].friction()));
            let p = self.pose;
            let state = [
                p.x,
                p.y,
                p.heading,
                before[0],
                before[1],
                self.angles[0],
                self.angles[1],
            ];
            let next = rk4(state, h, |s| {
                let (al, ar) = c.accelerations(
                    held,
                    |i: usize, speed: f64| {
                        let axle = speed / c.wheel_radius;
                        held[i].map_or(0.0, |f| {
                            (boxes[i].torque(axle, drives[i], battery_v) - f) / c.wheel_radius
                        })
                    },
                    (s[3], s[4]),
                );
                let v = (s[3] + s[4]) / 2.0;
                let w = (s[4] - s[3]) / c.track_width;
                let (sin, cos) = s[2].sin_cos();
                [
                    v * cos,
                    v * sin,
                    w,
                    al,
                    ar,
                    s[3] / c.wheel_radius,
                    s[4] / c.wheel_radius,
                ]
            });
            self.pose = Pose {
                x: next[0],
                y: next[1],
                heading: next[2],
            };
            self.angles = [next[5], next[6]];
            self.speeds =
                [0, 1].map(|i| settle(before[i], next[3 + i], at_rest[i], boxes[i].friction()));
        }
        let r = c.wheel_radius;
        self.currents = [
            gl.current(self.speeds[0] / r, left, battery_v),
            gr.current(self.speeds[1] / r, right, battery_v),
        ];
    }

    /// The fastest rate (1/s) at which the sides' speeds settle: what bounds the step.
    fn stiffness(&self) -> f64 {
        let c = self.chassis;
        let per_side = |g: &Gearbox| {
            // The back-EMF's braking torque per rad/s of axle speed, over r²: the drag of
            // one side in newtons per m/s of ground speed.
            g.torque(1.0, Drive::Brake, 0.0).abs() / (c.wheel_radius * c.wheel_radius)
        };
        let k = per_side(&self.left) + per_side(&self.right);
        let half = c.track_width / 2.0;
        (k / c.mass).max(k * half * half / c.moment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motor::DcMotor;

    const CHASSIS: Chassis = Chassis {
        wheel_radius: 0.05,
        track_width: 0.3,
        mass: 5.0,
        moment: 0.15,
    };

    fn drivetrain() -> Drivetrain {
        let g = Gearbox::new(DcMotor::small_12v(), 1, 30.0).unwrap();
        Drivetrain::new(g, g, CHASSIS, Pose::default()).unwrap()
    }

    /// `a` and `b` of `u' = a − b·u` for one side pushing with duty `d` at `volts` on an
    /// effective mass `m` (the robot's mass, or J/(w/2)² for a turn).
    fn first_order(d: f64, volts: f64, m: f64) -> (f64, f64) {
        let g = Gearbox::new(DcMotor::small_12v(), 1, 30.0).unwrap();
        let mo = g.motor();
        let r = CHASSIS.wheel_radius;
        let k = 30.0 * mo.kt() / mo.resistance();
        let a = 2.0 * (k * d * volts - g.friction()) / (r * m);
        let b = 2.0 * k * 30.0 / (mo.kv() * r * r * m);
        (a, b)
    }

    #[test]
    fn straight_ahead_follows_the_closed_form() {
        let mut d = drivetrain();
        let (a, b) = first_order(0.8, 12.0, CHASSIS.mass);
        for i in 1..=2000 {
            d.step(Drive::Duty(0.8), Drive::Duty(0.8), 12.0, 1e-3);
            let t = f64::from(i) * 1e-3;
            let v = a / b * (1.0 - (-b * t).exp());
            let x = a / b * (t - (1.0 - (-b * t).exp()) / b);
            assert!(
                (d.speed() - v).abs() < 1e-6,
                "t={t}: v {} vs {v}",
                d.speed()
            );
            assert!(
                (d.pose().x - x).abs() < 1e-6,
                "t={t}: x {} vs {x}",
                d.pose().x
            );
        }
        assert_eq!(d.pose().y, 0.0);
        assert_eq!(d.pose().heading, 0.0);
        let [l, r] = d.wheel_angles();
        assert!((l - d.pose().x / CHASSIS.wheel_radius).abs() < 1e-9);
        assert_eq!(l, r);
    }

    #[test]
    fn turning_in_place_follows_the_closed_form_and_stays_put() {
        let mut d = drivetrain();
        let half = CHASSIS.track_width / 2.0;
        let (a, b) = first_order(0.5, 12.0, CHASSIS.moment / (half * half));
        for i in 1..=2000 {
            d.step(Drive::Duty(-0.5), Drive::Duty(0.5), 12.0, 1e-3);
            let t = f64::from(i) * 1e-3;
            let heading = a / b * (t - (1.0 - (-b * t).exp()) / b) / half;
            assert!(
                (d.pose().heading - heading).abs() < 1e-6,
                "t={t}: {} vs {heading}",
                d.pose().heading
            );
        }
        assert!(
            d.pose().x.abs() < 1e-12 && d.pose().y.abs() < 1e-12,
            "{:?}",
            d.pose()
        );
        assert!(d.speed().abs() < 1e-12);
    }

    #[test]
    fn a_steady_arc_closes_its_circle() {
        let mut d = drivetrain();
        for _ in 0..10_000 {
            d.step(Drive::Duty(0.4), Drive::Duty(0.8), 12.0, 1e-3);
        }
        let start = d.pose();
        let period = std::f64::consts::TAU / d.turn_rate();
        let radius = d.speed() / d.turn_rate();
        let steps = (period / 1e-4).round() as u32;
        for _ in 0..steps {
            d.step(Drive::Duty(0.4), Drive::Duty(0.8), 12.0, 1e-4);
        }
        let end = d.pose();
        let gap = ((end.x - start.x).powi(2) + (end.y - start.y).powi(2)).sqrt();
        assert!(gap < 1e-3 * radius, "gap {gap} on radius {radius}");
    }

    #[test]
    fn stopped_sides_stay_stopped_without_drive() {
        let mut d = drivetrain();
        for _ in 0..1000 {
            d.step(Drive::Duty(1.0), Drive::Duty(1.0), 12.0, 1e-3);
        }
        for _ in 0..8000 {
            d.step(Drive::Coast, Drive::Coast, 12.0, 1e-3);
        }
        assert_eq!(d.wheel_speeds(), [0.0, 0.0]);
        let x = d.pose().x;
        d.step(Drive::Coast, Drive::Coast, 12.0, 1e-3);
        assert_eq!(d.pose().x, x);
    }

    #[test]
    fn with_one_side_held_the_robot_pivots_on_it_and_both_sides_come_to_rest() {
        let mut d = drivetrain();
        for _ in 0..1000 {
            d.step(Drive::Coast, Drive::Duty(0.5), 12.0, 1e-3);
        }
        assert_eq!(d.wheel_speeds()[0], 0.0, "the coasting side never moved");
        // The left wheel stayed where it was: the centre is half a track from it.
        let p = d.pose();
        let (lx, ly) = p.at(0.0, CHASSIS.track_width / 2.0);
        assert!(
            lx.abs() < 1e-9 && (ly - CHASSIS.track_width / 2.0).abs() < 1e-9,
            "{p:?}"
        );
        assert!(p.heading > 0.1, "{p:?}");
        for _ in 0..8000 {
            d.step(Drive::Coast, Drive::Coast, 12.0, 1e-3);
        }
        assert_eq!(d.wheel_speeds(), [0.0, 0.0]);
    }

    #[test]
    fn mounts_turn_with_the_robot() {
        let p = Pose {
            x: 1.0,
            y: 2.0,
            heading: std::f64::consts::FRAC_PI_2,
        };
        let (x, y) = p.at(0.5, 0.1);
        assert!(
            (x - 0.9).abs() < 1e-12 && (y - 2.5).abs() < 1e-12,
            "{x} {y}"
        );
    }
}

//! Brushed DC motors: the datasheet model, gearing, and a shaft that a motor group turns.
//!
//! The model is the standard one (as in WPILib's `DCMotor`): a winding resistance `R`, a
//! back-EMF constant and a torque constant, all three derived from five datasheet numbers,
//! so a team can type its motor's sheet into a robot description:
//!
//! * `R = nominal_voltage / stall_current`,
//! * `kv = free_speed / (nominal_voltage − R · free_current)` (rad/s per volt),
//! * `kt = stall_torque / stall_current` (N·m per ampere),
//! * current `I = (V − ω / kv) / R`, torque `T = kt · I`.
//!
//! The free current is what the motor's own friction costs at free speed; it is modelled as
//! Coulomb friction `kt · free_current` on the rotor, so an unloaded motor at nominal voltage
//! settles exactly at its free speed, and a coasting one comes to a stop.

use crate::integrate::rk4;
use crate::{non_negative, positive, ParamError};

/// A DC motor from its datasheet numbers (at the motor shaft, before any gearing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcMotor {
    nominal_voltage: f64,
    stall_torque: f64,
    stall_current: f64,
    free_current: f64,
    free_speed: f64,
}

impl DcMotor {
    /// A motor rated at `nominal_voltage` (V): `stall_torque` (N·m) and `stall_current` (A)
    /// with the shaft held, `free_current` (A) and `free_speed` (rad/s) with it unloaded.
    ///
    /// # Errors
    /// [`ParamError`] when a number is not positive, or the free current is not below the
    /// stall current (no motor spins freely on more current than it stalls on).
    pub fn new(
        nominal_voltage: f64,
        stall_torque: f64,
        stall_current: f64,
        free_current: f64,
        free_speed: f64,
    ) -> Result<DcMotor, ParamError> {
        let stall_current = positive("stall_current", stall_current)?;
        let free_current = non_negative("free_current", free_current)?;
        if free_current >= stall_current {
            return Err(ParamError {
                what: "free_current (below stall_current)",
                value: free_current,
            });
        }
        Ok(DcMotor {
            nominal_voltage: positive("nominal_voltage", nominal_voltage)?,
            stall_torque: positive("stall_torque", stall_torque)?,
            stall_current,
            free_current,
            free_speed: positive("free_speed", free_speed)?,
        })
    }

    /// A small 12 V gearmotor's motor (before its gearbox) of the kind the koala-bear drives:
    /// 0.03 N·m and 5.5 A at stall, 0.25 A and 11 000 rpm free.
    pub fn small_12v() -> DcMotor {
        DcMotor {
            nominal_voltage: 12.0,
            stall_torque: 0.03,
            stall_current: 5.5,
            free_current: 0.25,
            free_speed: rpm(11_000.0),
        }
    }

    /// Winding resistance (Ω).
    pub fn resistance(&self) -> f64 {
        self.nominal_voltage / self.stall_current
    }

    /// Speed per volt of back-EMF (rad/s per V).
    pub fn kv(&self) -> f64 {
        self.free_speed / (self.nominal_voltage - self.resistance() * self.free_current)
    }

    /// Torque per ampere (N·m per A).
    pub fn kt(&self) -> f64 {
        self.stall_torque / self.stall_current
    }

    /// The rated free speed (rad/s).
    pub fn free_speed(&self) -> f64 {
        self.free_speed
    }

    /// The rated stall current (A).
    pub fn stall_current(&self) -> f64 {
        self.stall_current
    }

    /// The current drawn at motor speed `speed` (rad/s) with `voltage` across the terminals.
    pub fn current(&self, speed: f64, voltage: f64) -> f64 {
        (voltage - speed / self.kv()) / self.resistance()
    }

    /// The torque of the rotor's own friction (what the free current pays for).
    pub fn friction_torque(&self) -> f64 {
        self.kt() * self.free_current
    }
}

/// Revolutions per minute in rad/s.
pub fn rpm(rpm: f64) -> f64 {
    rpm * std::f64::consts::TAU / 60.0
}

/// How a motor controller drives its motor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drive {
    /// `duty` (clamped to [-1, 1]) of the battery voltage across the terminals.
    Duty(f64),
    /// Terminals shorted: the motor's back-EMF brakes it (a controller's "brake" mode at a
    /// duty cycle of 0).
    Brake,
    /// Terminals open: no current, the load spins down on friction alone (a controller's
    /// "coast" mode, and a disabled controller).
    Coast,
}

impl Drive {
    /// The terminal voltage at battery voltage `battery_v`, or `None` when open.
    fn voltage(self, battery_v: f64) -> Option<f64> {
        match self {
            Drive::Duty(d) => Some(d.clamp(-1.0, 1.0) * battery_v),
            Drive::Brake => Some(0.0),
            Drive::Coast => None,
        }
    }

    /// The duty cycle the battery sees (0 when braking or coasting).
    fn duty(self) -> f64 {
        match self {
            Drive::Duty(d) => d.clamp(-1.0, 1.0),
            Drive::Brake | Drive::Coast => 0.0,
        }
    }
}

/// `motors` identical motors geared together, `ratio` motor turns per output turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gearbox {
    motor: DcMotor,
    motors: u32,
    ratio: f64,
}

impl Gearbox {
    /// `motors` of `motor` (at least one) through a reduction of `ratio` (> 0; 1 is direct).
    ///
    /// # Errors
    /// [`ParamError`] for no motors or a ratio that is not positive.
    pub fn new(motor: DcMotor, motors: u32, ratio: f64) -> Result<Gearbox, ParamError> {
        if motors == 0 {
            return Err(ParamError {
                what: "motors",
                value: 0.0,
            });
        }
        Ok(Gearbox {
            motor,
            motors,
            ratio: positive("ratio", ratio)?,
        })
    }

    /// The motor.
    pub fn motor(&self) -> &DcMotor {
        &self.motor
    }

    /// How many motors.
    pub fn motors(&self) -> u32 {
        self.motors
    }

    /// The current of each motor at output speed `speed` under `drive` (0 when coasting).
    pub fn current(&self, speed: f64, drive: Drive, battery_v: f64) -> f64 {
        drive
            .voltage(battery_v)
            .map_or(0.0, |v| self.motor.current(speed * self.ratio, v))
    }

    /// The torque at the output from the motors' current (before friction).
    pub fn torque(&self, speed: f64, drive: Drive, battery_v: f64) -> f64 {
        f64::from(self.motors)
            * self.ratio
            * self.motor.kt()
            * self.current(speed, drive, battery_v)
    }

    /// The motors' own friction, seen at the output.
    pub fn friction(&self) -> f64 {
        f64::from(self.motors) * self.ratio * self.motor.friction_torque()
    }

    /// The output's free speed (rad/s) at the motor's nominal voltage.
    pub fn free_speed(&self) -> f64 {
        self.motor.free_speed / self.ratio
    }

    /// How the group loads the battery under `drive` at output speed `speed`.
    pub fn load(&self, speed: f64, drive: Drive) -> Load {
        // The bridge draws duty × motor current from the battery, and the motor current
        // is linear in the battery voltage: I_batt = d·n·(d·V − ω·G/kv)/R.
        let d = drive.duty();
        let n = f64::from(self.motors);
        let r = self.motor.resistance();
        Load {
            conductance: n * d * d / r,
            offset: n * d * speed * self.ratio / (self.motor.kv() * r),
        }
    }

    /// The largest rate (1/s) at which the group's speed settles on inertia `inertia`: what
    /// bounds a stable integration step.
    fn stiffness(&self, inertia: f64) -> f64 {
        let m = &self.motor;
        f64::from(self.motors) * self.ratio * self.ratio * m.kt()
            / (m.kv() * m.resistance() * inertia)
    }
}

/// What a motor group draws from the battery: `conductance · V − offset` amperes at battery
/// voltage `V`, linear so that the battery's sag is solved exactly (see
/// [`crate::Battery::voltage_under`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Siemens.
    pub conductance: f64,
    /// Amperes.
    pub offset: f64,
}

impl Load {
    /// The current at battery voltage `battery_v`.
    pub fn current(&self, battery_v: f64) -> f64 {
        self.conductance * battery_v - self.offset
    }
}

/// The Coulomb friction torque (signed, to subtract from the drive) over one integration
/// piece that starts at `speed`, or `None` when the shaft stays at rest because the drive
/// at rest (`drive_at_rest`) does not overcome `friction`.
///
/// Why held for a piece rather than re-evaluated inside it: friction flips sign with the
/// speed, and a Runge–Kutta step whose stages straddle zero would average the two signs
/// into a speed that hovers around zero instead of stopping. Held, the piece is a smooth
/// system; a piece whose speed crosses zero is then settled by [`settle`].
pub(crate) fn friction_over_piece(speed: f64, drive_at_rest: f64, friction: f64) -> Option<f64> {
    if speed != 0.0 {
        Some(friction.copysign(speed))
    } else if drive_at_rest.abs() <= friction {
        None
    } else {
        Some(friction.copysign(drive_at_rest))
    }
}

/// The speed after a piece that started at `before` and integrated to `after`: exactly 0
/// when the motion reversed although the drive at rest cannot overcome the friction (what
/// stopped it was friction, which cannot push back).
pub(crate) fn settle(before: f64, after: f64, drive_at_rest: f64, friction: f64) -> f64 {
    let reversed = before != 0.0 && (after == 0.0 || after.signum() != before.signum());
    if reversed && drive_at_rest.abs() <= friction {
        0.0
    } else {
        after
    }
}

/// A gearbox's output turning an inertia: a mechanism arm, a flywheel, one wheel on a stand.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaft {
    gearbox: Gearbox,
    inertia: f64,
    viscous: f64,
    angle: f64,
    speed: f64,
    current: f64,
}

impl Shaft {
    /// `gearbox` turning `inertia` (kg·m² at the output, > 0) with extra viscous friction
    /// `viscous` (N·m·s/rad at the output, ≥ 0), at rest at angle 0.
    ///
    /// # Errors
    /// [`ParamError`] for an inertia that is not positive or a negative viscous friction.
    pub fn new(gearbox: Gearbox, inertia: f64, viscous: f64) -> Result<Shaft, ParamError> {
        Ok(Shaft {
            gearbox,
            inertia: positive("inertia", inertia)?,
            viscous: non_negative("viscous", viscous)?,
            angle: 0.0,
            speed: 0.0,
            current: 0.0,
        })
    }

    /// Output angle (rad, unbounded).
    pub fn angle(&self) -> f64 {
        self.angle
    }

    /// Output speed (rad/s).
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Current of each motor during the last step (A; negative when regenerating).
    pub fn current(&self) -> f64 {
        self.current
    }

    /// The gearbox.
    pub fn gearbox(&self) -> &Gearbox {
        &self.gearbox
    }

    /// How the shaft loads the battery under `drive` now.
    pub fn load(&self, drive: Drive) -> Load {
        self.gearbox.load(self.speed, drive)
    }

    /// Sets the angle (an encoder reset, a placed mechanism) without moving anything else.
    pub fn set_angle(&mut self, angle: f64) {
        self.angle = angle;
    }

    /// Advances `dt` seconds with `drive` held and the battery at `battery_v`.
    ///
    /// The step is split so that each piece is at most 5 % of the shaft's time constant:
    /// a light shaft on a strong motor settles in microseconds and would make a fixed 1 ms
    /// RK4 step diverge.
    pub fn step(&mut self, drive: Drive, battery_v: f64, dt: f64) {
        let g = self.gearbox;
        let rate = g.stiffness(self.inertia) + self.viscous / self.inertia;
        let pieces = ((rate * dt / 0.05).ceil().max(1.0) as u32).min(10_000);
        let h = dt / f64::from(pieces);
        let friction = g.friction();
        let (inertia, viscous) = (self.inertia, self.viscous);
        let at_rest = g.torque(0.0, drive, battery_v);
        for _ in 0..pieces {
            let Some(held) = friction_over_piece(self.speed, at_rest, friction) else {
                continue;
            };
            let [angle, speed] = rk4([self.angle, self.speed], h, |s| {
                let torque = g.torque(s[1], drive, battery_v) - held - viscous * s[1];
                [s[1], torque / inertia]
            });
            self.angle = angle;
            self.speed = settle(self.speed, speed, at_rest, friction);
        }
        self.current = g.current(self.speed, drive, battery_v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_shaft(ratio: f64) -> Shaft {
        let g = Gearbox::new(DcMotor::small_12v(), 1, ratio).unwrap();
        Shaft::new(g, 1e-6, 0.0).unwrap()
    }

    fn run(shaft: &mut Shaft, drive: Drive, volts: f64, seconds: f64) {
        for _ in 0..(seconds * 1000.0).round() as u32 {
            shaft.step(drive, volts, 1e-3);
        }
    }

    #[test]
    fn an_unloaded_motor_settles_at_its_free_speed_and_free_current() {
        let m = DcMotor::small_12v();
        let mut s = free_shaft(1.0);
        run(&mut s, Drive::Duty(1.0), 12.0, 2.0);
        assert!(
            (s.speed() / m.free_speed() - 1.0).abs() < 0.01,
            "{}",
            s.speed()
        );
        assert!((s.current() / 0.25 - 1.0).abs() < 0.01, "{}", s.current());
    }

    #[test]
    fn a_held_motor_draws_its_stall_current() {
        let m = DcMotor::small_12v();
        assert!((m.current(0.0, 12.0) / m.stall_current() - 1.0).abs() < 1e-12);
        assert!((m.kt() * m.current(0.0, 12.0) - 0.03).abs() < 1e-12);
    }

    #[test]
    fn gearing_divides_the_free_speed() {
        let mut s = free_shaft(30.0);
        run(&mut s, Drive::Duty(1.0), 12.0, 2.0);
        let want = DcMotor::small_12v().free_speed() / 30.0;
        assert!(
            (s.speed() / want - 1.0).abs() < 0.01,
            "{} vs {want}",
            s.speed()
        );
    }

    #[test]
    fn a_step_follows_the_first_order_closed_form() {
        // J·ω' = n·G·kt·(V − G·ω/kv)/R − friction, so ω(t) = ω∞·(1 − e^(−t/τ)).
        let g = Gearbox::new(DcMotor::small_12v(), 2, 20.0).unwrap();
        let j = 2e-3;
        let mut s = Shaft::new(g, j, 0.0).unwrap();
        let m = g.motor();
        let k = 2.0 * 20.0 * m.kt() / m.resistance();
        let b = k * 20.0 / m.kv() / j;
        let a = (k * 6.0 - g.friction()) / j;
        for i in 1..=300 {
            s.step(Drive::Duty(0.5), 12.0, 1e-3);
            let t = f64::from(i) * 1e-3;
            let want = a / b * (1.0 - (-b * t).exp());
            assert!(
                (s.speed() - want).abs() < 1e-6 * (a / b),
                "t={t}: {} vs {want}",
                s.speed()
            );
        }
    }

    #[test]
    fn coasting_stops_on_friction_alone_and_braking_stops_sooner() {
        let mut coast = free_shaft(10.0);
        run(&mut coast, Drive::Duty(1.0), 12.0, 1.0);
        let mut brake = coast.clone();
        let start = coast.speed();
        // Coulomb friction alone: a linear spin-down at friction / inertia.
        let slope = coast.gearbox().friction() / 1e-6;
        coast.step(Drive::Coast, 12.0, 1e-3);
        assert!((start - coast.speed() - slope * 1e-3).abs() < 1e-6 * start);
        assert_eq!(coast.current(), 0.0);
        brake.step(Drive::Brake, 12.0, 1e-3);
        assert!(brake.speed() < coast.speed());
        run(&mut coast, Drive::Coast, 12.0, 1.0);
        assert_eq!(coast.speed(), 0.0, "at rest, exactly, and stays there");
    }

    #[test]
    fn a_small_duty_does_not_overcome_friction() {
        let mut s = free_shaft(1.0);
        run(&mut s, Drive::Duty(0.001), 12.0, 0.1);
        assert_eq!(s.speed(), 0.0);
        assert_eq!(s.angle(), 0.0);
    }

    #[test]
    fn reversing_the_duty_reverses_the_motor() {
        let mut s = free_shaft(1.0);
        run(&mut s, Drive::Duty(-1.0), 12.0, 1.0);
        assert!((s.speed() / -DcMotor::small_12v().free_speed() - 1.0).abs() < 0.01);
    }

    #[test]
    fn datasheet_numbers_are_checked() {
        assert_eq!(
            DcMotor::new(12.0, 0.03, 1.0, 2.0, 100.0).unwrap_err().what,
            "free_current (below stall_current)"
        );
        assert_eq!(
            DcMotor::new(12.0, -1.0, 5.0, 0.1, 100.0).unwrap_err().what,
            "stall_torque"
        );
        assert_eq!(
            DcMotor::new(f64::NAN, 1.0, 5.0, 0.1, 100.0)
                .unwrap_err()
                .what,
            "nominal_voltage"
        );
        assert!(Gearbox::new(DcMotor::small_12v(), 0, 1.0).is_err());
    }
}

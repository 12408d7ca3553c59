//! The simulated robot as its devices see it: a [`Description`] brought to life, stepped in
//! time, read and written by Smart Device param name.
//!
//! The emulated devices ask the world for the values they report (`enc_pos_a`, `v_batt`,
//! `center`, ...) and hand it what they are written (`duty_cycle_a`, `servo0`, ...) and
//! when they are disabled. Everything else a device holds (PID gains, LEDs) stays the
//! device's: [`World::read`] answers `None` for it.

use std::collections::HashMap;
use std::f64::consts::TAU;

use pitcrew_catalog::{Uid, Value};

use crate::description::{Channel, Description, Neutral, Port, Sensor, ShaftRef};
use crate::drivetrain::{Drivetrain, Pose};
use crate::encoder::wrap_i16;
use crate::motor::Load;
use crate::{Battery, Drive, Encoder, Field, Servo, Shaft};

/// How close a limit switch's mount must come to a wall to close (m).
pub const SWITCH_TRAVEL: f64 = 0.005;
/// A cell below this reads `is_unsafe` on the battery device (V).
pub const UNSAFE_CELL_V: f64 = 3.0;

/// What a motor controller output was told, and its encoder's zero.
#[derive(Debug, Clone)]
struct Output {
    channel: Channel,
    shaft: ShaftRef,
    duty: f64,
    enabled: bool,
    deadband: f64,
    /// DEV_DISABLE received and no duty cycle written since.
    disabled: bool,
    /// Count subtracted from the shaft's (a write of `enc_pos` sets the count).
    zero: f64,
}

impl Output {
    fn new(channel: Channel, shaft: ShaftRef) -> Output {
        Output {
            channel,
            shaft,
            duty: 0.0,
            enabled: true,
            deadband: 0.0,
            disabled: false,
            zero: 0.0,
        }
    }

    /// How the controller drives its motor now.
    fn drive(&self) -> Drive {
        if self.disabled || !self.enabled {
            return Drive::Coast;
        }
        let d = if self.channel.inverted {
            -self.duty
        } else {
            self.duty
        };
        if d.abs() <= self.deadband || d == 0.0 {
            match self.channel.neutral {
                Neutral::Brake => Drive::Brake,
                Neutral::Coast => Drive::Coast,
            }
        } else {
            Drive::Duty(d)
        }
    }

    /// The sign that turns shaft motion into this output's count (inverted outputs count
    /// forward when driven forward).
    fn sign(&self) -> f64 {
        if self.channel.inverted {
            -1.0
        } else {
            1.0
        }
    }
}

/// One motor's state, for `pitcrew sim state`.
#[derive(Debug, Clone, PartialEq)]
pub struct MotorState {
    /// `left`, `right` or the mechanism's name.
    pub name: String,
    /// Output shaft speed (rad/s).
    pub speed: f64,
    /// Current of each motor (A).
    pub current: f64,
}

/// A snapshot of the world, for `pitcrew sim state` and the field view.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Simulated time since the start (s).
    pub time: f64,
    /// The robot's pose.
    pub pose: Pose,
    /// Ground speed of the left and right wheels (m/s), if there is a drivetrain.
    pub wheel_speeds: Option<[f64; 2]>,
    /// Battery terminal voltage (V).
    pub battery_v: f64,
    /// Current out of the battery (A).
    pub battery_current: f64,
    /// Every motor group.
    pub motors: Vec<MotorState>,
}

/// The simulated robot and its field.
#[derive(Debug, Clone)]
pub struct World {
    description: Description,
    time: f64,
    battery: Battery,
    battery_v: f64,
    battery_current: f64,
    drivetrain: Option<Drivetrain>,
    shafts: Vec<Shaft>,
    outputs: HashMap<(Uid, Port), Output>,
    encoders: HashMap<Uid, Encoder>,
    servos: HashMap<Uid, ([Servo; 2], [Option<f64>; 2])>,
}

impl World {
    /// The robot of `description` at its start pose, at rest, battery unloaded.
    pub fn new(description: &Description) -> World {
        let d = description.clone();
        let drivetrain = d.drivetrain.as_ref().map(|t| {
            let built = Drivetrain::new(t.left.gearbox, t.right.gearbox, t.chassis, d.start);
            built.unwrap_or_else(|_| unreachable!("the description checked the chassis"))
        });
        let mut outputs = HashMap::new();
        if let Some(t) = &d.drivetrain {
            outputs.insert(
                (t.left.controller, t.left.port),
                Output::new(t.left.clone(), ShaftRef::Left),
            );
            outputs.insert(
                (t.right.controller, t.right.port),
                Output::new(t.right.clone(), ShaftRef::Right),
            );
        }
        let shafts = d
            .mechanisms
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let out = Output::new(m.channel.clone(), ShaftRef::Mechanism(i));
                outputs.insert((m.channel.controller, m.channel.port), out);
                Shaft::new(m.channel.gearbox, m.inertia, 0.0)
                    .unwrap_or_else(|_| unreachable!("the description checked the inertia"))
            })
            .collect();
        let mut encoders = HashMap::new();
        let mut servos = HashMap::new();
        for (i, s) in d.sensors.iter().enumerate() {
            match s {
                Sensor::Encoder {
                    uid,
                    counts_per_rev,
                    noise,
                    ..
                } => {
                    let seed = d.seed.wrapping_add(i as u64);
                    if let Ok(e) = Encoder::new(*counts_per_rev, *noise, seed) {
                        encoders.insert(*uid, e);
                    }
                }
                Sensor::Servo { uid, speed } => {
                    if let Ok(servo) = Servo::new(*speed) {
                        servos.insert(*uid, ([servo; 2], [None; 2]));
                    }
                }
                _ => {}
            }
        }
        let battery = d.battery.0;
        World {
            description: d,
            time: 0.0,
            battery,
            battery_v: battery.voltage_at(0.0),
            battery_current: 0.0,
            drivetrain,
            shafts,
            outputs,
            encoders,
            servos,
        }
    }

    /// The description this world was built from.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The field.
    pub fn field(&self) -> &Field {
        &self.description.field
    }

    /// Advances the world `dt` seconds with every output held as last written.
    pub fn step(&mut self, dt: f64) {
        let drive_of = |outputs: &HashMap<(Uid, Port), Output>, shaft: &ShaftRef| {
            outputs
                .values()
                .find(|o| &o.shaft == shaft)
                .map_or(Drive::Coast, Output::drive)
        };
        let left = drive_of(&self.outputs, &ShaftRef::Left);
        let right = drive_of(&self.outputs, &ShaftRef::Right);
        let drives: Vec<Drive> = (0..self.shafts.len())
            .map(|i| drive_of(&self.outputs, &ShaftRef::Mechanism(i)))
            .collect();
        let mut loads: Vec<Load> = self
            .shafts
            .iter()
            .zip(&drives)
            .map(|(s, d)| s.load(*d))
            .collect();
        if let Some(t) = &self.drivetrain {
            loads.extend(t.loads(left, right));
        }
        self.battery_v = self.battery.voltage_under(&loads);
        self.battery_current = loads.iter().map(|l| l.current(self.battery_v)).sum();
        for (shaft, drive) in self.shafts.iter_mut().zip(&drives) {
            shaft.step(*drive, self.battery_v, dt);
        }
        if let (Some(t), Some(spec)) = (&mut self.drivetrain, &self.description.drivetrain) {
            t.step(left, right, self.battery_v, dt);
            let mut pose = t.pose();
            if self.description.field.confine(&mut pose, spec.radius) {
                // Against a wall: held there, wheels stopped, motors stalling.
                t.place(pose);
            }
        }
        for (servos, targets) in self.servos.values_mut() {
            for (servo, target) in servos.iter_mut().zip(targets.iter()) {
                servo.step(*target, dt);
            }
        }
        self.time += dt;
    }

    /// Moves the robot to `pose`, at rest.
    pub fn place(&mut self, pose: Pose) {
        if let Some(t) = &mut self.drivetrain {
            let mut pose = pose;
            if let Some(spec) = &self.description.drivetrain {
                self.description.field.confine(&mut pose, spec.radius);
            }
            t.place(pose);
        }
    }

    /// Back to the start: pose, speeds, encoders, battery, time and every command.
    pub fn reset(&mut self) {
        *self = World::new(&self.description);
    }

    /// Takes a written value; `false` when the physics has no use for this param (the
    /// device keeps it as any device would).
    pub fn write(&mut self, uid: Uid, param: &str, value: Value) -> bool {
        if let Some((_, targets)) = self.servos.get_mut(&uid) {
            let Some(i) = ["servo0", "servo1"].iter().position(|p| *p == param) else {
                return false;
            };
            targets[i] = as_f64(value);
            return targets[i].is_some();
        }
        let Some((port, name)) = split_port(param) else {
            return false;
        };
        let count = self.count_of(uid, port);
        let Some(out) = self.outputs.get_mut(&(uid, port)) else {
            return false;
        };
        match (name, value) {
            ("duty_cycle", Value::F32(d)) if d.is_finite() => {
                out.duty = f64::from(d).clamp(-1.0, 1.0);
                out.disabled = false;
            }
            ("motor_enabled", Value::Bool(b)) => out.enabled = b,
            ("deadband", Value::F32(d)) if d.is_finite() => out.deadband = f64::from(d).abs(),
            ("enc_pos", Value::F32(p)) if p.is_finite() => {
                if let Some(count) = count {
                    out.zero = count - f64::from(p);
                }
            }
            _ => return false,
        }
        true
    }

    /// A DEV_DISABLE: every output of `uid` stops driving (coasts) until written again.
    pub fn disable(&mut self, uid: Uid) {
        for ((u, _), out) in &mut self.outputs {
            if *u == uid {
                out.disabled = true;
                out.duty = 0.0;
            }
        }
        if let Some((_, targets)) = self.servos.get_mut(&uid) {
            *targets = [None; 2];
        }
    }

    /// The value the physics gives `param` of `uid`, or `None` when it gives none.
    pub fn read(&mut self, uid: Uid, param: &str) -> Option<Value> {
        if self.description.battery.1 == Some(uid) {
            return self.battery_param(param);
        }
        if let Some((port, name)) = split_port(param) {
            if self.outputs.contains_key(&(uid, port)) {
                return self.controller_param(uid, port, name);
            }
        }
        let sensor = self
            .description
            .sensors
            .iter()
            .find(|s| s.uid() == uid)?
            .clone();
        self.sensor_param(&sensor, param)
    }

    /// The state for `pitcrew sim state`.
    pub fn snapshot(&self) -> Snapshot {
        let mut motors = Vec::new();
        if let Some(t) = &self.drivetrain {
            let r = self
                .description
                .drivetrain
                .as_ref()
                .map_or(1.0, |s| s.chassis.wheel_radius);
            for (i, name) in ["left", "right"].into_iter().enumerate() {
                motors.push(MotorState {
                    name: name.to_owned(),
                    speed: t.wheel_speeds()[i] / r,
                    current: t.currents()[i],
                });
            }
        }
        for (m, s) in self.description.mechanisms.iter().zip(&self.shafts) {
            motors.push(MotorState {
                name: m.name.clone(),
                speed: s.speed(),
                current: s.current(),
            });
        }
        Snapshot {
            time: self.time,
            pose: self.pose(),
            wheel_speeds: self.drivetrain.as_ref().map(Drivetrain::wheel_speeds),
            battery_v: self.battery_v,
            battery_current: self.battery_current,
            motors,
        }
    }

    /// The robot's pose (the start pose when it has no drivetrain).
    pub fn pose(&self) -> Pose {
        self.drivetrain
            .as_ref()
            .map_or(self.description.start, Drivetrain::pose)
    }

    /// Angle and speed of a shaft (rad, rad/s).
    fn shaft(&self, shaft: &ShaftRef) -> Option<(f64, f64)> {
        match shaft {
            ShaftRef::Left | ShaftRef::Right => {
                let t = self.drivetrain.as_ref()?;
                let r = self.description.drivetrain.as_ref()?.chassis.wheel_radius;
                let i = usize::from(*shaft == ShaftRef::Right);
                Some((t.wheel_angles()[i], t.wheel_speeds()[i] / r))
            }
            ShaftRef::Mechanism(i) => self.shafts.get(*i).map(|s| (s.angle(), s.speed())),
        }
    }

    /// The raw count of output `port` of `uid` (before its zero).
    fn count_of(&self, uid: Uid, port: Port) -> Option<f64> {
        let out = self.outputs.get(&(uid, port))?;
        let (angle, _) = self.shaft(&out.shaft)?;
        Some(out.sign() * angle / TAU * out.channel.counts_per_rev)
    }

    fn controller_param(&self, uid: Uid, port: Port, name: &str) -> Option<Value> {
        let out = self.outputs.get(&(uid, port))?;
        let (_, speed) = self.shaft(&out.shaft)?;
        let value = match name {
            "enc_pos" => self.count_of(uid, port)? - out.zero,
            "enc_vel" => out.sign() * speed / TAU * out.channel.counts_per_rev,
            "motor_current" => {
                let per_motor = match out.shaft {
                    ShaftRef::Left => self.drivetrain.as_ref()?.currents()[0],
                    ShaftRef::Right => self.drivetrain.as_ref()?.currents()[1],
                    ShaftRef::Mechanism(i) => self.shafts.get(i)?.current(),
                };
                per_motor.abs() * f64::from(out.channel.gearbox.motors())
            }
            _ => return None,
        };
        Some(Value::F32(value as f32))
    }

    fn battery_param(&self, param: &str) -> Option<Value> {
        let cells = self.battery.cells();
        let cell = self.battery.cell_voltage(self.battery_v);
        let cell_v = |n: u32| Value::F32(if n <= cells { cell as f32 } else { 0.0 });
        Some(match param {
            "v_batt" => Value::F32(self.battery_v as f32),
            "v_cell1" => cell_v(1),
            "v_cell2" => cell_v(2),
            "v_cell3" => cell_v(3),
            "dv_cell2" | "dv_cell3" => Value::F32(0.0),
            "is_unsafe" => Value::Bool(cell < UNSAFE_CELL_V),
            "calibrated" => Value::Bool(true),
            _ => return None,
        })
    }

    fn sensor_param(&mut self, sensor: &Sensor, param: &str) -> Option<Value> {
        let pose = self.pose();
        let field = &self.description.field;
        match sensor {
            Sensor::Encoder { uid, on, .. } => {
                let (angle, _) = (param == "rotation").then(|| self.shaft(on)).flatten()?;
                let count = self.encoders.get_mut(uid)?.count(angle);
                Some(Value::I16(wrap_i16(count)))
            }
            Sensor::LineFollower { mounts, .. } => {
                let i = ["left", "center", "right"]
                    .iter()
                    .position(|p| *p == param)?;
                let (f, l) = mounts[i];
                Some(Value::F32(field.reflectance(pose.at(f, l)) as f32))
            }
            Sensor::LimitSwitch { switches, .. } => {
                let i = ["switch0", "switch1", "switch2"]
                    .iter()
                    .position(|p| *p == param)?;
                let (_, (f, l)) = switches.iter().find(|(n, _)| *n == i)?;
                Some(Value::Bool(
                    field.wall_distance(pose.at(*f, *l)) <= SWITCH_TRAVEL,
                ))
            }
            Sensor::Rfid { at, .. } => {
                let tag = field.tag_at(pose.at(at.0, at.1));
                match param {
                    "id" => Some(Value::U32(tag.unwrap_or(0))),
                    "tag_detect" => Some(Value::U8(u8::from(tag.is_some()))),
                    _ => None,
                }
            }
            Sensor::Servo { uid, .. } => {
                let i = ["servo0", "servo1"].iter().position(|p| *p == param)?;
                let (servos, _) = self.servos.get(uid)?;
                Some(Value::F32(servos[i].position() as f32))
            }
        }
    }
}

/// `duty_cycle_a` → (A, `duty_cycle`); `enc_pos` → (Only, `enc_pos`).
fn split_port(param: &str) -> Option<(Port, &str)> {
    const NAMES: [&str; 5] = [
        "duty_cycle",
        "enc_pos",
        "enc_vel",
        "motor_current",
        "deadband",
    ];
    const KOALA: [&str; 4] = ["duty_cycle", "enc_pos", "deadband", "motor_enabled"];
    if let Some(name) = param.strip_suffix("_a").filter(|n| KOALA.contains(n)) {
        return Some((Port::A, name));
    }
    if let Some(name) = param.strip_suffix("_b").filter(|n| KOALA.contains(n)) {
        return Some((Port::B, name));
    }
    NAMES.contains(&param).then_some((Port::Only, param))
}

fn as_f64(value: Value) -> Option<f64> {
    match value {
        Value::F32(v) if v.is_finite() => Some(f64::from(v)),
        _ => None,
    }
}

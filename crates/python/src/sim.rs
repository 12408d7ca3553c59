//! `pitcrew._native.SimWorld`: the simulated robot of `crates/sim` for `pitcrew.sim`, the
//! stepped simulation that tests a team's code in virtual time.
//!
//! The world steps in Rust (`step(seconds)` runs every 1 ms step without coming back to
//! Python), so a 2.5-minute match costs Python only the team's own calls. Reads and writes
//! are checked against the catalog exactly as `pitcrew.Robot` checks them (the same
//! exceptions, the same sentences), so code tested here fails here the way it would on the
//! robot.

use std::collections::HashMap;
use std::path::Path;

use pitcrew_catalog::{Catalog, Param, Uid, Value};
use pitcrew_sim::{Description, Pose, World};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::coerce;
use crate::convert;
use crate::errors::{self, Kind};
use crate::robot;

/// The physics step (s).
const STEP: f64 = 1e-3;

/// A simulated robot, stepped by its caller.
#[pyclass(module = "pitcrew._native")]
pub struct SimWorld {
    world: World,
    catalog: &'static Catalog,
    /// What the team last wrote to each param the physics does not give (PID gains, ...):
    /// read back as a device would.
    written: HashMap<(Uid, String), Value>,
}

impl SimWorld {
    /// The device `uid` names and its catalog param `param`, or the exception to raise.
    fn param(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        param: &str,
    ) -> PyResult<(Uid, &'static Param)> {
        let uid = self.device(py, device)?;
        let ty = self
            .catalog
            .type_of(uid)
            .ok_or_else(|| errors::new(py, Kind::NoDevice, format!("{uid}: no catalog type")))?;
        let p = ty.param(param).ok_or_else(|| {
            let message = robot::unknown_param(&uid.to_string(), ty.name(), param, ty.params());
            errors::new(py, Kind::UnknownParam, message)
        })?;
        Ok((uid, p))
    }

    /// The simulated device `device` names (a decimal UID, `str` or `int`).
    fn device(&self, py: Python<'_>, device: &Bound<'_, PyAny>) -> PyResult<Uid> {
        let text = device.str()?.to_string();
        let uid: Uid = text.parse().map_err(|e| {
            errors::new(
                py,
                Kind::NoDevice,
                format!("{text} is not a device UID: {e}"),
            )
        })?;
        if !self.world.description().devices().contains(&uid) {
            return Err(errors::new(
                py,
                Kind::NoDevice,
                format!("{uid}: no device of the simulated robot has this UID"),
            ));
        }
        Ok(uid)
    }

    /// `value` as a write of `param`, or the exception `pitcrew.Robot.set_value` raises.
    fn value(
        &self,
        py: Python<'_>,
        uid: Uid,
        p: &Param,
        value: &Bound<'_, PyAny>,
        clamp: bool,
    ) -> PyResult<Value> {
        if !p.writeable() {
            return Err(errors::new(
                py,
                Kind::Access,
                format!("{uid}: {} is read-only", p.name()),
            ));
        }
        let mut type_name = String::new();
        let given = convert::given(value, &mut type_name);
        let v = coerce::for_write(p, given, || convert::repr(value), clamp)
            .map_err(|r| errors::refusal(py, &uid.to_string(), &r))?;
        if !clamp {
            return Ok(v);
        }
        p.bounds()
            .clamp(v)
            .map(|(clamped, _)| clamped)
            .map_err(|e| errors::new(py, Kind::InvalidValue, format!("{uid}: {}: {e}", p.name())))
    }
}

#[pymethods]
impl SimWorld {
    /// Loads the robot description at `path` (its field file beside it).
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<SimWorld> {
        let catalog = Catalog::embedded();
        let description = Description::load(Path::new(path), catalog)
            .map_err(|e| errors::new(py, Kind::RobotFile, e.to_string()))?;
        Ok(SimWorld {
            world: World::new(&description),
            catalog,
            written: HashMap::new(),
        })
    }

    /// Advances the physics `seconds` (in 1 ms steps; a remainder under 1 ms is stepped too).
    fn step(&mut self, py: Python<'_>, seconds: f64) {
        if !(seconds.is_finite() && seconds > 0.0) {
            return;
        }
        let world = &mut self.world;
        py.detach(|| {
            let whole = (seconds / STEP).floor();
            for _ in 0..whole as u64 {
                world.step(STEP);
            }
            let rest = seconds - whole * STEP;
            if rest > 1e-12 {
                world.step(rest);
            }
        });
    }

    /// The value of `param` of `device` now: what the physics gives it, else what was last
    /// written to it, else 0.
    fn get_value<'py>(
        &mut self,
        py: Python<'py>,
        device: &Bound<'py, PyAny>,
        param: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (uid, p) = self.param(py, device, param)?;
        if !p.readable() {
            return Err(errors::new(
                py,
                Kind::Access,
                format!("{uid}: {param} is write-only"),
            ));
        }
        let v = self
            .world
            .read(uid, param)
            .or_else(|| self.written.get(&(uid, param.to_owned())).copied())
            .or_else(|| {
                p.scalar()
                    .and_then(|s| Value::from_le_bytes(s, &[0; 8]).ok())
            })
            .unwrap_or(Value::Bool(false));
        convert::param_to_py(py, v)
    }

    /// Checks a write as `pitcrew.Robot.set_value` does and returns the value to pass to
    /// `set_value` (clamped with `clamp=True`); writes nothing.
    #[pyo3(signature = (device, param, value, *, clamp=false))]
    fn check_value<'py>(
        &self,
        py: Python<'py>,
        device: &Bound<'py, PyAny>,
        param: &str,
        value: &Bound<'py, PyAny>,
        clamp: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (uid, p) = self.param(py, device, param)?;
        let v = self.value(py, uid, p, value, clamp)?;
        convert::param_to_py(py, v)
    }

    /// Writes `param` of `device` (checked as `check_value`): what the device would be
    /// sent.
    #[pyo3(signature = (device, param, value, *, clamp=false))]
    fn set_value(
        &mut self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        param: &str,
        value: &Bound<'_, PyAny>,
        clamp: bool,
    ) -> PyResult<()> {
        let (uid, p) = self.param(py, device, param)?;
        let v = self.value(py, uid, p, value, clamp)?;
        self.world.write(uid, param, v);
        self.written.insert((uid, param.to_owned()), v);
        Ok(())
    }

    /// What the broker does to `device` when the robot is disabled or a lease runs out:
    /// every output (`params`, or all) to its catalog safe value; with `disable`, then
    /// DEV_DISABLE.
    #[pyo3(signature = (device, params=None, *, disable=false))]
    fn make_safe(
        &mut self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        params: Option<Vec<String>>,
        disable: bool,
    ) -> PyResult<()> {
        let uid = self.device(py, device)?;
        let Some(ty) = self.catalog.type_of(uid) else {
            return Ok(());
        };
        for (p, safe) in ty.outputs() {
            if params
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == p.name()))
            {
                self.world.write(uid, p.name(), safe);
                self.written.insert((uid, p.name().to_owned()), safe);
            }
        }
        if disable {
            self.world.disable(uid);
        }
        Ok(())
    }

    /// The output params of `device` (writeable params with a safe value).
    fn outputs(&self, device: &str) -> Vec<String> {
        device
            .parse::<Uid>()
            .ok()
            .and_then(|uid| self.catalog.type_of(uid))
            .map(|ty| ty.outputs().map(|(p, _)| p.name().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The devices of the simulated robot, as `pitcrew.Robot.devices()` lists them: dicts
    /// with `name`, `type`, `uid` and `connected`.
    fn devices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for uid in self.world.description().devices() {
            let d = PyDict::new(py);
            d.set_item("name", uid.to_string())?;
            d.set_item("type", self.catalog.type_of(uid).map_or("?", |t| t.name()))?;
            d.set_item("uid", uid.to_string())?;
            d.set_item("connected", true)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// The pose: `(x, y, heading)` in metres and radians.
    fn pose(&self) -> (f64, f64, f64) {
        let p = self.world.pose();
        (p.x, p.y, p.heading)
    }

    /// Puts the robot at `x`, `y`, `heading`, at rest.
    fn place(&mut self, py: Python<'_>, x: f64, y: f64, heading: f64) -> PyResult<()> {
        if ![x, y, heading].iter().all(|v| v.is_finite()) {
            return Err(errors::new(
                py,
                Kind::InvalidValue,
                format!("place: x, y and heading must be finite numbers, got {x}, {y}, {heading}"),
            ));
        }
        self.world.place(Pose { x, y, heading });
        Ok(())
    }

    /// Back to the start.
    fn reset(&mut self) {
        self.world.reset();
        self.written.clear();
    }

    /// Seconds of simulated time.
    #[getter]
    fn time(&self) -> f64 {
        self.world.snapshot().time
    }

    /// The whole state (`pitcrew sim state --json`'s keys).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.world.snapshot();
        let d = PyDict::new(py);
        d.set_item("time", s.time)?;
        d.set_item("x", s.pose.x)?;
        d.set_item("y", s.pose.y)?;
        d.set_item("heading", s.pose.heading)?;
        d.set_item("battery_v", s.battery_v)?;
        d.set_item("battery_current", s.battery_current)?;
        d.set_item("wheel_speeds", s.wheel_speeds.map(|w| (w[0], w[1])))?;
        let motors = PyList::empty(py);
        for m in &s.motors {
            let md = PyDict::new(py);
            md.set_item("name", &m.name)?;
            md.set_item("speed", m.speed)?;
            md.set_item("current", m.current)?;
            motors.append(md)?;
        }
        d.set_item("motors", motors)?;
        Ok(d)
    }
}

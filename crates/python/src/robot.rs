//! `pitcrew.Robot`: the robot's Smart Devices, read and written through their shared-memory
//! buffers (the same seqlock buffers, validation and errors as a Rust controller).
//!
//! A device is named by its decimal UID, or by a name from the robot file. Each device's
//! buffer is opened on first use and kept, so a `get_value` is a dictionary lookup and one
//! seqlock read; a buffer the device broker replaced (it restarted) is opened again once,
//! transparently.
//!
//! The robot state (spec/robot-state.md) comes from the device broker's robot-state segment
//! through the application crate's reader: `Robot.mode`, `Robot.enabled`,
//! `Robot.match_time_left`, `Robot.state()` (the whole state, as `pitcrew state --json`
//! prints it) and `Robot.wait_for_change(timeout)`, which blocks on the segment's futex with
//! the GIL released. Without a running broker the robot reads as disabled.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList};
use pyo3::IntoPyObjectExt;

use pitcrew_buffer::{Buffer, BufferError, SegmentKey};
use pitcrew_catalog::{Catalog, Uid, ValueError};

use crate::coerce;
use crate::convert;
use crate::errors::{self, Kind};
use crate::robot_file::RobotFile;
use crate::settings;

/// An opened device buffer and the name it is reported under.
struct Opened {
    /// How messages name the device: its robot-file name, else `koala-bear <uid>`.
    label: String,
    buffer: Buffer,
}

/// The robot's Smart Devices, by UID or robot-file name.
#[pyclass(module = "pitcrew._native", name = "Robot", frozen)]
pub(crate) struct Robot {
    namespace: String,
    catalog: Arc<Catalog>,
    robot_file: Option<RobotFile>,
    /// Opened buffers, keyed by the device as the caller wrote it.
    open: Mutex<HashMap<String, Opened>>,
    /// The robot-state reader, and the change count last returned by `wait_for_change`.
    state: Mutex<(pitcrew_controller::robot::Robot, u32)>,
}

#[pymethods]
impl Robot {
    /// `set_value` (`write`) or `check_value` (not `write`): validates `value` for
    /// `param` of `device` and, when `write`, writes it.
    fn store(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        param: &str,
        value: &Bound<'_, PyAny>,
        clamp: bool,
        write: bool,
    ) -> PyResult<()> {
        let key = device_key(device)?;
        let mut type_name = String::new();
        let given = convert::given(value, &mut type_name);
        let mut open = self.lock(py);
        for attempt in 0..2 {
            let opened = self.opened(py, &mut open, &key)?;
            let stored = {
                let ty = opened.buffer.device_type();
                let Some(p) = ty.param(param) else {
                    return Err(errors::new(
                        py,
                        Kind::UnknownParam,
                        unknown_param(&opened.label, ty.name(), param, ty.params()),
                    ));
                };
                if !p.writeable() {
                    return Err(errors::buffer(
                        py,
                        &opened.label,
                        BufferError::NotWriteable {
                            name: opened.buffer.name().to_owned(),
                            param: param.to_owned(),
                        },
                    ));
                }
                coerce::for_write(p, given, || convert::repr(value), clamp)
                    .map_err(|r| errors::refusal(py, &opened.label, &r))?
            };
            if !write {
                return Ok(());
            }
            match opened.buffer.write_value(param, stored) {
                Ok(_) => return Ok(()),
                Err(BufferError::Superseded { .. }) if attempt == 0 => {
                    open.remove(key.as_ref());
                }
                Err(e) => return Err(errors::buffer(py, &opened.label, e)),
            }
        }
        Err(replaced(py, &key))
    }

    /// Opens the robot of `namespace` (default: `PITCREW_NAMESPACE`, else `rt`), with the
    /// device names of `robot_file` (a `robot.yaml`) and the catalog file `catalog`
    /// (default: `PITCREW_CATALOG`, else the built-in catalog).
    #[new]
    #[pyo3(signature = (namespace=None, robot_file=None, catalog=None))]
    fn new(
        py: Python<'_>,
        namespace: Option<&str>,
        robot_file: Option<PathBuf>,
        catalog: Option<PathBuf>,
    ) -> PyResult<Robot> {
        let config = settings::resolve(namespace).map_err(|m| errors::new(py, Kind::Error, m))?;
        let catalog = settings::catalog(&config, catalog.as_deref())
            .map_err(|e| errors::new(py, Kind::Error, e.to_string()))?;
        let robot_file = robot_file
            .map(|path| RobotFile::load(&path, &catalog))
            .transpose()
            .map_err(|e| errors::robot_file(py, &e))?;
        let mut reader = pitcrew_controller::robot::Robot::new(&config.namespace);
        let seen = reader.change_count();
        Ok(Robot {
            namespace: config.namespace,
            catalog,
            robot_file,
            open: Mutex::new(HashMap::new()),
            state: Mutex::new((reader, seen)),
        })
    }

    /// The instance namespace (prefix of every buffer name).
    #[getter]
    fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The mode the robot is enabled in now (`"autonomous"` or `"teleop"`), or `None` while
    /// it is disabled or emergency-stopped.
    #[getter]
    fn mode(&self, py: Python<'_>) -> Option<&'static str> {
        self.robot_status(py)
            .state
            .mode()
            .map(pitcrew_controller::robot::Mode::name)
    }

    /// Whether controllers drive the outputs now.
    #[getter]
    fn enabled(&self, py: Python<'_>) -> bool {
        self.robot_status(py).enabled()
    }

    /// Seconds left in the running match, or `None` without one.
    #[getter]
    fn match_time_left(&self, py: Python<'_>) -> Option<f64> {
        let status = self.robot_status(py);
        status
            .match_left(pitcrew_controller::robot::monotonic_ns())
            .map(|d| d.as_secs_f64())
    }

    /// The whole robot state as a dict (`state`, `mode`, `enabled`, `estopped`, `reason`,
    /// `match`, ...), as `pitcrew state --json` prints it.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self
            .robot_status(py)
            .to_json(pitcrew_controller::robot::monotonic_ns(), None);
        convert::to_py(py, &pitcrew_controller::codec::from_json(&json))
    }

    /// Blocks until the robot state changes or `timeout` seconds pass (the GIL released);
    /// returns whether it changed.
    #[pyo3(signature = (timeout=1.0))]
    fn wait_for_change(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        if !timeout.is_finite() || !(0.0..=3600.0).contains(&timeout) {
            return Err(errors::new(
                py,
                Kind::InvalidValue,
                format!("timeout is a number of seconds from 0 to 3600, got {timeout}"),
            ));
        }
        let wait = std::time::Duration::from_secs_f64(timeout);
        let mut guard = self
            .state
            .lock_py_attached(py)
            .unwrap_or_else(|e| e.into_inner());
        let (reader, seen) = &mut *guard;
        let before = *seen;
        let now = py
            .detach(|| reader.wait_for_change(before, wait))
            .map_err(|e| errors::new(py, Kind::Error, e.to_string()))?;
        *seen = now;
        Ok(now != before)
    }

    /// Reads a sensed (readable) param of `device`: a `bool`, `int` or `float` by the
    /// param's catalog type (`bytes` for an array param).
    fn get_value<'py>(
        &self,
        py: Python<'py>,
        device: &Bound<'py, PyAny>,
        param: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = device_key(device)?;
        let mut open = self.lock(py);
        for attempt in 0..2 {
            let opened = self.opened(py, &mut open, &key)?;
            let e = match opened.buffer.get_value(param) {
                Ok(v) => return convert::param_to_py(py, v),
                Err(BufferError::Superseded { .. }) if attempt == 0 => {
                    open.remove(key.as_ref());
                    continue;
                }
                Err(e) => e,
            };
            let ty = opened.buffer.device_type();
            return match e {
                BufferError::UnknownParam { .. } => Err(errors::new(
                    py,
                    Kind::UnknownParam,
                    unknown_param(&opened.label, ty.name(), param, ty.params()),
                )),
                BufferError::Value {
                    source: ValueError::WrongType { .. },
                    ..
                } if ty.param(param).is_some_and(|p| p.scalar().is_none()) => {
                    let bytes = opened
                        .buffer
                        .get_raw(param)
                        .map_err(|e| errors::buffer(py, &opened.label, e))?;
                    PyBytes::new(py, &bytes).into_bound_py_any(py)
                }
                e => Err(errors::buffer(py, &opened.label, e)),
            };
        }
        Err(replaced(py, &key))
    }

    /// Writes a writeable param of `device`. The value must fit the param's type (a bool
    /// param takes True/False, a float param a number, an integer param a whole number in
    /// range) and lie within its catalog bounds, or an exception says why and nothing is
    /// written. With `clamp=True` a number beyond the bounds is clamped to them instead
    /// (and a warning logged).
    #[pyo3(signature = (device, param, value, *, clamp=false))]
    fn set_value(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        param: &str,
        value: &Bound<'_, PyAny>,
        clamp: bool,
    ) -> PyResult<()> {
        self.store(py, device, param, value, clamp, true)
    }

    /// Checks a write as `set_value` would, raising the same exception, but writes
    /// nothing: `pitcrew run` checks each write of a student's `main` where it is made and
    /// sends the writes only once the `main` returns.
    #[pyo3(signature = (device, param, value, *, clamp=false))]
    fn check_value(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        param: &str,
        value: &Bound<'_, PyAny>,
        clamp: bool,
    ) -> PyResult<()> {
        self.store(py, device, param, value, clamp, false)
    }

    /// The Smart Devices of this robot: every device with a buffer now, and every device of
    /// the robot file, as dicts with `name` (the robot-file name, else the UID), `type`,
    /// `uid` (decimal string) and `connected`.
    fn devices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let segments = pitcrew_buffer::list(&self.namespace)
            .map_err(|e| errors::new(py, Kind::Error, e.to_string()))?;
        let mut rows: Vec<(String, String, Uid, bool)> = Vec::new();
        for s in segments {
            let SegmentKey::Uid(uid) = s.key else {
                continue;
            };
            let name = self.name_of(uid).unwrap_or_else(|| uid.to_string());
            rows.push((name, s.type_name, uid, s.valid && s.owner_alive));
        }
        if let Some(file) = &self.robot_file {
            for d in file.devices() {
                if !rows.iter().any(|r| r.2 == d.uid) {
                    rows.push((d.name.clone(), d.type_name.clone(), d.uid, false));
                }
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let list = PyList::empty(py);
        for (name, type_name, uid, connected) in rows {
            let row = PyDict::new(py);
            row.set_item("name", name)?;
            row.set_item("type", type_name)?;
            row.set_item("uid", uid.to_string())?;
            row.set_item("connected", connected)?;
            list.append(row)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        match &self.robot_file {
            Some(f) => format!(
                "Robot(namespace={:?}, robot_file={:?})",
                self.namespace,
                f.origin()
            ),
            None => format!("Robot(namespace={:?})", self.namespace),
        }
    }
}

impl Robot {
    /// The cache, locked without holding the GIL while waiting (pyo3's `MutexExt`): an
    /// uncontended lock costs one atomic; a contended one cannot deadlock with a thread
    /// that holds the GIL and waits for this lock.
    fn robot_status(&self, py: Python<'_>) -> pitcrew_controller::robot::RobotStatus {
        let mut guard = self
            .state
            .lock_py_attached(py)
            .unwrap_or_else(|e| e.into_inner());
        guard.0.status()
    }

    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, HashMap<String, Opened>> {
        // Entries are inserted and removed whole; a panic cannot leave one half-made.
        self.open
            .lock_py_attached(py)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn name_of(&self, uid: Uid) -> Option<String> {
        self.robot_file
            .as_ref()
            .and_then(|f| f.name_of(uid))
            .map(str::to_owned)
    }

    /// The opened buffer of the device `key`, opening it on first use.
    fn opened<'m>(
        &self,
        py: Python<'_>,
        open: &'m mut HashMap<String, Opened>,
        key: &DeviceKey,
    ) -> PyResult<&'m Opened> {
        if !open.contains_key(key.as_ref()) {
            let opened = self.open_device(py, key.as_ref())?;
            open.insert(key.as_ref().to_owned(), opened);
        }
        open.get(key.as_ref())
            .ok_or_else(|| errors::new(py, Kind::Error, "internal: device cache lost an entry"))
    }

    fn open_device(&self, py: Python<'_>, key: &str) -> PyResult<Opened> {
        let (label, ty, uid) = if key.bytes().all(|b| b.is_ascii_digit()) && !key.is_empty() {
            let uid: Uid = key.parse().map_err(|e| {
                errors::new(
                    py,
                    Kind::NoDevice,
                    format!("{key} is not a device UID: {e}"),
                )
            })?;
            let ty = self.catalog.type_of(uid).ok_or_else(|| {
                errors::new(
                    py,
                    Kind::NoDevice,
                    format!(
                        "UID {uid} has device id {}, which is no device type of the catalog",
                        uid.device_id()
                    ),
                )
            })?;
            let label = self
                .name_of(uid)
                .unwrap_or_else(|| format!("{} {uid}", ty.name()));
            (label, ty, uid)
        } else {
            let entry = self
                .robot_file
                .as_ref()
                .and_then(|f| f.get(key))
                .ok_or_else(|| errors::new(py, Kind::NoDevice, self.no_device(key)))?;
            let ty = self.catalog.get(&entry.type_name).ok_or_else(|| {
                errors::new(
                    py,
                    Kind::NoDevice,
                    format!("{key}: no type {} in the catalog", entry.type_name),
                )
            })?;
            (key.to_owned(), ty, entry.uid)
        };
        let buffer = Buffer::open(&self.namespace, Arc::clone(ty), SegmentKey::Uid(uid))
            .map_err(|e| errors::buffer(py, &label, e))?;
        Ok(Opened { label, buffer })
    }

    fn no_device(&self, key: &str) -> String {
        match &self.robot_file {
            Some(f) => {
                let names: Vec<&str> = f.devices().iter().map(|d| d.name.as_str()).collect();
                let known = if names.is_empty() {
                    "it names no devices".to_owned()
                } else {
                    format!("it names {}", names.join(", "))
                };
                format!("no device {key} in {} ({known})", f.origin())
            }
            None => format!(
                "no device {key}: name a device by its UID (see Robot.devices()), or pass \
                 Robot(robot_file=\"robot.yaml\") a file that names it"
            ),
        }
    }
}

/// A device as the caller named it: a `str` as is, an `int` UID in decimal.
type DeviceKey<'a> = Cow<'a, str>;

fn device_key<'a>(device: &'a Bound<'_, PyAny>) -> PyResult<DeviceKey<'a>> {
    if let Ok(s) = device.extract::<&str>() {
        return Ok(Cow::Borrowed(s));
    }
    if device.is_instance_of::<PyInt>() && !device.is_instance_of::<PyBool>() {
        return Ok(Cow::Owned(device.str()?.to_string()));
    }
    Err(PyTypeError::new_err(format!(
        "a device is named by a str (its robot-file name or decimal UID) or an int UID, not {}",
        convert::type_name(device)
    )))
}

fn replaced(py: Python<'_>, key: &str) -> PyErr {
    errors::new(
        py,
        Kind::NotConnected,
        format!("{key}: the device broker replaced its buffer twice in a row; try again"),
    )
}

/// The message of an unknown param of `label` (a device), listing the type's params.
pub(crate) fn unknown_param(
    label: &str,
    type_name: &str,
    param: &str,
    params: &[pitcrew_catalog::Param],
) -> String {
    let names: Vec<&str> = params.iter().map(pitcrew_catalog::Param::name).collect();
    format!(
        "{label}: {type_name} has no param {param} (its params: {})",
        names.join(", ")
    )
}

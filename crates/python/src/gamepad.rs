//! `pitcrew.Gamepad`: one gamepad's buttons and sticks, by catalog name.
//!
//! It wraps the controller crate's typed gamepad reader (`pitcrew_controller::gamepad::Gamepad`,
//! `Button`, `GamepadState`), as a Rust controller reads it. Every read goes through
//! `Gamepad::state()`, which reads all inputs from one version of the buffer and returns
//! neutral (nothing pressed, sticks centred, not connected) when the driver's laptop is
//! gone, the watchdog tripped or the receiver process died, so code written for the happy
//! path stops the robot. A gamepad whose buffer does not exist yet (no receiver running)
//! reads neutral too, and is looked for again at each read; one whose receiver restarted is
//! reopened.
//!
//! `Gamepad.wait_for_change(timeout)` blocks on the buffer's futex (the GIL released), as
//! `pitcrew-teleop` does, so that code (and `pitcrew run`) reacts to a stick change at once
//! instead of at its next period.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::IntoPyObjectExt;

use pitcrew_buffer::BufferError;
use pitcrew_catalog::Catalog;
use pitcrew_controller::gamepad::{Button, Gamepad as Reader, GamepadState, AXES};

use crate::errors::{self, Kind};
use crate::settings;

/// A gamepad of the robot, read from the buffer the gamepad receiver writes.
#[pyclass(module = "pitcrew._native", name = "Gamepad", frozen)]
pub(crate) struct Gamepad {
    namespace: String,
    index: u32,
    catalog: Catalog,
    /// Shared with a `wait_for_change` that blocks without holding the lock.
    reader: Mutex<Option<Arc<Reader>>>,
    /// The buffer's change count as of the last `wait_for_change` (or the opening).
    seen: AtomicU32,
    /// The state `wait_for_change` last returned on: a datagram that repeats the sticks
    /// moves the change count but is no change.
    last: Mutex<GamepadState>,
}

/// How often a `wait_for_change` without a buffer looks for one (no receiver yet).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// One input of a gamepad.
#[derive(Clone, Copy)]
enum Input {
    Button(Button),
    Axis(usize),
}

#[pymethods]
impl Gamepad {
    /// Gamepad `index` (0 for the first) of `namespace` (default: `PITCREW_NAMESPACE`,
    /// else `rt`).
    #[new]
    #[pyo3(signature = (index=0, *, namespace=None))]
    fn new(py: Python<'_>, index: u32, namespace: Option<&str>) -> PyResult<Gamepad> {
        let config = settings::resolve(namespace).map_err(|m| errors::new(py, Kind::Error, m))?;
        let catalog = settings::catalog(&config, None)
            .map_err(|e| errors::new(py, Kind::Error, e.to_string()))?;
        Ok(Gamepad {
            namespace: config.namespace,
            index,
            catalog: (*catalog).clone(),
            reader: Mutex::new(None),
            seen: AtomicU32::new(0),
            last: Mutex::new(GamepadState::NEUTRAL),
        })
    }

    /// Blocks until an input changes (the receiver stores different buttons or sticks), or
    /// the gamepad connects or disconnects, or `timeout` seconds pass (other Python threads
    /// run meanwhile); whether it changed since the last call returned. A datagram that
    /// repeats the same input wakes the futex but not the caller.
    #[pyo3(signature = (timeout=1.0))]
    fn wait_for_change(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        if !timeout.is_finite() || !(0.0..=3600.0).contains(&timeout) {
            return Err(errors::new(
                py,
                Kind::InvalidValue,
                format!("timeout is a number of seconds from 0 to 3600, got {timeout}"),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs_f64(timeout);
        loop {
            let Some(reader) = self.reader(py)? else {
                // No receiver yet: look again until the deadline; its appearing is a change.
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                py.detach(|| std::thread::sleep(left.min(LOOK_AGAIN)));
                if self.reader(py)?.is_some() {
                    *self
                        .last
                        .lock_py_attached(py)
                        .unwrap_or_else(|e| e.into_inner()) = self.state(py)?;
                    return Ok(true);
                }
                continue;
            };
            let seen = self.seen.load(Ordering::Acquire);
            let left = deadline.saturating_duration_since(Instant::now());
            match py.detach(|| reader.wait_for_change(seen, left)) {
                Ok(now) if now == seen => return Ok(false),
                Ok(now) => {
                    self.seen.store(now, Ordering::Release);
                    let state = self.state(py)?;
                    let mut last = self
                        .last
                        .lock_py_attached(py)
                        .unwrap_or_else(|e| e.into_inner());
                    if *last != state {
                        *last = state;
                        return Ok(true);
                    }
                }
                Err(BufferError::Superseded { .. }) => {
                    // A new receiver: the next read opens it; its input is new.
                    self.lock(py).take();
                    return Ok(true);
                }
                Err(e) => return Err(self.error(py, &e)),
            }
        }
    }

    /// The gamepad's index.
    #[getter]
    fn index(&self) -> u32 {
        self.index
    }

    /// Whether the gamepad is connected now (False: every input reads neutral).
    #[getter]
    fn connected(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state(py)?.connected)
    }

    /// An input by its catalog name: `button_a` ... `button_xbox`, `l_bumper`, `dpad_up`
    /// and the other buttons read as `bool`; `joystick_left_x`, `joystick_left_y`,
    /// `joystick_right_x`, `joystick_right_y` as a `float` in [-1, 1] (y up is positive).
    fn get_value<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let input = input(name).ok_or_else(|| {
            let mut names: Vec<&str> = Button::ALL.iter().map(|b| b.param()).collect();
            names.extend(AXES);
            errors::new(
                py,
                Kind::UnknownParam,
                format!(
                    "a gamepad has no input {name} (its inputs: {})",
                    names.join(", ")
                ),
            )
        })?;
        let state = self.state(py)?;
        match input {
            Input::Button(b) => state.pressed(b).into_bound_py_any(py),
            Input::Axis(i) => f64::from(state.axes()[i]).into_bound_py_any(py),
        }
    }

    fn __repr__(&self) -> String {
        format!("Gamepad({}, namespace={:?})", self.index, self.namespace)
    }
}

impl Gamepad {
    /// One consistent reading; neutral when there is no gamepad to read.
    fn state(&self, py: Python<'_>) -> PyResult<GamepadState> {
        for _ in 0..2 {
            let Some(r) = self.reader(py)? else {
                return Ok(GamepadState::NEUTRAL);
            };
            match r.state() {
                Ok(state) => return Ok(state),
                Err(BufferError::Superseded { .. }) => {
                    self.lock(py).take();
                }
                Err(e) => return Err(self.error(py, &e)),
            }
        }
        Ok(GamepadState::NEUTRAL)
    }

    /// The open reader, opened now if need be (recording its change count as seen);
    /// `None` while the gamepad has no buffer (no receiver running).
    fn reader(&self, py: Python<'_>) -> PyResult<Option<Arc<Reader>>> {
        let mut reader = self.lock(py);
        if reader.is_none() {
            match Reader::open_with(&self.namespace, &self.catalog, self.index) {
                Ok(r) => {
                    self.seen.store(r.change_count(), Ordering::Release);
                    *reader = Some(Arc::new(r));
                }
                Err(BufferError::NotFound { .. } | BufferError::NotInitialised { .. }) => {
                    return Ok(None)
                }
                Err(e) => return Err(self.error(py, &e)),
            }
        }
        Ok(reader.clone())
    }

    fn lock(&self, py: Python<'_>) -> std::sync::MutexGuard<'_, Option<Arc<Reader>>> {
        // A poisoned lock only means a panic between two plain assignments.
        self.reader
            .lock_py_attached(py)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, py: Python<'_>, e: &BufferError) -> PyErr {
        errors::new(py, Kind::Error, format!("gamepad {}: {e}", self.index))
    }
}

fn input(name: &str) -> Option<Input> {
    if let Some(b) = Button::ALL.iter().find(|b| b.param() == name) {
        return Some(Input::Button(*b));
    }
    AXES.iter().position(|a| *a == name).map(Input::Axis)
}

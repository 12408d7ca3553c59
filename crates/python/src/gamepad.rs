//! `pitcrew.Gamepad`: one gamepad's buttons and sticks, by catalog name.
//!
//! It wraps the application crate's typed gamepad reader (`pitcrew::gamepad::Gamepad`,
//! `Button`, `GamepadState`), as a Rust controller reads it. Every read goes through
//! `Gamepad::state()`, which reads all inputs from one version of the buffer and returns
//! neutral (nothing pressed, sticks centred, not connected) when the driver's laptop is
//! gone, the watchdog tripped or the receiver process died, so code written for the happy
//! path stops the robot. A gamepad whose buffer does not exist yet (no receiver running)
//! reads neutral too, and is looked for again at each read; one whose receiver restarted is
//! reopened.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::IntoPyObjectExt;

use pitcrew::gamepad::{Button, Gamepad as Reader, GamepadState};
use pitcrew_buffer::BufferError;
use pitcrew_catalog::Catalog;

use crate::errors::{self, Kind};
use crate::settings;

/// The stick axes, in [`GamepadState::axes`] order.
const AXES: [&str; 4] = [
    "joystick_left_x",
    "joystick_left_y",
    "joystick_right_x",
    "joystick_right_y",
];

/// A gamepad of the robot, read from the buffer the gamepad receiver writes.
#[pyclass(module = "pitcrew._native", name = "Gamepad", frozen)]
pub(crate) struct Gamepad {
    namespace: String,
    index: u32,
    catalog: Catalog,
    reader: Mutex<Option<Reader>>,
}

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
        })
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
            Input::Axis(i) => f64::from(state.axes[i]).into_bound_py_any(py),
        }
    }

    fn __repr__(&self) -> String {
        format!("Gamepad({}, namespace={:?})", self.index, self.namespace)
    }
}

impl Gamepad {
    /// One consistent reading; neutral when there is no gamepad to read.
    fn state(&self, py: Python<'_>) -> PyResult<GamepadState> {
        // A poisoned lock only means a panic between two plain assignments.
        let mut reader = self
            .reader
            .lock_py_attached(py)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for _ in 0..2 {
            if reader.is_none() {
                match Reader::open_with(&self.namespace, &self.catalog, self.index) {
                    Ok(r) => *reader = Some(r),
                    Err(BufferError::NotFound { .. } | BufferError::NotInitialised { .. }) => {
                        return Ok(GamepadState::NEUTRAL)
                    }
                    Err(e) => return Err(self.error(py, &e)),
                }
            }
            let Some(r) = reader.as_ref() else {
                return Ok(GamepadState::NEUTRAL);
            };
            match r.state() {
                Ok(state) => return Ok(state),
                Err(BufferError::Superseded { .. }) => *reader = None,
                Err(e) => return Err(self.error(py, &e)),
            }
        }
        Ok(GamepadState::NEUTRAL)
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

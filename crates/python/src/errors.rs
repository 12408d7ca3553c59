//! Rust errors → the Python exceptions of `pitcrew/errors.py`.
//!
//! The exception classes are defined in Python (so they can also be built-in exceptions:
//! `OutOfBoundsError` is a `ValueError`, `RpcTimeoutError` a `TimeoutError`) and looked up
//! once each. Every message leads with the device as the student named it, then says what
//! is wrong in the words of the catalog: "left_drive: duty_cycle_a is at most 1.0, got 3".

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use pitcrew::rpc::{ErrorCode, RpcError};
use pitcrew_buffer::BufferError;
use pitcrew_catalog::ValueError;

use crate::coerce::Refusal;
use crate::convert;
use crate::robot_file::RobotFileError;

/// The exception classes of `pitcrew.errors`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `pitcrew.Error`, the base of all.
    Error,
    /// No device of that name or UID.
    NoDevice,
    /// The device (or its owner) is not there now.
    NotConnected,
    /// No param of that name.
    UnknownParam,
    /// Reading a write-only or writing a read-only param.
    Access,
    /// A value of the wrong kind.
    WrongType,
    /// NaN, or beyond the type's range.
    InvalidValue,
    /// Beyond the catalog's bounds.
    OutOfBounds,
    /// A bad robot file.
    RobotFile,
    /// An RPC error response.
    Remote,
    /// An RPC that timed out.
    RpcTimeout,
}

const KINDS: usize = 11;

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Error => "Error",
            Kind::NoDevice => "NoDeviceError",
            Kind::NotConnected => "NotConnectedError",
            Kind::UnknownParam => "UnknownParamError",
            Kind::Access => "AccessError",
            Kind::WrongType => "WrongTypeError",
            Kind::InvalidValue => "InvalidValueError",
            Kind::OutOfBounds => "OutOfBoundsError",
            Kind::RobotFile => "RobotFileError",
            Kind::Remote => "RemoteError",
            Kind::RpcTimeout => "RpcTimeoutError",
        }
    }
}

static CLASSES: [PyOnceLock<Py<PyType>>; KINDS] = [const { PyOnceLock::new() }; KINDS];

fn class(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyType>> {
    CLASSES[kind as usize]
        .import(py, "pitcrew.errors", kind.class_name())
        .cloned()
}

/// An exception of `kind` with `message`.
pub(crate) fn new(py: Python<'_>, kind: Kind, message: impl Into<String>) -> PyErr {
    match class(py, kind) {
        Ok(ty) => PyErr::from_type(ty, message.into()),
        Err(e) => e,
    }
}

/// A buffer error about the device the student called `label`.
pub(crate) fn buffer(py: Python<'_>, label: &str, e: BufferError) -> PyErr {
    let (kind, message) = match &e {
        BufferError::NotFound { name } | BufferError::NotInitialised { name } => (
            Kind::NotConnected,
            format!(
                "{label} is not connected: there is no buffer {name} (is pitcrew-devices \
                 running, and the device plugged in?)"
            ),
        ),
        BufferError::Invalid { .. } => (
            Kind::NotConnected,
            format!("{label} is disconnected (its buffer is marked invalid by the device broker)"),
        ),
        BufferError::Superseded { .. } => (
            Kind::NotConnected,
            format!("{label}: the device broker replaced its buffer; try again"),
        ),
        BufferError::UnknownParam {
            param, type_name, ..
        } => (
            Kind::UnknownParam,
            format!("{label}: {type_name} has no param {param}"),
        ),
        BufferError::NotReadable { param, .. } => (
            Kind::Access,
            format!(
                "{label}: {param} is not readable (it is a setting you write, not a sensed value)"
            ),
        ),
        BufferError::NotWriteable { param, .. } => (
            Kind::Access,
            format!("{label}: {param} is not writeable (it is a sensed value)"),
        ),
        BufferError::Value { param, source, .. } => {
            let kind = match source {
                ValueError::WrongType { .. } => Kind::WrongType,
                _ => Kind::InvalidValue,
            };
            (kind, format!("{label}: {param}: {source}"))
        }
        BufferError::UnknownDevice { .. } | BufferError::UnknownType { .. } => {
            (Kind::NoDevice, format!("{label}: {e}"))
        }
        _ => (Kind::Error, format!("{label}: {e}")),
    };
    new(py, kind, message)
}

/// A refused write value about the device `label`.
pub(crate) fn refusal(py: Python<'_>, label: &str, r: &Refusal) -> PyErr {
    let kind = match r {
        Refusal::WrongType(_) => Kind::WrongType,
        Refusal::Invalid(_) => Kind::InvalidValue,
        Refusal::OutOfBounds(_) => Kind::OutOfBounds,
    };
    new(py, kind, format!("{label}: {}", r.message()))
}

/// A robot file error, carrying `.file` and `.line`.
pub(crate) fn robot_file(py: Python<'_>, e: &RobotFileError) -> PyErr {
    match class(py, Kind::RobotFile) {
        Ok(ty) => PyErr::from_type(ty, (e.to_string(), e.file.clone(), e.line)),
        Err(err) => err,
    }
}

/// An RPC error, carrying `.code`, `.message` and `.context`; `timeout` is an
/// `RpcTimeoutError` (also a `TimeoutError`).
pub(crate) fn rpc(py: Python<'_>, e: &RpcError) -> PyErr {
    let kind = if e.code == ErrorCode::Timeout {
        Kind::RpcTimeout
    } else {
        Kind::Remote
    };
    let built = || -> PyResult<PyErr> {
        let context = PyDict::new(py);
        for (k, v) in &e.context {
            context.set_item(convert::to_py(py, k)?, convert::to_py(py, v)?)?;
        }
        let instance = class(py, kind)?.call1((e.code.as_str(), e.message.as_str(), context))?;
        Ok(PyErr::from_value(instance))
    };
    built().unwrap_or_else(|err| err)
}

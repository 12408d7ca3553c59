//! Python objects ↔ the two value models: MessagePack values ([`pitcrew_controller::codec::Value`]) for
//! RPC, and catalog values ([`pitcrew_catalog::Value`]) for buffers.
//!
//! RPC: `None`, `bool`, `int` (64-bit, signed or unsigned), `float`, `str`, `bytes`,
//! `list`/`tuple` and `dict` travel; anything else is a `TypeError` naming the type, and
//! nesting deeper than the codec decodes ([`MAX_DEPTH`]) is a `ValueError`, so a list that
//! contains itself fails instead of overflowing the stack.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use pyo3::IntoPyObjectExt;

use pitcrew_catalog::Value as ParamValue;
use pitcrew_controller::codec::{Value, MAX_DEPTH};

use crate::coerce::Given;

/// A Python object as a MessagePack value.
///
/// # Errors
/// `TypeError` for a type that cannot travel, `OverflowError` for an int beyond 64 bits,
/// `ValueError` for nesting deeper than [`MAX_DEPTH`].
pub(crate) fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    from_py_at(obj, 0)
}

fn from_py_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "RPC values nest at most {MAX_DEPTH} levels deep"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Boolean(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        return obj.extract::<u64>().map(Value::from).map_err(|_| {
            PyOverflowError::new_err(format!(
                "{} does not fit in 64 bits, the widest integer RPC carries",
                repr(obj)
            ))
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::from(s.to_str()?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Binary(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Binary(b.to_vec()));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .map(|item| from_py_at(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|item| from_py_at(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return dict
            .iter()
            .map(|(k, v)| Ok((from_py_at(&k, depth + 1)?, from_py_at(&v, depth + 1)?)))
            .collect::<PyResult<_>>()
            .map(Value::Map);
    }
    Err(PyTypeError::new_err(format!(
        "cannot send a {} over RPC (use None, bool, int, float, str, bytes, list, tuple or dict)",
        type_name(obj)
    )))
}

/// A MessagePack value as a Python object: maps become dicts, arrays lists, strings that
/// are not UTF-8 bytes, and an extension value a `(type, bytes)` tuple.
///
/// # Errors
/// `TypeError` when a map key is not hashable in Python (a list or map as a key).
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Value::Nil => Ok(py.None().into_bound(py)),
        Value::Boolean(b) => b.into_bound_py_any(py),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(v), _) => v.into_bound_py_any(py),
            (None, Some(v)) => v.into_bound_py_any(py),
            (None, None) => Ok(py.None().into_bound(py)),
        },
        Value::F32(f) => f64::from(*f).into_bound_py_any(py),
        Value::F64(f) => f.into_bound_py_any(py),
        Value::String(s) => match s.as_str() {
            Some(text) => text.into_bound_py_any(py),
            None => PyBytes::new(py, s.as_bytes()).into_bound_py_any(py),
        },
        Value::Binary(b) => PyBytes::new(py, b).into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_bound_py_any(py)
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(to_py(py, k)?, to_py(py, v)?)?;
            }
            dict.into_bound_py_any(py)
        }
        Value::Ext(code, bytes) => (*code, PyBytes::new(py, bytes)).into_bound_py_any(py),
    }
}

/// A Python object reduced to what the write rules of [`crate::coerce`] need.
pub(crate) fn given<'a>(obj: &Bound<'_, PyAny>, type_name_buf: &'a mut String) -> Given<'a> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Given::Bool(b.is_true());
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Given::Float(f.value());
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Given::Int(i.into()),
            Err(_) => match obj.extract::<u64>() {
                Ok(u) => Given::Int(u.into()),
                Err(_) => Given::HugeInt,
            },
        };
    }
    *type_name_buf = type_name(obj);
    Given::Other(type_name_buf)
}

/// A param value as a Python `bool`, `int` or `float`.
pub(crate) fn param_to_py<'py>(py: Python<'py>, v: ParamValue) -> PyResult<Bound<'py, PyAny>> {
    match v {
        ParamValue::Bool(b) => b.into_bound_py_any(py),
        ParamValue::F32(x) => f64::from(x).into_bound_py_any(py),
        ParamValue::U64(u) => u.into_bound_py_any(py),
        other => other
            .as_i128()
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or_default()
            .into_bound_py_any(py),
    }
}

/// `repr(obj)`, for messages that quote what the student wrote.
pub(crate) fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map_or_else(|_| "<unprintable>".to_owned(), |r| r.to_string())
}

/// The Python type name of `obj` (`str`, `NoneType`, ...).
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}

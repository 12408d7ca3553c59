//! The native module `pitcrew._native`, re-exported by `pitcrew/__init__.py`.

use pyo3::prelude::*;

use crate::{gamepad, log, robot, rpc, sim};

/// Native half of the `pitcrew` package; import `pitcrew`, not this.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<robot::Robot>()?;
    m.add_class::<gamepad::Gamepad>()?;
    m.add_class::<rpc::Client>()?;
    m.add_class::<sim::SimWorld>()?;
    m.add_function(wrap_pyfunction!(rpc::call, m)?)?;
    m.add_function(wrap_pyfunction!(rpc::notify, m)?)?;
    m.add_function(wrap_pyfunction!(log::start, m)?)?;
    m.add_function(wrap_pyfunction!(log::emit, m)?)?;
    m.add_function(wrap_pyfunction!(log::close, m)?)?;
    Ok(())
}

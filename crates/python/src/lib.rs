//! The `pitcrew` Python package: the native module `pitcrew._native` behind it, and the
//! rules it applies, which need no Python and are tested with `cargo test`.
//!
//! Python code gets the same shared-memory buffers, validation and errors as a Rust
//! controller, through the crates it wraps: `pitcrew-buffer` (device and gamepad buffers),
//! `pitcrew-catalog` (types, values, bounds) and `pitcrew` (options, RPC client, logging).
//!
//! Always built:
//! * [`robot_file`]: `robot.yaml`, names for devices, with line-precise errors;
//! * [`coerce`]: a Python value → the stored value, and the sentences for refusals;
//! * [`settings`]: the `PITCREW_*` environment → the instance to talk to.
//!
//! With the `extension-module` feature (maturin turns it on), the Python bindings, one
//! module per Python concept: `robot` (`Robot`), `gamepad` (`Gamepad`), `rpc` (`call`,
//! `notify`, `Client`), `log` (the forwarder behind `pitcrew.LogHandler`), with `errors`
//! (Rust errors → the exceptions of `pitcrew/errors.py`) and `convert` (Python ↔ values).
//! The pure-Python half of the package (exceptions, the logging handler, stubs) lives in
//! `python/pitcrew/`.

pub mod coerce;
pub mod robot_file;
pub mod settings;

#[cfg(feature = "extension-module")]
mod convert;
#[cfg(feature = "extension-module")]
mod errors;
#[cfg(feature = "extension-module")]
mod gamepad;
#[cfg(feature = "extension-module")]
mod log;
#[cfg(feature = "extension-module")]
mod module;
#[cfg(feature = "extension-module")]
mod robot;
#[cfg(feature = "extension-module")]
mod rpc;
#[cfg(feature = "extension-module")]
mod sim;

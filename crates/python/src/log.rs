//! Python log records → the log forwarder, through the application crate's publisher
//! (`pitcrew::logging::publish_layer`): the same bounded queue, never blocking the caller,
//! drops counted and reported, and records of spec/wire.md with this process's `pid` and
//! `seq`.
//!
//! `pitcrew.LogHandler` (Python, `pitcrew/log.py`) calls [`emit`] for each record it
//! handles. A record becomes a `tracing` event with target `python` and the fields
//! `logger`, `file`, `line`, `function` and, when the record carries one, `exception` (the
//! formatted traceback), dispatched to a subscriber that holds only the publishing layer,
//! so the Python logging level alone decides what is sent. The same subscriber becomes
//! the process's global one (when none is set) so that the warnings of the Rust code
//! underneath (a clamped write) reach the forwarder too, at `info` and above.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use tracing::dispatcher::Dispatch;
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use pitcrew::logging::{publish_layer, PublishOptions, PublisherGuard};

use crate::errors::{self, Kind};
use crate::settings;

/// The `tracing` target of records that came from Python.
const TARGET: &str = "python";

struct Forwarder {
    app: &'static str,
    address: String,
    dispatch: Dispatch,
    guard: Option<PublisherGuard>,
}

static FORWARDER: Mutex<Option<Forwarder>> = Mutex::new(None);

/// Starts publishing as `app` to the forwarder at `address` (default: the configured log
/// backend of `namespace`); returns the address. A second start with the same app is a
/// no-op; with another app, an error (one process publishes as one app).
#[pyfunction]
#[pyo3(name = "_log_start", signature = (app, namespace=None, address=None))]
pub(crate) fn start(
    py: Python<'_>,
    app: &str,
    namespace: Option<&str>,
    address: Option<String>,
) -> PyResult<String> {
    let mut slot = FORWARDER
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(f) = slot.as_ref() {
        if f.app == app && f.guard.is_some() {
            return Ok(f.address.clone());
        }
        if f.guard.is_some() {
            return Err(errors::new(
                py,
                Kind::Error,
                format!("this process already logs to the forwarder as {:?}", f.app),
            ));
        }
    }
    let config = settings::resolve(namespace).map_err(|m| errors::new(py, Kind::Error, m))?;
    let address = address.unwrap_or_else(|| config.log_backend_connect());
    // The publisher names its app for the life of the process (a `&'static str`): one
    // short string per process, leaked once.
    let app: &'static str = Box::leak(app.to_owned().into_boxed_str());
    let (layer, guard) = publish_layer(app, &address, PublishOptions::default()).map_err(|e| {
        errors::new(
            py,
            Kind::Error,
            format!("cannot publish logs to {address}: {e}"),
        )
    })?;
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer.with_filter(wanted())));
    // Fails when the process already has a global subscriber; Python records still go out.
    let _ = tracing::dispatcher::set_global_default(dispatch.clone());
    *slot = Some(Forwarder {
        app,
        address: address.clone(),
        dispatch,
        guard: Some(guard),
    });
    Ok(address)
}

/// Python records at any level; the Rust code's own events at `info` and above.
fn wanted<S>() -> impl Filter<S> {
    filter_fn(|meta| meta.target() == TARGET || *meta.level() <= Level::INFO)
}

/// Publishes one record (called by `LogHandler.emit`). Without a started forwarder it
/// does nothing.
#[pyfunction]
#[pyo3(name = "_log_emit", signature = (levelno, logger, message, file, line, function, exception=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    py: Python<'_>,
    levelno: i32,
    logger: &str,
    message: &str,
    file: &str,
    line: u32,
    function: &str,
    exception: Option<&str>,
) {
    let slot = FORWARDER
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(f) = slot.as_ref().filter(|f| f.guard.is_some()) else {
        return;
    };
    tracing::dispatcher::with_default(&f.dispatch, || {
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    logger,
                    file,
                    line,
                    function,
                    exception,
                    "{message}"
                )
            };
        }
        // Python's levels: DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50.
        match levelno {
            i32::MIN..=9 => event!(Level::TRACE),
            10..=19 => event!(Level::DEBUG),
            20..=29 => event!(Level::INFO),
            30..=39 => event!(Level::WARN),
            _ => event!(Level::ERROR),
        }
    });
}

/// Delivers what is queued (for at most `pitcrew::logging::CLOSE_DEADLINE`) and stops
/// publishing; `LogHandler.close` calls it, and so does interpreter exit through
/// `logging.shutdown`.
#[pyfunction]
#[pyo3(name = "_log_close")]
pub(crate) fn close(py: Python<'_>) {
    let guard = {
        let mut slot = FORWARDER
            .lock_py_attached(py)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_mut().and_then(|f| f.guard.take())
    };
    py.detach(move || drop(guard));
}

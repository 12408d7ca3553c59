//! `pitcrew.call`, `pitcrew.notify` and `pitcrew.Client`: MessagePack-RPC through the
//! router with the application crate's client (`pitcrew::rpc::Client`), so Python code
//! needs neither pyzmq nor msgpack and gets the same error model: an error response is a
//! `RemoteError` with its `code`, `message` and `context`, and a call with no answer in
//! time an `RpcTimeoutError` (a `TimeoutError` too).
//!
//! The client's socket task runs on a tokio runtime of the module's own (one worker
//! thread, started on first use), so a notification is sent while Python goes on. A call
//! waits without the GIL, and looks at Python's signals every [`SIGNAL_CHECK`], so Ctrl-C
//! interrupts it (the late answer is dropped by the client, harmlessly).
//!
//! Phase 2 note: the runtime is per process; a `pitcrew run` worker that forks must make
//! its clients after the fork (a forked child does not inherit the runtime's threads).

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyTuple;

use pitcrew::rpc::Client as RpcClient;
use pitcrew_controller::codec::Value;

use crate::convert;
use crate::errors::{self, Kind};
use crate::settings;

/// How often a waiting call checks for Ctrl-C: short enough to feel immediate, long
/// enough to cost nothing.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The module's runtime for RPC sockets.
fn runtime(py: Python<'_>) -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pitcrew-rpc")
        .enable_all()
        .build()
        .map_err(|e| {
            errors::new(
                py,
                Kind::Error,
                format!("cannot start the RPC runtime: {e}"),
            )
        })?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs `fut` on the runtime without the GIL, checking Python's signals meanwhile.
fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime(py)?;
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut fut).await.ok() })
        });
        if let Some(out) = slice {
            return Ok(out);
        }
        py.check_signals()?;
    }
}

/// A connection to the router of one instance.
#[pyclass(module = "pitcrew._native", name = "Client", frozen)]
pub(crate) struct Client {
    inner: RpcClient,
    endpoint: String,
    default_timeout: Duration,
}

#[pymethods]
impl Client {
    /// Connects to the router of `namespace` (default: `PITCREW_NAMESPACE`, else `rt`) at
    /// `endpoint` (default: the configured router frontend, ipc preferred), with
    /// `timeout` seconds as the default deadline of a call (default: `PITCREW_CALL_TIMEOUT`,
    /// else 5 s). Connecting does not wait for the router.
    #[new]
    #[pyo3(signature = (namespace=None, endpoint=None, timeout=None))]
    fn new(
        py: Python<'_>,
        namespace: Option<&str>,
        endpoint: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Client> {
        let config = settings::resolve(namespace).map_err(|m| errors::new(py, Kind::Error, m))?;
        let endpoint = endpoint.unwrap_or_else(|| config.frontend_connect());
        let default_timeout = match timeout {
            Some(t) => seconds(t)?,
            None => config.call_timeout,
        };
        let rt = runtime(py)?;
        let _in_runtime = rt.enter();
        let inner = RpcClient::connect(&endpoint, "python", default_timeout).map_err(|e| {
            errors::new(
                py,
                Kind::Error,
                format!("cannot connect to {endpoint}: {e}"),
            )
        })?;
        Ok(Client {
            inner,
            endpoint,
            default_timeout,
        })
    }

    /// The router address this client sends to.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// This client's identity at the router (`python-<pid>-<random>`).
    #[getter]
    fn identity(&self) -> &str {
        self.inner.identity()
    }

    /// Calls `method` of `service` with `args` and returns the result, or raises
    /// `RemoteError` (`RpcTimeoutError` after `timeout` seconds).
    #[pyo3(signature = (service, method, *args, timeout=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        method: &str,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = params(args)?;
        let timeout = match timeout {
            Some(t) => seconds(t)?,
            None => self.default_timeout,
        };
        let result = wait(
            py,
            self.inner
                .call_with_timeout(service, method, params, timeout),
        )?;
        match result {
            Ok(v) => convert::to_py(py, &v),
            Err(e) => Err(errors::rpc(py, &e)),
        }
    }

    /// Sends `method` of `service` with `args` as a notification: no answer, no error
    /// from the service.
    #[pyo3(signature = (service, method, *args))]
    fn notify(
        &self,
        py: Python<'_>,
        service: &str,
        method: &str,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let params = params(args)?;
        wait(py, self.inner.notify(service, method, params))?.map_err(|e| errors::rpc(py, &e))
    }

    fn __repr__(&self) -> String {
        format!("Client(endpoint={:?})", self.endpoint)
    }
}

fn params(args: &Bound<'_, PyTuple>) -> PyResult<Vec<Value>> {
    args.iter().map(|a| convert::from_py(&a)).collect()
}

fn seconds(t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {t}"
            ))
        })
}

/// The client of `pitcrew.call` and `pitcrew.notify`, made on first use from the
/// environment.
fn default_client(py: Python<'_>) -> PyResult<Py<Client>> {
    static DEFAULT: Mutex<Option<Py<Client>>> = Mutex::new(None);
    let mut slot = DEFAULT
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = slot.as_ref() {
        return Ok(client.clone_ref(py));
    }
    let client = Py::new(py, Client::new(py, None, None, None)?)?;
    *slot = Some(client.clone_ref(py));
    Ok(client)
}

/// `pitcrew.call(service, method, *args, timeout=None)` with the default client.
#[pyfunction]
#[pyo3(signature = (service, method, *args, timeout=None))]
pub(crate) fn call<'py>(
    py: Python<'py>,
    service: &str,
    method: &str,
    args: &Bound<'py, PyTuple>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    default_client(py)?
        .get()
        .call(py, service, method, args, timeout)
}

/// `pitcrew.notify(service, method, *args)` with the default client.
#[pyfunction]
#[pyo3(signature = (service, method, *args))]
pub(crate) fn notify(
    py: Python<'_>,
    service: &str,
    method: &str,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    default_client(py)?.get().notify(py, service, method, args)
}

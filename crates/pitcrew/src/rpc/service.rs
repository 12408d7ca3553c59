//! An RPC service: a registry of typed handlers behind a DEALER on the router's backend.
//!
//! Guarantees a caller can rely on:
//! * at most `workers` handlers run at once; up to `queue` more requests wait; beyond that
//!   the caller gets `busy` at once rather than an unbounded wait;
//! * one sender may hold at most half of that capacity, so a client that floods a service
//!   gets `busy` itself while the other clients' calls still get through;
//! * a handler that runs past its deadline yields `timeout`; one that fails yields
//!   `handler_failed` with its text; one that panics yields `handler_failed` too, and the
//!   service goes on;
//! * malformed input is answered with `bad_request` when a msgid is readable, counted,
//!   logged once per sender, and never takes a worker down.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::message::{BadMessage, ErrorCode, Message, Notification, Request, Response, RpcError};
use super::params::FromParams;
use super::registration;
use crate::codec::Value;
use crate::endpoint::{Dealer, DealerOptions, EndpointError, Frames};

/// Default handler deadline (spec/wire.md).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of concurrent handlers (spec/wire.md `service_workers`).
pub const DEFAULT_WORKERS: usize = 8;
/// How many requests may wait per worker before callers get `busy`: enough to absorb a burst
/// from a handful of pipelining clients, small enough that a caller learns quickly.
pub const QUEUE_PER_WORKER: usize = 64;
/// How long a stopping service lets running handlers finish before it gives up on them.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// How many distinct malformed senders are remembered for "log once"; past that, every
/// malformed message is logged at debug level only, so the set cannot grow without bound.
const MAX_REMEMBERED_SENDERS: usize = 1024;
/// How many requests of urgent methods may run at once ([`Service::urgent`]).
pub const URGENT_IN_FLIGHT: usize = 16;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;
type Handler = Arc<dyn Fn(Vec<Value>) -> BoxFuture + Send + Sync>;

/// Counters a service keeps about itself (served by its `stats` method).
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Requests answered (any outcome).
    pub requests: AtomicU64,
    /// Notifications handled.
    pub notifications: AtomicU64,
    /// Requests refused with `busy`.
    pub busy: AtomicU64,
    /// Handler deadlines missed.
    pub timeouts: AtomicU64,
    /// Malformed messages received.
    pub malformed: AtomicU64,
}

/// A service under construction: register handlers, then [`Service::serve`].
pub struct Service {
    name: String,
    handlers: HashMap<String, Handler>,
    urgent: HashSet<String>,
    workers: usize,
    queue: usize,
    handler_timeout: Duration,
    stats: Arc<ServiceStats>,
}

impl Service {
    /// A service reachable as `<app>-service` (e.g. `device-service`).
    pub fn new(app: &str) -> Self {
        let mut service = Self {
            name: format!("{app}-service"),
            handlers: HashMap::new(),
            urgent: HashSet::new(),
            workers: DEFAULT_WORKERS,
            queue: DEFAULT_WORKERS * QUEUE_PER_WORKER,
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            stats: Arc::new(ServiceStats::default()),
        };
        service.register("ping", &[], |()| async { Ok("pong") });
        service
    }

    /// The identity the service registers with at the router.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's counters, shared with the running service.
    pub fn stats(&self) -> Arc<ServiceStats> {
        self.stats.clone()
    }

    /// Sets how many handlers run at once, and the queue bound to `workers ×
    /// QUEUE_PER_WORKER`.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self.queue = self.workers * QUEUE_PER_WORKER;
        self
    }

    /// Sets how many requests may wait for a worker before callers get `busy`.
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    /// Marks `method` (registered or to be) as urgent: its requests skip the worker limit
    /// and the queue and run at once, so that an emergency stop never waits behind slow
    /// reads or gets `busy`. At most `URGENT_IN_FLIGHT` run at a time, so a flood of
    /// them is still bounded. For short, idempotent methods only.
    pub fn urgent(mut self, method: &str) -> Self {
        self.urgent.insert(method.to_owned());
        self
    }

    /// Sets the per-handler deadline.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// Registers `handler` for `method`. `names` name the positional parameters for error
    /// messages; `P` is a tuple whose arity and types are checked before the handler runs.
    pub fn register<P, F, Fut, R>(
        &mut self,
        method: &str,
        names: &'static [&'static str],
        handler: F,
    ) -> &mut Self
    where
        P: FromParams + Send + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
        R: Into<Value>,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |params: Vec<Value>| {
            let handler = handler.clone();
            Box::pin(async move {
                let params = P::from_params(params, names)?;
                handler(params).await.map(Into::into)
            })
        });
        self.handlers.insert(method.to_owned(), erased);
        self
    }

    /// Connects to the router backend at `address` and serves until `shutdown` fires; then
    /// refuses new requests with `shutting_down` and waits up to [`DRAIN_DEADLINE`] for
    /// running handlers.
    ///
    /// # Errors
    /// When the DEALER cannot be set up.
    pub async fn serve(
        self,
        address: &str,
        shutdown: CancellationToken,
    ) -> Result<(), EndpointError> {
        self.run(address, false, shutdown).await
    }

    /// Like [`Service::serve`], but binds `address` so that clients connect straight to the
    /// service with no router in between. A client's `[service, payload]` then arrives as is
    /// and the reply `[service, response]` is exactly what the router would have delivered,
    /// so the same client code works. Used as the baseline of the router benchmark.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve_direct(
        self,
        address: &str,
        shutdown: CancellationToken,
    ) -> Result<(), EndpointError> {
        self.run(address, true, shutdown).await
    }

    async fn run(
        self,
        address: &str,
        bind: bool,
        shutdown: CancellationToken,
    ) -> Result<(), EndpointError> {
        let socket_cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let queue = self.workers + self.queue + 64;
        let name = self.name.clone();
        let core = self.into_core(shutdown.clone(), tracker.clone());
        let options = DealerOptions {
            identity: name.clone(),
            address: address.to_owned(),
            queue,
            bind,
        };
        let (dealer, socket_task, answered) = connect_dealer(options, core, socket_cancel.clone())?;
        // Through the router, introduce ourselves and check that the name is ours.
        let check = (!bind).then(|| introduce(&dealer, answered, address, &name));
        tracing::info!(service = %name, %address, "service ready");

        // Serves until shutdown, or until it turns out that another live peer holds this
        // service's identity at the router (which then never delivers us a request).
        let refused = async {
            match check {
                Some(task) => task.await.ok(),
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => Ok(()),
            Some(error) = refused => Err(error),
        };
        if let Err(error) = &outcome {
            tracing::error!(service = %name, %error, "refused by the router");
        }
        tracing::debug!(service = %name, "service stopping");
        drain(&name, &tracker, socket_cancel, socket_task).await;
        outcome
    }

    /// The state the dispatcher and the handler tasks share, from what was registered and
    /// set on this service.
    fn into_core(self, stopping: CancellationToken, tracker: TaskTracker) -> Arc<Core> {
        Arc::new(Core {
            handlers: self.handlers,
            urgent: self.urgent,
            urgent_in_flight: AtomicUsize::new(0),
            semaphore: Arc::new(Semaphore::new(self.workers)),
            admitted: AtomicUsize::new(0),
            capacity: self.workers + self.queue,
            per_sender: Mutex::new(HashMap::new()),
            per_sender_cap: ((self.workers + self.queue) / 2).max(1),
            handler_timeout: self.handler_timeout,
            stats: self.stats,
            stopping,
            malformed_senders: Mutex::new(HashSet::new()),
            tracker,
        })
    }
}

/// Sets up the DEALER with a callback that dispatches each message to `core`, and returns
/// it with its socket task and the signal that the router answered our registration.
///
/// The callback runs on the socket task and needs the dealer to reply; the dealer exists
/// only once `connect` returns, hence the cell. No message can arrive before it is set:
/// the connection handshake happens on that same task, later.
fn connect_dealer(
    options: DealerOptions,
    core: Arc<Core>,
    cancel: CancellationToken,
) -> Result<(Dealer, JoinHandle<()>, Arc<Notify>), EndpointError> {
    let cell: Arc<OnceLock<Dealer>> = Arc::new(OnceLock::new());
    let answered = Arc::new(Notify::new());
    let (dealer, socket_task) = Dealer::connect(
        options,
        {
            let (cell, answered) = (cell.clone(), answered.clone());
            move |frames| {
                if registration::is_answer(&frames) {
                    answered.notify_one();
                    return;
                }
                match cell.get() {
                    Some(dealer) => on_message(&core, dealer, frames),
                    None => tracing::debug!("message before the service was ready; dropped"),
                }
            }
        },
        cancel,
    )?;
    let _ = cell.set(dealer.clone());
    Ok((dealer, socket_task, answered))
}

/// Introduces the service to the router, so that the router lists it before its first
/// reply, and starts the check that the name is not held by another live peer: the task
/// ends with an error only when it is ([`registration::confirm`]).
fn introduce(
    dealer: &Dealer,
    answered: Arc<Notify>,
    address: &str,
    name: &str,
) -> JoinHandle<EndpointError> {
    let hello = Message::Notification(Notification {
        method: "hello".into(),
        params: vec![name.into()],
    });
    let _ = dealer.try_send(vec![b"router".to_vec(), hello.encode()]);
    tokio::spawn(registration::confirm(
        dealer.clone(),
        answered,
        address.to_owned(),
        name.to_owned(),
    ))
}

/// Lets running handlers finish for up to [`DRAIN_DEADLINE`], gives the socket task a
/// moment to flush their last replies, then stops it.
async fn drain(
    name: &str,
    tracker: &TaskTracker,
    socket_cancel: CancellationToken,
    socket_task: JoinHandle<()>,
) {
    tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(service = %name, "handlers still running at shutdown; abandoning them");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    socket_cancel.cancel();
    let _ = socket_task.await;
}

/// State shared by the dispatcher and the handler tasks.
struct Core {
    handlers: HashMap<String, Handler>,
    /// Methods that bypass admission and the worker limit ([`Service::urgent`]).
    urgent: HashSet<String>,
    urgent_in_flight: AtomicUsize,
    semaphore: Arc<Semaphore>,
    /// Requests admitted and not yet answered (running + waiting).
    admitted: AtomicUsize,
    capacity: usize,
    /// Admitted requests per sender; an entry disappears when its count drops to zero, so
    /// the map holds at most `capacity` entries.
    per_sender: Mutex<HashMap<Vec<u8>, usize>>,
    per_sender_cap: usize,
    handler_timeout: Duration,
    stats: Arc<ServiceStats>,
    stopping: CancellationToken,
    malformed_senders: Mutex<HashSet<Vec<u8>>>,
    tracker: TaskTracker,
}

impl Core {
    /// Counts a request against the total and the sender's share, or says `busy`.
    fn try_admit(&self, sender: &[u8]) -> Result<(), RpcError> {
        let mut per_sender = lock(&self.per_sender);
        let mine = per_sender.get(sender).copied().unwrap_or(0);
        if mine >= self.per_sender_cap {
            return Err(RpcError::new(
                ErrorCode::Busy,
                format!("you have {mine} requests in progress, the most one caller may; try again later"),
            ));
        }
        if self.admitted.load(Ordering::Acquire) >= self.capacity {
            return Err(RpcError::new(
                ErrorCode::Busy,
                format!(
                    "all workers busy and {} requests queued; try again later",
                    self.capacity
                ),
            ));
        }
        self.admitted.fetch_add(1, Ordering::AcqRel);
        per_sender.insert(sender.to_vec(), mine + 1);
        Ok(())
    }

    /// Undoes [`Core::try_admit`] once the request is answered.
    fn release(&self, sender: &[u8]) {
        let mut per_sender = lock(&self.per_sender);
        if let Some(n) = per_sender.get_mut(sender) {
            *n -= 1;
            if *n == 0 {
                per_sender.remove(sender);
            }
        }
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a few map operations that cannot panic half-way.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn on_message(core: &Arc<Core>, dealer: &Dealer, frames: Frames) {
    let [sender, payload] = <[Vec<u8>; 2]>::try_from(frames)
        .unwrap_or_else(|frames| [frames.first().cloned().unwrap_or_default(), Vec::new()]);
    match Message::decode(&payload) {
        Ok(Message::Request(request)) => admit(core, dealer, sender, request),
        Ok(Message::Notification(n)) => {
            core.stats.notifications.fetch_add(1, Ordering::Relaxed);
            if let Some(handler) = core.handlers.get(&n.method) {
                let fut = handler(n.params);
                core.tracker.spawn(async move {
                    let _ = fut.await;
                });
            }
        }
        Ok(Message::Response(_)) => {
            tracing::debug!(sender = %String::from_utf8_lossy(&sender), "service ignored a response");
        }
        Err(bad) => malformed(core, dealer, sender, bad),
    }
}

fn admit(core: &Arc<Core>, dealer: &Dealer, sender: Vec<u8>, request: Request) {
    let reply_now = |error: RpcError| reply(dealer, &sender, request.msgid, Err(error));
    if core.stopping.is_cancelled() {
        return reply_now(RpcError::new(
            ErrorCode::ShuttingDown,
            "the service is stopping",
        ));
    }
    let Some(handler) = core.handlers.get(&request.method).cloned() else {
        core.stats.requests.fetch_add(1, Ordering::Relaxed);
        return reply_now(
            RpcError::new(
                ErrorCode::NoSuchMethod,
                format!("no method {:?}", request.method),
            )
            .with("method", request.method.as_str()),
        );
    };
    if core.urgent.contains(&request.method) {
        return run_urgent(core, dealer, sender, request, handler);
    }
    if let Err(error) = core.try_admit(&sender) {
        core.stats.busy.fetch_add(1, Ordering::Relaxed);
        return reply_now(error);
    }
    let core = core.clone();
    let dealer = dealer.clone();
    core.tracker.clone().spawn(async move {
        let result = run_handler(&core, handler, request.params, &request.method).await;
        core.release(&sender);
        core.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = Message::Response(Response {
            msgid: request.msgid,
            result,
        });
        let _ = dealer.send(vec![sender, response.encode()]).await;
    });
}

/// Runs an urgent request at once, without a worker permit (see [`Service::urgent`]).
fn run_urgent(
    core: &Arc<Core>,
    dealer: &Dealer,
    sender: Vec<u8>,
    request: Request,
    handler: Handler,
) {
    if core.urgent_in_flight.fetch_add(1, Ordering::AcqRel) >= URGENT_IN_FLIGHT {
        core.urgent_in_flight.fetch_sub(1, Ordering::AcqRel);
        core.stats.busy.fetch_add(1, Ordering::Relaxed);
        let error = RpcError::new(
            ErrorCode::Busy,
            format!("{URGENT_IN_FLIGHT} urgent requests already running; try again later"),
        );
        return reply(dealer, &sender, request.msgid, Err(error));
    }
    let core = core.clone();
    let dealer = dealer.clone();
    core.tracker.clone().spawn(async move {
        let result = invoke(&core, handler, request.params, &request.method).await;
        core.urgent_in_flight.fetch_sub(1, Ordering::AcqRel);
        core.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = Message::Response(Response {
            msgid: request.msgid,
            result,
        });
        let _ = dealer.send(vec![sender, response.encode()]).await;
    });
}

async fn run_handler(
    core: &Core,
    handler: Handler,
    params: Vec<Value>,
    method: &str,
) -> Result<Value, RpcError> {
    // The semaphore is never closed, so acquire only fails if it were; treat as stopping.
    let Ok(_permit) = core.semaphore.acquire().await else {
        return Err(RpcError::new(
            ErrorCode::ShuttingDown,
            "the service is stopping",
        ));
    };
    invoke(core, handler, params, method).await
}

/// Runs a handler within the deadline, a panic turned into an error.
async fn invoke(
    core: &Core,
    handler: Handler,
    params: Vec<Value>,
    method: &str,
) -> Result<Value, RpcError> {
    match tokio::time::timeout(core.handler_timeout, CatchUnwind(handler(params))).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            tracing::error!(method, panic = %panic, "handler panicked");
            Err(RpcError::new(
                ErrorCode::HandlerFailed,
                format!("handler for {method:?} panicked"),
            ))
        }
        Err(_) => {
            // The handler's future was dropped by `timeout`: it stops at its next await.
            core.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(RpcError::new(
                ErrorCode::Timeout,
                format!(
                    "handler for {method:?} took longer than {:.3} s",
                    core.handler_timeout.as_secs_f64()
                ),
            ))
        }
    }
}

/// Polls a handler's future and turns a panic into an error, so a buggy handler costs one
/// request, not the service. Cheaper than giving every request a task of its own.
struct CatchUnwind(BoxFuture);

impl Future for CatchUnwind {
    type Output = Result<Result<Value, RpcError>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Poll::Ready(Err(text))
            }
        }
    }
}

fn malformed(core: &Core, dealer: &Dealer, sender: Vec<u8>, bad: BadMessage) {
    core.stats.malformed.fetch_add(1, Ordering::Relaxed);
    let first = {
        let mut seen = lock(&core.malformed_senders);
        seen.len() < MAX_REMEMBERED_SENDERS && seen.insert(sender.clone())
    };
    let who = String::from_utf8_lossy(&sender).into_owned();
    if first {
        tracing::warn!(sender = %who, reason = %bad.reason, "malformed message (further ones from this sender are logged at debug level)");
    } else {
        tracing::debug!(sender = %who, reason = %bad.reason, "malformed message");
    }
    if let Some(msgid) = bad.msgid {
        reply(
            dealer,
            &sender,
            msgid,
            Err(RpcError::new(ErrorCode::BadRequest, bad.reason)),
        );
    }
}

/// Sends a response now if the outgoing queue has room; an immediate error reply that does
/// not fit is dropped (the caller's timeout covers it) rather than blocking the dispatcher.
fn reply(dealer: &Dealer, sender: &[u8], msgid: u32, result: Result<Value, RpcError>) {
    let response = Message::Response(Response { msgid, result });
    let _ = dealer.try_send(vec![sender.to_vec(), response.encode()]);
}

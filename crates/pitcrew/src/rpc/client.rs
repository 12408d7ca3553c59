//! The RPC client: calls services through the router, many calls in flight at once.
//!
//! Requests travel as `[service, payload]` on a DEALER whose identity is unique to this
//! process instance, so two CLI runs never receive each other's replies. Responses are
//! matched by msgid; a response that arrives after its call timed out finds no waiter and is
//! dropped (counted at debug level), which is harmless by construction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::message::{ErrorCode, Message, Notification, Request, RpcError};
use crate::codec::Value;
use crate::endpoint::{Dealer, DealerOptions, EndpointError, Frames};

/// How many requests may wait for the socket before `call` itself waits. Generous: the
/// socket drains thousands per millisecond; this only bounds memory.
const OUTGOING_QUEUE: usize = 4096;

type Waiter = oneshot::Sender<Result<Value, RpcError>>;

struct Shared {
    pending: Mutex<HashMap<u32, Waiter>>,
    late_responses: AtomicU64,
}

/// A connection to the router for calling services. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    dealer: Dealer,
    shared: Arc<Shared>,
    next_msgid: Arc<AtomicU32>,
    identity: Arc<str>,
    default_timeout: Duration,
    // Stops the socket task when the last clone is dropped.
    _guard: Arc<tokio_util::sync::DropGuard>,
}

impl Client {
    /// Connects to the router frontend at `address` with a fresh identity derived from
    /// `app` (`<app>-<pid>-<random>`).
    ///
    /// # Errors
    /// When the DEALER cannot be created or pointed at `address`.
    pub fn connect(
        address: &str,
        app: &str,
        default_timeout: Duration,
    ) -> Result<Self, EndpointError> {
        let identity: Arc<str> = unique_identity(app).into();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            late_responses: AtomicU64::new(0),
        });
        let on_message = {
            let shared = shared.clone();
            move |frames: Frames| deliver(&shared, frames)
        };
        let cancel = CancellationToken::new();
        let (dealer, _task) = Dealer::connect(
            DealerOptions {
                identity: identity.to_string(),
                address: address.to_owned(),
                queue: OUTGOING_QUEUE,
                bind: false,
            },
            on_message,
            cancel.clone(),
        )?;
        Ok(Self {
            dealer,
            shared,
            next_msgid: Arc::new(AtomicU32::new(1)),
            identity,
            default_timeout,
            _guard: Arc::new(cancel.drop_guard()),
        })
    }

    /// This client's ZeroMQ identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How many responses arrived after their call had given up.
    pub fn late_responses(&self) -> u64 {
        self.shared.late_responses.load(Ordering::Relaxed)
    }

    /// Calls `method` on `service` with the default timeout.
    ///
    /// # Errors
    /// The service's error, or `timeout`, `unreachable`, `busy` from the way there.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, RpcError> {
        self.call_with_timeout(service, method, params, self.default_timeout)
            .await
    }

    /// Calls `method` on `service`, giving up after `timeout`.
    ///
    /// # Errors
    /// As [`Client::call`].
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call removes its waiter, and a late response is dropped.
    pub async fn call_with_timeout(
        &self,
        service: &str,
        method: &str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let (tx, rx) = oneshot::channel();
        let msgid = self.register(tx);
        let _cleanup = PendingGuard {
            shared: &self.shared,
            msgid,
        };
        let payload = Message::Request(Request {
            msgid,
            method: method.to_owned(),
            params,
        })
        .encode();
        let send_and_wait = async {
            self.dealer
                .send(vec![service.as_bytes().to_vec(), payload])
                .await
                .map_err(|e| RpcError::new(ErrorCode::Unreachable, e.to_string()))?;
            rx.await.map_err(|_| {
                RpcError::new(
                    ErrorCode::Unreachable,
                    "the connection to the router closed",
                )
            })?
        };
        match tokio::time::timeout(timeout, send_and_wait).await {
            Ok(result) => result,
            Err(_) => Err(RpcError::new(
                ErrorCode::Timeout,
                format!(
                    "no answer from {service}.{method} within {:.3} s",
                    timeout.as_secs_f64()
                ),
            )
            .with("service", service)
            .with("method", method)),
        }
    }

    /// Sends a notification (no response) to `service`.
    ///
    /// # Errors
    /// `unreachable` when the socket is closed.
    pub async fn notify(
        &self,
        service: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<(), RpcError> {
        let payload = Message::Notification(Notification {
            method: method.to_owned(),
            params,
        })
        .encode();
        self.dealer
            .send(vec![service.as_bytes().to_vec(), payload])
            .await
            .map_err(|e| RpcError::new(ErrorCode::Unreachable, e.to_string()))
    }

    fn register(&self, waiter: Waiter) -> u32 {
        let mut pending = lock(&self.shared.pending);
        loop {
            let id = self.next_msgid.fetch_add(1, Ordering::Relaxed);
            // After 2^32 calls the counter wraps; skip ids still in flight.
            if let std::collections::hash_map::Entry::Vacant(slot) = pending.entry(id) {
                slot.insert(waiter);
                return id;
            }
        }
    }
}

/// Removes a call's waiter however the call ends (answer, timeout, cancellation).
struct PendingGuard<'a> {
    shared: &'a Shared,
    msgid: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.msgid);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts
    // and removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs on the socket task for every message: `[service, payload]`.
fn deliver(shared: &Shared, frames: Frames) {
    let [source, payload] = frames.as_slice() else {
        tracing::debug!(
            frames = frames.len(),
            "client dropped a message with the wrong frame count"
        );
        return;
    };
    match Message::decode(payload) {
        Ok(Message::Response(response)) => {
            let waiter = lock(&shared.pending).remove(&response.msgid);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(response.result);
                }
                None => {
                    shared.late_responses.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(msgid = response.msgid, "dropped a late response");
                }
            }
        }
        Ok(other) => tracing::debug!(
            source = %String::from_utf8_lossy(source),
            message = ?other,
            "client ignored a message that is not a response"
        ),
        Err(e) => tracing::debug!(
            source = %String::from_utf8_lossy(source),
            error = %e,
            "client dropped a malformed response"
        ),
    }
}

/// `<app>-<pid>-<8 hex digits>`: unique per process instance, readable in `list_peers`.
pub(crate) fn unique_identity(app: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{app}-{}-{:08x}", std::process::id(), h.finish() as u32)
}

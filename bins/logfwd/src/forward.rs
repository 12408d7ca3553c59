//! The forwarding loop: backend SUB in, check, frontend PUB out, history and counters.
//!
//! It runs as a plain poll loop on a thread of its own, like the router: no async runtime
//! between a record and its forwarding. Records are forwarded as the very bytes received
//! (never re-encoded, not even copied: an [`Inbox`] hands libzmq's buffers from the
//! backend to the frontend); each is checked first, in place ([`RecordView::parse`]), so
//! that a malformed message is counted and dropped instead of reaching subscribers. Once
//! the warm-up has filled the history, a record costs no allocation here. Each wake-up
//! drains every waiting message before polling again. The frontend PUB never blocks: a
//! subscriber whose pipe is full misses records, the others do not notice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pitcrew::endpoint::{EndpointError, Inbox, PubSocket, PubSubOptions, SubSocket};
use pitcrew::logging::record::{RecordView, MAX_RECORD_BYTES};

use crate::history::History;
use crate::stats::Stats;

/// How long one poll waits before the loop looks at its stop flag: bounds how long a stop
/// takes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Messages handled per lock of the shared state: amortises the lock at high rates while
/// keeping `recent_logs` from waiting long (a batch takes well under a millisecond).
const BATCH: usize = 256;
/// Records a publisher may have in flight to us before libzmq stops reading its
/// connection (and its own queue takes over).
const BACKEND_HWM: i32 = 10_000;
/// After the first malformed message is logged, at most one summary per this period, so
/// a flood of garbage cannot flood the logs.
const MALFORMED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the loop and the RPC service share.
#[derive(Debug)]
pub struct State {
    /// Recent records.
    pub history: History,
    /// Counters.
    pub stats: Stats,
}

/// Locks the shared state. Critical sections are pushes and counter updates that cannot
/// panic half-way, so a poisoned lock is still consistent.
pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The bound sockets and the state they feed.
pub struct Forwarder {
    backend: SubSocket,
    frontend: PubSocket,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

/// Stops a running [`Forwarder`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the loop to return (within `POLL_INTERVAL`).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Forwarder {
    /// Binds the backend (SUB, all topics) and frontend (PUB, `subscriber_hwm` records
    /// per subscriber) endpoints.
    ///
    /// # Errors
    /// When an endpoint cannot be bound.
    pub fn bind(
        backend: &[String],
        frontend: &[String],
        subscriber_hwm: i32,
        state: Arc<Mutex<State>>,
    ) -> Result<Self, EndpointError> {
        let backend = SubSocket::bind(
            backend,
            PubSubOptions {
                hwm: BACKEND_HWM,
                max_message_bytes: MAX_RECORD_BYTES,
            },
        )?;
        let frontend = PubSocket::bind(
            frontend,
            PubSubOptions {
                hwm: subscriber_hwm,
                ..PubSubOptions::default()
            },
        )?;
        Ok(Self {
            backend,
            frontend,
            state,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A handle that stops [`Forwarder::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Forwards until stopped.
    ///
    /// # Errors
    /// When polling the backend fails (the context is gone).
    pub fn run(self) -> Result<(), EndpointError> {
        let mut inbox = Inbox::new();
        let mut reporter = MalformedReporter::default();
        while !self.stop.load(Ordering::Relaxed) {
            if !self.backend.wait(POLL_INTERVAL)? {
                continue;
            }
            // Everything waiting, one batch per lock, before the next poll: at high rates
            // a poll (and the wake-up behind it) per batch is what the loop would cost.
            let mut drained = false;
            while !drained && !self.stop.load(Ordering::Relaxed) {
                let mut state = lock(&self.state);
                drained = true;
                for _ in 0..BATCH {
                    match self.backend.try_recv_into(&mut inbox) {
                        Ok(true) => self.handle(&mut inbox, &mut state, &mut reporter),
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "receive on the log backend failed");
                            break;
                        }
                    }
                    drained = false;
                }
            }
        }
        Ok(())
    }

    /// Checks one message: a record is counted, kept in the history and forwarded; anything
    /// else is counted as malformed and dropped.
    fn handle(&self, inbox: &mut Inbox, state: &mut State, reporter: &mut MalformedReporter) {
        match RecordView::parse(inbox.frames()) {
            Ok(record) => {
                state.stats.received(&record);
                state.history.push(&record);
            }
            Err(e) => {
                state.stats.malformed += 1;
                reporter.report(&e.0, inbox.frames().len());
                return;
            }
        }
        // A record is exactly [topic, payload] (checked above), forwarded as received.
        match self.frontend.forward(inbox) {
            Ok(()) => state.stats.records_out += 1,
            Err(e) => tracing::debug!(error = %e, "cannot forward a record"),
        }
    }
}

/// Logs the first malformed message, then a count at most every
/// [`MALFORMED_LOG_INTERVAL`].
#[derive(Default)]
struct MalformedReporter {
    last: Option<Instant>,
    since_last: u64,
}

impl MalformedReporter {
    fn report(&mut self, reason: &str, frames: usize) {
        self.since_last += 1;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= MALFORMED_LOG_INTERVAL);
        if due {
            tracing::warn!(
                reason,
                frames,
                count = self.since_last,
                "dropped malformed messages on the log backend"
            );
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
    }
}

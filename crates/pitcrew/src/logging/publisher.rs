//! The bounded queue between logging callers and the thread that owns the PUB socket.
//!
//! A caller only locks a mutex for a `push_back` (tens of nanoseconds, no system call):
//! when the queue is full the *oldest* record is dropped and counted, so a caller never
//! waits for the network. The thread wakes every [`TICK`], or at once when the queue
//! passes a quarter of its capacity (one write to a socketpair, once per burst), takes the
//! whole queue in one swap, encodes and sends. After [`IDLE_TICKS`] ticks with nothing to
//! send it goes to sleep, and the first record pushed then wakes it (the same write, once
//! per quiet spell): an idle process has no thread waking 200 times a second. While the
//! forwarder is away (no subscription) the thread sleeps too and nothing is taken, so the
//! queue keeps the newest records (its subscription wakes the thread); when a send is
//! refused (the forwarder's pipe is full) the thread holds that one record and retries.
//! When delivery resumes after drops, the thread first publishes one [`DROP_NOTICE`]
//! record with the count.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::Metadata;

use super::pending::{Fields, Pending};
use super::record::{self, Envelope, DROPPED_FIELD, DROP_NOTICE};
use crate::codec::Value;
use crate::doorbell::Doorbell;
use crate::endpoint::{EndpointError, Publisher};
use crate::options::LogLevel;

/// How often the thread looks at the queue while records come: the longest a record
/// waits before it is sent. Short enough for a person following logs; batching within it
/// spares the callers a system call per record.
pub const TICK: Duration = Duration::from_millis(5);
/// Ticks with nothing to send before the thread sleeps until a record comes.
const IDLE_TICKS: u32 = 20;
/// The longest sleep with nothing to send (subscriptions and close also wake the thread:
/// this only bounds a missed wake-up).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How often the thread retries a record the forwarder's full pipe refused.
const RETRY: Duration = Duration::from_millis(1);
/// At most one drop notice per this period, so a forwarder that is constantly too slow
/// costs one notice a second, not one per record.
const NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a closing publisher keeps trying to deliver what is queued.
pub const CLOSE_DEADLINE: Duration = Duration::from_millis(500);
/// How long a closing publisher waits for the forwarder's subscription when it has none:
/// a connection over ipc or loopback completes in about a millisecond, so a process that
/// logs and exits at once still delivers, while an absent forwarder delays exit only
/// this long.
const CLOSE_CONNECT_WAIT: Duration = Duration::from_millis(200);
/// After the last send at close, how long to let libzmq's I/O thread hand the messages to
/// the kernel before the process may exit (the context is never terminated, so socket
/// linger does not apply; see `endpoint::context`).
const CLOSE_GRACE: Duration = Duration::from_millis(50);

/// Sizes of the publishing path.
#[derive(Debug, Clone, Copy)]
pub struct PublishOptions {
    /// Records the queue holds before the oldest are dropped.
    pub queue: usize,
    /// Records libzmq may hold for the forwarder before it refuses more.
    pub hwm: i32,
}

impl Default for PublishOptions {
    /// 4096 records (about 1 MB at worst) ride out a forwarder restart at a few thousand
    /// records per second; 1000 in libzmq's pipe is its default.
    fn default() -> Self {
        Self {
            queue: 4096,
            hwm: 1000,
        }
    }
}

struct Inner {
    records: VecDeque<Pending>,
    dropped: u64,
    closing: bool,
}

/// The queue shared by the layer (producers) and the publisher thread (consumer).
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    capacity: usize,
    wake_at: usize,
    doorbell: Doorbell,
    /// Records handed to libzmq.
    pub(crate) sent: AtomicU64,
    /// Records dropped, at the queue or refused by libzmq.
    pub(crate) dropped: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Critical sections are deque operations that cannot panic half-way.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a record, dropping the oldest when full. Never blocks beyond the mutex.
    pub(crate) fn push(&self, record: Pending) {
        let (wake, evicted) = {
            let mut inner = self.lock();
            let evicted = if inner.records.len() >= self.capacity {
                inner.dropped += 1;
                self.dropped.fetch_add(1, Ordering::Relaxed);
                inner.records.pop_front()
            } else {
                None
            };
            inner.records.push_back(record);
            (inner.records.len() == self.wake_at, evicted)
        };
        drop(evicted); // outside the lock
        if wake {
            self.doorbell.ring();
        } else {
            self.doorbell.ring_if_asleep();
        }
    }

    /// Moves every queued record into `into` (empty) and returns how many were dropped.
    fn take(&self, into: &mut VecDeque<Pending>) -> u64 {
        let mut inner = self.lock();
        std::mem::swap(&mut inner.records, into);
        std::mem::take(&mut inner.dropped)
    }

    /// Puts records that could not be sent back in front of the queue, still bounded.
    fn requeue_front(&self, rest: &mut VecDeque<Pending>) {
        let mut inner = self.lock();
        while let Some(record) = rest.pop_back() {
            inner.records.push_front(record);
        }
        while inner.records.len() > self.capacity {
            inner.records.pop_front();
            inner.dropped += 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn is_closing(&self) -> bool {
        self.lock().closing
    }

    fn is_empty(&self) -> bool {
        self.lock().records.is_empty()
    }

    /// Marks the thread asleep if nothing is queued; false when a record came first.
    fn fall_asleep(&self) -> bool {
        self.doorbell.fall_asleep(|| {
            let inner = self.lock();
            !inner.records.is_empty() || inner.closing
        })
    }
}

/// Owns the publisher thread: dropping it flushes what can be flushed (up to
/// [`CLOSE_DEADLINE`]) and stops the thread.
pub struct PublisherGuard {
    queue: Arc<Queue>,
    done: Option<mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PublisherGuard {
    /// Records handed to libzmq so far.
    pub fn sent(&self) -> u64 {
        self.queue.sent.load(Ordering::Relaxed)
    }

    /// Records dropped so far (queue full while the forwarder was away or slow).
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for PublisherGuard {
    fn drop(&mut self) {
        self.queue.lock().closing = true;
        self.queue.doorbell.ring();
        if let Some(done) = self.done.take() {
            if done
                .recv_timeout(CLOSE_DEADLINE + CLOSE_GRACE + TICK)
                .is_ok()
            {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Connects to `address` and starts the thread; returns the queue for the layer.
pub(crate) fn start(
    app: &'static str,
    address: &str,
    options: PublishOptions,
) -> Result<(Arc<Queue>, PublisherGuard), EndpointError> {
    let socket = Publisher::connect(
        address,
        crate::endpoint::PubSubOptions {
            hwm: options.hwm,
            max_message_bytes: record::MAX_RECORD_BYTES,
        },
    )?;
    let doorbell = Doorbell::new().map_err(|e| EndpointError::Io("create the logging waker", e))?;
    let capacity = options.queue.max(1);
    let queue = Arc::new(Queue {
        inner: Mutex::new(Inner {
            records: VecDeque::with_capacity(capacity.min(1024)),
            dropped: 0,
            closing: false,
        }),
        capacity,
        wake_at: (capacity / 4).max(1),
        doorbell,
        sent: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let (done_tx, done) = mpsc::channel();
    let thread = {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name("log-publisher".into())
            .spawn(move || {
                Thread::new(app, socket, queue).run();
                let _ = done_tx.send(());
            })
            .map_err(|e| EndpointError::Io("start the log publisher thread", e))?
    };
    Ok((
        queue.clone(),
        PublisherGuard {
            queue,
            done: Some(done),
            thread: Some(thread),
        },
    ))
}

/// One encoded record waiting for the socket.
struct Encoded {
    topic: &'static str,
    payload: Vec<u8>,
}

/// The publisher thread's state.
struct Thread {
    app: &'static str,
    pid: u32,
    socket: Publisher,
    queue: Arc<Queue>,
    subscriptions: i64,
    seq: u64,
    held: Option<Encoded>,
    batch: VecDeque<Pending>,
    unreported: u64,
    last_notice: Option<Instant>,
    last_send: Option<Instant>,
}

impl Thread {
    fn new(app: &'static str, socket: Publisher, queue: Arc<Queue>) -> Self {
        Self {
            app,
            pid: std::process::id(),
            socket,
            queue,
            subscriptions: 0,
            seq: 0,
            held: None,
            batch: VecDeque::new(),
            unreported: 0,
            last_notice: None,
            last_send: None,
        }
    }

    fn run(mut self) {
        let mut close_deadline: Option<(Instant, Instant)> = None;
        let mut idle_ticks = 0u32;
        loop {
            let timeout = if self.held.is_some() {
                RETRY
            } else if self.subscriptions == 0 && close_deadline.is_none() {
                // Nothing can go out before the forwarder subscribes, and its subscription
                // wakes the poll (as does a close); records wait in the queue meanwhile.
                IDLE_WAIT
            } else if idle_ticks >= IDLE_TICKS && self.queue.fall_asleep() {
                IDLE_WAIT
            } else {
                TICK
            };
            let ready = self
                .socket
                .wait(Some(self.queue.doorbell.fd()), timeout)
                .unwrap_or_default();
            if timeout == IDLE_WAIT || ready.extra {
                self.queue.doorbell.woken();
            }
            // An error here means the context is gone: nothing more can be sent anyway.
            match self.socket.subscription_changes() {
                Ok(delta) => self.subscriptions = (self.subscriptions + delta).max(0),
                Err(_) => return,
            }
            let sent = self.queue.sent.load(Ordering::Relaxed);
            if self.subscriptions > 0 {
                self.deliver();
            }
            let busy = self.held.is_some() || self.queue.sent.load(Ordering::Relaxed) != sent;
            idle_ticks = if busy {
                0
            } else {
                idle_ticks.saturating_add(1)
            };
            if close_deadline.is_none() && self.queue.is_closing() {
                let now = Instant::now();
                close_deadline = Some((now + CLOSE_DEADLINE, now + CLOSE_CONNECT_WAIT));
            }
            if let Some((deadline, unsubscribed_deadline)) = close_deadline {
                let now = Instant::now();
                let flushed = self.held.is_none() && self.queue.is_empty();
                let absent = self.subscriptions == 0 && now >= unsubscribed_deadline;
                if flushed || absent || now >= deadline {
                    if self.last_send.is_some_and(|t| t.elapsed() < CLOSE_GRACE) {
                        std::thread::sleep(CLOSE_GRACE);
                    }
                    return;
                }
            }
        }
    }

    /// Sends what it can: the held record, a drop notice if due, then the queue.
    fn deliver(&mut self) {
        if let Some(held) = self.held.take() {
            if !self.send(held) {
                return;
            }
        }
        self.unreported += self.queue.take(&mut self.batch);
        let notice_due = self
            .last_notice
            .is_none_or(|t| t.elapsed() >= NOTICE_INTERVAL);
        if self.unreported > 0 && notice_due {
            let notice = self.drop_notice();
            self.last_notice = Some(Instant::now());
            self.unreported = 0;
            if !self.send(notice) {
                self.queue.requeue_front(&mut self.batch);
                return;
            }
        }
        while let Some(pending) = self.batch.pop_front() {
            let encoded = self.encode(&pending);
            drop(pending);
            if !self.send(encoded) {
                self.queue.requeue_front(&mut self.batch);
                return;
            }
        }
    }

    /// Sends `encoded`, or holds it when the pipe is full (`false`).
    fn send(&mut self, encoded: Encoded) -> bool {
        match self
            .socket
            .try_send(encoded.topic.as_bytes(), &encoded.payload)
        {
            Ok(true) => {
                self.queue.sent.fetch_add(1, Ordering::Relaxed);
                self.last_send = Some(Instant::now());
                true
            }
            Ok(false) => {
                self.held = Some(encoded);
                false
            }
            Err(_) => {
                // Refused for good (cannot happen with our own encoder's sizes): count it.
                self.unreported += 1;
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    fn encode(&mut self, pending: &Pending) -> Encoded {
        let meta: &'static Metadata<'static> = pending.meta;
        let envelope = Envelope {
            time: pending.time,
            level: record::from_tracing(*meta.level()),
            app: self.app,
            target: meta.target(),
            event: pending.message.as_deref().unwrap_or(""),
            pid: self.pid,
            seq: self.next_seq(),
        };
        let fields = pending
            .spans
            .iter()
            .flat_map(|span| span.iter())
            .chain(pending.fields.iter())
            .map(|(name, value)| (*name, value.clone()));
        let (topic, payload) = record::encode(&envelope, fields);
        Encoded { topic, payload }
    }

    fn drop_notice(&mut self) -> Encoded {
        let envelope = Envelope {
            time: SystemTime::now(),
            level: LogLevel::Warn,
            app: self.app,
            target: module_path!(),
            event: DROP_NOTICE,
            pid: self.pid,
            seq: self.next_seq(),
        };
        let fields: Fields = vec![(DROPPED_FIELD, Value::from(self.unreported))];
        let (topic, payload) = record::encode(&envelope, fields);
        Encoded { topic, payload }
    }
}

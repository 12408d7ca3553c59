//! A process's event tap: what a recorder (`pitcrew record`) hears of the events only that
//! process sees (the gamepad receiver's control datagrams, the device broker's frames and
//! state transitions).
//!
//! The cost to the control path is the point. A producer calls [`Tap::offer`] (or
//! [`Tap::offer_with`], which does not even build the event) and that is one relaxed atomic
//! load while no recorder listens; while one does, it is one `try_send` on a bounded channel
//! of plain values: no system call, no encoding, no waiting. A full channel drops the
//! event and counts it. A thread of its own owns the socket: it encodes each event as JSON
//! and publishes it on a bound XPUB (`ipc://<ipc-dir>/<ns>-tap-<process>.sock`) with
//! `ZMQ_XPUB_NODROP` and non-blocking sends, so a recorder too slow to keep up costs only
//! counted drops, never a stall. The counters ([`TapStats`]) are in the process's `status`.
//!
//! The tap thread does not wait on the channel while events come: it wakes every
//! [`BATCH_PERIOD`] and drains what came, at normal priority whatever the thread that
//! started it runs at. A waiting receiver would turn every offer into a futex wake-up and a
//! thread (then a recorder process) scheduled right beside the control path, event by
//! event; measured by `record_overhead_pct`, that was a sixth of the end-to-end latency on
//! 2 cores. Batched, recording costs the path a wake-up of a normal thread every few
//! milliseconds, and events reach a recorder at most a batch period late (their times are
//! taken when they happen). While no recorder listens, and after `IDLE_TICKS` batch
//! periods without an event, the thread sleeps until the first event rings its doorbell
//! (`crate::doorbell`, once per quiet spell) or a recorder's subscription arrives: an idle
//! process's tap does not wake 200 times a second.
//!
//! A message on the tap is three frames: the topic (the recording's channel, such as
//! `/devices/write`), the event's CLOCK_MONOTONIC time in nanoseconds (8 bytes,
//! little-endian) and the event as a JSON object.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::doorbell::Doorbell;
use crate::endpoint::{EndpointError, PubSubOptions, Publisher};

/// How often the tap thread looks for recorders arriving or leaving while it is awake (a
/// recorder's subscription also wakes a sleeping thread).
const SUBSCRIPTION_POLL: Duration = Duration::from_millis(20);

/// Batch periods without an event before the thread sleeps until one comes.
const IDLE_TICKS: u32 = 20;

/// How often the tap thread drains the channel while a recorder listens. The queue must
/// hold a batch period of the busiest producer: 4096 events in 5 ms is 800 000 a second.
pub const BATCH_PERIOD: Duration = Duration::from_millis(5);

/// After the last send at close, how long libzmq's I/O thread gets to deliver before the
/// process may exit (the context is never terminated, so linger does not apply).
const CLOSE_GRACE: Duration = Duration::from_millis(50);

/// An event a process offers on its tap.
pub trait TapEvent: Send + 'static {
    /// When it happened: CLOCK_MONOTONIC, nanoseconds ([`crate::robot::monotonic_ns`]).
    fn time_ns(&self) -> u64;
    /// Hands `emit` the event's messages, each a recording channel (MCAP topic, such as
    /// `/devices/write`) and a JSON object: usually one, several when the event is a batch
    /// (the frames of one write to a device), none when nothing in it is recorded. Called
    /// on the tap thread, never on the control path.
    fn messages(&self, emit: &mut dyn FnMut(&'static str, serde_json::Value));
}

/// Sizes of a tap.
#[derive(Debug, Clone, Copy)]
pub struct TapOptions {
    /// Events the channel to the tap thread holds before new ones are dropped.
    pub queue: usize,
    /// Messages libzmq holds per recorder before it refuses more (counted as drops).
    pub hwm: i32,
    /// The longest the thread sleeps with nothing to do. Events, recorders and the stop
    /// all wake it, so this only bounds a missed wake-up.
    pub idle_wait: Duration,
}

impl Default for TapOptions {
    /// 4096 events ride out a recorder that stalls for a few hundred milliseconds at the
    /// broker's busiest (11 devices at 1 kHz would not, and are counted); 10 000 in libzmq's
    /// pipe is about a second of a busy robot.
    fn default() -> Self {
        Self {
            queue: 4096,
            hwm: 10_000,
            idle_wait: Duration::from_secs(1),
        }
    }
}

/// What a tap has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// A recorder is connected.
    pub listening: bool,
    /// Events published.
    pub sent: u64,
    /// Events dropped: the channel was full or a recorder's pipe was.
    pub dropped: u64,
}

impl TapStats {
    /// As JSON, for a process's `status`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "listening": self.listening,
            "sent": self.sent,
            "dropped": self.dropped,
        })
    }
}

#[derive(Debug, Default)]
struct Shared {
    listening: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// The producers' end of a tap. Cheap to clone; a [`Tap::disabled`] one does nothing.
pub struct Tap<E> {
    tx: Option<(SyncSender<E>, Arc<Doorbell>)>,
    shared: Arc<Shared>,
}

impl<E> Clone for Tap<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> std::fmt::Debug for Tap<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("stats", &self.stats()).finish()
    }
}

/// The gamepad receiver's tap (control datagrams applied and refused).
pub const GAMEPAD: &str = "gamepad";
/// The device broker's tap (frames to devices, DEV_DATA, connections, robot state).
pub const DEVICES: &str = "devices";
/// Every process that offers a tap (what a recorder connects to, what `pitcrew clean`
/// removes).
pub const ALL: [&str; 2] = [GAMEPAD, DEVICES];

/// The address of `process`'s tap in this instance: `ipc://<ipc-dir>/<ns>-tap-<process>.sock`.
pub fn endpoint(config: &Config, process: &str) -> String {
    let path = config
        .ipc_dir
        .join(format!("{}-tap-{process}.sock", config.namespace));
    format!("ipc://{}", path.display())
}

impl<E> Tap<E> {
    /// Whether a recorder listens: when not, offering costs this one atomic load.
    pub fn listening(&self) -> bool {
        self.shared.listening.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> TapStats {
        TapStats {
            listening: self.listening(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl<E: TapEvent> Tap<E> {
    /// A tap that offers nothing (for tests and for a tap that could not be bound).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            shared: Arc::default(),
        }
    }

    /// Binds `address` and starts the tap thread.
    ///
    /// # Errors
    /// When the socket cannot be bound or the thread cannot start.
    pub fn start(address: &str, options: TapOptions) -> Result<(Self, TapGuard), EndpointError> {
        let socket = Publisher::bind(
            &[address.to_owned()],
            PubSubOptions {
                hwm: options.hwm,
                ..PubSubOptions::default()
            },
        )?;
        let queue = options.queue.max(1);
        let (tx, rx) = mpsc::sync_channel(queue);
        let shared = Arc::new(Shared::default());
        let doorbell =
            Arc::new(Doorbell::new().map_err(|e| EndpointError::Io("create the tap's waker", e))?);
        let thread = {
            let shared = Arc::clone(&shared);
            let doorbell = Arc::clone(&doorbell);
            std::thread::Builder::new()
                .name("tap".into())
                .spawn(move || {
                    // At least a batch period: a zero wait would make every sleep a spin.
                    let idle_wait = options.idle_wait.max(BATCH_PERIOD);
                    run(&socket, &rx, queue, idle_wait, &shared, &doorbell);
                })
                .map_err(|e| EndpointError::Io("start the tap thread", e))?
        };
        let guard = TapGuard {
            shared: Arc::clone(&shared),
            doorbell: Arc::clone(&doorbell),
            thread: Some(thread),
        };
        Ok((
            Self {
                tx: Some((tx, doorbell)),
                shared,
            },
            guard,
        ))
    }

    /// Offers `event`: queued for the tap thread when a recorder listens, dropped (and
    /// counted) when the queue is full. Never blocks.
    pub fn offer(&self, event: E) {
        if !self.listening() {
            return;
        }
        self.send(event);
    }

    /// Builds the event with `make` and offers it, only while a recorder listens.
    pub fn offer_with(&self, make: impl FnOnce() -> E) {
        if self.listening() {
            self.send(make());
        }
    }

    fn send(&self, event: E) {
        let Some((tx, doorbell)) = &self.tx else {
            return;
        };
        match tx.try_send(event) {
            Ok(()) => doorbell.ring_if_asleep(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Owns the tap thread: dropping it stops the thread and closes the socket.
#[derive(Debug)]
pub struct TapGuard {
    shared: Arc<Shared>,
    doorbell: Arc<Doorbell>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.doorbell.ring();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The tap thread: events in, JSON out, recorders counted.
fn run<E: TapEvent>(
    socket: &Publisher,
    rx: &mpsc::Receiver<E>,
    queue: usize,
    idle_wait: Duration,
    shared: &Shared,
    doorbell: &Doorbell,
) {
    // Started from a real-time thread (the broker's event loop), this one would inherit
    // SCHED_FIFO and compete with the path it records.
    crate::realtime::normal_priority("tap");
    let mut subscriptions: i64 = 0;
    let mut checked = Instant::now();
    let mut payload = Vec::with_capacity(512);
    let check = |subscriptions: &mut i64| -> bool {
        match socket.subscription_changes() {
            Ok(delta) => {
                *subscriptions = (*subscriptions + delta).max(0);
                shared
                    .listening
                    .store(*subscriptions > 0, Ordering::Relaxed);
                true
            }
            // The context is gone: nothing can be published any more.
            Err(_) => false,
        }
    };
    let mut last_send: Option<Instant> = None;
    let mut publish = |event: E, last_send: &mut Option<Instant>| {
        let time = event.time_ns().to_le_bytes();
        event.messages(&mut |topic, json| {
            payload.clear();
            let sent = serde_json::to_writer(&mut payload, &json).is_ok()
                && matches!(
                    socket.try_send_frames(&[topic.as_bytes(), &time, &payload]),
                    Ok(true)
                );
            let counter = if sent { &shared.sent } else { &shared.dropped };
            counter.fetch_add(1, Ordering::Relaxed);
            *last_send = Some(Instant::now());
        });
    };
    let mut idle_ticks = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let (slept, first) = wait_for_batch(
            socket,
            rx,
            doorbell,
            shared.listening.load(Ordering::Relaxed),
            idle_ticks,
            idle_wait,
        );
        let mut published = false;
        if let Some(event) = first {
            publish(event, &mut last_send);
            published = true;
        }
        // At most a queue's worth: producers faster than this thread cannot keep it here.
        for _ in 0..queue {
            match rx.try_recv() {
                Ok(event) => {
                    publish(event, &mut last_send);
                    published = true;
                }
                // Empty, or every producer gone (keep answering subscriptions until stopped).
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        idle_ticks = if published {
            0
        } else {
            idle_ticks.saturating_add(1)
        };
        // After a sleep always: what woke the thread may be a subscription, and one left
        // unread would make the next wait return at once.
        if slept || checked.elapsed() >= SUBSCRIPTION_POLL {
            checked = Instant::now();
            if !check(&mut subscriptions) {
                return;
            }
        }
    }
    // Stopping: what is queued still goes out (the last DEV_DISABLEs of a shutdown), and
    // libzmq's I/O thread gets a moment to hand it to the kernel before the process exits.
    while let Ok(event) = rx.try_recv() {
        if shared.listening.load(Ordering::Relaxed) {
            publish(event, &mut last_send);
        }
    }
    if last_send.is_some_and(|t| t.elapsed() < CLOSE_GRACE) {
        std::thread::sleep(CLOSE_GRACE);
    }
}

/// Waits for the tap thread's next batch: one [`BATCH_PERIOD`] while events come. With no
/// recorder listening (nothing is offered then), or after `IDLE_TICKS` quiet periods, it
/// sleeps instead until an event rings the doorbell, a recorder comes or goes (the
/// socket), the stop rings, or `idle_wait` passes. Returns whether it slept, and the event
/// that kept it awake if one came just as it fell asleep.
fn wait_for_batch<E>(
    socket: &Publisher,
    rx: &mpsc::Receiver<E>,
    doorbell: &Doorbell,
    listening: bool,
    idle_ticks: u32,
    idle_wait: Duration,
) -> (bool, Option<E>) {
    let mut first = None;
    let sleep = !listening
        || (idle_ticks >= IDLE_TICKS
            && doorbell.fall_asleep(|| {
                first = rx.try_recv().ok();
                first.is_some()
            }));
    if !sleep {
        std::thread::sleep(BATCH_PERIOD);
        return (false, first);
    }
    if socket.wait(Some(doorbell.fd()), idle_wait).is_err() {
        // A poll that fails at once must not turn the sleep into a spin.
        std::thread::sleep(BATCH_PERIOD);
    }
    doorbell.woken();
    (true, first)
}

/// Splits a tap message into its topic, time and JSON payload; `None` when it is not one.
pub fn parse_message(frames: &[Vec<u8>]) -> Option<(&str, u64, &[u8])> {
    let [topic, time, payload] = frames else {
        return None;
    };
    let topic = std::str::from_utf8(topic).ok()?;
    let time = u64::from_le_bytes(time.as_slice().try_into().ok()?);
    Some((topic, time, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::SubSocket;

    struct Ping(u64);

    impl TapEvent for Ping {
        fn time_ns(&self) -> u64 {
            self.0
        }
        fn messages(&self, emit: &mut dyn FnMut(&'static str, serde_json::Value)) {
            emit("/test/ping", serde_json::json!({"n": self.0}));
        }
    }

    #[test]
    fn events_reach_a_recorder_and_cost_nothing_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("ipc://{}/tap.sock", dir.path().display());
        let (tap, _guard) = Tap::<Ping>::start(&address, TapOptions::default()).unwrap();
        tap.offer(Ping(1));
        assert_eq!(tap.stats(), TapStats::default(), "nobody listens: nothing");
        let sub = SubSocket::connect(&address, &[b""], PubSubOptions::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tap.listening() {
            assert!(Instant::now() < deadline, "the recorder was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        tap.offer(Ping(7));
        assert!(sub.wait(Duration::from_secs(5)).unwrap());
        let frames = sub.try_recv().unwrap().unwrap();
        let (topic, time, payload) = parse_message(&frames).unwrap();
        assert_eq!((topic, time), ("/test/ping", 7));
        assert_eq!(payload, br#"{"n":7}"#);
        // The tap thread counts a message after sending it: the recorder may have it first.
        while tap.stats().sent < 1 {
            assert!(
                Instant::now() < deadline,
                "the sent message was never counted"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(tap.stats().sent, 1);
    }

    #[test]
    fn a_sleeping_tap_wakes_for_a_recorder_and_for_the_first_event_after_a_quiet_spell() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("ipc://{}/tap.sock", dir.path().display());
        // Sleeps that never time out within the test: only a wake-up gets anything through.
        let options = TapOptions {
            idle_wait: Duration::from_secs(600),
            ..TapOptions::default()
        };
        let (tap, guard) = Tap::<Ping>::start(&address, options).unwrap();
        // Asleep with no recorder; its subscription wakes the thread.
        std::thread::sleep(Duration::from_millis(100));
        let sub = SubSocket::connect(&address, &[b""], PubSubOptions::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tap.listening() {
            assert!(Instant::now() < deadline, "the recorder was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        for n in 1..=3 {
            // Longer than IDLE_TICKS batch periods: the thread has gone to sleep.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !guard.doorbell.is_asleep() {
                assert!(
                    Instant::now() < deadline,
                    "the idle tap never went to sleep"
                );
                std::thread::sleep(IDLE_TICKS * BATCH_PERIOD);
            }
            tap.offer(Ping(n));
            assert!(
                sub.wait(Duration::from_secs(5)).unwrap(),
                "event {n} after a quiet spell never came"
            );
            let frames = sub.try_recv().unwrap().unwrap();
            assert_eq!(parse_message(&frames).unwrap().1, n);
        }
        // The stop wakes it too: dropping the guard does not wait out the sleep.
        while !guard.doorbell.is_asleep() {
            std::thread::sleep(BATCH_PERIOD);
        }
        let (stopped, done) = mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = stopped.send(());
        });
        assert!(
            done.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a sleeping tap did not stop"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        // A queue of one that nothing drains, with a recorder listening.
        let (tx, _rx) = mpsc::sync_channel(1);
        let tap = Tap::<Ping> {
            tx: Some((tx, Arc::new(Doorbell::new().unwrap()))),
            shared: Arc::default(),
        };
        tap.shared.listening.store(true, Ordering::Relaxed);
        for n in 0..5 {
            tap.offer(Ping(n));
        }
        assert_eq!(tap.stats().dropped, 4);
        let off = Tap::<Ping>::disabled();
        off.offer_with(|| unreachable!("a disabled tap builds nothing"));
    }
}

//! `pitcrew-gamepad receive`: the UDP control socket, applied to the gamepad buffers, and
//! the watchdog.
//!
//! The receive loop runs on a thread of its own with a blocking socket whose read timeout is
//! the watchdog deadline: a datagram reaches the buffer with no async wake-up in between,
//! and the watchdog trips on time without a timer task. State is shared with the `status`
//! RPC under one mutex, held for microseconds per datagram.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew_catalog::Catalog;

use crate::control::{self, Rejection, MAX_DATAGRAM_BYTES};
use crate::pads::Pads;
use crate::sources::{SeqVerdict, Sources};
use crate::watchdog::{self, Feed, Watchdog};

/// The longest the loop blocks before checking for shutdown: short enough that a stop is
/// prompt, long enough to cost nothing when idle.
const STOP_POLL: Duration = Duration::from_millis(20);
/// Pause after a socket error, so a persistent one does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What the receiver needs to run.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Instance namespace (buffer names).
    pub namespace: String,
    /// The catalog (gamepad type, safe values).
    pub catalog: Catalog,
    /// Address to bind.
    pub bind: SocketAddr,
    /// Watchdog timeout.
    pub timeout: Duration,
    /// Real-time (SCHED_FIFO) priority of the receive thread, if any.
    pub realtime: Option<u8>,
}

/// Datagram counters over all sources.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams applied to the buffers.
    pub applied: u64,
    /// Dropped: not a control datagram.
    pub malformed: u64,
    /// Dropped: larger than the bound.
    pub oversized: u64,
    /// Dropped: a value out of range or NaN.
    pub out_of_range: u64,
    /// Dropped: not newer than the last applied from their source.
    pub reordered: u64,
    /// Buffer writes that failed.
    pub buffer_errors: u64,
}

/// The receiver's state, shared by the receive loop and the `status` RPC.
#[derive(Debug)]
pub struct State {
    /// Namespace and catalog, for the safe values.
    config: ReceiverConfig,
    /// Per-source bookkeeping.
    pub sources: Sources,
    /// The gamepad buffers.
    pub pads: Pads,
    /// The watchdog.
    pub watchdog: Watchdog,
    /// Counters.
    pub counters: Counters,
    /// The address actually bound (port 0 resolved).
    pub bound: SocketAddr,
}

/// A running receiver: its state and the thread to join.
pub struct Receiver {
    /// State shared with the status RPC.
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Locks the state, recovering from a poisoned lock (the state stays consistent: every
/// update is a counter or a completed buffer write).
pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Receiver {
    /// Binds the socket and starts the receive thread.
    ///
    /// # Errors
    /// When the address cannot be bound, the catalog has no `gamepad` type, or the thread
    /// cannot start.
    pub fn start(config: ReceiverConfig) -> anyhow::Result<Receiver> {
        let ty = config
            .catalog
            .get("gamepad")
            .cloned()
            .context("the catalog has no `gamepad` type")?;
        let socket = UdpSocket::bind(config.bind)
            .with_context(|| format!("cannot bind the control address {}", config.bind))?;
        let bound = socket
            .local_addr()
            .context("cannot read the bound address")?;
        tracing::info!(addr = %bound, timeout_ms = config.timeout.as_millis() as u64, "receiving control datagrams");
        let realtime = config.realtime;
        let state = Arc::new(Mutex::new(State {
            pads: Pads::new(&config.namespace, ty),
            watchdog: Watchdog::new(config.timeout),
            sources: Sources::default(),
            counters: Counters::default(),
            bound,
            config,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("gamepad-receive".into())
            .spawn({
                let (state, stop) = (state.clone(), stop.clone());
                move || {
                    if let Some(priority) = realtime {
                        pitcrew::realtime::raise_priority("gamepad-receive", priority);
                    }
                    receive_loop(&socket, &state, &stop)
                }
            })
            .context("cannot start the receive thread")?;
        Ok(Receiver {
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the loop: control is lost, so the watchdog trips (safe values, neutral
    /// gamepads), then the gamepad buffers are released. Dropping does the same.
    pub fn stop(self) {}
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the receive thread panicked");
            }
        }
    }
}

fn receive_loop(socket: &UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES + 1];
    if let Err(e) = socket.set_nonblocking(true) {
        tracing::error!(error = %e, "cannot make the control socket non-blocking");
    }
    while !stop.load(Ordering::Acquire) {
        let wait = {
            let st = lock(state);
            next_wait(&st, Instant::now())
        };
        if !wait_readable(socket, wait) {
            lock(state).on_tick(Instant::now());
            continue;
        }
        // Drain every queued datagram before looking at the deadlines again.
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, peer)) => {
                    let now = Instant::now();
                    let mut st = lock(state);
                    st.on_datagram(&buf[..n], peer, now);
                    st.on_tick(now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors (e.g. connection refused) surface here on some systems.
                    tracing::debug!(error = %e, "receive error");
                    std::thread::sleep(ERROR_PAUSE);
                    break;
                }
            }
        }
    }
    let mut st = lock(state);
    st.trip(Instant::now(), "receiver stopping");
    let fresh = Pads::new(&st.config.namespace, st.pads.gamepad_type());
    st.pads = fresh;
}

/// Waits until `socket` is readable or `timeout` passes; true when readable.
///
/// poll(2) rather than `SO_RCVTIMEO`: the socket timeout is rounded up to scheduler ticks
/// (up to 10 ms late), which would make the watchdog late by as much; poll sleeps on a
/// high-resolution timer, so the watchdog trips within a millisecond of its deadline.
fn wait_readable(socket: &UdpSocket, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so the loop never wakes before the deadline and spins.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `fd` is one valid, initialised pollfd that outlives the call, and nfds is 1.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n > 0
}

/// How long to block for the next datagram: until the watchdog or a gamepad's own deadline,
/// at most [`STOP_POLL`].
fn next_wait(st: &State, now: Instant) -> Duration {
    let timeout = st.watchdog.timeout();
    let pad_deadline = st
        .pads
        .iter()
        .filter(|(_, p)| p.connected)
        .map(|(_, p)| p.last_seen + timeout)
        .min();
    let deadline = [st.watchdog.deadline(), pad_deadline]
        .into_iter()
        .flatten()
        .min();
    deadline
        .map_or(STOP_POLL, |d| d.saturating_duration_since(now))
        .min(STOP_POLL)
}

impl State {
    /// Validates and applies one datagram from `peer`.
    pub fn on_datagram(&mut self, bytes: &[u8], peer: SocketAddr, now: Instant) {
        self.counters.received += 1;
        let msg = match control::parse(bytes) {
            Ok(msg) => msg,
            Err(r) => {
                self.reject(&peer.to_string(), &r, peer, now, false);
                return;
            }
        };
        let source = match &msg.meta {
            Some(m) => m.source.clone(),
            None => peer.to_string(),
        };
        let seq = msg.meta.as_ref().map(|m| m.seq);
        if self.sources.check_seq(&source, seq, now) == SeqVerdict::Stale {
            self.counters.reordered += 1;
            return;
        }
        match self.pads.apply(&msg.gamepads, now) {
            Ok(()) => {}
            Err(crate::pads::ApplyError::OffCircle(i)) => {
                let r = Rejection::OutOfRange(format!("gamepad {i}: stick off the unit circle"));
                self.reject(&source, &r, peer, now, true);
                return;
            }
            Err(e) => {
                self.counters.buffer_errors += 1;
                tracing::error!(error = %e, "cannot write a gamepad buffer");
                return;
            }
        }
        self.counters.applied += 1;
        if self.watchdog.feed(now) == Feed::Recovered {
            tracing::info!(source = %source, "control restored");
        }
    }

    fn reject(
        &mut self,
        source: &str,
        r: &Rejection,
        peer: SocketAddr,
        now: Instant,
        counted: bool,
    ) {
        match r {
            Rejection::Oversized(_) => self.counters.oversized += 1,
            Rejection::Malformed(_) => self.counters.malformed += 1,
            Rejection::OutOfRange(_) => self.counters.out_of_range += 1,
        }
        if let Some(n) = self.sources.reject(source, now, counted) {
            tracing::warn!(
                source = %source,
                peer = %peer,
                kind = r.kind(),
                dropped_since_last_report = n,
                "dropped a control datagram: {r}"
            );
        }
    }

    /// Runs the deadlines: trips the watchdog, or disconnects single gamepads that stopped
    /// appearing while others go on.
    pub fn on_tick(&mut self, now: Instant) {
        if self.watchdog.deadline().is_some_and(|d| now >= d) {
            self.trip(now, "no valid control datagram in time");
            return;
        }
        let timeout = self.watchdog.timeout();
        let n = self
            .pads
            .disconnect_where(|p| now.saturating_duration_since(p.last_seen) >= timeout);
        if n > 0 {
            tracing::info!(gamepads = n, "gamepads no longer sent were set neutral");
        }
    }

    /// Control is lost: every gamepad neutral and disconnected, safe values to every
    /// connected device that has them, one warning.
    fn trip(&mut self, now: Instant, why: &'static str) {
        if !self.watchdog.force_trip() {
            return;
        }
        let pads = self.pads.disconnect_where(|_| true);
        let report = watchdog::write_safe_values(&self.config.namespace, &self.config.catalog);
        tracing::warn!(
            reason = why,
            last_valid_ms = self
                .watchdog
                .last_valid_age(now)
                .map_or(0, |d| d.as_millis() as u64),
            gamepads = pads,
            devices = report.devices,
            params = report.params,
            failed = report.failed,
            "control lost: gamepads neutral, safe values written"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ControlMessage, Meta, PadState};
    use pitcrew_buffer::{Buffer, Owner, SegmentKey};
    use pitcrew_catalog::{Uid, Value};

    fn state(namespace: &str) -> State {
        let catalog = Catalog::embedded().clone();
        let ty = catalog.get("gamepad").cloned().unwrap();
        State {
            pads: Pads::new(namespace, ty),
            watchdog: Watchdog::new(Duration::from_millis(100)),
            sources: Sources::default(),
            counters: Counters::default(),
            bound: "127.0.0.1:1".parse().unwrap(),
            config: ReceiverConfig {
                namespace: namespace.to_owned(),
                catalog,
                bind: "127.0.0.1:0".parse().unwrap(),
                timeout: Duration::from_millis(100),
                realtime: None,
            },
        }
    }

    fn bytes(seq: u64, lx: f32) -> Vec<u8> {
        control::encode(&ControlMessage {
            gamepads: vec![(
                0,
                PadState {
                    lx,
                    ..PadState::NEUTRAL
                }
                .to_input(),
            )],
            meta: Some(Meta {
                seq,
                sent_us: 0,
                source: "unit".into(),
            }),
        })
    }

    #[test]
    fn deadline_trips_exactly_at_the_timeout_and_writes_safe_values() {
        let ns = format!("u{}-recv", std::process::id());
        let catalog = Catalog::embedded();
        let uid = Uid::new(12, 0, 1);
        let _motor = Owner::create(
            &ns,
            catalog.get("polar-bear").cloned().unwrap(),
            SegmentKey::Uid(uid),
        )
        .unwrap();
        let motor = Buffer::open_uid(&ns, catalog, uid).unwrap();
        let mut st = state(&ns);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let t = Instant::now();
        st.on_datagram(&bytes(1, 0.5), peer, t);
        st.on_datagram(&bytes(1, -0.5), peer, t); // duplicate seq: dropped
        st.on_datagram(b"junk", peer, t);
        assert_eq!(st.pads.iter().next().unwrap().1.state.lx, 0.5);
        assert_eq!((st.counters.reordered, st.counters.malformed), (1, 1));
        motor.write_value("duty_cycle", Value::F32(0.8)).unwrap();
        assert_eq!(
            next_wait(&st, t + Duration::from_millis(90)),
            Duration::from_millis(10)
        );
        st.on_tick(t + Duration::from_millis(99));
        assert!(!st.watchdog.tripped());
        st.on_tick(t + Duration::from_millis(100));
        assert!(st.watchdog.tripped());
        let (_, pad) = st.pads.iter().next().unwrap();
        assert!(!pad.connected);
        assert_eq!(pad.state, PadState::NEUTRAL);
        assert_eq!(
            motor.desired_values(&["duty_cycle"]).unwrap(),
            [Value::F32(0.0)]
        );
        st.on_datagram(&bytes(2, 0.25), peer, t + Duration::from_millis(150));
        assert!(!st.watchdog.tripped());
        assert!(st.pads.iter().next().unwrap().1.connected);
        assert_eq!(st.watchdog.trips(), 1);
    }
}

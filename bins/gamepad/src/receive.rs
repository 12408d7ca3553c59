//! `pitcrew-gamepad receive`: the UDP control socket, applied to the gamepad buffers, the
//! driver links passed on to the device broker, and the watchdog.
//!
//! The receiver never writes to a device: what link loss does to the motors is the
//! broker's (robot-state.md rule 1). A datagram that carries a driver station's requests
//! (`meta.ds`) is stored in that station's slot of the `driver-links` segment with the
//! time it arrived, which is how the broker knows the link is live and what it asks; the
//! station is answered with the robot state as the broker publishes it. The watchdog only
//! sets the gamepads neutral.
//!
//! The receive loop runs on a thread of its own with a blocking socket whose read timeout is
//! the watchdog deadline: a datagram reaches the buffer with no async wake-up in between,
//! and the watchdog trips on time without a timer task. State is shared with the `status`
//! RPC under one mutex, held for microseconds per datagram. The steps each datagram takes
//! are in `datagram`; who sent it, in `auth`; the flood guard, in `flood`.

mod auth;
mod datagram;
pub mod flood;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew_catalog::Catalog;

use pitcrew::control::auth::Verifier;
use pitcrew::key::Keys;

use auth::SourceSessions;
use pitcrew::robot::segment::LinksOwner;
use pitcrew::robot::Robot;

use crate::batch::Batch;
use crate::pads::Pads;
use crate::sources::Sources;
use crate::tap::GamepadTap;
use crate::watchdog::Watchdog;

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
    /// The catalog (its gamepad type).
    pub catalog: Catalog,
    /// Address to bind.
    pub bind: SocketAddr,
    /// Watchdog timeout.
    pub timeout: Duration,
    /// Real-time (SCHED_FIFO) priority of the receive thread, if any.
    pub realtime: Option<u8>,
    /// The recording tap: every datagram applied or refused.
    pub tap: GamepadTap,
    /// The keys datagrams must be sealed with; without a team key only unsealed datagrams
    /// from loopback are taken.
    pub keys: Keys,
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
    /// Applied datagrams that carried a driver station's requests.
    pub station: u64,
    /// Robot-state replies sent to driver stations.
    pub replies: u64,
    /// Driver-link stores that failed.
    pub link_errors: u64,
    /// Dropped: not sealed with this robot's key (or, without a key, not from loopback).
    pub unauthenticated: u64,
    /// Dropped: the tag did not verify (forged, damaged, another key).
    pub forged: u64,
    /// Dropped: authentic but stale (held back, captured earlier, a new session's first).
    pub stale: u64,
    /// Dropped: authentic but replayed or reordered within its session.
    pub replayed: u64,
    /// Dropped: from a session its source name has since replaced.
    pub superseded: u64,
    /// Field-key datagrams taken (their gamepads and enable requests are ignored).
    pub field: u64,
    /// Gamepads not written: their buffer could not be created or written.
    pub buffer_errors: u64,
    /// Datagrams whose gamepads were ignored because another station holds the enable.
    pub not_enabling: u64,
}

/// The receiver's state, shared by the receive loop and the `status` RPC.
#[derive(Debug)]
pub struct State {
    /// Namespace, catalog and timeout.
    config: ReceiverConfig,
    /// The driver-links segment the broker watches.
    links: LinksOwner,
    /// The broker's robot state, for the replies.
    robot: Robot,
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
    /// Checks sealed datagrams; `None` without a team key.
    verifier: Option<Verifier>,
    /// The session each source name sends from now, and the ones it replaced.
    sessions: SourceSessions,
    /// Peers already logged for unauthenticated datagrams (bounded), to log each once.
    unauthenticated_peers: HashSet<std::net::IpAddr>,
    /// When a failed buffer write was last logged (at most once per [`LOG_INTERVAL`]).
    buffer_error_logged: Option<Instant>,
    /// The senders of the datagrams applied in the current batch, for the flood guard.
    applied_peers: Vec<SocketAddr>,
    /// What the flood guard did.
    pub flood: flood::FloodStats,
}

/// The catalog's `gamepad` type, checked once (at start, and by `--check-options`) rather
/// than refused at every datagram: each button a bool, each axis a float, as the
/// datagrams carry them.
///
/// # Errors
/// When the catalog has no `gamepad` type or it cannot hold the control datagrams.
pub fn check_catalog(catalog: &Catalog) -> anyhow::Result<Arc<pitcrew_catalog::DeviceType>> {
    let ty = catalog
        .get("gamepad")
        .cloned()
        .context("the catalog has no `gamepad` type")?;
    if ty.params().len() > pitcrew_buffer::MAX_BUFFER_PARAMS {
        anyhow::bail!(
            "the catalog's `gamepad` type has {} params; a buffer holds at most {}",
            ty.params().len(),
            pitcrew_buffer::MAX_BUFFER_PARAMS
        );
    }
    pitcrew::gamepad::GamepadLayout::of("gamepad", &ty)
        .context("the catalog's `gamepad` type cannot hold the control datagrams")?;
    Ok(ty)
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
        let ty = check_catalog(&config.catalog)?;
        let socket = UdpSocket::bind(config.bind)
            .with_context(|| format!("cannot bind the control address {}", config.bind))?;
        let bound = socket
            .local_addr()
            .context("cannot read the bound address")?;
        tracing::info!(addr = %bound, timeout_ms = config.timeout.as_millis() as u64, "receiving control datagrams");
        match (&config.keys.team, &config.keys.field) {
            (Some(team), field) => tracing::info!(
                team_key = %team.fingerprint(),
                field_key = field.as_ref().map(|k| k.fingerprint()).unwrap_or_default(),
                "control datagrams must be sealed with the team or field key"
            ),
            (None, _) => tracing::warn!(
                "no team key (--key-file): taking unauthenticated control datagrams from this machine (loopback) only; create a key with `pitcrew key new`"
            ),
        }
        let verifier = Verifier::new(&config.keys);
        let realtime = config.realtime;
        let links = LinksOwner::create(&config.namespace)
            .context("cannot create the driver-links segment")?;
        tracing::info!(
            buffer = links.name(),
            "passing driver links to the device broker"
        );
        let state = Arc::new(Mutex::new(State {
            links,
            robot: Robot::new(&config.namespace),
            pads: Pads::new(&config.namespace, ty),
            watchdog: Watchdog::new(config.timeout),
            sources: Sources::default(),
            counters: Counters::default(),
            bound,
            config,
            verifier,
            sessions: SourceSessions::default(),
            unauthenticated_peers: HashSet::new(),
            buffer_error_logged: None,
            applied_peers: Vec::new(),
            flood: flood::FloodStats::default(),
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

    /// Stops the loop: the gamepads go neutral, then the gamepad and driver-link buffers
    /// are released (the broker sees the links go and disables the robot). Dropping does
    /// the same.
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
    let mut batch = Batch::default();
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(crate::batch::BATCH);
    if let Err(e) = socket.set_nonblocking(true) {
        tracing::error!(error = %e, "cannot make the control socket non-blocking");
    }
    crate::batch::enlarge_receive_buffer(socket);
    let mut guard = flood::FloodGuard::new(socket, Instant::now());
    while !stop.load(Ordering::Acquire) {
        let wait = {
            let st = lock(state);
            next_wait(&st, Instant::now())
        };
        if !wait_readable(socket, wait) {
            let now = Instant::now();
            let mut st = lock(state);
            st.on_tick(now);
            guard.note(0, &[], now);
            st.flood = guard.stats();
            continue;
        }
        // Drain every queued datagram, a batch per system call and per lock, before
        // looking at the deadlines again; a batch that did not fill the call emptied the
        // queue.
        loop {
            match batch.recv(socket) {
                Ok(0) => break,
                Ok(n) => {
                    let now = Instant::now();
                    {
                        let mut st = lock(state);
                        let applied = st.counters.applied;
                        for (bytes, peer) in batch.iter() {
                            if let Some(reply) = st.on_datagram(bytes, peer, now) {
                                replies.push((reply, peer));
                            }
                        }
                        st.on_tick(now);
                        let refused = (n as u64).saturating_sub(st.counters.applied - applied);
                        guard.note(refused, &st.applied_peers, now);
                        st.applied_peers.clear();
                        st.flood = guard.stats();
                    }
                    // After the buffers are written and the lock is released: the replies
                    // are for the drivers' status lines, never on the control path.
                    let mut sent = 0;
                    for (reply, peer) in replies.drain(..) {
                        if !reply.is_empty() && socket.send_to(&reply, peer).is_ok() {
                            sent += 1;
                        }
                    }
                    if sent > 0 {
                        lock(state).counters.replies += sent;
                    }
                    if n < crate::batch::BATCH {
                        break;
                    }
                }
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
    /// The recording tap's counters.
    pub fn tap_stats(&self) -> pitcrew::tap::TapStats {
        self.config.tap.stats()
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

    /// Control input stopped: every gamepad neutral and disconnected, one warning. The
    /// motors are the broker's: it sees the driver links go silent.
    fn trip(&mut self, now: Instant, why: &'static str) {
        if !self.watchdog.force_trip() {
            return;
        }
        let pads = self.pads.disconnect_where(|_| true);
        tracing::warn!(
            reason = why,
            last_valid_ms = self
                .watchdog
                .last_valid_age(now)
                .map_or(0, |d| d.as_millis() as u64),
            gamepads = pads,
            "control input lost: gamepads neutral"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
    use pitcrew::gamepad::PadState;
    use pitcrew::robot::segment::{open_links, read_links};
    use pitcrew::robot::{monotonic_ns, status as robot_status, Mode};

    fn state(namespace: &str) -> State {
        let catalog = Catalog::embedded().clone();
        let ty = catalog.get("gamepad").cloned().unwrap();
        State {
            links: LinksOwner::create(namespace).unwrap(),
            robot: Robot::new(namespace),
            pads: Pads::new(namespace, ty),
            watchdog: Watchdog::new(Duration::from_millis(100)),
            sources: Sources::default(),
            counters: Counters::default(),
            bound: "127.0.0.1:1".parse().unwrap(),
            verifier: None,
            sessions: SourceSessions::default(),
            unauthenticated_peers: HashSet::new(),
            buffer_error_logged: None,
            applied_peers: Vec::new(),
            flood: flood::FloodStats::default(),
            config: ReceiverConfig {
                namespace: namespace.to_owned(),
                catalog,
                bind: "127.0.0.1:0".parse().unwrap(),
                timeout: Duration::from_millis(100),
                realtime: None,
                tap: GamepadTap::disabled(),
                keys: Keys::default(),
            },
        }
    }

    fn bytes(seq: u64, lx: f32, station: Option<StationRequest>) -> Vec<u8> {
        control::encode(&ControlMessage {
            gamepads: vec![(
                0,
                PadInput::from_state(PadState {
                    lx,
                    ..PadState::NEUTRAL
                }),
            )],
            meta: Some(Meta {
                seq,
                sent_us: 0,
                source: "unit".into(),
                station,
            }),
        })
    }

    #[test]
    fn deadline_trips_exactly_at_the_timeout_and_sets_the_gamepads_neutral() {
        let ns = format!("u{}-recv", std::process::id());
        let mut st = state(&ns);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let t = Instant::now();
        assert!(
            st.on_datagram(&bytes(1, 0.5, None), peer, t).is_none(),
            "no station: no reply"
        );
        st.on_datagram(&bytes(1, -0.5, None), peer, t); // duplicate seq: dropped
        st.on_datagram(b"junk", peer, t);
        assert_eq!(st.pads.iter().next().unwrap().1.state.lx, 0.5);
        assert_eq!((st.counters.reordered, st.counters.malformed), (1, 1));
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
        st.on_datagram(&bytes(2, 0.25, None), peer, t + Duration::from_millis(150));
        assert!(!st.watchdog.tripped());
        assert!(st.pads.iter().next().unwrap().1.connected);
        assert_eq!(st.watchdog.trips(), 1);
        let _ = pitcrew_buffer::remove_namespace(&ns);
    }

    #[test]
    fn a_driver_station_datagram_is_passed_to_the_broker_and_answered() {
        let ns = format!("u{}-link", std::process::id());
        let mut st = state(&ns);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let ask = StationRequest {
            mode: Mode::Autonomous,
            enable: true,
            enable_id: 4,
            estop: false,
        };
        let before = monotonic_ns();
        let reply = st
            .on_datagram(&bytes(1, 0.0, Some(ask)), peer, Instant::now())
            .unwrap();
        let status = robot_status::parse_datagram(&reply).unwrap();
        assert_eq!(
            status["state"], "disabled",
            "no broker: the robot reads disabled"
        );
        let links = read_links(&open_links(&ns).unwrap()).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].source.as_str(), links[0].seq, links[0].request),
            ("unit", 1, ask)
        );
        assert!(links[0].seen_ns >= before);
        let _ = pitcrew_buffer::remove_namespace(&ns);
    }
}

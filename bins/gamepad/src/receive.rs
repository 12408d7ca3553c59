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
//! RPC under one mutex, held for microseconds per datagram.

mod auth;
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
use pitcrew::control::{self, ControlMessage, Meta, PadInput, Rejection, StationRequest};
use pitcrew::key::{KeyKind, Keys};

use auth::{SealedFrom, SourceSessions};
use pitcrew::robot::segment::{LinkSlot, LinksOwner};
use pitcrew::robot::{monotonic_ns, Robot, RobotStatus};

use crate::batch::Batch;
use crate::pads::Pads;
use crate::sources::{SeqVerdict, Sources, LOG_INTERVAL};
use crate::tap::{ControlEvent, GamepadTap};
use crate::watchdog::{Feed, Watchdog};

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

/// Whether a station other than `source` holds the enable: then only its datagrams move
/// the gamepads among the driver stations', as a driver expects (a second laptop with the
/// team key, started by mistake or by a teammate, must not take the sticks). With nobody
/// holding it (disabled, no broker) every station's gamepads are applied, as before.
/// Datagrams without driver-station fields are no station (a gamepad on the robot itself,
/// a PiE-style sender, beside a dashboard page that enabled): they move gamepads as before.
fn driven_by_another(status: &RobotStatus, source: &str) -> bool {
    status.state.is_enabled() && !status.link.is_empty() && status.link != source
}

/// The robot-state datagram answering `link`: the state as the broker publishes it, with
/// the age of the enabling link when it is this one.
fn reply(status: &RobotStatus, link: &LinkSlot) -> Vec<u8> {
    let seen = (status.link == link.source).then_some(link.seen_ns);
    status.datagram(monotonic_ns(), seen)
}

impl State {
    /// Validates and applies one datagram from `peer`; returns the answer to send: the
    /// robot state for a driver station, and with a key the challenge for every authentic
    /// datagram (auth module docs).
    ///
    /// The steps, in order: who sent it (`authenticate`), what it says
    /// ([`control::parse`]), whether it is newer than its source's last
    /// (`admit_in_order`), whether its gamepads may move (`station_status`), the gamepad
    /// buffers (`apply_pads`), the bookkeeping of an applied datagram (`note_applied`),
    /// then a driver station's requests passed to the broker (`pass_link`).
    pub fn on_datagram(&mut self, bytes: &[u8], peer: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        self.counters.received += 1;
        let (payload, sealed) = match self.authenticate(bytes, peer, now) {
            Ok(opened) => opened,
            Err(answer) => return answer,
        };
        let mut msg = match control::parse(payload) {
            Ok(msg) => msg,
            Err(r) => {
                self.offer(payload, peer, Some((r.kind(), r.to_string())));
                self.reject(&peer.to_string(), &r, peer, now, false);
                return sealed.map(|o| self.answer(&o, now, &[]));
            }
        };
        let source = match &msg.meta {
            Some(m) => m.source.clone(),
            None => peer.to_string(),
        };
        if !self.admit_in_order(&mut msg, &source, sealed.as_ref(), payload, peer, now) {
            return None;
        }
        let (robot, ignored) = self.station_status(&mut msg, &source);
        if !self.apply_pads(&msg.gamepads, &source, payload, peer, now) {
            return sealed.map(|o| self.answer(&o, now, &[]));
        }
        self.note_applied(payload, peer, &source, !ignored, now);
        let Some((meta, request)) = msg.meta.and_then(|m| m.station.map(|r| (m, r))) else {
            return sealed.map(|o| self.answer(&o, now, &[]));
        };
        Some(self.pass_link(meta, request, sealed, robot, now))
    }

    /// Whether a datagram comes after its source's last applied one; when not, it is
    /// counted, offered to the tap and dropped (`false`). The session counter orders a
    /// sealed sender's datagrams: its name may move to a new session (a restarted station)
    /// but never back. An unsealed sender is ordered by its `seq`. A datagram sealed with
    /// the field key is cut down to what that key may do: stop the robot (no gamepads, no
    /// enable).
    fn admit_in_order(
        &mut self,
        msg: &mut ControlMessage,
        source: &str,
        sealed: Option<&SealedFrom>,
        payload: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> bool {
        let Some(o) = sealed else {
            let seq = msg.meta.as_ref().map(|m| m.seq);
            if self.sources.check_seq(source, seq, now) == SeqVerdict::Stale {
                self.counters.reordered += 1;
                self.offer_with(payload, peer, || {
                    (
                        "reordered",
                        "not newer than the last applied from its source".into(),
                    )
                });
                return false;
            }
            return true;
        };
        if !self.sessions.admit(source, (o.kind, o.session)) {
            self.counters.superseded += 1;
            self.offer_with(payload, peer, || {
                ("superseded", "from an older session of its source".into())
            });
            return false;
        }
        self.sources.check_seq(source, None, now);
        if o.kind == KeyKind::Field {
            // The field key stops the robot and nothing else.
            self.counters.field += 1;
            msg.gamepads.clear();
            if let Some(ds) = msg.meta.as_mut().and_then(|m| m.station.as_mut()) {
                ds.enable = false;
            }
        }
        true
    }

    /// For a driver station's datagram, the robot state, read once here because its reply
    /// needs it anyway (other datagrams pay nothing for it), and whether its gamepads were
    /// dropped (`true`) because another station holds the enable: a second station (the
    /// same key, another name) does not take the enabling driver's sticks, while its
    /// requests (an estop) still go through.
    fn station_status(
        &mut self,
        msg: &mut ControlMessage,
        source: &str,
    ) -> (Option<RobotStatus>, bool) {
        if msg.meta.as_ref().and_then(|m| m.station.as_ref()).is_none() {
            return (None, false);
        }
        let status = self.robot.status();
        let held_back = !msg.gamepads.is_empty() && driven_by_another(&status, source);
        if held_back {
            self.counters.not_enabling += 1;
            self.sources.ignored(source);
            msg.gamepads.clear();
        }
        (Some(status), held_back)
    }

    /// Writes the datagram's gamepads to their buffers; `false` when the datagram is
    /// refused (a stick off the unit circle once merged), counted and offered like any
    /// datagram out of range. A buffer that cannot be written does not refuse it: the
    /// driver station's requests must still reach the broker, so the failure is counted
    /// and logged at most once per [`LOG_INTERVAL`].
    fn apply_pads(
        &mut self,
        gamepads: &[(u32, PadInput)],
        source: &str,
        payload: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> bool {
        match self.pads.apply(gamepads, now) {
            Ok(skipped) => self.counters.buffer_errors += skipped as u64,
            Err(crate::pads::ApplyError::OffCircle(i)) => {
                let r = Rejection::OutOfRange(format!("gamepad {i}: stick off the unit circle"));
                self.offer(payload, peer, Some((r.kind(), r.to_string())));
                self.reject(source, &r, peer, now, true);
                return false;
            }
            Err(e) => {
                self.counters.buffer_errors += 1;
                let due = self
                    .buffer_error_logged
                    .is_none_or(|t| now.saturating_duration_since(t) >= LOG_INTERVAL);
                if due {
                    self.buffer_error_logged = Some(now);
                    tracing::error!(error = %e, buffer_errors = self.counters.buffer_errors, "cannot write a gamepad buffer (logged at most once a minute; counted in `pitcrew gamepads`)");
                }
            }
        }
        true
    }

    /// The bookkeeping of an applied datagram: counted, its sender noted for the flood
    /// guard (at most a batch of them), offered to the tap as applied, and the watchdog fed
    /// unless its gamepads were held back (`feeds` false): a station that does not hold
    /// the enable must not keep the watchdog from tripping when the enabling one goes
    /// silent.
    fn note_applied(
        &mut self,
        payload: &[u8],
        peer: SocketAddr,
        source: &str,
        feeds: bool,
        now: Instant,
    ) {
        self.counters.applied += 1;
        if self.applied_peers.len() < crate::batch::BATCH {
            self.applied_peers.push(peer);
        }
        self.offer(payload, peer, None);
        if feeds && self.watchdog.feed(now) == Feed::Recovered {
            tracing::info!(source = %source, "control restored");
        }
    }

    /// Passes a driver station's requests to the broker (its slot in the `driver-links`
    /// segment, stamped with the time it arrived: how the broker knows the link is live)
    /// and returns the answer: the robot state as the broker publishes it (`robot`, if
    /// already read), sealed when the datagram was.
    fn pass_link(
        &mut self,
        meta: Meta,
        request: StationRequest,
        sealed: Option<SealedFrom>,
        robot: Option<RobotStatus>,
        now: Instant,
    ) -> Vec<u8> {
        self.counters.station += 1;
        let link = LinkSlot {
            source: meta.source,
            seen_ns: monotonic_ns(),
            seq: sealed.as_ref().map_or(meta.seq, |o| o.counter),
            request,
        };
        if let Err(e) = self.links.store(&link) {
            self.counters.link_errors += 1;
            tracing::error!(error = %e, source = %link.source, "cannot pass the driver link to the broker");
        }
        let status = robot.unwrap_or_else(|| self.robot.status());
        let state = reply(&status, &link);
        match sealed {
            Some(o) => self.answer(&o, now, &state),
            None => state,
        }
    }

    /// The recording tap's counters.
    pub fn tap_stats(&self) -> pitcrew::tap::TapStats {
        self.config.tap.stats()
    }

    /// Offers a datagram to the recording tap (applied when `refused` is `None`).
    fn offer(&self, bytes: &[u8], peer: SocketAddr, refused: Option<(&'static str, String)>) {
        self.config.tap.offer_with(|| ControlEvent {
            t_ns: monotonic_ns(),
            peer,
            bytes: bytes
                .get(..control::MAX_DATAGRAM_BYTES)
                .unwrap_or(bytes)
                .to_vec(),
            refused,
        });
    }

    /// Offers a refused datagram, building the reason only while a recorder listens.
    fn offer_with(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        why: impl FnOnce() -> (&'static str, String),
    ) {
        if self.config.tap.listening() {
            self.offer(bytes, peer, Some(why()));
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
    use pitcrew::control::{ControlMessage, Meta, PadInput, StationRequest};
    use pitcrew::gamepad::PadState;
    use pitcrew::robot::segment::{open_links, read_links};
    use pitcrew::robot::{status as robot_status, Mode};

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

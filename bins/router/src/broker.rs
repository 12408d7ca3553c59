//! The routing loop: `[C, S, P]` in on the frontend becomes `[S, C, P]` out on the backend,
//! and back, per spec/wire.md. Payloads are never decoded on this path; only when a message
//! cannot be delivered does the router read the request header to answer the sender.

use std::collections::{HashMap, HashSet};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pitcrew::codec::{peek_header, Header};
use pitcrew::endpoint::curve::{partition_binds, Mechanism};
use pitcrew::endpoint::{
    Arrival, EndpointError, Frame, Monitor, PeerEvent, Poller, RouterSocket, SendOutcome,
};
use pitcrew::key::KeyKind;
use pitcrew::rpc::{ErrorCode, Message, Response, RpcError};

use crate::control::{self, Counters};
use crate::in_flight::InFlight;
use crate::peers::{Peers, Side};

/// The router's own identity: requests addressed to it are answered by [`control`].
pub const ROUTER_IDENTITY: &[u8] = b"router";

/// How long one poll may sleep; bounds how late a stop request is noticed.
const POLL_TIMEOUT_MS: i32 = 50;
/// After routing a message the loop keeps polling without sleeping for this long, because
/// the answer usually follows within a few hundred microseconds and waking a sleeping
/// thread costs tens of microseconds on small boards and VMs (measured in the README's
/// design notes). The CPU cost is bounded: at most this much spinning per message burst.
const SPIN: std::time::Duration = std::time::Duration::from_micros(300);
/// The loop spins ([`SPIN`]) only while at most this many requests wait for an answer.
/// With more in flight it is throughput-bound: the next message comes soon anyway and
/// each wake-up routes a batch, while spinning would take a core from the clients and
/// services it waits on (on two cores, measured: about a quarter of the router's CPU per
/// call under the 8 × 32 throughput load, for no gain in calls/s).
const SPIN_MAX_IN_FLIGHT: usize = 8;
/// Messages taken from one socket before looking at the other, so a flood on one side
/// cannot starve the other.
const BATCH: usize = 512;
/// Requests one client may have in flight to one service. Below the 1000-message pipe
/// high-water mark, so that a single client that floods a service (or one that has
/// stalled) can never fill that service's pipe and make everyone else's calls `busy`; far
/// above what a pipelining client needs (the benchmark pipelines 32).
pub const MAX_IN_FLIGHT_PER_PAIR: u32 = 64;
/// Connection events taken from one monitor per turn (like [`BATCH`] for messages).
const MONITOR_BATCH: usize = 256;

/// How a [`Broker::drain`] of one socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Nothing was waiting: the socket is idle until signalled or sent on.
    Idle,
    /// Something was routed and then nothing more was waiting.
    Emptied,
    /// [`BATCH`] messages were routed and more may wait.
    More,
}

/// How many distinct senders of malformed messages are remembered to log each only once.
const MAX_REMEMBERED_SENDERS: usize = 1024;

/// The only service a field controller's key reaches, and its methods there: match phases
/// and the emergency stop (robot-state.md, "Who may drive").
const FIELD_SERVICE: &[u8] = b"robot-service";
/// The methods of [`FIELD_SERVICE`] a field controller may call.
const FIELD_METHODS: &[&str] = &["state", "start_match", "stop_match", "estop"];

/// How many identities last heard on a CURVE socket are remembered; past it the least
/// recently heard half is forgotten (a forgotten peer that is still connected is reached
/// again as soon as it sends).
const MAX_SECURE_PEERS: usize = 4096;

/// One side's sockets: the plain one (ipc; loopback TCP without a key) and, with a team
/// key and TCP addresses, a CURVE one, with the identities last heard on it.
///
/// The set is not updated from disconnect events: those are matched to an identity by the
/// connection's descriptor, which a new connection may already have taken over (a failed
/// handshake's connection closes while the next one is accepted), and a wrong match would
/// make a live peer unreachable. An identity leaves the set when it is heard on the plain
/// socket, or when the set is full.
struct Endpoint {
    plain: RouterSocket,
    plain_monitor: Monitor,
    secure: Option<(RouterSocket, Monitor)>,
    /// Identity → when it was last heard (a message count).
    secure_peers: HashMap<Vec<u8>, u64>,
    heard_count: u64,
}

impl Endpoint {
    /// Binds `addresses`, the TCP ones as CURVE servers of `curve` (team only, or team and
    /// field) when this process has a team key.
    fn bind(addresses: &[String], curve: Mechanism) -> Result<Endpoint, EndpointError> {
        let [(_, plain), (_, secure)] = partition_binds(addresses)?;
        let plain = RouterSocket::bind_as(&plain, Mechanism::Plain)?;
        let secure = if secure.is_empty() {
            None
        } else {
            let socket = RouterSocket::bind_as(&secure, curve)?;
            let monitor = socket.monitor()?;
            Some((socket, monitor))
        };
        Ok(Endpoint {
            plain_monitor: plain.monitor()?,
            plain,
            secure,
            secure_peers: HashMap::new(),
            heard_count: 0,
        })
    }

    /// Whether `identity` is reached on the CURVE socket.
    fn is_secure_peer(&self, identity: &[u8]) -> bool {
        self.secure.is_some() && self.secure_peers.contains_key(identity)
    }

    /// The socket `identity` is reached on.
    fn socket_for(&self, identity: &[u8]) -> &RouterSocket {
        match &self.secure {
            Some((socket, _)) if self.secure_peers.contains_key(identity) => socket,
            _ => &self.plain,
        }
    }

    /// Notes which socket `identity` was last heard on.
    fn heard(&mut self, identity: &[u8], secure: bool) {
        self.heard_count += 1;
        if !secure {
            if self.secure_peers.contains_key(identity) {
                self.secure_peers.remove(identity);
            }
            return;
        }
        if let Some(at) = self.secure_peers.get_mut(identity) {
            *at = self.heard_count;
            return;
        }
        if self.secure_peers.len() >= MAX_SECURE_PEERS {
            let mut ages: Vec<u64> = self.secure_peers.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.secure_peers.retain(|_, at| *at > cut);
        }
        self.secure_peers
            .insert(identity.to_vec(), self.heard_count);
    }
}

/// Stops a running [`Broker`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the loop to return; it notices within one poll timeout.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The router: a ROUTER socket per side (two with CURVE), their monitors, the peer table
/// and counters.
pub struct Broker {
    frontend: Endpoint,
    backend: Endpoint,
    pub(crate) peers: Peers,
    pub(crate) counters: Counters,
    pub(crate) started: Instant,
    stop: Arc<AtomicBool>,
    malformed_senders: HashSet<Vec<u8>>,
    /// Requests forwarded from each client to each service and not yet answered.
    in_flight: InFlight,
    /// Sockets sent on since their last receive that found nothing, by slot
    /// ([`Broker::socket_slots`]).
    sent: [bool; 4],
}

impl Broker {
    /// Binds both sides.
    ///
    /// # Errors
    /// When an endpoint cannot be bound.
    pub fn bind(frontend: &[String], backend: &[String]) -> Result<Self, EndpointError> {
        Ok(Self {
            // The field key reaches clients' side only (and there, `field_may`).
            frontend: Endpoint::bind(frontend, Mechanism::CurveServerWithField)?,
            backend: Endpoint::bind(backend, Mechanism::CurveServer)?,
            peers: Peers::default(),
            counters: Counters::default(),
            started: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            malformed_senders: HashSet::new(),
            in_flight: InFlight::default(),
            sent: [false; 4],
        })
    }

    /// A handle to stop [`Broker::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Routes until stopped.
    ///
    /// Each turn waits on the sockets' mailbox descriptors ([`Poller`]), then drains every
    /// socket that was signalled or is not known to be idle, up to `BATCH` messages
    /// each. A socket is known to be idle once a receive on it said "nothing waiting" and
    /// nothing was sent on it since: a send may consume the signal of a message that
    /// arrived meanwhile, so a socket sent on is tried again before the loop sleeps (see
    /// `endpoint::poll`).
    ///
    /// # Errors
    /// When polling or receiving fails for a reason other than a transient one.
    pub fn run(mut self) -> Result<(), EndpointError> {
        // [front plain, back plain, front secure?, back secure?], then their monitors.
        let slots = self.socket_slots();
        let (sockets, monitors) = self.pollables();
        let mut poller = Poller::new(&sockets, &monitors)?;
        let mut ready = vec![false; poller.len()];
        // Nothing is known about any socket yet: try each on the first turn.
        let mut unsettled = vec![true; slots.len()];
        let mut monitors_unsettled = true;
        let mut frames = Vec::with_capacity(3);
        let mut last_activity = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let timeout = if unsettled.contains(&true)
                || self.sent.contains(&true)
                || monitors_unsettled
                || (self.in_flight.total() <= SPIN_MAX_IN_FLIGHT && last_activity.elapsed() < SPIN)
            {
                0
            } else {
                POLL_TIMEOUT_MS
            };
            poller.wait(timeout, &mut ready)?;
            // Connection events first, so a disconnect is applied before a new connection
            // reusing the same descriptor is seen.
            if monitors_unsettled || ready[slots.len()..].contains(&true) {
                monitors_unsettled = self.drain_monitors();
            }
            let mut routed = false;
            for (i, &(side, secure)) in slots.iter().enumerate() {
                if !(ready[i] || unsettled[i] || self.sent[i]) {
                    continue;
                }
                // A receive that finds nothing covers every send made before it.
                self.sent[i] = false;
                let drained = self.drain(side, secure, &mut frames)?;
                unsettled[i] = drained == Drained::More;
                routed |= drained != Drained::Idle;
            }
            if routed {
                last_activity = Instant::now();
            }
        }
        Ok(())
    }

    /// Which socket each poller slot is: side and whether it is the CURVE one.
    fn socket_slots(&self) -> Vec<(Side, bool)> {
        let mut slots = vec![(Side::Client, false), (Side::Service, false)];
        slots.extend(self.secure_sides().map(|side| (side, true)));
        slots
    }

    /// The sides that have a CURVE socket, in polling order.
    fn secure_sides(&self) -> impl Iterator<Item = Side> {
        let front = self.frontend.secure.is_some().then_some(Side::Client);
        let back = self.backend.secure.is_some().then_some(Side::Service);
        [front, back].into_iter().flatten()
    }

    fn pollables(&self) -> (Vec<&RouterSocket>, Vec<&Monitor>) {
        let mut sockets = vec![&self.frontend.plain, &self.backend.plain];
        let mut monitors = vec![&self.frontend.plain_monitor, &self.backend.plain_monitor];
        for (socket, monitor) in [&self.frontend.secure, &self.backend.secure]
            .into_iter()
            .flatten()
        {
            sockets.push(socket);
            monitors.push(monitor);
        }
        (sockets, monitors)
    }

    /// Applies waiting connection events; returns whether more may wait.
    fn drain_monitors(&mut self) -> bool {
        let monitors: Vec<(Side, &Monitor)> = [
            (Side::Client, Some(&self.frontend.plain_monitor)),
            (Side::Service, Some(&self.backend.plain_monitor)),
            (Side::Client, self.frontend.secure.as_ref().map(|(_, m)| m)),
            (Side::Service, self.backend.secure.as_ref().map(|(_, m)| m)),
        ]
        .into_iter()
        .filter_map(|(side, m)| m.map(|m| (side, m)))
        .collect();
        let mut events = Vec::new();
        let mut more = false;
        for (side, monitor) in monitors {
            let mut these = Vec::new();
            more |= monitor.drain_into(&mut these, MONITOR_BATCH);
            events.extend(these.into_iter().map(|event| (side, event)));
        }
        for (side, event) in events {
            if let PeerEvent::Disconnected(fd) = event {
                if let Some(identity) = self.peers.disconnected(side, fd) {
                    // Its requests will never be answered (or its answers never read).
                    self.in_flight.forget(side, &identity);
                    tracing::info!(
                        peer = %String::from_utf8_lossy(&identity),
                        side = side.as_str(),
                        "peer disconnected"
                    );
                }
            }
        }
        more
    }

    /// Routes up to [`BATCH`] messages waiting on one socket, receiving each into
    /// `frames` (one vector for the whole loop).
    fn drain(
        &mut self,
        side: Side,
        secure: bool,
        frames: &mut Vec<Frame>,
    ) -> Result<Drained, EndpointError> {
        for n in 0..BATCH {
            let endpoint = self.endpoint(side);
            let socket = match (&endpoint.secure, secure) {
                (Some((socket, _)), true) => socket,
                _ => &endpoint.plain,
            };
            let Some(arrival) = socket.try_recv_into(frames)? else {
                return Ok(if n == 0 {
                    Drained::Idle
                } else {
                    Drained::Emptied
                });
            };
            if self.endpoint(side).secure.is_some() {
                if let Some(sender) = frames.first() {
                    self.endpoint_mut(side).heard(sender, secure);
                }
            }
            self.route(side, frames, arrival);
        }
        Ok(Drained::More)
    }

    fn endpoint(&self, side: Side) -> &Endpoint {
        match side {
            Side::Client => &self.frontend,
            Side::Service => &self.backend,
        }
    }

    fn endpoint_mut(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Client => &mut self.frontend,
            Side::Service => &mut self.backend,
        }
    }

    /// Whether a field controller's request may pass: match phases and the emergency stop
    /// on `robot-service` only.
    fn field_may(destination: &[u8], payload: &[u8]) -> bool {
        destination == FIELD_SERVICE
            && matches!(
                Message::decode(payload),
                Ok(Message::Request(r)) if FIELD_METHODS.contains(&r.method.as_str())
            )
    }

    /// Forwards one message received on `side`: `[sender, destination, payload]`, taken
    /// out of `frames` (left empty).
    ///
    /// Messages the router must not forward are dealt with first, each in a function of
    /// its own: malformed, self-addressed, beyond what the field key permits, and calls to
    /// the router itself; everything else is [`Broker::forward`]ed.
    #[inline]
    fn route(&mut self, side: Side, frames: &mut Vec<Frame>, arrival: Arrival) {
        let Arrival {
            peer_fd: fd,
            user,
            frames: count,
        } = arrival;
        if count != 3 || frames.len() != 3 {
            let sender = frames.first().map(|f| f.to_vec()).unwrap_or_default();
            frames.clear();
            self.peers.seen(side, &sender, fd);
            self.malformed(side, &sender, format!("{count} frames, expected 3"));
            return;
        }
        // Three frames, checked just above.
        let (Some(payload), Some(destination), Some(sender)) =
            (frames.pop(), frames.pop(), frames.pop())
        else {
            return;
        };
        self.peers.seen(side, &sender, fd);
        if *destination == *sender {
            self.counters.self_addressed += 1;
            tracing::debug!(peer = %String::from_utf8_lossy(&sender), "dropped a self-addressed message");
            return;
        }
        // The field key reaches robot-service's match phases and estop, and nothing else:
        // not the router's own calls either (its peers and their names are the team's).
        if user == Some(KeyKind::Field) && !Self::field_may(&destination, &payload) {
            self.refuse_field(side, &sender, &destination, &payload);
            return;
        }
        if &*destination == ROUTER_IDENTITY {
            self.answer_router_call(side, &sender, &payload);
            return;
        }
        self.forward(side, &sender, &destination, payload);
    }

    /// Refuses a field controller's message that [`Broker::field_may`] does not permit.
    /// Kept out of [`Broker::route`] so that the refusal's text is built only when needed.
    #[cold]
    fn refuse_field(&mut self, side: Side, sender: &[u8], destination: &[u8], payload: &[u8]) {
        self.counters.forbidden += 1;
        let error = RpcError::new(
            ErrorCode::Other("forbidden".into()),
            format!(
                "the field key permits only {} on robot-service",
                FIELD_METHODS.join(", ")
            ),
        );
        self.refuse(side, sender, destination, peek_header(payload), error);
    }

    /// Answers a call addressed to the router itself (see [`control`]), from the peer
    /// table and counters as they are now.
    fn answer_router_call(&mut self, side: Side, sender: &[u8], payload: &[u8]) {
        self.counters.router_calls += 1;
        let view = control::RouterView {
            peers: &self.peers,
            counters: &self.counters,
            started: self.started,
        };
        if let Some(reply) = control::handle(&view, side, sender, payload) {
            let _ = self.send(side, sender, ROUTER_IDENTITY, reply.into());
        }
    }

    /// Sends `payload` from `sender` on to `destination` on the other side, the payload's
    /// buffer handed on as is. Only the header is read: to keep the per-pair in-flight
    /// count, and to answer a request that cannot be delivered.
    #[inline]
    fn forward(&mut self, side: Side, sender: &[u8], destination: &[u8], payload: Frame) {
        let header = peek_header(&payload);
        let is_request = matches!(header, Some(Header::Request { .. }));
        match (side, header) {
            (Side::Client, Some(Header::Request { .. }))
                if self.in_flight.count(sender, destination) >= MAX_IN_FLIGHT_PER_PAIR =>
            {
                self.counters.busy += 1;
                let error = too_many_in_flight(destination);
                self.refuse(side, sender, destination, header, error);
                return;
            }
            (Side::Service, Some(Header::Response { .. })) => {
                self.in_flight.answered(destination, sender);
            }
            _ => {}
        }
        let to_side = match side {
            Side::Client => Side::Service,
            Side::Service => Side::Client,
        };
        match self.send(to_side, destination, sender, payload) {
            SendOutcome::Sent => {
                self.counters.routed += 1;
                self.peers.delivered(to_side, destination);
                if side == Side::Client && is_request {
                    self.in_flight.sent(sender, destination);
                }
            }
            SendOutcome::Unreachable => {
                self.counters.unreachable += 1;
                self.peers.unreachable(to_side, destination);
                let error = not_connected(destination);
                self.refuse(side, sender, destination, header, error);
            }
            SendOutcome::Busy => {
                self.counters.busy += 1;
                let error = not_keeping_up(destination);
                self.refuse(side, sender, destination, header, error);
            }
            SendOutcome::Failed(reason) => {
                tracing::warn!(peer = %String::from_utf8_lossy(destination), %reason, "send failed");
            }
        }
    }

    /// Answers a request that could not be delivered; anything else is dropped and counted.
    fn refuse(
        &mut self,
        side: Side,
        sender: &[u8],
        destination: &[u8],
        header: Option<Header>,
        error: RpcError,
    ) {
        let Some(Header::Request { msgid }) = header else {
            self.counters.undeliverable += 1;
            return;
        };
        let reply = Message::Response(Response {
            msgid,
            result: Err(error),
        })
        .encode();
        // If the sender itself is not reading, the answer is dropped: never block.
        let _ = self.send(side, sender, destination, reply.into());
    }

    fn malformed(&mut self, side: Side, sender: &[u8], reason: String) {
        self.counters.malformed += 1;
        let who = String::from_utf8_lossy(sender);
        if self.malformed_senders.len() < MAX_REMEMBERED_SENDERS
            && self.malformed_senders.insert(sender.to_vec())
        {
            tracing::warn!(peer = %who, side = side.as_str(), %reason, "dropped a malformed message (further ones from this peer are logged at debug level)");
        } else {
            tracing::debug!(peer = %who, side = side.as_str(), %reason, "dropped a malformed message");
        }
    }

    /// Sends `[peer, from, body]` on the socket that reaches `peer` on `side`, and notes
    /// that socket as sent on: the send may have taken the signal of a message waiting on
    /// it, so the loop must try it again before sleeping.
    fn send(&mut self, side: Side, peer: &[u8], from: &[u8], body: Frame) -> SendOutcome {
        let endpoint = self.endpoint(side);
        let secure = endpoint.is_secure_peer(peer);
        self.sent[self.slot(side, secure)] = true;
        self.endpoint(side)
            .socket_for(peer)
            .send(&[peer, from], body)
    }

    /// The index of a side's plain or CURVE socket in [`Broker::socket_slots`].
    fn slot(&self, side: Side, secure: bool) -> usize {
        match (side, secure) {
            (Side::Client, false) => 0,
            (Side::Service, false) => 1,
            (Side::Client, true) => 2,
            (Side::Service, true) => 2 + usize::from(self.frontend.secure.is_some()),
        }
    }
}

/// `busy`: the client already has [`MAX_IN_FLIGHT_PER_PAIR`] requests waiting on
/// `destination`. Built only when refusing, off the routing path.
#[cold]
fn too_many_in_flight(destination: &[u8]) -> RpcError {
    let who = String::from_utf8_lossy(destination).into_owned();
    RpcError::new(
        ErrorCode::Busy,
        format!("you have {MAX_IN_FLIGHT_PER_PAIR} requests in flight to {who:?}, the most one client may; try again later"),
    )
    .with("peer", who.as_str())
}

/// `unreachable`: no peer named `destination` is connected. Built only when refusing.
#[cold]
fn not_connected(destination: &[u8]) -> RpcError {
    let who = String::from_utf8_lossy(destination).into_owned();
    RpcError::new(
        ErrorCode::Unreachable,
        format!("no peer {who:?} is connected to the router"),
    )
    .with("peer", who.as_str())
}

/// `busy`: `destination`'s pipe is full, it is not reading fast enough. Built only when
/// refusing.
#[cold]
fn not_keeping_up(destination: &[u8]) -> RpcError {
    let who = String::from_utf8_lossy(destination).into_owned();
    RpcError::new(
        ErrorCode::Busy,
        format!("{who:?} is not keeping up (its queue is full); try again later"),
    )
    .with("peer", who.as_str())
}

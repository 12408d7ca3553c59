//! The host side of one Smart Device connection (a serial port or a TCP stream), per
//! `spec/smart-device-protocol.md`: discovery (PING every second until SUB_RES, with a
//! limit), attaching the UID's buffer, the default subscription, heartbeats both ways, the
//! liveness timeout, moving values between the wire and the buffer, and DEV_DISABLE on
//! shutdown. Every inbound frame is validated whole before it touches any state; decode
//! errors and unexpected types are answered with ERROR, counted, and logged once.
//!
//! This module is the session's event loop, in two phases: [`run`] discovers the device,
//! attaches it and serves it until it goes. What the loop works with has a module of its
//! own: the reading half of the connection ([`crate::inbound`]), the writing half
//! ([`crate::host`]), consumer writes and the emergency stop on their way out
//! ([`crate::outbound`]), the outputs' leases ([`crate::lease`]) and the heartbeats in
//! flight ([`crate::heartbeat`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_buffer::Owner;
use pitcrew_catalog::Uid;
use pitcrew_sdp::{Message, MessageType, ParamWidths};
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::arrivals::Arrivals;
use crate::estop::{self, Latch};
use crate::heartbeat::HeartbeatTable;
use crate::host::Host;
use crate::inbound::{self, Frame, FrameReader};
use crate::lease::{self, Leases};
use crate::line::Line;
use crate::outbound::{Outbound, OutboundParts};
use crate::registry::{AttachError, Attached, Command, Counters, Registry};
use crate::robot::{Gate, Outputs};
use crate::tap::{BrokerEvent, BrokerTap};
use crate::waker::Waker;

/// Session timing (spec defaults: PING every 1 s, 10 s discovery limit, 1 s liveness).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Interval between discovery PINGs.
    pub ping_interval: Duration,
    /// Give up discovery after this long.
    pub discovery_timeout: Duration,
    /// Declare the device lost when nothing valid arrived for this long.
    pub liveness_timeout: Duration,
    /// Declare the line failed when the device took nothing for this long.
    pub write_stall: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(1),
            discovery_timeout: Duration::from_secs(10),
            liveness_timeout: Duration::from_secs(1),
            write_stall: crate::line::WRITE_STALL,
        }
    }
}

/// What every session shares.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// The broker's devices.
    pub registry: Arc<Registry>,
    /// Timing.
    pub timing: Timing,
    /// Fires on broker shutdown: each session sends DEV_DISABLE and ends.
    pub shutdown: CancellationToken,
    /// Decode errors on all connections (including unidentified ones).
    pub decode_errors: Arc<AtomicU64>,
    /// The emergency-stop latch: while engaged, consumer writes are discarded.
    pub latch: Arc<Latch>,
    /// SCHED_FIFO priority of the waker threads (`--realtime`), if any.
    pub realtime: Option<u8>,
    /// The robot state: what outputs may do.
    pub gate: Arc<Gate>,
    /// The default output lease (`--output-lease`).
    pub output_lease: Duration,
    /// The recording tap: frames sent, DEV_DATA stored, connects and disconnects.
    pub tap: BrokerTap,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer closed the connection.
    Closed,
    /// No SUB_RES within the discovery limit.
    DiscoveryTimeout,
    /// The UID is connected elsewhere (or unknown, or its buffer failed).
    Refused,
    /// Nothing valid within the liveness timeout.
    Lost,
    /// The broker is stopping (DEV_DISABLE was sent).
    Shutdown,
}

impl SessionEnd {
    /// A short name (logs, recordings).
    pub fn name(self) -> &'static str {
        match self {
            SessionEnd::Closed => "closed",
            SessionEnd::DiscoveryTimeout => "discovery_timeout",
            SessionEnd::Refused => "refused",
            SessionEnd::Lost => "lost",
            SessionEnd::Shutdown => "shutdown",
        }
    }
}

/// Runs one connection from the first byte to its end.
pub async fn run<S>(stream: S, port: String, ctx: SessionContext) -> SessionEnd
where
    S: AsyncRead + AsRawFd + Unpin + Send + 'static,
{
    let Some((mut host, mut frames)) = open(stream, port, &ctx).await else {
        return SessionEnd::Closed;
    };
    let uid = match discover(&mut frames, &mut host, &ctx).await {
        Ok(Ok(uid)) => uid,
        Ok(Err(end)) => return end,
        Err(e) => {
            tracing::info!(port = %host.port(), error = %e, "connection failed during discovery");
            return SessionEnd::Closed;
        }
    };
    let attached = match attach(&mut host, uid, &ctx) {
        Ok(attached) => attached,
        Err(end) => return end,
    };
    let link_id = attached.link_id;
    let (mut active, commands) = Active::new(uid, attached, host.line(), &ctx);
    let (end, waker) = active.run(&mut frames, &mut host, commands, &ctx).await;
    let end = end.unwrap_or_else(|e| {
        tracing::info!(port = %host.port(), %uid, error = %e, "connection failed");
        SessionEnd::Closed
    });
    ctx.registry.detach(uid, link_id);
    if let Some(waker) = waker {
        waker.stop().await;
    }
    tracing::info!(port = %host.port(), %uid, end = ?end, "device disconnected");
    host.offer_connection(Some(end.name()));
    end
}

/// Splits the connection on `stream` into its writing side and its reading side, and ends
/// whatever frame a previous session left half sent ([`Host::end_partial_frame`]). `None`
/// when the connection failed already (logged).
async fn open<S: AsyncRead + AsRawFd + Unpin>(
    stream: S,
    port: String,
    ctx: &SessionContext,
) -> Option<(Host, FrameReader<S>)> {
    let line = match Line::of(&stream, ctx.timing.write_stall) {
        Ok(line) => Arc::new(line),
        Err(e) => {
            tracing::warn!(%port, error = %e, "cannot open the connection for writing");
            return None;
        }
    };
    let host = Host::new(line, port, Arc::clone(&ctx.decode_errors), ctx.tap.clone());
    if let Err(e) = host.end_partial_frame().await {
        tracing::info!(port = %host.port(), error = %e, "connection failed before discovery");
        return None;
    }
    Some((host, FrameReader::new(stream)))
}

/// PINGs until SUB_RES; answers heartbeats meanwhile. `Ok(Err(end))` when it gave up.
async fn discover<S: AsyncRead + Unpin>(
    frames: &mut FrameReader<S>,
    host: &mut Host,
    ctx: &SessionContext,
) -> std::io::Result<Result<Uid, SessionEnd>> {
    let deadline = tokio::time::Instant::now() + ctx.timing.discovery_timeout;
    let mut ping = tokio::time::interval(ctx.timing.ping_interval);
    let none = ParamWidths::new();
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(Err(SessionEnd::Shutdown)),
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(port = %host.port(), "no SUB_RES within the discovery limit");
                return Ok(Err(SessionEnd::DiscoveryTimeout));
            }
            _ = ping.tick() => host.send(&Message::Ping).await?,
            more = frames.read() => {
                if !more? {
                    return Ok(Err(SessionEnd::Closed));
                }
            }
        }
        for frame in frames.drain() {
            let packet = match frame {
                Ok(p) => p,
                Err(e) => {
                    host.reject(e.error_code(), &e, None).await?;
                    continue;
                }
            };
            if let Some(code) = inbound::unexpected(&packet) {
                host.reject(code, &"unexpected message type", None).await?;
                continue;
            }
            if packet.msg_type() == MessageType::DevData.as_byte() {
                // Data before identification cannot be typed; it is dropped.
                continue;
            }
            match Message::from_packet(&packet, &none) {
                Ok(Message::SubRes { uid, .. }) => return Ok(Ok(uid)),
                Ok(Message::HbReq(id)) => host.send(&Message::HbRes(id)).await?,
                Ok(_) => {}
                Err(e) => host.reject(e.error_code(), &e, None).await?,
            }
        }
    }
}

/// Attaches the identified `uid` to its buffer in the registry, which refuses a UID
/// connected elsewhere (or unknown, or whose buffer failed): `Err(Refused)` then, logged.
/// Once attached, the connection is offered to the tap as the device's.
fn attach(host: &mut Host, uid: Uid, ctx: &SessionContext) -> Result<Attached, SessionEnd> {
    let attached = match ctx
        .registry
        .attach(uid, host.port(), Arc::clone(host.line()))
    {
        Ok(a) => a,
        Err(e @ AttachError::AlreadyConnected { .. }) => {
            tracing::warn!(port = %host.port(), %uid, error = %e, "duplicate UID refused");
            return Err(SessionEnd::Refused);
        }
        Err(e) => {
            tracing::warn!(port = %host.port(), %uid, error = %e, "device refused");
            return Err(SessionEnd::Refused);
        }
    };
    tracing::info!(port = %host.port(), %uid, r#type = attached.owner.device_type().name(), "device connected");
    host.identified(uid, Arc::clone(attached.owner.device_type()));
    host.offer_connection(None);
    Ok(attached)
}

/// State of an identified device's session.
struct Active {
    uid: Uid,
    owner: Arc<Owner>,
    counters: Arc<Counters>,
    arrivals: Arc<watch::Sender<Arrivals>>,
    latch: Arc<Latch>,
    read_widths: ParamWidths,
    heartbeats: HeartbeatTable,
    last_valid: Instant,
    /// This device got the emergency stop's DEV_DISABLE and safe values.
    estopped: bool,
    /// What the robot state lets outputs do.
    outputs: watch::Receiver<Outputs>,
    /// The outputs' leases and their writers.
    leases: Leases,
    /// Consumer writes on their way out, shared with the waker thread.
    outbound: Arc<Outbound>,
}

impl Active {
    /// The session state of `uid`, just attached and writing on `line`. The registry's
    /// command queue comes back apart: the loop waits on it beside `self`.
    fn new(
        uid: Uid,
        attached: Attached,
        line: &Arc<Line>,
        ctx: &SessionContext,
    ) -> (Active, mpsc::Receiver<Command>) {
        let leases = Leases::new(attached.owner.device_type(), ctx.output_lease);
        let outbound = Arc::new(Outbound::new(OutboundParts {
            line: Arc::clone(line),
            uid,
            owner: Arc::clone(&attached.owner),
            outputs: ctx.gate.outputs(),
            latch: Arc::clone(&ctx.latch),
            counters: Arc::clone(&attached.counters),
            clock: leases.clock(),
            tap: ctx.tap.clone(),
        }));
        let active = Active {
            outputs: ctx.gate.outputs(),
            leases,
            outbound,
            uid,
            read_widths: attached.owner.device_type().read_widths(),
            owner: attached.owner,
            counters: attached.counters,
            arrivals: attached.arrivals,
            latch: Arc::clone(&ctx.latch),
            heartbeats: HeartbeatTable::default(),
            last_valid: Instant::now(),
            estopped: false,
        };
        (active, attached.commands)
    }

    /// Serves the device until it goes, fails or the broker shuts down. The waker thread is
    /// told to stop at once and handed back, to be awaited once the buffer is marked
    /// invalid (see [`Waker::stop`]).
    async fn run<S: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FrameReader<S>,
        host: &mut Host,
        commands: mpsc::Receiver<Command>,
        ctx: &SessionContext,
    ) -> (std::io::Result<SessionEnd>, Option<Waker>) {
        let waker = match Waker::spawn(
            Arc::clone(&self.outbound),
            &self.uid.to_string(),
            ctx.realtime,
        ) {
            Ok(waker) => waker,
            Err(e) => return (Err(e), None),
        };
        let end = self.serve(frames, host, commands, ctx).await;
        waker.signal_stop();
        (end, Some(waker))
    }

    /// The event loop of an identified device: one arm per thing that can happen to it,
    /// most urgent first (`biased`: a shutdown is seen before anything else, a robot state
    /// change before a consumer's news and the leases). The arms that end the session say
    /// so here; the work of each is a method of its own.
    async fn serve<S: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FrameReader<S>,
        host: &mut Host,
        mut commands: mpsc::Receiver<Command>,
        ctx: &SessionContext,
    ) -> std::io::Result<SessionEnd> {
        self.greet(host).await?;
        let mut heartbeat = tokio::time::interval(self.owner.device_type().heartbeat_interval());
        self.last_valid = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => return Ok(self.shut_down(host).await),
                changed = self.outputs.changed() => {
                    if changed.is_err() {
                        // The gate is gone: the broker is stopping; shutdown follows.
                        ctx.shutdown.cancelled().await;
                        continue;
                    }
                    self.outputs_changed(host).await?;
                }
                failure = self.outbound.news() => {
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    // A lease started or a new writer drives an output: arm the timer
                    // (the loop's next turn does) and watch the writer.
                    self.leases.watch_writers();
                }
                _ = self.leases.expiry(), if self.leases.next_deadline().is_some() => {
                    self.leases_ran_out(host).await?;
                }
                pid = self.leases.dead_writer(), if self.leases.watching() => {
                    self.writer_died(host, pid).await?;
                }
                cmd = commands.recv() => self.command(host, cmd).await?,
                _ = heartbeat.tick() => {
                    if let Some(end) = self.heartbeat(host, ctx).await? {
                        return Ok(end);
                    }
                }
                more = frames.read() => {
                    if !more? {
                        return Ok(SessionEnd::Closed);
                    }
                    for frame in frames.drain() {
                        self.inbound(host, frame).await?;
                    }
                }
            }
        }
    }

    /// The first frames an identified device gets: its subscription (the buffer's, which
    /// outlives connections, or the type's default), then DEV_DISABLE when the emergency
    /// stop is latched, or the outputs' safe values when the robot is not enabled.
    async fn greet(&mut self, host: &mut Host) -> std::io::Result<()> {
        let ty = Arc::clone(self.owner.device_type());
        let sub = self.owner.subscription().ok();
        let (params, interval) = sub.map_or_else(
            || (ty.default_subscription(), ty.sub_interval()),
            |s| (u64::from(s.params), s.interval),
        );
        host.send(&Message::sub_req(params, interval)).await?;
        self.owner.count_to_device(1);
        if self.latch.is_engaged() {
            // A device that (re)connects after an emergency stop stays disabled.
            host.send_disable().await?;
            self.owner.count_to_device(1);
            self.estopped = true;
            tracing::warn!(uid = %self.uid, port = %host.port(), "emergency stop latched: device disabled on connect");
        } else if *self.outputs.borrow_and_update() != Outputs::Driven {
            // Disabled: whatever the device held, its outputs start safe.
            self.send_safe(host, ty.output_mask()).await?;
        }
        Ok(())
    }

    /// The broker is stopping: DEV_DISABLE, counted if it left. A line that takes nothing
    /// gives up within its write stall (or at once, when it failed before).
    async fn shut_down(&mut self, host: &mut Host) -> SessionEnd {
        if host.send_disable().await.is_ok() {
            self.owner.count_to_device(1);
        }
        SessionEnd::Shutdown
    }

    /// The robot state changed what outputs may do: unless they are driven now, nothing
    /// is driven any more (and, when merely disabled, the outputs go to their safe values;
    /// an emergency stop sends its own); once driven again, the next held-back write is
    /// logged.
    async fn outputs_changed(&mut self, host: &mut Host) -> std::io::Result<()> {
        let now = *self.outputs.borrow_and_update();
        if now != Outputs::Driven {
            self.leases.clear();
            if now == Outputs::Safe {
                let mask = self.owner.device_type().output_mask();
                self.send_safe(host, mask).await?;
            }
        } else {
            self.outbound.rearm_hold_log();
        }
        Ok(())
    }

    /// Outputs whose lease ran out without a rewrite go to their safe values.
    async fn leases_ran_out(&mut self, host: &mut Host) -> std::io::Result<()> {
        let bits = self.leases.expired(Instant::now());
        if bits != 0 {
            let ty = self.owner.device_type();
            tracing::info!(uid = %self.uid, params = %estop::param_names(ty, bits), "output lease ran out: driven to the safe value");
            self.send_safe(host, bits).await?;
        }
        Ok(())
    }

    /// The process `pid` that drove outputs exited: they go to their safe values at once
    /// rather than at the end of their lease.
    async fn writer_died(&mut self, host: &mut Host, pid: u32) -> std::io::Result<()> {
        let bits = self.leases.writer_died(pid);
        if bits != 0 {
            let ty = self.owner.device_type();
            tracing::warn!(uid = %self.uid, pid, params = %estop::param_names(ty, bits), "the process driving these outputs exited: driven to the safe value");
            self.send_safe(host, bits).await?;
        }
        Ok(())
    }

    /// Carries out a command of the rest of the broker (RPC, emergency stop).
    async fn command(&mut self, host: &mut Host, cmd: Option<Command>) -> std::io::Result<()> {
        match cmd {
            Some(Command::Disable) => host.send_disable().await?,
            Some(Command::Heartbeat(reply)) => {
                let id = self.heartbeats.start(Some(reply));
                host.send(&Message::HbReq(id)).await?;
            }
            Some(Command::Estop(reply)) => {
                self.estop().await?;
                let _ = reply.send(());
            }
            None => {}
        }
        Ok(())
    }

    /// A heartbeat tick: disables the device if it missed a latched emergency stop,
    /// declares it lost (`Some(Lost)`) when nothing valid came within the liveness
    /// timeout, and sends the next HB_REQ.
    async fn heartbeat(
        &mut self,
        host: &mut Host,
        ctx: &SessionContext,
    ) -> std::io::Result<Option<SessionEnd>> {
        if self.latch.is_engaged() && !self.estopped {
            tracing::warn!(uid = %self.uid, "emergency stop latched but this device missed it: disabling it now");
            self.estop().await?;
        }
        if self.last_valid.elapsed() > ctx.timing.liveness_timeout {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(uid = %self.uid, port = %host.port(), "device lost: nothing valid within the liveness timeout");
            return Ok(Some(SessionEnd::Lost));
        }
        let id = self.heartbeats.start(None);
        host.send(&Message::HbReq(id)).await?;
        self.owner.count_to_device(1);
        Ok(None)
    }

    /// Handles one inbound frame of an identified device.
    async fn inbound(&mut self, host: &mut Host, frame: Frame) -> std::io::Result<()> {
        let packet = match frame {
            Ok(p) => p,
            Err(e) => {
                let counter = &self.counters.decode_errors;
                return host.reject(e.error_code(), &e, Some(counter)).await;
            }
        };
        if let Some(code) = inbound::unexpected(&packet) {
            let counter = &self.counters.invalid_types;
            return host
                .reject(code, &"unexpected message type", Some(counter))
                .await;
        }
        let msg = match Message::from_packet(&packet, &self.read_widths) {
            Ok(m) => m,
            Err(e) => {
                let counter = &self.counters.decode_errors;
                return host.reject(e.error_code(), &e, Some(counter)).await;
            }
        };
        self.last_valid = Instant::now();
        self.owner.count_from_device(1);
        match msg {
            Message::DevData(data) => {
                let values = packet.payload().get(2..).unwrap_or_default();
                self.store(host.tap(), u64::from(data.bitmap()), values);
            }
            Message::HbReq(id) => {
                host.send(&Message::HbRes(id)).await?;
                self.owner.count_to_device(1);
            }
            Message::HbRes(id) => self.heartbeats.finish(id),
            Message::Error(code) => {
                self.counters.device_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(uid = %self.uid, code = code.name(), "device reported an error");
            }
            _ => {}
        }
        Ok(())
    }

    /// Stores the `values` of params `bits` a DEV_DATA brought in the buffer, stamps their
    /// arrival (a `read` RPC waits on it) and offers them to the tap.
    fn store(&self, tap: &BrokerTap, bits: u64, values: &[u8]) {
        match self.owner.set_raw(bits, values) {
            Ok(()) => {
                self.arrivals.send_modify(|a| a.record(bits));
                tap.offer_with(|| BrokerEvent::Data {
                    t_ns: pitcrew::robot::monotonic_ns(),
                    uid: self.uid,
                    ty: Arc::clone(self.owner.device_type()),
                    bits,
                    raw: values.to_vec(),
                });
            }
            Err(e) => tracing::warn!(uid = %self.uid, error = %e, "cannot store DEV_DATA"),
        }
    }

    /// Sends the safe values of outputs `bits`.
    async fn send_safe(&mut self, host: &mut Host, bits: u64) -> std::io::Result<()> {
        let mut out = Vec::new();
        let count = lease::safe_frames(self.owner.device_type(), bits, &mut out);
        if count == 0 {
            return Ok(());
        }
        host.send_safe_frames(&out).await?;
        self.owner.count_to_device(count);
        Ok(())
    }

    /// The emergency stop of this device ([`Outbound::estop`]); nothing is driven any
    /// more, and the device is remembered as stopped.
    async fn estop(&mut self) -> std::io::Result<()> {
        self.leases.clear();
        let count = self.outbound.estop().await?;
        self.owner.count_to_device(count);
        self.estopped = true;
        Ok(())
    }
}

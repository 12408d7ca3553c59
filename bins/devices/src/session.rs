//! The host side of one Smart Device connection (a serial port or a TCP stream), per
//! `spec/smart-device-protocol.md`: discovery (PING every second until SUB_RES, with a
//! limit), attaching the UID's buffer, the default subscription, heartbeats both ways, the
//! liveness timeout, moving values between the wire and the buffer, and DEV_DISABLE on
//! shutdown. Every inbound frame is validated whole before it touches any state; decode
//! errors and unexpected types are answered with ERROR, counted, and logged once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_buffer::Owner;
use pitcrew_catalog::{DeviceType, Uid};
use pitcrew_sdp::message::Direction;
use pitcrew_sdp::{ErrorCode, FrameDecoder, Message, MessageType, Packet, ParamWidths};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::arrivals::Arrivals;
use crate::estop::{self, Latch};
use crate::lease::{self, Leases};
use crate::line::Line;
use crate::outbound::{Outbound, OutboundParts};
use crate::policy;
use crate::registry::{AttachError, Command, Counters, Registry};
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

/// Read chunk size; the frame decoder bounds memory, this only sizes one `read`.
const READ_CHUNK: usize = 512;
/// The writing side plus the bookkeeping every phase needs.
struct Host {
    line: Arc<Line>,
    out: Vec<u8>,
    port: String,
    warned: bool,
    decode_errors: Arc<AtomicU64>,
    tap: BrokerTap,
    /// The identified device, once attached (what the tap names).
    device: Option<(Uid, Arc<DeviceType>)>,
}

impl Host {
    /// Encodes and sends one message.
    async fn send(&mut self, msg: &Message<'_>) -> std::io::Result<()> {
        self.encode(msg)?;
        self.line.write_all(&self.out).await?;
        self.offer_sent(None);
        Ok(())
    }

    /// Sends DEV_DISABLE: tried even on a line that failed ([`Line::write_safety`]).
    async fn send_disable(&mut self) -> std::io::Result<()> {
        self.encode(&Message::DevDisable)?;
        self.line.write_safety(&self.out).await?;
        self.offer_sent(None);
        Ok(())
    }

    fn encode(&mut self, msg: &Message<'_>) -> std::io::Result<()> {
        self.out.clear();
        msg.encode_frame(&mut self.out)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }

    /// Sends safe values, already framed: tried even on a line that failed.
    async fn send_safe_frames(&mut self, frames: &[u8]) -> std::io::Result<()> {
        self.line.write_safety(frames).await?;
        self.offer_sent(Some(frames));
        Ok(())
    }

    /// Offers what is being sent (`frames`, or the message just encoded) to the tap.
    fn offer_sent(&self, frames: Option<&[u8]>) {
        if let Some((uid, ty)) = &self.device {
            let frames = frames.unwrap_or(&self.out);
            self.tap.offer_with(|| BrokerEvent::sent(*uid, ty, frames));
        }
    }

    /// Answers a bad frame with ERROR(code), counts it, logs the first one of the session.
    async fn reject(
        &mut self,
        code: ErrorCode,
        what: &(dyn std::fmt::Display + Sync),
        counter: Option<&AtomicU64>,
    ) -> std::io::Result<()> {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if self.warned {
            tracing::debug!(port = %self.port, error = %what, "bad frame from device");
        } else {
            self.warned = true;
            tracing::warn!(port = %self.port, error = %what, "bad frame from device (further ones logged at debug)");
        }
        self.send(&Message::Error(code)).await
    }
}

/// Reads one chunk and decodes the frames it completes. Returns `false` at end of stream.
///
/// # Cancel safety
/// Cancel safe: only the `read` awaits, and decoding happens after it returned.
async fn read_frames<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
    buf: &mut [u8; READ_CHUNK],
    frames: &mut Vec<Result<Packet, pitcrew_sdp::FrameError>>,
) -> std::io::Result<bool> {
    let n = reader.read(buf).await?;
    if n == 0 {
        return Ok(false);
    }
    frames.extend(decoder.decode(buf.get(..n).unwrap_or_default()));
    Ok(true)
}

/// Runs one connection from the first byte to its end.
pub async fn run<S>(stream: S, port: String, ctx: SessionContext) -> SessionEnd
where
    S: AsyncRead + AsRawFd + Unpin + Send + 'static,
{
    let line = match Line::of(&stream, ctx.timing.write_stall) {
        Ok(line) => Arc::new(line),
        Err(e) => {
            tracing::warn!(%port, error = %e, "cannot open the connection for writing");
            return SessionEnd::Closed;
        }
    };
    let mut reader = stream;
    let mut host = Host {
        line,
        out: Vec::with_capacity(pitcrew_sdp::frame::MAX_FRAME_LEN + 1),
        port,
        warned: false,
        decode_errors: Arc::clone(&ctx.decode_errors),
        tap: ctx.tap.clone(),
        device: None,
    };
    // A serial device keeps what it read of the previous session: a frame that session's
    // broker was cut off in the middle of would swallow our first PING. A lone delimiter
    // ends it (an empty frame is ignored by the protocol), so it costs nothing.
    if let Err(e) = host.line.write_all(&[pitcrew_sdp::frame::DELIMITER]).await {
        tracing::info!(port = %host.port, error = %e, "connection failed before discovery");
        return SessionEnd::Closed;
    }
    let mut decoder = FrameDecoder::new();
    let uid = match discover(&mut reader, &mut host, &mut decoder, &ctx).await {
        Ok(Ok(uid)) => uid,
        Ok(Err(end)) => return end,
        Err(e) => {
            tracing::info!(port = %host.port, error = %e, "connection failed during discovery");
            return SessionEnd::Closed;
        }
    };
    let attached = match ctx.registry.attach(uid, &host.port, Arc::clone(&host.line)) {
        Ok(a) => a,
        Err(e @ AttachError::AlreadyConnected { .. }) => {
            tracing::warn!(port = %host.port, %uid, error = %e, "duplicate UID refused");
            return SessionEnd::Refused;
        }
        Err(e) => {
            tracing::warn!(port = %host.port, %uid, error = %e, "device refused");
            return SessionEnd::Refused;
        }
    };
    tracing::info!(port = %host.port, %uid, r#type = attached.owner.device_type().name(), "device connected");
    let ty = Arc::clone(attached.owner.device_type());
    host.device = Some((uid, Arc::clone(&ty)));
    offer_connection(&host, uid, &ty, None);
    let link_id = attached.link_id;
    let leases = Leases::new(attached.owner.device_type(), ctx.output_lease);
    let outbound = Arc::new(Outbound::new(OutboundParts {
        line: Arc::clone(&host.line),
        uid,
        owner: Arc::clone(&attached.owner),
        outputs: ctx.gate.outputs(),
        latch: Arc::clone(&ctx.latch),
        counters: Arc::clone(&attached.counters),
        clock: leases.clock(),
        tap: ctx.tap.clone(),
    }));
    let mut active = Active {
        outputs: ctx.gate.outputs(),
        leases,
        outbound,
        uid,
        owner: attached.owner,
        counters: attached.counters,
        arrivals: attached.arrivals,
        latch: Arc::clone(&ctx.latch),
        read_widths: ParamWidths::new(),
        heartbeats: HeartbeatTable::default(),
        last_valid: Instant::now(),
        estopped: false,
    };
    active.read_widths = active.owner.device_type().read_widths();
    let (end, waker) = active
        .run(
            &mut reader,
            &mut host,
            &mut decoder,
            attached.commands,
            &ctx,
        )
        .await;
    let end = end.unwrap_or_else(|e| {
        tracing::info!(port = %host.port, %uid, error = %e, "connection failed");
        SessionEnd::Closed
    });
    ctx.registry.detach(uid, link_id);
    if let Some(waker) = waker {
        waker.stop().await;
    }
    tracing::info!(port = %host.port, %uid, end = ?end, "device disconnected");
    offer_connection(&host, uid, &ty, Some(end.name()));
    end
}

/// Offers a connect (`end` None) or a disconnect to the tap.
fn offer_connection(host: &Host, uid: Uid, ty: &Arc<DeviceType>, end: Option<&'static str>) {
    host.tap.offer_with(|| BrokerEvent::Connection {
        t_ns: pitcrew::robot::monotonic_ns(),
        uid,
        ty: Arc::clone(ty),
        port: host.port.clone(),
        end,
    });
}

/// PINGs until SUB_RES; answers heartbeats meanwhile. `Ok(Err(end))` when it gave up.
async fn discover<S: AsyncRead + Unpin>(
    reader: &mut S,
    host: &mut Host,
    decoder: &mut FrameDecoder,
    ctx: &SessionContext,
) -> std::io::Result<Result<Uid, SessionEnd>> {
    let deadline = tokio::time::Instant::now() + ctx.timing.discovery_timeout;
    let mut ping = tokio::time::interval(ctx.timing.ping_interval);
    let mut buf = [0u8; READ_CHUNK];
    let mut frames = Vec::new();
    let none = ParamWidths::new();
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(Err(SessionEnd::Shutdown)),
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(port = %host.port, "no SUB_RES within the discovery limit");
                return Ok(Err(SessionEnd::DiscoveryTimeout));
            }
            _ = ping.tick() => host.send(&Message::Ping).await?,
            more = read_frames(reader, decoder, &mut buf, &mut frames) => {
                if !more? {
                    return Ok(Err(SessionEnd::Closed));
                }
            }
        }
        for frame in frames.drain(..) {
            let packet = match frame {
                Ok(p) => p,
                Err(e) => {
                    host.reject(e.error_code(), &e, None).await?;
                    continue;
                }
            };
            if let Some(code) = unexpected(&packet) {
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

/// `Some(INVALID_TYPE)` for a type byte a device must not send (host → device, or unknown).
fn unexpected(packet: &Packet) -> Option<ErrorCode> {
    match MessageType::from_byte(packet.msg_type()) {
        Some(t) if t.direction() != Direction::HostToDevice => None,
        _ => Some(ErrorCode::InvalidType),
    }
}

/// In-flight heartbeats by id (a u8, so the table is bounded at 256 entries).
struct HeartbeatTable {
    next: u8,
    sent: Vec<Option<(Instant, Option<oneshot::Sender<Duration>>)>>,
}

impl Default for HeartbeatTable {
    fn default() -> Self {
        HeartbeatTable {
            next: 0,
            sent: (0..256).map(|_| None).collect(),
        }
    }
}

impl HeartbeatTable {
    fn start(&mut self, reply: Option<oneshot::Sender<Duration>>) -> u8 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if let Some(slot) = self.sent.get_mut(usize::from(id)) {
            *slot = Some((Instant::now(), reply));
        }
        id
    }

    fn finish(&mut self, id: u8) {
        if let Some((at, Some(reply))) = self.sent.get_mut(usize::from(id)).and_then(Option::take) {
            let _ = reply.send(at.elapsed());
        }
    }
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
    /// Serves the device until it goes, fails or the broker shuts down. The waker thread is
    /// told to stop at once and handed back, to be awaited once the buffer is marked
    /// invalid (see [`Waker::stop`]).
    async fn run<S: AsyncRead + Unpin>(
        &mut self,
        reader: &mut S,
        host: &mut Host,
        decoder: &mut FrameDecoder,
        commands: tokio::sync::mpsc::Receiver<Command>,
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
        let end = self.serve(reader, host, decoder, commands, ctx).await;
        waker.signal_stop();
        (end, Some(waker))
    }

    async fn serve<S: AsyncRead + Unpin>(
        &mut self,
        reader: &mut S,
        host: &mut Host,
        decoder: &mut FrameDecoder,
        mut commands: tokio::sync::mpsc::Receiver<Command>,
        ctx: &SessionContext,
    ) -> std::io::Result<SessionEnd> {
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
            tracing::warn!(uid = %self.uid, port = %host.port, "emergency stop latched: device disabled on connect");
        } else if *self.outputs.borrow_and_update() != Outputs::Driven {
            // Disabled: whatever the device held, its outputs start safe.
            self.send_safe(host, ty.output_mask()).await?;
        }
        let mut heartbeat = tokio::time::interval(ty.heartbeat_interval());
        let mut buf = [0u8; READ_CHUNK];
        let mut frames = Vec::new();
        self.last_valid = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    // A line that takes nothing gives up within its write stall (or at
                    // once, when it failed before).
                    if host.send_disable().await.is_ok() {
                        self.owner.count_to_device(1);
                    }
                    return Ok(SessionEnd::Shutdown);
                }
                changed = self.outputs.changed() => {
                    if changed.is_err() {
                        // The gate is gone: the broker is stopping; shutdown follows.
                        ctx.shutdown.cancelled().await;
                        continue;
                    }
                    let now = *self.outputs.borrow_and_update();
                    if now != Outputs::Driven {
                        self.leases.clear();
                        if now == Outputs::Safe {
                            self.send_safe(host, ty.output_mask()).await?;
                        }
                    } else {
                        self.outbound.rearm_hold_log();
                    }
                }
                failure = self.outbound.news() => {
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    // A lease started or a new writer drives an output: arm the timer
                    // (the loop's next turn does) and watch the writer.
                    self.leases.watch_writers();
                }
                _ = sleep_until(self.leases.next_deadline()), if self.leases.next_deadline().is_some() => {
                    let bits = self.leases.expired(Instant::now());
                    if bits != 0 {
                        tracing::info!(uid = %self.uid, params = %estop::param_names(&ty, bits), "output lease ran out: driven to the safe value");
                        self.send_safe(host, bits).await?;
                    }
                }
                pid = self.leases.dead_writer(), if self.leases.watching() => {
                    let bits = self.leases.writer_died(pid);
                    if bits != 0 {
                        tracing::warn!(uid = %self.uid, pid, params = %estop::param_names(&ty, bits), "the process driving these outputs exited: driven to the safe value");
                        self.send_safe(host, bits).await?;
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Disable) => host.send_disable().await?,
                    Some(Command::Heartbeat(reply)) => {
                        let id = self.heartbeats.start(Some(reply));
                        host.send(&Message::HbReq(id)).await?;
                    }
                    Some(Command::Estop(reply)) => {
                        self.estop(host).await?;
                        let _ = reply.send(());
                    }
                    None => {}
                },
                _ = heartbeat.tick() => {
                    if self.latch.is_engaged() && !self.estopped {
                        tracing::warn!(uid = %self.uid, "emergency stop latched but this device missed it: disabling it now");
                        self.estop(host).await?;
                    }
                    if self.last_valid.elapsed() > ctx.timing.liveness_timeout {
                        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(uid = %self.uid, port = %host.port, "device lost: nothing valid within the liveness timeout");
                        return Ok(SessionEnd::Lost);
                    }
                    let id = self.heartbeats.start(None);
                    host.send(&Message::HbReq(id)).await?;
                    self.owner.count_to_device(1);
                }
                more = read_frames(reader, decoder, &mut buf, &mut frames) => {
                    if !more? {
                        return Ok(SessionEnd::Closed);
                    }
                    for frame in frames.drain(..) {
                        self.inbound(host, frame).await?;
                    }
                }
            }
        }
    }

    /// Handles one inbound frame of an identified device.
    async fn inbound(
        &mut self,
        host: &mut Host,
        frame: Result<Packet, pitcrew_sdp::FrameError>,
    ) -> std::io::Result<()> {
        let packet = match frame {
            Ok(p) => p,
            Err(e) => {
                let counter = &self.counters.decode_errors;
                return host.reject(e.error_code(), &e, Some(counter)).await;
            }
        };
        if let Some(code) = unexpected(&packet) {
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
                let bits = u64::from(data.bitmap());
                match self.owner.set_raw(bits, values) {
                    Ok(()) => {
                        self.arrivals.send_modify(|a| a.record(bits));
                        host.tap.offer_with(|| BrokerEvent::Data {
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

    /// Sends DEV_DISABLE and the safe values, flushed, and remembers it.
    async fn estop(&mut self, host: &mut Host) -> std::io::Result<()> {
        self.leases.clear();
        // Under the line's lock: the waker thread must not take the safe values this stores
        // in the buffer for a consumer's write (and count it discarded), and no consumer
        // frame may go out between the state check and these.
        let mut line = self.outbound.lock_line().await;
        let (out, count) = self.estop_frames();
        line.write_safety(&out).await?;
        host.offer_sent(Some(&out));
        drop(line);
        self.owner.count_to_device(count);
        self.estopped = true;
        Ok(())
    }

    /// The bytes of an emergency stop for this device: DEV_DISABLE, then DEV_WRITE of the
    /// catalog's safe values (encoded from the catalog, never read back from the buffer, so
    /// a consumer writing at the same moment cannot slip its value in). Pending consumer
    /// writes are discarded, and the safe values are stored as the desired values so the
    /// buffer shows what the device was told. Returns the bytes and the message count.
    fn estop_frames(&self) -> (Vec<u8>, u64) {
        let ty = self.owner.device_type();
        if let Ok(bits) = self.owner.take_write() {
            // The latch is engaged: the gate discards every pending write.
            let route = policy::route(bits, ty.output_mask(), Outputs::Estopped, true);
            if route.discard != 0 {
                self.outbound.discard_writes(route.discard);
            }
        }
        let named: Vec<(&str, pitcrew_catalog::Value)> =
            ty.outputs().map(|(p, v)| (p.name(), v)).collect();
        if !named.is_empty() {
            if let Err(e) = self.owner.write_values(&named) {
                tracing::warn!(uid = %self.uid, error = %e, "estop: cannot store the safe values in the buffer");
            }
            // Our own store set `write` bits; the values go out below, from the catalog.
            let _ = self.owner.take_write();
        }
        let mut out = Vec::new();
        let count = estop::frames(ty, &mut out);
        tracing::info!(uid = %self.uid, safe = named.len(), "emergency stop: DEV_DISABLE and safe values sent");
        (out, count)
    }
}

/// Sleeps until `deadline` (forever without one; the caller's select guard skips that).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

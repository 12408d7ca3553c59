//! One emulated Smart Device: its parameter values, its subscription, and the device side of
//! the protocol over one byte stream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pitcrew_catalog::{DeviceType, Uid, Value};
use pitcrew_sdp::{ErrorCode, FrameDecoder, Message, Packet, ParamData, ParamWidths};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::sim::Shared;
use super::{event, DeviceSpec};

/// The fault and load modes of `pitcrew emulate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Load mode, not a fault: stream subscribed values at this period whatever interval
    /// the broker asked for (firmware would clamp it to 40..=250 ms).
    pub stream_interval: Option<Duration>,
    /// Never send anything.
    pub silent: bool,
    /// Send garbage instead of answering.
    pub garbage: bool,
    /// Vanish mid-frame after this long.
    pub vanish_after: Option<Duration>,
    /// Answer this late.
    pub slow: Option<Duration>,
}

/// How often the device sends its own HB_REQ (a board disables itself after 1 s of silence,
/// so it keeps the line alive well inside that).
const OWN_HEARTBEAT: Duration = Duration::from_millis(300);
/// How often a `--garbage` device sprays.
const GARBAGE_PERIOD: Duration = Duration::from_millis(50);
/// How many ticks late a `--stream-interval-ms` device may fall before it skips rather
/// than catches up (a few, to ride out scheduling hiccups without bursting after a stall).
const CATCH_UP: u32 = 10;
/// How long to keep retrying the first connection (the broker may still be starting).
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Firmware clamps a subscription interval to 40..=250 ms; 0 stays 0.
fn clamp_interval(ms: u16) -> u16 {
    if ms == 0 {
        0
    } else {
        ms.clamp(40, 250)
    }
}

/// The interval a device streams at: `forced` (`--stream-interval-ms`) when given, else the
/// requested one clamped like firmware.
fn stream_interval(requested_ms: u16, forced: Option<Duration>) -> u16 {
    match forced {
        Some(d) => u16::try_from(d.as_millis()).unwrap_or(u16::MAX).max(1),
        None => clamp_interval(requested_ms),
    }
}

/// Value state of one device.
struct State {
    ty: Arc<DeviceType>,
    uid: Uid,
    values: Vec<Value>,
    defaults: Vec<Value>,
    sub_params: u16,
    sub_interval_ms: u16,
    /// `--stream-interval-ms`, overriding every requested interval.
    forced_interval: Option<Duration>,
    write_widths: ParamWidths,
    /// `--sim`: the physics that gives the values it has (see [`State::data_frames`]).
    world: Option<Shared>,
}

fn zero(ty: &DeviceType) -> Vec<Value> {
    ty.params()
        .iter()
        .map(|p| {
            p.scalar()
                .and_then(|s| Value::from_le_bytes(s, &[0u8; 8][..p.storage_width().min(8)]).ok())
                .unwrap_or(Value::Bool(false))
        })
        .collect()
}

impl State {
    fn new(spec: &DeviceSpec, forced_interval: Option<Duration>) -> State {
        let defaults = zero(&spec.ty);
        let mut values = defaults.clone();
        for (name, v) in &spec.initial {
            if let Some(p) = spec.ty.param(name) {
                if let Some(slot) = values.get_mut(p.id()) {
                    *slot = *v;
                }
            }
        }
        let write_widths = spec.ty.write_widths();
        State {
            ty: Arc::clone(&spec.ty),
            uid: spec.uid,
            values,
            defaults,
            sub_params: 0,
            sub_interval_ms: 0,
            forced_interval,
            write_widths,
            world: spec.world.clone(),
        }
    }

    /// Takes the values of sample `i` of `script`; returns their bitmap.
    fn apply_sample(&mut self, script: &super::playback::Script, i: usize) -> u16 {
        let mut bits = 0u16;
        for (id, v) in script
            .samples
            .get(i)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
        {
            if let Some(slot) = self.values.get_mut(*id) {
                *slot = *v;
                bits |= 1u16.checked_shl(*id as u32).unwrap_or(0);
            }
        }
        bits
    }

    fn readable_mask(&self) -> u16 {
        (self.ty.readable_mask() & 0xFFFF) as u16
    }

    /// Frames DEV_DATA with the current values of `params` (masked to readable ones): what
    /// the simulated robot's physics says of a param when it says something (an encoder's
    /// count, a battery's voltage), else the device's own value.
    fn data_frames(&self, params: u16, out: &mut Vec<u8>) {
        let params = params & self.readable_mask();
        let mut world = self.world.as_ref().map(Shared::lock);
        let bytes: Vec<(u8, pitcrew_catalog::LeBytes)> = self
            .values
            .iter()
            .zip(0u8..)
            .filter(|(_, id)| params & (1 << id) != 0)
            .map(|(v, id)| {
                let sensed = world.as_mut().and_then(|w| {
                    let p = self.ty.param_by_id(usize::from(id))?;
                    w.read(self.uid, p.name())
                });
                (id, sensed.unwrap_or(*v).le_bytes())
            })
            .collect();
        drop(world);
        let mut data = ParamData::new();
        for (id, b) in &bytes {
            let _ = data.insert(*id, b.as_slice());
        }
        for part in data.split() {
            let _ = Message::DevData(part).encode_frame(out);
        }
    }

    fn sub_res(&self) -> Message<'static> {
        Message::SubRes {
            params: self.sub_params,
            interval_ms: self.sub_interval_ms,
            uid: self.uid,
        }
    }

    /// Applies a DEV_WRITE; returns the bitmap of written readable params (to echo).
    fn apply_write(&mut self, data: &ParamData<'_>) -> u16 {
        let mut shown = serde_json::Map::new();
        // One lock for the whole write: both motors of one DEV_WRITE change in the same step.
        let mut world = self.world.as_ref().map(Shared::lock);
        for (id, bytes) in data.iter() {
            let Some(p) = self.ty.param_by_id(usize::from(id)) else {
                continue;
            };
            let Some(v) = p.scalar().and_then(|s| Value::from_le_bytes(s, bytes).ok()) else {
                continue;
            };
            if let Some(slot) = self.values.get_mut(usize::from(id)) {
                *slot = v;
            }
            if let Some(world) = world.as_mut() {
                world.write(self.uid, p.name(), v);
            }
            shown.insert(p.name().to_owned(), v.to_json());
        }
        drop(world);
        event(self.uid, "write", json!({ "values": shown }));
        data.bitmap() & self.readable_mask()
    }

    fn disable(&mut self) {
        for p in self.ty.params().iter().filter(|p| p.writeable()) {
            if let (Some(slot), Some(d)) = (self.values.get_mut(p.id()), self.defaults.get(p.id()))
            {
                *slot = *d;
            }
        }
        if let Some(world) = &self.world {
            world.lock().disable(self.uid);
        }
        event(self.uid, "disable", json!({}));
    }

    /// Decodes `bytes` from the broker and appends the answers to `out`: one per packet,
    /// and an ERROR for a frame that does not decode. A `--garbage` device does not answer
    /// packets (it only sprays); it reports the ERRORs the broker sends it, so that they
    /// can be seen on stdout.
    fn receive(
        &mut self,
        decoder: &mut FrameDecoder,
        bytes: &[u8],
        garbage: bool,
        out: &mut Vec<u8>,
    ) {
        for frame in decoder.decode(bytes) {
            match frame {
                Ok(p) if garbage => {
                    if let Ok(Message::Error(code)) = Message::from_packet(&p, &ParamWidths::new())
                    {
                        event(self.uid, "error", json!({ "code": code.name() }));
                    }
                }
                Ok(p) => self.handle(&p, out),
                Err(e) => {
                    let _ = Message::Error(e.error_code()).encode_frame(out);
                }
            }
        }
    }

    /// When the next streamed DEV_DATA is due, given when it was due (`next`; `far` when
    /// nothing is scheduled). Asked after every turn of the device's loop, since a
    /// subscription may have changed or the tick just passed.
    fn next_data_at(&self, next: Instant, far: Instant, scripted: bool) -> Instant {
        if self.sub_interval_ms == 0 || self.sub_params == 0 || scripted {
            // A played-back device sends what was recorded, when it was.
            return far;
        }
        if next != far && Instant::now() < next {
            return next;
        }
        let period = Duration::from_millis(u64::from(self.sub_interval_ms));
        let now = Instant::now();
        // A forced period keeps its own beat (tokio's timer rounds each sleep up to the
        // next millisecond, so "now + 1 ms" would stream at about half the asked rate):
        // a late tick is caught up at once, up to `CATCH_UP` ticks, then skipped.
        match (self.forced_interval, next == far) {
            (Some(_), false) if next + period * CATCH_UP > now => next + period,
            _ => now + period,
        }
    }

    /// Answers one packet; appends reply frames to `out`.
    fn handle(&mut self, packet: &Packet, out: &mut Vec<u8>) {
        let msg = match Message::from_packet(packet, &self.write_widths) {
            Ok(m) => m,
            Err(e) => {
                let _ = Message::Error(e.error_code()).encode_frame(out);
                return;
            }
        };
        let _ = match msg {
            Message::Ping => self.sub_res().encode_frame(out),
            Message::SubReq {
                params,
                interval_ms,
            } => {
                self.sub_params = params & self.readable_mask();
                self.sub_interval_ms = stream_interval(interval_ms, self.forced_interval);
                event(
                    self.uid,
                    "subscribe",
                    json!({ "params": self.sub_params, "interval_ms": self.sub_interval_ms }),
                );
                self.sub_res().encode_frame(out)
            }
            Message::DevRead { params } => {
                self.data_frames(params, out);
                Ok(())
            }
            Message::DevWrite(data) => {
                let echo = self.apply_write(&data);
                if echo != 0 {
                    self.data_frames(echo, out);
                }
                Ok(())
            }
            Message::DevDisable => {
                self.disable();
                Ok(())
            }
            Message::HbReq(id) => Message::HbRes(id).encode_frame(out),
            Message::Error(code) => {
                event(self.uid, "error", json!({ "code": code.name() }));
                Ok(())
            }
            // The answer to this device's own heartbeat (HB_RES goes both ways).
            Message::HbRes(_) => Ok(()),
            Message::SubRes { .. } | Message::DevData(_) => {
                Message::Error(ErrorCode::InvalidType).encode_frame(out)
            }
        };
    }
}

/// Connects to the broker (retrying while it starts) and runs the device.
///
/// # Errors
/// When the broker cannot be reached or the connection fails.
pub async fn run_tcp(spec: DeviceSpec, addr: String, faults: Faults) -> anyhow::Result<()> {
    let started = Instant::now();
    let stream = loop {
        match TcpStream::connect(&addr).await {
            Ok(s) => break s,
            Err(e) if started.elapsed() < CONNECT_PATIENCE => {
                tracing::debug!(error = %e, "broker not reachable yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot connect to tcp://{addr}")),
        }
    };
    let _ = stream.set_nodelay(true);
    let uid = spec.uid;
    let result = run(spec, stream, faults).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    event(uid, "closed", json!({ "error": error }));
    result
}

/// Runs the device on a pseudo-terminal until the process ends (the line stays up while
/// the broker closes and reopens it).
///
/// # Errors
/// I/O errors of the terminal.
pub async fn run_pty(spec: DeviceSpec, pty: super::pty::Pty, faults: Faults) -> anyhow::Result<()> {
    let uid = spec.uid;
    let master = super::pty::PtyStream::new(&pty)?;
    let result = run(spec, master, faults).await;
    drop(pty);
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    event(uid, "closed", json!({ "error": error }));
    result
}

/// Runs the device side of the protocol on `stream` until it closes.
///
/// # Errors
/// I/O errors of the stream.
pub async fn run<S>(spec: DeviceSpec, stream: S, faults: Faults) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let mut state = State::new(&spec, faults.stream_interval);
    event(state.uid, "connected", json!({ "type": state.ty.name() }));
    let script = spec.script.clone();
    let mut sample = 0usize;
    if let Some(s) = &script {
        // Samples already due when the device connects: only their values, no burst.
        while s.due(sample).is_some_and(|t| t <= Instant::now()) {
            state.apply_sample(s, sample);
            sample += 1;
        }
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 512];
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let vanish_at = faults.vanish_after.map_or(far, |d| Instant::now() + d);
    let mut next_data = far;
    let mut heartbeat = tokio::time::interval(OWN_HEARTBEAT);
    let mut garbage = tokio::time::interval(GARBAGE_PERIOD);
    let mut hb_id = 0u8;
    let mut out = Vec::new();
    loop {
        out.clear();
        tokio::select! {
            _ = tokio::time::sleep_until(vanish_at) => return vanish(&state, &mut writer).await,
            _ = tokio::time::sleep_until(next_data), if !faults.silent && !faults.garbage => {
                state.data_frames(state.sub_params, &mut out);
            }
            _ = tokio::time::sleep_until(script.as_ref().and_then(|s| s.due(sample)).unwrap_or(far)),
                if script.as_ref().is_some_and(|s| s.due(sample).is_some()) =>
            {
                if let Some(s) = &script {
                    let bits = state.apply_sample(s, sample);
                    state.data_frames(bits, &mut out);
                }
                sample += 1;
            }
            _ = heartbeat.tick(), if !faults.silent && !faults.garbage => {
                let _ = Message::HbReq(hb_id).encode_frame(&mut out);
                hb_id = hb_id.wrapping_add(1);
            }
            _ = garbage.tick(), if faults.garbage => spray(&mut out, hb_id),
            n = reader.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let bytes = buf.get(..n).unwrap_or_default();
                state.receive(&mut decoder, bytes, faults.garbage, &mut out);
                if let (Some(slow), false) = (faults.slow, out.is_empty()) {
                    tokio::time::sleep(slow).await;
                }
            }
        }
        next_data = state.next_data_at(next_data, far, script.is_some());
        if !out.is_empty() && !faults.silent {
            writer.write_all(&out).await?;
        }
        hb_id = hb_id.wrapping_add(u8::from(faults.garbage));
    }
}

/// `--vanish-after`: sends the first half of a DEV_DATA of every readable value and
/// stops, as a board that loses power mid-frame.
///
/// # Errors
/// I/O errors of the stream.
async fn vanish<W: AsyncWrite + Unpin>(state: &State, writer: &mut W) -> anyhow::Result<()> {
    let mut frame = Vec::new();
    state.data_frames(state.readable_mask(), &mut frame);
    let half = frame.get(..frame.len() / 2).unwrap_or_default();
    writer.write_all(half).await?;
    event(state.uid, "vanished", json!({}));
    Ok(())
}

/// Garbage: random-looking bytes, a frame with a bad checksum, an over-long run without a
/// delimiter now and then, and a host → device type (PING) the broker must refuse.
fn spray(out: &mut Vec<u8>, salt: u8) {
    out.extend((0..17u8).map(|i| i.wrapping_mul(37).wrapping_add(salt) | 1));
    out.push(0);
    out.extend([
        0x04, 0x15, 0x06, 0x02, 0x06, 0x6d, 0xe7, 0xfb, 0xbd, 0xde, 0x00,
    ]);
    let _ = Message::Ping.encode_frame(out);
    if salt % 8 == 0 {
        out.extend(std::iter::repeat_n(0x55, 300));
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_clamp_unless_forced() {
        assert_eq!(stream_interval(0, None), 0);
        assert_eq!(stream_interval(1, None), 40);
        assert_eq!(stream_interval(40, None), 40);
        assert_eq!(stream_interval(1000, None), 250);
        let one = Some(Duration::from_millis(1));
        assert_eq!(stream_interval(40, one), 1);
        assert_eq!(stream_interval(0, one), 1);
        assert_eq!(
            stream_interval(250, Some(Duration::from_millis(1000))),
            1000
        );
    }
}

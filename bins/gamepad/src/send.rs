//! `pitcrew-gamepad send`: the send loop. States come from an [`Input`]; a datagram goes out
//! at once on any change (of the gamepads or of the driver station's requests) and otherwise
//! every `1/rate`, with an increasing `seq`, the send time, the source name and the
//! station's requests ([`Station`]). The robot's answers (its state) are read after each
//! send. With no gamepad nothing is sent (neutral gamepad 0 with `--neutral`): no link, so
//! the robot stays or goes disabled.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::PadState;
use pitcrew::robot::status as robot_status;

use crate::input::{Input, Poll};
use crate::record::{Recorder, Snapshot};
use crate::station::Station;

/// The longest one wait lasts before the stop flag is checked again.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How the loop sends.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// The receiver's address.
    pub to: SocketAddr,
    /// Datagrams per second when nothing changes.
    pub rate: f64,
    /// Send a neutral gamepad 0 when there is no gamepad.
    pub neutral: bool,
    /// `meta.source`.
    pub source: String,
}

/// Receives every pending answer of the robot on `socket` (non-blocking) into `station`.
fn read_reports(socket: &UdpSocket, station: &Station, buf: &mut [u8]) {
    while let Ok(n) = socket.recv(buf) {
        if let Some(report) = buf.get(..n).and_then(robot_status::parse_datagram) {
            station.on_report(report, Instant::now());
        }
    }
}

/// What the loop did, for the final log line and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the OS refused (receiver unreachable, buffer full).
    pub failed: u64,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs until `stop` is set or the input finishes.
///
/// # Errors
/// When the socket cannot be opened or the recording cannot be written.
pub fn run(
    config: &SendConfig,
    input: &mut dyn Input,
    station: &Station,
    mut recorder: Option<Recorder>,
    stop: &AtomicBool,
) -> anyhow::Result<SendReport> {
    let local: SocketAddr = if config.to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).context("cannot open a UDP socket")?;
    // Connected: only the robot's answers are received, and ICMP errors are reported.
    socket
        .connect(config.to)
        .with_context(|| format!("cannot address {}", config.to))?;
    socket
        .set_nonblocking(true)
        .context("cannot make the UDP socket non-blocking")?;
    let mut answer = vec![0u8; control::MAX_DATAGRAM_BYTES];
    let mut asked: Option<StationRequest> = None;
    let period = Duration::from_secs_f64(1.0 / config.rate);
    let started = Instant::now();
    let mut report = SendReport::default();
    let mut seq = 0u64;
    let mut next_tick = started;
    let mut said_failing = false;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let deadline = next_tick.min(now + STOP_POLL);
        let due = match input.poll(deadline) {
            Poll::Finished => break,
            Poll::Changed => true,
            Poll::Idle => Instant::now() >= next_tick,
        };
        read_reports(&socket, station, &mut answer);
        let request = station.request();
        let due = due || asked != Some(request);
        if !due {
            continue;
        }
        let now = Instant::now();
        next_tick = (next_tick + period).max(now);
        let pads: Snapshot = match (input.snapshot().is_empty(), config.neutral) {
            (false, _) => input.snapshot().clone(),
            (true, true) => vec![(0, PadState::NEUTRAL)],
            (true, false) => continue,
        };
        seq += 1;
        asked = Some(request);
        let msg = ControlMessage {
            gamepads: pads
                .iter()
                .map(|(i, p)| (*i, PadInput::from_state(*p)))
                .collect(),
            meta: Some(Meta {
                seq,
                sent_us: unix_us(),
                source: config.source.clone(),
                station: Some(request),
            }),
        };
        match socket.send(&control::encode(&msg)) {
            Ok(_) => {
                report.sent += 1;
                said_failing = false;
            }
            Err(e) => {
                report.failed += 1;
                if !said_failing {
                    said_failing = true;
                    tracing::warn!(to = %config.to, error = %e, "cannot send control datagrams");
                }
            }
        }
        if let Some(rec) = recorder.as_mut() {
            rec.write(now.duration_since(started), &pads)?;
        }
    }
    Ok(report)
}

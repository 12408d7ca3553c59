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

use pitcrew::control::auth::Sealer;
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
    /// The team key to seal datagrams with (a robot with a key takes nothing else; one
    /// without takes unsealed datagrams from its own machine only).
    pub key: Option<pitcrew::key::Key>,
}

/// Receives every pending answer of the robot on `socket` (non-blocking) into `station`;
/// sealed answers are opened by `sealer` (which takes their challenge) and others ignored.
/// Returns whether the first challenge of the session arrived, so the loop sends at once
/// instead of waiting out a period before its datagrams count.
fn read_reports(
    socket: &UdpSocket,
    station: &Station,
    sealer: Option<&mut Sealer>,
    buf: &mut [u8],
) -> bool {
    let had_challenge = sealer.as_ref().is_none_or(|s| s.has_challenge());
    let mut sealer = sealer;
    while let Ok(n) = socket.recv(buf) {
        let bytes = buf.get(..n).unwrap_or_default();
        let payload = match sealer.as_deref_mut() {
            Some(s) => match s.open_answer(bytes) {
                Some(answer) => answer.payload,
                None => continue,
            },
            None => bytes,
        };
        if let Some(report) = robot_status::parse_datagram(payload) {
            station.on_report(report, Instant::now());
        }
    }
    !had_challenge && sealer.is_some_and(|s| s.has_challenge())
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
    let mut sealer = config.key.as_ref().map(Sealer::new).transpose()?;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let deadline = next_tick.min(now + STOP_POLL);
        let due = match input.poll(deadline) {
            Poll::Finished => break,
            Poll::Changed => true,
            Poll::Idle => Instant::now() >= next_tick,
        };
        let challenged = read_reports(&socket, station, sealer.as_mut(), &mut answer);
        let request = station.request();
        let due = due || challenged || asked != Some(request);
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
        let datagram = control::encode(&msg);
        let sealed = sealer.as_mut().map(|s| s.seal(&datagram));
        match socket.send(sealed.as_deref().unwrap_or(&datagram)) {
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

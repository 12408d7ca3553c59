//! `pitcrew replay FILE`: plays a recording's control input (`/control/applied`) back to
//! a gamepad receiver as a driver link, with the recorded timing (`--speed`, `--from`,
//! `--to`, `--loop`).
//!
//! Each recorded source becomes a station of its own, `replay:<source>`, with a sequence
//! of its own, so the receiver takes the replay as new input, never as stale. The
//! station's requests are replayed too: mode and estop as recorded; enables only where a
//! replay may enable a robot — a suite whose every device is emulated, or with
//! `--allow-enable` — and the command says which. A short lead-in asking for nothing
//! comes first, so the broker has seen the station before its first recorded enable press
//! (robot-state.md rule 4), and enable ids are shifted past the lead-in's.
//!
//! Every datagram is built by [`datagram`], the one place that encodes.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use pitcrew::config::Config;
use pitcrew::control::auth::Sealer;
use pitcrew::control::{self, ControlMessage, Meta, StationRequest};
use pitcrew::key::Key;

use super::channels;
use super::info::start_ns;
use super::read;

/// Datagrams of the lead-in, 20 ms apart: the station is live for the broker before the
/// first recorded request.
const LEAD_IN: u32 = 5;
/// The lead-in's period (the senders' 50 Hz), in milliseconds.
const LEAD_IN_PERIOD_MS: u64 = 20;
/// The lead-in's period.
const LEAD_IN_PERIOD: Duration = Duration::from_millis(LEAD_IN_PERIOD_MS);
/// How long the lead-in takes before the first recorded datagram goes out.
pub(super) const LEAD_IN_TIME: Duration =
    Duration::from_millis(LEAD_IN_PERIOD_MS * (LEAD_IN as u64 - 1));

/// `pitcrew replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording.
    pub file: PathBuf,
    /// Play faster (2) or slower (0.5) than recorded.
    #[arg(long, default_value = "1", value_parser = parse_speed)]
    pub speed: f64,
    /// Start this far into the recording (seconds from its start: `12.5`, `1m`).
    #[arg(long, value_parser = pitcrew::options::parse_duration)]
    pub from: Option<Duration>,
    /// Stop this far into the recording.
    #[arg(long, value_parser = pitcrew::options::parse_duration)]
    pub to: Option<Duration>,
    /// Play again from the start when done, until interrupted.
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Let the recording enable a robot whose devices are not all emulated.
    #[arg(long)]
    pub allow_enable: bool,
    /// Where to send (default: the `--control-addr` of the instance, on loopback when it
    /// is a wildcard).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Check a controller against the recording: play its devices back (`emulate --from`)
    /// into the running suite, start `--run CMD`, replay the control input, and compare
    /// the controller's writes with the recorded ones per output; exit 1 when they differ.
    #[arg(long, requires = "run")]
    pub check: bool,
    /// With `--check`: the controller, a shell command line (the suite's binaries first on
    /// PATH).
    #[arg(long, value_name = "CMD", requires = "check")]
    pub run: Option<String>,
    /// With `--check`: how far a written value may be from the recorded one.
    #[arg(long, default_value = "0.001")]
    pub tolerance: f64,
    /// With `--check`: the broker's virtual-device address, where the played-back devices
    /// connect.
    #[arg(
        long,
        value_name = "tcp://HOST:PORT",
        default_value = "tcp://127.0.0.1:6004"
    )]
    pub devices: String,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=100.0).contains(&v) => Ok(v),
        _ => Err("expected a speed between 0.01 and 100, such as 1 or 2.5".to_owned()),
    }
}

/// One recorded datagram, with its time from the start of the recording.
pub(super) struct Recorded {
    /// From the start of the recording.
    pub at: Duration,
    /// The datagram as applied.
    pub msg: ControlMessage,
}

/// A replayed station: its name and sequence, and with a key its sealing session.
struct Station {
    source: String,
    seq: u64,
    sealer: Option<Sealer>,
}

impl Station {
    /// `datagram` as this station sends it: sealed when it holds a key.
    fn wrap(&mut self, datagram: Vec<u8>) -> Vec<u8> {
        match self.sealer.as_mut() {
            Some(sealer) => sealer.seal(&datagram),
            None => datagram,
        }
    }
}

/// Takes the robot's answers waiting on the non-blocking `socket`: each sealing station
/// keeps the challenges of its own session.
fn absorb_answers(socket: &UdpSocket, stations: &mut BTreeMap<String, Station>) {
    let mut buf = [0u8; control::MAX_DATAGRAM_BYTES];
    while let Ok(n) = socket.recv(&mut buf) {
        for station in stations.values_mut() {
            if let Some(sealer) = station.sealer.as_mut() {
                if sealer.open_answer(&buf[..n]).is_some() {
                    break;
                }
            }
        }
    }
}

/// The one function that builds a replayed datagram: the recorded gamepads and requests
/// under the replay station's name and sequence, through [`control::encode`]. `enables`
/// false turns every enable request off; `id_shift` moves enable ids past the lead-in's.
pub fn datagram(
    recorded: &ControlMessage,
    source: &str,
    seq: u64,
    sent_us: u64,
    enables: bool,
    id_shift: u32,
) -> Vec<u8> {
    let station = recorded
        .meta
        .as_ref()
        .and_then(|m| m.station)
        .map(|ds| StationRequest {
            enable: ds.enable && enables,
            enable_id: ds.enable_id.wrapping_add(id_shift),
            ..ds
        });
    control::encode(&ControlMessage {
        gamepads: recorded.gamepads.clone(),
        meta: Some(Meta {
            seq,
            sent_us,
            source: source.to_owned(),
            station,
        }),
    })
}

impl ReplayArgs {
    /// Replays until done (or, with `--loop`, until interrupted). With `--run` (the
    /// check), see [`super::check::run`]: [`super::replay_or_check`] chooses.
    ///
    /// # Errors
    /// When the recording cannot be read or holds no control input in the range, or the
    /// target cannot be reached.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let rec = read::read(&self.file)?;
        let items = self.control_input(&rec)?;
        let target = self.target(config)?;
        let (enables, why) = self.enables(config).await;
        eprintln!(
            "pitcrew: replaying {} datagrams ({:.1} s at speed {}) to {target} as a driver link; {why}",
            items.len(),
            items.last().map_or(0.0, |r| (r.at - items[0].at).as_secs_f64()),
            self.speed
        );
        let (speed, repeat) = (self.speed, self.repeat);
        let key = config
            .keys
            .team
            .clone()
            .or_else(|| config.keys.field.clone());
        tokio::task::spawn_blocking(move || {
            play(&items, target, speed, repeat, enables, key.as_ref())
        })
        .await
        .context("the replay thread failed")?
    }

    /// The recording's control input in the `--from`/`--to` range.
    ///
    /// # Errors
    /// When a message is not a datagram, or there is none in the range.
    pub(super) fn control_input(&self, rec: &read::Recording) -> anyhow::Result<Vec<Recorded>> {
        let origin = start_ns(rec);
        let from = self.from.unwrap_or_default();
        let to = self.to.unwrap_or(Duration::MAX);
        let mut items = Vec::new();
        for m in rec.on(channels::CONTROL_APPLIED) {
            let at = Duration::from_nanos(m.log_time.saturating_sub(origin));
            if at < from || at > to {
                continue;
            }
            let json: serde_json::Value = serde_json::from_slice(&m.data)
                .with_context(|| format!("a /control/applied message at {at:?} is not JSON"))?;
            let msg = control::json::from_json(&json)?;
            items.push(Recorded { at, msg });
        }
        if items.is_empty() {
            bail!(
                "{} holds no control input in that range",
                self.file.display()
            );
        }
        Ok(items)
    }

    pub(super) fn target(&self, config: &Config) -> anyhow::Result<SocketAddr> {
        let given = self.target.clone().unwrap_or_else(|| {
            let mut addr = config.control_addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            addr.to_string()
        });
        given
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("cannot resolve the target {given}"))
    }

    /// Whether recorded enables are sent, and the sentence that says so.
    async fn enables(&self, config: &Config) -> (bool, String) {
        if self.allow_enable {
            return (true, "it may enable the robot (--allow-enable)".into());
        }
        match emulated_suite(config).await {
            Some(true) => (
                true,
                "it may enable the robot: every device of this suite is emulated".into(),
            ),
            Some(false) => (
                false,
                "enables are NOT replayed: this suite has real devices (--allow-enable lets the recording enable the robot)".into(),
            ),
            None => (
                false,
                "enables are NOT replayed: the device broker does not answer, so the suite cannot be known to be emulated (--allow-enable)".into(),
            ),
        }
    }
}

/// `Some(true)` when the broker answers and every device it lists is a virtual one (TCP).
async fn emulated_suite(config: &Config) -> Option<bool> {
    let list = crate::devices::call(config, "list_devices", vec![])
        .await
        .ok()?;
    let json = pitcrew::codec::to_json(&list);
    let devices = json.as_array()?;
    Some(
        devices
            .iter()
            .all(|d| d["port"].as_str().is_some_and(|p| p.starts_with("tcp://"))),
    )
}

/// Sends the datagrams with their recorded spacing.
///
/// With `key` (the suite's `--key-file`) every datagram is sealed, each replayed station in
/// a session of its own, as a real station does; a keyed robot takes nothing else.
pub(super) fn play(
    items: &[Recorded],
    target: SocketAddr,
    speed: f64,
    repeat: bool,
    enables: bool,
    key: Option<&Key>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).context("cannot open a UDP socket")?;
    socket
        .set_nonblocking(true)
        .context("cannot make the UDP socket non-blocking")?;
    let started = Instant::now();
    let sent_us = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut stations: BTreeMap<String, Station> = BTreeMap::new();
    let max_id = items
        .iter()
        .filter_map(|r| r.msg.meta.as_ref()?.station.map(|s| s.enable_id))
        .max()
        .unwrap_or(0);
    let mut shift = 1u32;
    loop {
        for n in 0..LEAD_IN {
            let lead = lead_in(&items[0].msg);
            absorb_answers(&socket, &mut stations);
            let station = station_of(&mut stations, &items[0].msg, key)?;
            station.seq += 1;
            let bytes = datagram(&lead, &station.source, station.seq, sent_us(), false, 0);
            let bytes = station.wrap(bytes);
            socket
                .send_to(&bytes, target)
                .with_context(|| format!("cannot send to {target}"))?;
            if n + 1 < LEAD_IN {
                std::thread::sleep(LEAD_IN_PERIOD);
            }
        }
        let t0 = Instant::now();
        let first = items[0].at;
        for r in items {
            let due = t0 + (r.at - first).div_f64(speed);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            absorb_answers(&socket, &mut stations);
            let station = station_of(&mut stations, &r.msg, key)?;
            station.seq += 1;
            let bytes = datagram(
                &r.msg,
                &station.source,
                station.seq,
                sent_us(),
                enables,
                shift,
            );
            let bytes = station.wrap(bytes);
            socket
                .send_to(&bytes, target)
                .with_context(|| format!("cannot send to {target}"))?;
        }
        if !repeat {
            return Ok(());
        }
        shift = shift.wrapping_add(max_id).wrapping_add(2);
    }
}

/// The replay station of a recorded datagram's source.
fn station_of<'a>(
    stations: &'a mut BTreeMap<String, Station>,
    msg: &ControlMessage,
    key: Option<&Key>,
) -> anyhow::Result<&'a mut Station> {
    let original = msg.meta.as_ref().map_or("unnamed", |m| m.source.as_str());
    if !stations.contains_key(original) {
        let source: String = format!("replay:{original}")
            .chars()
            .take(control::MAX_SOURCE_LEN)
            .collect();
        let sealer = key.map(Sealer::new).transpose()?;
        stations.insert(
            original.to_owned(),
            Station {
                source,
                seq: 0,
                sealer,
            },
        );
    }
    stations
        .get_mut(original)
        .context("the replay station was just made")
}

/// The lead-in datagram: `first`'s gamepads, its station asking for nothing.
fn lead_in(first: &ControlMessage) -> ControlMessage {
    let mut lead = first.clone();
    if let Some(ds) = lead.meta.as_mut().and_then(|m| m.station.as_mut()) {
        ds.enable = false;
        ds.enable_id = 0;
        ds.estop = false;
    }
    lead
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::control::PadInput;
    use pitcrew::robot::Mode;

    #[test]
    fn a_replayed_datagram_is_the_recorded_one_under_the_replay_station() {
        let recorded = ControlMessage {
            gamepads: vec![(
                0,
                PadInput {
                    ly: Some(0.5),
                    ..PadInput::default()
                },
            )],
            meta: Some(Meta {
                seq: 900,
                sent_us: 1,
                source: "laptop".into(),
                station: Some(StationRequest {
                    mode: Mode::Teleop,
                    enable: true,
                    enable_id: 2,
                    estop: false,
                }),
            }),
        };
        let sent = control::parse(&datagram(&recorded, "replay:laptop", 3, 7, true, 1)).unwrap();
        let meta = sent.meta.unwrap();
        assert_eq!((meta.seq, meta.source.as_str()), (3, "replay:laptop"));
        assert_eq!(sent.gamepads, recorded.gamepads);
        let ds = meta.station.unwrap();
        assert!(ds.enable && ds.enable_id == 3);
        let held = control::parse(&datagram(&recorded, "r", 4, 8, false, 1)).unwrap();
        assert!(
            !held.meta.unwrap().station.unwrap().enable,
            "enables stripped"
        );
    }
}

//! `pitcrew-recbench`: `record_overhead_pct`, what recording costs the control path.
//!
//! The path of `pitcrew-e2ebench` (a control datagram → `pitcrew-gamepad receive` →
//! `pitcrew-teleop` → `pitcrew-devices` → the DEV_WRITE on the koala-bear's pseudo-terminal,
//! all at `--realtime 10`, this process the driver station and the device), timed change by
//! change at 500 Hz, in alternating blocks with `pitcrew record` running and not, so that
//! both halves see the same machine. Prints a line on stderr and
//! `{"bench":"record_overhead_pct","pct":..,"p50_off_us":..,"p50_on_us":..,...}` on stdout.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::PadState;
use pitcrew::robot::{Mode, Robot};
use pitcrew_catalog::Uid;
use pitcrew_e2e::bench::{broker_args, free_udp_port, stick};
use pitcrew_e2e::device::{pty, serve};
use pitcrew_e2e::{bin, Namespace};
use pitcrew_sdp::{FrameDecoder, Message};

/// Changes per block; blocks alternate off, on, off, on...
const BLOCK: usize = 500;
/// Blocks of each kind.
const BLOCKS: usize = 3;
/// 500 Hz, as `e2e_control_us`.
const PERIOD: Duration = Duration::from_millis(2);
/// A change whose DEV_WRITE has not arrived by then is lost.
const LOST_AFTER: Duration = Duration::from_millis(100);
/// How long a recorder gets to connect to the taps before its block starts (its start
/// snapshot asks a router that is not running here, and gives up after 2 s).
const RECORDER_SETTLE: Duration = Duration::from_millis(3000);

/// The driver station: every datagram with a new seq and the station's request.
struct Station {
    socket: UdpSocket,
    to: (&'static str, u16),
    seq: u64,
    request: StationRequest,
}

impl Station {
    fn send(&mut self, v: f32) -> anyhow::Result<Instant> {
        self.seq += 1;
        let bytes = control::encode(&ControlMessage {
            gamepads: vec![(
                0,
                PadInput::from_state(PadState {
                    ly: v,
                    ..PadState::NEUTRAL
                }),
            )],
            meta: Some(Meta {
                seq: self.seq,
                sent_us: self.seq * 2000,
                source: "recbench".into(),
                station: Some(self.request),
            }),
        });
        let sent = Instant::now();
        self.socket
            .send_to(&bytes, self.to)
            .context("send a datagram")?;
        Ok(sent)
    }

    /// Presses enable again when the robot is not enabled and the last press (`pressed`)
    /// was 300 ms ago or more: the broker takes a new station's first press as its
    /// baseline, and a lost change can let the link lapse, as a driver would see it.
    fn enable_again(&mut self, robot: &mut Robot, pressed: &mut Instant) {
        if robot.enabled_mode().is_none() && pressed.elapsed() >= Duration::from_millis(300) {
            self.request.enable = true;
            self.request.enable_id += 1;
            *pressed = Instant::now();
        }
    }
}

/// Sends `v` every 20 ms for `period`, pressing enable again whenever the robot is not
/// enabled, and drains the DEV_WRITE reports.
fn keep_alive(
    station: &mut Station,
    robot: &mut Robot,
    writes: &mpsc::Receiver<(u32, Instant)>,
    v: f32,
    period: Duration,
) -> anyhow::Result<()> {
    let until = Instant::now() + period;
    let mut pressed = Instant::now();
    while Instant::now() < until {
        station.enable_again(robot, &mut pressed);
        station.send(v)?;
        std::thread::sleep(Duration::from_millis(20));
        while writes.try_recv().is_ok() {}
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if !bin("pitcrew-teleop").exists() {
        bail!("pitcrew-teleop is not built next to the suite (scripts/bench builds it)");
    }
    let ns = Namespace::new("recbench");
    let dir = std::env::temp_dir().join(format!("{}-ptys", ns.name));
    std::fs::create_dir_all(&dir)?;
    let (master, _slave) = pty(&dir.join("ttyREC0"))?;
    let realtime = ["--realtime", "10"];
    let mut broker = spawn_broker(&ns, &dir, &realtime)?;
    let writes = play_device(master)?;
    let control_port = free_udp_port()?;
    let control_addr = format!("udp://127.0.0.1:{control_port}");
    let mut receiver_args = vec!["receive", "--control-addr", &control_addr];
    receiver_args.extend_from_slice(&realtime);
    let mut receiver = ns.spawn("pitcrew-gamepad", &receiver_args);
    let mut teleop = ns.spawn("pitcrew-teleop", &realtime);
    let mut station = Station {
        socket: UdpSocket::bind("127.0.0.1:0")?,
        to: ("127.0.0.1", control_port),
        seq: 0,
        request: StationRequest {
            mode: Mode::Teleop,
            enable: false,
            enable_id: 0,
            estop: false,
        },
    };
    let mut robot = Robot::new(&ns.name);
    wait_ready(&mut station, &mut robot, &writes)?;
    let file = dir.join("bench.mcap");
    let (mut off, mut on, lost) = measure(&ns, &file, &mut station, &mut robot, &writes)?;
    if off.is_empty() || on.is_empty() {
        bail!("no change reached the device");
    }
    report(&mut off, &mut on, lost);
    for p in [&mut teleop, &mut receiver, &mut broker] {
        let _ = p.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = pitcrew_buffer::remove_namespace(&ns.name);
    Ok(())
}

/// Starts the device broker: it finds the terminal in `dir` as a serial device
/// (`ttyREC*`) and publishes updates on a multicast port of its own, so that a suite
/// running beside this one is not heard.
fn spawn_broker(
    ns: &Namespace,
    dir: &std::path::Path,
    realtime: &[&str],
) -> anyhow::Result<pitcrew_e2e::Proc> {
    let glob = format!("{}/ttyREC*", dir.display());
    let args = broker_args(&glob, realtime)?;
    let broker_args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(ns.spawn("pitcrew-devices", &broker_args))
}

/// Plays the koala-bear on `master`: answers the broker until it subscribes, then, on a
/// thread of its own, reports each DEV_WRITE's `duty_cycle_a` (param 0) with its arrival
/// time.
fn play_device(mut master: std::fs::File) -> anyhow::Result<mpsc::Receiver<(u32, Instant)>> {
    let uid = Uid::new(13, 0, 4344);
    serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
        matches!(m, Message::SubReq { .. })
    })?;
    let (tx, writes) = mpsc::sync_channel::<(u32, Instant)>(4096);
    std::thread::spawn(move || {
        let _ = serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
            if let Message::DevWrite(data) = m {
                if let Some(&[a, b, c, d]) = data.get(0) {
                    let _ = tx.try_send((u32::from_le_bytes([a, b, c, d]), Instant::now()));
                }
            }
            false
        });
    });
    Ok(writes)
}

/// Enables the robot and repeats change 0 until its DEV_WRITE arrives, as e2ebench does:
/// the path is up (robot enabled, the controller found the device).
fn wait_ready(
    station: &mut Station,
    robot: &mut Robot,
    writes: &mpsc::Receiver<(u32, Instant)>,
) -> anyhow::Result<()> {
    let ready_by = Instant::now() + Duration::from_secs(20);
    let mut pressed = Instant::now();
    loop {
        station.enable_again(robot, &mut pressed);
        station.send(stick(0))?;
        if matches!(writes.recv_timeout(Duration::from_millis(20)), Ok((bits, _)) if bits == stick(0).to_bits())
        {
            return Ok(());
        }
        if Instant::now() > ready_by {
            bail!("no DEV_WRITE reached the device within 20 s: is the path up?");
        }
    }
}

/// The measurement: [`BLOCKS`] blocks without `pitcrew record` and as many with it
/// (recording to `file`), alternating, so that both halves see the same machine. Returns
/// the latencies off and on, in µs, and the changes lost off and on.
fn measure(
    ns: &Namespace,
    file: &std::path::Path,
    station: &mut Station,
    robot: &mut Robot,
    writes: &mpsc::Receiver<(u32, Instant)>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, [usize; 2])> {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut lost = [0usize; 2];
    let mut i = 1;
    for block in 0..2 * BLOCKS {
        let recording = block % 2 == 1;
        let mut recorder: Option<Child> = None;
        if recording {
            let mut cmd = Command::new(bin("pitcrew"));
            cmd.args(ns.args())
                .args(["record", "-o"])
                .arg(file)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            recorder = Some(cmd.spawn().context("start pitcrew record")?);
        }
        // Both kinds of block wait alike, so that neither starts on a busier machine; the
        // station keeps its link alive meanwhile (a silent one would disable the robot).
        keep_alive(station, robot, writes, stick(i - 1), RECORDER_SETTLE)?;
        let samples = if recording { &mut on } else { &mut off };
        lost[usize::from(recording)] += run_block(station, robot, writes, &mut i, samples)?;
        if let Some(mut r) = recorder {
            pitcrew_e2e::supervisor::kill(r.id(), libc::SIGINT);
            let _ = r.wait();
        }
    }
    Ok((off, on, lost))
}

/// One block: [`BLOCK`] changes at 500 Hz from change `*i` on, each timed from its send to
/// the arrival of its DEV_WRITE and pushed to `samples` (µs); returns the changes lost.
fn run_block(
    station: &mut Station,
    robot: &mut Robot,
    writes: &mpsc::Receiver<(u32, Instant)>,
    i: &mut usize,
    samples: &mut Vec<f64>,
) -> anyhow::Result<usize> {
    let mut lost = 0;
    let mut next = Instant::now();
    let mut pressed = Instant::now();
    for _ in 0..BLOCK {
        // A lost change can let the link lapse: enable again, as a driver would.
        station.enable_again(robot, &mut pressed);
        let v = stick(*i);
        *i += 1;
        let sent = station.send(v)?;
        let deadline = sent + LOST_AFTER;
        let mut arrived = None;
        while let Ok((bits, at)) =
            writes.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if bits == v.to_bits() {
                arrived = Some(at);
                break;
            }
        }
        match arrived {
            Some(at) => samples.push(at.duration_since(sent).as_secs_f64() * 1e6),
            None => lost += 1,
        }
        next += PERIOD;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(lost)
}

/// Prints `record_overhead_pct`: the p50 with the recorder over the p50 without, and the
/// figures it comes from.
fn report(off: &mut [f64], on: &mut [f64], lost: [usize; 2]) {
    let (p50_off, p99_off) = pitcrew_e2e::p50_p99(off);
    let (p50_on, p99_on) = pitcrew_e2e::p50_p99(on);
    let pct = (p50_on - p50_off) / p50_off * 100.0;
    eprintln!(
        "record_overhead_pct     pct {pct:>6.1}   p50 off {p50_off:.1} / on {p50_on:.1} us   p99 off {p99_off:.1} / on {p99_on:.1} us   lost {}/{}",
        lost[0], lost[1]
    );
    println!(
        "{{\"bench\":\"record_overhead_pct\",\"pct\":{pct:.1},\"p50_off_us\":{p50_off:.1},\"p50_on_us\":{p50_on:.1},\"p99_off_us\":{p99_off:.1},\"p99_on_us\":{p99_on:.1},\"n\":{},\"lost_off\":{},\"lost_on\":{}}}",
        off.len() + on.len(),
        lost[0],
        lost[1]
    );
}

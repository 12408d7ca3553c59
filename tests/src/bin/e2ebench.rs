//! `pitcrew-e2ebench`: the software time from joystick to motor, through a robot enabled in
//! teleop by this process acting as the driver station, for each controller and against the
//! machine's own floor, in one run:
//!
//! * `e2e_control_us`: a control datagram sent over UDP → `pitcrew-gamepad receive` → the
//!   gamepad buffer → `pitcrew-teleop` (examples/teleop, which copies the left stick to
//!   `duty_cycle_a`) → the koala-bear's buffer → `pitcrew-devices` → the DEV_WRITE bytes
//!   readable on the device's pseudo-terminal, where this process plays the koala-bear;
//! * `e2e_control_python_us`: the same with `pitcrew run examples/python/drive.py` as the
//!   controller (the executor wakes on the gamepad buffer and calls `teleop_main` in its
//!   worker process);
//! * `e2e_floor_us`: the kernel's share of that path (see `pitcrew_e2e::floor`): a UDP
//!   receive, two futex wake-ups through shared memory between three processes, a write
//!   on a pseudo-terminal and its read here.
//!
//! The three run side by side, in blocks of [`BLOCK`] changes taken in turn, so that each
//! sees the same machine (this VM is shared and its wake-up latency drifts). Each change
//! is timed from the `send_to` to the arrival of the bytes carrying that very value;
//! 500 Hz. As the supervisor runs them, the broker and the receiver (and the floor's
//! stages, and `pitcrew-teleop`) run at SCHED_FIFO priority 10 (`--realtime 10`); `pitcrew
//! run` runs as the supervisor runs a `--run` command, at normal priority. `--normal` runs
//! everything as normal threads. Prints a table on stderr and JSON lines on stdout.
//!
//! `--compare DIR` adds the teleop path once more with the binaries in DIR (another build's
//! `target/release`, with its `pitcrew-teleop`), taking turns with the others: an A/B of two
//! builds on the same machine minute, which separate runs on this VM cannot give.

use std::io::Read;
use std::net::UdpSocket;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::control::auth::Sealer;
use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::PadState;
use pitcrew::key::{Key, KeyKind};
use pitcrew::robot::{Mode, Robot};
use pitcrew_catalog::Uid;
use pitcrew_e2e::bench::{broker_args, free_udp_port, stick};
use pitcrew_e2e::device::{pty, serve};
use pitcrew_e2e::{bin_dir, floor, Namespace, Proc};
use pitcrew_sdp::{FrameDecoder, Message};

/// Stick changes measured per path (the 10 000).
const CHANGES: u32 = 10_000;
/// Changes per block; the paths take turns block by block.
const BLOCK: usize = 500;
/// Changes before measuring: the controller must find the device first.
const WARMUP: usize = 250;
/// The 500 Hz.
const PERIOD: Duration = Duration::from_millis(2);
/// A change whose bytes have not arrived by then is counted lost.
const LOST_AFTER: Duration = Duration::from_millis(100);
/// How long a path may take to come up (the Python executor loads the package first).
const READY_WITHIN: Duration = Duration::from_secs(30);

type Arrivals = mpsc::Receiver<(u32, Instant)>;

/// Plays the koala-bear on `master`: answers PING and heartbeats, and reports each
/// DEV_WRITE's `duty_cycle_a` (param 0) with its arrival time.
fn play_device(mut master: std::fs::File, uid: Uid, writes: mpsc::SyncSender<(u32, Instant)>) {
    // Runs until the terminal closes (the broker stopped).
    let _ = serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
        if let Message::DevWrite(data) = m {
            if let Some(&[a, b, c, d]) = data.get(0) {
                let _ = writes.try_send((u32::from_le_bytes([a, b, c, d]), Instant::now()));
            }
        }
        false
    });
}

/// Reads the floor broker's 4-byte values from `master`.
fn read_floor(mut master: std::fs::File, writes: mpsc::SyncSender<(u32, Instant)>) {
    let mut word = [0u8; 4];
    while master.read_exact(&mut word).is_ok() {
        let _ = writes.try_send((u32::from_le_bytes(word), Instant::now()));
    }
}

/// A driver station's state: what it asks for and its datagram counter.
struct Station {
    request: StationRequest,
    seq: u64,
    /// The last stick value sent, and when.
    last: (f32, Instant),
    /// With `--key-file` on the receiver (the `e2e_control_auth_us` path): seals each
    /// datagram and takes the robot's challenges from its answers.
    sealer: Option<Sealer>,
}

/// Takes the robot's answers waiting on the (non-blocking) `socket`: a sealing station
/// needs their challenges; a plain one drops them.
fn absorb_answers(station: &mut Station, socket: &UdpSocket) {
    let mut buf = [0u8; 1500];
    while let Ok(n) = socket.recv(&mut buf) {
        if let Some(sealer) = station.sealer.as_mut() {
            sealer.open_answer(&buf[..n]);
        }
    }
}

/// How a path's input is sent.
enum Input {
    /// A suite: control datagrams from a driver station that enables the robot; a
    /// keep-alive thread repeats the last one while other paths are measured (the link
    /// watchdog would otherwise disable the robot).
    Suite {
        station: Arc<Mutex<Station>>,
        robot: Robot,
        pressed: Instant,
    },
    /// The floor: the value's 4 bytes.
    Floor,
}

/// The name of the `--compare` path.
const COMPARED: &str = "e2e_control_us --compare";

/// How often the driver station repeats itself when idle (a real one sends at 50 Hz; this
/// one twice as often, so that a loaded machine does not trip the 100 ms link watchdog).
const KEEPALIVE: Duration = Duration::from_millis(10);

/// The datagram of change `i` (value `v`) from `station`, with a new seq (the receiver
/// drops a repeat as reordered).
fn datagram(station: &mut Station, i: usize, v: f32) -> Vec<u8> {
    station.seq += 1;
    station.last = (v, Instant::now());
    let plain = control::encode(&ControlMessage {
        gamepads: vec![(
            0,
            PadInput::from_state(PadState {
                ly: v,
                ..PadState::NEUTRAL
            }),
        )],
        meta: Some(Meta {
            seq: station.seq,
            sent_us: i as u64 * 2000,
            source: "e2ebench".into(),
            station: Some(station.request),
        }),
    });
    match station.sealer.as_mut() {
        Some(sealer) => sealer.seal(&plain),
        None => plain,
    }
}

/// Repeats the last datagram of `station` whenever it was idle for [`KEEPALIVE`].
fn keep_alive(station: &Arc<Mutex<Station>>, socket: &UdpSocket, to: (&str, u16)) {
    loop {
        std::thread::sleep(KEEPALIVE);
        let Ok(mut s) = station.lock() else { return };
        absorb_answers(&mut s, socket);
        if s.last.1.elapsed() >= KEEPALIVE {
            let v = s.last.0;
            let bytes = datagram(&mut s, 0, v);
            if let Err(e) = socket.send_to(&bytes, to) {
                eprintln!("e2ebench: keep-alive: {e}");
                return;
            }
        }
    }
}

/// Starts a suite's device broker with `spawn`: it finds the terminals in `dir` as serial
/// devices (`ttyE2E*`) and publishes updates on a multicast port of its own, so suites
/// running side by side do not hear each other.
fn spawn_broker(
    spawn: &impl Fn(&str, &[&str]) -> Proc,
    dir: &std::path::Path,
    realtime: &[&str],
) -> anyhow::Result<Proc> {
    let glob = format!("{}/ttyE2E*", dir.display());
    let args = broker_args(&glob, realtime)?;
    let broker_args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(spawn("pitcrew-devices", &broker_args))
}

/// Plays a koala-bear on each terminal, each on a thread of its own once the broker has
/// subscribed to it; returns device 0's writes (the timed one: the others, `--devices N`,
/// are written every cycle too, and their writes dropped) and the terminals' other sides.
fn play_devices(
    terminals: Vec<(std::fs::File, std::os::fd::OwnedFd)>,
) -> anyhow::Result<(Arrivals, Vec<std::os::fd::OwnedFd>)> {
    let (tx, writes) = mpsc::sync_channel(4096);
    let mut slaves = Vec::new();
    for (k, (mut master, slave)) in terminals.into_iter().enumerate() {
        let uid = Uid::new(13, 0, 4343 + k as u64);
        serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
            matches!(m, Message::SubReq { .. })
        })?;
        let tx = if k == 0 {
            tx.clone()
        } else {
            mpsc::sync_channel(1).0
        };
        std::thread::spawn(move || play_device(master, uid, tx));
        slaves.push(slave);
    }
    Ok((writes, slaves))
}

/// The driver station of a suite (teleop, disabled until the first press; sealing with
/// `key`) and its socket, with its keep-alive thread started.
fn start_station(
    key: Option<&Key>,
    control_port: u16,
) -> anyhow::Result<(Arc<Mutex<Station>>, UdpSocket)> {
    let station = Arc::new(Mutex::new(Station {
        request: StationRequest {
            mode: Mode::Teleop,
            enable: false,
            enable_id: 0,
            estop: false,
        },
        seq: 0,
        last: (stick(0), Instant::now()),
        sealer: key.map(Sealer::new).transpose()?,
    }));
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    let (repeat, to) = (Arc::clone(&station), socket.try_clone()?);
    std::thread::spawn(move || keep_alive(&repeat, &to, ("127.0.0.1", control_port)));
    Ok((station, socket))
}

/// One measured path: where its input goes, its arrivals, its processes.
struct Path {
    name: &'static str,
    input: Input,
    socket: UdpSocket,
    to: (&'static str, u16),
    writes: Arrivals,
    procs: Vec<Proc>,
    dir: std::path::PathBuf,
    /// Kept for the path's life: dropping it removes its sockets in /tmp.
    ns: Namespace,
    /// The terminals' other sides, kept open: with no side open, the reads here fail.
    _slaves: Vec<std::os::fd::OwnedFd>,
    /// The floor's shared-memory file, removed at the end.
    shm: Option<String>,
    samples: Vec<f64>,
    lost: usize,
}

impl Path {
    /// A suite in a namespace of its own with `controller` (binary and arguments).
    fn suite(
        name: &'static str,
        controller: (&str, &[&str]),
        realtime: &[&str],
        devices: usize,
    ) -> anyhow::Result<Path> {
        Path::suite_keyed(name, controller, realtime, devices, false, &bin_dir())
    }

    /// As [`Path::suite`] with the binaries in `bins`; with `sealed`, the receiver holds a
    /// team key and the station seals its datagrams with it, as on an event network.
    fn suite_keyed(
        name: &'static str,
        controller: (&str, &[&str]),
        realtime: &[&str],
        devices: usize,
        sealed: bool,
        bins: &std::path::Path,
    ) -> anyhow::Result<Path> {
        let ns = Namespace::new(name);
        let dir = std::env::temp_dir().join(format!("{}-ptys", ns.name));
        std::fs::create_dir_all(&dir)?;
        let key = if sealed {
            let key = Key::generate(KeyKind::Team)?;
            key.write_new(&dir.join("team.key"))?;
            Some(key)
        } else {
            None
        };
        let key_file = dir.join("team.key").display().to_string();
        let mut terminals = Vec::new();
        for k in 0..devices {
            terminals.push(pty(&dir.join(format!("ttyE2E{k}")))?);
        }
        let spawn = |exe: &str, args: &[&str]| ns.spawn_exe(&bins.join(exe), args, &[]);
        let mut procs = vec![spawn_broker(&spawn, &dir, realtime)?];
        let (writes, slaves) = play_devices(terminals)?;
        let control_port = free_udp_port()?;
        let control_addr = format!("udp://127.0.0.1:{control_port}");
        let mut receiver_args = vec!["receive", "--control-addr", &control_addr];
        receiver_args.extend_from_slice(realtime);
        if sealed {
            receiver_args.extend_from_slice(&["--key-file", &key_file]);
        }
        procs.push(spawn("pitcrew-gamepad", &receiver_args));
        procs.push(spawn(controller.0, controller.1));
        let (station, socket) = start_station(key.as_ref(), control_port)?;
        Ok(Path {
            name,
            input: Input::Suite {
                station,
                robot: Robot::new(&ns.name),
                pressed: Instant::now() - Duration::from_secs(1),
            },
            socket,
            to: ("127.0.0.1", control_port),
            writes,
            procs,
            dir,
            ns,
            _slaves: slaves,
            shm: None,
            samples: Vec::with_capacity(CHANGES as usize),
            lost: 0,
        })
    }

    /// The floor's three stages (this binary, re-executed), at `priority`.
    fn floor(priority: Option<u8>) -> anyhow::Result<Path> {
        let ns = Namespace::new("e2efloor");
        let dir = std::env::temp_dir().join(format!("{}-floor", ns.name));
        std::fs::create_dir_all(&dir)?;
        let (master, slave) = pty(&dir.join("tty"))?;
        let shm = format!("/dev/shm/{}-floor", ns.name);
        let port = free_udp_port()?;
        let prio = priority.map(|p| p.to_string()).unwrap_or_default();
        let exe = std::env::current_exe()?;
        let tty = dir.join("tty").display().to_string();
        let mut procs = Vec::new();
        for (stage, arg) in [
            ("floor-brk", tty.as_str()),
            ("floor-ctl", "-"),
            ("floor-recv", &port.to_string()),
        ] {
            let child = std::process::Command::new(&exe)
                .args([stage, &shm, arg, &prio])
                .stdin(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("start the floor stage {stage}"))?;
            procs.push(Proc::from_child(child, stage));
        }
        let (tx, writes) = mpsc::sync_channel(4096);
        std::thread::spawn(move || read_floor(master, tx));
        Ok(Path {
            name: "e2e_floor_us",
            input: Input::Floor,
            socket: UdpSocket::bind("127.0.0.1:0")?,
            to: ("127.0.0.1", port),
            writes,
            procs,
            dir,
            ns,
            _slaves: vec![slave],
            shm: Some(shm),
            samples: Vec::with_capacity(CHANGES as usize),
            lost: 0,
        })
    }

    /// Sends change `i` (with value `v`).
    fn send(&mut self, i: usize, v: f32) -> anyhow::Result<()> {
        let bytes = match &mut self.input {
            Input::Floor => v.to_bits().to_le_bytes().to_vec(),
            Input::Suite {
                station,
                robot,
                pressed,
            } => {
                let mut station = station
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the keep-alive thread panicked"))?;
                // Press enable again each 300 ms the robot is not enabled: the broker
                // takes the first press it sees from a new station as its baseline (and a
                // starved machine may trip the link watchdog: lost changes, counted).
                if robot.enabled_mode().is_none() && pressed.elapsed() >= ms(300) {
                    station.request.enable = true;
                    station.request.enable_id += 1;
                    *pressed = Instant::now();
                }
                absorb_answers(&mut station, &self.socket);
                datagram(&mut station, i, v)
            }
        };
        self.socket
            .send_to(&bytes, self.to)
            .context("send the control datagram")?;
        Ok(())
    }

    /// Repeats change 0 until its bytes arrive: the path is up (robot enabled, controller
    /// found the device).
    fn ready(&mut self) -> anyhow::Result<()> {
        eprintln!("e2ebench: waiting for {} to come up", self.name);
        let by = Instant::now() + READY_WITHIN;
        loop {
            self.send(0, stick(0))?;
            if let Ok((bits, _)) = self.writes.recv_timeout(ms(20)) {
                if bits == stick(0).to_bits() {
                    return Ok(());
                }
            }
            if Instant::now() > by {
                bail!(
                    "{}: nothing reached the device within {READY_WITHIN:?}: is the path up?",
                    self.name
                );
            }
        }
    }

    /// Changes `from..to` at 500 Hz; measured when `measure`.
    fn run(&mut self, from: usize, to: usize, measure: bool) -> anyhow::Result<()> {
        let mut next = Instant::now();
        for i in from..to {
            let v = stick(i);
            let sent = Instant::now();
            self.send(i, v)?;
            let deadline = sent + if measure { LOST_AFTER } else { ms(1000) };
            let mut arrived = None;
            while let Ok((bits, at)) = self
                .writes
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if bits == v.to_bits() {
                    arrived = Some(at);
                    break;
                }
            }
            match (arrived, measure) {
                (Some(at), true) => self
                    .samples
                    .push(at.duration_since(sent).as_secs_f64() * 1e6),
                (None, true) => self.lost += 1,
                _ => {}
            }
            next += PERIOD;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        Ok(())
    }

    /// Prints the figure (and its ratio to `floor`); returns (p50, p99).
    fn report(&mut self, priority: &str, floor: Option<(f64, f64)>) -> (f64, f64) {
        let (p50, p99) = pitcrew_e2e::p50_p99(&mut self.samples);
        let n = self.samples.len();
        let lost = self.lost;
        let ratio = floor.map_or(String::new(), |(f50, f99)| {
            format!("   ×floor p50 {:.2} p99 {:.2}", p50 / f50, p99 / f99)
        });
        eprintln!(
            "{:<24}p50 {p50:>9.1}   p99 {p99:>9.1}   n {n}   lost {lost}   ({priority}){ratio}",
            self.name
        );
        let json_ratio = floor.map_or(String::new(), |(f50, f99)| {
            format!(
                ",\"floor_ratio_p50\":{:.2},\"floor_ratio_p99\":{:.2}",
                p50 / f50,
                p99 / f99
            )
        });
        println!(
            "{{\"bench\":\"{}\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"n\":{n},\"lost\":{lost},\"priority\":\"{priority}\"{json_ratio}}}",
            self.name
        );
        (p50, p99)
    }

    fn stop(mut self) {
        for p in self.procs.iter_mut().rev() {
            let _ = p.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        match &self.shm {
            Some(shm) => {
                let _ = std::fs::remove_file(shm);
            }
            None => {
                let _ = pitcrew_buffer::remove_namespace(&self.ns.name);
            }
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The command line. A bad value (`--changes abc`) is one line and exit 2, as for the
/// suite's binaries, rather than a run with the default the user did not ask for.
#[derive(clap::Parser)]
#[command(
    name = "pitcrew-e2ebench",
    about = "joystick-to-motor time against the machine's floor"
)]
struct Options {
    /// Everything at normal priority (default: `--realtime 10`, as the supervisor runs it).
    #[arg(long)]
    normal: bool,
    /// Stick changes measured per path: fewer for a quick look or a sweep.
    #[arg(long, default_value_t = CHANGES, value_parser = clap::value_parser!(u32).range(1..))]
    changes: u32,
    /// Teleop alone with N koala-bears written every cycle (`scripts/bench scale`): prints
    /// `scale_e2e_us` with the broker's CPU.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=256),
        conflicts_with_all = ["no_auth", "no_python", "compare"]
    )]
    devices: Option<u16>,
    /// Leave out the sealed (team key) path.
    #[arg(long)]
    no_auth: bool,
    /// Leave out the Python path.
    #[arg(long)]
    no_python: bool,
    /// The teleop path once more with the binaries in DIR (another build's
    /// `target/release`, with its `pitcrew-teleop`), taking turns with the others.
    #[arg(long, value_name = "DIR", value_parser = compare_dir)]
    compare: Option<std::path::PathBuf>,
}

/// `--compare DIR`, checked to hold the binaries the path starts.
fn compare_dir(dir: &str) -> Result<std::path::PathBuf, String> {
    let dir = std::path::PathBuf::from(dir);
    for needed in ["pitcrew-devices", "pitcrew-gamepad", "pitcrew-teleop"] {
        if !dir.join(needed).is_file() {
            return Err(format!(
                "no {needed} in {} (build the other commit's suite and pitcrew-teleop into it)",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

fn main() -> anyhow::Result<()> {
    // This binary is also the floor's stages, started as `pitcrew-e2ebench floor-…`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if floor::stage_main(&args)? {
        return Ok(());
    }
    let options: Options = pitcrew::options::parse();
    for needed in ["pitcrew-teleop", "pitcrew"] {
        if !bin_dir().join(needed).exists() {
            bail!("{needed} is not built next to the suite (scripts/bench builds it)");
        }
    }
    let normal = options.normal;
    let realtime: &[&str] = if normal { &[] } else { &["--realtime", "10"] };
    let priority = if normal { "normal" } else { "realtime 10" };
    let changes = options.changes as usize;
    if let Some(devices) = options.devices.map(usize::from) {
        return scale(devices, changes, realtime, priority);
    }
    let mut paths = start_paths(&options, realtime)?;
    measure(&mut paths, changes)?;
    report_paths(&mut paths, priority);
    for path in paths {
        path.stop();
    }
    Ok(())
}

/// `--devices N`: teleop alone with N koala-bears written every cycle, and the broker's
/// CPU over the measured changes (`scale_e2e_us`): how the broker's cost grows with the
/// devices it drives.
fn scale(devices: usize, changes: usize, realtime: &[&str], priority: &str) -> anyhow::Result<()> {
    let mut path = Path::suite(
        "scale_e2e_us",
        ("pitcrew-teleop", realtime),
        realtime,
        devices,
    )?;
    path.ready()?;
    path.run(1, WARMUP, false)?;
    let broker = path.procs[0].pid();
    let (cpu, started) = (pitcrew_e2e::cpu_seconds(broker), Instant::now());
    path.run(WARMUP, WARMUP + changes, true)?;
    let cpu_pct =
        (pitcrew_e2e::cpu_seconds(broker) - cpu) * 100.0 / started.elapsed().as_secs_f64();
    let (p50, p99) = pitcrew_e2e::p50_p99(&mut path.samples);
    eprintln!(
        "{:<24}devices {devices:>3}   p50 {p50:>9.1}   p99 {p99:>9.1}   broker CPU {cpu_pct:>5.1} %   lost {}   ({priority})",
        "scale_e2e_us", path.lost
    );
    println!(
        "{{\"bench\":\"scale_e2e_us\",\"devices\":{devices},\"p50\":{p50:.1},\"p99\":{p99:.1},\"broker_cpu_pct\":{cpu_pct:.1},\"n\":{},\"lost\":{},\"priority\":\"{priority}\"}}",
        path.samples.len(),
        path.lost
    );
    path.stop();
    Ok(())
}

/// The paths the options ask for, the floor first and the plain teleop path second (the
/// figures are reported as ratios to those two).
fn start_paths(options: &Options, realtime: &[&str]) -> anyhow::Result<Vec<Path>> {
    let drive = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/drive.py");
    let mut paths = vec![
        Path::floor((!options.normal).then_some(10))?,
        Path::suite("e2e_control_us", ("pitcrew-teleop", realtime), realtime, 1)?,
    ];
    // The same path with a team key: sealed datagrams, the receiver verifying each.
    if !options.no_auth {
        paths.push(Path::suite_keyed(
            "e2e_control_auth_us",
            ("pitcrew-teleop", realtime),
            realtime,
            1,
            true,
            &bin_dir(),
        )?);
    }
    // `--compare DIR`: the same path again with the binaries built in DIR (e.g. another
    // commit's target/release), measured in the same run, block by block.
    if let Some(other) = &options.compare {
        paths.push(Path::suite_keyed(
            COMPARED,
            ("pitcrew-teleop", realtime),
            realtime,
            1,
            false,
            other,
        )?);
    }
    if !options.no_python {
        paths.push(Path::suite(
            "e2e_control_python_us",
            ("pitcrew", &["run", drive]),
            realtime,
            1,
        )?);
    }
    Ok(paths)
}

/// Brings every path up and warms it, then measures `changes` changes on each, the paths
/// taking turns block by block so that each sees the same machine.
fn measure(paths: &mut [Path], changes: usize) -> anyhow::Result<()> {
    for path in paths.iter_mut() {
        path.ready()?;
        path.run(1, WARMUP, false)?;
    }
    let mut at = WARMUP;
    while at < WARMUP + changes {
        for path in paths.iter_mut() {
            path.run(at, at + BLOCK, true)?;
            eprint!(
                "\re2ebench: {} {} of {changes} changes, {} lost  ",
                path.name,
                at + BLOCK - WARMUP,
                path.lost
            );
        }
        at += BLOCK;
    }
    eprintln!();
    Ok(())
}

/// Prints each path's figure against the floor (`paths[0]`), then each later path's p50
/// over the plain teleop path's (`paths[1]`): sealed over plain, compared build over this
/// one, Python over teleop.
fn report_paths(paths: &mut [Path], priority: &str) {
    let floor = paths[0].report(priority, None);
    let mut teleop = None;
    for path in paths.iter_mut().skip(1) {
        let got = path.report(priority, Some(floor));
        let (label, bench, target) = match (path.name, teleop) {
            (_, None) => {
                teleop = Some(got);
                continue;
            }
            ("e2e_control_auth_us", _) => ("sealed/plain p50", "e2e_auth_over_plain_p50", ""),
            (COMPARED, _) => ("compared/this p50", "e2e_compared_over_this_p50", ""),
            _ => (
                "python/teleop p50",
                "e2e_python_over_teleop_p50",
                " (target ≤ 1.5)",
            ),
        };
        let t50 = teleop.map_or(f64::NAN, |t| t.0);
        eprintln!("{label:<24}{:.2}{target}", got.0 / t50);
        println!(
            "{{\"bench\":\"{bench}\",\"ratio\":{:.2},\"priority\":\"{priority}\"}}",
            got.0 / t50
        );
    }
}

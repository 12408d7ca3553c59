//! Benchmark of the control path (a benchmark, not a test): starts a real
//! `pitcrew-gamepad receive` (built beside this example: `cargo build --release --bins
//! --examples`) and prints one JSON object per figure:
//!
//! * `control_apply_us`: datagram sent → value visible in the gamepad buffer, read from this
//!   other process (p50, p99);
//! * `watchdog_trip_ms`: last datagram sent → gamepad 0 neutral and marked disconnected
//!   (p50, max over 100 trips), with the default 100 ms timeout. (Motors are the broker's:
//!   `link_loss_safe_ms` of `pitcrew-robotbench` times the safe values on the wire.)
//!
//! * `control_auth_ns`: the receiver's cost of checking one sealed datagram (the MAC, the
//!   challenge and the session counter: `control::auth::Verifier::open`), in process, p50
//!   and p99 over batches of 100, beside `control_parse_ns` (decoding the same datagram),
//!   which every datagram costs with or without a key.
//!
//! * `control_flood_valid_loss_pct` and `control_flood_false_trips`: a keyed receiver at
//!   `--realtime 10` (as deployed) while a driver station (sealed, 250 datagrams/s, at
//!   SCHED_FIFO 20 like another machine) drives and two sockets flood the control port with
//!   junk as fast as they can (`sendmmsg`, a third each random bytes, unsealed control
//!   datagrams and datagrams sealed with another key) for [`FLOOD_SECONDS`]: the share of
//!   the station's datagrams that were not applied (an applied one is answered with the
//!   robot state), and the watchdog trips seen in the gamepad buffer plus the gaps between
//!   applied datagrams longer than the control timeout (a broker would call the link lost),
//!   each with the flood's measured rate. `PAD_BENCH_FLOOD_THREADS=N` floods from N
//!   sockets, `PAD_BENCH_FLOOD_RATE` paces the flood, `PAD_BENCH_FLOOD_NORMAL=1` runs the
//!   receiver at normal priority (the flood then competes with it for the CPU).
//!
//! `PAD_BENCH_RECEIVER=PATH` measures another build's `pitcrew-gamepad` (an A/B).
//!
//!     cargo run --release -p pitcrew-gamepad --example control_bench [-- apply|trip|auth|flood]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::control::{self, ControlMessage, Meta, PadInput};
use pitcrew::gamepad::{Gamepad, PadState};

const APPLY_SAMPLES: usize = 5000;
const TRIPS: usize = 100;
/// How long the flood lasts.
const FLOOD_SECONDS: u64 = 10;
/// The driver station's period during the flood: 250 datagrams/s, five times a gilrs
/// station's, so that a loss of 1 % is measured from a few thousand datagrams.
const STATION_PERIOD: Duration = Duration::from_millis(4);

struct Receiver {
    child: Child,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on a child we started and have not reaped.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let _ = self.child.wait();
    }
}

/// The receiver to measure: `PAD_BENCH_RECEIVER` (another build's, for an A/B), else the
/// one built beside this example.
fn receiver_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PAD_BENCH_RECEIVER") {
        let bin = PathBuf::from(path);
        if !bin.exists() {
            bail!("PAD_BENCH_RECEIVER: {} does not exist", bin.display());
        }
        return Ok(bin);
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("cannot locate the target directory")?;
    let bin = dir.join("pitcrew-gamepad");
    if !bin.exists() {
        bail!(
            "{} is not built (cargo build --release --bins)",
            bin.display()
        );
    }
    Ok(bin)
}

fn start(namespace: &str) -> anyhow::Result<(Receiver, SocketAddr)> {
    start_with(namespace, &[])
}

fn start_with(namespace: &str, options: &[String]) -> anyhow::Result<(Receiver, SocketAddr)> {
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(receiver_binary()?)
        .args([
            "--namespace",
            namespace,
            "--log-level",
            "error",
            "--log-format",
            "json",
        ])
        .args([
            "--router-backend",
            &format!("ipc:///tmp/{namespace}-srv.sock"),
        ])
        .args(["receive", "--control-addr", &format!("udp://{addr}")])
        .args(options)
        .args(extra_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the receiver")?;
    Ok((Receiver { child }, addr))
}

/// Extra receiver options from `PAD_BENCH_RECEIVER_ARGS` (e.g. `--realtime 10`).
fn extra_args() -> Vec<String> {
    std::env::var("PAD_BENCH_RECEIVER_ARGS")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn datagram(seq: u64, lx: f32) -> Vec<u8> {
    let state = PadState {
        lx,
        ..PadState::NEUTRAL
    };
    control::encode(&ControlMessage {
        gamepads: vec![(0, PadInput::from_state(state))],
        meta: Some(Meta {
            seq,
            sent_us: 0,
            source: "bench".into(),
            station: None,
        }),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Waits up to 5 s for `check`, spinning.
fn spin_until(mut check: impl FnMut() -> bool) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if check() {
            return Ok(Instant::now());
        }
        if start.elapsed() > Duration::from_secs(5) {
            bail!("timed out");
        }
        std::hint::spin_loop();
    }
}

fn apply(namespace: &str) -> anyhow::Result<()> {
    let (_receiver, addr) = start(namespace)?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut seq = 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    let pad = loop {
        sock.send_to(&datagram(seq, 0.0), addr)?;
        seq += 1;
        if let Ok(p) = Gamepad::open(namespace, 0) {
            break p;
        }
        if Instant::now() > deadline {
            bail!("the receiver never created the gamepad buffer");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut samples = Vec::with_capacity(APPLY_SAMPLES);
    for i in 0..APPLY_SAMPLES {
        let lx = ((i % 1000) as f32 + 1.0) / 1000.0;
        let bytes = datagram(seq, lx);
        seq += 1;
        let sent = Instant::now();
        sock.send_to(&bytes, addr)?;
        let seen = spin_until(|| pad.joystick_left_x().is_ok_and(|x| x == lx))?;
        samples.push(seen.duration_since(sent).as_secs_f64() * 1e6);
        // Stay under the rate where the receiver would be saturated; keep the link alive.
        std::thread::sleep(Duration::from_micros(500));
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{{\"bench\":\"control_apply_us\",\"p50\":{:.1},\"p99\":{:.1},\"n\":{}}}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
    Ok(())
}

fn trip(namespace: &str) -> anyhow::Result<()> {
    let (_receiver, addr) = start(namespace)?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut seq = 1;
    let mut samples = Vec::with_capacity(TRIPS);
    // Let the receiver start listening.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..TRIPS {
        for _ in 0..3 {
            sock.send_to(&datagram(seq, 0.5), addr)?;
            seq += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        spin_until(|| Gamepad::open(namespace, 0).is_ok_and(|p| p.buffer().is_valid()))?;
        let pad = Gamepad::open(namespace, 0)?;
        sock.send_to(&datagram(seq, 0.5), addr)?;
        seq += 1;
        let last = Instant::now();
        let safe = spin_until(|| {
            std::thread::sleep(Duration::from_micros(50));
            !pad.buffer().is_valid()
        })?;
        samples.push(safe.duration_since(last).as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{{\"bench\":\"watchdog_trip_ms\",\"p50\":{:.2},\"max\":{:.2},\"n\":{}}}",
        percentile(&samples, 0.5),
        samples.last().copied().unwrap_or(f64::NAN),
        samples.len()
    );
    Ok(())
}

/// `control_auth_ns` and `control_parse_ns` (see the module doc).
fn auth() -> anyhow::Result<()> {
    use pitcrew::control::auth::{Sealer, Verifier};
    use pitcrew::key::{Key, KeyKind, Keys};
    const BATCH: usize = 100;
    const BATCHES: usize = 2000;
    let key = Key::generate(KeyKind::Team)?;
    let keys = Keys {
        team: Some(key.clone()),
        field: None,
    };
    let mut verifier = Verifier::new(&keys).context("a verifier")?;
    let mut sealer = Sealer::new(&key)?;
    let plain = datagram(1, 0.5);
    // The handshake: the first datagram is answered with a challenge.
    let now = Instant::now();
    let first = sealer.seal(&plain);
    let answer = verifier
        .open(&first, now)
        .err()
        .and_then(|r| r.answer)
        .context("no challenge")?;
    sealer
        .open_answer(&answer)
        .context("the answer does not open")?;
    let mut auth = Vec::with_capacity(BATCHES);
    let mut parse = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let sealed: Vec<Vec<u8>> = (0..BATCH).map(|_| sealer.seal(&plain)).collect();
        let now = Instant::now();
        let start = Instant::now();
        for d in &sealed {
            std::hint::black_box(verifier.open(d, now).is_ok());
        }
        auth.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        let start = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(control::parse(&plain).is_ok());
        }
        parse.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        // A fresh challenge after each batch, as the robot's answers bring.
        let d = sealer.seal(&plain);
        if let Ok(o) = verifier.open(&d, Instant::now()) {
            let answer = verifier.answer_to(&o, Instant::now(), &[]);
            sealer.open_answer(&answer);
        }
    }
    for (name, mut samples) in [("control_auth_ns", auth), ("control_parse_ns", parse)] {
        samples.sort_by(f64::total_cmp);
        println!(
            "{{\"bench\":\"{name}\",\"p50\":{:.0},\"p99\":{:.0},\"n\":{}}}",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples.len() * BATCH
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    if let Some(other) = which
        .iter()
        .find(|w| !["auth", "apply", "trip", "flood"].contains(&w.as_str()))
    {
        eprintln!("control_bench: unknown benchmark {other:?} (known: auth, apply, trip, flood)");
        std::process::exit(2);
    }
    let all = which.is_empty();
    if all || which.iter().any(|w| w == "auth") {
        auth()?;
    }
    let namespace = format!("bench-pad-{}", std::process::id());
    if all || which.iter().any(|w| w == "apply") {
        apply(&format!("{namespace}-a"))?;
    }
    if all || which.iter().any(|w| w == "trip") {
        trip(&format!("{namespace}-t"))?;
    }
    if all || which.iter().any(|w| w == "flood") {
        flood::run(&format!("{namespace}-f"))?;
    }
    Ok(())
}

#[path = "control_bench/flood.rs"]
mod flood;

//! `pitcrew-e2ebench`: `e2e_control_us`, the software time from joystick to motor, through
//! a robot enabled in teleop by this process acting as the driver station.
//!
//! A control datagram sent over UDP → `pitcrew-gamepad receive` → the gamepad buffer →
//! `pitcrew-teleop` (examples/teleop, which copies the left stick to `duty_cycle_a`) → the
//! koala-bear's buffer →
//! `pitcrew-devices` → the DEV_WRITE bytes readable on the device's pseudo-terminal, where
//! this process plays the koala-bear. 10 000 stick changes at 500 Hz, each timed from the
//! `send_to` to the arrival of the DEV_WRITE carrying that very value. Prints a line on
//! stderr and `{"bench":"e2e_control_us","p50":..,"p99":..,"n":..,"lost":..}` on stdout.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::PadState;
use pitcrew::robot::{Mode, Robot};
use pitcrew_catalog::Uid;
use pitcrew_e2e::device::{pty, serve};
use pitcrew_e2e::{bin, Namespace};
use pitcrew_sdp::{FrameDecoder, Message};

/// Stick changes measured (the 10 000).
const CHANGES: usize = 10_000;
/// Changes before measuring: the controller must find the device first.
const WARMUP: usize = 250;
/// The 500 Hz.
const PERIOD: Duration = Duration::from_millis(2);
/// A change whose DEV_WRITE has not arrived by then is counted lost.
const LOST_AFTER: Duration = Duration::from_millis(100);

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The value of change `i`: never the same twice in a row, so every change is a write.
fn stick(i: usize) -> f32 {
    ((i % 200) as f32 - 100.0) / 100.0
}

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

fn main() -> anyhow::Result<()> {
    if !bin("pitcrew-teleop").exists() {
        bail!("pitcrew-teleop is not built next to the suite (scripts/bench builds it)");
    }
    let ns = Namespace::new("e2ebench");
    let dir = std::env::temp_dir().join(format!("{}-ptys", ns.name));
    std::fs::create_dir_all(&dir)?;
    let (mut master, _slave) = pty(&dir.join("ttyE2E0"))?;
    let update_addr = format!("udp://239.255.77.3:{}", free_udp_port()?);
    // As the supervisor runs them: the broker, the receiver and (here) the controller at
    // SCHED_FIFO priority 10. `--normal` runs all three as normal threads, for comparison.
    let normal = std::env::args().any(|a| a == "--normal");
    let realtime: &[&str] = if normal { &[] } else { &["--realtime", "10"] };
    let glob = format!("{}/ttyE2E*", dir.display());
    let mut broker_args = vec![
        "--virtual-addr",
        "tcp://127.0.0.1:0",
        "--serial-glob",
        &glob,
        "--update-interface",
        "127.0.0.1",
        "--update-addr",
        &update_addr,
    ];
    broker_args.extend_from_slice(realtime);
    let mut broker = ns.spawn("pitcrew-devices", &broker_args);
    let uid = Uid::new(13, 0, 4343);
    serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
        matches!(m, Message::SubReq { .. })
    })?;
    let (tx, writes) = mpsc::sync_channel(4096);
    std::thread::spawn(move || play_device(master, uid, tx));

    let control_port = free_udp_port()?;
    let control_addr = format!("udp://127.0.0.1:{control_port}");
    let mut receiver_args = vec!["receive", "--control-addr", &control_addr];
    receiver_args.extend_from_slice(realtime);
    let mut receiver = ns.spawn("pitcrew-gamepad", &receiver_args);
    let mut teleop = ns.spawn("pitcrew-teleop", realtime);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let to = ("127.0.0.1", control_port);

    // The bench is the driver station: the robot must be enabled in teleop through it.
    let request = std::cell::Cell::new(StationRequest {
        mode: Mode::Teleop,
        enable: false,
        enable_id: 0,
        estop: false,
    });
    // Every datagram gets a new seq (the receiver drops a repeated one as reordered).
    let seq = std::cell::Cell::new(0u64);
    let datagram = |i: usize, v: f32| {
        seq.set(seq.get() + 1);
        control::encode(&ControlMessage {
            gamepads: vec![(
                0,
                PadInput::from_state(PadState {
                    ly: v,
                    ..PadState::NEUTRAL
                }),
            )],
            meta: Some(Meta {
                seq: seq.get(),
                sent_us: i as u64 * 2000,
                source: "e2ebench".into(),
                station: Some(request.get()),
            }),
        })
    };

    // Until the receiver is up, the robot enabled and the controller has found the
    // device, repeat change 0 (pressing enable again each second the robot is not enabled:
    // the broker takes the first press it sees from a new station as its baseline).
    let ready_by = Instant::now() + Duration::from_secs(20);
    let mut robot = Robot::new(&ns.name);
    let mut pressed = Instant::now();
    loop {
        if robot.enabled_mode().is_none() && pressed.elapsed() >= Duration::from_millis(300) {
            let mut r = request.get();
            r.enable = true;
            r.enable_id += 1;
            request.set(r);
            pressed = Instant::now();
        }
        socket.send_to(&datagram(0, stick(0)), to)?;
        if let Ok((bits, _)) = writes.recv_timeout(Duration::from_millis(20)) {
            if bits == stick(0).to_bits() {
                break;
            }
        }
        if Instant::now() > ready_by {
            bail!("no DEV_WRITE reached the device within 20 s: is the path up?");
        }
    }

    let mut samples = Vec::with_capacity(CHANGES);
    let mut lost = 0usize;
    let mut next = Instant::now();
    for i in 1..=WARMUP + CHANGES {
        let v = stick(i);
        let bytes = datagram(i, v);
        let sent = Instant::now();
        socket
            .send_to(&bytes, to)
            .context("send the control datagram")?;
        let deadline = sent
            + if i < WARMUP {
                Duration::from_secs(5)
            } else {
                LOST_AFTER
            };
        let mut arrived = None;
        while let Ok((bits, at)) =
            writes.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if bits == v.to_bits() {
                arrived = Some(at);
                break;
            }
        }
        match (arrived, i > WARMUP) {
            (Some(at), true) => samples.push(at.duration_since(sent).as_secs_f64() * 1e6),
            (None, true) => lost += 1,
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
    if samples.is_empty() {
        bail!("no change reached the device");
    }
    let (p50, p99) = pitcrew_e2e::p50_p99(&mut samples);
    eprintln!(
        "e2e_control_us          p50 {p50:>9.1}   p99 {p99:>9.1}   n {}   lost {lost}",
        samples.len()
    );
    println!(
        "{{\"bench\":\"e2e_control_us\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"n\":{},\"lost\":{lost}}}",
        samples.len()
    );
    for p in [&mut teleop, &mut receiver, &mut broker] {
        let _ = p.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = pitcrew_buffer::remove_namespace(&ns.name);
    Ok(())
}

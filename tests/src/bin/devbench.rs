//! `pitcrew-devbench`: the device broker's write latency, `devices_write_latency_us`: a
//! write into a device's shared memory by this process → the DEV_WRITE bytes readable on the
//! device's pseudo-terminal, which this process also plays (it answers PING and
//! heartbeats). Starts a real `pitcrew-devices` that discovers the terminal as a serial
//! port. Prints a line on stderr and `{"bench":"devices_write_latency_us","p50":..,"p99":..}`
//! on stdout.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew_buffer::Buffer;
use pitcrew_catalog::{Catalog, Uid, Value};
use pitcrew_e2e::Namespace;
use pitcrew_sdp::{FrameDecoder, Message, ParamWidths};

/// Writes measured (the issue asks for 10 000).
const WRITES: usize = 10_000;
/// Writes before measuring.
const WARMUP: usize = 500;

/// A raw pseudo-terminal: (master, slave kept open), linked as `link`.
fn pty(link: &std::path::Path) -> anyhow::Result<(std::fs::File, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the optional pointers may be null.
    if unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    } != 0
    {
        bail!("openpty: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    let (master, slave) = unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // SAFETY: termios is plain data; `slave` is an open tty.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
    }
    let target = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))?;
    std::os::unix::fs::symlink(target, link)?;
    Ok((master, slave))
}

/// Plays the device until `until` returns true for a received message.
fn serve(
    master: &mut std::fs::File,
    dec: &mut FrameDecoder,
    uid: Uid,
    mut until: impl FnMut(&Message<'_>) -> bool,
) -> anyhow::Result<()> {
    let mut buf = [0u8; 512];
    let widths = ParamWidths::from_slots([Some(4); 16]).unwrap_or_default();
    loop {
        let n = master.read(&mut buf)?;
        if n == 0 {
            bail!("the terminal closed");
        }
        let mut out = Vec::new();
        let mut done = false;
        for p in dec.decode(&buf[..n]).flatten() {
            let Ok(m) = Message::from_packet(&p, &widths) else {
                continue;
            };
            match m {
                Message::Ping => Message::SubRes {
                    params: 0,
                    interval_ms: 0,
                    uid,
                }
                .encode_frame(&mut out)?,
                Message::HbReq(id) => Message::HbRes(id).encode_frame(&mut out)?,
                _ => {}
            }
            done |= until(&m);
        }
        master.write_all(&out)?;
        if done {
            return Ok(());
        }
    }
}

fn main() -> anyhow::Result<()> {
    let ns = Namespace::new("devbench");
    let dir = std::env::temp_dir().join(format!("{}-ptys", ns.name));
    std::fs::create_dir_all(&dir)?;
    let (mut master, _slave) = pty(&dir.join("ttyBENCH0"))?;
    let glob = format!("{}/ttyBENCH*", dir.display());
    let mut broker = ns.spawn(
        "pitcrew-devices",
        &[
            "--virtual-addr",
            "tcp://127.0.0.1:0",
            "--serial-glob",
            &glob,
            "--update-interface",
            "127.0.0.1",
        ],
    );
    let uid = Uid::new(12, 0, 4242);
    let mut dec = FrameDecoder::new();
    serve(&mut master, &mut dec, uid, |m| {
        matches!(m, Message::SubReq { .. })
    })?;
    let buf = Buffer::open_uid(&ns.name, Catalog::embedded(), uid).context("the buffer")?;
    let mut samples = Vec::with_capacity(WRITES);
    for i in 0..WARMUP + WRITES {
        let v = (i % 100) as f32 / 100.0;
        let start = Instant::now();
        buf.write_value("duty_cycle", Value::F32(v))?;
        serve(&mut master, &mut dec, uid, |m| {
            matches!(m, Message::DevWrite(_))
        })?;
        if i >= WARMUP {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    let (p50, p99) = (pct(0.5), pct(0.99));
    eprintln!(
        "devices_write_latency_us p50 {p50:>9.1}   p99 {p99:>9.1}   n {}",
        samples.len()
    );
    println!(
        "{{\"bench\":\"devices_write_latency_us\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"n\":{}}}",
        samples.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(buf);
    let _ = broker.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let _ = pitcrew_buffer::remove_namespace(&ns.name);
    Ok(())
}

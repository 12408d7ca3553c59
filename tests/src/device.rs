//! A Smart Device played by the test process itself on a real pseudo-terminal, for the
//! benchmarks that time bytes on the device's side of the serial line (the broker opens the
//! other side as a serial port). It answers PING and heartbeats and nothing else.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::bail;
use pitcrew_catalog::Uid;
use pitcrew_sdp::{FrameDecoder, Message, ParamWidths};

/// A raw pseudo-terminal: (master, slave kept open), linked as `link`.
pub fn pty(link: &std::path::Path) -> anyhow::Result<(std::fs::File, OwnedFd)> {
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
pub fn serve(
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

//! [`Line`]: the writing side of one device connection (a serial port or a TCP stream),
//! shared by the session's event loop and the device's waker thread.
//!
//! A consumer's write goes out from the waker thread that the consumer's futex wake-up ran
//! (`outbound`), not from the event loop one more wake-up later; the session's own frames
//! (heartbeats, subscriptions, safe values, the emergency stop) go out from the event loop.
//! Both write through this one lock, so frames never interleave, and a state check made
//! under it orders with every frame sent after the state changed.
//!
//! The line writes to a duplicate of the connection's descriptor with plain `write(2)`. The
//! descriptor is non-blocking (the async reader made it so); a full kernel buffer is waited
//! out with `poll(2)` for at most [`WRITE_STALL`], after which the line counts as failed: a
//! device that takes nothing for that long is not reading, and the session ends as it does
//! for a lost device. A line that failed stays failed: every later write returns the same
//! error at once, so the other writer (blocked on the lock meanwhile) does not wait out a
//! second stall. A device that stops reading costs the broker's event loop at most one
//! [`WRITE_STALL`], not one per frame still to send. The frames that make a device safe
//! (DEV_DISABLE, safe values) are the exception: on a failed line they are still tried,
//! once and without waiting ([`LineGuard::write_safety`]), so that a writer that waited on
//! the lock behind the stall (an estop, a disable) still reaches a device that resumed
//! reading by then. The session then ends as for a lost device; one that comes back is
//! sent DEV_DISABLE after an estop, or the safe values while the robot is disabled, as it
//! reconnects.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Longest a write waits for room in the kernel's buffer. In normal operation a write
/// never waits (a few dozen bytes into kilobytes of buffer); this bounds what a device that
/// stopped reading costs the thread that writes to it.
pub const WRITE_STALL: Duration = Duration::from_millis(50);

/// The writing side of one connection.
#[derive(Debug)]
pub struct Line {
    file: Mutex<File>,
    /// The first write error, kind and text: the line's answer to every later write.
    failed: OnceLock<(ErrorKind, String)>,
}

impl Line {
    /// A line writing to `stream`'s connection (through a duplicate of its descriptor, so
    /// it outlives neither more nor less than its last user).
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated (out of descriptors).
    pub fn of(stream: &impl AsRawFd) -> std::io::Result<Line> {
        // SAFETY: the descriptor is open for the duration of this call (borrowed from the
        // live stream), and `try_clone_to_owned` only duplicates it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        let owned: OwnedFd = borrowed.try_clone_to_owned()?;
        Ok(Line {
            file: Mutex::new(File::from(owned)),
            failed: OnceLock::new(),
        })
    }

    /// Takes the line for one or more whole writes.
    pub fn lock(&self) -> LineGuard<'_> {
        LineGuard {
            file: self.file.lock().unwrap_or_else(PoisonError::into_inner),
            failed: &self.failed,
        }
    }

    /// Writes `bytes` whole, under the lock.
    ///
    /// # Errors
    /// As [`LineGuard::write_all`].
    pub fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.lock().write_all(bytes)
    }

    /// Writes frames that make the device safe, under the lock.
    ///
    /// # Errors
    /// As [`LineGuard::write_safety`].
    pub fn write_safety(&self, frames: &[u8]) -> std::io::Result<()> {
        self.lock().write_safety(frames)
    }
}

/// The line, held: what is written through it goes out unbroken.
#[derive(Debug)]
pub struct LineGuard<'a> {
    file: MutexGuard<'a, File>,
    failed: &'a OnceLock<(ErrorKind, String)>,
}

impl LineGuard<'_> {
    /// Writes `bytes` whole, waiting for room at most [`WRITE_STALL`] in all.
    ///
    /// # Errors
    /// The connection's error (closed, reset), or `TimedOut` when the device took nothing
    /// for [`WRITE_STALL`]; after either, the same error at once, writing nothing.
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(failed) = self.failed.get() {
            return Err(earlier(failed, ""));
        }
        let result = self.write_whole(bytes);
        if let Err(e) = &result {
            let _ = self.failed.set((e.kind(), e.to_string()));
        }
        result
    }

    /// Writes frames that make the device safe (DEV_DISABLE, the safe values). On a line
    /// that works, as [`LineGuard::write_all`]. On one that failed, they are tried once
    /// without waiting, after a delimiter that ends whatever frame the failure cut short
    /// (a receiver ignores an empty frame, spec/smart-device-protocol.md): a device that
    /// stalled and reads again still gets them, and one that does not costs no wait.
    ///
    /// # Errors
    /// As [`LineGuard::write_all`] on a working line; on a failed one, the first failure's
    /// error when not all of the frames went out.
    pub fn write_safety(&mut self, frames: &[u8]) -> std::io::Result<()> {
        let Some(failed) = self.failed.get() else {
            return self.write_all(frames);
        };
        let mut bytes = Vec::with_capacity(frames.len() + 1);
        bytes.push(pitcrew_sdp::frame::DELIMITER);
        bytes.extend_from_slice(frames);
        let written = loop {
            match self.file.write(&bytes) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        // Part written is reported as not written (nothing counted or recorded), though a
        // whole DEV_DISABLE may be among it; the next try starts with a delimiter again.
        match written {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(earlier(
                failed,
                &format!(" (the safe frames went out to byte {n} of {})", bytes.len()),
            )),
            Err(e) => Err(earlier(
                failed,
                &format!(" (the safe frames did not go out: {e})"),
            )),
        }
    }

    fn write_whole(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let deadline = Instant::now() + WRITE_STALL;
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait_for_room(deadline)?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the descriptor takes more, or `deadline`.
    fn wait_for_room(&self, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                format!(
                    "the device took nothing for {} ms: it is not reading",
                    WRITE_STALL.as_millis()
                ),
            ));
        }
        let mut pfd = libc::pollfd {
            fd: self.file.as_fd().as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Ready, timed out (the next write says which) or interrupted: write again.
        Ok(())
    }
}

/// The error of a write to a line that failed before.
fn earlier((kind, text): &(ErrorKind, String), detail: &str) -> std::io::Error {
    std::io::Error::new(*kind, format!("the line failed earlier: {text}{detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// A line on one end of a socket pair, and the other end (the device).
    fn line_and_device() -> (Line, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Line::of(&ours).unwrap(), theirs)
    }

    /// Writes until the device's buffer is full and the line gives up.
    fn fill_until_failed(line: &Line) -> std::io::Error {
        let big = vec![0x5Au8; 1 << 16];
        loop {
            if let Err(e) = line.write_all(&big) {
                return e;
            }
        }
    }

    /// Reads whatever the device has been sent.
    fn drain(device: &mut UnixStream) -> Vec<u8> {
        device.set_nonblocking(true).unwrap();
        let (mut all, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
        while let Ok(n @ 1..) = device.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        all
    }

    #[test]
    fn writes_go_out_whole_and_a_device_that_stops_reading_fails_the_line() {
        let (line, mut device) = line_and_device();
        line.write_all(b"frame\0").unwrap();
        let mut got = [0u8; 6];
        device.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"frame\0");

        // Nobody reads: the buffer fills, and the write gives up after WRITE_STALL.
        let started = Instant::now();
        let err = fill_until_failed(&line);
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= WRITE_STALL);
        assert!(err.to_string().contains("not reading"), "{err}");

        // Failed, it stays failed: the next write, the buffer still full, is refused
        // without trying (so without waiting out another stall); nor, once the device
        // reads again, does a write go out.
        let err = line.write_all(b"heartbeat\0").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("failed earlier"), "{err}");
        let before = drain(&mut device);
        assert!(line.write_all(b"heartbeat\0").is_err());
        assert!(drain(&mut device).is_empty(), "a failed line wrote again");
        assert!(!before.ends_with(b"heartbeat\0"));
    }

    #[test]
    fn the_writer_waiting_on_the_lock_of_a_stalled_line_does_not_stall_again() {
        let (line, _device) = line_and_device();
        // Fill the buffer first, so the next write stalls from its first byte.
        let big = vec![0x5Au8; 1 << 16];
        while line.lock().write_whole(&big[..1024]).is_ok() {}
        let line = &line;
        let (first, second) = std::thread::scope(|s| {
            let stalled = s.spawn(move || line.write_all(b"forward\0"));
            // Usually this one waits on the lock while the other stalls; in either order,
            // one stall is waited out and the other writer is refused at once.
            std::thread::sleep(WRITE_STALL / 5);
            let behind = line.write_all(b"heartbeat\0");
            (stalled.join().unwrap().unwrap_err(), behind.unwrap_err())
        });
        let mut said = [first.to_string(), second.to_string()];
        said.sort_by_key(|e| e.contains("failed earlier"));
        assert!(said[0].contains("not reading"), "{said:?}");
        assert!(
            said[1].contains("failed earlier"),
            "{said:?}: both waited out a stall"
        );
    }

    #[test]
    fn safe_frames_are_still_tried_on_a_failed_line_after_a_delimiter_and_never_wait() {
        let (line, mut device) = line_and_device();
        // On a line that works, safe frames are ordinary writes: no delimiter first, and
        // a stall fails the line for everything else.
        line.write_safety(b"disable\0").unwrap();
        assert_eq!(drain(&mut device), b"disable\0");
        let big = vec![0x5Au8; 1 << 16];
        let err = loop {
            if let Err(e) = line.write_safety(&big) {
                break e;
            }
        };
        assert!(err.to_string().contains("not reading"), "{err}");
        let err = line.write_all(b"write\0").unwrap_err();
        assert!(err.to_string().contains("failed earlier"), "{err}");
        // Still full: the safe frames cannot go out, and the one try that says so does
        // not wait for room.
        let err = line.write_safety(b"disable\0").unwrap_err();
        assert!(err.to_string().contains("did not go out"), "{err}");
        assert!(err.to_string().contains("failed earlier"), "{err}");
        // The device reads again: they go out, after a delimiter that ends the frame the
        // stall cut short, where an ordinary write still does not.
        drain(&mut device);
        line.write_safety(b"disable\0").unwrap();
        assert!(line.write_all(b"write\0").is_err());
        assert_eq!(drain(&mut device), b"\0disable\0");
    }
}

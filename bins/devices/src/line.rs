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
//! error at once, so the other writer (blocked on the lock meanwhile) and the session's
//! last frames do not each wait out another stall. A device that stops reading costs the
//! broker's event loop at most one [`WRITE_STALL`], not one per frame still to send.

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
        if let Some((kind, text)) = self.failed.get() {
            return Err(std::io::Error::new(
                *kind,
                format!("the line failed earlier: {text}"),
            ));
        }
        let result = self.write_whole(bytes);
        if let Err(e) = &result {
            let _ = self.failed.set((e.kind(), e.to_string()));
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn writes_go_out_whole_and_a_device_that_stops_reading_fails_the_line() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let line = Line::of(&ours).unwrap();
        line.write_all(b"frame\0").unwrap();
        let mut got = [0u8; 6];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"frame\0");

        // Nobody reads: the buffer fills, and the write gives up after WRITE_STALL.
        let big = vec![0u8; 1 << 16];
        let started = Instant::now();
        let err = loop {
            if let Err(e) = line.write_all(&big) {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= WRITE_STALL);
        assert!(err.to_string().contains("not reading"), "{err}");

        // Failed, it stays failed, for every writer: none waits out another stall, even
        // with room in the buffer again, and nothing more reaches the device.
        let mut drained = vec![0u8; 1 << 20];
        theirs.set_nonblocking(true).unwrap();
        while theirs.read(&mut drained).is_ok_and(|n| n > 0) {}
        let other = std::thread::scope(|s| {
            s.spawn(|| {
                let started = Instant::now();
                (line.write_all(b"heartbeat\0"), started.elapsed())
            })
            .join()
            .unwrap()
        });
        for (result, took) in [other, {
            let started = Instant::now();
            (line.lock().write_all(b"disable\0"), started.elapsed())
        }] {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
            assert!(err.to_string().contains("failed earlier"), "{err}");
            assert!(took < WRITE_STALL / 2, "waited {took:?} on a failed line");
        }
        assert!(
            matches!(theirs.read(&mut drained), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "a failed line wrote again"
        );
    }
}

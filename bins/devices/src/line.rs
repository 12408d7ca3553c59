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
//! out for at most the line's stall (`--write-stall`, [`WRITE_STALL`] by default), after
//! which the line counts as failed: a device that takes nothing for that long is not
//! reading, and the session ends as it does for a lost device.
//!
//! The event loop serves every device, so nothing in it may block on one: its side of the
//! line is `async`. The lock is a `tokio::sync::Mutex` (the waker thread takes it with
//! `blocking_lock`, the session awaits it), and the session waits for room on an
//! [`AsyncFd`] of the descriptor, not in `poll(2)`. A device that stops reading, or floods
//! requests without reading the answers, holds up its own session and waker only; every
//! other device's frames (an estop, the safe values of a disable) go out meanwhile.
//!
//! A line that failed stays failed: every later write returns the same error at once, so
//! the other writer (waiting on the lock meanwhile) does not wait out a second stall. The
//! frames that make a device safe (DEV_DISABLE, safe values) are the exception: on a failed
//! line they are still tried, once and without waiting ([`LineGuard::write_safety`]), so
//! that a writer that waited on the lock behind the stall (an estop, a disable) still
//! reaches a device that resumed reading by then. The session then ends as for a lost
//! device; one that comes back is sent DEV_DISABLE after an estop, or the safe values while
//! the robot is disabled, as it reconnects.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{Mutex, MutexGuard};

/// Longest a write waits for room in the kernel's buffer, by default. In normal operation
/// a write never waits (a few dozen bytes into kilobytes of buffer); this bounds what a
/// device that stopped reading costs the writer that waits on it.
pub const WRITE_STALL: Duration = Duration::from_millis(50);

/// The writing side of one connection.
#[derive(Debug)]
pub struct Line {
    file: Mutex<File>,
    /// The descriptor once more, registered with the session's runtime: what an `async`
    /// write waits on for room.
    room: AsyncFd<OwnedFd>,
    /// How long a write waits for room before the line fails.
    stall: Duration,
    /// The first write error, kind and text: the line's answer to every later write.
    failed: OnceLock<(ErrorKind, String)>,
    /// A write is waiting for room: the device is not reading (for now).
    waiting: AtomicBool,
}

impl Line {
    /// A line writing to `stream`'s connection (through duplicates of its descriptor, so
    /// it outlives neither more nor less than its last user), failing when a write waited
    /// `stall` for room. Called on the session's runtime, which the line's `async` writes
    /// then wait on.
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated (out of descriptors) or registered with
    /// the runtime.
    pub fn of(stream: &impl AsRawFd, stall: Duration) -> std::io::Result<Line> {
        // SAFETY: the descriptor is open for the duration of this call (borrowed from the
        // live stream), and `try_clone_to_owned` only duplicates it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        let owned: OwnedFd = borrowed.try_clone_to_owned()?;
        let watched = borrowed.try_clone_to_owned()?;
        // SAFETY: the AsyncFd owns `watched`, a descriptor of its own whose `as_raw_fd`
        // never changes, and closes it only when dropped.
        let room = unsafe { AsyncFd::register_with_interest(watched, Interest::WRITABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Line {
            file: Mutex::new(File::from(owned)),
            room,
            stall,
            failed: OnceLock::new(),
            waiting: AtomicBool::new(false),
        })
    }

    /// Whether the device is not reading: a write waits for room on this line, or one
    /// waited out the stall and failed it. An emergency stop does not wait for such a
    /// device to confirm its DEV_DISABLE (its session tries it when it gets the line).
    pub fn is_stalled(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) || self.failed.get().is_some()
    }

    /// How long a write waits for room before the line fails.
    pub fn stall(&self) -> Duration {
        self.stall
    }

    /// Takes the line for one or more whole writes, from the session.
    pub async fn lock(&self) -> LineGuard<'_> {
        LineGuard {
            file: self.file.lock().await,
            line: self,
        }
    }

    /// Takes the line from a thread of its own (the waker), blocking it until the line is
    /// free. Never call it on the runtime.
    pub fn lock_blocking(&self) -> LineGuard<'_> {
        LineGuard {
            file: self.file.blocking_lock(),
            line: self,
        }
    }

    /// Writes `bytes` whole, under the lock.
    ///
    /// # Errors
    /// As [`LineGuard::write_all`].
    pub async fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.lock().await.write_all(bytes).await
    }

    /// Writes frames that make the device safe, under the lock.
    ///
    /// # Errors
    /// As [`LineGuard::write_safety`].
    pub async fn write_safety(&self, frames: &[u8]) -> std::io::Result<()> {
        self.lock().await.write_safety(frames).await
    }
}

/// The line, held: what is written through it goes out unbroken.
#[derive(Debug)]
pub struct LineGuard<'a> {
    file: MutexGuard<'a, File>,
    line: &'a Line,
}

impl LineGuard<'_> {
    /// Writes `bytes` whole, waiting for room at most the line's stall in all, without
    /// blocking the runtime.
    ///
    /// # Errors
    /// The connection's error (closed, reset), or `TimedOut` when the device took nothing
    /// for the line's stall; after either, the same error at once, writing nothing.
    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.refuse_if_failed()?;
        let deadline = tokio::time::Instant::now() + self.line.stall;
        let mut rest = bytes;
        let result = loop {
            match self.write_some(&mut rest) {
                Ok(true) => break Ok(()),
                // A ready descriptor would win over the timeout: the deadline is checked
                // first, so a device that trickles cannot keep a write going past it.
                Ok(false) if tokio::time::Instant::now() >= deadline => {
                    break Err(stalled(self.line.stall))
                }
                Ok(false) => {
                    self.line.waiting.store(true, Ordering::Relaxed);
                    match tokio::time::timeout_at(deadline, self.line.room.writable()).await {
                        // Cleared before the next try: an edge after it sets it again.
                        Ok(Ok(mut ready)) => ready.clear_ready(),
                        Ok(Err(e)) => break Err(e),
                        Err(_) => break Err(stalled(self.line.stall)),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.remember(result)
    }

    /// As [`LineGuard::write_all`], blocking the calling thread in `poll(2)` while it
    /// waits: for the waker thread.
    ///
    /// # Errors
    /// As [`LineGuard::write_all`].
    pub fn write_all_blocking(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.refuse_if_failed()?;
        let deadline = Instant::now() + self.line.stall;
        let mut rest = bytes;
        let result = loop {
            match self.write_some(&mut rest) {
                Ok(true) => break Ok(()),
                Ok(false) => {
                    self.line.waiting.store(true, Ordering::Relaxed);
                    if let Err(e) = self.wait_for_room(deadline) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.remember(result)
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
    pub async fn write_safety(&mut self, frames: &[u8]) -> std::io::Result<()> {
        let Some(failed) = self.line.failed.get() else {
            return self.write_all(frames).await;
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

    fn refuse_if_failed(&self) -> std::io::Result<()> {
        match self.line.failed.get() {
            Some(failed) => Err(earlier(failed, "")),
            None => Ok(()),
        }
    }

    /// Keeps the first error as the line's answer to every later write.
    /// A stalled line's unsent bytes are discarded: on a serial port the last close would
    /// otherwise wait for them (the tty's `closing_wait`, 30 s by default) wherever it
    /// happens, the event loop included. (On a socket `tcflush` fails, harmlessly.)
    fn remember(&self, result: std::io::Result<()>) -> std::io::Result<()> {
        self.line.waiting.store(false, Ordering::Relaxed);
        if let Err(e) = &result {
            let _ = self.line.failed.set((e.kind(), e.to_string()));
            if e.kind() == ErrorKind::TimedOut {
                // SAFETY: tcflush on an open descriptor; it only discards queued output.
                unsafe { libc::tcflush(self.file.as_raw_fd(), libc::TCOFLUSH) };
            }
        }
        result
    }

    /// Writes what the descriptor takes of `rest` now, advancing it: `Ok(true)` when all
    /// of it went, `Ok(false)` when the buffer is full.
    fn write_some(&mut self, rest: &mut &[u8]) -> std::io::Result<bool> {
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => *rest = rest.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Waits in `poll(2)` until the descriptor takes more, or `deadline`.
    fn wait_for_room(&self, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(stalled(self.line.stall));
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

/// The error of a device that took nothing for `stall`.
fn stalled(stall: Duration) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::TimedOut,
        format!(
            "the device took nothing for {} ms: it is not reading",
            stall.as_millis()
        ),
    )
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
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    /// A line on one end of a socket pair, and the other end (the device). On a runtime.
    fn line_and_device() -> (Arc<Line>, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Arc::new(Line::of(&ours, WRITE_STALL).unwrap()), theirs)
    }

    /// Fills the device's buffer without failing the line: the next write finds no room.
    fn fill(line: &Line) {
        let chunk = [0x5Au8; 1024];
        let mut guard = LineGuard {
            file: line.file.try_lock().unwrap(),
            line,
        };
        while guard.write_some(&mut &chunk[..]).unwrap() {}
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

    /// Counts the ticks of a 1 ms timer on this runtime until `done` is set: what the
    /// event loop's other tasks get done meanwhile.
    fn ticker(done: Arc<AtomicBool>) -> (Arc<AtomicU32>, tokio::task::JoinHandle<()>) {
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&ticks);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            while !done.load(Ordering::Acquire) {
                every.tick().await;
                if !done.load(Ordering::Acquire) {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        (ticks, task)
    }

    #[tokio::test]
    async fn writes_go_out_whole_and_a_device_that_stops_reading_fails_the_line() {
        let (line, mut device) = line_and_device();
        line.write_all(b"frame\0").await.unwrap();
        let mut got = [0u8; 6];
        device.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"frame\0");

        // Nobody reads: the buffer fills, and the write gives up after WRITE_STALL.
        fill(&line);
        let started = Instant::now();
        let err = line.write_all(b"write\0").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= WRITE_STALL);
        assert!(err.to_string().contains("not reading"), "{err}");

        // Failed, it stays failed: the next write, the buffer still full, is refused
        // without trying (so without waiting out another stall); nor, once the device
        // reads again, does a write go out.
        let err = line.write_all(b"heartbeat\0").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("failed earlier"), "{err}");
        let before = drain(&mut device);
        assert!(line.write_all(b"heartbeat\0").await.is_err());
        assert!(drain(&mut device).is_empty(), "a failed line wrote again");
        assert!(!before.ends_with(b"heartbeat\0"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_write_leaves_the_event_loop_running() {
        let (line, _device) = line_and_device();
        fill(&line);
        let done = Arc::new(AtomicBool::new(false));
        let (ticks, task) = ticker(Arc::clone(&done));
        let err = line.write_all(b"heartbeat\0").await.unwrap_err();
        done.store(true, Ordering::Release);
        task.await.unwrap();
        assert!(err.to_string().contains("not reading"), "{err}");
        // Blocking in poll(2), as the loop's writes did, the timer would not tick at all.
        let ticked = ticks.load(Ordering::Relaxed);
        assert!(ticked > 0, "the loop stood still through the stall");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_session_waiting_behind_a_stalled_waker_neither_blocks_the_loop_nor_stalls_again() {
        let (line, _device) = line_and_device();
        fill(&line);
        // The waker thread stalls on the full line, holding its lock.
        let waker = {
            let line = Arc::clone(&line);
            std::thread::spawn(move || line.lock_blocking().write_all_blocking(b"forward\0"))
        };
        // Until the waker holds the lock (or, were this thread held up past its stall, has
        // failed the line already).
        let mut held = false;
        while !held && line.failed.get().is_none() {
            held = line.file.try_lock().is_err();
            std::thread::yield_now();
        }
        let done = Arc::new(AtomicBool::new(false));
        let (ticks, task) = ticker(Arc::clone(&done));
        let behind = line.write_all(b"heartbeat\0").await.unwrap_err();
        done.store(true, Ordering::Release);
        task.await.unwrap();
        let stalled = waker.join().unwrap().unwrap_err();
        assert!(stalled.to_string().contains("not reading"), "{stalled}");
        assert!(
            behind.to_string().contains("failed earlier"),
            "{behind}: waited out a stall of its own"
        );
        assert!(
            !held || ticks.load(Ordering::Relaxed) > 0,
            "the loop stood still behind the waker"
        );
    }

    #[tokio::test]
    async fn safe_frames_are_still_tried_on_a_failed_line_after_a_delimiter_and_never_wait() {
        let (line, mut device) = line_and_device();
        // On a line that works, safe frames are ordinary writes: no delimiter first, and
        // a stall fails the line for everything else.
        line.write_safety(b"disable\0").await.unwrap();
        assert_eq!(drain(&mut device), b"disable\0");
        fill(&line);
        let err = line.write_safety(b"disable\0").await.unwrap_err();
        assert!(err.to_string().contains("not reading"), "{err}");
        let err = line.write_all(b"write\0").await.unwrap_err();
        assert!(err.to_string().contains("failed earlier"), "{err}");
        // Still full: the safe frames cannot go out, and the one try that says so does
        // not wait for room.
        let err = line.write_safety(b"disable\0").await.unwrap_err();
        assert!(err.to_string().contains("did not go out"), "{err}");
        assert!(err.to_string().contains("failed earlier"), "{err}");
        // The device reads again: they go out, after a delimiter that ends the frame the
        // stall cut short, where an ordinary write still does not.
        drain(&mut device);
        line.write_safety(b"disable\0").await.unwrap();
        assert!(line.write_all(b"write\0").await.is_err());
        assert_eq!(drain(&mut device), b"\0disable\0");
    }
}

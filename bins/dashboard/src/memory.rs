//! Giving the memory of closed pages back to the system.
//!
//! A page holds a few buffers while it is open (its WebSocket's, its frames in flight).
//! When it closes they are freed, but glibc's malloc keeps freed memory that is not at the
//! top of its heap. Measured on the real binary (debug build), 500 pages: before the
//! per-page fixes (`server.rs`: the first frame no longer holds a copy of the device types,
//! the WebSocket buffers are 4 KiB instead of 128) they took the dashboard from 16 to
//! 131 MB and left 68 MB behind, all of it free memory; now they take it to 26 MB, which
//! stays after they close unless malloc is asked to give back its free pages, and then
//! comes back to 21 MB. So after pages close the dashboard asks, at most once per
//! [`TRIM_DELAY`] whatever the number of pages that closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after a page closed the memory is trimmed: the pages of a burst of closes (a
/// laptop whose network dropped, a test) are all given back by one trim, and a trim costs
/// a few milliseconds of one blocking thread (2 to 3.5 ms measured after 500 pages, release
/// build) at most once per this delay.
pub const TRIM_DELAY: Duration = Duration::from_secs(1);

static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Notes that a page closed: its memory is given back within [`TRIM_DELAY`]. Needs a
/// tokio runtime.
pub fn page_closed() {
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DELAY).await;
        SCHEDULED.store(false, Ordering::Release);
        // Off the runtime's thread: a trim walks the heap.
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

/// Returns malloc's free memory to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim(3) takes the allocator's own locks and only releases memory that
    // is free; no pointer of ours is involved.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        released = released == 1,
        took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "memory of closed pages trimmed"
    );
}

/// Without glibc there is no `malloc_trim`: nothing to ask.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

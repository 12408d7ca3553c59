//! Giving the memory of closed pages back to the system.
//!
//! A page holds a few buffers while it is open (its WebSocket's, its snapshot, its
//! frames in flight). When it closes they are freed, but glibc's malloc keeps freed memory
//! that is not at the top of its heap: measured on the real binary, 500 pages took the
//! dashboard from 16 MB to 131 MB, and closing them all left it at 68 MB (130 MB after a
//! second round), every byte of it free (`malloc_trim` brought it back to 30 MB). So after
//! pages close the dashboard asks malloc to return its free pages, at most once per
//! [`TRIM_DELAY`] whatever the number of pages that closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after a page closed the memory is trimmed: the pages of a burst of closes (a
/// laptop whose network dropped, a test) are all given back by one trim, and a trim costs
/// a few milliseconds of one blocking thread at most once per this delay.
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
        took_us = started.elapsed().as_micros(),
        "memory of closed pages trimmed"
    );
}

/// Without glibc there is no `malloc_trim`: nothing to ask.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

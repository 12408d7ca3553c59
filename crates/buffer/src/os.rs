//! Thin, safe wrappers over the few Linux calls the buffers need: the monotonic clock,
//! process liveness, and process-shared futex wait/wake.
//!
//! Kept in one place so that every `unsafe` libc call has its SAFETY argument next to it and
//! the rest of the crate deals in plain Rust types.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC`, which is system-wide, so timestamps written by one
/// process can be compared by another.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Both fields are non-negative for the monotonic clock.
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: the same timebase at tick resolution (1–4 ms),
/// read without the TSC (~5 ns instead of ~45 ns in this VM). Used for the last-write and
/// last-update timestamps, which only feed "age" displays and staleness checks.
pub(crate) fn coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the coarse clock exists since Linux 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// This process's id as stored in lock words and headers.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Whether `pid` is a running (non-zombie) process.
///
/// `kill(pid, 0)` says whether the pid exists; a zombie (killed but not yet reaped by its
/// parent) still exists but will never release a lock, so `/proc/<pid>/stat` is checked too.
/// Pid reuse can make a dead holder look alive; that only delays recovery until the reused
/// process exits, and never lets two writers in at once.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(ipid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if ipid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(ipid, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => true,
    }
}

/// Blocks while `*word == expected`, for at most `timeout`, woken by [`futex_wake`] from any
/// process mapping the same memory. Spurious returns are possible; callers re-check.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; FUTEX_WAIT
    // without FUTEX_PRIVATE_FLAG keys on the physical page, so it works across processes
    // that map the same shared-memory object. The result (woken, timed out, EAGAIN, EINTR)
    // needs no handling because the caller loops on the condition.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter blocked in [`futex_wait`] on `word`, in any process.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness() {
        assert!(pid_alive(current_pid()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}

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

/// A process watched for its exit through a pidfd (Linux 5.3+): one `poll(2)` with no
/// timeout says whether it still runs, where [`pid_alive`] opens, formats and parses
/// `/proc/<pid>/stat`, tens of microseconds on a loaded VM. A consumer asks whether its
/// buffer's owner is alive on every read, so this is on the control path. The pidfd names
/// that one process, so a reused pid never looks like it, and it turns readable when the
/// process terminates (a zombie counts as gone, as in [`pid_alive`]).
#[derive(Debug)]
pub(crate) struct PidWatch {
    pid: u32,
    /// `None` where pidfds are not available: then every check is [`pid_alive`].
    fd: Option<std::os::fd::OwnedFd>,
}

impl PidWatch {
    /// Watches `pid`; a pid that is already gone is reported gone by [`PidWatch::alive`].
    pub(crate) fn new(pid: u32) -> PidWatch {
        PidWatch {
            pid,
            fd: pidfd_open(pid),
        }
    }

    /// The pid watched.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&self) -> bool {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.fd else {
            return pid_alive(self.pid);
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        match rc {
            0 => true,
            n if n > 0 => pfd.revents & libc::POLLIN == 0,
            // EINTR or EINVAL: ask the slow way.
            _ => pid_alive(self.pid),
        }
    }
}

/// A pidfd of `pid`, or `None` when the kernel has none to give (too old, or the process
/// is already gone: [`PidWatch::alive`] then falls back to `/proc`, which says so).
fn pidfd_open(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let ipid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no
    // memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, ipid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
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
    fn a_watched_process_is_alive_until_it_exits_zombie_or_not() {
        assert!(PidWatch::new(current_pid()).alive());
        assert!(!PidWatch::new(0).alive());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = PidWatch::new(child.id());
        assert!(watch.fd.is_some(), "pidfds exist on this kernel");
        assert!(watch.alive());
        child.kill().unwrap();
        // Killed but not reaped yet: a zombie, gone for a lock holder's purposes.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while watch.alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "the exit was never seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!pid_alive(child.id()), "the slow check agrees");
        child.wait().unwrap();
        assert!(!watch.alive(), "and stays gone once reaped");
    }

    #[test]
    fn clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}

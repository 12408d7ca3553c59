//! Real-time scheduling for the threads on the control path (the gamepad receiver, a
//! controller): under SCHED_FIFO a busy board (a compiler, user code, a log burst) cannot
//! delay a control datagram or a watchdog trip by a scheduling quantum.

/// Puts the calling thread in the SCHED_FIFO class at `priority` (1 to 99). Best effort by
/// design: without CAP_SYS_NICE (or an RLIMIT_RTPRIO allowance) the thread stays a normal
/// one and the failure is logged as a warning naming `thread`, since a robot that drives
/// with some jitter beats one that refuses to start.
pub fn raise_priority(thread: &str, priority: u8) -> bool {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pthread_self() is the calling thread; `param` is a valid, initialised struct
    // that outlives the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        tracing::info!(
            thread,
            priority,
            "running at real-time priority (SCHED_FIFO)"
        );
        true
    } else {
        let e = std::io::Error::from_raw_os_error(rc);
        tracing::warn!(thread, priority, error = %e,
            "cannot raise the thread to real-time priority (needs CAP_SYS_NICE); running as a normal thread");
        false
    }
}

/// Puts the calling thread back in the normal class (SCHED_OTHER), for a thread that a
/// real-time one starts but that must never compete with it (a recording tap). Threads
/// inherit their creator's policy; this undoes that. A failure is logged and harmless.
pub fn normal_priority(thread: &str) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in `raise_priority`.
    let rc =
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_OTHER, &param) };
    if rc != 0 {
        let e = std::io::Error::from_raw_os_error(rc);
        tracing::warn!(thread, error = %e, "cannot return the thread to normal priority");
    }
}

/// The calling thread's scheduling policy (`libc::SCHED_FIFO`, `libc::SCHED_OTHER`...).
pub fn policy() -> i32 {
    let mut policy = 0;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both out-pointers are valid for the call.
    let rc = unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
    if rc == 0 {
        policy
    } else {
        libc::SCHED_OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_priority_is_refused_and_the_thread_goes_on() {
        // 0 is not a SCHED_FIFO priority: refused whatever the privileges.
        let ok = std::thread::spawn(|| raise_priority("test", 0))
            .join()
            .unwrap();
        assert!(!ok);
    }

    #[test]
    fn a_thread_started_by_a_real_time_one_can_return_to_normal() {
        let seen = std::thread::spawn(|| {
            if !raise_priority("test", 1) {
                return None;
            }
            std::thread::spawn(|| {
                let inherited = policy();
                normal_priority("test-child");
                (inherited, policy())
            })
            .join()
            .ok()
        })
        .join()
        .unwrap();
        let Some(seen) = seen else {
            eprintln!("skipped: this process may not use SCHED_FIFO (CAP_SYS_NICE)");
            return;
        };
        assert_eq!(seen, (libc::SCHED_FIFO, libc::SCHED_OTHER));
    }
}

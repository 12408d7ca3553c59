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
}

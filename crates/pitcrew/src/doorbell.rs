//! A doorbell for a thread that works in batches on a timer and sleeps when there is
//! nothing to do: the log publisher (`logging::publisher`) and the event tap ([`crate::tap`]).
//!
//! Producers on a busy path must not make a system call per item, so the thread is not
//! woken per item: it looks every few milliseconds. But a thread that looks every few
//! milliseconds forever wakes hundreds of times a second on an idle robot. So the thread
//! says when it goes to sleep ([`Doorbell::fall_asleep`]), and only then does a producer
//! ring ([`Doorbell::ring_if_asleep`]): one write to a socketpair, once per quiet spell.
//! While items flow, a producer pays one fence and one atomic load. The thread polls
//! [`Doorbell::fd`] beside its socket.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// See the module doc.
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// The thread sleeps until rung.
    asleep: AtomicBool,
    /// Producers write here; non-blocking, so a full socketpair (a thread already being
    /// woken) never holds a producer.
    bell: UnixStream,
    /// The thread polls this end.
    wakee: UnixStream,
}

impl Doorbell {
    /// A doorbell whose thread is awake.
    ///
    /// # Errors
    /// When the socketpair cannot be created.
    pub(crate) fn new() -> std::io::Result<Self> {
        let (bell, wakee) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        wakee.set_nonblocking(true)?;
        Ok(Self {
            asleep: AtomicBool::new(false),
            bell,
            wakee,
        })
    }

    /// Wakes the thread whether it sleeps or not (a close, a queue filling up).
    pub(crate) fn ring(&self) {
        let _ = (&self.bell).write(&[1]);
    }

    /// Called by a producer after it queued an item: wakes the thread if it sleeps.
    pub(crate) fn ring_if_asleep(&self) {
        // Pairs with the fence in `fall_asleep`: either the thread sees the item, or this
        // load sees that it sleeps.
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            self.ring();
        }
    }

    /// Called by the thread before a long wait: marks it asleep unless `pending` finds that
    /// an item came meanwhile. Returns whether the thread may sleep.
    pub(crate) fn fall_asleep(&self, pending: impl FnOnce() -> bool) -> bool {
        self.asleep.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if pending() {
            self.asleep.store(false, Ordering::Relaxed);
            false
        } else {
            true
        }
    }

    /// Called by the thread after its wait: it is awake, and the bell is drained.
    pub(crate) fn woken(&self) {
        self.asleep.store(false, Ordering::Relaxed);
        let mut sink = [0u8; 64];
        while matches!((&self.wakee).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Whether the thread said it sleeps (for tests of the threads that use a doorbell).
    #[cfg(test)]
    pub(crate) fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::Relaxed)
    }

    /// What the thread polls.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.wakee.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(doorbell: &Doorbell) -> bool {
        let mut fds = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&doorbell.fd()),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd on our stack, no timeout.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) == 1 }
    }

    #[test]
    fn a_producer_rings_only_a_sleeping_thread_and_only_once() {
        let doorbell = Doorbell::new().unwrap();
        doorbell.ring_if_asleep();
        assert!(!readable(&doorbell), "an awake thread is not rung");
        assert!(doorbell.fall_asleep(|| false));
        doorbell.ring_if_asleep();
        doorbell.ring_if_asleep();
        assert!(readable(&doorbell), "a sleeping thread is rung");
        doorbell.woken();
        assert!(!readable(&doorbell), "drained");
        doorbell.ring_if_asleep();
        assert!(!readable(&doorbell), "the second producer found it awake");
    }

    #[test]
    fn an_item_that_came_first_keeps_the_thread_awake() {
        let doorbell = Doorbell::new().unwrap();
        assert!(!doorbell.fall_asleep(|| true));
        doorbell.ring_if_asleep();
        assert!(!readable(&doorbell));
    }
}

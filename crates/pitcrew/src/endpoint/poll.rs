//! Waiting for the router's sockets without `zmq_poll`.
//!
//! `zmq_poll` costs, per call, a `poll(2)` over every socket and then, per socket, a
//! `ZMQ_EVENTS` query that itself runs `getpid(2)` and a `poll(2)` on the socket's mailbox:
//! about nine system calls for the router's four sockets, paid on every turn of its loop,
//! including every turn of the spin that keeps it awake between a request and its answer.
//! [`Poller`] instead waits with one `poll(2)` on the sockets' `ZMQ_FD`s (libzmq's mailbox
//! descriptors) and leaves the rest to the caller, who must follow libzmq's rule for those
//! descriptors: one is readable when commands wait for the socket, which is not the same as
//! "a message waits". A socket is known to be idle only after a non-blocking receive on it
//! said `EAGAIN` (which also processes and clears its mailbox) and nothing was sent on it
//! since (a send may process the mailbox too, taking the signal with it). Until then the
//! caller must try it again without sleeping; see the router's loop.

use std::os::fd::RawFd;

use super::router::{Monitor, RouterSocket};
use super::EndpointError;

/// The mailbox descriptors of a fixed set of sockets and monitors, waited on together.
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    /// Collects the descriptors of `sockets`, then `monitors`, in that order; readiness is
    /// reported in the same order. The descriptors live as long as their sockets, so the
    /// poller must not outlive them (the router builds it once and keeps both together).
    ///
    /// # Errors
    /// When libzmq cannot report a socket's descriptor.
    pub fn new(sockets: &[&RouterSocket], monitors: &[&Monitor]) -> Result<Self, EndpointError> {
        let fds = sockets
            .iter()
            .map(|s| s.signal_fd())
            .chain(monitors.iter().map(|m| m.signal_fd()))
            .map(|fd| {
                fd.map(|fd: RawFd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { fds })
    }

    /// How many descriptors are polled (sockets plus monitors).
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether there is nothing to poll.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Blocks up to `timeout_ms` (0: not at all) until one descriptor is readable, and
    /// writes which ones are into `ready` (as long as [`Poller::len`]). A readable one
    /// means "try that socket", not "a message waits"; an interrupted wait reports none.
    ///
    /// # Errors
    /// When `poll(2)` fails for a reason other than an interruption.
    pub fn wait(&mut self, timeout_ms: i32, ready: &mut [bool]) -> Result<(), EndpointError> {
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        let n = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a live, exclusively borrowed array of `n` pollfd structs; poll
        // writes only their `revents` fields.
        let rc = unsafe { libc::poll(self.fds.as_mut_ptr(), n, timeout_ms) };
        if rc < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(EndpointError::Io("poll the router sockets", error));
            }
        }
        for (slot, fd) in ready.iter_mut().zip(&self.fds) {
            // POLLERR/POLLHUP on an eventfd would be libzmq's bug; trying the socket is
            // harmless and shows the real error, if any.
            *slot = rc > 0 && fd.revents != 0;
        }
        Ok(())
    }
}

//! A libzmq socket driven from tokio: the small adapter that replaces `tmq`/`async_zmq`.
//!
//! libzmq exposes one file descriptor per socket (`ZMQ_FD`). It is edge-triggered and means
//! only "something changed, ask `ZMQ_EVENTS`": reading `ZMQ_EVENTS` (and every send or
//! receive) may consume the signal. So the rule, followed by [`AsyncSocket::wait`], is:
//! always try the non-blocking operation first, and clear tokio's readiness only after
//! `ZMQ_EVENTS` said the wanted event is absent. tokio's readiness ticks make that clear
//! race-free: a signal that arrives after the check re-arms the wait.
//!
//! One task owns each socket (a `zmq::Socket` is `Send` but not `Sync`); see
//! [`super::driver`] for the loop that moves frames between it and channels.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::EndpointError;

/// Frames of one ZeroMQ message.
pub type Frames = Vec<Vec<u8>>;

struct ZmqFd(RawFd);

impl AsRawFd for ZmqFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A ZeroMQ socket registered with the tokio reactor.
pub(crate) struct AsyncSocket {
    // Declared first so it is dropped (deregistered) before the socket closes its fd.
    fd: AsyncFd<ZmqFd>,
    socket: zmq::Socket,
}

/// Which events [`AsyncSocket::wait`] waits for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    /// A message can be received.
    Recv,
    /// A message can be received or sent.
    RecvOrSend,
}

impl AsyncSocket {
    /// Registers `socket` with the current tokio runtime.
    ///
    /// # Errors
    /// When the socket's fd cannot be read or registered (no runtime, fd limit).
    pub(crate) fn new(socket: zmq::Socket) -> Result<Self, EndpointError> {
        let raw = socket.get_fd().map_err(EndpointError::zmq("read ZMQ_FD"))?;
        // SAFETY: `raw` is libzmq's signalling fd of `socket`, open for as long as the
        // socket is; the socket lives in the same struct and is dropped after `fd` (field
        // order), so the fd stays valid and unchanged for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(ZmqFd(raw), Interest::READABLE) }
            .map_err(|e| EndpointError::Io("register socket with the reactor", e.into()))?;
        Ok(Self { fd, socket })
    }

    /// Receives one whole message if one is waiting.
    pub(crate) fn try_recv(&self) -> Result<Option<Frames>, zmq::Error> {
        match self.socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => Ok(Some(frames)),
            Err(zmq::Error::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one whole message if the socket can take it now; `Ok(false)` means the
    /// high-water mark is reached (or there is no peer yet) and nothing was sent.
    pub(crate) fn try_send(&self, frames: &[Vec<u8>]) -> Result<bool, zmq::Error> {
        match self.socket.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until `want` is possible. Spurious returns are allowed; callers retry the
    /// non-blocking operation afterwards.
    ///
    /// Takes `&mut self` so that the future stays `Send`: a `zmq::Socket` is not `Sync`.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses nothing.
    pub(crate) async fn wait(&mut self, want: Want) -> io::Result<()> {
        let mask = match want {
            Want::Recv => zmq::POLLIN,
            Want::RecvOrSend => zmq::POLLIN | zmq::POLLOUT,
        };
        loop {
            // Check before sleeping: a send or receive may already have consumed the edge.
            if self.events()?.intersects(mask) {
                return Ok(());
            }
            let mut guard = self.fd.readable().await?;
            if self.events()?.intersects(mask) {
                return Ok(());
            }
            guard.clear_ready();
        }
    }

    fn events(&self) -> io::Result<zmq::PollEvents> {
        self.socket
            .get_events()
            .map_err(|e| io::Error::other(format!("ZMQ_EVENTS: {e}")))
    }
}

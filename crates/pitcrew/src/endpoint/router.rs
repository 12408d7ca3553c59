//! ROUTER sockets for a plain (non-async) poll loop, as the router binary runs them.
//!
//! The router must never block on one peer: sends are non-blocking and use
//! `ROUTER_MANDATORY`, so libzmq reports an unknown identity (`EHOSTUNREACH`) or a full
//! pipe (`EAGAIN`) instead of silently dropping or blocking. A monitor reports connections
//! and disconnections with the connection's file descriptor, and every received message
//! carries the descriptor of the connection it came from, which is how the router maps
//! a disconnect to an identity without libzmq's draft `ROUTER_NOTIFY`.

use std::os::fd::RawFd;

use super::curve::{self, Mechanism};
use super::{apply_common_options, bind_all, context, monitor_socket, EndpointError, IpcFiles};
use crate::key::KeyKind;

/// What happened to one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Handed to libzmq.
    Sent,
    /// No peer with that identity is connected.
    Unreachable,
    /// The peer's pipe is full: it is not reading fast enough.
    Busy,
    /// Any other failure (context terminated, ...), with libzmq's words.
    Failed(String),
}

/// One frame of a message, owned without copying: forwarding it hands libzmq's buffer on.
pub struct Frame(pub(super) zmq::Message);

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Self {
        Frame(zmq::Message::from(bytes))
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}

/// A message received on a [`RouterSocket`].
#[derive(Debug)]
pub struct RouterMessage {
    /// All frames; the first is the sender's identity.
    pub frames: Vec<Frame>,
    /// The file descriptor of the sender's connection, when libzmq reported one.
    pub peer_fd: Option<i32>,
    /// Whose key the sender's connection was admitted with (CURVE sockets only).
    pub user: Option<KeyKind>,
}

/// Where a message received by [`RouterSocket::try_recv_into`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The file descriptor of the sender's connection, when libzmq reported one.
    pub peer_fd: Option<i32>,
    /// Whose key the sender's connection was admitted with (CURVE sockets only).
    pub user: Option<KeyKind>,
    /// How many frames the message had, identity included; only the first
    /// [`MAX_FRAMES_KEPT`] are kept.
    pub frames: usize,
}

/// Frames [`RouterSocket::try_recv_into`] keeps of one message: the router's messages have
/// three, and a peer sending thousands of empty frames must not make the receive vector
/// grow with them (the rest are received and dropped, and counted in [`Arrival::frames`]).
pub const MAX_FRAMES_KEPT: usize = 8;

/// A bound ROUTER socket.
pub struct RouterSocket {
    socket: zmq::Socket,
    mechanism: Mechanism,
    /// After the socket: removed once it is closed.
    _files: IpcFiles,
}

impl RouterSocket {
    /// Creates a ROUTER with `ROUTER_MANDATORY`, without `ROUTER_HANDOVER`, with heartbeats, and binds
    /// every address in `addresses`.
    ///
    /// # Errors
    /// When an address cannot be bound (in use, bad syntax, missing directory).
    pub fn bind(addresses: &[String]) -> Result<Self, EndpointError> {
        RouterSocket::bind_as(addresses, Mechanism::Plain)
    }

    /// As [`RouterSocket::bind`], as a CURVE server when `mechanism` says so (the addresses
    /// come from [`curve::partition_binds`]).
    ///
    /// # Errors
    /// As [`RouterSocket::bind`], and when no team key is configured for a CURVE server.
    pub fn bind_as(addresses: &[String], mechanism: Mechanism) -> Result<Self, EndpointError> {
        let socket = context()
            .socket(zmq::ROUTER)
            .map_err(EndpointError::zmq("create a ROUTER socket"))?;
        apply_common_options(&socket)?;
        socket
            .set_router_mandatory(true)
            .map_err(EndpointError::zmq("set ZMQ_ROUTER_MANDATORY"))?;
        // No handover: a second peer with a live peer's identity (a second device broker
        // pointed at this router) is ignored by libzmq rather than taking the identity and
        // its traffic over; the first one keeps serving, and the second one finds out
        // (`rpc::registration`) and stops. A peer that died is gone within the heartbeat
        // timeout (at once over ipc), after which its successor gets the identity.
        socket
            .set_router_handover(false)
            .map_err(EndpointError::zmq("set ZMQ_ROUTER_HANDOVER"))?;
        curve::make_server(&socket, mechanism)?;
        let files = bind_all(&socket, addresses)?;
        Ok(Self {
            socket,
            mechanism,
            _files: files,
        })
    }

    /// Receives one whole message if one is waiting.
    ///
    /// # Errors
    /// Only for failures other than "nothing waiting".
    pub fn try_recv(&self) -> Result<Option<RouterMessage>, EndpointError> {
        let mut frames = Vec::with_capacity(3);
        Ok(self
            .try_recv_into(&mut frames)?
            .map(|arrival| RouterMessage {
                frames,
                peer_fd: arrival.peer_fd,
                user: arrival.user,
            }))
    }

    /// As [`RouterSocket::try_recv`], into `frames` (cleared first), so that a loop
    /// receiving many messages reuses one vector instead of allocating one per message.
    /// On `Ok(None)` and on error `frames` is left empty.
    ///
    /// # Errors
    /// Only for failures other than "nothing waiting".
    pub fn try_recv_into(&self, frames: &mut Vec<Frame>) -> Result<Option<Arrival>, EndpointError> {
        frames.clear();
        let mut arrival = Arrival {
            peer_fd: None,
            user: None,
            frames: 0,
        };
        loop {
            let flags = if arrival.frames == 0 {
                zmq::DONTWAIT
            } else {
                0
            };
            let mut msg = match self.socket.recv_msg(flags) {
                Ok(msg) => msg,
                Err(zmq::Error::EAGAIN) if arrival.frames == 0 => return Ok(None),
                Err(e) => {
                    frames.clear();
                    return Err(EndpointError::Socket {
                        what: "receive on a ROUTER",
                        reason: e.to_string(),
                    });
                }
            };
            // The identity frame is made by the ROUTER itself; the frames after it come
            // from the connection and carry its metadata, including the descriptor.
            if arrival.frames == 1 {
                arrival.peer_fd = msg.gets("__fd").and_then(|s| s.parse().ok());
                if self.mechanism != Mechanism::Plain {
                    arrival.user = curve::user_of(&mut msg);
                }
            }
            let more = msg.get_more();
            arrival.frames += 1;
            if frames.len() < MAX_FRAMES_KEPT {
                frames.push(Frame(msg));
            }
            if !more {
                return Ok(Some(arrival));
            }
        }
    }

    /// libzmq's mailbox descriptor of this socket, for [`super::Poller`]: readable when
    /// the socket has commands to process, which may or may not mean a message waits.
    pub(crate) fn signal_fd(&self) -> Result<RawFd, EndpointError> {
        self.socket
            .get_fd()
            .map_err(EndpointError::zmq("read ZMQ_FD of a ROUTER"))
    }

    /// Sends `head` (identity first; copied, which for short identities costs no
    /// allocation) followed by `body` (moved, not copied), without blocking.
    pub fn send(&self, head: &[&[u8]], body: Frame) -> SendOutcome {
        for part in head {
            match self.socket.send(*part, zmq::DONTWAIT | zmq::SNDMORE) {
                Ok(()) => {}
                // Only the identity frame can fail this way; nothing was sent yet.
                Err(zmq::Error::EHOSTUNREACH) => return SendOutcome::Unreachable,
                Err(zmq::Error::EAGAIN) => return SendOutcome::Busy,
                Err(e) => return SendOutcome::Failed(e.to_string()),
            }
        }
        match self.socket.send(body.0, zmq::DONTWAIT) {
            Ok(()) => SendOutcome::Sent,
            Err(zmq::Error::EHOSTUNREACH) => SendOutcome::Unreachable,
            Err(zmq::Error::EAGAIN) => SendOutcome::Busy,
            Err(e) => SendOutcome::Failed(e.to_string()),
        }
    }

    /// Starts reporting connections and disconnections of this socket's peers.
    ///
    /// # Errors
    /// When libzmq cannot set up the monitor.
    pub fn monitor(&self) -> Result<Monitor, EndpointError> {
        let events = zmq::SocketEvent::ACCEPTED as i32 | zmq::SocketEvent::DISCONNECTED as i32;
        Ok(Monitor {
            socket: monitor_socket(&self.socket, events)?,
        })
    }
}

/// A connection event reported by a [`Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer connected on this descriptor.
    Accepted(i32),
    /// The connection on this descriptor closed (peer exit, crash, heartbeat timeout).
    Disconnected(i32),
}

/// What one receive on a monitor gave.
enum Next {
    Event(PeerEvent),
    /// A message that is not an event of interest.
    Other,
    /// Nothing was waiting.
    Nothing,
}

/// Connection events of one [`RouterSocket`].
pub struct Monitor {
    socket: zmq::Socket,
}

impl Monitor {
    /// libzmq's mailbox descriptor of the monitor socket, for [`super::Poller`].
    pub(crate) fn signal_fd(&self) -> Result<RawFd, EndpointError> {
        self.socket
            .get_fd()
            .map_err(EndpointError::zmq("read ZMQ_FD of a monitor"))
    }

    /// Returns the next event if one is waiting (an event of another kind, or one libzmq
    /// garbled, is skipped).
    pub fn try_recv(&self) -> Option<PeerEvent> {
        loop {
            match self.next() {
                Next::Event(event) => return Some(event),
                Next::Other => continue,
                Next::Nothing => return None,
            }
        }
    }

    /// Appends up to `max` waiting events to `events`; returns whether more may wait.
    ///
    /// Unlike [`Monitor::try_recv`] until `None`, this reads until libzmq says nothing is
    /// waiting, which is what [`super::Poller`] needs before it may sleep on this monitor.
    pub fn drain_into(&self, events: &mut Vec<PeerEvent>, max: usize) -> bool {
        for _ in 0..max {
            match self.next() {
                Next::Event(event) => events.push(event),
                Next::Other => {}
                Next::Nothing => return false,
            }
        }
        true
    }

    fn next(&self) -> Next {
        let frames = match self.socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            // EAGAIN, or the context is going away: either way nothing more comes.
            Err(_) => return Next::Nothing,
        };
        // Frame 1: u16 event id then u32 value (native endian), frame 2: the endpoint.
        let Some((id, value)) = frames.first().and_then(|head| {
            let id = u16::from_ne_bytes(head.get(0..2)?.try_into().ok()?);
            let value = i32::from_ne_bytes(head.get(2..6)?.try_into().ok()?);
            Some((id, value))
        }) else {
            return Next::Other;
        };
        if id == zmq::SocketEvent::ACCEPTED as u16 {
            Next::Event(PeerEvent::Accepted(value))
        } else if id == zmq::SocketEvent::DISCONNECTED as u16 {
            Next::Event(PeerEvent::Disconnected(value))
        } else {
            Next::Other
        }
    }
}

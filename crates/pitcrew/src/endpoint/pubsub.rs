//! PUB/SUB endpoints: the sockets of the log pipeline (spec/wire.md, "Logs").
//!
//! * [`Publisher`]: what every process publishes its log records with. It is an XPUB (a PUB
//!   that also reads subscriptions) with `ZMQ_IMMEDIATE` and `ZMQ_XPUB_NODROP`, so that,
//!   unlike a plain PUB, it *tells* its owner what happens to a message: the forwarder's
//!   subscription arriving and leaving says whether anyone is listening, and a full pipe is
//!   reported as "not sent" (`Ok(false)`) instead of being dropped silently. The owner keeps
//!   its own bounded queue and counts what it drops. Blocking API, for a dedicated thread.
//! * [`SubSocket`] and [`PubSocket`]: the log forwarder's bound sockets, for a plain poll
//!   loop. A [`PubSocket`] never blocks: libzmq drops a message for a subscriber whose pipe
//!   is full (its high-water mark), so one stuck subscriber costs only its own messages.
//!   An [`Inbox`] carries a message from one to the other in libzmq's own buffers: no copy
//!   and no allocation per message on the forwarder's path.
//! * [`Subscriber`]: an async SUB for tokio code (the CLI's `logs`).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::router::Frame;
use super::socket::{AsyncSocket, Frames, Want};
use super::{apply_common_options, bind_all, context, monitor_socket, EndpointError, IpcFiles};

/// Frames an [`Inbox`] keeps between messages: a log record has two, so three tell a
/// longer message apart; a message of many frames does not leave a long vector behind.
const INBOX_KEPT_FRAMES: usize = 3;

/// Socket limits of a PUB/SUB endpoint.
#[derive(Debug, Clone, Copy)]
pub struct PubSubOptions {
    /// High-water mark: messages queued per peer before libzmq drops (PUB), refuses
    /// ([`Publisher`]) or stops reading (SUB).
    pub hwm: i32,
    /// The largest message accepted; a peer sending more is disconnected.
    pub max_message_bytes: i64,
}

impl Default for PubSubOptions {
    fn default() -> Self {
        Self {
            hwm: 1000,
            max_message_bytes: super::MAX_MESSAGE_BYTES,
        }
    }
}

fn socket(kind: zmq::SocketType, options: PubSubOptions) -> Result<zmq::Socket, EndpointError> {
    let socket = context()
        .socket(kind)
        .map_err(EndpointError::zmq("create a PUB/SUB socket"))?;
    apply_common_options(&socket)?;
    socket
        .set_maxmsgsize(options.max_message_bytes)
        .map_err(EndpointError::zmq("set ZMQ_MAXMSGSIZE"))?;
    socket
        .set_sndhwm(options.hwm)
        .map_err(EndpointError::zmq("set ZMQ_SNDHWM"))?;
    socket
        .set_rcvhwm(options.hwm)
        .map_err(EndpointError::zmq("set ZMQ_RCVHWM"))?;
    Ok(socket)
}

fn connect(socket: &zmq::Socket, address: &str) -> Result<(), EndpointError> {
    super::curve::prepare_connect(socket, address)?;
    socket.connect(address).map_err(|e| EndpointError::Address {
        what: "connect to",
        address: address.to_owned(),
        reason: e.to_string(),
    })
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

fn try_recv(socket: &zmq::Socket) -> Result<Option<Frames>, EndpointError> {
    match socket.recv_multipart(zmq::DONTWAIT) {
        Ok(frames) => Ok(Some(frames)),
        Err(zmq::Error::EAGAIN) => Ok(None),
        Err(e) => Err(EndpointError::Socket {
            what: "receive",
            reason: e.to_string(),
        }),
    }
}

/// One received message, held in libzmq messages that [`SubSocket::try_recv_into`]
/// reuses and [`PubSocket::forward`] hands on: receiving, reading and forwarding a message
/// copies nothing and allocates nothing of ours.
#[derive(Debug, Default)]
pub struct Inbox {
    frames: Vec<Frame>,
    len: usize,
}

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames of the message last received (none after [`PubSocket::forward`]).
    pub fn frames(&self) -> &[Frame] {
        &self.frames[..self.len]
    }

    fn recv(&mut self, socket: &zmq::Socket) -> Result<bool, EndpointError> {
        self.frames.truncate(INBOX_KEPT_FRAMES);
        self.len = 0;
        loop {
            if self.len == self.frames.len() {
                self.frames.push(Frame(zmq::Message::new()));
            }
            let frame = &mut self.frames[self.len].0;
            match socket.recv(frame, zmq::DONTWAIT) {
                Ok(()) => self.len += 1,
                // The parts of a message arrive together: only the first can be missing.
                Err(zmq::Error::EAGAIN) if self.len == 0 => return Ok(false),
                Err(e) => {
                    self.len = 0;
                    return Err(EndpointError::Socket {
                        what: "receive",
                        reason: e.to_string(),
                    });
                }
            }
            if !frame.get_more() {
                return Ok(true);
            }
        }
    }
}

/// What [`Publisher::wait`] found ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The socket has input (subscription changes).
    pub socket: bool,
    /// The extra descriptor is readable.
    pub extra: bool,
}

/// A connecting publisher that reports subscriptions and full pipes (see the module doc).
pub struct Publisher {
    socket: zmq::Socket,
    /// After the socket: removed once it is closed (bound publishers only).
    _files: IpcFiles,
}

impl Publisher {
    /// Creates the socket and connects it to `address` (libzmq connects in the background
    /// and reconnects by itself).
    ///
    /// # Errors
    /// When the socket cannot be created, configured or pointed at `address`.
    pub fn connect(address: &str, options: PubSubOptions) -> Result<Self, EndpointError> {
        let mut socket = socket(zmq::XPUB, options)?;
        // No pipe (and no queueing inside libzmq) until a connection exists: while the peer
        // is away, messages stay in our owner's queue, where they are bounded and counted.
        socket
            .set_immediate(true)
            .map_err(EndpointError::zmq("set ZMQ_IMMEDIATE"))?;
        set_xpub_nodrop(&mut socket)?;
        connect(&socket, address)?;
        Ok(Self {
            socket,
            _files: IpcFiles::default(),
        })
    }

    /// Creates the socket and binds every address in `addresses`: a process's event tap
    /// (`crate::tap`), which recorders connect to while the process runs.
    ///
    /// # Errors
    /// When the socket cannot be created or configured, or an address cannot be bound.
    pub fn bind(addresses: &[String], options: PubSubOptions) -> Result<Self, EndpointError> {
        let mut socket = socket(zmq::XPUB, options)?;
        set_xpub_nodrop(&mut socket)?;
        let files = bind_all(&socket, addresses)?;
        Ok(Self {
            socket,
            _files: files,
        })
    }

    /// Sends a message of several frames if every subscriber's pipe has room; `Ok(false)`
    /// means a pipe is full and nothing was sent (see [`Publisher::try_send`]).
    ///
    /// # Errors
    /// On failures other than a full pipe.
    pub fn try_send_frames(&self, frames: &[&[u8]]) -> Result<bool, EndpointError> {
        match self.socket.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(EndpointError::Socket {
                what: "publish",
                reason: e.to_string(),
            }),
        }
    }

    /// Sends `[topic, payload]` if every subscriber's pipe has room; `Ok(false)` means a
    /// pipe is full and nothing was sent. With no subscriber the message is discarded by
    /// libzmq (callers check [`Publisher::subscription_changes`] first).
    ///
    /// # Errors
    /// On failures other than a full pipe (e.g. an oversized message).
    pub fn try_send(&self, topic: &[u8], payload: &[u8]) -> Result<bool, EndpointError> {
        match self.socket.send_multipart([topic, payload], zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(EndpointError::Socket {
                what: "publish",
                reason: e.to_string(),
            }),
        }
    }

    /// Reads every waiting subscription message and returns the net change in the number
    /// of subscriptions (+1 per subscribe, -1 per unsubscribe; a disconnected subscriber
    /// counts as unsubscribing).
    ///
    /// # Errors
    /// When reading from the socket fails.
    pub fn subscription_changes(&self) -> Result<i64, EndpointError> {
        let mut delta = 0;
        while let Some(frames) = try_recv(&self.socket)? {
            match frames.first().and_then(|f| f.first()) {
                Some(1) => delta += 1,
                Some(0) => delta -= 1,
                _ => {}
            }
        }
        Ok(delta)
    }

    /// Blocks up to `timeout` until the socket has input or `extra` is readable.
    ///
    /// # Errors
    /// When `zmq_poll` itself fails (other than an interrupted call).
    pub fn wait(
        &self,
        extra: Option<BorrowedFd<'_>>,
        timeout: Duration,
    ) -> Result<Readiness, EndpointError> {
        let mut items = vec![self.socket.as_poll_item(zmq::POLLIN)];
        if let Some(fd) = extra {
            items.push(zmq::PollItem::from_fd(fd.as_raw_fd(), zmq::POLLIN));
        }
        match zmq::poll(&mut items, millis(timeout)) {
            Ok(_) | Err(zmq::Error::EINTR) => Ok(Readiness {
                socket: items[0].is_readable(),
                extra: items.get(1).is_some_and(zmq::PollItem::is_readable),
            }),
            Err(e) => Err(EndpointError::Socket {
                what: "poll a publisher",
                reason: e.to_string(),
            }),
        }
    }
}

/// Sets `ZMQ_XPUB_NODROP`, which the `zmq` crate has no setter for.
fn set_xpub_nodrop(socket: &mut zmq::Socket) -> Result<(), EndpointError> {
    let on: libc::c_int = 1;
    // SAFETY: `as_mut_ptr` is the live libzmq socket owned by `socket`, borrowed mutably
    // for the call; the option value points to a c_int on our stack whose size is passed,
    // as zmq_setsockopt(3) requires for ZMQ_XPUB_NODROP.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as libc::c_int,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(EndpointError::Socket {
            what: "set ZMQ_XPUB_NODROP",
            reason: std::io::Error::last_os_error().to_string(),
        })
    }
}

/// Creates one socket of `kind` per mechanism the `addresses` need (plain for ipc and, without
/// a key, loopback TCP; a CURVE server for TCP with a key) and binds each its addresses.
fn bind_by_mechanism(
    kind: zmq::SocketType,
    addresses: &[String],
    options: PubSubOptions,
    setup: impl Fn(&zmq::Socket) -> Result<(), EndpointError>,
) -> Result<(Vec<zmq::Socket>, IpcFiles), EndpointError> {
    let mut groups: Vec<_> = super::curve::partition_binds(addresses)?
        .into_iter()
        .filter(|(_, group)| !group.is_empty())
        .collect();
    if groups.is_empty() {
        groups.push((super::curve::Mechanism::Plain, Vec::new()));
    }
    let mut sockets = Vec::new();
    let mut files = IpcFiles::default();
    for (mechanism, group) in groups {
        let socket = socket(kind, options)?;
        setup(&socket)?;
        super::curve::make_server(&socket, mechanism)?;
        files.extend(bind_all(&socket, &group)?);
        sockets.push(socket);
    }
    Ok((sockets, files))
}

/// A SUB socket for a poll loop on a thread of its own (bound, it may be two sockets: one
/// plain, one CURVE; see [`super::curve`]).
pub struct SubSocket {
    sockets: Vec<zmq::Socket>,
    /// After the sockets: removed once they are closed (bound ones only).
    _files: IpcFiles,
}

impl SubSocket {
    /// Creates a SUB subscribed to every topic and binds every address in `addresses`.
    ///
    /// # Errors
    /// When an address cannot be bound (in use, bad syntax, missing directory).
    pub fn bind(addresses: &[String], options: PubSubOptions) -> Result<Self, EndpointError> {
        let (sockets, files) = bind_by_mechanism(zmq::SUB, addresses, options, |socket| {
            socket
                .set_subscribe(b"")
                .map_err(EndpointError::zmq("subscribe"))
        })?;
        Ok(Self {
            sockets,
            _files: files,
        })
    }

    /// Creates a SUB subscribed to `topics` (prefixes; an empty one means everything) and
    /// connects it to `address`.
    ///
    /// # Errors
    /// When the socket cannot be created, configured or pointed at `address`.
    pub fn connect(
        address: &str,
        topics: &[&[u8]],
        options: PubSubOptions,
    ) -> Result<Self, EndpointError> {
        let socket = sub_socket(topics, options)?;
        connect(&socket, address)?;
        Ok(Self {
            sockets: vec![socket],
            _files: IpcFiles::default(),
        })
    }

    /// Receives one whole message if one is waiting.
    ///
    /// # Errors
    /// Only for failures other than "nothing waiting".
    pub fn try_recv(&self) -> Result<Option<Frames>, EndpointError> {
        for socket in &self.sockets {
            if let Some(frames) = try_recv(socket)? {
                return Ok(Some(frames));
            }
        }
        Ok(None)
    }

    /// Receives one whole message into `inbox` if one is waiting (`Ok(false)` if none),
    /// reusing its buffers.
    ///
    /// # Errors
    /// Only for failures other than "nothing waiting".
    pub fn try_recv_into(&self, inbox: &mut Inbox) -> Result<bool, EndpointError> {
        for socket in &self.sockets {
            if inbox.recv(socket)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Blocks up to `timeout` until a message can be received; `Ok(false)` on timeout.
    ///
    /// # Errors
    /// When `zmq_poll` itself fails (other than an interrupted call).
    pub fn wait(&self, timeout: Duration) -> Result<bool, EndpointError> {
        let mut items: Vec<_> = self
            .sockets
            .iter()
            .map(|s| s.as_poll_item(zmq::POLLIN))
            .collect();
        match zmq::poll(&mut items, millis(timeout)) {
            Ok(_) | Err(zmq::Error::EINTR) => Ok(items.iter().any(|i| i.is_readable())),
            Err(e) => Err(EndpointError::Socket {
                what: "poll a SUB socket",
                reason: e.to_string(),
            }),
        }
    }
}

/// A bound PUB socket that never blocks (see the module doc); with a key and TCP beside
/// ipc, two sockets (plain and CURVE) that each get every message.
pub struct PubSocket {
    sockets: Vec<zmq::Socket>,
    /// After the sockets: removed once they are closed.
    _files: IpcFiles,
}

impl PubSocket {
    /// Creates a PUB and binds every address in `addresses`.
    ///
    /// # Errors
    /// When an address cannot be bound (in use, bad syntax, missing directory).
    pub fn bind(addresses: &[String], options: PubSubOptions) -> Result<Self, EndpointError> {
        let (sockets, files) = bind_by_mechanism(zmq::PUB, addresses, options, |_| Ok(()))?;
        Ok(Self {
            sockets,
            _files: files,
        })
    }

    /// Publishes one message made of `frames` (topic first). Subscribers whose pipe is
    /// full miss it; libzmq does not report that.
    ///
    /// # Errors
    /// On failures libzmq reports (e.g. a terminated context); never for a slow peer.
    pub fn send(&self, frames: &[&[u8]]) -> Result<(), EndpointError> {
        for socket in &self.sockets {
            socket
                .send_multipart(frames, zmq::DONTWAIT)
                .or_else(|e| match e {
                    zmq::Error::EAGAIN => Ok(()),
                    e => Err(EndpointError::Socket {
                        what: "publish",
                        reason: e.to_string(),
                    }),
                })?;
        }
        Ok(())
    }
}

impl PubSocket {
    /// Publishes the message in `inbox` as received, like [`PubSocket::send`]: the last
    /// socket gets libzmq's buffers themselves, any other a copy. The inbox is empty after.
    ///
    /// # Errors
    /// As [`PubSocket::send`].
    pub fn forward(&self, inbox: &mut Inbox) -> Result<(), EndpointError> {
        let len = std::mem::take(&mut inbox.len);
        let frames = &mut inbox.frames[..len];
        let Some((last_socket, others)) = self.sockets.split_last() else {
            return Ok(());
        };
        for socket in others {
            for (i, frame) in frames.iter().enumerate() {
                publish(socket, zmq::Message::from(&frame.0[..]), i + 1 < len)?;
            }
        }
        for (i, frame) in frames.iter_mut().enumerate() {
            let message = std::mem::replace(&mut frame.0, zmq::Message::new());
            publish(last_socket, message, i + 1 < len)?;
        }
        Ok(())
    }
}

/// Sends one frame on a PUB socket without blocking (a full pipe drops it, see
/// [`PubSocket`]).
fn publish(socket: &zmq::Socket, frame: zmq::Message, more: bool) -> Result<(), EndpointError> {
    let flags = if more {
        zmq::DONTWAIT | zmq::SNDMORE
    } else {
        zmq::DONTWAIT
    };
    match socket.send(frame, flags) {
        Ok(()) | Err(zmq::Error::EAGAIN) => Ok(()),
        Err(e) => Err(EndpointError::Socket {
            what: "publish",
            reason: e.to_string(),
        }),
    }
}

/// An async SUB socket, for tokio code. Owned by one task (`recv` takes `&mut self`).
pub struct Subscriber {
    socket: AsyncSocket,
    monitor: Option<zmq::Socket>,
}

impl Subscriber {
    /// Creates a SUB subscribed to `topics` (prefixes; an empty one means everything) and
    /// connects it to `address`. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the socket cannot be created, configured, registered or pointed at `address`.
    pub fn connect(
        address: &str,
        topics: &[&[u8]],
        options: PubSubOptions,
    ) -> Result<Self, EndpointError> {
        let socket = sub_socket(topics, options)?;
        let monitor = monitor_handshakes(&socket)?;
        connect(&socket, address)?;
        Ok(Self {
            socket: AsyncSocket::new(socket)?,
            monitor: Some(monitor),
        })
    }

    /// Waits up to `timeout` for the first completed connection to the publisher; after
    /// it, the subscriptions are on their way (libzmq sends them right after the
    /// handshake). `false` when no connection completed in time. Later calls return at
    /// once.
    pub async fn wait_connected(&mut self, timeout: Duration) -> bool {
        let Some(monitor) = self.monitor.take() else {
            return true;
        };
        let waited = tokio::task::spawn_blocking(move || {
            let mut items = [monitor.as_poll_item(zmq::POLLIN)];
            matches!(zmq::poll(&mut items, millis(timeout)), Ok(n) if n > 0)
        })
        .await;
        waited.unwrap_or(false)
    }

    /// Receives the next whole message.
    ///
    /// # Errors
    /// When the socket fails (not for a missing publisher: that is just a long wait).
    ///
    /// # Cancel safety
    /// Cancel safe: a message is either returned or left in the socket.
    pub async fn recv(&mut self) -> Result<Frames, EndpointError> {
        loop {
            match self.socket.try_recv() {
                Ok(Some(frames)) => return Ok(frames),
                Ok(None) => {}
                Err(e) => {
                    return Err(EndpointError::Socket {
                        what: "receive",
                        reason: e.to_string(),
                    })
                }
            }
            self.socket
                .wait(Want::Recv)
                .await
                .map_err(|e| EndpointError::Io("wait for a SUB socket", e))?;
        }
    }
}

/// A PAIR socket that receives `socket`'s successful handshakes.
fn monitor_handshakes(socket: &zmq::Socket) -> Result<zmq::Socket, EndpointError> {
    monitor_socket(socket, zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32)
}

/// A SUB socket subscribed to `topics` (prefixes; an empty one means everything).
fn sub_socket(topics: &[&[u8]], options: PubSubOptions) -> Result<zmq::Socket, EndpointError> {
    let socket = socket(zmq::SUB, options)?;
    for topic in topics {
        socket
            .set_subscribe(topic)
            .map_err(EndpointError::zmq("subscribe"))?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipc(dir: &tempfile::TempDir, name: &str) -> String {
        format!("ipc://{}/{name}", dir.path().display())
    }

    #[test]
    fn a_bound_socket_takes_its_ipc_file_with_it_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.sock");
        let address = ipc(&dir, "tap.sock");
        let one = std::slice::from_ref(&address);
        let options = PubSubOptions::default();
        let bound_then_closed = |what: &str, socket: Box<dyn std::any::Any>| {
            assert!(path.exists(), "{what} did not bind {}", path.display());
            drop(socket);
            // At once, not whenever libzmq's I/O thread gets to it.
            assert!(!path.exists(), "{what} left {} behind", path.display());
        };
        bound_then_closed(
            "a publisher",
            Box::new(Publisher::bind(one, options).unwrap()),
        );
        bound_then_closed("a SUB", Box::new(SubSocket::bind(one, options).unwrap()));
        bound_then_closed("a PUB", Box::new(PubSocket::bind(one, options).unwrap()));
        let router = crate::endpoint::RouterSocket::bind(one).unwrap();
        bound_then_closed("a ROUTER", Box::new(router));
    }

    #[test]
    fn a_closing_socket_leaves_the_file_of_one_that_took_its_path_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sock");
        let address = ipc(&dir, "shared.sock");
        let first =
            Publisher::bind(std::slice::from_ref(&address), PubSubOptions::default()).unwrap();
        // Binding unlinks what is at the path: the second socket has it now.
        let second = Publisher::bind(&[address], PubSubOptions::default()).unwrap();
        drop(first);
        assert!(
            path.exists(),
            "the first socket removed the second one's endpoint"
        );
        drop(second);
        assert!(!path.exists(), "left behind: {}", path.display());
    }

    #[test]
    fn publisher_sees_the_subscriber_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let address = ipc(&dir, "log.sock");
        let publisher = Publisher::connect(&address, PubSubOptions::default()).unwrap();
        assert_eq!(publisher.subscription_changes().unwrap(), 0);
        let sub = SubSocket::bind(&[address], PubSubOptions::default()).unwrap();
        let mut subscribed = 0;
        for _ in 0..200 {
            // A bound socket attaches a new connection only when it is used: poll it.
            assert!(!sub.wait(Duration::ZERO).unwrap());
            let _ = publisher.wait(None, Duration::from_millis(10)).unwrap();
            subscribed += publisher.subscription_changes().unwrap();
            if subscribed > 0 {
                break;
            }
        }
        assert_eq!(subscribed, 1);
        assert!(publisher.try_send(b"info", b"payload").unwrap());
        assert!(sub.wait(Duration::from_secs(5)).unwrap());
        assert_eq!(
            sub.try_recv().unwrap().unwrap(),
            [b"info".to_vec(), b"payload".to_vec()]
        );
        drop(sub);
        for _ in 0..200 {
            let _ = publisher.wait(None, Duration::from_millis(10)).unwrap();
            subscribed += publisher.subscription_changes().unwrap();
            if subscribed == 0 {
                break;
            }
        }
        assert_eq!(subscribed, 0);
    }

    #[test]
    fn an_inbox_forwards_what_it_received_frame_for_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (inbound, outbound) = (ipc(&dir, "in.sock"), ipc(&dir, "out.sock"));
        let sub =
            SubSocket::bind(std::slice::from_ref(&inbound), PubSubOptions::default()).unwrap();
        let publisher =
            PubSocket::bind(std::slice::from_ref(&outbound), PubSubOptions::default()).unwrap();
        let reader = SubSocket::connect(&outbound, &[b""], PubSubOptions::default()).unwrap();
        let sender = Publisher::connect(&inbound, PubSubOptions::default()).unwrap();
        let mut subscribed = 0;
        while subscribed <= 0 {
            assert!(!sub.wait(Duration::ZERO).unwrap());
            let _ = sender.wait(None, Duration::from_millis(10)).unwrap();
            subscribed += sender.subscription_changes().unwrap();
        }
        let mut inbox = Inbox::new();
        assert!(!sub.try_recv_into(&mut inbox).unwrap());
        let mut pass = |frames: &[&[u8]]| {
            assert!(sender.try_send_frames(frames).unwrap());
            assert!(sub.wait(Duration::from_secs(5)).unwrap());
            assert!(sub.try_recv_into(&mut inbox).unwrap());
            assert_eq!(inbox.frames().len(), frames.len());
            publisher.forward(&mut inbox).unwrap();
            assert!(inbox.frames().is_empty());
        };
        // The reader's subscription reaches the PUB in the background: until it has,
        // forwarded messages are dropped.
        let mut synced = false;
        for _ in 0..500 {
            pass(&[b"sync"]);
            if reader.wait(Duration::from_millis(10)).unwrap() {
                synced = true;
                break;
            }
        }
        assert!(synced);
        let long = vec![7_u8; 5000];
        let messages: [&[&[u8]]; 3] = [&[b"info", &long], &[b"a", b"b", b"c", b"d", b"e"], &[b""]];
        for frames in messages {
            pass(frames);
        }
        let mut got = Vec::new();
        while got.len() < messages.len() {
            assert!(reader.wait(Duration::from_secs(5)).unwrap());
            while let Some(frames) = reader.try_recv().unwrap() {
                if frames != [b"sync"] {
                    got.push(frames);
                }
            }
        }
        let want: Vec<Vec<Vec<u8>>> = messages
            .iter()
            .map(|m| m.iter().map(|f| f.to_vec()).collect())
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn async_subscriber_receives_what_a_pub_socket_sends() {
        let dir = tempfile::tempdir().unwrap();
        let address = ipc(&dir, "pub.sock");
        let publisher =
            PubSocket::bind(std::slice::from_ref(&address), PubSubOptions::default()).unwrap();
        let mut sub = Subscriber::connect(&address, &[b"warn"], PubSubOptions::default()).unwrap();
        assert!(sub.wait_connected(Duration::from_secs(5)).await);
        // The subscription travels after the handshake; resend until it has arrived.
        let frames = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                publisher.send(&[b"info", b"filtered out"]).unwrap();
                publisher.send(&[b"warn", b"kept"]).unwrap();
                if let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await
                {
                    return f;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(frames, [b"warn".to_vec(), b"kept".to_vec()]);
    }
}

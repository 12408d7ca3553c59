//! ZeroMQ endpoints: the only module that talks to libzmq (through the `zmq` crate).
//!
//! * [`Dealer`]: an async DEALER driven by one tokio task, used by the RPC client and
//!   services.
//! * [`RouterSocket`]: a ROUTER for the router's plain poll loop, with `ROUTER_MANDATORY`
//!   and non-blocking sends so that an unknown or stalled peer costs only its own messages.
//! * [`Publisher`], [`SubSocket`], [`PubSocket`], [`Subscriber`]: the log pipeline's
//!   PUB/SUB sockets.
//!
//! Why not `async_zmq` or the pure-Rust `zeromq` crate: see the README's design notes
//! (measured: the former hangs under ROUTER_MANDATORY back-pressure and doubles round-trip
//! latency; the latter lets one slow client stall a ROUTER for everyone).

pub mod curve;
mod dealer;
mod driver;
mod poll;
mod pubsub;
mod router;
mod socket;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;

pub use dealer::{Dealer, DealerOptions};
pub use poll::Poller;
pub use pubsub::{Inbox, PubSocket, PubSubOptions, Publisher, Readiness, SubSocket, Subscriber};
pub use router::{
    Arrival, Frame, Monitor, PeerEvent, RouterMessage, RouterSocket, SendOutcome, MAX_FRAMES_KEPT,
};
pub use socket::Frames;

/// How often a connected socket sends a ZMTP heartbeat (PING). With
/// [`HEARTBEAT_TIMEOUT`] this bounds how long a crashed or partitioned peer stays listed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
/// How long without any traffic before a connection is declared dead: three missed
/// heartbeats, so `list_peers` is true within about 3 s of a crash (the spec asks for 5 s).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(3000);
/// How long a closing socket keeps trying to deliver queued messages. Short, because a
/// stopping process should not hang on an absent peer, but long enough to flush a reply.
pub const LINGER: Duration = Duration::from_millis(200);
/// The largest message a socket accepts; a peer sending more is disconnected by libzmq.
/// RPC payloads are limited to 1 MiB by the decoder, log records to far less; 16 MiB
/// bounds the memory a hostile peer can make any of our sockets allocate.
pub const MAX_MESSAGE_BYTES: i64 = 16 << 20;

/// Why an endpoint could not be set up or used.
#[derive(Debug, Error)]
pub enum EndpointError {
    /// A socket option or socket creation failed.
    #[error("cannot {what}: {reason}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// libzmq's explanation.
        reason: String,
    },
    /// Binding or connecting an address failed.
    #[error("cannot {what} {address}: {reason}")]
    Address {
        /// `bind` or `connect`.
        what: &'static str,
        /// The ZeroMQ address.
        address: String,
        /// libzmq's explanation (e.g. "Address already in use").
        reason: String,
    },
    /// Another live peer holds this service's identity at the router, which refuses a
    /// second one rather than handing the identity over.
    #[error("the router already has a live `{0}` (another instance serves it); this one is refused rather than taking it over: stop the other one first")]
    IdentityTaken(String),
    /// An operating system call failed.
    #[error("cannot {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
}

impl EndpointError {
    pub(crate) fn zmq(what: &'static str) -> impl FnOnce(zmq::Error) -> Self {
        move |e| Self::Socket {
            what,
            reason: e.to_string(),
        }
    }
}

/// The process-wide ZeroMQ context. It is never terminated: terminating blocks until every
/// socket is closed, and the process exit releases it anyway.
pub(crate) fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// Binds `socket` to every address in `addresses` and returns the files of the `ipc://`
/// ones, which the caller keeps beside the socket (declared after it) until it closes.
pub(crate) fn bind_all(
    socket: &zmq::Socket,
    addresses: &[String],
) -> Result<IpcFiles, EndpointError> {
    let mut files = IpcFiles::default();
    for address in addresses {
        socket.bind(address).map_err(|e| EndpointError::Address {
            what: "bind",
            address: address.clone(),
            reason: e.to_string(),
        })?;
        // Abstract-namespace endpoints (`ipc://@name`) have no file, and a wildcard
        // (`ipc://*`) is a temporary file libzmq removes itself.
        if let Some(path) = address
            .strip_prefix("ipc://")
            .filter(|p| !p.starts_with('@') && *p != "*")
        {
            files.push(PathBuf::from(path));
        }
    }
    Ok(files)
}

/// The files of the `ipc://` endpoints a socket bound, removed when dropped.
///
/// libzmq leaves a named endpoint's file in place when the socket closes (it removes only
/// the files of wildcard endpoints), so without this every clean stop left dead endpoints
/// in the ipc directory. Kept as the last field of the socket's owner, so a file goes right
/// after its socket is closed. A file is removed only if it is still the one this socket
/// bound (same inode): binding unlinks whatever is at the path first, so another process
/// given the same address may have taken the path over since, and its endpoint is not ours
/// to remove.
#[derive(Debug, Default)]
pub(crate) struct IpcFiles(Vec<(PathBuf, Option<(u64, u64)>)>);

/// A file's device and inode: which file a path names now.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl IpcFiles {
    fn push(&mut self, path: PathBuf) {
        let identity = file_identity(&path);
        self.0.push((path, identity));
    }

    /// Takes `other`'s files over (a bound endpoint made of several sockets).
    fn extend(&mut self, mut other: IpcFiles) {
        self.0.append(&mut other.0);
    }
}

impl Drop for IpcFiles {
    fn drop(&mut self) {
        for (path, bound) in &self.0 {
            if bound.is_some() && file_identity(path) == *bound {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Starts a libzmq monitor of `socket` for `events` and returns the PAIR socket that
/// receives them. Each monitor gets a process-unique inproc address.
pub(crate) fn monitor_socket(
    socket: &zmq::Socket,
    events: i32,
) -> Result<zmq::Socket, EndpointError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let address = format!(
        "inproc://pitcrew-monitor-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    socket
        .monitor(&address, events)
        .map_err(EndpointError::zmq("start a socket monitor"))?;
    let monitor = context()
        .socket(zmq::PAIR)
        .map_err(EndpointError::zmq("create a monitor socket"))?;
    monitor
        .connect(&address)
        .map_err(EndpointError::zmq("connect the monitor socket"))?;
    Ok(monitor)
}

/// Options every socket of ours carries: heartbeats, linger, message size limit, and a
/// quick reconnect (100 ms, backing off to 1 s) so a restarted peer is reached again at
/// once; the reconnect settings are inert on a socket that only binds.
pub(crate) fn apply_common_options(socket: &zmq::Socket) -> Result<(), EndpointError> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    socket
        .set_reconnect_ivl(100)
        .map_err(EndpointError::zmq("set ZMQ_RECONNECT_IVL"))?;
    socket
        .set_reconnect_ivl_max(1000)
        .map_err(EndpointError::zmq("set ZMQ_RECONNECT_IVL_MAX"))?;
    socket
        .set_linger(ms(LINGER))
        .map_err(EndpointError::zmq("set ZMQ_LINGER"))?;
    socket
        .set_heartbeat_ivl(ms(HEARTBEAT_INTERVAL))
        .map_err(EndpointError::zmq("set ZMQ_HEARTBEAT_IVL"))?;
    socket
        .set_heartbeat_timeout(ms(HEARTBEAT_TIMEOUT))
        .map_err(EndpointError::zmq("set ZMQ_HEARTBEAT_TIMEOUT"))?;
    socket
        .set_heartbeat_ttl(ms(HEARTBEAT_TIMEOUT))
        .map_err(EndpointError::zmq("set ZMQ_HEARTBEAT_TTL"))?;
    socket
        .set_maxmsgsize(MAX_MESSAGE_BYTES)
        .map_err(EndpointError::zmq("set ZMQ_MAXMSGSIZE"))?;
    Ok(())
}

/// Picks the address to connect to from the list a peer binds: `ipc://` first, because
/// it skips the TCP stack (spec/wire.md: "a connecting side prefers an ipc:// address").
/// A wildcard host (`tcp://*:6000`) is rewritten to loopback.
pub fn preferred_connect_address(bound: &[String]) -> Option<String> {
    let pick = bound
        .iter()
        .find(|a| a.starts_with("ipc://"))
        .or_else(|| bound.first())?;
    Some(
        pick.replace("tcp://*:", "tcp://127.0.0.1:")
            .replace("tcp://0.0.0.0:", "tcp://127.0.0.1:"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_prefers_ipc_and_rewrites_wildcards() {
        let bound = vec![
            "tcp://*:6000".to_owned(),
            "ipc:///tmp/rt-rpc.sock".to_owned(),
        ];
        assert_eq!(
            preferred_connect_address(&bound).as_deref(),
            Some("ipc:///tmp/rt-rpc.sock")
        );
        let bound = vec!["tcp://*:6000".to_owned()];
        assert_eq!(
            preferred_connect_address(&bound).as_deref(),
            Some("tcp://127.0.0.1:6000")
        );
        assert_eq!(preferred_connect_address(&[]), None);
    }
}

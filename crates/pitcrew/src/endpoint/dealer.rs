//! An async DEALER socket: the RPC client's and every service's connection to the router.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::socket::{AsyncSocket, Frames};
use super::{apply_common_options, context, driver, EndpointError};

/// How a [`Dealer`] connects.
#[derive(Debug, Clone)]
pub struct DealerOptions {
    /// The ZeroMQ routing identity: `<app>-service` for a service (stable, so a restarted
    /// service is found under the same name once its predecessor's connection is gone),
    /// unique per process for a client.
    pub identity: String,
    /// The address to connect to, e.g. `ipc:///tmp/rt-rpc.sock`.
    pub address: String,
    /// How many outgoing messages may wait for the socket before senders wait too.
    pub queue: usize,
    /// Bind `address` instead of connecting to it: peers then connect straight to this
    /// socket, with no router in between (benchmark baseline, single-process setups).
    pub bind: bool,
}

/// A connected DEALER. Cloning gives another handle to the same socket; the socket closes
/// when the last handle is dropped or the cancellation token fires.
#[derive(Clone, Debug)]
pub struct Dealer {
    outgoing: mpsc::Sender<Frames>,
}

/// The socket is closed; nothing more can be sent.
#[derive(Debug, thiserror::Error)]
#[error("the connection to the router is closed")]
pub struct Closed;

impl Dealer {
    /// Connects (libzmq connects lazily and reconnects by itself) and spawns the task that
    /// owns the socket; `on_message` runs on that task for every message received.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the socket cannot be created, configured or pointed at `address`.
    pub fn connect(
        options: DealerOptions,
        on_message: impl FnMut(Frames) + Send + 'static,
        cancel: CancellationToken,
    ) -> Result<(Self, JoinHandle<()>), EndpointError> {
        let socket = context()
            .socket(zmq::DEALER)
            .map_err(EndpointError::zmq("create a DEALER socket"))?;
        apply_common_options(&socket)?;
        socket
            .set_identity(options.identity.as_bytes())
            .map_err(EndpointError::zmq("set the DEALER identity"))?;
        let (what, result) = if options.bind {
            // A benchmark's direct socket: one address, so one mechanism.
            let [(_, plain), (_, secure)] =
                super::curve::partition_binds(std::slice::from_ref(&options.address))?;
            let address = match (plain.first(), secure.first()) {
                (_, Some(a)) => {
                    super::curve::make_server(&socket, super::curve::Mechanism::CurveServer)?;
                    a.clone()
                }
                (Some(a), None) => a.clone(),
                (None, None) => options.address.clone(),
            };
            ("bind", socket.bind(&address))
        } else {
            super::curve::prepare_connect(&socket, &options.address)?;
            ("connect to", socket.connect(&options.address))
        };
        result.map_err(|e| EndpointError::Address {
            what,
            address: options.address.clone(),
            reason: e.to_string(),
        })?;
        let socket = AsyncSocket::new(socket)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let task = tokio::spawn(driver::run(
            socket,
            rx,
            on_message,
            cancel,
            options.identity,
        ));
        Ok((Self { outgoing: tx }, task))
    }

    /// Queues a message, waiting while the queue is full.
    ///
    /// # Errors
    /// `Closed` once the socket's task has ended.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled send queued nothing.
    pub async fn send(&self, frames: Frames) -> Result<(), Closed> {
        self.outgoing.send(frames).await.map_err(|_| Closed)
    }

    /// Queues a message only if there is room now; `Ok(false)` means the queue is full.
    ///
    /// # Errors
    /// `Closed` once the socket's task has ended.
    pub fn try_send(&self, frames: Frames) -> Result<bool, Closed> {
        match self.outgoing.try_send(frames) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }
}

//! [`Registry`]: every Smart Device the broker has met, its shared-memory buffer (kept across
//! reconnects, so a bouncing USB contact keeps its buffer) and, while it is connected, the
//! handle of its session.
//!
//! The registry is the one place that decides whether a UID may connect: a second connection
//! presenting a UID that is already connected is refused, and the first keeps working.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use pitcrew_buffer::{BufferError, Owner, SegmentKey};
use pitcrew_catalog::{Catalog, DeviceType, Uid};
use tokio::sync::{mpsc, oneshot, watch};

use crate::arrivals::Arrivals;
use crate::line::Line;

/// Commands other parts of the broker (RPC, estop, shutdown) send to a device's session.
#[derive(Debug)]
pub enum Command {
    /// Send DEV_DISABLE now.
    Disable,
    /// Send an HB_REQ and report the round trip on the channel.
    Heartbeat(oneshot::Sender<Duration>),
    /// Emergency stop: drop pending consumer writes, send DEV_DISABLE and the catalog's
    /// safe values, and report on the channel once both are written to the line.
    Estop(oneshot::Sender<()>),
}

/// How many commands may wait for a session; a full queue means the session is stuck, and
/// the caller is told so rather than queueing without bound.
pub const COMMAND_QUEUE: usize = 32;

/// Per-device counters that outlive a connection.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames that failed to decode (answered with ERROR).
    pub decode_errors: AtomicU64,
    /// Packets of a host → device type received from the device (answered INVALID_TYPE).
    pub invalid_types: AtomicU64,
    /// ERROR packets the device sent.
    pub device_errors: AtomicU64,
    /// Times the device was declared lost (nothing valid within the liveness timeout).
    pub timeouts: AtomicU64,
    /// Connections of this UID (first one included).
    pub connections: AtomicU64,
    /// Consumer writes dropped because the emergency stop is latched.
    pub writes_discarded: AtomicU64,
    /// Consumer writes to outputs held back because the robot was not enabled.
    pub outputs_held: AtomicU64,
    /// Whether the first discarded write of this device was logged (later ones are only
    /// counted, so a controller writing at 1 kHz cannot flood the log).
    pub discard_logged: AtomicBool,
}

/// Why a device could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Another connection already presents this UID.
    #[error("device {uid} is already connected on {port}")]
    AlreadyConnected {
        /// The UID.
        uid: Uid,
        /// The port of the connection that keeps it.
        port: String,
    },
    /// The UID's device id is not in the catalog.
    #[error("device {uid} has device id {device_id}, which the catalog does not know")]
    UnknownType {
        /// The UID.
        uid: Uid,
        /// Its device id.
        device_id: u16,
    },
    /// The shared-memory buffer could not be created or revalidated.
    #[error("buffer of device {uid}: {source}")]
    Buffer {
        /// The UID.
        uid: Uid,
        /// The buffer error.
        source: BufferError,
    },
}

/// One device known to the broker.
#[derive(Debug)]
struct Entry {
    owner: Arc<Owner>,
    port: String,
    connected_since: Option<SystemTime>,
    link: Option<Link>,
    counters: Arc<Counters>,
    arrivals: Arc<watch::Sender<Arrivals>>,
}

/// The session of a connected device, as seen from the outside.
#[derive(Debug, Clone)]
struct Link {
    id: u64,
    commands: mpsc::Sender<Command>,
    /// The session's line to the device, to see whether the device reads.
    line: Arc<Line>,
}

/// What a session gets when its device is attached.
#[derive(Debug)]
pub struct Attached {
    /// The device's buffer (created on first connection, revalidated on later ones).
    pub owner: Arc<Owner>,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// The attachment id, to pass back to [`Registry::detach`].
    pub link_id: u64,
    /// Commands for the session.
    pub commands: mpsc::Receiver<Command>,
    /// Where the session records the params each DEV_DATA brought (read RPCs wait on it).
    pub arrivals: Arc<watch::Sender<Arrivals>>,
}

/// A device as `list_devices` reports it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// UID.
    pub uid: Uid,
    /// Catalog type name.
    pub type_name: String,
    /// Port (serial path or `tcp://peer`) of the current or last connection.
    pub port: String,
    /// When the current connection was established; `None` when disconnected.
    pub connected_since: Option<SystemTime>,
    /// Whether the buffer is valid (the device is connected and identified).
    pub valid: bool,
    /// Messages sent to the device (all connections).
    pub to_device: u64,
    /// Messages received from the device (all connections).
    pub from_device: u64,
    /// Per-device error counters.
    pub counters: Arc<Counters>,
}

/// The broker's devices.
#[derive(Debug)]
pub struct Registry {
    namespace: String,
    catalog: &'static Catalog,
    devices: Mutex<HashMap<Uid, Entry>>,
    next_link: AtomicU64,
}

impl Registry {
    /// An empty registry for `namespace`, typing devices with `catalog`.
    pub fn new(namespace: &str, catalog: &'static Catalog) -> Registry {
        Registry {
            namespace: namespace.to_owned(),
            catalog,
            devices: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
        }
    }

    /// The catalog devices are typed with.
    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    /// The type of a UID, from its device id.
    pub fn type_of(&self, uid: Uid) -> Option<&'static Arc<DeviceType>> {
        self.catalog.type_of(uid)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uid, Entry>> {
        // A panic while holding this lock leaves plain data behind; keep going with it.
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Attaches a newly identified device on `port`: creates its buffer on first contact,
    /// marks it valid again on a reconnect.
    ///
    /// # Errors
    /// [`AttachError`] when the UID is connected elsewhere, unknown, or its buffer fails.
    pub fn attach(&self, uid: Uid, port: &str, line: Arc<Line>) -> Result<Attached, AttachError> {
        let ty = self.type_of(uid).ok_or(AttachError::UnknownType {
            uid,
            device_id: uid.device_id(),
        })?;
        let mut devices = self.lock();
        if let Some(entry) = devices.get(&uid) {
            if entry.link.is_some() {
                return Err(AttachError::AlreadyConnected {
                    uid,
                    port: entry.port.clone(),
                });
            }
        }
        let buffer_error = |source| AttachError::Buffer { uid, source };
        let entry = match devices.entry(uid) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let owner = Owner::create(&self.namespace, Arc::clone(ty), SegmentKey::Uid(uid))
                    .map_err(buffer_error)?;
                v.insert(Entry {
                    owner: Arc::new(owner),
                    port: port.to_owned(),
                    connected_since: None,
                    link: None,
                    counters: Arc::new(Counters::default()),
                    arrivals: Arc::new(watch::Sender::new(Arrivals::default())),
                })
            }
        };
        entry.owner.set_valid(true).map_err(buffer_error)?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        entry.port = port.to_owned();
        entry.connected_since = Some(SystemTime::now());
        entry.link = Some(Link {
            id,
            commands: tx,
            line,
        });
        entry.counters.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Attached {
            owner: Arc::clone(&entry.owner),
            counters: Arc::clone(&entry.counters),
            link_id: id,
            commands: rx,
            arrivals: Arc::clone(&entry.arrivals),
        })
    }

    /// Detaches the session `link_id` of `uid`: marks the buffer invalid, keeping it for a
    /// reconnect. A stale id (the device already reattached elsewhere) changes nothing.
    pub fn detach(&self, uid: Uid, link_id: u64) {
        let mut devices = self.lock();
        let Some(entry) = devices.get_mut(&uid) else {
            return;
        };
        if entry.link.as_ref().map(|l| l.id) != Some(link_id) {
            return;
        }
        entry.link = None;
        entry.connected_since = None;
        if let Err(e) = entry.owner.set_valid(false) {
            tracing::warn!(%uid, error = %e, "cannot mark the buffer invalid");
        }
    }

    /// Every known device, sorted by UID.
    pub fn list(&self) -> Vec<DeviceInfo> {
        let devices = self.lock();
        let mut out: Vec<DeviceInfo> = devices
            .iter()
            .map(|(uid, e)| {
                let stats = e.owner.stats();
                DeviceInfo {
                    uid: *uid,
                    type_name: e.owner.device_type().name().to_owned(),
                    port: e.port.clone(),
                    connected_since: e.connected_since,
                    valid: e.owner.is_valid(),
                    to_device: stats.msgs_to_device,
                    from_device: stats.msgs_from_device,
                    counters: Arc::clone(&e.counters),
                }
            })
            .collect();
        out.sort_by_key(|d| d.uid);
        out
    }

    /// The buffer of `uid`, if the device was ever connected.
    pub fn owner(&self, uid: Uid) -> Option<Arc<Owner>> {
        self.lock().get(&uid).map(|e| Arc::clone(&e.owner))
    }

    /// A view of the DEV_DATA arrivals of `uid`, if the device was ever connected.
    pub fn arrivals(&self, uid: Uid) -> Option<watch::Receiver<Arrivals>> {
        self.lock().get(&uid).map(|e| e.arrivals.subscribe())
    }

    /// The command queue of `uid`'s session, if connected.
    pub fn commands(&self, uid: Uid) -> Option<mpsc::Sender<Command>> {
        self.lock()
            .get(&uid)
            .and_then(|e| e.link.as_ref().map(|l| l.commands.clone()))
    }

    /// The command queue of `uid`'s session and its line to the device, if connected.
    pub fn link(&self, uid: Uid) -> Option<(mpsc::Sender<Command>, Arc<Line>)> {
        self.lock().get(&uid).and_then(|e| {
            e.link
                .as_ref()
                .map(|l| (l.commands.clone(), Arc::clone(&l.line)))
        })
    }

    /// The UIDs with a session now.
    pub fn connected(&self) -> Vec<Uid> {
        let mut uids: Vec<Uid> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.link.is_some())
            .map(|(uid, _)| *uid)
            .collect();
        uids.sort();
        uids
    }
}

//! [`Buffer`]: an attached device buffer (consumer view), its attach checks, identity and
//! the accessors every operation starts with. The operations live in one module per concept:
//! `read` (typed and raw reads of params), `raw` (a params bitmap as one packed record),
//! `write` (clamped writes published to the owner), `requests` (fresh readings,
//! subscriptions, the owner's doorbell) and `updates` (what the owner changed, and waiting
//! for it).
//!
//! Every operation first checks that the owner marked the buffer valid, then the access rule
//! of the param, so a disconnected device or a wrong name is an error, never a stale value.

mod raw;
mod read;
mod requests;
mod updates;
mod write;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_catalog::{DeviceType, Param, Uid, ValueError};

use crate::error::BufferError;
use crate::layout::{Header, Layout, Slot, LAYOUT_VERSION, MAGIC};
use crate::name::{segment_name, SegmentKey};
use crate::os;
use crate::seqlock::Block;
use crate::shm::{self, Mapping};

pub use requests::Subscription;
pub use write::WriteOutcome;

/// Counters and timestamps of the control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Time since the last consumer write, if any.
    pub last_write_age: Option<Duration>,
    /// Time since the owner last stored values, if ever.
    pub last_update_age: Option<Duration>,
    /// Messages the owner sent to the device.
    pub msgs_to_device: u64,
    /// Messages the owner received from the device.
    pub msgs_from_device: u64,
    /// Block locks taken over from dead processes.
    pub lock_recoveries: u64,
}

/// An attached device buffer (consumer view). Owners get one through [`crate::Owner`].
pub struct Buffer {
    pub(crate) map: Mapping,
    pub(crate) name: String,
    pub(crate) ty: Arc<DeviceType>,
    pub(crate) layout: Layout,
    pub(crate) pid: u32,
    /// The owner, watched through a pidfd from the first liveness check on.
    pub(crate) owner_watch: std::sync::OnceLock<os::PidWatch>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("name", &self.name)
            .field("type", &self.ty.name())
            .finish_non_exhaustive()
    }
}

impl Buffer {
    /// Attaches to the buffer of `ty` keyed `key` in `namespace`, refusing a segment whose
    /// layout fingerprint differs from our catalog's.
    ///
    /// # Errors
    /// [`BufferError::NotFound`], [`BufferError::NotInitialised`], [`BufferError::Foreign`],
    /// [`BufferError::TypeMismatch`], [`BufferError::FingerprintMismatch`], OS errors.
    pub fn open(
        namespace: &str,
        ty: Arc<DeviceType>,
        key: SegmentKey,
    ) -> Result<Buffer, BufferError> {
        let name = segment_name(namespace, ty.name(), key)?;
        let layout = Layout::of(&ty)?;
        let map = shm::open_existing(&name, true)?;
        Buffer::attach(map, name, ty, layout)
    }

    /// Attaches to a Smart Device buffer by UID, finding the type from the UID's device id.
    ///
    /// # Errors
    /// [`BufferError::UnknownDevice`], then as [`Buffer::open`].
    pub fn open_uid(
        namespace: &str,
        catalog: &pitcrew_catalog::Catalog,
        uid: Uid,
    ) -> Result<Buffer, BufferError> {
        let ty = catalog
            .type_of(uid)
            .ok_or_else(|| BufferError::UnknownDevice {
                uid: uid.to_string(),
                device_id: uid.device_id(),
            })?;
        Buffer::open(namespace, Arc::clone(ty), SegmentKey::Uid(uid))
    }

    pub(crate) fn attach(
        map: Mapping,
        name: String,
        ty: Arc<DeviceType>,
        layout: Layout,
    ) -> Result<Buffer, BufferError> {
        let h = map.header();
        let magic = h.magic.load(Ordering::Acquire);
        if magic == 0 {
            return Err(BufferError::NotInitialised { name });
        }
        let foreign = |detail: String| BufferError::Foreign {
            name: name.clone(),
            expected: LAYOUT_VERSION,
            detail,
        };
        if magic != MAGIC {
            return Err(foreign(format!("magic {magic:#018x}")));
        }
        if h.version != LAYOUT_VERSION {
            return Err(foreign(format!("layout version {}", h.version)));
        }
        let found = header_type_name(h);
        if found != ty.name() {
            return Err(BufferError::TypeMismatch {
                name,
                expected: ty.name().to_owned(),
                found,
            });
        }
        if h.fingerprint != ty.fingerprint() {
            return Err(BufferError::FingerprintMismatch {
                name,
                type_name: ty.name().to_owned(),
                expected: ty.fingerprint(),
                found: h.fingerprint,
            });
        }
        if h.total_len != layout.total_len() as u64 || map.len() < layout.total_len() {
            return Err(foreign(format!(
                "segment length {} for this type",
                map.len()
            )));
        }
        Ok(Buffer {
            map,
            name,
            ty,
            layout,
            pid: os::current_pid(),
            owner_watch: std::sync::OnceLock::new(),
        })
    }

    /// The segment name, e.g. `/rt-polar-bear-56668397794435742564352`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peripheral type.
    pub fn device_type(&self) -> &Arc<DeviceType> {
        &self.ty
    }

    /// The UID or index from the header.
    pub fn key(&self) -> SegmentKey {
        header_key(self.header())
    }

    /// Whether the owner currently marks the device connected.
    pub fn is_valid(&self) -> bool {
        let h = self.header();
        h.valid.load(Ordering::Acquire) == 1 && h.superseded.load(Ordering::Acquire) == 0
    }

    /// The owner's pid (0 once released).
    pub fn owner_pid(&self) -> u32 {
        self.header().owner_pid.load(Ordering::Relaxed)
    }

    /// Whether the owner process is still running. An owner killed with SIGKILL leaves its
    /// buffer valid with its last values: a consumer that acts on them (a controller
    /// driving motors) must check this, and does on every read, so the check is one
    /// `poll(2)` of a pidfd of the owner, opened at the first check.
    pub fn owner_alive(&self) -> bool {
        let pid = self.owner_pid();
        if pid == 0 {
            return false;
        }
        let watch = self.owner_watch.get_or_init(|| os::PidWatch::new(pid));
        if watch.pid() == pid {
            watch.alive()
        } else {
            // Another owner than the one first seen (a segment taken over in place).
            os::pid_alive(pid)
        }
    }

    pub(crate) fn header(&self) -> &Header {
        self.map.header()
    }

    /// The header, if the buffer is usable.
    #[inline]
    pub(crate) fn usable(&self) -> Result<&Header, BufferError> {
        let h = self.header();
        if h.valid.load(Ordering::Acquire) == 1 {
            return Ok(h);
        }
        if h.superseded.load(Ordering::Acquire) != 0 {
            return Err(BufferError::Superseded {
                name: self.name.clone(),
            });
        }
        Err(BufferError::Invalid {
            name: self.name.clone(),
        })
    }

    #[inline]
    pub(crate) fn param(&self, name: &str) -> Result<(&Param, Slot), BufferError> {
        match self.ty.params().iter().position(|p| p.name() == name) {
            Some(i) => Ok((&self.ty.params()[i], self.layout.slots[i])),
            None => Err(BufferError::UnknownParam {
                name: self.name.clone(),
                type_name: self.ty.name().to_owned(),
                param: name.to_owned(),
            }),
        }
    }

    #[inline]
    pub(crate) fn read_block(&self) -> Block<'_> {
        Block {
            hdr: &self.header().read_block,
            // SAFETY: `attach` checked the mapping covers the layout's total length.
            base: unsafe { self.map.base().add(self.layout.read_offset()) },
            len: self.layout.read_len,
            name: &self.name,
            kind: "read",
        }
    }

    #[inline]
    pub(crate) fn write_block(&self) -> Block<'_> {
        Block {
            hdr: &self.header().write_block,
            // SAFETY: as in `read_block`.
            base: unsafe { self.map.base().add(self.layout.write_offset()) },
            len: self.layout.write_len,
            name: &self.name,
            kind: "write",
        }
    }

    pub(crate) fn value_err(&self, param: &Param, source: ValueError) -> BufferError {
        BufferError::Value {
            name: self.name.clone(),
            param: param.name().to_owned(),
            source,
        }
    }

    #[inline]
    fn read_slot(&self, param: &str) -> Result<(&Param, usize), BufferError> {
        let (p, slot) = self.param(param)?;
        match slot.read {
            Some(off) => Ok((p, off)),
            None => Err(BufferError::NotReadable {
                name: self.name.clone(),
                param: p.name().to_owned(),
            }),
        }
    }

    #[inline]
    pub(crate) fn write_slot(&self, param: &str) -> Result<(&Param, usize), BufferError> {
        let (p, slot) = self.param(param)?;
        match slot.write {
            Some(off) => Ok((p, off)),
            None => Err(BufferError::NotWriteable {
                name: self.name.clone(),
                param: p.name().to_owned(),
            }),
        }
    }

    /// Whether a new owner replaced this segment (the mapping is dead: open it again).
    pub fn is_superseded(&self) -> bool {
        self.header().superseded.load(Ordering::Acquire) != 0
    }

    /// Counters and timestamps (works on an invalid buffer: it is diagnostics).
    pub fn stats(&self) -> Stats {
        let h = self.header();
        let now = os::coarse_ns();
        let age = |t: u64| (t != 0).then(|| Duration::from_nanos(now.saturating_sub(t)));
        Stats {
            last_write_age: age(h.last_write_ns.load(Ordering::Relaxed)),
            last_update_age: age(h.last_update_ns.load(Ordering::Relaxed)),
            msgs_to_device: h.msgs_to_device.load(Ordering::Relaxed),
            msgs_from_device: h.msgs_from_device.load(Ordering::Relaxed),
            lock_recoveries: h.read_block.recoveries.load(Ordering::Relaxed)
                + h.write_block.recoveries.load(Ordering::Relaxed),
        }
    }

    /// The pid holding the write-block lock, if any (diagnostics and crash tests).
    pub fn write_lock_holder(&self) -> Option<u32> {
        self.write_block().holder()
    }
}

fn wrong(p: &Param, found: &str) -> ValueError {
    ValueError::WrongType {
        expected: p.ty().to_string(),
        found: found.to_owned(),
    }
}

pub(crate) fn header_type_name(h: &Header) -> String {
    let n = (h.type_name_len as usize).min(h.type_name.len());
    String::from_utf8_lossy(&h.type_name[..n]).into_owned()
}

pub(crate) fn header_namespace(h: &Header) -> String {
    let n = (h.namespace_len as usize).min(h.namespace.len());
    String::from_utf8_lossy(&h.namespace[..n]).into_owned()
}

pub(crate) fn header_key(h: &Header) -> SegmentKey {
    let raw = u128::from(h.key[0]) | (u128::from(h.key[1]) << 64);
    match (h.key_is_uid, Uid::from_u128(raw)) {
        (1, Ok(uid)) => SegmentKey::Uid(uid),
        _ => SegmentKey::Index(h.key[0] as u32),
    }
}

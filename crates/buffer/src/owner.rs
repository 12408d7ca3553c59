//! [`Owner`]: the process that creates a device's segment (device broker, gamepad bridge),
//! stores sensed values, takes consumers' writes and read requests, and toggles validity.
//!
//! Drop policy: dropping an `Owner` marks the segment invalid and released (so attached
//! consumers get a clear "released" error instead of frozen values) and unlinks its name (so
//! no `/dev/shm/<namespace>-*` is left after a clean exit). A crashed owner leaves its
//! segment behind; the next owner of the namespace resets it ([`crate::reset_stale`] or
//! [`Owner::create`] on the same name).

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_catalog::{DeviceType, Scalar, Value};

use crate::buffer::{Buffer, Subscription};
use crate::error::BufferError;
use crate::layout::{Header, Layout, LAYOUT_VERSION, MAGIC, NAMESPACE_CAP, TYPE_NAME_CAP};
use crate::name::{segment_name, SegmentKey};
use crate::os;
use crate::seqlock;
use crate::shm::{self, Mapping};

/// How long to wait for a concurrent creator to finish initialising a segment before
/// treating it as debris of a creator that crashed mid-creation.
const INIT_GRACE: Duration = Duration::from_millis(100);

/// The owner's handle. Derefs to [`Buffer`] for the read operations every user has.
#[derive(Debug)]
pub struct Owner {
    buf: Buffer,
}

impl Deref for Owner {
    type Target = Buffer;

    /// An owner is a buffer with extra rights; deref keeps `owner.get(..)` short.
    fn deref(&self) -> &Buffer {
        &self.buf
    }
}

impl Owner {
    /// Creates the segment of `ty` keyed `key`, valid, with the type's default
    /// subscription. A segment left by a dead owner (or half-created) is reset first.
    ///
    /// # Errors
    /// [`BufferError::AlreadyOwned`] when a live process owns it; OS and layout errors.
    pub fn create(
        namespace: &str,
        ty: Arc<DeviceType>,
        key: SegmentKey,
    ) -> Result<Owner, BufferError> {
        let name = segment_name(namespace, ty.name(), key)?;
        let layout = Layout::of(&ty)?;
        let started = Instant::now();
        loop {
            if let Some(map) = shm::create_exclusive(&name, layout.total_len())? {
                init(&map, namespace, &ty, key, &layout);
                let buf = Buffer::attach(map, name, ty, layout)?;
                return Ok(Owner { buf });
            }
            match shm::open_existing(&name, true) {
                Ok(old) => {
                    let h = old.header();
                    let magic = h.magic.load(Ordering::Acquire);
                    if magic == 0 && started.elapsed() < INIT_GRACE {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let pid = h.owner_pid.load(Ordering::Acquire);
                    if magic == MAGIC && pid != 0 && os::pid_alive(pid) {
                        return Err(BufferError::AlreadyOwned { name, pid });
                    }
                    tracing::warn!(buffer = %name, dead_pid = pid, "resetting a stale buffer");
                    retire(&old);
                }
                Err(BufferError::NotFound { .. }) => continue,
                Err(BufferError::NotInitialised { .. }) if started.elapsed() < INIT_GRACE => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(BufferError::NotInitialised { .. }) => {}
                Err(e) => return Err(e),
            }
            shm::unlink(&name)?;
        }
    }

    /// The read-only buffer view (also available through deref).
    pub fn buffer(&self) -> &Buffer {
        &self.buf
    }

    /// Marks the device connected or disconnected, keeping the mapping (USB contacts
    /// bounce). Only the owner can do this, so it is only on `Owner`.
    ///
    /// # Errors
    /// [`BufferError::Superseded`] if a new owner replaced this segment.
    pub fn set_valid(&self, valid: bool) -> Result<(), BufferError> {
        let h = self.header();
        if h.superseded.load(Ordering::Acquire) != 0 {
            return Err(BufferError::Superseded {
                name: self.buf.name.clone(),
            });
        }
        h.valid.store(u32::from(valid), Ordering::Release);
        notify_consumers(h);
        Ok(())
    }

    /// Stores a sensed value of a readable param.
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable param, wrong type, NaN, range.
    pub fn set<T: Scalar>(&self, param: &str, value: T) -> Result<(), BufferError> {
        self.set_value(param, value.into_value())
    }

    /// Stores one sensed [`Value`] (the allocation-free single-value path).
    ///
    /// # Errors
    /// As [`Owner::set`].
    pub fn set_value(&self, param: &str, value: Value) -> Result<(), BufferError> {
        let h = self.usable()?;
        let (p, off, stored) = self.prepare_sensed(param, value)?;
        self.read_block().write(self.buf.pid, |shadow| {
            // SAFETY: slot inside the shadow copy, whose lock we hold.
            unsafe { seqlock::store(shadow.add(off), stored.le_bytes().as_slice()) };
        })?;
        self.mark_updated(h, 1u64 << p);
        Ok(())
    }

    /// Checks a sensed value: readable scalar param, value converted to its type.
    fn prepare_sensed(&self, name: &str, v: Value) -> Result<(usize, usize, Value), BufferError> {
        let (p, slot) = self.param(name)?;
        let off = slot.read.ok_or_else(|| BufferError::NotReadable {
            name: self.buf.name.clone(),
            param: p.name().to_owned(),
        })?;
        let st = p.scalar().ok_or_else(|| {
            let e = pitcrew_catalog::ValueError::WrongType {
                expected: p.ty().to_string(),
                found: v.type_name().into(),
            };
            self.value_err(p, e)
        })?;
        let stored = v.convert(st).map_err(|e| self.value_err(p, e))?;
        Ok((p.id(), off, stored))
    }

    /// Stores several sensed values as one version and marks them updated.
    ///
    /// # Errors
    /// As [`Owner::set`]; nothing is stored when any value is refused.
    pub fn set_values(&self, values: &[(&str, Value)]) -> Result<(), BufferError> {
        let h = self.usable()?;
        let mut prepared = Vec::with_capacity(values.len());
        let mut bits = 0u64;
        for (name, v) in values {
            let (id, off, stored) = self.prepare_sensed(name, *v)?;
            bits |= 1u64 << id;
            prepared.push((off, stored.le_bytes()));
        }
        self.read_block().write(self.buf.pid, |shadow| {
            for (off, bytes) in &prepared {
                // SAFETY: slot inside the shadow copy, whose lock we hold.
                unsafe { seqlock::store(shadow.add(*off), bytes.as_slice()) };
            }
        })?;
        self.mark_updated(h, bits);
        Ok(())
    }

    /// Stores raw DEV_DATA values: one value per set bit of `params`, ascending id, at
    /// storage width, exactly as they arrived on the wire. Validated whole before storing.
    ///
    /// # Errors
    /// [`BufferError::BadRaw`] when a bit names a param without a read slot or the byte
    /// count does not add up; invalid buffer.
    pub fn set_raw(&self, params: u64, bytes: &[u8]) -> Result<(), BufferError> {
        let h = self.usable()?;
        let spans = self.spans(params, bytes.len(), false)?;
        self.read_block().write(self.buf.pid, |shadow| {
            for (off, start, width) in &spans {
                // SAFETY: slot inside the shadow copy, whose lock we hold; `start..+width`
                // is inside `bytes` (checked by `spans`).
                unsafe { seqlock::store(shadow.add(*off), &bytes[*start..*start + *width]) };
            }
        })?;
        self.mark_updated(h, params);
        Ok(())
    }

    /// The current desired values of the params in `params` (ascending id, storage width):
    /// the DEV_WRITE payload after the bitmap, from one consistent version.
    ///
    /// # Errors
    /// [`BufferError::BadRaw`] when a bit names a param without a write slot; invalid buffer.
    pub fn desired_raw(&self, params: u64) -> Result<Vec<u8>, BufferError> {
        self.buf.raw_of(params, true)
    }

    fn mark_updated(&self, h: &Header, bits: u64) {
        h.update_bits.fetch_or(bits, Ordering::Release);
        h.last_update_ns
            .store(os::monotonic_ns(), Ordering::Relaxed);
        notify_consumers(h);
    }

    /// Takes and clears the params written by consumers (to send in one DEV_WRITE).
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn take_write(&self) -> Result<u64, BufferError> {
        Ok(self.usable()?.write_bits.swap(0, Ordering::AcqRel))
    }

    /// Takes and clears the params consumers asked to read (to send in one DEV_READ).
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn take_read(&self) -> Result<u64, BufferError> {
        Ok(self.usable()?.read_bits.swap(0, Ordering::AcqRel))
    }

    /// Takes a subscription change requested by a consumer, if any (to send SUB_REQ).
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn take_subscription_change(&self) -> Result<Option<Subscription>, BufferError> {
        let h = self.usable()?;
        Ok((h.sub_dirty.swap(0, Ordering::AcqRel) == 1)
            .then(|| Subscription::unpack(h.subscription.load(Ordering::Acquire))))
    }

    /// Polling fallback: whether a write, read request or subscription change is pending.
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn pending(&self) -> Result<bool, BufferError> {
        let h = self.usable()?;
        Ok(pending(h))
    }

    /// Blocks (FUTEX_WAIT, no polling) until a consumer writes, requests a read or changes
    /// the subscription, or `timeout` passes. Returns whether something is pending.
    ///
    /// # Errors
    /// Invalid buffer (checked on entry and after each wake-up).
    pub fn wait_for_change(&self, timeout: Duration) -> Result<bool, BufferError> {
        let h = self.usable()?;
        let deadline = Instant::now() + timeout;
        h.waiters.fetch_add(1, Ordering::SeqCst);
        let _unregister = Waiter(h);
        loop {
            let seen = h.change.load(Ordering::SeqCst);
            if pending(h) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            os::futex_wait(&h.change, seen, deadline - now);
            self.usable()?;
        }
    }

    /// Counts messages sent to the device.
    pub fn count_to_device(&self, n: u64) {
        self.header().msgs_to_device.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts messages received from the device.
    pub fn count_from_device(&self, n: u64) {
        self.header()
            .msgs_from_device
            .fetch_add(n, Ordering::Relaxed);
    }
}

struct Waiter<'a>(&'a Header);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

fn pending(h: &Header) -> bool {
    h.write_bits.load(Ordering::Acquire) != 0
        || h.read_bits.load(Ordering::Acquire) != 0
        || h.sub_dirty.load(Ordering::Acquire) != 0
}

impl Drop for Owner {
    fn drop(&mut self) {
        let h = self.header();
        if h.owner_pid.load(Ordering::Acquire) == self.buf.pid
            && h.superseded.load(Ordering::Acquire) == 0
        {
            retire(&self.buf.map);
            if let Err(e) = shm::unlink(&self.buf.name) {
                tracing::warn!(buffer = %self.buf.name, error = %e, "could not unlink buffer");
            }
        }
    }
}

/// Marks a segment dead for anyone still mapping it: invalid, released, no owner.
pub(crate) fn retire(map: &Mapping) {
    let h = map.header();
    if h.magic.load(Ordering::Acquire) == MAGIC {
        h.valid.store(0, Ordering::Release);
        h.superseded.store(1, Ordering::Release);
        h.owner_pid.store(0, Ordering::Release);
        notify_consumers(h);
    }
}

/// Bumps the consumers' futex word and wakes them only if one is blocked, so that an owner
/// storing at 1 kHz with no waiting controller pays one atomic add, not a syscall. SeqCst
/// here and in [`Buffer::wait_for_update`] forms the Dekker pattern against a lost wake-up.
fn notify_consumers(h: &Header) {
    h.updated.fetch_add(1, Ordering::SeqCst);
    if h.update_waiters.load(Ordering::SeqCst) != 0 {
        os::futex_wake(&h.updated);
    }
}

/// Fills the header of a freshly created (zeroed, exclusively ours) segment, publishing the
/// magic last so that a consumer never sees a half-written header.
fn init(map: &Mapping, namespace: &str, ty: &DeviceType, key: SegmentKey, layout: &Layout) {
    let hp = map.base().cast::<Header>();
    let (is_uid, raw) = match key {
        SegmentKey::Uid(u) => (1, u.as_u128()),
        SegmentKey::Index(i) => (0, u128::from(i)),
    };
    let mut type_name = [0u8; TYPE_NAME_CAP];
    let tn = ty.name().as_bytes();
    type_name[..tn.len()].copy_from_slice(tn);
    let mut ns = [0u8; NAMESPACE_CAP];
    ns[..namespace.len()].copy_from_slice(namespace.as_bytes());
    // SAFETY: the segment was just created with O_EXCL and its magic is 0, so no other
    // process interprets these plain fields yet; the pointers are in bounds and aligned
    // (page-aligned mapping of at least HEADER_LEN bytes).
    unsafe {
        (&raw mut (*hp).version).write(LAYOUT_VERSION);
        (&raw mut (*hp).header_len).write(crate::layout::HEADER_LEN as u32);
        (&raw mut (*hp).fingerprint).write(ty.fingerprint());
        (&raw mut (*hp).total_len).write(layout.total_len() as u64);
        (&raw mut (*hp).read_len).write(layout.read_len as u64);
        (&raw mut (*hp).write_len).write(layout.write_len as u64);
        (&raw mut (*hp).key_is_uid).write(is_uid);
        (&raw mut (*hp).key).write([raw as u64, (raw >> 64) as u64]);
        (&raw mut (*hp).param_count).write(ty.params().len() as u32);
        (&raw mut (*hp).type_name_len).write(tn.len() as u32);
        (&raw mut (*hp).type_name).write(type_name);
        (&raw mut (*hp).namespace_len).write(namespace.len() as u32);
        (&raw mut (*hp).namespace).write(ns);
        (&raw mut (*hp).created_ns).write(os::monotonic_ns());
    }
    let h = map.header();
    let sub = Subscription {
        params: ty.default_subscription() as u32,
        interval: if ty.is_smart() {
            ty.sub_interval()
        } else {
            Duration::ZERO
        },
    };
    h.subscription.store(sub.pack(), Ordering::Relaxed);
    h.owner_pid.store(os::current_pid(), Ordering::Relaxed);
    h.valid.store(1, Ordering::Relaxed);
    h.magic.store(MAGIC, Ordering::Release);
}

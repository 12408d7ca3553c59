//! [`Buffer`]: an attached device buffer and every consumer operation (typed and raw reads,
//! clamped writes, read requests, subscription, update take-and-clear).
//!
//! Every operation first checks that the owner marked the buffer valid, then the access rule
//! of the param, so a disconnected device or a wrong name is an error, never a stale value.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_catalog::{Clamp, DeviceType, LeBytes, Param, Scalar, Uid, Value, ValueError};

use crate::error::BufferError;
use crate::layout::{Header, Layout, Slot, LAYOUT_VERSION, MAGIC};
use crate::name::{segment_name, SegmentKey};
use crate::os;
use crate::seqlock::{self, Block};
use crate::shm::{self, Mapping};

/// A Smart Device subscription: which params the device streams, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Params bitmap (bit i = param id i).
    pub params: u32,
    /// Interval between DEV_DATA messages; zero means no subscription.
    pub interval: Duration,
}

impl Subscription {
    pub(crate) fn pack(self) -> u64 {
        let ms = u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX);
        (u64::from(ms) << 32) | u64::from(self.params)
    }

    pub(crate) fn unpack(v: u64) -> Self {
        Subscription {
            params: v as u32,
            interval: Duration::from_millis(v >> 32),
        }
    }
}

/// What a consumer write did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteOutcome {
    /// Set when the value was clamped to the param's bounds (a warning was logged).
    pub clamped: Option<Clamp>,
}

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

    #[inline]
    fn typed<T: Scalar>(&self, p: &Param, block: &Block<'_>, off: usize) -> Result<T, BufferError> {
        let Some(st) = p.scalar().filter(|s| T::matches(*s)) else {
            let found = std::any::type_name::<T>();
            return Err(self.value_err(p, wrong(p, found)));
        };
        let mut b = [0u8; 8];
        let w = p.storage_width();
        // SAFETY: `off + w` lies inside one block copy (layout).
        block.read(|copy| unsafe { seqlock::load(copy.add(off), &mut b[..w]) });
        let v = Value::from_le_bytes(st, &b[..w]).map_err(|e| self.value_err(p, e))?;
        T::from_value(v).ok_or_else(|| self.value_err(p, wrong(p, std::any::type_name::<T>())))
    }

    /// Reads a readable (sensed) param as `T` (`f32` for float/double params).
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable param, or `T` not matching its type.
    #[inline]
    pub fn get<T: Scalar>(&self, param: &str) -> Result<T, BufferError> {
        self.usable()?;
        let (p, off) = self.read_slot(param)?;
        self.typed(p, &self.read_block(), off)
    }

    /// Reads a readable scalar param as a [`Value`].
    ///
    /// # Errors
    /// As [`Buffer::get`]; array params are refused (use [`Buffer::get_raw`]).
    pub fn get_value(&self, param: &str) -> Result<Value, BufferError> {
        let v = self.read_values(&[param])?;
        v.into_iter()
            .next()
            .ok_or_else(|| BufferError::UnknownParam {
                name: self.name.clone(),
                type_name: self.ty.name().to_owned(),
                param: param.to_owned(),
            })
    }

    /// Reads several readable scalar params from one consistent version of the block.
    ///
    /// # Errors
    /// As [`Buffer::get_value`], for the first failing param.
    pub fn read_values(&self, params: &[&str]) -> Result<Vec<Value>, BufferError> {
        self.usable()?;
        self.values_from(params, false)
    }

    /// Reads the desired (write-block) value of writeable params, from one version.
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-writeable params, arrays.
    pub fn desired_values(&self, params: &[&str]) -> Result<Vec<Value>, BufferError> {
        self.usable()?;
        self.values_from(params, true)
    }

    fn values_from(&self, params: &[&str], desired: bool) -> Result<Vec<Value>, BufferError> {
        let mut at = Vec::with_capacity(params.len());
        for name in params {
            let (p, off) = if desired {
                self.write_slot(name)?
            } else {
                self.read_slot(name)?
            };
            let st = p
                .scalar()
                .ok_or_else(|| self.value_err(p, wrong(p, "scalar")))?;
            at.push((p, st, off));
        }
        let block = if desired {
            self.write_block()
        } else {
            self.read_block()
        };
        let raw = block.read(|copy| {
            at.iter()
                .map(|(p, _, off)| {
                    let mut b = [0u8; 8];
                    // SAFETY: slot inside one copy.
                    unsafe { seqlock::load(copy.add(*off), &mut b[..p.storage_width()]) };
                    b
                })
                .collect::<Vec<_>>()
        });
        at.iter()
            .zip(raw)
            .map(|((p, st, _), b)| {
                Value::from_le_bytes(*st, &b[..p.storage_width()]).map_err(|e| self.value_err(p, e))
            })
            .collect()
    }

    /// The sensed values of the params in `params` (ascending id, storage width) from one
    /// consistent version: the mirror of [`Owner::set_raw`](crate::Owner::set_raw), for
    /// segments read as one record (the robot state).
    ///
    /// # Errors
    /// [`BufferError::BadRaw`] when a bit names a param without a read slot; invalid buffer.
    pub fn sensed_raw(&self, params: u64) -> Result<Vec<u8>, BufferError> {
        self.raw_of(params, false)
    }

    /// The values of `params` (ascending id, storage width) from one version of the write
    /// block (`desired`) or the read block.
    pub(crate) fn raw_of(&self, params: u64, desired: bool) -> Result<Vec<u8>, BufferError> {
        self.usable()?;
        let total: usize = self.ty.params_in(params).map(|p| p.storage_width()).sum();
        let spans = self.spans(params, total, desired)?;
        let mut out = vec![0u8; total];
        let block = if desired {
            self.write_block()
        } else {
            self.read_block()
        };
        block.read(|copy| {
            for (off, start, width) in &spans {
                // SAFETY: slot inside one copy; destination range inside `out`.
                unsafe { seqlock::load(copy.add(*off), &mut out[*start..*start + *width]) };
            }
        });
        Ok(out)
    }

    /// `(slot offset, byte offset in the payload, width)` per set bit, checking that each
    /// bit names a param with a slot in the block and that widths add up to `len`.
    pub(crate) fn spans(
        &self,
        params: u64,
        len: usize,
        write: bool,
    ) -> Result<Vec<(usize, usize, usize)>, BufferError> {
        let bad = |reason: String| BufferError::BadRaw {
            name: self.name.clone(),
            reason,
        };
        let n = self.device_type().params().len();
        if n < 64 && params >> n != 0 {
            return Err(bad(format!(
                "bitmap {params:#x} names params beyond the {n} of the type"
            )));
        }
        let mut spans = Vec::new();
        let mut at = 0usize;
        for (i, slot) in self.layout.slots.iter().enumerate() {
            if params & (1u64 << i) == 0 {
                continue;
            }
            let off = if write { slot.write } else { slot.read };
            let off = off.ok_or_else(|| {
                bad(format!(
                    "param {i} has no {} slot",
                    if write { "write" } else { "read" }
                ))
            })?;
            spans.push((off, at, slot.width));
            at += slot.width;
        }
        if at != len {
            return Err(bad(format!("the bitmap needs {at} value bytes, got {len}")));
        }
        Ok(spans)
    }

    /// Reads the raw little-endian bytes of a readable param (arrays such as `send_buf`).
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable param.
    pub fn get_raw(&self, param: &str) -> Result<Vec<u8>, BufferError> {
        self.usable()?;
        let (p, off) = self.read_slot(param)?;
        let mut out = vec![0u8; p.storage_width()];
        // SAFETY: slot inside one copy.
        self.read_block()
            .read(|copy| unsafe { seqlock::load(copy.add(off), &mut out) });
        Ok(out)
    }

    /// Writes a desired value (consumer), clamping numbers to the bounds with one warning.
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-writeable param, wrong type, NaN, integer out of range.
    #[inline]
    pub fn write<T: Scalar>(&self, param: &str, value: T) -> Result<WriteOutcome, BufferError> {
        let h = self.usable()?;
        let (p, off) = self.write_slot(param)?;
        if !p.scalar().is_some_and(T::matches) {
            return Err(self.value_err(p, wrong(p, std::any::type_name::<T>())));
        }
        self.write_one(h, p, off, value.into_value())
    }

    /// Writes a desired [`Value`] (integers of any width are range-checked into the type).
    ///
    /// # Errors
    /// As [`Buffer::write`].
    pub fn write_value(&self, param: &str, value: Value) -> Result<WriteOutcome, BufferError> {
        let h = self.usable()?;
        let (p, off) = self.write_slot(param)?;
        self.write_one(h, p, off, value)
    }

    /// The single-value hot path: no allocation.
    #[inline]
    fn write_one(
        &self,
        h: &Header,
        p: &Param,
        off: usize,
        value: Value,
    ) -> Result<WriteOutcome, BufferError> {
        let (stored, clamped) = self.prepare(p, value)?;
        self.publish_writes(h, &[(off, stored.le_bytes())], 1u64 << p.id())?;
        Ok(WriteOutcome { clamped })
    }

    /// Converts, range-checks and clamps a value for a write, warning once per clamp.
    #[inline]
    fn prepare(&self, p: &Param, value: Value) -> Result<(Value, Option<Clamp>), BufferError> {
        let (stored, clamp) = p.prepare_write(value).map_err(|e| self.value_err(p, e))?;
        if let Some(c) = clamp {
            tracing::warn!(
                buffer = %self.name,
                param = p.name(),
                requested = %c.requested,
                stored = %c.stored,
                "value clamped to the param's bounds"
            );
        }
        Ok((stored, clamp))
    }

    /// Writes several desired values as one version (one DEV_WRITE), then wakes the owner.
    /// Returns the clamp of each value, in order.
    ///
    /// # Errors
    /// As [`Buffer::write`]; nothing is written when any value is refused.
    pub fn write_values(
        &self,
        values: &[(&str, Value)],
    ) -> Result<Vec<Option<Clamp>>, BufferError> {
        let h = self.usable()?;
        let mut prepared = Vec::with_capacity(values.len());
        let mut clamps = Vec::with_capacity(values.len());
        let mut bits = 0u64;
        for (name, v) in values {
            let (p, off) = self.write_slot(name)?;
            let (stored, clamp) = self.prepare(p, *v)?;
            bits |= 1u64 << p.id();
            prepared.push((off, stored.le_bytes()));
            clamps.push(clamp);
        }
        self.publish_writes(h, &prepared, bits)?;
        Ok(clamps)
    }

    /// Publishes prepared write-block values, sets their `write` bits, stamps the time and
    /// wakes the owner.
    #[inline]
    fn publish_writes(
        &self,
        h: &Header,
        items: &[(usize, LeBytes)],
        bits: u64,
    ) -> Result<(), BufferError> {
        self.write_block().write(self.pid, |shadow| {
            for (off, bytes) in items {
                // SAFETY: slot inside the shadow copy, whose lock we hold.
                unsafe { seqlock::store(shadow.add(*off), bytes.as_slice()) };
            }
        })?;
        h.last_writer.store(self.pid, Ordering::Relaxed);
        h.write_bits.fetch_or(bits, Ordering::Release);
        h.last_write_ns.store(os::coarse_ns(), Ordering::Relaxed);
        self.notify_owner(h);
        Ok(())
    }

    /// Asks the owner for a fresh reading of these readable params (one DEV_READ).
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable params.
    pub fn request_read(&self, params: &[&str]) -> Result<(), BufferError> {
        let h = self.usable()?;
        let mut bits = 0u64;
        for name in params {
            let (p, _) = self.read_slot(name)?;
            bits |= 1u64 << p.id();
        }
        h.read_bits.fetch_or(bits, Ordering::Release);
        self.notify_owner(h);
        Ok(())
    }

    /// Takes and clears the set of params the owner updated since the last take (the update
    /// publisher's input).
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn take_update(&self) -> Result<u64, BufferError> {
        Ok(self.usable()?.update_bits.swap(0, Ordering::AcqRel))
    }

    /// Whether a new owner replaced this segment (the mapping is dead: open it again).
    pub fn is_superseded(&self) -> bool {
        self.header().superseded.load(Ordering::Acquire) != 0
    }

    /// The pid of the consumer that wrote last (0 before any write). The owner reads it
    /// after taking the `write` set, which the write publishes after storing the pid.
    pub fn last_writer(&self) -> u32 {
        self.header().last_writer.load(Ordering::Relaxed)
    }

    /// The owner's change counter, to hand to [`Buffer::wait_for_update`]: it moves on every
    /// store of sensed values and every validity change. Works on an invalid buffer.
    pub fn update_count(&self) -> u32 {
        self.header().updated.load(Ordering::SeqCst)
    }

    /// Blocks (FUTEX_WAIT, no polling) until the owner stores values or changes validity
    /// after `seen` was read from [`Buffer::update_count`], or `timeout` passes; returns the
    /// new count (equal to `seen` on timeout). This is how a controller reacts to a gamepad
    /// change within microseconds instead of at its next tick. It works on an invalid
    /// buffer, so a controller can wait for a disconnected gamepad to come back.
    ///
    /// # Errors
    /// [`BufferError::Superseded`] when a new owner replaced the segment: open it again.
    pub fn wait_for_update(&self, seen: u32, timeout: Duration) -> Result<u32, BufferError> {
        let h = self.header();
        let deadline = Instant::now() + timeout;
        h.update_waiters.fetch_add(1, Ordering::SeqCst);
        let _unregister = UpdateWaiter(h);
        loop {
            if h.superseded.load(Ordering::Acquire) != 0 {
                return Err(BufferError::Superseded {
                    name: self.name.clone(),
                });
            }
            let now_count = h.updated.load(Ordering::SeqCst);
            if now_count != seen {
                return Ok(now_count);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(seen);
            }
            os::futex_wait(&h.updated, seen, deadline - now);
        }
    }

    /// The current subscription.
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn subscription(&self) -> Result<Subscription, BufferError> {
        Ok(Subscription::unpack(
            self.usable()?.subscription.load(Ordering::Acquire),
        ))
    }

    /// Asks for a new subscription (masked to readable params) and wakes the owner, which
    /// sends SUB_REQ.
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn set_subscription(&self, sub: Subscription) -> Result<(), BufferError> {
        let h = self.usable()?;
        let masked = Subscription {
            params: sub.params & (self.ty.readable_mask() as u32),
            ..sub
        };
        h.subscription.store(masked.pack(), Ordering::Release);
        h.sub_dirty.store(1, Ordering::Release);
        self.notify_owner(h);
        Ok(())
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

    /// Bumps the futex word and wakes the owner only if it is blocked (a wake syscall per
    /// write would cost ~1 µs). SeqCst on both sides (here and in `wait_for_change`) forms
    /// the Dekker pattern that rules out a lost wake-up.
    #[inline]
    fn notify_owner(&self, h: &Header) {
        h.change.fetch_add(1, Ordering::SeqCst);
        if h.waiters.load(Ordering::SeqCst) != 0 {
            os::futex_wake(&h.change);
        }
    }
}

/// Unregisters a consumer blocked in [`Buffer::wait_for_update`], also on early return.
struct UpdateWaiter<'a>(&'a Header);

impl Drop for UpdateWaiter<'_> {
    fn drop(&mut self) {
        self.0.update_waiters.fetch_sub(1, Ordering::SeqCst);
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

//! The consumer's write path: desired values stored into the write block, clamped to the
//! param's bounds, then published to the owner (the `write` bits, the time, a wake-up).
//!
//! [`Buffer::write`] is the hot path (a controller's motor command): no allocation, one
//! seqlock version, and a wake syscall only when the owner is blocked.

use std::sync::atomic::Ordering;

use pitcrew_catalog::{Clamp, LeBytes, Param, Scalar, Value};

use super::{wrong, Buffer};
use crate::error::BufferError;
use crate::layout::Header;
use crate::os;
use crate::seqlock;

/// What a consumer write did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteOutcome {
    /// Set when the value was clamped to the param's bounds (a warning was logged).
    pub clamped: Option<Clamp>,
}

impl Buffer {
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

    /// The pid of the consumer that wrote last (0 before any write). The owner reads it
    /// after taking the `write` set, which the write publishes after storing the pid.
    pub fn last_writer(&self) -> u32 {
        self.header().last_writer.load(Ordering::Relaxed)
    }
}

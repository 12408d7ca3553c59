//! What a consumer asks of the owner besides writing values: a fresh reading (one DEV_READ)
//! or a new subscription (SUB_REQ), and the doorbell every request and write rings.
//!
//! A request is a flag in the control block plus [`Buffer::notify_owner`]; the owner's
//! device loop takes the flags when it wakes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Buffer;
use crate::error::BufferError;
use crate::layout::Header;
use crate::os;

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

impl Buffer {
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

    /// Bumps the futex word and wakes the owner only if it is blocked (a wake syscall per
    /// write would cost ~1 µs). SeqCst on both sides (here and in `wait_for_change`) forms
    /// the Dekker pattern that rules out a lost wake-up.
    #[inline]
    pub(super) fn notify_owner(&self, h: &Header) {
        h.change.fetch_add(1, Ordering::SeqCst);
        if h.waiters.load(Ordering::SeqCst) != 0 {
            os::futex_wake(&h.change);
        }
    }
}

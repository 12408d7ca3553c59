//! What the owner tells consumers: the set of params it updated (taken by the update
//! publisher) and the change counter a controller blocks on with FUTEX_WAIT.
//!
//! Both work without polling: a controller wakes within microseconds of a gamepad change,
//! and also while the buffer is invalid, so it can wait for a device to come back.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Buffer;
use crate::error::BufferError;
use crate::layout::Header;
use crate::os;

impl Buffer {
    /// Takes and clears the set of params the owner updated since the last take (the update
    /// publisher's input).
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn take_update(&self) -> Result<u64, BufferError> {
        Ok(self.usable()?.update_bits.swap(0, Ordering::AcqRel))
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
}

/// Unregisters a consumer blocked in [`Buffer::wait_for_update`], also on early return.
struct UpdateWaiter<'a>(&'a Header);

impl Drop for UpdateWaiter<'_> {
    fn drop(&mut self) {
        self.0.update_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

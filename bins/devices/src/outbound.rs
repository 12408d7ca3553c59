//! [`Outbound`]: what a consumer asked of a device, taken from its buffer and sent on its
//! line by the device's waker thread, the thread the consumer's futex wake-up ran.
//!
//! On the joystick path this is the last hop: the controller writes the buffer, the waker
//! wakes, and the DEV_WRITE leaves from that thread. The event loop (one more thread
//! wake-up) hears of a write only when its bookkeeping needs it: a lease that starts, or a
//! writer process to watch for its exit.
//!
//! The robot state decides what goes out (robot-state.md rules 2, 5, 6), and the check is
//! made under the line's lock, the lock every frame of the session takes too. So a write
//! checked before a disable or an emergency stop is on the line before the safe values that
//! follow them, and one checked after sees the new state: a consumer's value can never
//! reach a motor after its safe value.
//!
//! A device's emergency stop leaves by this path too, from its session
//! ([`Outbound::estop`]): the pending writes it takes get the gate's answer from the same
//! [`policy::route`], under the same lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pitcrew_buffer::Owner;
use pitcrew_catalog::{DeviceType, Uid};
use pitcrew_sdp::Message;
use tokio::sync::{watch, Notify};

use crate::estop::{self, Latch};
use crate::lease::{self, LeaseClock};
use crate::line::Line;
use crate::policy;
use crate::registry::Counters;
use crate::robot::Outputs;
use crate::tap::{BrokerEvent, BrokerTap};

/// One device's outbound path, shared by its session and its waker thread.
#[derive(Debug)]
pub struct Outbound {
    line: Arc<Line>,
    uid: Uid,
    owner: Arc<Owner>,
    outputs: watch::Receiver<Outputs>,
    latch: Arc<Latch>,
    counters: Arc<Counters>,
    clock: Arc<Mutex<LeaseClock>>,
    tap: BrokerTap,
    /// Whether an output write held back while disabled was logged (once per disable).
    held_logged: AtomicBool,
    /// Tells the session that its leases need a look, or that the line failed.
    news: Notify,
    /// Why the waker thread could not write, for the session to end on.
    failure: Mutex<Option<std::io::Error>>,
}

/// What [`Outbound::new`] is built from.
#[derive(Debug)]
pub struct OutboundParts {
    /// The device's line.
    pub line: Arc<Line>,
    /// Its UID.
    pub uid: Uid,
    /// Its buffer.
    pub owner: Arc<Owner>,
    /// What the robot state lets outputs do.
    pub outputs: watch::Receiver<Outputs>,
    /// The emergency-stop latch.
    pub latch: Arc<Latch>,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Its leases.
    pub clock: Arc<Mutex<LeaseClock>>,
    /// The recording tap.
    pub tap: BrokerTap,
}

impl Outbound {
    /// The outbound path of one attached device.
    pub fn new(parts: OutboundParts) -> Outbound {
        Outbound {
            line: parts.line,
            uid: parts.uid,
            owner: parts.owner,
            outputs: parts.outputs,
            latch: parts.latch,
            counters: parts.counters,
            clock: parts.clock,
            tap: parts.tap,
            held_logged: AtomicBool::new(false),
            news: Notify::new(),
            failure: Mutex::new(None),
        }
    }

    /// Takes the buffer's pending subscription change, writes and read requests and sends
    /// them (SUB_REQ, DEV_WRITE split as needed, DEV_READ), as the robot state allows.
    /// Called by the waker thread when the buffer changed, with a buffer of its own that it
    /// reuses (no allocation per write); a failure to write is kept for the session, which
    /// ends on it.
    pub fn forward_pending(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut line = self.line.lock_blocking();
        let (count, look) = self.pending_frames(out);
        if out.is_empty() {
            return;
        }
        let result = line.write_all_blocking(out);
        // Offered under the lock, as the session's estop is: the recording keeps the order
        // of the wire.
        if result.is_ok() {
            self.owner.count_to_device(count);
            self.offer_sent(out);
        }
        drop(line);
        match result {
            Ok(()) if look => self.news.notify_one(),
            Ok(()) => {}
            Err(e) => {
                *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                self.news.notify_one();
            }
        }
    }

    /// Resolves when the leases need the session's look (a lease started, a new writer) or
    /// the line failed, which it returns.
    ///
    /// # Cancel safety
    /// Cancel safe: a notification that arrives while nobody waits is kept for the next call.
    pub async fn news(&self) -> Option<std::io::Error> {
        self.news.notified().await;
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// How long a write to the device's line may wait for room.
    pub fn write_stall(&self) -> std::time::Duration {
        self.line.stall()
    }

    /// The device's buffer.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The outputs are driven again: the next held-back write is logged.
    pub fn rearm_hold_log(&self) {
        self.held_logged.store(false, Ordering::Relaxed);
    }

    /// The emergency stop of this device: pending consumer writes discarded, then
    /// DEV_DISABLE and the catalog's safe values, tried even on a line that failed, and
    /// offered to the tap. Returns the message count.
    ///
    /// # Errors
    /// When the line fails (or failed before and takes nothing).
    pub async fn estop(&self) -> std::io::Result<u64> {
        // Under the line's lock: the waker thread must not take the safe values this stores
        // in the buffer for a consumer's write (and count it discarded), and no consumer
        // frame may go out between the state check and these.
        let mut line = self.line.lock().await;
        let (out, count) = self.estop_frames();
        line.write_safety(&out).await?;
        self.offer_sent(&out);
        drop(line);
        Ok(count)
    }

    /// The bytes of an emergency stop for this device: DEV_DISABLE, then DEV_WRITE of the
    /// catalog's safe values (encoded from the catalog, never read back from the buffer, so
    /// a consumer writing at the same moment cannot slip its value in). Pending consumer
    /// writes are discarded, and the safe values are stored as the desired values so the
    /// buffer shows what the device was told. Returns the bytes and the message count.
    /// Runs under the line's lock ([`Outbound::estop`]).
    fn estop_frames(&self) -> (Vec<u8>, u64) {
        let ty = self.owner.device_type();
        if let Ok(bits) = self.owner.take_write() {
            // The latch is engaged: the gate discards every pending write.
            let route = policy::route(bits, ty.output_mask(), Outputs::Estopped, true);
            if route.discard != 0 {
                self.discard_writes(route.discard);
            }
        }
        let named: Vec<(&str, pitcrew_catalog::Value)> =
            ty.outputs().map(|(p, v)| (p.name(), v)).collect();
        if !named.is_empty() {
            if let Err(e) = self.owner.write_values(&named) {
                tracing::warn!(uid = %self.uid, error = %e, "estop: cannot store the safe values in the buffer");
            }
            // Our own store set `write` bits; the values go out below, from the catalog.
            let _ = self.owner.take_write();
        }
        let mut out = Vec::new();
        let count = estop::frames(ty, &mut out);
        tracing::info!(uid = %self.uid, safe = named.len(), "emergency stop: DEV_DISABLE and safe values sent");
        (out, count)
    }

    /// Frames what is pending into `out`: the message count, and whether the leases need
    /// the session's look. Runs under the line's lock (module docs).
    fn pending_frames(&self, out: &mut Vec<u8>) -> (u64, bool) {
        let mut count = 0u64;
        let mut look = false;
        let owner = &self.owner;
        if let Ok(Some(sub)) = owner.take_subscription_change() {
            count += u64::from(
                Message::sub_req(u64::from(sub.params), sub.interval)
                    .encode_frame(out)
                    .is_ok(),
            );
        }
        if let Ok(bits) = owner.take_write() {
            let outputs = owner.device_type().output_mask();
            let state = *self.outputs.borrow();
            let route = policy::route(bits, outputs, state, self.latch.is_engaged());
            if route.discard != 0 {
                self.discard_writes(route.discard);
            }
            if route.send != 0 {
                count += self.write_frames(route.send, out);
                // Outputs sent start or renew their lease.
                look = lease::lock_clock(&self.clock).forwarded(
                    route.send & outputs,
                    owner.last_writer(),
                    Instant::now(),
                );
            }
            if route.hold != 0 {
                self.hold(route.hold);
            }
        }
        if let Ok(bits) = owner.take_read() {
            if bits != 0 {
                let msg = Message::DevRead {
                    params: (bits & 0xFFFF) as u16,
                };
                count += u64::from(msg.encode_frame(out).is_ok());
            }
        }
        (count, look)
    }

    /// Drops consumer writes to outputs `bits` because the robot is not enabled: counted,
    /// logged once per disabled period.
    fn hold(&self, bits: u64) {
        self.counters.outputs_held.fetch_add(1, Ordering::Relaxed);
        if !self.held_logged.swap(true, Ordering::Relaxed) {
            let params = estop::param_names(self.owner.device_type(), bits);
            tracing::info!(uid = %self.uid, params = %params, "robot not enabled: output write not sent (further ones are only counted)");
        }
    }

    /// Drops consumer writes of `bits` because the emergency stop is latched: counted per
    /// device and in total, logged for the first one of the device only.
    pub fn discard_writes(&self, bits: u64) {
        self.counters
            .writes_discarded
            .fetch_add(1, Ordering::Relaxed);
        self.latch.count_discarded();
        if !self.counters.discard_logged.swap(true, Ordering::Relaxed) {
            let params = estop::param_names(self.owner.device_type(), bits);
            tracing::warn!(uid = %self.uid, params = %params, "emergency stop latched: write discarded (further ones for this device are only counted)");
        }
    }

    /// Frames DEV_WRITE(s) carrying the desired values of `bits`; returns how many.
    fn write_frames(&self, bits: u64, out: &mut Vec<u8>) -> u64 {
        let raw = match self.owner.desired_raw(bits) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(uid = %self.uid, error = %e, "cannot read desired values");
                return 0;
            }
        };
        let Some(data) = self.owner.device_type().param_data(bits, &raw) else {
            tracing::warn!(uid = %self.uid, bits, "desired values do not match the type");
            return 0;
        };
        let mut n = 0;
        for part in data.split() {
            if Message::DevWrite(part).encode_frame(out).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Offers frames sent to the recording tap.
    fn offer_sent(&self, frames: &[u8]) {
        let ty: &Arc<DeviceType> = self.owner.device_type();
        self.tap
            .offer_with(|| BrokerEvent::sent(self.uid, ty, frames));
    }
}

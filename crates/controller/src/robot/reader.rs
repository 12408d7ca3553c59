//! [`Robot`]: what a controller reads of the robot state — is it enabled, in which mode,
//! how long is left in the match — and a blocking wait for the next change, on the state
//! segment's futex (no polling, no RPC). When no broker runs, or it died, the robot reads
//! as disabled: a controller written for the happy path then writes nothing that matters,
//! and the broker (when it comes back) starts disabled anyway.

use std::time::Duration;

use pitcrew_buffer::{Buffer, BufferError};

use super::segment::{open_state, read_state, read_status};
use super::{Mode, RobotStatus};

/// A controller's view of the robot state of one namespace.
#[derive(Debug)]
pub struct Robot {
    namespace: String,
    buf: Option<Buffer>,
}

impl Robot {
    /// A reader for `namespace`; it attaches to the broker's segment when it exists and
    /// re-attaches after a broker restart.
    pub fn new(namespace: &str) -> Robot {
        Robot {
            namespace: namespace.to_owned(),
            buf: open_state(namespace).ok(),
        }
    }

    /// The current state; [`RobotStatus::no_broker`] (disabled) when no live broker
    /// publishes one.
    pub fn status(&mut self) -> RobotStatus {
        if !self.attach() {
            return RobotStatus::no_broker();
        }
        match &self.buf {
            Some(buf) => read_status(buf).unwrap_or_else(|_| RobotStatus::no_broker()),
            None => RobotStatus::no_broker(),
        }
    }

    /// The mode the robot is enabled in now, or `None` while it is disabled or stopped.
    pub fn enabled_mode(&mut self) -> Option<Mode> {
        if !self.attach() {
            return None;
        }
        let buf = self.buf.as_ref()?;
        read_state(buf).ok()?.mode()
    }

    /// The state segment's change counter, for [`Robot::wait_for_change`].
    pub fn change_count(&mut self) -> u32 {
        self.attach();
        self.buf.as_ref().map_or(0, Buffer::update_count)
    }

    /// Blocks until the state changed since `seen` (a [`Robot::change_count`]) or `timeout`
    /// passed, and returns the new count. Without a broker it sleeps for `timeout`, then
    /// looks for a new one.
    ///
    /// # Errors
    /// None that a controller must handle: a superseded segment (the broker restarted) is
    /// re-attached to, and the call returns so the caller reads the new state.
    pub fn wait_for_change(&mut self, seen: u32, timeout: Duration) -> Result<u32, BufferError> {
        self.attach();
        let Some(buf) = &self.buf else {
            std::thread::sleep(timeout);
            return Ok(self.change_count());
        };
        match buf.wait_for_update(seen, timeout) {
            Ok(count) => Ok(count),
            Err(BufferError::Superseded { .. }) | Err(BufferError::Invalid { .. }) => {
                self.buf = None;
                Ok(self.change_count().wrapping_add(1))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the segment if not open, or re-opens it if its broker replaced it or died;
    /// true when the segment held now has a live broker (one liveness check per call:
    /// the gamepad receiver asks at every driver-station datagram).
    fn attach(&mut self) -> bool {
        if self
            .buf
            .as_ref()
            .is_some_and(|b| !b.is_superseded() && b.owner_alive())
        {
            return true;
        }
        match open_state(&self.namespace) {
            Ok(buf) => {
                let live = buf.owner_alive();
                self.buf = Some(buf);
                live
            }
            Err(_) => false,
        }
    }
}

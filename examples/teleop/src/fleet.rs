//! The koala-bears of the namespace. The device broker creates one buffer per device UID and
//! keeps it across unplug/replug (invalid meanwhile), so the fleet lists the namespace's
//! segments now and then, opens new koala-bears by UID, and writes each motor pair as one
//! DEV_WRITE only when the target changed or the device came back.

use std::collections::BTreeMap;

use pitcrew_buffer::{BufferError, SegmentKey};
use pitcrew_catalog::{Catalog, Uid, Value};
use pitcrew_controller::device::Device;

use crate::drive::Target;

/// The device type this controller drives.
pub const TYPE_NAME: &str = "koala-bear";

/// One koala-bear and what it was last sent.
struct Motor {
    device: Device,
    /// `None` when the device must be (re)sent the target: new, or back from a disconnect.
    sent: Option<Target>,
}

/// Every koala-bear of one namespace, by UID.
pub struct Fleet {
    namespace: String,
    catalog: &'static Catalog,
    motors: BTreeMap<Uid, Motor>,
}

impl Fleet {
    /// An empty fleet; call [`Fleet::rescan`] to find the devices.
    pub fn new(namespace: &str, catalog: &'static Catalog) -> Fleet {
        Fleet {
            namespace: namespace.to_owned(),
            catalog,
            motors: BTreeMap::new(),
        }
    }

    /// Opens the koala-bears that appeared since the last scan.
    pub fn rescan(&mut self) {
        let segments = match pitcrew_buffer::list(&self.namespace) {
            Ok(segments) => segments,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the device buffers");
                return;
            }
        };
        for segment in segments {
            let SegmentKey::Uid(uid) = segment.key else {
                continue;
            };
            if segment.type_name != TYPE_NAME
                || !segment.owner_alive
                || self.motors.contains_key(&uid)
            {
                continue;
            }
            match Device::open(&self.namespace, self.catalog, TYPE_NAME, uid) {
                Ok(device) => {
                    tracing::info!(%uid, "driving a koala-bear");
                    self.motors.insert(uid, Motor { device, sent: None });
                }
                // Not connected yet: it is opened at a later scan.
                Err(BufferError::Invalid { .. }) => {}
                Err(e) => tracing::warn!(%uid, error = %e, "cannot open a koala-bear"),
            }
        }
    }

    /// Sends `target` to every koala-bear, every time: the broker holds an output only for
    /// its lease, so a controller refreshes its values each cycle, changed or not.
    pub fn drive(&mut self, target: Target) {
        let mut gone = Vec::new();
        for (uid, motor) in &mut self.motors {
            let values = [
                ("duty_cycle_a", Value::F32(target.a)),
                ("duty_cycle_b", Value::F32(target.b)),
            ];
            match motor.device.buffer().write_values(&values) {
                Ok(_) => motor.sent = Some(target),
                // Unplugged: the broker keeps the buffer; send again once it is back.
                Err(BufferError::Invalid { .. }) => motor.sent = None,
                Err(e) => {
                    // Superseded (the broker restarted) or refused: reopen at the next scan.
                    tracing::info!(%uid, error = %e, "letting go of a koala-bear");
                    gone.push(*uid);
                }
            }
        }
        for uid in gone {
            self.motors.remove(&uid);
        }
    }

    /// How many koala-bears are being driven.
    pub fn len(&self) -> usize {
        self.motors.len()
    }
}

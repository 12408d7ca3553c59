//! [`Device`]: a Smart Device's buffer by UID, for controllers: `get::<f32>("enc_pos_a")`,
//! `set("duty_cycle_a", 0.5)`. Every problem is a [`BufferError`]; nothing here panics.
//!
//! Writes to an *output* (a `duty_cycle`, a servo position) reach the motor only while the
//! robot is enabled, and hold for the output lease (robot-state.md): a controller writes
//! them every cycle, which is what [`Device::set`] is cheap enough for (tens of ns).

use std::sync::Arc;

use pitcrew_buffer::{Buffer, BufferError, SegmentKey, WriteOutcome};
use pitcrew_catalog::{Catalog, DeviceType, Scalar, Uid};

/// A Smart Device buffer, for controllers and the CLI.
#[derive(Debug)]
pub struct Device {
    buf: Buffer,
}

impl Device {
    /// Opens the device of type `type_name` with `uid`.
    ///
    /// # Errors
    /// [`BufferError::UnknownType`], then as [`Buffer::open`].
    pub fn open(
        namespace: &str,
        catalog: &Catalog,
        type_name: &str,
        uid: Uid,
    ) -> Result<Device, BufferError> {
        let ty = type_named(catalog, type_name)?;
        Ok(Device {
            buf: Buffer::open(namespace, ty, SegmentKey::Uid(uid))?,
        })
    }

    /// Opens a device by UID alone (the type comes from the UID's device id).
    ///
    /// # Errors
    /// As [`Buffer::open_uid`].
    pub fn open_uid(namespace: &str, catalog: &Catalog, uid: Uid) -> Result<Device, BufferError> {
        Ok(Device {
            buf: Buffer::open_uid(namespace, catalog, uid)?,
        })
    }

    /// Reads a sensed value.
    ///
    /// # Errors
    /// As [`Buffer::get`].
    pub fn get<T: Scalar>(&self, param: &str) -> Result<T, BufferError> {
        self.buf.get(param)
    }

    /// Writes a desired value (clamped to bounds, with a warning).
    ///
    /// # Errors
    /// As [`Buffer::write`].
    pub fn set<T: Scalar>(&self, param: &str, value: T) -> Result<WriteOutcome, BufferError> {
        self.buf.write(param, value)
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buf
    }
}

pub(crate) fn type_named(catalog: &Catalog, name: &str) -> Result<Arc<DeviceType>, BufferError> {
    catalog
        .get(name)
        .cloned()
        .ok_or_else(|| BufferError::UnknownType {
            type_name: name.to_owned(),
        })
}

//! A validated peripheral type: its params in id order, access rules, default subscription
//! and the layout fingerprint that shared-memory consumers compare before attaching.

use std::fmt;
use std::time::Duration;

use crate::bounds::{Bounds, Clamp};
use crate::param_type::ParamType;
use pitcrew_sdp::{ParamData, ParamWidths, ScalarType, Value, ValueError};

/// The most params a Smart Device type may have (the SDP params bitmap is 16 bits).
pub const MAX_SMART_PARAMS: usize = 16;

/// The widest Smart Device param: a 255-byte payload minus the 2-byte bitmap.
pub const MAX_SMART_PARAM_WIDTH: usize = 253;

/// Which block(s) a param lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Readable only: a sensed value in the read block.
    Read,
    /// Writeable only: a desired value in the write block.
    Write,
    /// Both: a slot in each block.
    ReadWrite,
}

impl Access {
    /// True when the param has a read-block slot.
    pub fn readable(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    /// True when the param has a write-block slot.
    pub fn writeable(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "R",
            Access::Write => "W",
            Access::ReadWrite => "RW",
        })
    }
}

/// One validated parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) ty: ParamType,
    pub(crate) access: Access,
    pub(crate) subscribed: bool,
    pub(crate) bounds: Bounds,
    pub(crate) safe: Option<Value>,
    pub(crate) lease: Option<Duration>,
    pub(crate) width: usize,
}

impl Param {
    /// The param id (its position in the type's list; bit `id` of every bitmap).
    #[inline]
    pub fn id(&self) -> usize {
        self.id
    }

    /// The name, unique within the type.
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The storage type.
    pub fn ty(&self) -> &ParamType {
        &self.ty
    }

    /// The scalar type, or `None` for arrays.
    #[inline]
    pub fn scalar(&self) -> Option<ScalarType> {
        self.ty.as_scalar()
    }

    /// Which blocks the param lives in.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Has a read-block slot (sensed value).
    #[inline]
    pub fn readable(&self) -> bool {
        self.access.readable()
    }

    /// Has a write-block slot (desired value).
    #[inline]
    pub fn writeable(&self) -> bool {
        self.access.writeable()
    }

    /// Marked `subscribed` in the catalog (before masking to readable params).
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// The numeric bounds (unbounded when absent).
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The value to drive the param to when control is lost, if any.
    pub fn safe(&self) -> Option<Value> {
        self.safe
    }

    /// Whether the param is an *output* (robot-state.md): writeable, with a catalog `safe`
    /// value, and addressable on the wire (id < 16). Outputs are what the device broker
    /// holds safe while the robot is not enabled, drives safe when their lease runs out,
    /// and what an emergency stop resets; every part of the suite asks this one method.
    pub fn is_output(&self) -> bool {
        self.writeable()
            && self.id < MAX_SMART_PARAMS
            && self
                .safe
                .is_some_and(|v| v.le_bytes().as_slice().len() == self.width)
    }

    /// The catalog's own output lease of this param (`lease`, seconds), if it sets one;
    /// otherwise the broker's `--output-lease` applies. `Some(ZERO)` turns the lease off.
    pub fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// Bytes at storage width (arrays: all elements).
    #[inline]
    pub fn storage_width(&self) -> usize {
        self.width
    }

    /// Turns a caller's value into what is stored for a write: converts integers with a
    /// range check, refuses the wrong kind and NaN, and clamps numbers to the bounds,
    /// returning the [`Clamp`] when it did so the caller can warn once.
    ///
    /// # Errors
    /// [`ValueError`] for array params, a wrong kind, NaN or an out-of-range integer.
    #[inline]
    pub fn prepare_write(&self, value: Value) -> Result<(Value, Option<Clamp>), ValueError> {
        let Some(scalar) = self.scalar() else {
            return Err(ValueError::WrongType {
                expected: self.ty.to_string(),
                found: value.type_name().into(),
            });
        };
        let v = value.convert(scalar)?;
        self.bounds.clamp(v)
    }
}

/// The bitmap of `params` (ids at 64 or above have no bit): the inverse of
/// [`DeviceType::params_in`].
pub fn mask_of<'a>(params: impl IntoIterator<Item = &'a Param>) -> u64 {
    params
        .into_iter()
        .filter(|p| p.id < 64)
        .fold(0, |m, p| m | (1u64 << p.id))
}

/// One validated peripheral type. Immutable once loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceType {
    pub(crate) name: String,
    pub(crate) device_id: Option<u16>,
    pub(crate) sub_interval: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) params: Vec<Param>,
    pub(crate) fingerprint: u64,
}

impl DeviceType {
    /// The outputs of this type ([`Param::is_output`]) with their safe values, in id order.
    pub fn outputs(&self) -> impl Iterator<Item = (&Param, Value)> {
        self.params
            .iter()
            .filter(|p| p.is_output())
            .filter_map(|p| p.safe.map(|v| (p, v)))
    }

    /// The bitmap of this type's outputs.
    pub fn output_mask(&self) -> u64 {
        mask_of(self.outputs().map(|(p, _)| p))
    }

    /// The value widths of this type's readable params: how DEV_DATA from a device of
    /// this type is decoded.
    pub fn read_widths(&self) -> ParamWidths {
        self.widths(Param::readable)
    }

    /// The value widths of this type's writeable params: how DEV_WRITE to a device of this
    /// type is decoded.
    pub fn write_widths(&self) -> ParamWidths {
        self.widths(Param::writeable)
    }

    fn widths(&self, wanted: impl Fn(&Param) -> bool) -> ParamWidths {
        let mut w = ParamWidths::new();
        for p in self.params.iter().filter(|p| wanted(p)) {
            if let (Ok(id), Ok(width)) = (u8::try_from(p.id), u8::try_from(p.storage_width())) {
                // Only fails for ids ≥ 16 or widths > 253, which a Smart Device type cannot
                // have (the catalog refuses to load it).
                let _ = w.set(id, width);
            }
        }
        w
    }

    /// Slices `raw` (the values of params `bits` at their storage widths, in id order, as a
    /// buffer holds them) into the [`ParamData`] of a DEV_WRITE or DEV_DATA; `None` when
    /// `raw` does not hold exactly those values.
    pub fn param_data<'a>(&self, bits: u64, raw: &'a [u8]) -> Option<ParamData<'a>> {
        let mut data = ParamData::new();
        let mut at = 0usize;
        for p in self.params_in(bits) {
            if p.id >= MAX_SMART_PARAMS {
                return None;
            }
            let width = p.storage_width();
            let value = raw.get(at..at + width)?;
            data.insert(u8::try_from(p.id).ok()?, value).ok()?;
            at += width;
        }
        (at == raw.len()).then_some(data)
    }

    /// The kebab-case type name (`polar-bear`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Smart Device type id; `None` for plain peripherals (gamepad, field).
    pub fn device_id(&self) -> Option<u16> {
        self.device_id
    }

    /// True for Smart Device types (they have a device id and a control protocol).
    pub fn is_smart(&self) -> bool {
        self.device_id.is_some()
    }

    /// The subscription interval sent after discovery.
    pub fn sub_interval(&self) -> Duration {
        self.sub_interval
    }

    /// How often the host sends HB_REQ.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// The params in id order.
    #[inline]
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Looks a param up by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Looks a param up by id.
    pub fn param_by_id(&self, id: usize) -> Option<&Param> {
        self.params.get(id)
    }

    /// The params whose bit is set in `bits`, in id order: the one walk over "the params of
    /// a bitmap" (a subscription, a DEV_DATA, a write), so every reader of a bitmap skips
    /// the same ids (none beyond this type's params, none at 64 or above).
    pub fn params_in(&self, bits: u64) -> impl Iterator<Item = &Param> {
        self.params
            .iter()
            .filter(move |p| p.id < 64 && bits & (1u64 << p.id) != 0)
    }

    /// Bitmap of the default subscription: params marked `subscribed` that are readable.
    pub fn default_subscription(&self) -> u64 {
        self.mask(|p| p.subscribed && p.readable())
    }

    /// Bitmap of the readable params.
    pub fn readable_mask(&self) -> u64 {
        self.mask(Param::readable)
    }

    /// Bitmap of the writeable params.
    pub fn writeable_mask(&self) -> u64 {
        self.mask(Param::writeable)
    }

    fn mask(&self, pred: impl Fn(&Param) -> bool) -> u64 {
        mask_of(self.params.iter().filter(|p| pred(p)))
    }

    /// A stable 64-bit FNV-1a hash of the layout (type name, and each param's id, name,
    /// type and access). Shared-memory consumers compare it with the segment's header and
    /// refuse to attach on a mismatch, so a stale catalog never misreads bytes.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub(crate) fn compute_fingerprint(&self) -> u64 {
        let mut h = Fnv1a::new();
        h.write(self.name.as_bytes());
        for p in &self.params {
            h.write(&[0xFF]);
            h.write(&(p.id as u64).to_le_bytes());
            h.write(p.name.as_bytes());
            h.write(&[0xFE]);
            h.write(p.ty.to_string().as_bytes());
            h.write(&[0xFD, u8::from(p.readable()), u8::from(p.writeable())]);
        }
        h.finish()
    }
}

/// FNV-1a, 64-bit: tiny, stable across releases and platforms (unlike `DefaultHasher`).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use crate::Catalog;

    #[test]
    fn widths_and_param_data_follow_the_params_access_and_storage() {
        let catalog = Catalog::embedded();
        let koala = catalog.get("koala-bear").expect("shipped");
        let id = |ty: &super::DeviceType, name| ty.param(name).expect("a param").id() as u8;
        let (duty, gain) = (id(koala, "duty_cycle_a"), id(koala, "pid_kp_a"));
        let (read, write) = (koala.read_widths(), koala.write_widths());
        assert_eq!(write.width(duty), Some(4), "a float is written");
        assert_eq!(read.width(duty), Some(4), "and read back");
        assert_eq!(read.width(gain), None, "a gain is not readable");
        let switch = catalog.get("limit-switch").expect("shipped");
        assert_eq!(switch.read_widths().width(id(switch, "switch0")), Some(1));
        assert_eq!(switch.write_widths().width(id(switch, "switch0")), None);
        // Two floats as a buffer stores them, sliced for a DEV_WRITE.
        let bits = 1 << duty | 1 << gain;
        let raw = [1, 2, 3, 4, 5, 6, 7, 8];
        let data = koala.param_data(bits, &raw).expect("exactly their values");
        assert_eq!(data.get(duty), Some(&raw[..4]));
        assert_eq!(data.get(gain), Some(&raw[4..]));
        assert!(koala.param_data(bits, &raw[..7]).is_none(), "short");
        assert!(koala.param_data(1 << duty, &raw).is_none(), "long");
    }
}

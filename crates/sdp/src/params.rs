//! Parameter value sets carried by DEV_WRITE and DEV_DATA.
//!
//! The payload is a `u16` bitmap (bit i = parameter id i) followed by one value per set bit,
//! in ascending id, each at its storage width. This crate does not know the catalog: the
//! receiver says how wide each of its value slots is with [`ParamWidths`], and a message that
//! names a parameter without a slot, or whose value bytes do not add up exactly, is rejected
//! whole. Values stay raw little-endian byte slices borrowed from the packet ([`ParamData`]),
//! because the device broker copies them straight into shared memory at storage width; use
//! [`crate::Value`] to interpret them.

use std::fmt;

use thiserror::Error;

use crate::packet::MAX_PAYLOAD_LEN;

/// A Smart Device has at most 16 parameters (the bitmap is a `u16`).
pub const MAX_PARAMS: usize = 16;

/// The widest value one message can carry: 255 payload bytes minus the 2-byte bitmap.
pub const MAX_PARAM_WIDTH: usize = MAX_PAYLOAD_LEN - BITMAP_LEN;

/// Bytes taken by the params bitmap at the start of the payload.
const BITMAP_LEN: usize = 2;

/// Why a parameter set is malformed or cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParamError {
    /// A parameter id beyond the 16 a device can have.
    #[error(
        "parameter id {id} is out of range; a Smart Device has at most 16 parameters (ids 0..=15)"
    )]
    IdOutOfRange {
        /// The offending id.
        id: u8,
    },
    /// A value width of 0 or above 253 bytes.
    #[error(
        "parameter {id} is {width} bytes wide; a value must be 1..={MAX_PARAM_WIDTH} bytes \
         so that it fits one message"
    )]
    InvalidWidth {
        /// The parameter id.
        id: u8,
        /// The rejected width in bytes.
        width: usize,
    },
    /// The payload is too short to hold the bitmap.
    #[error("payload is {len} bytes, too short for the 2-byte params bitmap")]
    MissingBitmap {
        /// The payload length.
        len: usize,
    },
    /// The bitmap names a parameter the receiver has no value slot for.
    #[error(
        "the params bitmap names parameter {id}, which the receiver has no value slot for; \
         the whole message is rejected (does the device type match the catalog?)"
    )]
    NoSlot {
        /// The parameter id without a slot.
        id: u8,
    },
    /// The value bytes do not add up to the widths the bitmap implies.
    #[error(
        "the params bitmap 0x{bitmap:04X} needs {expected} value bytes but the payload carries \
         {actual}; the whole message is rejected"
    )]
    ValueBytesMismatch {
        /// The bitmap received.
        bitmap: u16,
        /// Value bytes the bitmap and slot widths require.
        expected: usize,
        /// Value bytes present after the bitmap.
        actual: usize,
    },
    /// The set does not fit one message.
    #[error(
        "parameter values need a {len}-byte payload, over the {MAX_PAYLOAD_LEN}-byte limit; \
         send them with ParamData::split"
    )]
    TooLongForOneMessage {
        /// The payload length the set would need.
        len: usize,
    },
}

/// The receiver's value slot width for each parameter id (`None` = no slot).
///
/// Built from the catalog by the caller, so this crate stays independent of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ParamWidths {
    /// Width in bytes per id; every `Some` is in `1..=MAX_PARAM_WIDTH`.
    slots: [Option<u8>; MAX_PARAMS],
}

impl ParamWidths {
    /// No slots at all: every DEV_WRITE/DEV_DATA naming a parameter is rejected.
    #[must_use]
    pub const fn new() -> ParamWidths {
        ParamWidths {
            slots: [None; MAX_PARAMS],
        }
    }

    /// Widths for ids 0..16 at once.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidWidth`] for a width of 0 or above 253.
    pub fn from_slots(slots: [Option<u8>; MAX_PARAMS]) -> Result<ParamWidths, ParamError> {
        let mut widths = ParamWidths::new();
        for (id, width) in (0u8..).zip(slots) {
            if let Some(width) = width {
                widths.set(id, width)?;
            }
        }
        Ok(widths)
    }

    /// Gives parameter `id` a slot of `width` bytes.
    ///
    /// # Errors
    ///
    /// [`ParamError::IdOutOfRange`] for `id >= 16`; [`ParamError::InvalidWidth`] for a width
    /// of 0 or above 253.
    pub fn set(&mut self, id: u8, width: u8) -> Result<(), ParamError> {
        check_width(id, usize::from(width))?;
        let slot = self
            .slots
            .get_mut(usize::from(id))
            .ok_or(ParamError::IdOutOfRange { id })?;
        *slot = Some(width);
        Ok(())
    }

    /// The slot width of parameter `id`, or `None` if the receiver has no slot for it.
    #[must_use]
    pub fn width(&self, id: u8) -> Option<u8> {
        self.slots.get(usize::from(id)).copied().flatten()
    }
}

/// Rejects widths a single message cannot carry.
fn check_width(id: u8, width: usize) -> Result<(), ParamError> {
    if (1..=MAX_PARAM_WIDTH).contains(&width) {
        Ok(())
    } else {
        Err(ParamError::InvalidWidth { id, width })
    }
}

/// Parameter ids whose bit is set in `bitmap`, ascending.
fn bitmap_ids(bitmap: u16) -> impl Iterator<Item = u8> {
    (0u8..16).filter(move |id| bitmap & (1 << id) != 0)
}

/// A set of parameter values: raw little-endian bytes per parameter id.
///
/// Borrows the bytes (from a received packet, or from the sender's buffers), so building and
/// decoding never allocate. Every value is 1..=253 bytes, so any set can be sent, split into
/// several messages by [`ParamData::split`] if it is too long for one.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ParamData<'a> {
    /// The value of each id, if present.
    values: [Option<&'a [u8]>; MAX_PARAMS],
}

impl<'a> ParamData<'a> {
    /// An empty set (bitmap 0).
    #[must_use]
    pub const fn new() -> ParamData<'a> {
        ParamData {
            values: [None; MAX_PARAMS],
        }
    }

    /// Sets the value of parameter `id`, replacing any previous one.
    ///
    /// # Errors
    ///
    /// [`ParamError::IdOutOfRange`] for `id >= 16`; [`ParamError::InvalidWidth`] for an
    /// empty value or one wider than 253 bytes.
    pub fn insert(&mut self, id: u8, value: &'a [u8]) -> Result<(), ParamError> {
        check_width(id, value.len())?;
        let slot = self
            .values
            .get_mut(usize::from(id))
            .ok_or(ParamError::IdOutOfRange { id })?;
        *slot = Some(value);
        Ok(())
    }

    /// Builder form of [`ParamData::insert`].
    ///
    /// # Errors
    ///
    /// As [`ParamData::insert`].
    pub fn with(mut self, id: u8, value: &'a [u8]) -> Result<ParamData<'a>, ParamError> {
        self.insert(id, value)?;
        Ok(self)
    }

    /// The value bytes of parameter `id`, if present.
    #[must_use]
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        self.values.get(usize::from(id)).copied().flatten()
    }

    /// The params bitmap: bit i set when parameter i has a value.
    #[must_use]
    pub fn bitmap(&self) -> u16 {
        self.iter().fold(0, |bitmap, (id, _)| bitmap | 1 << id)
    }

    /// True when no parameter has a value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// Number of parameters with a value.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.iter().flatten().count()
    }

    /// `(id, value bytes)` pairs in ascending id, the order they travel in.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + '_ {
        (0u8..)
            .zip(self.values.iter())
            .filter_map(|(id, value)| value.map(|v| (id, v)))
    }

    /// Length of the message payload this set needs: bitmap plus every value.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        BITMAP_LEN + self.iter().map(|(_, v)| v.len()).sum::<usize>()
    }

    /// Parses a DEV_WRITE/DEV_DATA payload against the receiver's slot widths.
    ///
    /// Validates the whole payload before returning anything, so a bad message is rejected
    /// whole and never half-applied.
    ///
    /// # Errors
    ///
    /// [`ParamError::MissingBitmap`], [`ParamError::NoSlot`] or
    /// [`ParamError::ValueBytesMismatch`].
    pub fn decode(payload: &'a [u8], widths: &ParamWidths) -> Result<ParamData<'a>, ParamError> {
        let (bitmap, mut rest) = payload
            .split_first_chunk::<BITMAP_LEN>()
            .ok_or(ParamError::MissingBitmap { len: payload.len() })?;
        let bitmap = u16::from_le_bytes(*bitmap);
        let mut expected = 0;
        for id in bitmap_ids(bitmap) {
            expected += usize::from(widths.width(id).ok_or(ParamError::NoSlot { id })?);
        }
        if expected != rest.len() {
            return Err(ParamError::ValueBytesMismatch {
                bitmap,
                expected,
                actual: rest.len(),
            });
        }
        // The first pass proved every id has a slot and the widths sum to `rest.len()`, so
        // the fallbacks below are never taken.
        let mut data = ParamData::new();
        for id in bitmap_ids(bitmap) {
            let width = usize::from(widths.width(id).unwrap_or_default());
            let (value, tail) = rest.split_at_checked(width).unwrap_or((rest, &[]));
            data.insert(id, value)?;
            rest = tail;
        }
        Ok(data)
    }

    /// Writes the payload (bitmap, then values in ascending id) into `out`, returning its
    /// length.
    ///
    /// # Errors
    ///
    /// [`ParamError::TooLongForOneMessage`] if the set needs more than 255 bytes; use
    /// [`ParamData::split`] first.
    pub fn encode_payload(&self, out: &mut [u8; MAX_PAYLOAD_LEN]) -> Result<usize, ParamError> {
        let len = self.payload_len();
        if len > MAX_PAYLOAD_LEN {
            return Err(ParamError::TooLongForOneMessage { len });
        }
        let (bitmap, mut rest) = out.split_at_mut(BITMAP_LEN);
        bitmap.copy_from_slice(&self.bitmap().to_le_bytes());
        for (_, value) in self.iter() {
            let (dst, tail) = rest.split_at_mut(value.len());
            dst.copy_from_slice(value);
            rest = tail;
        }
        Ok(len)
    }

    /// Splits the set into parts that each fit one message.
    ///
    /// Deterministic: parts are filled greedily in ascending parameter id, so the same set
    /// always yields the same messages. A set that fits one message (including the empty set)
    /// yields exactly one part, equal to itself.
    #[must_use]
    pub fn split(&self) -> Split<'a> {
        Split {
            data: *self,
            next_id: 0,
            started: false,
        }
    }
}

impl fmt::Debug for ParamData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(id, v)| (id, format!("{v:02x?}"))))
            .finish()
    }
}

/// Iterator over the parts of a [`ParamData`] split into message-sized pieces.
#[derive(Debug, Clone)]
pub struct Split<'a> {
    /// The set being split.
    data: ParamData<'a>,
    /// The first id not yet placed in a part.
    next_id: usize,
    /// True once a part was yielded (an empty set still yields one part).
    started: bool,
}

impl<'a> Iterator for Split<'a> {
    type Item = ParamData<'a>;

    fn next(&mut self) -> Option<ParamData<'a>> {
        if self.next_id >= MAX_PARAMS && self.started {
            return None;
        }
        let mut part = ParamData::new();
        let mut len = BITMAP_LEN;
        while let Some(&slot) = self.data.values.get(self.next_id) {
            if let Some(value) = slot {
                // Every value is at most MAX_PARAM_WIDTH, so an empty part always takes it.
                if len + value.len() > MAX_PAYLOAD_LEN && !part.is_empty() {
                    break;
                }
                if let Some(dst) = part.values.get_mut(self.next_id) {
                    *dst = Some(value);
                }
                len += value.len();
            }
            self.next_id += 1;
        }
        self.started = true;
        Some(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(slots: &[(u8, u8)]) -> ParamWidths {
        let mut widths = ParamWidths::new();
        for &(id, width) in slots {
            widths.set(id, width).expect("valid width");
        }
        widths
    }

    #[test]
    fn decodes_values_in_ascending_id() {
        let widths = widths(&[(0, 1), (2, 4), (5, 2)]);
        let payload = [0x05, 0x00, 0x01, 0xef, 0xbe, 0xad, 0xde];
        let data = ParamData::decode(&payload, &widths).expect("valid");
        assert_eq!(data.bitmap(), 0x0005);
        assert_eq!(data.get(0), Some(&[0x01][..]));
        assert_eq!(data.get(2), Some(&[0xef, 0xbe, 0xad, 0xde][..]));
        assert_eq!(data.get(5), None);
        assert_eq!(data.len(), 2);
        assert_eq!(data.payload_len(), payload.len());
    }

    #[test]
    fn rejects_bad_payloads_whole() {
        let widths = widths(&[(0, 1), (1, 4)]);
        let table: &[(&[u8], ParamError)] = &[
            (&[], ParamError::MissingBitmap { len: 0 }),
            (&[0x01], ParamError::MissingBitmap { len: 1 }),
            (&[0x04, 0x00, 0x01], ParamError::NoSlot { id: 2 }),
            (&[0x00, 0x80], ParamError::NoSlot { id: 15 }),
            (
                &[0x03, 0x00, 0x01, 0x02],
                ParamError::ValueBytesMismatch {
                    bitmap: 3,
                    expected: 5,
                    actual: 2,
                },
            ),
            (
                &[0x01, 0x00, 0x01, 0x02],
                ParamError::ValueBytesMismatch {
                    bitmap: 1,
                    expected: 1,
                    actual: 2,
                },
            ),
            (
                &[0x00, 0x00, 0x02],
                ParamError::ValueBytesMismatch {
                    bitmap: 0,
                    expected: 0,
                    actual: 1,
                },
            ),
        ];
        for (payload, error) in table {
            assert_eq!(
                ParamData::decode(payload, &widths),
                Err(*error),
                "{payload:02x?}"
            );
        }
    }

    #[test]
    fn widths_and_ids_are_checked() {
        let mut widths = ParamWidths::new();
        assert_eq!(widths.set(16, 4), Err(ParamError::IdOutOfRange { id: 16 }));
        assert_eq!(
            widths.set(3, 0),
            Err(ParamError::InvalidWidth { id: 3, width: 0 })
        );
        assert_eq!(
            widths.set(3, 254),
            Err(ParamError::InvalidWidth { id: 3, width: 254 })
        );
        assert_eq!(widths.set(3, 253), Ok(()));
        assert_eq!(widths.width(3), Some(253));
        assert_eq!(widths.width(200), None);
        let mut slots = [None; MAX_PARAMS];
        slots[15] = Some(8);
        assert_eq!(
            ParamWidths::from_slots(slots).map(|w| w.width(15)),
            Ok(Some(8))
        );
    }

    #[test]
    fn a_single_value_wider_than_253_bytes_is_rejected() {
        let wide = [0u8; 254];
        assert_eq!(
            ParamData::new().insert(0, &wide),
            Err(ParamError::InvalidWidth { id: 0, width: 254 })
        );
        assert_eq!(
            ParamData::new().insert(0, &[]),
            Err(ParamError::InvalidWidth { id: 0, width: 0 })
        );
        assert_eq!(
            ParamData::new().insert(16, &[1]),
            Err(ParamError::IdOutOfRange { id: 16 })
        );
    }

    #[test]
    fn encode_payload_writes_bitmap_then_values() {
        let data = ParamData::new()
            .with(2, &[0xef, 0xbe, 0xad, 0xde])
            .and_then(|d| d.with(0, &[0x01]))
            .expect("valid");
        let mut out = [0u8; MAX_PAYLOAD_LEN];
        let len = data.encode_payload(&mut out).expect("fits");
        assert_eq!(&out[..len], &[0x05, 0x00, 0x01, 0xef, 0xbe, 0xad, 0xde]);
    }

    #[test]
    fn encode_payload_refuses_oversized_sets() {
        let big = [0u8; 200];
        let data = ParamData::new()
            .with(0, &big)
            .and_then(|d| d.with(1, &big))
            .expect("valid");
        let mut out = [0u8; MAX_PAYLOAD_LEN];
        assert_eq!(
            data.encode_payload(&mut out),
            Err(ParamError::TooLongForOneMessage { len: 402 })
        );
    }

    /// Asserts the split is well formed and returns each part's ids.
    fn split_ids(data: &ParamData<'_>) -> Vec<Vec<u8>> {
        let parts: Vec<_> = data.split().collect();
        let mut merged = ParamData::new();
        let mut last_id = None;
        for part in &parts {
            assert!(part.payload_len() <= MAX_PAYLOAD_LEN);
            for (id, value) in part.iter() {
                assert!(last_id < Some(id), "ids ascend across parts");
                last_id = Some(id);
                merged.insert(id, value).expect("valid");
            }
        }
        assert_eq!(&merged, data, "parts reassemble to the original");
        assert_eq!(data.split().collect::<Vec<_>>(), parts, "deterministic");
        parts
            .iter()
            .map(|p| p.iter().map(|(id, _)| id).collect())
            .collect()
    }

    #[test]
    fn split_examples() {
        let b100 = [0x11u8; 100];
        let b253 = [0x22u8; 253];
        let b4 = [0x33u8; 4];
        let empty = ParamData::new();
        assert_eq!(split_ids(&empty), vec![Vec::<u8>::new()]);

        let fits = ParamData::new().with(0, &b4).and_then(|d| d.with(7, &b100));
        assert_eq!(split_ids(&fits.expect("valid")), vec![vec![0, 7]]);

        // 2 + 100 + 100 + 4 = 206 fits; adding 100 more does not.
        let three = ParamData::new()
            .with(1, &b100)
            .and_then(|d| d.with(3, &b100))
            .and_then(|d| d.with(4, &b4))
            .and_then(|d| d.with(9, &b100));
        assert_eq!(
            split_ids(&three.expect("valid")),
            vec![vec![1, 3, 4], vec![9]]
        );

        let widest = ParamData::new()
            .with(0, &b4)
            .and_then(|d| d.with(5, &b253))
            .and_then(|d| d.with(15, &b253));
        assert_eq!(
            split_ids(&widest.expect("valid")),
            vec![vec![0], vec![5], vec![15]]
        );
    }

    #[test]
    fn split_sixteen_wide_values() {
        let b64 = [0x44u8; 64];
        let mut data = ParamData::new();
        for id in 0..16 {
            data.insert(id, &b64).expect("valid");
        }
        // 2 + 3 × 64 = 194 ≤ 255 < 258: three values per message.
        let ids = split_ids(&data);
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], vec![0, 1, 2]);
        assert_eq!(ids[5], vec![15]);
    }

    #[test]
    fn debug_lists_ids_and_bytes() {
        let data = ParamData::new().with(1, &[0xab]).expect("valid");
        assert_eq!(format!("{data:?}"), "{1: \"[ab]\"}");
    }
}

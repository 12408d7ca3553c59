//! A [`Value`]'s little-endian storage bytes: [`LeBytes`] without allocating (the hot path
//! of buffer writes and DEV_WRITE), and decoding bytes of a [`ScalarType`] back.

use std::ops::Deref;

use super::{ScalarType, Value, ValueError};

/// Little-endian bytes of one scalar at its storage width: up to 8 bytes on the stack, used
/// as a `&[u8]` (through [`LeBytes::as_slice`] or `Deref`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeBytes {
    /// Storage; only `buf[..len]` is meaningful, the rest is always zero (so the derived
    /// equality compares the bytes).
    buf: [u8; 8],
    /// The storage width, 1..=8.
    len: usize,
}

impl LeBytes {
    /// The bytes at storage width.
    #[inline]
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // `len` is a scalar width, at most 8, the size of `buf`.
        &self.buf[..self.len]
    }
}

impl Deref for LeBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for LeBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Value {
    /// Little-endian bytes at storage width, without allocating.
    #[inline]
    #[must_use]
    pub fn le_bytes(&self) -> LeBytes {
        let src: &[u8] = match self {
            Value::Bool(v) => &[u8::from(*v)],
            Value::I8(v) => &v.to_le_bytes(),
            Value::U8(v) => &[*v],
            Value::I16(v) => &v.to_le_bytes(),
            Value::U16(v) => &v.to_le_bytes(),
            Value::I32(v) => &v.to_le_bytes(),
            Value::U32(v) => &v.to_le_bytes(),
            Value::I64(v) => &v.to_le_bytes(),
            Value::U64(v) => &v.to_le_bytes(),
            Value::F32(v) => &v.to_le_bytes(),
        };
        let mut buf = [0u8; 8];
        // Every scalar is at most 8 bytes wide, the size of `buf`.
        buf[..src.len()].copy_from_slice(src);
        LeBytes {
            buf,
            len: src.len(),
        }
    }

    /// Decodes storage bytes of type `ty`. A bool byte other than 0 reads as true (how the
    /// buffers, the broker and the tools read a device's bytes);
    /// [`Value::from_le_bytes_strict`] refuses it instead.
    ///
    /// # Errors
    /// [`ValueError::WrongWidth`] when `bytes` is not exactly `ty.storage_width()` long.
    #[inline]
    pub fn from_le_bytes(ty: ScalarType, bytes: &[u8]) -> Result<Value, ValueError> {
        let w = ty.storage_width();
        if bytes.len() != w {
            return Err(ValueError::WrongWidth {
                ty,
                expected: w,
                actual: bytes.len(),
            });
        }
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(bytes);
        let [b0, b1, b2, b3, ..] = b;
        Ok(match ty {
            ScalarType::Bool => Value::Bool(b0 != 0),
            ScalarType::Int8 => Value::I8(i8::from_le_bytes([b0])),
            ScalarType::Uint8 => Value::U8(b0),
            ScalarType::Int16 => Value::I16(i16::from_le_bytes([b0, b1])),
            ScalarType::Uint16 => Value::U16(u16::from_le_bytes([b0, b1])),
            ScalarType::Int32 => Value::I32(i32::from_le_bytes([b0, b1, b2, b3])),
            ScalarType::Uint32 => Value::U32(u32::from_le_bytes([b0, b1, b2, b3])),
            ScalarType::Int64 => Value::I64(i64::from_le_bytes(b)),
            ScalarType::Uint64 => Value::U64(u64::from_le_bytes(b)),
            ScalarType::Float | ScalarType::Double => {
                Value::F32(f32::from_le_bytes([b0, b1, b2, b3]))
            }
        })
    }

    /// As [`Value::from_le_bytes`], but a bool must be the byte 0 or 1, as the protocol
    /// encodes it: for tools that validate what a device sent.
    ///
    /// # Errors
    /// [`ValueError::WrongWidth`] as [`Value::from_le_bytes`];
    /// [`ValueError::InvalidBool`] for a bool byte other than 0 or 1.
    pub fn from_le_bytes_strict(ty: ScalarType, bytes: &[u8]) -> Result<Value, ValueError> {
        match (ty, bytes) {
            (ScalarType::Bool, [other]) if *other > 1 => Err(ValueError::InvalidBool(*other)),
            _ => Value::from_le_bytes(ty, bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_examples() {
        let table: &[(Value, &[u8])] = &[
            (Value::Bool(true), &[0x01]),
            (Value::Bool(false), &[0x00]),
            (Value::I8(-2), &[0xfe]),
            (Value::U8(200), &[0xc8]),
            (Value::I16(-300), &[0xd4, 0xfe]),
            (Value::I16(-2), &[0xfe, 0xff]),
            (Value::U16(1000), &[0xe8, 0x03]),
            (Value::I32(-1), &[0xff; 4]),
            (Value::U32(0xDEAD_BEEF), &[0xef, 0xbe, 0xad, 0xde]),
            (Value::I64(i64::MIN), &[0, 0, 0, 0, 0, 0, 0, 0x80]),
            (Value::U64(1), &[1, 0, 0, 0, 0, 0, 0, 0]),
            (Value::F32(0.5), &[0x00, 0x00, 0x00, 0x3f]),
            (Value::F32(0.123), &[0x6d, 0xe7, 0xfb, 0x3d]),
            (Value::F32(-0.123), &[0x6d, 0xe7, 0xfb, 0xbd]),
        ];
        for (value, bytes) in table {
            assert_eq!(&*value.le_bytes(), *bytes, "{value:?}");
            assert_eq!(value.le_bytes().as_slice(), *bytes, "{value:?}");
            let back = Value::from_le_bytes(value.scalar_type(), bytes);
            assert_eq!(back, Ok(*value), "{bytes:02x?}");
            let strict = Value::from_le_bytes_strict(value.scalar_type(), bytes);
            assert_eq!(strict, Ok(*value), "{bytes:02x?}");
        }
    }

    #[test]
    fn width_matches_bytes_for_every_type() {
        for ty in ScalarType::ALL {
            let zero = vec![0u8; ty.storage_width()];
            let value = Value::from_le_bytes(ty, &zero).expect("zero is valid");
            // `double` is stored as an `f32`, so it reads back as a `float` value.
            let stored_as = if ty == ScalarType::Double {
                ScalarType::Float
            } else {
                ty
            };
            assert_eq!(value.scalar_type(), stored_as);
            assert_eq!(value.le_bytes().len(), ty.storage_width());
        }
    }

    #[test]
    fn rejects_wrong_width_and_bad_bool() {
        assert_eq!(
            Value::from_le_bytes(ScalarType::Float, &[0; 8]),
            Err(ValueError::WrongWidth {
                ty: ScalarType::Float,
                expected: 4,
                actual: 8
            })
        );
        assert_eq!(
            Value::from_le_bytes(ScalarType::Bool, &[]),
            Err(ValueError::WrongWidth {
                ty: ScalarType::Bool,
                expected: 1,
                actual: 0
            })
        );
        assert_eq!(
            Value::from_le_bytes_strict(ScalarType::Bool, &[2]),
            Err(ValueError::InvalidBool(2))
        );
        assert_eq!(
            Value::from_le_bytes(ScalarType::Bool, &[2]),
            Ok(Value::Bool(true))
        );
    }
}

//! Typed scalar values for tools that need numbers rather than raw bytes.
//!
//! The device broker moves parameter values as raw little-endian bytes; the CLI and the
//! Smart Device emulator need to show and build them. [`ScalarType`] names the storage types
//! a Smart Device parameter can have on the wire and [`Value`] converts between a typed value
//! and its wire bytes. The catalog's `double` travels as a 4-byte `f32`: there is no 8-byte
//! float on the wire.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use thiserror::Error;

/// Why bytes or text are not a value of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The byte count does not match the type's storage width.
    #[error("a {ty} value is {expected} bytes wide but {actual} bytes were given")]
    WrongWidth {
        /// The expected type.
        ty: ScalarType,
        /// The type's storage width.
        expected: usize,
        /// The number of bytes given.
        actual: usize,
    },
    /// A bool byte other than 0 or 1.
    #[error("a bool is stored as 0 or 1, but the byte is 0x{0:02X}")]
    InvalidBool(u8),
    /// A type name the wire format does not know.
    #[error(
        "unknown parameter type {0:?}; expected one of bool, int8, uint8, int16, uint16, \
         int32, uint32, int64, uint64, float, double"
    )]
    UnknownType(String),
}

/// A storage type of a Smart Device parameter, as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `bool`: one byte, 0 or 1.
    Bool,
    /// `int8`.
    I8,
    /// `uint8`.
    U8,
    /// `int16`, little-endian.
    I16,
    /// `uint16`, little-endian.
    U16,
    /// `int32`, little-endian.
    I32,
    /// `uint32`, little-endian.
    U32,
    /// `int64`, little-endian.
    I64,
    /// `uint64`, little-endian.
    U64,
    /// `float` and `double`: IEEE 754 single precision, little-endian.
    F32,
}

impl ScalarType {
    /// Every type, for exhaustive tests and tools.
    pub const ALL: [ScalarType; 10] = [
        ScalarType::Bool,
        ScalarType::I8,
        ScalarType::U8,
        ScalarType::I16,
        ScalarType::U16,
        ScalarType::I32,
        ScalarType::U32,
        ScalarType::I64,
        ScalarType::U64,
        ScalarType::F32,
    ];

    /// Storage width in bytes; what a receiver puts in its [`crate::ParamWidths`].
    #[must_use]
    pub const fn width(self) -> u8 {
        match self {
            ScalarType::Bool | ScalarType::I8 | ScalarType::U8 => 1,
            ScalarType::I16 | ScalarType::U16 => 2,
            ScalarType::I32 | ScalarType::U32 | ScalarType::F32 => 4,
            ScalarType::I64 | ScalarType::U64 => 8,
        }
    }

    /// The catalog's name for the type (`F32` is `float`).
    #[must_use]
    pub const fn catalog_name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::I8 => "int8",
            ScalarType::U8 => "uint8",
            ScalarType::I16 => "int16",
            ScalarType::U16 => "uint16",
            ScalarType::I32 => "int32",
            ScalarType::U32 => "uint32",
            ScalarType::I64 => "int64",
            ScalarType::U64 => "uint64",
            ScalarType::F32 => "float",
        }
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.catalog_name())
    }
}

impl FromStr for ScalarType {
    type Err = ValueError;

    /// Parses a catalog type name; `double` maps to [`ScalarType::F32`].
    fn from_str(name: &str) -> Result<ScalarType, ValueError> {
        if name == "double" {
            return Ok(ScalarType::F32);
        }
        ScalarType::ALL
            .into_iter()
            .find(|ty| ty.catalog_name() == name)
            .ok_or_else(|| ValueError::UnknownType(name.to_owned()))
    }
}

/// A typed parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A `bool`.
    Bool(bool),
    /// An `int8`.
    I8(i8),
    /// A `uint8`.
    U8(u8),
    /// An `int16`.
    I16(i16),
    /// A `uint16`.
    U16(u16),
    /// An `int32`.
    I32(i32),
    /// A `uint32`.
    U32(u32),
    /// An `int64`.
    I64(i64),
    /// A `uint64`.
    U64(u64),
    /// A `float` or `double` (4 bytes on the wire).
    F32(f32),
}

impl Value {
    /// The value's storage type.
    #[must_use]
    pub const fn scalar_type(&self) -> ScalarType {
        match self {
            Value::Bool(_) => ScalarType::Bool,
            Value::I8(_) => ScalarType::I8,
            Value::U8(_) => ScalarType::U8,
            Value::I16(_) => ScalarType::I16,
            Value::U16(_) => ScalarType::U16,
            Value::I32(_) => ScalarType::I32,
            Value::U32(_) => ScalarType::U32,
            Value::I64(_) => ScalarType::I64,
            Value::U64(_) => ScalarType::U64,
            Value::F32(_) => ScalarType::F32,
        }
    }

    /// The wire bytes of the value (little-endian, at storage width), without allocating.
    #[must_use]
    pub fn to_le_bytes(&self) -> ValueBytes {
        let mut bytes = ValueBytes {
            buf: [0; 8],
            len: self.scalar_type().width(),
        };
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
        // Every scalar is at most 8 bytes wide, the size of `buf`.
        bytes.buf[..src.len()].copy_from_slice(src);
        bytes
    }

    /// Reads a value of type `ty` from exactly its storage width of bytes.
    ///
    /// # Errors
    ///
    /// [`ValueError::WrongWidth`] if `bytes` is not exactly `ty.width()` long;
    /// [`ValueError::InvalidBool`] for a bool byte other than 0 or 1.
    pub fn from_le_bytes(ty: ScalarType, bytes: &[u8]) -> Result<Value, ValueError> {
        let wrong_width = || ValueError::WrongWidth {
            ty,
            expected: usize::from(ty.width()),
            actual: bytes.len(),
        };
        macro_rules! read {
            ($variant:ident, $int:ty) => {
                Value::$variant(<$int>::from_le_bytes(
                    bytes.try_into().map_err(|_| wrong_width())?,
                ))
            };
        }
        Ok(match ty {
            ScalarType::Bool => match bytes {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                [other] => return Err(ValueError::InvalidBool(*other)),
                _ => return Err(wrong_width()),
            },
            ScalarType::I8 => read!(I8, i8),
            ScalarType::U8 => read!(U8, u8),
            ScalarType::I16 => read!(I16, i16),
            ScalarType::U16 => read!(U16, u16),
            ScalarType::I32 => read!(I32, i32),
            ScalarType::U32 => read!(U32, u32),
            ScalarType::I64 => read!(I64, i64),
            ScalarType::U64 => read!(U64, u64),
            ScalarType::F32 => read!(F32, f32),
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => v.fmt(f),
            Value::I8(v) => v.fmt(f),
            Value::U8(v) => v.fmt(f),
            Value::I16(v) => v.fmt(f),
            Value::U16(v) => v.fmt(f),
            Value::I32(v) => v.fmt(f),
            Value::U32(v) => v.fmt(f),
            Value::I64(v) => v.fmt(f),
            Value::U64(v) => v.fmt(f),
            Value::F32(v) => v.fmt(f),
        }
    }
}

/// The wire bytes of one [`Value`]: up to 8 bytes on the stack, used as a `&[u8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueBytes {
    /// Storage; only `buf[..len]` is meaningful.
    buf: [u8; 8],
    /// The storage width, 1..=8.
    len: u8,
}

impl Deref for ValueBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // `len` is a scalar width, at most 8.
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for ValueBytes {
    fn as_ref(&self) -> &[u8] {
        self
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
            (Value::U16(1000), &[0xe8, 0x03]),
            (Value::I32(-1), &[0xff; 4]),
            (Value::U32(0xDEAD_BEEF), &[0xef, 0xbe, 0xad, 0xde]),
            (Value::I64(i64::MIN), &[0, 0, 0, 0, 0, 0, 0, 0x80]),
            (Value::U64(1), &[1, 0, 0, 0, 0, 0, 0, 0]),
            (Value::F32(0.5), &[0x00, 0x00, 0x00, 0x3f]),
            (Value::F32(0.123), &[0x6d, 0xe7, 0xfb, 0x3d]),
        ];
        for (value, bytes) in table {
            assert_eq!(&*value.to_le_bytes(), *bytes, "{value:?}");
            let back = Value::from_le_bytes(value.scalar_type(), bytes);
            assert_eq!(back, Ok(*value), "{bytes:02x?}");
        }
    }

    #[test]
    fn width_matches_bytes_for_every_type() {
        for ty in ScalarType::ALL {
            let zero = vec![0u8; usize::from(ty.width())];
            let value = Value::from_le_bytes(ty, &zero).expect("zero is valid");
            assert_eq!(value.scalar_type(), ty);
            assert_eq!(value.to_le_bytes().len(), usize::from(ty.width()));
        }
    }

    #[test]
    fn rejects_wrong_width_and_bad_bool() {
        assert_eq!(
            Value::from_le_bytes(ScalarType::F32, &[0; 8]),
            Err(ValueError::WrongWidth {
                ty: ScalarType::F32,
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
            Value::from_le_bytes(ScalarType::Bool, &[2]),
            Err(ValueError::InvalidBool(2))
        );
    }

    #[test]
    fn catalog_names_parse_and_double_is_four_bytes() {
        for ty in ScalarType::ALL {
            assert_eq!(ty.catalog_name().parse(), Ok(ty));
        }
        assert_eq!("double".parse(), Ok(ScalarType::F32));
        assert_eq!(ScalarType::F32.width(), 4);
        assert_eq!(
            "float64".parse::<ScalarType>(),
            Err(ValueError::UnknownType("float64".into()))
        );
    }

    #[test]
    fn display_is_the_plain_number() {
        assert_eq!(Value::F32(-0.5).to_string(), "-0.5");
        assert_eq!(Value::Bool(true).to_string(), "true");
        assert_eq!(Value::U64(u64::MAX).to_string(), "18446744073709551615");
    }
}

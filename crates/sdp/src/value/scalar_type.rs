//! [`ScalarType`]: the storage types a param can have, with their catalog spelling, storage
//! width and numeric range.

use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// A scalar storage type, as the catalog names it and as it travels on the wire.
///
/// `Double` is kept apart from `Float` because the catalog spells it so (it shows in
/// messages and in the layout fingerprint), but it is stored and sent exactly like `Float`:
/// 4 bytes, an `f32` (the boards' double is 4 bytes wide; there is no 8-byte float on the
/// wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `bool`, 1 byte, 0 or 1.
    Bool,
    /// `int8`.
    Int8,
    /// `uint8`.
    Uint8,
    /// `int16`, little-endian.
    Int16,
    /// `uint16`, little-endian.
    Uint16,
    /// `int32`, little-endian.
    Int32,
    /// `uint32`, little-endian.
    Uint32,
    /// `int64`, little-endian.
    Int64,
    /// `uint64`, little-endian.
    Uint64,
    /// `float`, an IEEE-754 single, little-endian.
    Float,
    /// `double`, stored and sent as 4 bytes like `float` (see the SDP spec).
    Double,
}

impl ScalarType {
    /// Every type, in catalog order, for exhaustive tests and tools.
    pub const ALL: [ScalarType; 11] = [
        ScalarType::Bool,
        ScalarType::Int8,
        ScalarType::Uint8,
        ScalarType::Int16,
        ScalarType::Uint16,
        ScalarType::Int32,
        ScalarType::Uint32,
        ScalarType::Int64,
        ScalarType::Uint64,
        ScalarType::Float,
        ScalarType::Double,
    ];

    /// The catalog spelling (`uint8`, `float`, ...), used in messages and fingerprints.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::Int8 => "int8",
            ScalarType::Uint8 => "uint8",
            ScalarType::Int16 => "int16",
            ScalarType::Uint16 => "uint16",
            ScalarType::Int32 => "int32",
            ScalarType::Uint32 => "uint32",
            ScalarType::Int64 => "int64",
            ScalarType::Uint64 => "uint64",
            ScalarType::Float => "float",
            ScalarType::Double => "double",
        }
    }

    /// Bytes in shared memory and on the wire (what a receiver puts in its
    /// [`crate::ParamWidths`]).
    #[inline]
    #[must_use]
    pub const fn storage_width(self) -> usize {
        match self {
            ScalarType::Bool | ScalarType::Int8 | ScalarType::Uint8 => 1,
            ScalarType::Int16 | ScalarType::Uint16 => 2,
            ScalarType::Int32 | ScalarType::Uint32 | ScalarType::Float | ScalarType::Double => 4,
            ScalarType::Int64 | ScalarType::Uint64 => 8,
        }
    }

    /// True for the eight integer types.
    #[inline]
    #[must_use]
    pub fn is_integer(self) -> bool {
        self.int_range().is_some()
    }

    /// True for `float` and `double` (both `f32` in storage).
    #[inline]
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::Float | ScalarType::Double)
    }

    /// Inclusive integer range, `None` for bool and floats.
    #[inline]
    #[must_use]
    pub fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            ScalarType::Int8 => (i8::MIN.into(), i8::MAX.into()),
            ScalarType::Uint8 => (0, u8::MAX.into()),
            ScalarType::Int16 => (i16::MIN.into(), i16::MAX.into()),
            ScalarType::Uint16 => (0, u16::MAX.into()),
            ScalarType::Int32 => (i32::MIN.into(), i32::MAX.into()),
            ScalarType::Uint32 => (0, u32::MAX.into()),
            ScalarType::Int64 => (i64::MIN.into(), i64::MAX.into()),
            ScalarType::Uint64 => (0, u64::MAX.into()),
            ScalarType::Bool | ScalarType::Float | ScalarType::Double => return None,
        })
    }

    /// Whether a finite bound `b` lies inside the type's representable range. Infinite
    /// bounds mean "unbounded" and are always accepted for numeric types.
    #[must_use]
    pub fn bound_in_range(self, b: f64) -> bool {
        if b.is_infinite() {
            return self != ScalarType::Bool;
        }
        if self.is_float() {
            return b.abs() <= f64::from(f32::MAX);
        }
        match self.int_range() {
            // i128 -> f64 is exact enough here: the limits are powers of two (minus one).
            Some((lo, hi)) => b >= lo as f64 && b <= hi as f64,
            None => false,
        }
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScalarType {
    type Err = ValueError;

    /// Parses a catalog spelling exactly (no aliases, no spaces): `double` is
    /// [`ScalarType::Double`], which is stored as an `f32`.
    fn from_str(name: &str) -> Result<ScalarType, ValueError> {
        ScalarType::ALL
            .into_iter()
            .find(|ty| ty.name() == name)
            .ok_or_else(|| ValueError::UnknownType(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_parse_and_double_is_four_bytes() {
        for ty in ScalarType::ALL {
            assert_eq!(ty.name().parse(), Ok(ty));
            assert_eq!(ty.to_string(), ty.name());
        }
        assert_eq!("double".parse(), Ok(ScalarType::Double));
        assert_eq!(ScalarType::Double.storage_width(), 4);
        assert_eq!(ScalarType::Float.storage_width(), 4);
        assert_eq!(
            "float64".parse::<ScalarType>(),
            Err(ValueError::UnknownType("float64".into()))
        );
    }
}

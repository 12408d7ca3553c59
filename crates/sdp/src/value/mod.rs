//! The value model of every param: storage types, typed values, their little-endian bytes,
//! parsing from text (and JSON, with the `json` feature) and range-checked conversion.
//!
//! The device broker moves parameter values as raw little-endian bytes; the catalog, the
//! shared-memory buffers, the CLI and the Smart Device emulator need typed values. This is
//! the one model they all share, kept here, in the lowest crate, because the wire format
//! defines the storage types:
//!
//! * [`ScalarType`] names a storage type (`uint8`, `float`, `double`, ...);
//! * [`Value`] is a typed value in storage representation (`double` is an `F32`);
//! * [`LeBytes`] is one value's little-endian bytes, on the stack;
//! * [`Scalar`] ties the Rust primitives to their types (`get::<f32>`);
//! * [`ValueError`] says why bytes, text or a value were refused.
//!
//! Every value is stored at its storage width, little-endian; the catalog type `double` is
//! stored as 4 bytes (the boards' double is 4 bytes wide), so it is an `f32` here. Nothing is
//! ever wrapped or truncated silently: an integer out of range, a NaN or a value of the wrong
//! kind is an error.

mod bytes;
mod error;
#[cfg(feature = "json")]
mod json;
mod scalar;
mod scalar_type;

use std::fmt;

pub use bytes::LeBytes;
pub use error::ValueError;
pub use scalar::Scalar;
pub use scalar_type::ScalarType;

/// A scalar value in storage representation (`double` is an `F32`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// `int8`.
    I8(i8),
    /// `uint8`.
    U8(u8),
    /// `int16`.
    I16(i16),
    /// `uint16`.
    U16(u16),
    /// `int32`.
    I32(i32),
    /// `uint32`.
    U32(u32),
    /// `int64`.
    I64(i64),
    /// `uint64`.
    U64(u64),
    /// `float` or `double` (4 bytes on the wire).
    F32(f32),
}

impl Value {
    /// The catalog name of this value's kind (`float` for `F32`), for messages.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        self.scalar_type().name()
    }

    /// The scalar type this value is stored as (`Float` for `F32`).
    #[inline]
    #[must_use]
    pub const fn scalar_type(&self) -> ScalarType {
        match self {
            Value::Bool(_) => ScalarType::Bool,
            Value::I8(_) => ScalarType::Int8,
            Value::U8(_) => ScalarType::Uint8,
            Value::I16(_) => ScalarType::Int16,
            Value::U16(_) => ScalarType::Uint16,
            Value::I32(_) => ScalarType::Int32,
            Value::U32(_) => ScalarType::Uint32,
            Value::I64(_) => ScalarType::Int64,
            Value::U64(_) => ScalarType::Uint64,
            Value::F32(_) => ScalarType::Float,
        }
    }

    /// The integer, for any integer variant.
    #[inline]
    #[must_use]
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::I8(v) => v.into(),
            Value::U8(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I64(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::Bool(_) | Value::F32(_) => return None,
        })
    }

    /// Builds an integer value of type `ty`, refusing out-of-range numbers.
    ///
    /// # Errors
    /// [`ValueError::OutOfRange`] outside the range, [`ValueError::WrongType`] when `ty` is
    /// not an integer type.
    #[inline]
    pub fn from_i128(ty: ScalarType, v: i128) -> Result<Value, ValueError> {
        let range = || ValueError::OutOfRange {
            value: v.to_string(),
            ty: ty.name(),
        };
        Ok(match ty {
            ScalarType::Int8 => Value::I8(i8::try_from(v).map_err(|_| range())?),
            ScalarType::Uint8 => Value::U8(u8::try_from(v).map_err(|_| range())?),
            ScalarType::Int16 => Value::I16(i16::try_from(v).map_err(|_| range())?),
            ScalarType::Uint16 => Value::U16(u16::try_from(v).map_err(|_| range())?),
            ScalarType::Int32 => Value::I32(i32::try_from(v).map_err(|_| range())?),
            ScalarType::Uint32 => Value::U32(u32::try_from(v).map_err(|_| range())?),
            ScalarType::Int64 => Value::I64(i64::try_from(v).map_err(|_| range())?),
            ScalarType::Uint64 => Value::U64(u64::try_from(v).map_err(|_| range())?),
            ScalarType::Bool | ScalarType::Float | ScalarType::Double => {
                return Err(wrong_type(ty, "integer"))
            }
        })
    }

    /// Builds a float value from an `f64`, refusing NaN and finite values beyond `f32`.
    ///
    /// # Errors
    /// [`ValueError::NotANumber`], [`ValueError::OutOfRange`].
    pub fn from_f64(v: f64) -> Result<Value, ValueError> {
        if v.is_nan() {
            return Err(ValueError::NotANumber);
        }
        if v.is_finite() && v.abs() > f64::from(f32::MAX) {
            return Err(ValueError::OutOfRange {
                value: v.to_string(),
                ty: "float",
            });
        }
        // In range (or infinite), so the cast only rounds, it never saturates.
        Ok(Value::F32(v as f32))
    }

    /// Converts to the storage representation of `ty`: integers convert between integer
    /// types with a range check; bool and float must already be of that kind.
    ///
    /// # Errors
    /// [`ValueError::WrongType`], [`ValueError::OutOfRange`], [`ValueError::NotANumber`].
    #[inline]
    pub fn convert(self, ty: ScalarType) -> Result<Value, ValueError> {
        match (self, ty) {
            (Value::Bool(_), ScalarType::Bool) => Ok(self),
            (Value::F32(v), t) if t.is_float() => {
                if v.is_nan() {
                    Err(ValueError::NotANumber)
                } else {
                    Ok(self)
                }
            }
            (v, t) if t.is_integer() => match v.as_i128() {
                Some(i) => Value::from_i128(t, i),
                None => Err(wrong_type(t, v.type_name())),
            },
            (v, t) => Err(wrong_type(t, v.type_name())),
        }
    }

    /// Parses text as a value of `ty` (the CLI's `set`): `true`/`false`/`1`/`0` for bool,
    /// decimal integers, decimal or exponent floats (`inf` accepted, NaN refused).
    ///
    /// # Errors
    /// [`ValueError::Parse`], [`ValueError::OutOfRange`], [`ValueError::NotANumber`].
    pub fn parse(text: &str, ty: ScalarType) -> Result<Value, ValueError> {
        let t = text.trim();
        let bad = || ValueError::Parse {
            text: text.to_owned(),
            ty: ty.name(),
        };
        match ty {
            ScalarType::Bool => match t {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            ScalarType::Float | ScalarType::Double => {
                let v: f64 = t.parse().map_err(|_| bad())?;
                Value::from_f64(v)
            }
            _ => {
                let v: i128 = t.parse().map_err(|_| bad())?;
                Value::from_i128(ty, v)
            }
        }
    }
}

/// The error for a value of kind `found` where a `expected` value was needed.
fn wrong_type(expected: ScalarType, found: &str) -> ValueError {
    ValueError::WrongType {
        expected: expected.name().into(),
        found: found.into(),
    }
}

impl fmt::Display for Value {
    /// The plain number (or `true`/`false`), as the CLI prints it. Width and precision
    /// flags are ignored: a value always shows in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U8(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_never_wrap() {
        assert_eq!(Value::parse("255", ScalarType::Uint8), Ok(Value::U8(255)));
        let err = Value::parse("256", ScalarType::Uint8).unwrap_err();
        assert_eq!(err.to_string(), "256 is out of range for uint8");
        assert!(Value::parse("-1", ScalarType::Uint64).is_err());
        assert!(Value::parse("1.5", ScalarType::Int32).is_err());
        assert_eq!(
            Value::I64(300).convert(ScalarType::Uint8),
            Err(ValueError::OutOfRange {
                value: "300".into(),
                ty: "uint8"
            })
        );
        assert_eq!(Value::I64(3).convert(ScalarType::Uint8), Ok(Value::U8(3)));
    }

    #[test]
    fn floats_reject_nan_and_overflow() {
        assert_eq!(
            Value::parse("NaN", ScalarType::Float),
            Err(ValueError::NotANumber)
        );
        assert!(Value::parse("1e39", ScalarType::Double).is_err());
        assert_eq!(Value::parse("0.5", ScalarType::Double), Ok(Value::F32(0.5)));
        assert_eq!(
            Value::F32(f32::NAN).convert(ScalarType::Float),
            Err(ValueError::NotANumber)
        );
    }

    #[test]
    fn wrong_kind_is_an_error() {
        let err = Value::F32(1.0).convert(ScalarType::Int8).unwrap_err();
        assert_eq!(err.to_string(), "expected a int8 value, got float");
        assert!(Value::Bool(true).convert(ScalarType::Float).is_err());
        assert!(Value::I8(1).convert(ScalarType::Bool).is_err());
    }

    #[test]
    fn display_is_the_plain_number() {
        assert_eq!(Value::F32(-0.5).to_string(), "-0.5");
        assert_eq!(Value::Bool(true).to_string(), "true");
        assert_eq!(Value::U64(u64::MAX).to_string(), "18446744073709551615");
    }
}

//! The value model: storage types, typed values, parsing from text/JSON, range checks and
//! clamping to a param's bounds.
//!
//! Every value is stored at its storage width, little-endian; the catalog type `double` is
//! stored as 4 bytes (the boards' double is 4 bytes wide), so it is an `f32` here. Nothing is
//! ever wrapped or truncated silently: an integer out of range, a NaN or a value of the wrong
//! kind is an error.

use std::fmt;

/// A scalar storage type of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `bool`, 1 byte, 0 or 1.
    Bool,
    /// `int8`.
    Int8,
    /// `uint8`.
    Uint8,
    /// `int16`.
    Int16,
    /// `uint16`.
    Uint16,
    /// `int32`.
    Int32,
    /// `uint32`.
    Uint32,
    /// `int64`.
    Int64,
    /// `uint64`.
    Uint64,
    /// `float`, an IEEE-754 single.
    Float,
    /// `double`, stored and sent as 4 bytes like `float` (see the SDP spec).
    Double,
}

const SCALAR_NAMES: [(ScalarType, &str); 11] = [
    (ScalarType::Bool, "bool"),
    (ScalarType::Int8, "int8"),
    (ScalarType::Uint8, "uint8"),
    (ScalarType::Int16, "int16"),
    (ScalarType::Uint16, "uint16"),
    (ScalarType::Int32, "int32"),
    (ScalarType::Uint32, "uint32"),
    (ScalarType::Int64, "int64"),
    (ScalarType::Uint64, "uint64"),
    (ScalarType::Float, "float"),
    (ScalarType::Double, "double"),
];

impl ScalarType {
    /// The catalog spelling (`uint8`, `float`, ...), used in messages and fingerprints.
    pub fn name(self) -> &'static str {
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

    /// Looks a catalog spelling up; `None` for anything else (no aliases are accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        SCALAR_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| *t)
    }

    /// Bytes in shared memory and on the wire.
    #[inline]
    pub fn storage_width(self) -> usize {
        match self {
            ScalarType::Bool | ScalarType::Int8 | ScalarType::Uint8 => 1,
            ScalarType::Int16 | ScalarType::Uint16 => 2,
            ScalarType::Int32 | ScalarType::Uint32 | ScalarType::Float | ScalarType::Double => 4,
            ScalarType::Int64 | ScalarType::Uint64 => 8,
        }
    }

    /// True for the eight integer types.
    #[inline]
    pub fn is_integer(self) -> bool {
        self.int_range().is_some()
    }

    /// True for `float` and `double` (both `f32` in storage).
    #[inline]
    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::Float | ScalarType::Double)
    }

    /// Inclusive integer range, `None` for bool and floats.
    #[inline]
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

/// A param's type: a scalar, or a fixed C-order array of scalars (`uint8[128][128][3]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParamType {
    element: ScalarType,
    dims: Vec<usize>,
}

impl ParamType {
    /// A scalar type.
    pub fn scalar(element: ScalarType) -> Self {
        ParamType {
            element,
            dims: Vec::new(),
        }
    }

    /// Parses `int16`, `uint8[4096]`, `uint8[128][128][3]`; `None` for anything else,
    /// including zero lengths and spaces.
    pub fn parse(text: &str) -> Option<Self> {
        let (base, mut rest) = match text.find('[') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let element = ScalarType::from_name(base)?;
        let mut dims = Vec::new();
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[')?;
            let close = inner.find(']')?;
            let digits = &inner[..close];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: usize = digits.parse().ok()?;
            if n == 0 {
                return None;
            }
            dims.push(n);
            rest = &inner[close + 1..];
        }
        Some(ParamType { element, dims })
    }

    /// The element type (the type itself for a scalar).
    pub fn element(&self) -> ScalarType {
        self.element
    }

    /// Array lengths, outermost first; empty for a scalar.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// True for a scalar (no array lengths).
    #[inline]
    pub fn is_scalar(&self) -> bool {
        self.dims.is_empty()
    }

    /// The scalar type if this is not an array.
    #[inline]
    pub fn as_scalar(&self) -> Option<ScalarType> {
        self.is_scalar().then_some(self.element)
    }

    /// Total bytes at storage width; `None` on arithmetic overflow.
    pub fn storage_width(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(self.element.storage_width(), |acc, d| acc.checked_mul(*d))
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.element.name())?;
        for d in &self.dims {
            write!(f, "[{d}]")?;
        }
        Ok(())
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// The value's kind does not match the param's type (e.g. a float for a bool).
    #[error("expected a {expected} value, got {found}")]
    WrongType {
        /// The param's type.
        expected: String,
        /// What was supplied.
        found: String,
    },
    /// An integer (or a float too large for `f32`) outside the type's range.
    #[error("{value} is out of range for {ty}")]
    OutOfRange {
        /// The supplied value, as text.
        value: String,
        /// The type it had to fit.
        ty: &'static str,
    },
    /// NaN is never stored.
    #[error("NaN is not a valid value")]
    NotANumber,
    /// Text that is not a value of the type.
    #[error("`{text}` is not a valid {ty}")]
    Parse {
        /// The offending text.
        text: String,
        /// The expected type.
        ty: &'static str,
    },
    /// Raw bytes whose length is not the storage width.
    #[error("expected {expected} bytes, got {found}")]
    WrongLength {
        /// The storage width.
        expected: usize,
        /// The supplied length.
        found: usize,
    },
}

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
    /// `float` or `double`.
    F32(f32),
}

/// Little-endian bytes of one scalar, without allocating (hot path of buffer writes).
#[derive(Debug, Clone, Copy)]
pub struct LeBytes {
    buf: [u8; 8],
    len: usize,
}

impl LeBytes {
    /// The bytes at storage width.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Value {
    /// The catalog name of this value's kind (`float` for `F32`), for messages.
    pub fn type_name(&self) -> &'static str {
        self.scalar_type().name()
    }

    /// The scalar type this value is stored as (`Float` for `F32`).
    #[inline]
    pub fn scalar_type(&self) -> ScalarType {
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
                return Err(ValueError::WrongType {
                    expected: ty.name().into(),
                    found: "integer".into(),
                })
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

    /// Reads a JSON value as `ty`. Strings are parsed as text, so 64-bit integers may be
    /// sent as decimal strings by clients without 64-bit integers.
    ///
    /// # Errors
    /// As [`Value::parse`], plus [`ValueError::WrongType`] for null, arrays and objects.
    pub fn from_json(json: &serde_json::Value, ty: ScalarType) -> Result<Value, ValueError> {
        use serde_json::Value as J;
        match json {
            J::String(s) => Value::parse(s, ty),
            J::Bool(b) if ty == ScalarType::Bool => Ok(Value::Bool(*b)),
            J::Number(n) if ty.is_float() => match n.as_f64() {
                Some(v) => Value::from_f64(v),
                None => Err(wrong_type(ty, "number")),
            },
            J::Number(n) if ty.is_integer() => {
                if let Some(v) = n.as_i64() {
                    Value::from_i128(ty, v.into())
                } else if let Some(v) = n.as_u64() {
                    Value::from_i128(ty, v.into())
                } else {
                    Err(ValueError::Parse {
                        text: n.to_string(),
                        ty: ty.name(),
                    })
                }
            }
            other => Err(wrong_type(ty, json_kind(other))),
        }
    }

    /// The JSON form: bool, number (floats as their `f32` value widened exactly).
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Value::Bool(b) => b.into(),
            Value::F32(v) => serde_json::Number::from_f64(f64::from(v))
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::U64(v) => v.into(),
            other => match other.as_i128().and_then(|i| i64::try_from(i).ok()) {
                Some(i) => i.into(),
                None => serde_json::Value::Null,
            },
        }
    }

    /// Little-endian bytes at storage width.
    #[inline]
    pub fn le_bytes(&self) -> LeBytes {
        let mut buf = [0u8; 8];
        let len = match *self {
            Value::Bool(v) => put(&mut buf, &[u8::from(v)]),
            Value::I8(v) => put(&mut buf, &v.to_le_bytes()),
            Value::U8(v) => put(&mut buf, &[v]),
            Value::I16(v) => put(&mut buf, &v.to_le_bytes()),
            Value::U16(v) => put(&mut buf, &v.to_le_bytes()),
            Value::I32(v) => put(&mut buf, &v.to_le_bytes()),
            Value::U32(v) => put(&mut buf, &v.to_le_bytes()),
            Value::I64(v) => put(&mut buf, &v.to_le_bytes()),
            Value::U64(v) => put(&mut buf, &v.to_le_bytes()),
            Value::F32(v) => put(&mut buf, &v.to_le_bytes()),
        };
        LeBytes { buf, len }
    }

    /// Decodes storage bytes of type `ty`. A bool byte other than 0 reads as true.
    ///
    /// # Errors
    /// [`ValueError::WrongLength`] when `bytes` is not exactly the storage width.
    #[inline]
    pub fn from_le_bytes(ty: ScalarType, bytes: &[u8]) -> Result<Value, ValueError> {
        let mut b = [0u8; 8];
        let w = ty.storage_width();
        if bytes.len() != w {
            return Err(ValueError::WrongLength {
                expected: w,
                found: bytes.len(),
            });
        }
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
}

#[inline]
fn put(buf: &mut [u8; 8], bytes: &[u8]) -> usize {
    buf[..bytes.len()].copy_from_slice(bytes);
    bytes.len()
}

fn wrong_type(expected: ScalarType, found: &str) -> ValueError {
    ValueError::WrongType {
        expected: expected.name().into(),
        found: found.into(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            other => match other.as_i128() {
                Some(i) => write!(f, "{i}"),
                None => Ok(()),
            },
        }
    }
}

/// A Rust scalar that can be read from or written to a param (`get::<f32>`).
///
/// `f32` matches both `float` and `double` params; each integer type matches only its own
/// catalog type, so `get::<i32>` on an `int16` param is a type error rather than a silent
/// widening.
pub trait Scalar: Copy + Sized + 'static {
    /// Whether a param of catalog type `ty` holds this Rust type.
    fn matches(ty: ScalarType) -> bool;
    /// Wraps into a [`Value`].
    fn into_value(self) -> Value;
    /// Unwraps a [`Value`] of the matching variant.
    fn from_value(v: Value) -> Option<Self>;
}

macro_rules! impl_scalar {
    ($t:ty, $var:ident, $($st:ident)|+) => {
        impl Scalar for $t {
            #[inline]
            fn matches(ty: ScalarType) -> bool {
                matches!(ty, $(ScalarType::$st)|+)
            }
            #[inline]
            fn into_value(self) -> Value {
                Value::$var(self)
            }
            #[inline]
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::$var(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

impl_scalar!(bool, Bool, Bool);
impl_scalar!(i8, I8, Int8);
impl_scalar!(u8, U8, Uint8);
impl_scalar!(i16, I16, Int16);
impl_scalar!(u16, U16, Uint16);
impl_scalar!(i32, I32, Int32);
impl_scalar!(u32, U32, Uint32);
impl_scalar!(i64, I64, Int64);
impl_scalar!(u64, U64, Uint64);
impl_scalar!(f32, F32, Float | Double);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::Bounds;

    #[test]
    fn param_type_parsing() {
        let t = ParamType::parse("uint8[128][128][3]").unwrap();
        assert_eq!(t.dims(), &[128, 128, 3]);
        assert_eq!(t.storage_width(), Some(128 * 128 * 3));
        assert_eq!(t.to_string(), "uint8[128][128][3]");
        assert_eq!(ParamType::parse("double").unwrap().storage_width(), Some(4));
        for bad in [
            "",
            "int",
            "float64",
            "uint8[]",
            "uint8[0]",
            "uint8[4",
            "uint8[x]",
            "uint8 [4]",
        ] {
            assert!(ParamType::parse(bad).is_none(), "{bad}");
        }
    }

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
    fn json_values() {
        let j = serde_json::json!(0.25);
        assert_eq!(
            Value::from_json(&j, ScalarType::Float),
            Ok(Value::F32(0.25))
        );
        let j = serde_json::json!("18446744073709551615");
        assert_eq!(
            Value::from_json(&j, ScalarType::Uint64),
            Ok(Value::U64(u64::MAX))
        );
        assert!(Value::from_json(&serde_json::json!(1.5), ScalarType::Int8).is_err());
        assert!(Value::from_json(&serde_json::json!(null), ScalarType::Int8).is_err());
        assert_eq!(Value::U64(7).to_json(), serde_json::json!(7));
    }

    #[test]
    fn le_round_trip() {
        for v in [
            Value::Bool(true),
            Value::I16(-2),
            Value::U32(0xDEADBEEF),
            Value::F32(-0.123),
        ] {
            let b = v.le_bytes();
            assert_eq!(Value::from_le_bytes(v.scalar_type(), b.as_slice()), Ok(v));
        }
        assert_eq!(Value::F32(0.5).le_bytes().as_slice(), &[0, 0, 0, 0x3f]);
    }

    #[test]
    fn clamping_reports_the_change() {
        let b = Bounds {
            lower: -1.0,
            upper: 1.0,
        };
        assert_eq!(b.clamp(Value::F32(0.5)), Ok((Value::F32(0.5), None)));
        let (v, c) = b.clamp(Value::F32(3.0)).unwrap();
        assert_eq!(v, Value::F32(1.0));
        assert_eq!(c.unwrap().requested, Value::F32(3.0));
        assert_eq!(b.clamp(Value::F32(f32::NAN)), Err(ValueError::NotANumber));
        let ib = Bounds {
            lower: 2.5,
            upper: 10.0,
        };
        assert_eq!(ib.clamp(Value::U8(1)).unwrap().0, Value::U8(3));
        assert!(ib.contains(Value::U8(10)) && !ib.contains(Value::U8(11)));
    }
}

//! [`ValueError`]: every reason bytes, text, JSON or another value are refused as a value of
//! a given scalar type.

use thiserror::Error;

use super::ScalarType;

/// Why a value was refused. Nothing is ever wrapped or truncated silently: an integer out
/// of range, a NaN, bytes of the wrong width or a value of the wrong kind is one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
    /// A bool byte other than 0 or 1 (only [`super::Value::from_le_bytes_strict`] refuses it).
    #[error("a bool is stored as 0 or 1, but the byte is 0x{0:02X}")]
    InvalidBool(u8),
    /// A type name the catalog and the wire format do not know.
    #[error(
        "unknown parameter type {0:?}; expected one of bool, int8, uint8, int16, uint16, \
         int32, uint32, int64, uint64, float, double"
    )]
    UnknownType(String),
}

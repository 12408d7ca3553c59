//! The [`Scalar`] trait: which Rust primitive holds a value of which [`ScalarType`], so a
//! param can be read or written as a plain `f32` or `u8` (`get::<f32>`).
//!
//! It lives beside [`Value`] and [`ScalarType`] so that the per-type tables of the model
//! (names, widths, ranges, bytes, Rust types) are all in this one module.

use super::{ScalarType, Value};

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

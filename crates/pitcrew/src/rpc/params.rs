//! Typed decoding of positional RPC parameters.
//!
//! A service registers each method with the names of its parameters and a tuple type; the
//! arity and every parameter's type are checked before the handler runs, and a mismatch is
//! an `invalid_params` error that names the parameter (`parameter 2 (interval) must be a
//! number, got a string`). Trailing `Option` parameters may be omitted.

use std::collections::BTreeMap;

use super::message::{type_name, ErrorCode, RpcError};
use crate::codec::Value;

/// A type one positional parameter can be decoded into.
pub trait FromValue: Sized {
    /// What the parameter must be, for error messages ("an integer", "a string").
    const EXPECTED: &'static str;
    /// Whether the parameter may be absent (trailing) or nil.
    const OPTIONAL: bool = false;
    /// Decodes the value; `None` means it has the wrong type or range.
    fn from_value(v: Value) -> Option<Self>;
    /// The value for an omitted trailing parameter (only for optional types).
    fn absent() -> Option<Self> {
        None
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const EXPECTED: &'static str = concat!("an integer in the range of ", stringify!($t));
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Integer(i) => i
                        .as_i64()
                        .and_then(|n| <$t>::try_from(n).ok())
                        .or_else(|| i.as_u64().and_then(|n| <$t>::try_from(n).ok())),
                    _ => None,
                }
            }
        }
    )*};
}
int_from_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::F64(f) => Some(f),
            Value::F32(f) => Some(f64::from(f)),
            Value::Integer(i) => i.as_f64(),
            _ => None,
        }
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_value(v: Value) -> Option<Self> {
        v.as_bool()
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "a string";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::String(s) => s.into_str(),
            _ => None,
        }
    }
}

impl FromValue for Value {
    const EXPECTED: &'static str = "any value";
    fn from_value(v: Value) -> Option<Self> {
        Some(v)
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    const EXPECTED: &'static str = "an array";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, T> {
    const EXPECTED: &'static str = "a map with string keys";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Map(entries) => entries
                .into_iter()
                .map(|(k, v)| Some((String::from_value(k)?, T::from_value(v)?)))
                .collect(),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    const OPTIONAL: bool = true;
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Nil => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

/// A tuple of parameters decoded from a request's params array.
pub trait FromParams: Sized {
    /// Decodes `params`, naming parameters by `names` in errors.
    ///
    /// # Errors
    /// `invalid_params` for a wrong count or a parameter of the wrong type.
    fn from_params(params: Vec<Value>, names: &[&str]) -> Result<Self, RpcError>;
}

fn arity_error(got: usize, min: usize, max: usize, names: &[&str]) -> RpcError {
    let wanted = if min == max {
        format!("{max}")
    } else {
        format!("{min} to {max}")
    };
    RpcError::new(
        ErrorCode::InvalidParams,
        format!(
            "expected {wanted} parameters ({}), got {got}",
            names.join(", ")
        ),
    )
}

fn take<T: FromValue>(
    it: &mut std::vec::IntoIter<Value>,
    index: usize,
    names: &[&str],
) -> Result<T, RpcError> {
    let name = names.get(index).copied().unwrap_or("?");
    let value = match it.next() {
        Some(v) => v,
        None => {
            return T::absent().ok_or_else(|| {
                RpcError::new(
                    ErrorCode::InvalidParams,
                    format!("parameter {} ({name}) is missing", index + 1),
                )
            })
        }
    };
    let got = type_name(&value);
    T::from_value(value).ok_or_else(|| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "parameter {} ({name}) must be {}, got {got}",
                index + 1,
                T::EXPECTED
            ),
        )
        .with("parameter", name)
    })
}

macro_rules! tuple_from_params {
    ($($t:ident),*) => {
        impl<$($t: FromValue),*> FromParams for ($($t,)*) {
            #[allow(unused_mut, unused_variables, unused_assignments, non_snake_case)]
            fn from_params(params: Vec<Value>, names: &[&str]) -> Result<Self, RpcError> {
                let max = 0 $(+ { let _ = stringify!($t); 1 })*;
                let optional: &[bool] = &[$($t::OPTIONAL),*];
                let min = optional.iter().rposition(|o| !o).map_or(0, |i| i + 1);
                if params.len() < min || params.len() > max {
                    return Err(arity_error(params.len(), min, max, names));
                }
                let mut it = params.into_iter();
                let mut index = 0usize;
                $(
                    let $t = take::<$t>(&mut it, index, names)?;
                    index += 1;
                )*
                Ok(($($t,)*))
            }
        }
    };
}
tuple_from_params!();
tuple_from_params!(A);
tuple_from_params!(A, B);
tuple_from_params!(A, B, C);
tuple_from_params!(A, B, C, D);
tuple_from_params!(A, B, C, D, E);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_params_decode_and_name_the_culprit() {
        let ok: (i64, String) =
            FromParams::from_params(vec![5.into(), "x".into()], &["n", "s"]).unwrap();
        assert_eq!(ok, (5, "x".to_owned()));

        let err = <(i64, String)>::from_params(vec![5.into(), 6.into()], &["n", "s"]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParams);
        assert_eq!(
            err.message,
            "parameter 2 (s) must be a string, got an integer"
        );

        let err = <(i64,)>::from_params(vec![], &["n"]).unwrap_err();
        assert_eq!(err.message, "expected 1 parameters (n), got 0");

        let err = <(u8,)>::from_params(vec![300.into()], &["n"]).unwrap_err();
        assert!(err.message.contains("range of u8"), "{}", err.message);
    }

    #[test]
    fn trailing_options_may_be_omitted() {
        let (a, b): (u32, Option<f64>) =
            FromParams::from_params(vec![1.into()], &["a", "b"]).unwrap();
        assert_eq!((a, b), (1, None));
        let (_, b): (u32, Option<f64>) =
            FromParams::from_params(vec![1.into(), 2.5.into()], &["a", "b"]).unwrap();
        assert_eq!(b, Some(2.5));
        assert!(<(u32, Option<f64>)>::from_params(vec![], &["a", "b"]).is_err());
    }
}

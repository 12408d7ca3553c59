//! The JSON form of a [`Value`] (the `json` feature): what RPC, the CLI and the emulator
//! send and show. The codec itself never needs it, so the feature keeps `serde_json` out of
//! a plain (or fuzzing) build of this crate.

use super::{wrong_type, ScalarType, Value, ValueError};

impl Value {
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
    #[must_use]
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
}

/// The JSON kind of `v`, for "expected a uint8 value, got array".
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

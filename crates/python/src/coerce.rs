//! How a value given by Python code becomes the value stored in a param's write slot, and
//! the sentences a student reads when it cannot.
//!
//! The rules are stricter than the buffer's on one point, on purpose: a number outside the
//! catalog's `lower`/`upper` is an error here ([`Refusal::OutOfBounds`], "duty_cycle_a is at
//! most 1.0, got 3"), where `Buffer::write_value` clamps it with a logged warning. Python
//! code writes motor outputs from arithmetic (`left = y + x`), and a warning in a log
//! nobody reads hides the bug; an exception at the line that computed 3 shows it. Code that
//! wants clamping asks for it (`set_value(..., clamp=True)`), and then the buffer clamps and
//! warns exactly as for Rust controllers.
//!
//! Kinds: a bool param takes only `True`/`False`; a float param takes a float or an int (not
//! a bool); an integer param takes an int in the type's range (not a bool, not a float).
//! NaN is never stored.

use pitcrew_catalog::{Param, ScalarType, Value};

/// A value as Python gave it, reduced to what the rules need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Given<'a> {
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits an `i128` (every catalog integer type does).
    Int(i128),
    /// An `int` too large for any catalog type.
    HugeInt,
    /// A `float`.
    Float(f64),
    /// Anything else, by its Python type name.
    Other(&'a str),
}

impl Given<'_> {
    fn kind(&self) -> &str {
        match self {
            Given::Bool(_) => "bool",
            Given::Int(_) | Given::HugeInt => "int",
            Given::Float(_) => "float",
            Given::Other(name) => name,
        }
    }
}

/// Why a value is not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The value's kind does not fit the param's type (a Python `TypeError`).
    WrongType(String),
    /// NaN, or a number outside what the type can hold (a Python `ValueError`).
    Invalid(String),
    /// A number outside the catalog's bounds (a Python `ValueError`).
    OutOfBounds(String),
}

impl Refusal {
    /// The sentence.
    pub fn message(&self) -> &str {
        match self {
            Refusal::WrongType(m) | Refusal::Invalid(m) | Refusal::OutOfBounds(m) => m,
        }
    }
}

/// Converts `given` for a write of `param`. `shown` gives the value as Python prints it
/// (`repr`), so the message quotes what the student wrote; it is called only for a refusal.
/// With `clamp`, a number outside the bounds passes (the buffer clamps it and warns).
///
/// # Errors
/// [`Refusal`] with the sentence to raise.
pub fn for_write(
    param: &Param,
    given: Given<'_>,
    shown: impl Fn() -> String,
    clamp: bool,
) -> Result<Value, Refusal> {
    let name = param.name();
    let Some(ty) = param.scalar() else {
        return Err(Refusal::WrongType(format!(
            "{name} is an array param ({}); only single values can be set",
            param.ty()
        )));
    };
    let wrong = |hint: &str| {
        Refusal::WrongType(format!(
            "{name} is a {}, got {} ({}); {hint}",
            ty.name(),
            shown(),
            given.kind()
        ))
    };
    let value = match (ty, given) {
        (ScalarType::Bool, Given::Bool(b)) => Value::Bool(b),
        (ScalarType::Bool, _) => return Err(wrong("use True or False")),
        (t, Given::Float(x)) if t.is_float() => float(name, x, &shown)?,
        (t, Given::Int(i)) if t.is_float() => float(name, i as f64, &shown)?,
        (t, _) if t.is_float() => return Err(wrong("use a number")),
        (t, Given::Int(i)) => {
            Value::from_i128(t, i).map_err(|_| out_of_range(name, t, &shown()))?
        }
        (t, Given::HugeInt) => return Err(out_of_range(name, t, &shown())),
        (_, _) => return Err(wrong("use a whole number")),
    };
    let bounds = param.bounds();
    if !clamp && !bounds.contains(value) {
        let (word, bound) = if value_below(value, bounds.lower) {
            ("least", bounds.lower)
        } else {
            ("most", bounds.upper)
        };
        return Err(Refusal::OutOfBounds(format!(
            "{name} is at {word} {}, got {}",
            show_bound(ty, bound),
            shown()
        )));
    }
    Ok(value)
}

fn float(name: &str, x: f64, shown: &impl Fn() -> String) -> Result<Value, Refusal> {
    Value::from_f64(x).map_err(|_| {
        if x.is_nan() {
            Refusal::Invalid(format!("{name} cannot be NaN"))
        } else {
            Refusal::Invalid(format!(
                "{name} is a float, and {} is beyond its range (about ±3.4e38)",
                shown()
            ))
        }
    })
}

fn out_of_range(name: &str, ty: ScalarType, shown: &str) -> Refusal {
    let (lo, hi) = ty.int_range().unwrap_or_default();
    Refusal::Invalid(format!(
        "{name} is a {} (a whole number from {lo} to {hi}), got {shown}",
        ty.name()
    ))
}

fn value_below(v: Value, lower: f64) -> bool {
    match v {
        Value::F32(x) => f64::from(x) < lower,
        other => other.as_i128().is_some_and(|i| (i as f64) < lower),
    }
}

/// A bound as a student would write it: `1.0` for a float param, `255` for an integer one.
fn show_bound(ty: ScalarType, bound: f64) -> String {
    if ty.is_float() {
        format!("{bound:?}")
    } else {
        format!("{}", bound as i128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_catalog::Catalog;

    fn koala(param: &str) -> Param {
        Catalog::embedded()
            .get("koala-bear")
            .and_then(|t| t.param(param))
            .cloned()
            .unwrap()
    }

    fn refused(param: &str, given: Given<'_>, shown: &str) -> Refusal {
        for_write(&koala(param), given, || shown.to_owned(), false).unwrap_err()
    }

    fn passed(param: &str, given: Given<'_>, clamp: bool) -> Result<Value, Refusal> {
        for_write(
            &koala(param),
            given,
            || unreachable!("shown only for refusals"),
            clamp,
        )
    }

    #[test]
    fn numbers_of_the_right_kind_pass() {
        assert_eq!(
            passed("duty_cycle_a", Given::Float(0.5), false),
            Ok(Value::F32(0.5))
        );
        assert_eq!(
            passed("duty_cycle_a", Given::Int(1), false),
            Ok(Value::F32(1.0))
        );
        assert_eq!(
            passed("duty_cycle_a", Given::Float(-1.0), false),
            Ok(Value::F32(-1.0))
        );
        assert_eq!(
            passed("drive_mode_a", Given::Int(3), false),
            Ok(Value::U8(3))
        );
        assert_eq!(
            passed("motor_enabled_a", Given::Bool(true), false),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn bounds_are_errors_unless_clamping_is_asked_for() {
        assert_eq!(
            refused("duty_cycle_a", Given::Int(3), "3"),
            Refusal::OutOfBounds("duty_cycle_a is at most 1.0, got 3".into())
        );
        assert_eq!(
            refused("duty_cycle_a", Given::Float(-1.5), "-1.5"),
            Refusal::OutOfBounds("duty_cycle_a is at least -1.0, got -1.5".into())
        );
        assert_eq!(
            refused("pid_kp_a", Given::Float(-0.1), "-0.1"),
            Refusal::OutOfBounds("pid_kp_a is at least 0.0, got -0.1".into())
        );
        assert_eq!(
            passed("duty_cycle_a", Given::Int(3), true),
            Ok(Value::F32(3.0))
        );
    }

    #[test]
    fn wrong_kinds_and_invalid_numbers_say_what_to_write() {
        assert_eq!(
            refused("motor_enabled_a", Given::Int(1), "1"),
            Refusal::WrongType("motor_enabled_a is a bool, got 1 (int); use True or False".into())
        );
        assert_eq!(
            refused("duty_cycle_a", Given::Other("str"), "'fast'"),
            Refusal::WrongType("duty_cycle_a is a float, got 'fast' (str); use a number".into())
        );
        assert!(matches!(
            refused("duty_cycle_a", Given::Bool(true), "True"),
            Refusal::WrongType(_)
        ));
        assert_eq!(
            refused("drive_mode_a", Given::Float(1.5), "1.5"),
            Refusal::WrongType(
                "drive_mode_a is a uint8, got 1.5 (float); use a whole number".into()
            )
        );
        assert_eq!(
            refused("drive_mode_a", Given::Int(300), "300"),
            Refusal::Invalid(
                "drive_mode_a is a uint8 (a whole number from 0 to 255), got 300".into()
            )
        );
        assert!(matches!(
            refused("drive_mode_a", Given::HugeInt, "10**40"),
            Refusal::Invalid(_)
        ));
        assert_eq!(
            refused("duty_cycle_a", Given::Float(f64::NAN), "nan"),
            Refusal::Invalid("duty_cycle_a cannot be NaN".into())
        );
        assert!(matches!(
            refused("enc_pos_a", Given::Float(1e39), "1e+39"),
            Refusal::Invalid(_)
        ));
    }
}

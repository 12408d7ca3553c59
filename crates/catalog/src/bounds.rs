//! Numeric bounds of a param and clamping, so that a joystick at 1.2 drives a motor at 1.0
//! and the caller is told (once) that the value was clamped.

use pitcrew_sdp::{Value, ValueError};

/// Inclusive numeric bounds of a param; infinite means unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The lowest accepted value (−∞ when absent).
    pub lower: f64,
    /// The highest accepted value (+∞ when absent).
    pub upper: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
        }
    }
}

/// A value that had to be clamped, reported so the caller can warn once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    /// What the caller asked for.
    pub requested: Value,
    /// What is stored instead.
    pub stored: Value,
}

impl Bounds {
    /// True when neither bound is finite.
    pub fn is_unbounded(&self) -> bool {
        self.lower.is_infinite() && self.upper.is_infinite()
    }

    /// Whether `v` lies inside the bounds (bools always do; NaN never does).
    pub fn contains(&self, v: Value) -> bool {
        match v {
            Value::Bool(_) => true,
            Value::F32(x) => f64::from(x) >= self.lower && f64::from(x) <= self.upper,
            other => match other.as_i128() {
                Some(i) => {
                    self.int_lower().is_none_or(|lo| i >= lo)
                        && self.int_upper().is_none_or(|hi| i <= hi)
                }
                None => false,
            },
        }
    }

    #[inline]
    fn int_lower(&self) -> Option<i128> {
        // Finite bounds were checked against the type's range at load, so this fits.
        self.lower.is_finite().then(|| self.lower.ceil() as i128)
    }

    #[inline]
    fn int_upper(&self) -> Option<i128> {
        self.upper.is_finite().then(|| self.upper.floor() as i128)
    }

    /// Clamps a numeric value into the bounds, returning the stored value and, when it
    /// changed, the [`Clamp`] so the caller can warn. Bools pass through.
    ///
    /// # Errors
    /// [`ValueError::NotANumber`] for NaN.
    #[inline]
    pub fn clamp(&self, v: Value) -> Result<(Value, Option<Clamp>), ValueError> {
        let stored = match v {
            Value::Bool(_) => v,
            Value::F32(x) => {
                if x.is_nan() {
                    return Err(ValueError::NotANumber);
                }
                let x64 = f64::from(x).max(self.lower).min(self.upper);
                // The bounds are within f32 range (checked at load), so this only rounds.
                Value::F32(x64 as f32)
            }
            other => {
                let Some(mut i) = other.as_i128() else {
                    return Ok((v, None));
                };
                if let Some(lo) = self.int_lower() {
                    i = i.max(lo);
                }
                if let Some(hi) = self.int_upper() {
                    i = i.min(hi);
                }
                Value::from_i128(other.scalar_type(), i)?
            }
        };
        let clamp = (stored != v).then_some(Clamp {
            requested: v,
            stored,
        });
        Ok((stored, clamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

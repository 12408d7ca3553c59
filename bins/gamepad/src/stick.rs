//! Shaping raw stick readings for the wire: a radial dead zone (so a stick at rest sends
//! exactly 0 whatever direction it drifts in), rescaling so full travel still reaches 1, and
//! clamping to the unit circle (a square-gated stick reports corners up to √2 away).

/// Shapes one stick: `(x, y)` raw in [-1, 1] (y up positive), `dead_zone` in [0, 1).
/// Non-finite readings count as centred.
pub fn shape(x: f32, y: f32, dead_zone: f32) -> (f32, f32) {
    if !x.is_finite() || !y.is_finite() {
        return (0.0, 0.0);
    }
    let r = x.hypot(y);
    if r <= dead_zone || r == 0.0 {
        return (0.0, 0.0);
    }
    let scaled = ((r - dead_zone) / (1.0 - dead_zone)).min(1.0);
    let k = scaled / r;
    let (sx, sy) = ((x * k).clamp(-1.0, 1.0), (y * k).clamp(-1.0, 1.0));
    // Rounding can leave the point a hair outside; pull it in.
    let r2 = sx.hypot(sy);
    if r2 > 1.0 {
        (sx / r2, sy / r2)
    } else {
        (sx, sy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dead_zone_and_full_travel() {
        assert_eq!(shape(0.05, -0.05, 0.1), (0.0, 0.0));
        let (x, y) = shape(1.0, 0.0, 0.1);
        assert!((x - 1.0).abs() < 1e-6 && y == 0.0);
        let (x, y) = shape(1.0, 1.0, 0.1);
        assert!(
            (x.hypot(y) - 1.0).abs() < 1e-5,
            "corner clamped to the circle"
        );
        assert_eq!(shape(f32::NAN, 0.5, 0.1), (0.0, 0.0));
        let (x, _) = shape(0.55, 0.0, 0.1);
        assert!((x - 0.5).abs() < 1e-6, "rescaled: {x}");
    }

    proptest! {
        #[test]
        fn always_in_the_unit_circle(x in -1.0f32..=1.0, y in -1.0f32..=1.0, dz in 0.0f32..0.9) {
            let (sx, sy) = shape(x, y, dz);
            prop_assert!(sx.hypot(sy) <= 1.0 + 1e-6);
        }
    }
}

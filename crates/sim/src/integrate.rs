//! The one integrator: classic fourth-order Runge–Kutta with a fixed step.
//!
//! Why RK4 and a fixed step: the models are small and smooth between events (a wall, a
//! switch of drive mode), a fixed step keeps runs reproducible and cheap to bound, and RK4's
//! error at the 1 ms step the simulation runs (motor time constants are tens of ms and more)
//! is far below what the closed-form tests allow. The stiffest case, a bare motor's rotor,
//! is sub-stepped by its caller ([`crate::motor::Shaft::step`]).

/// Advances `state` by `dt` under `f(state) -> derivative` (a time-invariant system: the
/// inputs are held constant over the step, as a motor controller holds its duty cycle).
pub fn rk4<const N: usize>(
    state: [f64; N],
    dt: f64,
    f: impl Fn(&[f64; N]) -> [f64; N],
) -> [f64; N] {
    let add = |a: &[f64; N], k: &[f64; N], h: f64| -> [f64; N] {
        std::array::from_fn(|i| a[i] + h * k[i])
    };
    let k1 = f(&state);
    let k2 = f(&add(&state, &k1, dt / 2.0));
    let k3 = f(&add(&state, &k2, dt / 2.0));
    let k4 = f(&add(&state, &k3, dt));
    std::array::from_fn(|i| state[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_decay_matches_its_closed_form() {
        // x' = -x, x(0) = 1: x(1) = e^-1.
        let mut x = [1.0];
        for _ in 0..1000 {
            x = rk4(x, 1e-3, |s| [-s[0]]);
        }
        assert!((x[0] - (-1.0f64).exp()).abs() < 1e-12, "{}", x[0]);
    }

    #[test]
    fn harmonic_oscillator_keeps_its_energy() {
        // x'' = -x over one period: back where it started.
        let mut s = [1.0, 0.0];
        let n = 10_000;
        let dt = std::f64::consts::TAU / f64::from(n);
        for _ in 0..n {
            s = rk4(s, dt, |s| [s[1], -s[0]]);
        }
        assert!((s[0] - 1.0).abs() < 1e-9 && s[1].abs() < 1e-9, "{s:?}");
    }
}

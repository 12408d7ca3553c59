//! A quadrature encoder on a shaft: its count, with optional noise.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{non_negative, positive, ParamError};

/// Counts a shaft's angle at `counts_per_rev`, with Gaussian noise of `noise` counts
/// (standard deviation) drawn from a seeded generator, so a seed replays the same readings.
#[derive(Debug, Clone)]
pub struct Encoder {
    counts_per_rev: f64,
    noise: f64,
    rng: StdRng,
}

impl Encoder {
    /// An encoder of `counts_per_rev` (> 0) counts per output revolution, with `noise`
    /// counts of noise (0 for an exact reading) from `seed`.
    ///
    /// # Errors
    /// [`ParamError`] for a count that is not positive or negative noise.
    pub fn new(counts_per_rev: f64, noise: f64, seed: u64) -> Result<Encoder, ParamError> {
        Ok(Encoder {
            counts_per_rev: positive("counts_per_rev", counts_per_rev)?,
            noise: non_negative("noise", noise)?,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The count at shaft angle `angle` (rad).
    pub fn count(&mut self, angle: f64) -> f64 {
        angle / std::f64::consts::TAU * self.counts_per_rev + self.noise()
    }

    /// The count rate at shaft speed `speed` (rad/s), in counts per second.
    pub fn rate(&mut self, speed: f64) -> f64 {
        speed / std::f64::consts::TAU * self.counts_per_rev + self.noise()
    }

    /// One Gaussian sample of the noise (Box–Muller), or 0 without noise.
    fn noise(&mut self) -> f64 {
        if self.noise == 0.0 {
            return 0.0;
        }
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        self.noise * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A count as a 16-bit register holds it (the `encoder` device's `rotation`): it wraps.
pub fn wrap_i16(count: f64) -> i16 {
    (count.round() as i64).rem_euclid(65_536) as u16 as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    #[test]
    fn one_turn_is_counts_per_rev() {
        let mut e = Encoder::new(1440.0, 0.0, 1).unwrap();
        assert_eq!(e.count(TAU), 1440.0);
        assert_eq!(e.count(-TAU / 4.0), -360.0);
        assert_eq!(e.rate(TAU * 2.0), 2880.0);
    }

    #[test]
    fn noise_is_centred_sized_and_replayed_by_its_seed() {
        let mut a = Encoder::new(1000.0, 2.0, 7).unwrap();
        let mut b = Encoder::new(1000.0, 2.0, 7).unwrap();
        let xs: Vec<f64> = (0..20_000).map(|_| a.count(0.0)).collect();
        let ys: Vec<f64> = (0..20_000).map(|_| b.count(0.0)).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!(mean.abs() < 0.1, "{mean}");
        assert!((sd - 2.0).abs() < 0.1, "{sd}");
    }

    #[test]
    fn a_16_bit_register_wraps() {
        assert_eq!(wrap_i16(32_767.0), 32_767);
        assert_eq!(wrap_i16(32_768.0), -32_768);
        assert_eq!(wrap_i16(-1.0), -1);
        assert_eq!(wrap_i16(65_536.0 * 3.0 + 5.0), 5);
    }
}

//! A motor's feedforward constants from samples of what it was told and what it did: the
//! least-squares fit of `duty = kS·sign(v) + kV·v + kA·a` (the voltage-free form of the
//! usual `V = kS·sign(v) + kV·v + kA·a`, in duty cycles rather than volts, since duty is
//! what a team's code writes), and how well it fits.
//!
//! Pure arithmetic on [`Sample`]s; where they come from (a recording) is
//! [`super::fit`]'s business.

/// The fewest samples a fit is made from: three unknowns, and enough more that the fit
/// quality means something.
pub const MIN_SAMPLES: usize = 20;

/// One moment of a driven motor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The duty cycle in force (−1 to 1).
    pub duty: f64,
    /// Its velocity (encoder counts per second).
    pub velocity: f64,
    /// Its acceleration (counts per second²).
    pub acceleration: f64,
}

/// The fitted constants and how well they explain the samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Static friction: the duty that only just moves it (duty).
    pub ks: f64,
    /// Duty per count/s of velocity.
    pub kv: f64,
    /// Duty per count/s² of acceleration.
    pub ka: f64,
    /// The share of the duty's variance the fit explains (1 is perfect).
    pub r_squared: f64,
    /// The root-mean-square residual (duty).
    pub rms: f64,
    /// How many samples it was made from.
    pub samples: usize,
    /// How many more were left out as outliers (see [`fit`]).
    pub outliers: usize,
}

/// Why there is no fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer than [`MIN_SAMPLES`].
    #[error("only {got} samples (at least {need} are needed)")]
    TooFewSamples {
        /// How many there were.
        got: usize,
        /// How many are needed.
        need: usize,
    },
    /// The samples cannot tell the three constants apart (every sample at one speed, or
    /// none at rest nor moving in both directions).
    #[error(
        "the samples cannot tell kS, kV and kA apart: they need several different speeds \
         (drive at several duty cycles, changing between them)"
    )]
    Degenerate,
}

/// Residuals beyond this many robust standard deviations (1.4826 × the median absolute
/// residual, which a few wild samples do not inflate) mark their sample an outlier.
const OUTLIER_SIGMAS: f64 = 3.0;
/// The smallest residual that may mark an outlier (duty): 1 % of full drive, so a fit
/// that is nearly exact does not call the last of its rounding errors outliers.
const MIN_OUTLIER: f64 = 0.01;
/// Rounds of leaving outliers out and fitting again.
const ROUNDS: usize = 3;

/// Fits `duty = kS·sign(v) + kV·v + kA·a` to `samples` by least squares, then leaves out
/// the samples whose residual is beyond [`OUTLIER_SIGMAS`] (and [`MIN_OUTLIER`]) and fits
/// again (up to
/// [`ROUNDS`] times): a sample whose velocity was taken across a hiccup (a late or lost
/// encoder reading, a stalled controller) is far off the line, and least squares alone
/// would let the few of them pull every constant.
///
/// # Errors
/// As [`least_squares`], of the samples kept.
pub fn fit(samples: &[Sample]) -> Result<Fit, FitError> {
    let mut kept = samples.to_vec();
    let mut fit = least_squares(&kept)?;
    for _ in 0..ROUNDS {
        let residuals: Vec<f64> = kept
            .iter()
            .map(|s| (s.duty - fit.predict(s)).abs())
            .collect();
        let mut sorted = residuals.clone();
        sorted.sort_by(f64::total_cmp);
        let sigma = 1.4826 * sorted[sorted.len() / 2];
        let limit = (OUTLIER_SIGMAS * sigma).max(MIN_OUTLIER);
        if residuals.iter().all(|r| *r <= limit) {
            break;
        }
        kept = kept
            .into_iter()
            .zip(&residuals)
            .filter_map(|(s, r)| (*r <= limit).then_some(s))
            .collect();
        fit = least_squares(&kept)?;
    }
    fit.outliers = samples.len() - kept.len();
    Ok(fit)
}

impl Fit {
    /// The duty the fit predicts for a sample's motion.
    pub fn predict(&self, s: &Sample) -> f64 {
        self.ks * direction(s) + self.kv * s.velocity + self.ka * s.acceleration
    }
}

/// The plain least-squares fit of all `samples`.
///
/// Each regressor is scaled to unit RMS before the normal equations are solved (velocities
/// run to thousands of counts per second, accelerations to tens of thousands, the sign is
/// 1), so that their conditioning is that of the data and not of its units.
///
/// # Errors
/// [`FitError::TooFewSamples`] below [`MIN_SAMPLES`]; [`FitError::Degenerate`] when the
/// regressors are (nearly) dependent.
fn least_squares(samples: &[Sample]) -> Result<Fit, FitError> {
    if samples.len() < MIN_SAMPLES {
        return Err(FitError::TooFewSamples {
            got: samples.len(),
            need: MIN_SAMPLES,
        });
    }
    let rows: Vec<[f64; 3]> = samples
        .iter()
        .map(|s| [direction(s), s.velocity, s.acceleration])
        .collect();
    let n = rows.len() as f64;
    let mut scale = [0.0; 3];
    for (j, s) in scale.iter_mut().enumerate() {
        *s = (rows.iter().map(|r| r[j] * r[j]).sum::<f64>() / n).sqrt();
        if !s.is_finite() || *s == 0.0 {
            return Err(FitError::Degenerate);
        }
    }
    let mut normal = [[0.0; 3]; 3];
    let mut rhs = [0.0; 3];
    for (r, s) in rows.iter().zip(samples) {
        let x = [r[0] / scale[0], r[1] / scale[1], r[2] / scale[2]];
        for i in 0..3 {
            rhs[i] += x[i] * s.duty;
            for j in 0..3 {
                normal[i][j] += x[i] * x[j];
            }
        }
    }
    let scaled = solve(normal, rhs).ok_or(FitError::Degenerate)?;
    let k = [
        scaled[0] / scale[0],
        scaled[1] / scale[1],
        scaled[2] / scale[2],
    ];
    let mean = samples.iter().map(|s| s.duty).sum::<f64>() / n;
    let (mut residual, mut total) = (0.0, 0.0);
    for (r, s) in rows.iter().zip(samples) {
        let predicted = k[0] * r[0] + k[1] * r[1] + k[2] * r[2];
        residual += (s.duty - predicted).powi(2);
        total += (s.duty - mean).powi(2);
    }
    Ok(Fit {
        ks: k[0],
        kv: k[1],
        ka: k[2],
        r_squared: if total > 0.0 {
            1.0 - residual / total
        } else {
            f64::NAN
        },
        rms: (residual / n).sqrt(),
        samples: samples.len(),
        outliers: 0,
    })
}

/// The direction friction opposes: the motion's, or at rest the drive's (what it has to
/// overcome to start).
fn direction(s: &Sample) -> f64 {
    if s.velocity == 0.0 {
        s.duty.signum()
    } else {
        s.velocity.signum()
    }
}

/// The smallest pivot (of unit-scaled normal equations) taken as independent: below it a
/// regressor is a combination of the others to within one part in a million.
const MIN_PIVOT: f64 = 1e-6;

/// Solves the 3×3 system `a·x = b` by Gaussian elimination with partial pivoting; `None`
/// when it is (nearly) singular.
fn solve(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < MIN_PIVOT {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [−1, 1) (xorshift64; the test needs no better).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A first-order motor driven through duty steps in both directions, sampled every
    /// 40 ms as a recording has it: velocity follows `kV·v + kA·a = duty − kS·sign(v)`.
    fn synthetic(ks: f64, kv: f64, ka: f64, noise: f64) -> Vec<Sample> {
        let mut rng = Noise(0x9E37_79B9_7F4A_7C15);
        let duties: [f64; 8] = [0.3, 0.6, 0.45, -0.4, -0.7, 0.2, 0.8, -0.25];
        let (dt, mut v) = (1e-3, 0.0f64);
        let mut out = Vec::new();
        for duty in duties {
            for step in 0..1000 {
                let drive = duty - ks * if v == 0.0 { duty.signum() } else { v.signum() };
                let a = (drive - kv * v) / ka;
                if step % 40 == 0 {
                    out.push(Sample {
                        duty: duty + noise * rng.next(),
                        velocity: v,
                        acceleration: a,
                    });
                }
                v += a * dt;
            }
        }
        out
    }

    #[test]
    fn known_constants_come_back() {
        let (ks, kv, ka) = (0.04, 1.0e-4, 2.0e-5);
        let f = fit(&synthetic(ks, kv, ka, 0.0)).unwrap();
        assert!((f.ks - ks).abs() < 1e-3 * ks, "{f:?}");
        assert!((f.kv - kv).abs() < 1e-3 * kv, "{f:?}");
        assert!((f.ka - ka).abs() < 1e-2 * ka, "{f:?}");
        assert!(f.r_squared > 0.9999 && f.rms < 1e-3, "{f:?}");
        assert_eq!(f.samples, 200);
    }

    #[test]
    fn noise_costs_fit_quality_not_the_constants() {
        let (ks, kv, ka) = (0.04, 1.0e-4, 2.0e-5);
        let f = fit(&synthetic(ks, kv, ka, 0.02)).unwrap();
        assert!((f.kv - kv).abs() < 0.02 * kv, "{f:?}");
        assert!((f.ks - ks).abs() < 0.2 * ks, "{f:?}");
        assert!((f.ka - ka).abs() < 0.2 * ka, "{f:?}");
        // Uniform noise of ±0.02 has an RMS of 0.02/√3.
        assert!((f.rms - 0.02 / 3f64.sqrt()).abs() < 0.003, "{f:?}");
        assert!(f.r_squared > 0.99 && f.r_squared < 1.0, "{f:?}");
    }

    #[test]
    fn a_few_wild_samples_are_left_out() {
        let (ks, kv, ka) = (0.04, 1.0e-4, 2.0e-5);
        let mut samples = synthetic(ks, kv, ka, 0.005);
        // Every 15th velocity taken across a stall: far too slow, and a sudden slow-down.
        for s in samples.iter_mut().step_by(15) {
            s.velocity *= 0.4;
            s.acceleration -= 20_000.0;
        }
        let plain = least_squares(&samples).unwrap();
        assert!((plain.kv - kv).abs() > 0.05 * kv, "{plain:?}");
        let f = fit(&samples).unwrap();
        assert!((f.kv - kv).abs() < 0.01 * kv, "{f:?}");
        assert!((f.ks - ks).abs() < 0.1 * ks, "{f:?}");
        assert!(f.outliers >= 13 && f.outliers <= 30, "{f:?}");
        assert_eq!(f.samples + f.outliers, 200);
    }

    #[test]
    fn too_few_or_alike_samples_are_errors() {
        let samples = synthetic(0.04, 1.0e-4, 2.0e-5, 0.0);
        assert_eq!(
            fit(&samples[..5]),
            Err(FitError::TooFewSamples { got: 5, need: 20 })
        );
        let still = Sample {
            duty: 0.5,
            velocity: 0.0,
            acceleration: 0.0,
        };
        assert_eq!(fit(&[still; 30]), Err(FitError::Degenerate));
        let cruising = Sample {
            duty: 0.5,
            velocity: 4000.0,
            acceleration: 0.0,
        };
        assert_eq!(fit(&[cruising; 30]), Err(FitError::Degenerate));
    }
}

//! `pitcrew sim fit RECORDING --device UID[:a|b]`: a motor's feedforward constants (kS, kV,
//! kA) estimated from a recording of it being driven, by [`super::feedforward::fit`].
//!
//! From the recording it takes the motor's duty cycle (every DEV_WRITE of `duty_cycle`,
//! `duty_cycle_a` or `duty_cycle_b`, and 0 from a DEV_DISABLE), whether the robot was
//! enabled (`/robot/state`), and its encoder (`enc_pos[_a|_b]` in every DEV_DATA). At each
//! encoder reading a parabola through it and its two neighbours on each side gives the
//! velocity and the acceleration (counts/s and counts/s²); the reading is a sample when,
//! over those five readings, the robot stayed enabled, the duty did not change and was
//! beyond the deadband, the encoder was not zeroed and the motor moved one way throughout.
//! Samples at a step of the duty are left out because the parabola would smooth the step's
//! sudden acceleration over its window; those where the motor stands or turns round because
//! friction there is static or changes sign within the window, which the model does not
//! describe.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use pitcrew_catalog::Uid;
use serde_json::{json, Value};

use super::feedforward::{self, Fit, FitError, Sample};
use crate::recording::channels;
use crate::recording::read::{self, Recording};

/// Encoder readings each side of a sample that its derivatives are taken over.
const HALF_WINDOW: usize = 2;

/// `pitcrew sim fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The recording (`pitcrew record`, or a session `scripts/supervise` recorded).
    pub file: PathBuf,
    /// The motor: its controller's UID, with `:a` or `:b` for one of a koala-bear's two.
    #[arg(long, value_name = "UID[:a|b]", value_parser = parse_motor)]
    pub device: Motor,
    /// Print one JSON object (`ks`, `kv`, `ka`, `r_squared`, `rms`, `samples`, `outliers`,
    /// ...).
    #[arg(long)]
    pub json: bool,
}

/// A motor named on the command line: a device and, for a two-motor controller, which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Motor {
    /// The device's UID (decimal, as recordings name it).
    pub uid: String,
    /// `a` or `b`.
    pub channel: Option<char>,
}

impl std::fmt::Display for Motor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.channel {
            Some(c) => write!(f, "{}:{c}", self.uid),
            None => f.write_str(&self.uid),
        }
    }
}

/// Parses `UID`, `UID:a` or `UID:b`.
///
/// # Errors
/// A UID that is not one, or a suffix other than `a` and `b`.
pub fn parse_motor(text: &str) -> Result<Motor, String> {
    let (uid, channel) = match text.split_once(':') {
        Some((uid, "a")) => (uid, Some('a')),
        Some((uid, "b")) => (uid, Some('b')),
        Some((_, other)) => {
            return Err(format!(
                "`{other}` is not a motor of a device: use UID:a or UID:b (a koala-bear's \
                 two), or the UID alone"
            ))
        }
        None => (text, None),
    };
    let uid: Uid = uid.parse().map_err(|e| format!("{e}"))?;
    Ok(Motor {
        uid: uid.to_string(),
        channel,
    })
}

/// The param names of one motor of a device type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    duty: String,
    encoder: String,
    deadband: String,
}

/// The motor's params on a device of type `ty`, or why it has none.
fn params(motor: &Motor, ty: &str) -> anyhow::Result<Params> {
    let suffix = match (ty, motor.channel) {
        ("koala-bear", Some(c)) => format!("_{c}"),
        ("koala-bear", None) => bail!(
            "device {} is a koala-bear, which drives two motors: say which with --device \
             {}:a or {}:b",
            motor.uid,
            motor.uid,
            motor.uid
        ),
        ("polar-bear" | "yogi-bear", None) => String::new(),
        ("polar-bear" | "yogi-bear", Some(c)) => bail!(
            "device {} is a {ty}, which drives one motor: --device {} (without :{c})",
            motor.uid,
            motor.uid
        ),
        _ => bail!(
            "device {} is a {ty}, which has no motor with an encoder to fit (a koala-bear, \
             polar-bear or yogi-bear has)",
            motor.uid
        ),
    };
    Ok(Params {
        duty: format!("duty_cycle{suffix}"),
        encoder: format!("enc_pos{suffix}"),
        deadband: format!("deadband{suffix}"),
    })
}

/// One encoder reading.
#[derive(Debug, Clone, Copy)]
struct Reading {
    t: u64,
    counts: f64,
    deadband: f64,
}

/// What the recording says of one motor, in time order (CLOCK_MONOTONIC ns).
#[derive(Debug, Default)]
struct History {
    readings: Vec<Reading>,
    /// The duty from each write (0 from a DEV_DISABLE).
    duty: Vec<(u64, f64)>,
    /// Whether the robot was enabled, from each transition.
    enabled: Vec<(u64, bool)>,
    /// Writes to the encoder (zeroing it).
    zeroed: Vec<u64>,
}

impl History {
    /// Reads `motor`'s history from `rec`; returns it with the device's type.
    fn read(rec: &Recording, motor: &Motor) -> anyhow::Result<(String, History)> {
        if !rec
            .channels
            .values()
            .any(|c| c.topic == channels::DEVICES_DATA)
        {
            bail!("it is not a pitcrew recording (it has no /devices/data channel)");
        }
        let of_device = |topic| {
            rec.on(topic).filter_map(|m| {
                let v: Value = serde_json::from_slice(&m.data).ok()?;
                (v["uid"] == motor.uid.as_str()).then_some((m.log_time, v))
            })
        };
        let Some(ty) = of_device(channels::DEVICES_DATA)
            .chain(of_device(channels::DEVICES_CONNECTION))
            .find_map(|(_, v)| v["type"].as_str().map(str::to_owned))
        else {
            bail!(
                "there is no device {} in it; it has {}",
                motor.uid,
                devices(rec)
            );
        };
        let p = params(motor, &ty)?;
        let mut h = History::default();
        let mut deadband = 0.0;
        for (t, v) in of_device(channels::DEVICES_DATA) {
            let values = &v["values"];
            deadband = values[&p.deadband].as_f64().map_or(deadband, f64::abs);
            if let Some(counts) = values[&p.encoder].as_f64() {
                h.readings.push(Reading {
                    t,
                    counts,
                    deadband,
                });
            }
        }
        for (t, v) in of_device(channels::DEVICES_WRITE) {
            if let Some(d) = v["values"][&p.duty].as_f64() {
                h.duty.push((t, d));
            }
            if v["values"].get(&p.encoder).is_some() {
                h.zeroed.push(t);
            }
        }
        h.duty
            .extend(of_device(channels::DEVICES_DISABLE).map(|(t, _)| (t, 0.0)));
        h.duty.sort_by_key(|(t, _)| *t);
        h.enabled = enabled(rec);
        Ok((ty, h))
    }

    /// The samples: each reading whose window qualifies (see the module's doc).
    fn samples(&self) -> Vec<Sample> {
        let n = self.readings.len();
        if n <= 2 * HALF_WINDOW {
            return Vec::new();
        }
        (HALF_WINDOW..n - HALF_WINDOW)
            .filter_map(|i| {
                let window = &self.readings[i - HALF_WINDOW..=i + HALF_WINDOW];
                let (from, to) = (window[0].t, window[2 * HALF_WINDOW].t);
                let duty = steady(&self.duty, from, to)?;
                let on = steady(&self.enabled, from, to).unwrap_or(false);
                let zeroed = self.zeroed.iter().any(|t| (from..=to).contains(t));
                let moving = window.windows(2).all(|w| w[1].counts > w[0].counts)
                    || window.windows(2).all(|w| w[1].counts < w[0].counts);
                if !on || zeroed || !moving || duty.abs() <= self.readings[i].deadband {
                    return None;
                }
                let (velocity, acceleration) = derivatives(window, self.readings[i].t)?;
                Some(Sample {
                    duty,
                    velocity,
                    acceleration,
                })
            })
            .collect()
    }
}

/// The value of a step signal (`(time, value)` changes in time order) from `from` to `to`,
/// when it was the same all along; `None` when it changed or was never set.
fn steady<T: Copy + PartialEq>(changes: &[(u64, T)], from: u64, to: u64) -> Option<T> {
    let at = |t: u64| {
        changes
            .iter()
            .take_while(|(c, _)| *c <= t)
            .last()
            .map(|c| c.1)
    };
    let value = at(from)?;
    changes
        .iter()
        .filter(|(t, _)| (from..=to).contains(t))
        .all(|(_, v)| *v == value)
        .then_some(value)
}

/// The robot's enabled transitions: from the state at the start (the `pitcrew.recording`
/// metadata), then each `/robot/state`.
fn enabled(rec: &Recording) -> Vec<(u64, bool)> {
    let is_on = |v: &Value| matches!(v["state"].as_str(), Some("autonomous" | "teleop"));
    let mut out = Vec::new();
    if let Some(start) = rec
        .meta("pitcrew.recording", "robot_state")
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        out.push((0, is_on(&start)));
    }
    out.extend(rec.on(channels::ROBOT_STATE).filter_map(|m| {
        let v: Value = serde_json::from_slice(&m.data).ok()?;
        Some((m.log_time, is_on(&v)))
    }));
    out
}

/// The devices a recording has, for an error message: `UID (type), ...`.
fn devices(rec: &Recording) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in rec.on(channels::DEVICES_CONNECTION) {
        let Ok(v) = serde_json::from_slice::<Value>(&m.data) else {
            continue;
        };
        let name = format!(
            "{} ({})",
            v["uid"].as_str().unwrap_or("?"),
            v["type"].as_str().unwrap_or("?")
        );
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    if seen.is_empty() {
        "no devices".to_owned()
    } else {
        seen.join(", ")
    }
}

/// The velocity and acceleration at `t` of the least-squares parabola through `window`
/// (counts over CLOCK_MONOTONIC ns): its first and twice its second coefficient, in
/// counts/s and counts/s². `None` when the times do not determine one.
fn derivatives(window: &[Reading], t: u64) -> Option<(f64, f64)> {
    // Σ τ^k for k = 0..4 and Σ p·τ^k for k = 0..2, τ in seconds from t.
    let (mut s, mut r) = ([0.0f64; 5], [0.0f64; 3]);
    let p0 = window.first()?.counts;
    for w in window {
        let tau = (w.t as f64 - t as f64) / 1e9;
        let p = w.counts - p0;
        let mut power = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += power;
            if let Some(rk) = r.get_mut(k) {
                *rk += p * power;
            }
            power *= tau;
        }
    }
    // Cramer's rule on [[s0 s1 s2] [s1 s2 s3] [s2 s3 s4]]·[c0 c1 c2] = r.
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let det = det3(m);
    if det.abs() < f64::EPSILON * s[4] * s[4] || det == 0.0 {
        return None;
    }
    let column = |j: usize| {
        let mut m = m;
        for (row, v) in m.iter_mut().zip(r) {
            row[j] = v;
        }
        det3(m) / det
    };
    let (c1, c2) = (column(1), column(2));
    (c1.is_finite() && c2.is_finite()).then_some((c1, 2.0 * c2))
}

/// The fit of `motor` in `rec` (read from `file`), with the device's type.
///
/// # Errors
/// Not a pitcrew recording, no such device, a device without that motor, too few driven
/// samples, or samples that cannot tell the constants apart.
fn fit_recording(rec: &Recording, file: &Path, motor: &Motor) -> anyhow::Result<(String, Fit)> {
    let (ty, history) = History::read(rec, motor).with_context(|| format!("{}", file.display()))?;
    let samples = history.samples();
    let fit = feedforward::fit(&samples).map_err(|e| match e {
        FitError::TooFewSamples { got, need } => anyhow::anyhow!(
            "{}: only {got} samples of motor {motor} driven (the robot enabled, |{}| above \
             its deadband and unchanged, and the motor turning one way, over {} encoder \
             readings); at least {need} are needed: record the motor driven at several duty \
             cycles for a few seconds",
            file.display(),
            params(motor, &ty).map_or_else(|_| "duty".into(), |p| p.duty),
            2 * HALF_WINDOW + 1,
        ),
        FitError::Degenerate => anyhow::anyhow!("{}: motor {motor}: {e}", file.display()),
    })?;
    Ok((ty, fit))
}

impl FitArgs {
    /// Reads the recording, fits, prints.
    ///
    /// # Errors
    /// The recording cannot be read or is not one; as [`fit_recording`]; stdout errors.
    pub fn run(self) -> anyhow::Result<()> {
        let rec = read::read(&self.file)?;
        let (ty, fit) = fit_recording(&rec, &self.file, &self.device)?;
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", to_json(&self.device, &ty, &fit))?;
        } else {
            write!(out, "{}", human(&self.device, &ty, &fit))?;
        }
        Ok(())
    }
}

/// The fit as `--json` prints it.
fn to_json(motor: &Motor, ty: &str, fit: &Fit) -> Value {
    json!({
        "uid": motor.uid,
        "motor": motor.channel.map(String::from),
        "type": ty,
        "ks": fit.ks,
        "kv": fit.kv,
        "ka": fit.ka,
        "r_squared": fit.r_squared,
        "rms": fit.rms,
        "samples": fit.samples,
        "outliers": fit.outliers,
    })
}

/// The fit as lines for a person.
fn human(motor: &Motor, ty: &str, fit: &Fit) -> String {
    format!(
        "motor    {motor} ({ty})\n\
         kS       {:.4} (duty)\n\
         kV       {:.4e} (duty per count/s)\n\
         kA       {:.4e} (duty per count/s²)\n\
         fit      R² {:.4}, RMS residual {:.4} (duty), {} samples ({} left out as \
         outliers)\n",
        fit.ks, fit.kv, fit.ka, fit.r_squared, fit.rms, fit.samples, fit.outliers
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::read::{Channel, Message};

    const KOALA: &str = "61396659489217615757313";

    fn motor(text: &str) -> Motor {
        parse_motor(text).unwrap()
    }

    #[test]
    fn a_motor_is_a_uid_and_perhaps_a_or_b() {
        assert_eq!(
            motor(&format!("{KOALA}:b")),
            Motor {
                uid: KOALA.into(),
                channel: Some('b')
            }
        );
        assert_eq!(motor("42").channel, None);
        assert_eq!(
            motor(&format!("{KOALA}:a")).to_string(),
            format!("{KOALA}:a")
        );
        let e = parse_motor("42:c").unwrap_err();
        assert!(e.contains("UID:a or UID:b"), "{e}");
        assert!(parse_motor("left:a").is_err());
    }

    #[test]
    fn the_params_follow_the_device_type() {
        let p = params(&motor("1:a"), "koala-bear").unwrap();
        assert_eq!(
            (p.duty.as_str(), p.encoder.as_str()),
            ("duty_cycle_a", "enc_pos_a")
        );
        assert_eq!(
            params(&motor("1"), "polar-bear").unwrap().encoder,
            "enc_pos"
        );
        let said = |m: &str, ty: &str| params(&motor(m), ty).unwrap_err().to_string();
        assert!(said("1", "koala-bear").contains("--device 1:a or 1:b"));
        assert!(said("1:a", "yogi-bear").contains("drives one motor"));
        assert!(said("1", "limit-switch").contains("no motor with an encoder"));
    }

    #[test]
    fn a_parabola_gives_its_velocity_and_acceleration() {
        // p = 100 + 2000·τ + 0.5·6000·τ², readings 40 ms apart with a little jitter.
        let at = [0u64, 41_000_000, 79_000_000, 120_000_000, 162_000_000];
        let window: Vec<Reading> = at
            .iter()
            .map(|&t| {
                let tau = (t as f64 - 79e6) / 1e9;
                Reading {
                    t,
                    counts: 100.0 + 2000.0 * tau + 3000.0 * tau * tau,
                    deadband: 0.0,
                }
            })
            .collect();
        let (v, a) = derivatives(&window, 79_000_000).unwrap();
        assert!((v - 2000.0).abs() < 1e-6, "{v}");
        assert!((a - 6000.0).abs() < 1e-4, "{a}");
    }

    #[test]
    fn a_step_signal_is_steady_only_where_it_does_not_change() {
        let changes = [(10u64, 0.5), (20, 0.5), (30, -0.2)];
        assert_eq!(steady(&changes, 5, 15), None, "not yet set");
        assert_eq!(steady(&changes, 12, 25), Some(0.5), "a repeated value");
        assert_eq!(steady(&changes, 25, 35), None, "a change");
        assert_eq!(steady(&changes, 31, 99), Some(-0.2));
    }

    /// A recording of a koala-bear's motor a following `duty = kS·sign(v) + kV·v + kA·a`
    /// through duty steps, its encoder read every 40 ms, enabled after a second.
    fn recording(ks: f64, kv: f64, ka: f64) -> Recording {
        let mut rec = Recording::default();
        for (id, topic) in [
            (1, channels::DEVICES_DATA),
            (2, channels::DEVICES_WRITE),
            (3, channels::ROBOT_STATE),
        ] {
            let c = Channel {
                topic: topic.into(),
                schema: String::new(),
                schema_encoding: String::new(),
                message_encoding: "json".into(),
            };
            rec.channels.insert(id, c);
        }
        let mut push = |channel, t: u64, v: Value| {
            rec.messages.push(Message {
                channel,
                log_time: t,
                data: serde_json::to_vec(&v).unwrap(),
            });
        };
        push(3, 1_000_000_000, json!({"state": "teleop"}));
        let (mut p, mut v, mut t) = (0.0f64, 0.0f64, 0u64);
        for duty in [0.0f64, 0.3, 0.6, 0.45, -0.4, -0.7, 0.2, 0.8] {
            let w = json!({"uid": KOALA, "type": "koala-bear", "values": {"duty_cycle_a": duty}});
            push(2, t, w);
            for _ in 0..1000 {
                if t % 40_000_000 == 0 {
                    let d = json!({"uid": KOALA, "type": "koala-bear", "values": {"enc_pos_a": p}});
                    push(1, t, d);
                }
                let a = if v == 0.0 && duty.abs() <= ks {
                    0.0
                } else {
                    (duty - ks * if v == 0.0 { duty.signum() } else { v.signum() } - kv * v) / ka
                };
                p += v * 1e-3;
                v += a * 1e-3;
                t += 1_000_000;
            }
        }
        rec.messages.sort_by_key(|m| m.log_time);
        rec
    }

    #[test]
    fn a_recorded_motor_gives_back_its_constants() {
        let (ks, kv, ka) = (0.04, 1.0e-4, 2.5e-5);
        let rec = recording(ks, kv, ka);
        let (ty, fit) =
            fit_recording(&rec, Path::new("r.mcap"), &motor(&format!("{KOALA}:a"))).unwrap();
        assert_eq!(ty, "koala-bear");
        assert!((fit.kv - kv).abs() < 0.01 * kv, "{fit:?}");
        assert!((fit.ks - ks).abs() < 0.02 * ks, "{fit:?}");
        assert!((fit.ka - ka).abs() < 0.1 * ka, "{fit:?}");
        assert!(fit.r_squared > 0.999, "{fit:?}");
        // Seven driven seconds at 25 readings a second, less four windows at each of the
        // seven steps and those where the motor turned round.
        assert!(fit.samples > 130 && fit.samples <= 147, "{fit:?}");
        let text = human(&motor(&format!("{KOALA}:a")), &ty, &fit);
        assert!(text.contains("kV       1.00"), "{text}");
        let j = to_json(&motor(&format!("{KOALA}:a")), &ty, &fit);
        assert_eq!(
            (j["motor"].as_str(), j["samples"].as_u64()),
            (Some("a"), Some(fit.samples as u64))
        );
    }

    #[test]
    fn what_cannot_be_fitted_says_why() {
        let rec = recording(0.04, 1.0e-4, 2.5e-5);
        let said = |m: &str, rec: &Recording| {
            format!(
                "{:#}",
                fit_recording(rec, Path::new("r.mcap"), &motor(m)).unwrap_err()
            )
        };
        let e = said("42", &rec);
        assert!(
            e.contains("r.mcap") && e.contains("there is no device 42"),
            "{e}"
        );
        let e = said(&format!("{KOALA}:b"), &rec);
        assert!(
            e.contains("only 0 samples of motor") && e.contains("duty_cycle_b"),
            "{e}"
        );
        let mut short = recording(0.04, 1.0e-4, 2.5e-5);
        short.messages.retain(|m| m.log_time < 1_500_000_000);
        let e = said(&format!("{KOALA}:a"), &short);
        assert!(e.contains("at least 20 are needed"), "{e}");
        let e = said("42", &Recording::default());
        assert!(e.contains("not a pitcrew recording"), "{e}");
    }
}

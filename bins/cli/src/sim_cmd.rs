//! `pitcrew sim state|place|reset`: look at and move the simulated robot of
//! `pitcrew emulate --sim FILE` (through its `sim` RPC service); `pitcrew sim fit`: a
//! motor's feedforward constants from a recording ([`fit`], by [`feedforward`]), of the
//! simulated robot or a real one.

mod feedforward;
mod fit;

use clap::{Args, Subcommand};
use pitcrew::codec::{self, Value};
use pitcrew::config::Config;
use pitcrew::rpc::Client;

use crate::emulate::sim::SERVICE;

/// Arguments of `pitcrew sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Print the pose, wheel speeds, battery voltage and motor currents.
    State {
        /// One JSON object (keys `x`, `y`, `heading`, `battery_v`, `motors`, ...).
        #[arg(long)]
        json: bool,
    },
    /// Put the robot at X Y (metres) facing HEADING (radians), at rest.
    Place {
        /// Metres from the field's corner along its length.
        x: f64,
        /// Metres from the field's corner along its width.
        y: f64,
        /// Radians counter-clockwise from the field's x axis.
        #[arg(default_value_t = 0.0, allow_hyphen_values = true)]
        heading: f64,
    },
    /// Back to the start: pose, speeds, encoders, battery and simulated time.
    Reset,
    /// Estimate a motor's feedforward kS, kV, kA (duty = kS·sign(v) + kV·v + kA·a, v in
    /// encoder counts/s) from a recording of it driven, with the fit's quality.
    Fit(fit::FitArgs),
}

impl SimArgs {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// No simulation is running (the `sim` service is unknown), or the call failed; for
    /// `fit`, as [`fit::FitArgs::run`].
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        if let SimCommand::Fit(args) = self.command {
            return args.run();
        }
        let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)?;
        let (method, params, json) = match self.command {
            SimCommand::State { json } => ("state", vec![], json),
            SimCommand::Place { x, y, heading } => {
                ("place", vec![x.into(), y.into(), heading.into()], false)
            }
            SimCommand::Reset => ("reset", vec![], false),
            SimCommand::Fit(_) => unreachable!("answered above, without the router"),
        };
        let state = client.call(SERVICE, method, params).await.map_err(|e| {
            anyhow::anyhow!(
                "{e} (is a simulation running? `pitcrew emulate --sim FILE` or \
                 `scripts/supervise --sim FILE` starts one)"
            )
        })?;
        if json {
            println!("{}", codec::to_json(&state));
        } else {
            print!("{}", human(&state));
        }
        Ok(())
    }
}

/// The state as lines for a person.
fn human(state: &Value) -> String {
    let get = |k: &str| {
        codec::get(state, k)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let mut out = format!(
        "time     {:.3} s\npose     x {:.3} m  y {:.3} m  heading {:.3} rad ({:.1}°)\n\
         battery  {:.2} V  {:.2} A\n",
        get("time"),
        get("x"),
        get("y"),
        get("heading"),
        get("heading").to_degrees(),
        get("battery_v"),
        get("battery_current"),
    );
    if let Some(Value::Array(motors)) = codec::get(state, "motors") {
        for m in motors {
            let name = codec::get(m, "name").and_then(Value::as_str).unwrap_or("?");
            let num = |k| codec::get(m, k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            out += &format!(
                "motor    {name:<8} {:>8.2} rad/s  {:>6.2} A\n",
                num("speed"),
                num("current")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_reads_as_lines() {
        let state = Value::Map(vec![
            ("time".into(), 1.5.into()),
            ("x".into(), 0.5.into()),
            ("y".into(), 1.5.into()),
            ("heading".into(), std::f64::consts::FRAC_PI_2.into()),
            ("battery_v".into(), 12.25.into()),
            ("battery_current".into(), 3.0.into()),
            (
                "motors".into(),
                Value::Array(vec![Value::Map(vec![
                    ("name".into(), "left".into()),
                    ("speed".into(), 10.0.into()),
                    ("current".into(), 1.25.into()),
                ])]),
            ),
        ]);
        let text = human(&state);
        assert!(
            text.contains("x 0.500 m  y 1.500 m  heading 1.571 rad (90.0°)"),
            "{text}"
        );
        assert!(text.contains("battery  12.25 V  3.00 A"), "{text}");
        assert!(text.contains("left        10.00 rad/s    1.25 A"), "{text}");
    }
}

//! `pitcrew state | enable | disable | estop | match`: the robot state (robot-state.md) from
//! the command line, through `robot-service` on the device broker. `state --follow` blocks
//! on the broker's shared-memory state segment and prints each transition as it happens.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pitcrew::codec::{to_json, Value};
use pitcrew::config::Config;
use pitcrew::options::parse_duration;
use pitcrew::robot::status::one_line;
use pitcrew::robot::{monotonic_ns, Mode, Robot};
use pitcrew::rpc::Client;

use crate::output::print_value;

/// The robot state's service identity.
pub const ROBOT_SERVICE: &str = "robot-service";

async fn call(config: &Config, method: &str, params: Vec<Value>) -> anyhow::Result<Value> {
    let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
        .context("cannot create the RPC client")?;
    Ok(client.call(ROBOT_SERVICE, method, params).await?)
}

/// Prints a state answer: one line, or JSON.
fn print_state(state: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_value(state, true);
    }
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{}", one_line(&to_json(state)))?;
    Ok(())
}

/// Arguments of `pitcrew state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Keep printing: one line per transition (from shared memory, on this machine).
    #[arg(long)]
    pub follow: bool,
    /// Print the state as JSON.
    #[arg(long)]
    pub json: bool,
}

impl StateArgs {
    /// Prints the robot state (and with `--follow` each change) until interrupted.
    ///
    /// # Errors
    /// RPC errors without `--follow`; stdout errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        if !self.follow {
            let state = call(config, "state", vec![]).await?;
            return print_state(&state, self.json);
        }
        let namespace = config.namespace.clone();
        let json = self.json;
        tokio::task::spawn_blocking(move || follow(&namespace, json))
            .await
            .context("the follow thread was lost")?
    }
}

/// Prints the state each time it changes (blocking on the segment's futex).
fn follow(namespace: &str, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut robot = Robot::new(namespace);
    let mut last = None;
    let mut seen = robot.change_count();
    loop {
        let status = robot.status();
        let key = (status.state, status.transitions, status.since_ns);
        if last != Some(key) {
            last = Some(key);
            let wire = status.to_json(monotonic_ns(), None);
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{wire}")?;
            } else {
                writeln!(out, "{}", one_line(&wire))?;
            }
            out.flush()?;
        }
        seen = robot.wait_for_change(seen, Duration::from_millis(500))?;
    }
}

/// Arguments of `pitcrew enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// `autonomous` or `teleop`.
    #[arg(value_parser = parse_mode)]
    pub mode: Mode,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
        .map_err(|e: pitcrew::robot::UnknownMode| e.to_string())
}

impl EnableArgs {
    /// Enables the robot (bound to the live driver link; refused without one).
    ///
    /// # Errors
    /// RPC errors, including the rules' refusal.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let state = call(config, "enable", vec![Value::from(self.mode.name())]).await?;
        print_state(&state, false)
    }
}

/// Arguments of `pitcrew disable`.
#[derive(Debug, Args)]
pub struct DisableArgs {
    /// Devices to send DEV_DISABLE to directly (device-service `disable`); without any,
    /// the robot is disabled.
    pub uids: Vec<String>,
    /// Why (logged and shown in the state).
    #[arg(long, default_value = "disabled from the command line")]
    pub reason: String,
}

impl DisableArgs {
    /// Disables the robot (or, given UIDs, those devices).
    ///
    /// # Errors
    /// RPC errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        if !self.uids.is_empty() {
            let uids = Value::Array(self.uids.iter().map(|u| Value::from(u.as_str())).collect());
            let done = crate::devices::call(config, "disable", vec![uids]).await?;
            return print_value(&done, true);
        }
        let state = call(config, "disable", vec![Value::from(self.reason.as_str())]).await?;
        print_state(&state, false)
    }
}

/// Arguments of `pitcrew estop`.
#[derive(Debug, Args)]
pub struct EstopArgs {}

impl EstopArgs {
    /// Emergency stop.
    ///
    /// # Errors
    /// RPC errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let done = call(config, "estop", vec![]).await?;
        print_value(&done, true)?;
        eprintln!(
            "pitcrew: emergency stop latched: every device is disabled until the suite is \
             stopped, `pitcrew clean` is run and it is started again"
        );
        Ok(())
    }
}

/// Arguments of `pitcrew match`.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Length of the autonomous period (e.g. 15s).
    #[arg(long, default_value = "15s", allow_hyphen_values = true, value_parser = parse_duration)]
    pub auto: Duration,
    /// Disabled time between autonomous and teleop.
    #[arg(long, default_value = "0s", allow_hyphen_values = true, value_parser = parse_duration)]
    pub gap: Duration,
    /// Length of the teleop period (e.g. 2m).
    #[arg(long, default_value = "135s", allow_hyphen_values = true, value_parser = parse_duration)]
    pub teleop: Duration,
    /// Stop the running match instead (the robot is disabled).
    #[arg(long, conflicts_with_all = ["auto", "gap", "teleop"])]
    pub stop: bool,
}

impl MatchArgs {
    /// Starts (or stops) a timed match.
    ///
    /// # Errors
    /// RPC errors, including the rules' refusal (no live link, estop, a match running).
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let state = if self.stop {
            call(config, "stop_match", vec![]).await?
        } else {
            let s = |d: Duration| Value::F64(d.as_secs_f64());
            call(
                config,
                "start_match",
                vec![s(self.auto), s(self.gap), s(self.teleop)],
            )
            .await?
        };
        print_state(&state, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        m: MatchArgs,
    }

    #[test]
    fn match_takes_durations_and_stop_excludes_them() {
        let t = T::try_parse_from(["t", "--auto", "30s", "--teleop", "2m"]).unwrap();
        assert_eq!(
            (t.m.auto, t.m.gap, t.m.teleop),
            (
                Duration::from_secs(30),
                Duration::ZERO,
                Duration::from_secs(120)
            )
        );
        assert!(T::try_parse_from(["t", "--stop", "--auto", "1s"]).is_err());
        assert!(T::try_parse_from(["t", "--auto", "soon"]).is_err());
        assert!(parse_mode("teleop").is_ok() && parse_mode("drive").is_err());
    }
}

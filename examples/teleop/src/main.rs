//! `pitcrew-teleop`: an example controller. The left stick's y axis drives `duty_cycle_a` and
//! the right stick's y axis `duty_cycle_b` of every koala-bear; button A toggles a slow mode.
//!
//! In `autonomous` it drives both motors at 0.5 for 1 s, then stops; while the robot is
//! disabled it writes nothing (the device broker holds every motor safe anyway).
//!
//! It is built only on the application crate and the shared-memory buffers, as a team's own
//! controller would be, and shows what such code must get right: follow the robot state,
//! react to input at once (it blocks on the gamepad buffer's futex, no polling tick), write
//! every cycle (the broker stops a motor whose value is not refreshed within its lease),
//! treat a lost gamepad as "stop" (a disconnected gamepad reads neutral), and let devices
//! and gamepads come and go.

mod controller;
mod drive;
mod fleet;

use std::process::ExitCode;

use clap::Parser;
use pitcrew::options::SharedOptions;

/// Drive every koala-bear from a gamepad.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-teleop", version, about, long_about = None)]
pub struct Options {
    /// Options shared by every pitcrew binary (namespace, catalog, logging...).
    #[command(flatten)]
    pub shared: SharedOptions,

    /// Index of the gamepad to drive with (as the gamepad receiver numbers them).
    #[arg(
        long,
        env = "PITCREW_TELEOP_GAMEPAD",
        default_value_t = 0,
        help_heading = "Teleop"
    )]
    pub gamepad: u32,

    /// Factor applied to both sticks in slow mode (button A toggles it).
    #[arg(long, env = "PITCREW_TELEOP_SLOW_SCALE", default_value_t = 0.3,
          value_parser = drive::parse_scale, help_heading = "Teleop")]
    pub slow_scale: f32,

    /// Run the control thread at this SCHED_FIFO priority (1 to 99) so that other load on
    /// the board cannot delay a stick change; needs CAP_SYS_NICE (warns without it).
    #[arg(long, env = "PITCREW_TELEOP_REALTIME", value_name = "PRIORITY",
          value_parser = clap::value_parser!(u8).range(1..=99), help_heading = "Teleop")]
    pub realtime: Option<u8>,
}

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    pitcrew::app::main(
        "teleop",
        &options.shared.clone(),
        move |config, shutdown| controller::run(options, config, shutdown),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_is_complete() {
        Options::command().debug_assert();
        let o = Options::parse_from(["pitcrew-teleop", "--slow-scale", "0.5"]);
        assert_eq!((o.gamepad, o.slow_scale), (0, 0.5));
        assert!(Options::try_parse_from(["pitcrew-teleop", "--slow-scale", "2"]).is_err());
        let o = Options::parse_from(["pitcrew-teleop", "--gamepad", "2", "--realtime", "10"]);
        assert_eq!((o.gamepad, o.realtime), (2, Some(10)));
        for bad in [
            ["--gamepad", "-1"],
            ["--realtime", "0"],
            ["--realtime", "100"],
        ] {
            assert!(Options::try_parse_from([&["pitcrew-teleop"][..], &bad].concat()).is_err());
        }
    }
}

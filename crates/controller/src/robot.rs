//! The robot state (robot-state.md): `disabled`, `autonomous`, `teleop` or `estopped`,
//! held and enforced by the device broker alone, and readable by everyone else.
//!
//! * [`Mode`], [`State`] and [`MatchPhase`]: the vocabulary, with the names used on every
//!   wire (RPC, multicast, the driver station's datagrams, the CLI);
//! * [`RobotStatus`]: one complete reading of the state, as the broker publishes it;
//! * [`StationRequest`]: what a driver station asks of the robot;
//! * [`segment`]: the two shared-memory segments of a namespace — the broker's
//!   `robot-state` and the gamepad receiver's `driver-links` — and their byte layout;
//! * [`Robot`]: the controller's reader, with a blocking wait for a change.

pub mod reader;
pub mod segment;
pub mod status;

use std::fmt;
use std::str::FromStr;

pub use reader::Robot;
pub use status::RobotStatus;

/// What a driver station asks of the robot, carried in every datagram it sends (meta
/// `ds`). The robot acts on changes: an `enable_id` it has not seen from this source while
/// `enable` is set is a new enable request (robot-state.md rule 4), `enable` false while
/// the robot is enabled by this station disables it, and `estop` is an emergency stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationRequest {
    /// The mode the station asks for.
    pub mode: Mode,
    /// Whether the station asks for the robot to be enabled.
    pub enable: bool,
    /// Counts the driver's enable presses: each new press is a new request.
    pub enable_id: u32,
    /// The driver pressed the emergency stop (kept set from then on).
    pub estop: bool,
}

/// A mode the robot can be enabled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Controllers run their scripted routine; driver input is not expected.
    Autonomous,
    /// Controllers follow the driver's gamepads.
    Teleop,
}

impl Mode {
    /// The wire and CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Autonomous => "autonomous",
            Mode::Teleop => "teleop",
        }
    }

    /// The byte stored in the segments (1 autonomous, 2 teleop).
    pub fn code(self) -> u8 {
        match self {
            Mode::Autonomous => 1,
            Mode::Teleop => 2,
        }
    }

    /// The mode of a stored byte.
    pub fn from_code(code: u8) -> Option<Mode> {
        match code {
            1 => Some(Mode::Autonomous),
            2 => Some(Mode::Teleop),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: expected autonomous or teleop")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        match s {
            "autonomous" | "auto" => Ok(Mode::Autonomous),
            "teleop" => Ok(Mode::Teleop),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}

/// The robot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Every output at its safe value.
    Disabled,
    /// Enabled in autonomous: outputs driven by controllers.
    Autonomous,
    /// Enabled in teleop: outputs driven by controllers.
    Teleop,
    /// Emergency stop: DEV_DISABLE to every device, latched until `pitcrew clean`.
    Estopped,
}

impl State {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            State::Disabled => "disabled",
            State::Autonomous => "autonomous",
            State::Teleop => "teleop",
            State::Estopped => "estopped",
        }
    }

    /// The enabled state of `mode`.
    pub fn enabled_in(mode: Mode) -> State {
        match mode {
            Mode::Autonomous => State::Autonomous,
            Mode::Teleop => State::Teleop,
        }
    }

    /// Whether controllers drive the outputs.
    pub fn is_enabled(self) -> bool {
        matches!(self, State::Autonomous | State::Teleop)
    }

    /// The mode, when enabled.
    pub fn mode(self) -> Option<Mode> {
        match self {
            State::Autonomous => Some(Mode::Autonomous),
            State::Teleop => Some(Mode::Teleop),
            _ => None,
        }
    }

    /// The byte stored in the segment.
    pub fn code(self) -> u8 {
        match self {
            State::Disabled => 0,
            State::Autonomous => 1,
            State::Teleop => 2,
            State::Estopped => 3,
        }
    }

    /// The state of a stored byte; anything unknown reads as `disabled`, the safe reading.
    pub fn from_code(code: u8) -> State {
        match code {
            1 => State::Autonomous,
            2 => State::Teleop,
            3 => State::Estopped,
            _ => State::Disabled,
        }
    }

    /// The state of a wire name.
    pub fn from_name(name: &str) -> Option<State> {
        [
            State::Disabled,
            State::Autonomous,
            State::Teleop,
            State::Estopped,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase of a timed match (rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchPhase {
    /// Autonomous for A seconds.
    Autonomous,
    /// Disabled between the two.
    Gap,
    /// Teleop for T seconds.
    Teleop,
}

impl MatchPhase {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            MatchPhase::Autonomous => "autonomous",
            MatchPhase::Gap => "gap",
            MatchPhase::Teleop => "teleop",
        }
    }

    /// The byte stored in the segment (0 is "no match").
    pub fn code(self) -> u8 {
        match self {
            MatchPhase::Autonomous => 1,
            MatchPhase::Gap => 2,
            MatchPhase::Teleop => 3,
        }
    }

    /// The phase of a stored byte.
    pub fn from_code(code: u8) -> Option<MatchPhase> {
        match code {
            1 => Some(MatchPhase::Autonomous),
            2 => Some(MatchPhase::Gap),
            3 => Some(MatchPhase::Teleop),
            _ => None,
        }
    }

    /// The phase of a wire name.
    pub fn from_name(name: &str) -> Option<MatchPhase> {
        [MatchPhase::Autonomous, MatchPhase::Gap, MatchPhase::Teleop]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock every process of the machine shares, which
/// the segments' timestamps use (a link's last datagram, a phase's end).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for m in [Mode::Autonomous, Mode::Teleop] {
            assert_eq!(m.name().parse::<Mode>(), Ok(m));
            assert_eq!(Mode::from_code(m.code()), Some(m));
            assert_eq!(State::enabled_in(m).mode(), Some(m));
        }
        assert!("fast".parse::<Mode>().is_err());
        for s in [
            State::Disabled,
            State::Autonomous,
            State::Teleop,
            State::Estopped,
        ] {
            assert_eq!(State::from_code(s.code()), s);
            assert_eq!(State::from_name(s.name()), Some(s));
        }
        assert_eq!(State::from_code(200), State::Disabled, "unknown reads safe");
        for p in [MatchPhase::Autonomous, MatchPhase::Gap, MatchPhase::Teleop] {
            assert_eq!(MatchPhase::from_code(p.code()), Some(p));
            assert_eq!(MatchPhase::from_name(p.name()), Some(p));
        }
        assert!(monotonic_ns() > 0);
    }
}

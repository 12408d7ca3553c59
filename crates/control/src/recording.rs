//! The gamepad recording line format: the states a sender sent, one JSON object per line,
//! `{"t_us": 20000, "gamepads": {"0": {"lx": 0.0, "ly": 0.5, "rx": 0.0, "ry": 0.0, "btn": 1}}}`,
//! `t_us` counted from the start of the recording. `pitcrew-gamepad send --record` writes
//! it and `--replay` reads it; tests write it to drive a sender.

use std::time::Duration;

use serde_json::json;

use super::MAX_GAMEPADS;
use pitcrew_controller::gamepad::{PadState, BUTTON_COUNT};

/// Why a recording line is not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(String);

fn bad(what: impl Into<String>) -> LineError {
    LineError(what.into())
}

/// What every gamepad reads at one instant, by index (ascending).
pub type Snapshot = Vec<(u32, PadState)>;

/// One line of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Time since the start of the recording.
    pub at: Duration,
    /// The gamepads' states.
    pub gamepads: Snapshot,
}

/// Formats one line (without the newline).
pub fn format_line(at: Duration, gamepads: &Snapshot) -> String {
    let pads: serde_json::Map<String, serde_json::Value> = gamepads
        .iter()
        .map(|(i, p)| {
            (
                i.to_string(),
                json!({"lx": p.lx, "ly": p.ly, "rx": p.rx, "ry": p.ry, "btn": p.btn}),
            )
        })
        .collect();
    json!({"t_us": at.as_micros() as u64, "gamepads": pads}).to_string()
}

fn axis(v: &serde_json::Value, key: &str) -> Result<f32, LineError> {
    match v.get(key) {
        None => Ok(0.0),
        Some(x) => match x.as_f64() {
            Some(f) if (-1.0..=1.0).contains(&f) => Ok(f as f32),
            _ => Err(bad(format!("{key} must be a number in [-1, 1]"))),
        },
    }
}

/// Parses one line.
///
/// # Errors
/// When the line is not a frame with valid values.
pub fn parse_line(line: &str) -> Result<Frame, LineError> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let t_us = v["t_us"]
        .as_u64()
        .ok_or_else(|| bad("t_us must be an unsigned integer"))?;
    let pads = v["gamepads"]
        .as_object()
        .ok_or_else(|| bad("gamepads must be an object"))?;
    let mut gamepads = Vec::with_capacity(pads.len());
    for (k, p) in pads {
        let index: u32 = k
            .parse()
            .map_err(|_| bad("a gamepad index must be a number"))?;
        if index >= MAX_GAMEPADS {
            return Err(bad(format!(
                "gamepad index {index} (at most {})",
                MAX_GAMEPADS - 1
            )));
        }
        let btn = p.get("btn").map_or(Some(0), serde_json::Value::as_u64);
        let btn = match btn {
            Some(b) if b >> BUTTON_COUNT == 0 => b as u32,
            _ => {
                return Err(bad(format!(
                    "btn must be an unsigned integer below 2^{BUTTON_COUNT}"
                )))
            }
        };
        let state = PadState {
            lx: axis(p, "lx")?,
            ly: axis(p, "ly")?,
            rx: axis(p, "rx")?,
            ry: axis(p, "ry")?,
            btn,
        };
        if !state.sticks_in_circle() {
            return Err(bad(format!(
                "gamepad {index}: a stick is outside the unit circle"
            )));
        }
        gamepads.push((index, state));
    }
    gamepads.sort_by_key(|(i, _)| *i);
    Ok(Frame {
        at: Duration::from_micros(t_us),
        gamepads,
    })
}

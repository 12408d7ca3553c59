//! Recordings: the states a sender sent, one JSON object per line,
//! `{"t_us": 20000, "gamepads": {"0": {"lx": 0.0, "ly": 0.5, "rx": 0.0, "ry": 0.0, "btn": 1}}}`,
//! `t_us` counted from the start of the recording. `--record` writes them, `--replay` reads
//! them back with their timing.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::control::{PadState, BUTTON_COUNT, MAX_GAMEPADS};

/// The largest recording replayed (a 50 Hz session of about 2 h with two gamepads).
pub const MAX_LINES: usize = 500_000;

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

/// Appends lines to a recording file.
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
}

impl Recorder {
    /// Creates (truncates) `path`.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        Ok(Recorder {
            out: std::io::BufWriter::new(file),
        })
    }

    /// Writes one line and flushes it, so a killed sender leaves a usable recording.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&mut self, at: Duration, gamepads: &Snapshot) -> anyhow::Result<()> {
        writeln!(self.out, "{}", format_line(at, gamepads))?;
        self.out.flush()?;
        Ok(())
    }
}

fn axis(v: &serde_json::Value, key: &str) -> anyhow::Result<f32> {
    match v.get(key) {
        None => Ok(0.0),
        Some(x) => match x.as_f64() {
            Some(f) if (-1.0..=1.0).contains(&f) => Ok(f as f32),
            _ => bail!("{key} must be a number in [-1, 1]"),
        },
    }
}

/// Parses one line.
///
/// # Errors
/// When the line is not a frame with valid values.
pub fn parse_line(line: &str) -> anyhow::Result<Frame> {
    let v: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    let t_us = v["t_us"]
        .as_u64()
        .context("t_us must be an unsigned integer")?;
    let pads = v["gamepads"]
        .as_object()
        .context("gamepads must be an object")?;
    let mut gamepads = Vec::with_capacity(pads.len());
    for (k, p) in pads {
        let index: u32 = k.parse().context("a gamepad index must be a number")?;
        if index >= MAX_GAMEPADS {
            bail!("gamepad index {index} (at most {})", MAX_GAMEPADS - 1);
        }
        let btn = p.get("btn").map_or(Some(0), serde_json::Value::as_u64);
        let btn = match btn {
            Some(b) if b >> BUTTON_COUNT == 0 => b as u32,
            _ => bail!("btn must be an unsigned integer below 2^{BUTTON_COUNT}"),
        };
        let state = PadState {
            lx: axis(p, "lx")?,
            ly: axis(p, "ly")?,
            rx: axis(p, "rx")?,
            ry: axis(p, "ry")?,
            btn,
        };
        if !state.sticks_in_circle() {
            bail!("gamepad {index}: a stick is outside the unit circle");
        }
        gamepads.push((index, state));
    }
    gamepads.sort_by_key(|(i, _)| *i);
    Ok(Frame {
        at: Duration::from_micros(t_us),
        gamepads,
    })
}

/// Reads a whole recording. Times must not go backwards.
///
/// # Errors
/// When the file cannot be read, a line is bad (named by number), or it is too long.
pub fn load(path: &Path) -> anyhow::Result<Vec<Frame>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the recording {}", path.display()))?;
    let mut frames: Vec<Frame> = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if frames.len() >= MAX_LINES {
            bail!("{}: more than {MAX_LINES} lines", path.display());
        }
        let frame = parse_line(&line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        if frames.last().is_some_and(|f| f.at > frame.at) {
            bail!("{}:{}: t_us goes backwards", path.display(), n + 1);
        }
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_roundtrip() {
        let pads = vec![(
            1,
            PadState {
                lx: 0.25,
                ly: -0.5,
                rx: 0.0,
                ry: 1.0,
                btn: 0b1001,
            },
        )];
        let line = format_line(Duration::from_millis(20), &pads);
        let frame = parse_line(&line).unwrap();
        assert_eq!(frame.at, Duration::from_millis(20));
        assert_eq!(frame.gamepads, pads);
        assert!(parse_line(r#"{"t_us":0,"gamepads":{"0":{"lx":2}}}"#).is_err());
        assert!(parse_line(r#"{"t_us":0,"gamepads":{"9":{}}}"#).is_err());
    }
}

//! Recordings: the states a sender sent, one JSON object per line,
//! `{"t_us": 20000, "gamepads": {"0": {"lx": 0.0, "ly": 0.5, "rx": 0.0, "ry": 0.0, "btn": 1}}}`,
//! `t_us` counted from the start of the recording. `--record` writes them, `--replay` reads
//! them back with their timing.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

pub use pitcrew::control::recording::{format_line, parse_line, Frame, Snapshot};
#[cfg(test)]
use pitcrew::gamepad::PadState;

/// The largest recording replayed (a 50 Hz session of about 2 h with two gamepads).
pub const MAX_LINES: usize = 500_000;

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

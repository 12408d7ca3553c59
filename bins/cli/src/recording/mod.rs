//! Recordings of a whole robot session in MCAP: `pitcrew record` writes them from the
//! processes' taps and the log forwarder; `pitcrew recording info|export` reads them;
//! `pitcrew replay` plays their control input back as a driver link.
//!
//! * [`channels`]: the topics and their JSON schemas;
//! * [`record`]: the recorder; [`sim_pose`]: the simulated robot's pose it samples;
//!   [`budget`]: a recordings directory's disk budget;
//! * [`read`]: reading a file whole, tolerant of a cut one, precise about a corrupt one;
//! * [`info`], [`export`]: the summary and the CSV export;
//! * [`replay`]: control input played back; [`check`]: a controller checked against a
//!   recording (`replay --check FILE --run CMD`).

pub mod budget;
pub mod channels;
pub mod check;
pub mod export;
pub mod info;
mod queue;
pub mod read;
pub mod record;
pub mod replay;
pub mod sim_pose;

/// `pitcrew replay`: the control input played back, or with `--run CMD` a controller
/// checked against the recording.
///
/// # Errors
/// As [`replay::ReplayArgs::run`] and [`check::run`].
pub async fn replay_or_check(
    args: replay::ReplayArgs,
    config: &pitcrew::config::Config,
) -> anyhow::Result<()> {
    match args.run.clone() {
        Some(cmd) => check::run(&args, &cmd, config).await,
        None => args.run(config).await,
    }
}

use clap::{Args, Subcommand};

/// `pitcrew recording ...`.
#[derive(Debug, Args)]
pub struct RecordingArgs {
    /// What to do with the recording.
    #[command(subcommand)]
    pub command: RecordingCommand,
}

/// The `recording` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// Summarise a recording: span, channels and counts, state changes, estops,
    /// disconnects, errors; and what was lost when it was not closed.
    Info(info::InfoArgs),
    /// Export every channel of a recording as CSV files.
    Export(export::ExportArgs),
}

impl RecordingArgs {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// When the recording cannot be read, or output cannot be written.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            RecordingCommand::Info(a) => a.run(),
            RecordingCommand::Export(a) => a.run(),
        }
    }
}

//! Local log output for every binary: `pretty` (coloured on a terminal) or `json`.
//!
//! Records go to stderr so that a command's stdout stays clean for its results.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter::LevelFilter, fmt};

use crate::config::Config;
use crate::options::LogFormat;

/// Keeps logging set up; dropping it flushes what can be flushed.
pub struct LoggingGuard {
    _private: (),
}

/// Installs the global subscriber for `app`. A second call (tests) is a no-op.
pub fn init(app: &'static str, config: &Config) -> LoggingGuard {
    let level = LevelFilter::from_level(config.log_level.as_tracing());
    let registry = tracing_subscriber::registry().with(level);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match config.log_format {
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(app, "logging started");
    }
    LoggingGuard { _private: () }
}

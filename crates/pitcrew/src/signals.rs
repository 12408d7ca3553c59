//! The only place that installs signal handlers (STYLE: shutdown is a parameter).
//!
//! The first SIGINT or SIGTERM asks for a graceful stop by cancelling the token; a second
//! one means "stop now" and exits the process at once with status 130, for the operator
//! whose graceful stop is stuck.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Spawns the watcher of SIGINT/SIGTERM that cancels `token` on the first signal.
///
/// # Errors
/// When the signal handlers cannot be installed (no tokio runtime with signal support).
pub fn spawn_watcher(token: CancellationToken) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping"),
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
        }
        token.cancel();
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(())
}

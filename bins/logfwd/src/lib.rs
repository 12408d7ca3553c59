//! `pitcrew-logfwd`: collects every process's log records and fans them out.
//!
//! * [`forward`]: the loop on a thread of its own: backend SUB (bound, all topics) in,
//!   frontend PUB (bound) out; malformed messages are counted and dropped; a slow
//!   subscriber misses records at its high-water mark without holding up anyone.
//! * [`history`]: the last `--history` records, for subscribers that join late.
//! * [`stats`]: records in and out, malformed messages, per-publisher counts.
//! * [`service`]: `logfwd-service` on the router: `recent_logs(limit, min_level, app)` and
//!   `stats`.

pub mod forward;
pub mod history;
pub mod service;
pub mod stats;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use pitcrew::app::Stages;
use pitcrew::config::Config;
use pitcrew::options::SharedOptions;
use tokio_util::sync::CancellationToken;

use crate::forward::{Forwarder, State};
use crate::history::History;
use crate::stats::Stats;

/// Command line of `pitcrew-logfwd`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-logfwd",
    version,
    about = "Log forwarder: collects every process's log records (backend) and fans them out to subscribers (frontend)"
)]
pub struct Options {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,

    /// How many recent records to keep for `recent_logs`.
    #[arg(long, env = "PITCREW_LOG_HISTORY", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = "Forwarder")]
    pub history: u32,

    /// Records queued per subscriber before a slow one starts missing records (its
    /// high-water mark); the others are never held up.
    #[arg(long, env = "PITCREW_LOG_SUBSCRIBER_HWM", default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..=10_000_000), help_heading = "Forwarder")]
    pub subscriber_hwm: i32,
}

/// Binds the log endpoints, forwards, and serves `logfwd-service` until `shutdown` fires.
///
/// # Errors
/// When an endpoint cannot be bound (in use, bad path), or the forwarding thread fails.
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = Arc::new(Mutex::new(State {
        history: History::new(usize::try_from(options.history).unwrap_or(usize::MAX)),
        stats: Stats::default(),
    }));
    let forwarder = Forwarder::bind(
        &config.log_backend,
        &config.log_frontend,
        options.subscriber_hwm,
        state.clone(),
    )
    .context("cannot start the log forwarder")?;
    tracing::info!(
        backend = ?config.log_backend,
        frontend = ?config.log_frontend,
        history = options.history,
        "log forwarder listening"
    );
    let stop = forwarder.stop_handle();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("logfwd-loop".into())
        .spawn(move || {
            let _ = done_tx.send(forwarder.run());
        })
        .context("cannot start the forwarding thread")?;

    let mut stages = Stages::new(shutdown);
    stages.spawn("forward", move |token| async move {
        let mut done_rx = done_rx;
        tokio::select! {
            () = token.cancelled() => {
                stop.stop();
                (&mut done_rx).await.ok();
                Ok(())
            }
            result = &mut done_rx => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("forwarding failed")),
                Err(_) => Err(anyhow::anyhow!("the forwarding thread panicked")),
            },
        }
    });
    let backend = config.backend_connect();
    let service = service::build(state, config.service_workers);
    stages.spawn("service", move |token| async move {
        service.serve(&backend, token).await
    });
    // The forwarder's sockets remove their ipc files as they close (`run` consumes it).
    stages.run_until_stopped().await.map_err(Into::into)
}

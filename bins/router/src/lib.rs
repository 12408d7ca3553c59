//! `pitcrew-router`: clients on the frontend reach services on the backend by identity.
//!
//! The router runs as a plain poll loop over its two ROUTER sockets on a thread of its own
//! ([`broker`]): no async runtime sits between a message and its forwarding, and a stalled
//! or unknown peer costs only that peer's messages, answered `busy`/`unreachable` at once.
//! Peers are tracked in [`peers`]; requests to the identity `router` itself are answered by
//! [`control`].

pub mod broker;
pub mod control;
mod in_flight;
pub mod peers;

use anyhow::Context;
use clap::Parser;
use pitcrew::config::Config;
use pitcrew::options::SharedOptions;
use tokio_util::sync::CancellationToken;

/// Command line of `pitcrew-router`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-router",
    version,
    about = "RPC router: clients (frontend) reach services (backend) by identity"
)]
pub struct Options {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,
}

/// Binds the configured endpoints and routes until `shutdown` fires.
///
/// # Errors
/// When an endpoint cannot be bound (in use, bad path), or the routing thread fails.
pub async fn run(
    _options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let broker = broker::Broker::bind(&config.router_frontend, &config.router_backend)
        .context("cannot start the router")?;
    tracing::info!(
        frontend = ?config.router_frontend,
        backend = ?config.router_backend,
        "router listening"
    );
    let stop = broker.stop_handle();
    let thread = std::thread::Builder::new()
        .name("router-loop".into())
        .spawn(move || broker.run())
        .context("cannot start the routing thread")?;
    shutdown.cancelled().await;
    stop.stop();
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("routing thread lost")?
        .map_err(|_| anyhow::anyhow!("the routing thread panicked"))?
        .context("routing failed")?;
    // The broker's sockets removed their ipc files as they closed (`run` consumed it).
    Ok(())
}

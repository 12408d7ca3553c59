//! `pitcrew-devices`: finds Smart Devices, speaks the Smart Device Protocol with them, owns
//! their shared-memory buffers and serves `device-service` RPC.
//!
//! Layers: [`serial`] discovers serial ports (inotify plus rescans) and [`listener`]
//! accepts virtual devices over TCP; each connection runs a
//! [`session`] (the host side of the protocol); identified devices live in the
//! [`registry`] with their buffers; a [`waker`] thread per connected device turns a
//! consumer's write into a DEV_WRITE without a poll tick; [`service`] is the RPC surface;
//! [`updates`] multicasts the devices' values.
//! On shutdown every session sends DEV_DISABLE before the process exits.

pub mod listener;
pub mod registry;
pub mod serial;
pub mod service;
pub mod session;
pub mod updates;
pub mod waker;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pitcrew::config::Config;
use pitcrew::options::{parse_duration, SharedOptions};
use pitcrew_catalog::Catalog;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::registry::Registry;
use crate::session::{SessionContext, Timing};

/// How long sessions get to send DEV_DISABLE and close after a shutdown signal: a
/// DEV_DISABLE is a few bytes, so this only bounds a stuck peer.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// Command line of `pitcrew-devices`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-devices",
    version,
    about = "Smart Device broker: SDP over serial and TCP, shared-memory buffers, device-service RPC"
)]
pub struct Options {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,

    /// Where virtual Smart Devices connect (tcp://HOST:PORT; port 0 picks a free port).
    #[arg(long, env = "PITCREW_VIRTUAL_ADDR", default_value = "tcp://127.0.0.1:6004",
          value_parser = listener::parse_tcp_addr, help_heading = "Devices")]
    pub virtual_addr: SocketAddr,

    /// Interval between discovery PINGs on a new connection.
    #[arg(long, env = "PITCREW_PING_INTERVAL", default_value = "1s",
          value_parser = parse_duration, help_heading = "Devices")]
    pub ping_interval: Duration,

    /// Give up on a connection that did not identify itself within this time.
    #[arg(long, env = "PITCREW_DISCOVERY_TIMEOUT", default_value = "10s",
          value_parser = parse_duration, help_heading = "Devices")]
    pub discovery_timeout: Duration,

    /// Declare a device lost when nothing valid arrived for this long.
    #[arg(long, env = "PITCREW_LIVENESS_TIMEOUT", default_value = "1s",
          value_parser = parse_duration, help_heading = "Devices")]
    pub liveness_timeout: Duration,

    /// IPv4 address of the interface device updates are multicast on (0.0.0.0: the
    /// kernel's choice; use 127.0.0.1 on a machine with only loopback).
    #[arg(
        long,
        env = "PITCREW_UPDATE_INTERFACE",
        default_value = "0.0.0.0",
        help_heading = "Devices"
    )]
    pub update_interface: Ipv4Addr,

    /// Period of full device-update snapshots (a late listener has everything this soon).
    #[arg(long, env = "PITCREW_FULL_INTERVAL", default_value = "1s",
          value_parser = parse_duration, help_heading = "Devices")]
    pub full_interval: Duration,

    /// Serial port patterns to discover Smart Devices on (`*`/`?` in the file name;
    /// repeat the option for several). Give an empty string to disable serial discovery.
    #[arg(
        long = "serial-glob",
        env = "PITCREW_SERIAL_GLOB",
        value_delimiter = ',',
        default_value = "/dev/ttyACM*,/dev/ttyUSB*",
        help_heading = "Devices"
    )]
    pub serial_globs: Vec<String>,

    /// Serial baud rate (8N1, no flow control).
    #[arg(
        long,
        env = "PITCREW_SERIAL_BAUD",
        default_value_t = 115_200,
        help_heading = "Devices"
    )]
    pub serial_baud: u32,

    /// Interval between serial port scans (a failed port is retried at the next one).
    #[arg(long, env = "PITCREW_SERIAL_RESCAN", default_value = "500ms",
          value_parser = parse_duration, help_heading = "Devices")]
    pub serial_rescan: Duration,
}

/// Loads the configured catalog, or the embedded one. A loaded catalog is immutable for the
/// life of the process (spec), so it is leaked once to be shared as `&'static`.
fn catalog(config: &Config) -> anyhow::Result<&'static Catalog> {
    match &config.catalog {
        None => Ok(Catalog::embedded()),
        Some(path) => {
            let loaded = Catalog::load(path)
                .with_context(|| format!("cannot load the catalog {}", path.display()))?;
            Ok(Box::leak(Box::new(loaded)))
        }
    }
}

/// Runs the broker until `shutdown` fires, then disables every device and exits.
///
/// # Errors
/// When the catalog cannot be loaded or the listener cannot be bound.
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalog = catalog(&config)?;
    match pitcrew_buffer::reset_stale(&config.namespace) {
        Ok(reset) if !reset.is_empty() => tracing::warn!(?reset, "reset stale device buffers"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for stale device buffers"),
    }
    let registry = Arc::new(Registry::new(&config.namespace, catalog));
    let listener = listener::bind(options.virtual_addr).await?;
    let bound = listener.local_addr().context("listener address")?;
    tracing::info!(addr = %format!("tcp://{bound}"), "listening for virtual devices");
    let ctx = SessionContext {
        registry: Arc::clone(&registry),
        timing: Timing {
            ping_interval: options.ping_interval,
            discovery_timeout: options.discovery_timeout,
            liveness_timeout: options.liveness_timeout,
        },
        shutdown: shutdown.clone(),
        decode_errors: Arc::new(AtomicU64::new(0)),
    };
    let tracker = TaskTracker::new();
    let serial = serial::SerialOptions {
        patterns: options
            .serial_globs
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect(),
        baud: options.serial_baud,
        rescan: options.serial_rescan,
    };
    tracker.spawn(serial::discover(serial, ctx.clone(), tracker.clone()));
    tracker.spawn(listener::serve(listener, ctx, tracker.clone()));
    let updates = updates::UpdateConfig {
        group: updates::parse_group(&config.update_addr).map_err(anyhow::Error::msg)?,
        interface: options.update_interface,
        interval: config.update_interval,
        full_interval: options.full_interval,
    };
    let socket = updates::sender(updates.interface)?;
    tracing::info!(group = %updates.group, interface = %updates.interface, "publishing device updates");
    tracker.spawn(updates::publish(
        Arc::clone(&registry),
        socket,
        updates,
        shutdown.clone(),
    ));
    let service = service::build(&registry).workers(config.service_workers);
    let service_stop = CancellationToken::new();
    let backend = config.backend_connect();
    let serve = service.serve(&backend, service_stop.clone());
    tokio::pin!(serve);
    let early = tokio::select! {
        served = &mut serve => Some(served),
        _ = shutdown.cancelled() => None,
    };
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some device sessions did not end within the shutdown deadline");
    }
    service_stop.cancel();
    let served = match early {
        Some(served) => served,
        None => serve.await,
    };
    if let Err(e) = served {
        tracing::warn!(error = %e, "device-service ended with an error");
    }
    drop(registry);
    Ok(())
}

//! `pitcrew-gamepad`: the gamepad bridge.
//!
//! * `send` ([`send`]) reads gamepads with gilrs ([`gilrs_input`]) or replays a recording
//!   ([`input`], [`record`]) and streams control datagrams (`pitcrew::control`) over UDP,
//!   as a driver station ([`station`]: mode, enable, emergency stop, the robot's state);
//! * `receive` ([`receive`]) validates them, applies them to the gamepad buffers ([`pads`])
//!   with per-source sequence checks ([`sources`]), runs the control [`watchdog`], and
//!   serves `gamepad-service` ([`status`]).

pub mod batch;
pub mod gilrs_input;
pub mod input;
pub mod pads;
pub mod receive;
pub mod record;
pub mod send;
pub mod sources;
pub mod station;
pub mod status;
pub mod stick;
pub mod tap;
pub mod watchdog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pitcrew::config::Config;
use pitcrew::control;
use pitcrew::options::{parse_udp_addr, SharedOptions};
use pitcrew_catalog::Catalog;
use tokio_util::sync::CancellationToken;

/// Command line of `pitcrew-gamepad`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-gamepad",
    version,
    about = "Gamepad bridge: `send` streams gamepads over UDP, `receive` applies them on the robot"
)]
pub struct Options {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,

    /// Which side of the bridge to run.
    #[command(subcommand)]
    pub mode: Mode,
}

/// The two sides of the bridge.
#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Read gamepads (or a recording) and send control datagrams to the robot.
    Send(SendArgs),
    /// Receive control datagrams into the gamepad buffers and run the control watchdog
    /// (binds --control-addr).
    Receive(ReceiveArgs),
}

/// Options of `send`.
#[derive(Debug, Clone, Args)]
// These doc comments are clap's help text: `<hostname>` there is a placeholder, not HTML.
#[allow(rustdoc::invalid_html_tags)]
pub struct SendArgs {
    /// The receiver, `HOST:PORT` or `udp://HOST:PORT` (required unless --list).
    #[arg(long, value_parser = parse_to, required_unless_present = "list")]
    pub to: Option<SocketAddr>,
    /// Datagrams per second when nothing changes (a change is sent at once).
    #[arg(long, default_value_t = 50.0, value_parser = parse_rate)]
    pub rate: f64,
    /// With no gamepad, send a neutral gamepad 0 instead of nothing.
    #[arg(long)]
    pub neutral: bool,
    /// Write the states sent to FILE, one JSON object per line with its time.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Send the states of a recording (made with --record) instead of reading gamepads.
    #[arg(long, value_name = "FILE", conflicts_with = "list")]
    pub replay: Option<PathBuf>,
    /// Replay the recording again and again.
    #[arg(long = "loop", requires = "replay")]
    pub looping: bool,
    /// Print the gamepads found and exit.
    #[arg(long)]
    pub list: bool,
    /// Radial dead zone of each stick, in [0, 0.9].
    #[arg(long, default_value_t = 0.1, value_parser = parse_dead_zone)]
    pub dead_zone: f32,
    /// Trigger travel, in [0, 1], past which a trigger counts as a pressed button.
    #[arg(long, default_value_t = 0.5, value_parser = parse_unit)]
    pub trigger_threshold: f32,
    /// The `source` name in each datagram [default: <hostname>-<pid>].
    #[arg(long)]
    pub source: Option<String>,
    /// The mode this driver station enables the robot in.
    #[arg(long, default_value = "teleop", value_parser = parse_mode)]
    pub mode: pitcrew::robot::Mode,
    /// Ask for the enable once the robot answers (for scripts; on a terminal, press e).
    #[arg(long)]
    pub enable: bool,
    /// Do not read driver-station keys even when stdin is a terminal.
    #[arg(long)]
    pub no_keys: bool,
}

fn parse_mode(s: &str) -> Result<pitcrew::robot::Mode, String> {
    s.parse()
        .map_err(|e: pitcrew::robot::UnknownMode| e.to_string())
}

/// Options of `receive`.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// Run the receive thread at this SCHED_FIFO priority (1 to 99), so other load on the
    /// board cannot delay control or the watchdog; needs CAP_SYS_NICE (warns without it).
    #[arg(long, value_name = "PRIORITY", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub realtime: Option<u8>,
}

fn parse_to(s: &str) -> Result<SocketAddr, String> {
    parse_udp_addr(s)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (1.0..=1000.0).contains(&r) => Ok(r),
        _ => Err("expected a rate between 1 and 1000 (Hz)".into()),
    }
}

fn parse_unit(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("expected a number between 0 and 1".into()),
    }
}

fn parse_dead_zone(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if (0.0..=0.9).contains(&x) => Ok(x),
        _ => Err("expected a number between 0 and 0.9".into()),
    }
}

/// Runs the chosen side until `shutdown` fires (or a replay ends).
///
/// # Errors
/// Setup failures (address in use, bad catalog, unreadable recording).
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match options.mode {
        Mode::Receive(args) => run_receive(args, config, shutdown).await,
        Mode::Send(args) => run_send(args, &config, shutdown).await,
    }
}

async fn run_receive(
    args: ReceiveArgs,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bind = config.control_addr;
    let keys = config.keys.clone();
    let catalog = Catalog::clone(&config.catalog);
    remove_stale_gamepads(&config.namespace, &catalog);
    let (tap, _tap_guard) = start_tap(&config);
    let receiver = receive::Receiver::start(receive::ReceiverConfig {
        namespace: config.namespace.clone(),
        catalog,
        bind,
        timeout: config.control_timeout,
        realtime: args.realtime,
        tap,
        keys,
    })?;
    let service = status::service(receiver.state.clone());
    let backend = config.backend_connect();
    let result = service
        .serve(&backend, shutdown.clone())
        .await
        .context("gamepad-service failed");
    shutdown.cancel();
    tokio::task::spawn_blocking(move || receiver.stop())
        .await
        .context("the receiver did not stop")?;
    result
}

/// Binds the recording tap; a receiver whose tap cannot be bound runs without one (logged):
/// recording is never a reason for the robot not to drive.
fn start_tap(config: &Config) -> (tap::GamepadTap, Option<pitcrew::tap::TapGuard>) {
    let address = pitcrew::tap::endpoint(config, tap::PROCESS);
    match tap::GamepadTap::start(&address, pitcrew::tap::TapOptions::default()) {
        Ok((tap, guard)) => (tap, Some(guard)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot bind the recording tap: control input is not recorded");
            (tap::GamepadTap::disabled(), None)
        }
    }
}

/// Removes gamepad buffers a crashed predecessor left behind (only ours: other owners'
/// stale segments are theirs to reset). Taking a stale segment over and dropping it unlinks
/// it.
fn remove_stale_gamepads(namespace: &str, catalog: &Catalog) {
    let Some(ty) = catalog.get("gamepad") else {
        return;
    };
    let segments = match pitcrew_buffer::list(namespace) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check for stale gamepad buffers");
            return;
        }
    };
    for seg in segments {
        if seg.type_name != "gamepad" || seg.owner_alive {
            continue;
        }
        match pitcrew_buffer::Owner::create(namespace, ty.clone(), seg.key) {
            Ok(owner) => {
                tracing::info!(buffer = %seg.name, dead_pid = seg.owner_pid, "removed a stale gamepad buffer");
                drop(owner);
            }
            Err(e) => {
                tracing::warn!(buffer = %seg.name, error = %e, "cannot remove a stale gamepad buffer")
            }
        }
    }
}

fn default_source() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pitcrew".to_owned());
    let mut s = format!("{host}-{}", std::process::id());
    s.truncate(control::MAX_SOURCE_LEN);
    s
}

/// The key a sender seals with: the team key, or on a field controller the field key.
fn sender_key(config: &Config) -> Option<pitcrew::key::Key> {
    config
        .keys
        .team
        .clone()
        .or_else(|| config.keys.field.clone())
}

async fn run_send(
    args: SendArgs,
    shared: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if args.list {
        return list_gamepads();
    }
    let to = args.to.context("--to is required")?;
    let source = args.source.clone().unwrap_or_else(default_source);
    if source.is_empty() || source.len() > control::MAX_SOURCE_LEN {
        anyhow::bail!("--source must have 1 to {} bytes", control::MAX_SOURCE_LEN);
    }
    let frames = match &args.replay {
        Some(path) => Some(record::load(path)?),
        None => None,
    };
    let recorder = match &args.record {
        Some(path) => Some(record::Recorder::create(path)?),
        None => None,
    };
    let config = send::SendConfig {
        to,
        rate: args.rate,
        neutral: args.neutral,
        source,
        key: sender_key(shared),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let station = Arc::new(station::Station::new(args.mode, args.enable));
    let keys = !args.no_keys && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if keys {
        spawn_station_keys(&station, &stop, &shutdown)?;
    }
    let shaping = gilrs_input::Shaping {
        dead_zone: args.dead_zone,
        trigger_threshold: args.trigger_threshold,
    };
    log_sending(&config);
    let worker = tokio::task::spawn_blocking({
        let stop = stop.clone();
        let station = Arc::clone(&station);
        move || {
            send_blocking(
                &config,
                frames,
                args.looping,
                shaping,
                &station,
                recorder,
                &stop,
            )
        }
    });
    let guard = {
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.store(true, Ordering::Release);
        })
    };
    let report = worker.await.context("the send loop panicked")??;
    guard.abort();
    tracing::info!(sent = report.sent, failed = report.failed, "sender stopped");
    Ok(())
}

/// Reads the driver-station keys (mode, enable, emergency stop) from the terminal on a
/// thread of its own: the terminal is in raw mode there, so q or Ctrl-C arrive as keys,
/// and either stops the whole sender through `shutdown`.
fn spawn_station_keys(
    station: &Arc<station::Station>,
    stop: &Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (station, stop) = (Arc::clone(station), Arc::clone(stop));
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("station-keys".into())
        .spawn(move || {
            if let Err(e) = station::keys::run(&station, &stop) {
                tracing::warn!(error = %e, "cannot read driver-station keys");
            }
            // q or Ctrl-C in raw mode: stop the whole sender.
            if stop.load(Ordering::Acquire) {
                shutdown.cancel();
            }
        })
        .context("cannot start the key thread")?;
    Ok(())
}

/// Says where the sender sends and whether it seals: an unsealed sender is a warning,
/// since only a robot without a key takes its datagrams, and only from its own machine.
fn log_sending(config: &send::SendConfig) {
    match &config.key {
        Some(key) => {
            tracing::info!(to = %config.to, source = %config.source, rate = config.rate, key = key.kind().name(), fingerprint = %key.fingerprint(), "sending sealed control datagrams")
        }
        None => {
            tracing::warn!(to = %config.to, source = %config.source, rate = config.rate, "sending unsealed control datagrams (no --key-file): only a robot without a key takes them, and only from its own machine")
        }
    }
}

/// The send loop on its own thread (gilrs blocks while waiting for events).
fn send_blocking(
    config: &send::SendConfig,
    frames: Option<Vec<record::Frame>>,
    looping: bool,
    shaping: gilrs_input::Shaping,
    station: &station::Station,
    recorder: Option<record::Recorder>,
    stop: &AtomicBool,
) -> anyhow::Result<send::SendReport> {
    if let Some(frames) = frames {
        let mut replay = input::Replay::new(frames, looping);
        return send::run(config, &mut replay, station, recorder, stop);
    }
    match gilrs_input::open() {
        Ok(gilrs) => {
            let mut pads = gilrs_input::GilrsInput::new(gilrs, shaping);
            send::run(config, &mut pads, station, recorder, stop)
        }
        Err(reason) => {
            let what = if config.neutral {
                "sending a neutral gamepad 0"
            } else {
                "sending nothing (use --neutral to send a neutral gamepad)"
            };
            tracing::warn!(reason = %reason, "no input subsystem; {what}");
            send::run(
                config,
                &mut input::NoInput::default(),
                station,
                recorder,
                stop,
            )
        }
    }
}

fn list_gamepads() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match gilrs_input::open() {
        Ok(gilrs) => {
            let lines = gilrs_input::list(&gilrs);
            if lines.is_empty() {
                writeln!(out, "no gamepads found")?;
            }
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
        Err(reason) => writeln!(out, "no gamepads found: no input subsystem ({reason})")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn options_parse() {
        let o = Options::try_parse_from(["g", "send", "--to", "127.0.0.1:6002"]).unwrap();
        let Mode::Send(s) = o.mode else {
            panic!("send")
        };
        assert_eq!(s.rate, 50.0);
        assert_eq!(s.to, Some("127.0.0.1:6002".parse().unwrap()));
        assert!(
            Options::try_parse_from(["g", "send"]).is_err(),
            "--to required"
        );
        assert!(Options::try_parse_from(["g", "send", "--list"]).is_ok());
        assert!(Options::try_parse_from(["g", "send", "--to", "1.2.3.4:5", "--loop"]).is_err());
        assert!(
            Options::try_parse_from(["g", "send", "--to", "1.2.3.4:5", "--rate", "0"]).is_err()
        );
        let o = Options::try_parse_from(["g", "receive", "--namespace", "x"]).unwrap();
        let Mode::Receive(r) = o.mode else {
            panic!("receive")
        };
        assert_eq!(o.shared.control_timeout, Duration::from_millis(100));
        assert!(Options::try_parse_from(["g", "receive", "--control-timeout", "1ms"]).is_err());
        assert_eq!(r.realtime, None);
        let o = Options::try_parse_from(["g", "receive", "--realtime", "10"]).unwrap();
        let Mode::Receive(r) = o.mode else {
            panic!("receive")
        };
        assert_eq!(r.realtime, Some(10));
        assert!(Options::try_parse_from(["g", "receive", "--realtime", "0"]).is_err());
    }
}

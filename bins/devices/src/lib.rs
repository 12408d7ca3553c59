//! `pitcrew-devices`: finds Smart Devices, speaks the Smart Device Protocol with them, owns
//! their shared-memory buffers and serves `device-service` RPC.
//!
//! Layers: [`serial`] discovers serial ports (inotify plus rescans) and [`listener`]
//! accepts virtual devices over TCP; each connection runs a
//! [`session`] (the host side of the protocol: its event loop), which reads frames with
//! [`inbound`], writes with [`host`] and matches heartbeats with [`heartbeat`]; identified
//! devices live in the
//! [`registry`] with their buffers; a [`waker`] thread per connected device turns a
//! consumer's write into a DEV_WRITE without a poll tick; [`service`] is the RPC surface,
//! [`status`] what it reports and [`fresh_read`] how a read waits for the device;
//! [`updates`] multicasts the devices' values and the robot state; [`estop`] is the
//! emergency-stop latch. [`robot`] holds the robot state (disabled / autonomous / teleop /
//! estopped) and is the one gate between every process and the actuators: sessions send a
//! consumer's write to an output only while the robot is enabled, and hold it only for its
//! [`lease`].
//! On shutdown every session sends DEV_DISABLE before the process exits.
//!
//! Exit status: 0 after a shutdown signal, 1 on a fatal error, 2 on a usage error, and
//! [`EXIT_ESTOP`] (3) when `--exit-on-estop` is set and an emergency stop happened.

pub mod arrivals;
pub mod estop;
pub mod fresh_read;
pub mod heartbeat;
pub mod host;
pub mod inbound;
pub mod lease;
pub mod line;
pub mod listener;
pub mod outbound;
pub mod policy;
pub mod registry;
pub mod robot;
pub mod serial;
pub mod service;
pub mod session;
pub mod status;
pub mod tap;
pub mod updates;
pub mod waker;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pitcrew::app::ExitStatus;
use pitcrew::config::Config;
use pitcrew::options::{parse_duration, parse_positive_duration, SharedOptions};
use pitcrew_catalog::Catalog;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::estop::Latch;
use crate::registry::Registry;
use crate::service::ServiceContext;
use crate::session::{SessionContext, Timing};

/// How long sessions get to send DEV_DISABLE and close after a shutdown signal: a
/// DEV_DISABLE is a few bytes, so this only bounds a stuck peer.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// Exit status after an emergency stop with `--exit-on-estop`. The supervisor relies on
/// it: status 3 from the broker means "emergency stop: stop the whole suite" (rather than
/// "crashed: restart it"). Distinct from 1 (fatal error), 2 (usage) and 130 (interrupt).
pub const EXIT_ESTOP: u8 = 3;

/// Why the broker stopped without an error; decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A shutdown signal (exit status 0).
    Shutdown,
    /// An emergency stop with `--exit-on-estop` (exit status [`EXIT_ESTOP`]).
    EmergencyStop,
}

impl From<Stopped> for ExitStatus {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::Shutdown => ExitStatus::SUCCESS,
            Stopped::EmergencyStop => ExitStatus::new(EXIT_ESTOP),
        }
    }
}

/// Command line of `pitcrew-devices`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-devices",
    version,
    about = "Smart Device broker: SDP over serial and TCP, shared-memory buffers, device-service RPC",
    after_help = "Exit status: 0 after SIGTERM/SIGINT (every device was sent DEV_DISABLE), \
                  1 on a fatal error, 2 on a usage error, 3 after an emergency stop when \
                  --exit-on-estop is set, 130 on a second signal."
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
          allow_hyphen_values = true, value_parser = parse_positive_duration, help_heading = "Devices")]
    pub ping_interval: Duration,

    /// Give up on a connection that did not identify itself within this time.
    #[arg(long, env = "PITCREW_DISCOVERY_TIMEOUT", default_value = "10s",
          allow_hyphen_values = true, value_parser = parse_positive_duration, help_heading = "Devices")]
    pub discovery_timeout: Duration,

    /// Declare a device lost when nothing valid arrived for this long.
    #[arg(long, env = "PITCREW_LIVENESS_TIMEOUT", default_value = "1s",
          allow_hyphen_values = true, value_parser = parse_positive_duration, help_heading = "Devices")]
    pub liveness_timeout: Duration,

    /// Declare a device's line failed when it took nothing for this long (its kernel
    /// buffer full): the device is not reading, and its session ends. Only that device's
    /// session waits meanwhile. At most 2s, the time a stop gives sessions to end.
    #[arg(long, env = "PITCREW_WRITE_STALL", default_value = "50ms",
          allow_hyphen_values = true, value_parser = parse_write_stall, help_heading = "Devices")]
    pub write_stall: Duration,

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
          allow_hyphen_values = true, value_parser = parse_positive_duration, help_heading = "Devices")]
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
          allow_hyphen_values = true, value_parser = parse_positive_duration, help_heading = "Devices")]
    pub serial_rescan: Duration,

    /// After an emergency stop (the `estop` RPC, e.g. `pitcrew estop`), answer it, disable
    /// every device, shut down and exit with status 3, so a supervisor can stop the whole
    /// suite. Without it the broker keeps running with the emergency stop latched: writes
    /// are discarded until it restarts.
    #[arg(long, env = "PITCREW_EXIT_ON_ESTOP", help_heading = "Devices",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub exit_on_estop: bool,

    /// How long a value written to an output holds while the robot is enabled before it is
    /// driven to its safe value unless rewritten (a catalog param's `lease` overrides it;
    /// 0 turns leases off).
    #[arg(long, env = "PITCREW_OUTPUT_LEASE", default_value = "100ms",
          allow_hyphen_values = true, value_parser = parse_duration, help_heading = "Robot")]
    pub output_lease: Duration,

    /// Run the broker's threads (its event loop and the per-device wakers) at this
    /// SCHED_FIFO priority (1 to 99), so that other load on the board cannot delay a
    /// consumer's write on its way to the serial line; needs CAP_SYS_NICE (warns without).
    #[arg(long, env = "PITCREW_DEVICES_REALTIME", value_name = "PRIORITY",
          value_parser = clap::value_parser!(u8).range(1..=99), help_heading = "Devices")]
    pub realtime: Option<u8>,
}

/// Binds the recording tap; a broker whose tap cannot be bound runs without one (logged):
/// recording is never a reason for the robot not to drive.
fn start_tap(config: &Config) -> (tap::BrokerTap, Option<pitcrew::tap::TapGuard>) {
    let address = pitcrew::tap::endpoint(config, tap::PROCESS);
    match tap::BrokerTap::start(&address, pitcrew::tap::TapOptions::default()) {
        Ok((tap, guard)) => (tap, Some(guard)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot bind the recording tap: this session is not recorded");
            (tap::BrokerTap::disabled(), None)
        }
    }
}

/// `--write-stall`: above 0 and no longer than [`SHUTDOWN_DEADLINE`], so that a broker
/// stopping while a line is stalled still ends its sessions in time.
fn parse_write_stall(s: &str) -> Result<Duration, String> {
    let d = parse_positive_duration(s)?;
    if d > SHUTDOWN_DEADLINE {
        return Err(format!(
            "at most {}s: a stop gives sessions that long to end",
            SHUTDOWN_DEADLINE.as_secs()
        ));
    }
    Ok(d)
}

/// The session timings of `options`.
fn timing(options: &Options) -> Timing {
    Timing {
        ping_interval: options.ping_interval,
        discovery_timeout: options.discovery_timeout,
        liveness_timeout: options.liveness_timeout,
        write_stall: options.write_stall,
    }
}

/// Serial discovery settings (an empty glob, as tests pass, means none).
fn serial_options(options: &Options) -> serial::SerialOptions {
    serial::SerialOptions {
        patterns: options
            .serial_globs
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect(),
        baud: options.serial_baud,
        rescan: options.serial_rescan,
    }
}

/// Multicast settings, from the broker's options and the shared ones.
fn update_config(options: &Options, config: &Config) -> anyhow::Result<updates::UpdateConfig> {
    Ok(updates::UpdateConfig {
        group: config.update_addr,
        interface: options.update_interface,
        interval: config.update_interval,
        full_interval: options.full_interval,
    })
}

/// Starts what finds and serves the devices, each a task of the returned tracker: serial
/// discovery, the virtual-device listener and the multicast publisher.
fn spawn_devices(
    options: &Options,
    config: &Config,
    ctx: SessionContext,
    listener: tokio::net::TcpListener,
    serial_stats: Arc<serial::SerialStats>,
) -> anyhow::Result<TaskTracker> {
    let tracker = TaskTracker::new();
    let registry = Arc::clone(&ctx.registry);
    let gate = Arc::clone(&ctx.gate);
    let shutdown = ctx.shutdown.clone();
    tracker.spawn(serial::discover(
        serial_options(options),
        ctx.clone(),
        tracker.clone(),
        serial_stats,
    ));
    tracker.spawn(listener::serve(listener, ctx, tracker.clone()));
    let updates = update_config(options, config)?;
    let socket = updates::sender(updates.interface)?;
    tracing::info!(group = %updates.group, interface = %updates.interface, "publishing device updates");
    tracker.spawn(updates::publish(registry, gate, socket, updates, shutdown));
    Ok(tracker)
}

/// What the broker's parts share. Sessions see it as a [`SessionContext`], the RPC service
/// as a [`ServiceContext`]; the robot gate holds the registry, the latch and the tap too.
struct Shared {
    /// The devices.
    registry: Arc<Registry>,
    /// The emergency-stop latch.
    latch: Arc<Latch>,
    /// The robot state: the one gate between every process and the actuators.
    gate: Arc<robot::Gate>,
    /// The recording tap.
    tap: tap::BrokerTap,
    /// Serial discovery counters (`status`).
    serial: Arc<serial::SerialStats>,
    /// Decode errors on every connection (`status`).
    decode_errors: Arc<AtomicU64>,
}

impl Shared {
    /// What every session gets: the shared state, the timings and `shutdown`, on which
    /// each sends DEV_DISABLE and ends.
    fn sessions(&self, options: &Options, shutdown: CancellationToken) -> SessionContext {
        SessionContext {
            registry: Arc::clone(&self.registry),
            timing: timing(options),
            shutdown,
            decode_errors: Arc::clone(&self.decode_errors),
            latch: Arc::clone(&self.latch),
            realtime: options.realtime,
            gate: Arc::clone(&self.gate),
            output_lease: options.output_lease,
            tap: self.tap.clone(),
        }
    }

    /// What `device-service` works with.
    fn service(&self, options: &Options) -> ServiceContext {
        ServiceContext {
            registry: Arc::clone(&self.registry),
            latch: Arc::clone(&self.latch),
            serial: Arc::clone(&self.serial),
            decode_errors: Arc::clone(&self.decode_errors),
            exit_on_estop: options.exit_on_estop,
            read_timeout: fresh_read::READ_ANSWER_TIMEOUT,
            gate: Arc::clone(&self.gate),
            tap: self.tap.clone(),
        }
    }
}

/// Resets the device buffers a crashed broker left behind (their owner is dead): they are
/// marked released for any consumer still mapping them and unlinked, so this broker
/// creates its own. Not finding them is logged, not fatal.
fn reset_stale_buffers(namespace: &str) {
    match pitcrew_buffer::reset_stale(namespace) {
        Ok(reset) if !reset.is_empty() => tracing::warn!(?reset, "reset stale device buffers"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for stale device buffers"),
    }
}

/// The emergency-stop latch, engaged already when an earlier stop's marker is still there
/// (logged: every device stays disabled). With `--exit-on-estop` such a latch counts as
/// answered, so the broker stops at once rather than wait for an `estop` call that will
/// not come.
fn open_latch(config: &Config, exit_on_estop: bool) -> Latch {
    let latch = Latch::with_marker(config.estop_marker());
    if latch.is_engaged() {
        tracing::error!(marker = %config.estop_marker().display(),
            "an earlier emergency stop is still latched: every device stays disabled until `pitcrew clean` removes the marker");
        if exit_on_estop {
            latch.mark_answered();
        }
    }
    latch
}

/// Runs the broker until `shutdown` fires (or, with `--exit-on-estop`, until an `estop`
/// RPC has been answered), then disables every device and returns why it stopped.
///
/// # Errors
/// When the catalog cannot be loaded or the listener cannot be bound.
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<Stopped> {
    // A loaded catalog is immutable for the life of the process (spec), and the registry
    // shares it as `&'static`: leaked once.
    let catalog: &'static Catalog = Box::leak(Box::new(Arc::clone(&config.catalog)));
    reset_stale_buffers(&config.namespace);
    if let Some(priority) = options.realtime {
        // The current-thread runtime: every session, the listener and the service.
        pitcrew::realtime::raise_priority("devices", priority);
    }
    let registry = Arc::new(Registry::new(&config.namespace, catalog));
    let latch = Arc::new(open_latch(&config, options.exit_on_estop));
    let (tap, _tap_guard) = start_tap(&config);
    let gate = robot::Gate::start(
        &config.namespace,
        config.control_timeout,
        options.output_lease,
        Arc::clone(&latch),
        Arc::clone(&registry),
        tap.clone(),
    )?;
    let shared = Shared {
        registry,
        latch,
        gate,
        tap,
        serial: Arc::new(serial::SerialStats::default()),
        decode_errors: Arc::new(AtomicU64::new(0)),
    };
    let _links = robot::links::LinksThread::spawn(
        Arc::clone(&shared.gate),
        &config.namespace,
        options.realtime,
    )
    .context("cannot start the driver-links thread")?;
    let listener = listener::bind(options.virtual_addr).await?;
    let bound = listener.local_addr().context("listener address")?;
    tracing::info!(addr = %format!("tcp://{bound}"), "listening for virtual devices");
    let sessions = shared.sessions(&options, shutdown.clone());
    let serial_stats = Arc::clone(&shared.serial);
    let tracker = spawn_devices(&options, &config, sessions, listener, serial_stats)?;
    let services = [
        service::build(&shared.service(&options)).workers(config.service_workers),
        robot::service::build(&shared.gate).workers(config.service_workers),
    ];
    let stop = Stop {
        shutdown: &shutdown,
        latch: &shared.latch,
        exit_on_estop: options.exit_on_estop,
    };
    serve(services, &config.backend_connect(), tracker, stop).await
}

/// What ends [`serve`]: the shutdown signal, or with `--exit-on-estop` an answered
/// `estop`.
struct Stop<'a> {
    /// Fires on a shutdown signal; [`serve`] fires it too, to stop the sessions.
    shutdown: &'a CancellationToken,
    /// The emergency-stop latch, marked once an `estop` RPC was answered.
    latch: &'a Latch,
    /// Whether an answered `estop` stops the broker.
    exit_on_estop: bool,
}

/// Serves `services` (`device-service` and `robot-service`) on the router's `backend`
/// until `stop` says so or they end on their own, then stops in order: the sessions of
/// `devices` first, within [`SHUTDOWN_DEADLINE`] (each sends DEV_DISABLE again as it
/// closes), the services last, so the answer to an `estop` call leaves before the process
/// does.
///
/// # Errors
/// When a service could not serve (refused by the router: another broker holds its
/// identity), a failure of the broker, exit status 1.
async fn serve(
    services: [pitcrew::rpc::Service; 2],
    backend: &str,
    devices: TaskTracker,
    stop: Stop<'_>,
) -> anyhow::Result<Stopped> {
    let [service, robot_service] = services;
    let service_stop = CancellationToken::new();
    let serve = async {
        let (devices, robot) = tokio::join!(
            service.serve(backend, service_stop.clone()),
            robot_service.serve(backend, service_stop.clone())
        );
        devices.and(robot)
    };
    tokio::pin!(serve);
    let mut stopped = Stopped::Shutdown;
    let early = tokio::select! {
        served = &mut serve => Some(served),
        _ = stop.shutdown.cancelled() => None,
        _ = stop.latch.answered(), if stop.exit_on_estop => {
            tracing::warn!(exit_status = EXIT_ESTOP, "emergency stop answered: shutting down (--exit-on-estop)");
            stopped = Stopped::EmergencyStop;
            None
        }
    };
    // Sessions send DEV_DISABLE again as they close; the service stops last, so the
    // answer to an `estop` call leaves before the process does.
    stop.shutdown.cancel();
    devices.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, devices.wait())
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
    served.context("the broker's services stopped")?;
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_takes_a_sched_fifo_priority() {
        let p = |args: &[&str]| {
            Options::try_parse_from([&["pitcrew-devices"], args].concat()).map(|o| o.realtime)
        };
        assert_eq!(p(&[]).ok(), Some(None));
        assert_eq!(p(&["--realtime", "10"]).ok(), Some(Some(10)));
        for bad in ["0", "100", "high"] {
            assert!(p(&["--realtime", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_and_timeouts_of_zero_are_usage_errors_and_a_zero_lease_is_off() {
        for option in [
            "--ping-interval",
            "--discovery-timeout",
            "--liveness-timeout",
            "--write-stall",
            "--full-interval",
            "--serial-rescan",
        ] {
            let o = Options::try_parse_from(["pitcrew-devices", option, "0"]);
            assert!(o.is_err(), "{option} 0 was accepted");
        }
        let o = Options::try_parse_from(["pitcrew-devices", "--write-stall", "3s"]);
        assert!(
            o.is_err(),
            "--write-stall above the shutdown deadline was accepted"
        );
        let o = Options::try_parse_from(["pitcrew-devices", "--output-lease", "0"]);
        assert_eq!(o.map(|o| o.output_lease).ok(), Some(Duration::ZERO));
    }

    #[test]
    fn exit_on_estop_parses_and_is_wired_to_its_environment_variable() {
        let o = Options::try_parse_from(["pitcrew-devices"]).map(|o| o.exit_on_estop);
        assert!(matches!(o, Ok(false)));
        let o = Options::try_parse_from(["pitcrew-devices", "--exit-on-estop"]);
        assert!(matches!(o.map(|o| o.exit_on_estop), Ok(true)));
        let arg = <Options as clap::CommandFactory>::command()
            .get_arguments()
            .find(|a| a.get_id() == "exit_on_estop")
            .map(|a| {
                (
                    a.get_env().map(ToOwned::to_owned),
                    a.get_help_heading().map(str::to_owned),
                )
            });
        assert_eq!(
            arg,
            Some((
                Some(std::ffi::OsString::from("PITCREW_EXIT_ON_ESTOP")),
                Some("Devices".to_owned())
            ))
        );
    }

    #[test]
    fn help_documents_the_estop_exit_status() {
        let help = <Options as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--exit-on-estop"), "{help}");
        assert!(help.contains("3 after an emergency stop"), "{help}");
        assert_eq!(ExitStatus::from(Stopped::EmergencyStop).code(), EXIT_ESTOP);
        assert_eq!(ExitStatus::from(Stopped::Shutdown), ExitStatus::SUCCESS);
    }
}

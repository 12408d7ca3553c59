//! The `pitcrew` command-line tool: call any RPC, ping the router, and (as the suite grows)
//! tail logs and work with devices.
//!
//! Exit status: 0 on success, 1 when the RPC (or the operation) failed — its message on
//! stderr —, 2 on a usage error. Writing to a closed pipe (`pitcrew ... | head`) is not an
//! error.

mod buffers_cmd;
mod call;
mod catalog_cmd;
mod clean;
mod devices;
mod emulate;
mod gamepads;
mod key_cmd;
mod logs;
mod output;
mod ping;
mod recording;
mod robot;
mod run_cmd;
mod sdp_cmd;
mod sim_cmd;
mod watch;
mod watch_tui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pitcrew::config::Config;
use pitcrew::options::SharedOptions;

/// Command line of `pitcrew`.
#[derive(Debug, Parser)]
#[command(name = "pitcrew", version, about = "The pitcrew command-line tool")]
pub struct Cli {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call METHOD on SERVICE through the router and print the result.
    Call(call::CallArgs),
    /// Ping the router and report the round trip.
    Ping(ping::PingArgs),
    /// Print recent log records from the forwarder and follow the live stream.
    Logs(logs::LogsArgs),
    /// Validate a device catalog or show a type.
    Catalog(catalog_cmd::CatalogArgs),
    /// List the shared-memory device buffers of the namespace.
    Buffers(buffers_cmd::BuffersArgs),
    /// Read a parameter from a device buffer (shared memory; for debugging).
    Get(buffers_cmd::GetArgs),
    /// Write a parameter into a device buffer (shared memory; for debugging).
    Set(buffers_cmd::SetArgs),
    /// List the Smart Devices the broker knows (device-service `list_devices`).
    Devices(devices::DevicesArgs),
    /// Read parameters of a Smart Device through the broker.
    Read(devices::ReadArgs),
    /// Write parameters of a Smart Device through the broker (PARAM=VALUE...).
    Write(devices::WriteArgs),
    /// Print the robot state (disabled / autonomous / teleop / estopped); --follow for changes.
    State(robot::StateArgs),
    /// Enable the robot in a mode (needs a live driver link).
    Enable(robot::EnableArgs),
    /// Disable the robot (or, given UIDs, send DEV_DISABLE to those devices).
    Disable(robot::DisableArgs),
    /// Emergency stop: every device disabled, latched until `pitcrew clean` and a restart.
    Estop(robot::EstopArgs),
    /// Run a timed match: autonomous, a gap, teleop, then disabled.
    Match(robot::MatchArgs),
    /// Emulate Smart Devices connecting to the broker (for tests and development), or with
    /// --sim the devices of a simulated robot.
    Emulate(emulate::EmulateArgs),
    /// Look at and move the simulated robot (`pitcrew emulate --sim FILE`): state, place,
    /// reset.
    Sim(sim_cmd::SimArgs),
    /// Watch the device updates multicast by the broker.
    Watch(watch::WatchArgs),
    /// Encode or decode Smart Device Protocol frames.
    Sdp(sdp_cmd::SdpArgs),
    /// Show the gamepad bridge's status: watchdog, control sources, gamepads.
    Gamepads(gamepads::GamepadsArgs),
    /// Remove the namespace's shared-memory segments and ipc socket files (after a stop).
    Clean(clean::CleanArgs),
    /// Make or show a team or field key (who may drive, change and stop the robot).
    Key(key_cmd::KeyArgs),
    /// Record the whole robot (control input, robot state, every device frame, logs) into
    /// an MCAP file until Ctrl-C or --duration.
    Record(recording::record::RecordArgs),
    /// Read a recording: `info` summarises it, `export --csv DIR` writes its channels as CSV.
    Recording(recording::RecordingArgs),
    /// Replay a recording's control input as a driver link (enables only on an emulated
    /// suite or with --allow-enable).
    Replay(recording::replay::ReplayArgs),
    /// Run a team's Python robot code (`python3 -m pitcrew.run`): autonomous_* and
    /// teleop_* as the robot state says, in a supervised worker process.
    Run(run_cmd::RunArgs),
}

/// Exit status for a failed operation (an RPC error, an unreachable service).
pub const EXIT_FAILED: u8 = 1;

/// Runs the command line and maps the outcome to an exit status.
pub fn main(cli: Cli) -> ExitCode {
    if let Command::Run(args) = &cli.command {
        // Returns only when the interpreter could not be started.
        eprintln!("pitcrew: {:#}", args.exec(&cli.shared));
        return ExitCode::from(EXIT_FAILED);
    }
    if let Command::Key(args) = &cli.command {
        // Before the options are resolved: this is how a missing key file is made.
        return match args.run(&cli.shared) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pitcrew: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    let config = match Config::resolve(&cli.shared) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pitcrew: {e}");
            return ExitCode::from(pitcrew::app::EXIT_USAGE);
        }
    };
    if cli.shared.check_options {
        return ExitCode::SUCCESS;
    }
    if let Err(e) = config.secure_endpoints() {
        eprintln!("pitcrew: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pitcrew: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = runtime.block_on(async {
        let _logging = pitcrew::logging::init("cli", &config);
        match cli.command {
            Command::Call(args) => call::run(args, &config).await,
            Command::Ping(args) => ping::run(args, &config).await,
            Command::Logs(args) => logs::run(args, &config).await,
            Command::Catalog(args) => args.run(),
            Command::Buffers(args) => args.run(&config.namespace),
            Command::Get(args) => args.run(&config.namespace),
            Command::Set(args) => args.run(&config.namespace),
            Command::Devices(args) => args.run(&config).await,
            Command::Read(args) => args.run(&config).await,
            Command::Write(args) => args.run(&config).await,
            Command::State(args) => args.run(&config).await,
            Command::Enable(args) => args.run(&config).await,
            Command::Disable(args) => args.run(&config).await,
            Command::Estop(args) => args.run(&config).await,
            Command::Match(args) => args.run(&config).await,
            Command::Watch(args) => args.run(&config).await,
            Command::Sdp(args) => args.run(&config.catalog),
            Command::Emulate(args) => args.run(&config).await,
            Command::Sim(args) => args.run(&config).await,
            Command::Gamepads(args) => args.run(&config).await,
            Command::Clean(args) => args.run(&config),
            Command::Record(args) => args.run(&config).await,
            Command::Recording(args) => args.run(),
            Command::Replay(args) => recording::replay_or_check(args, &config).await,
            // Handled above, before the runtime starts: `run` execs the executor and
            // `key` works without loading the keys.
            Command::Run(_) | Command::Key(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pitcrew: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn call_parses_json_arguments() {
        let cli = Cli::try_parse_from([
            "pitcrew",
            "call",
            "x-service",
            "add",
            "1",
            "[2]",
            "--timeout",
            "2s",
        ])
        .unwrap();
        let Command::Call(args) = cli.command else {
            panic!("not call")
        };
        assert_eq!(args.service, "x-service");
        assert_eq!(args.args.len(), 2);
        assert_eq!(args.timeout, Some(std::time::Duration::from_secs(2)));
    }
}

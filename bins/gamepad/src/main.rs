//! `pitcrew-gamepad`: the gamepad bridge. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_gamepad::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    let shared = options.shared.clone();
    let receive = matches!(options.mode, pitcrew_gamepad::Mode::Receive(_));
    if receive && shared.check_options {
        // The receiver refuses at start a catalog whose gamepad type cannot hold the
        // datagrams; --check-options (which scripts/supervise runs first) says so too.
        // Options that do not resolve are left to the common check below, which names them.
        if let Ok(config) = pitcrew::config::Config::resolve(&shared) {
            if let Err(e) = pitcrew_gamepad::receive::check_catalog(&config.catalog) {
                eprintln!("pitcrew-gamepad: {e:#}");
                return ExitCode::from(pitcrew::app::EXIT_USAGE);
            }
        }
    }
    let body = move |config, shutdown| pitcrew_gamepad::run(options, config, shutdown);
    if receive {
        // One receiver per namespace (it binds the control port and owns the gamepad
        // buffers); senders are driver stations, as many as there are.
        pitcrew::app::main_single("gamepad", "gamepad", &shared, body)
    } else {
        pitcrew::app::main("gamepad", &shared, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_is_complete() {
        Options::command().debug_assert();
    }
}

//! `pitcrew-gamepad`: the gamepad bridge. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_gamepad::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    let shared = options.shared.clone();
    let receive = matches!(options.mode, pitcrew_gamepad::Mode::Receive(_));
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

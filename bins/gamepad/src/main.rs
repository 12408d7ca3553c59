//! `pitcrew-gamepad`: the gamepad bridge. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_gamepad::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    pitcrew::app::main(
        "gamepad",
        &options.shared.clone(),
        move |config, shutdown| pitcrew_gamepad::run(options, config, shutdown),
    )
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

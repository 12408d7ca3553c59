//! `pitcrew-router`: the ROUTER–ROUTER RPC broker. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_router::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    pitcrew::app::main(
        "router",
        &options.shared.clone(),
        move |config, shutdown| pitcrew_router::run(options, config, shutdown),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn help_is_complete() {
        Options::command().debug_assert();
        let _ = Options::parse_from(["pitcrew-router"]);
    }
}

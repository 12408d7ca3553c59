//! `pitcrew-router`: the ROUTER–ROUTER RPC broker. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_router::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    // One per namespace: a second one exits 1 naming the first one's pid.
    pitcrew::app::main_single(
        "router",
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

//! `pitcrew-logfwd`: the log forwarder. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_logfwd::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    // One per namespace: a second one exits 1 naming the first one's pid.
    pitcrew::app::main_single(
        "logfwd",
        "logfwd",
        &options.shared.clone(),
        move |config, shutdown| pitcrew_logfwd::run(options, config, shutdown),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn help_is_complete() {
        Options::command().debug_assert();
        let options = Options::parse_from(["pitcrew-logfwd"]);
        assert_eq!(options.history, 1000);
        assert!(Options::try_parse_from(["pitcrew-logfwd", "--history", "0"]).is_err());
    }
}

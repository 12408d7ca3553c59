//! `pitcrew-dashboard`: the driver station and dashboard page. See the crate's `lib.rs`.

use std::process::ExitCode;

use pitcrew_dashboard::Options;

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    pitcrew::app::main(
        "dashboard",
        &options.shared.clone(),
        move |config, shutdown| pitcrew_dashboard::run(options, config, shutdown),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn help_is_complete_and_options_parse() {
        Options::command().debug_assert();
        let options = Options::parse_from(["pitcrew-dashboard"]);
        assert_eq!(options.dashboard_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(options.update_interface.to_string(), "0.0.0.0");
        assert!(options.dashboard_token.is_none());
        let options = Options::parse_from(["pitcrew-dashboard", "--dashboard-addr", "127.0.0.1:9"]);
        assert_eq!(options.dashboard_addr.port(), 9);
        assert!(Options::try_parse_from(["x", "--dashboard-addr", "nowhere"]).is_err());
        assert!(Options::try_parse_from(["x", "--dashboard-token", "short"]).is_err());
        let bounds = options.bounds();
        assert_eq!(
            (bounds.connections, bounds.per_address, bounds.pages),
            (256, 32, 64)
        );
        let options = Options::parse_from(["x", "--max-pages", "8", "--max-connections", "100"]);
        assert_eq!(
            (options.bounds().pages, options.bounds().connections),
            (8, 100)
        );
        for bad in ["0", "-1", "many", "70000"] {
            assert!(Options::try_parse_from(["x", "--max-pages", bad]).is_err());
            assert!(Options::try_parse_from(["x", "--max-connections-per-address", bad]).is_err());
        }
    }
}

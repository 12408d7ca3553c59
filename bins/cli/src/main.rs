//! `pitcrew`: the command-line tool. Everything but option parsing lives in `lib.rs`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: pitcrew_cli::Cli = pitcrew::options::parse();
    pitcrew_cli::main(cli)
}

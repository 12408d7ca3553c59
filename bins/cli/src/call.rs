//! `pitcrew call SERVICE METHOD [JSON-ARGS...]`: any RPC from the command line.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pitcrew::codec::{from_json, Value};
use pitcrew::config::Config;
use pitcrew::options::parse_positive_duration;
use pitcrew::rpc::Client;

use crate::output::print_value;

/// Arguments of `pitcrew call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The service's identity, e.g. `device-service` (or `router`).
    pub service: String,
    /// The method name.
    pub method: String,
    /// Positional parameters as JSON (`42`, `"text"`, `[1,2]`, `{"a":1}`); a word that is
    /// not valid JSON is taken as a string.
    pub args: Vec<String>,
    /// Give up after this long [default: --call-timeout].
    #[arg(long, allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub timeout: Option<Duration>,
    /// Send a notification: no response is expected or printed.
    #[arg(long)]
    pub notify: bool,
    /// Print the result as JSON on one line.
    #[arg(long)]
    pub json: bool,
}

/// Parses one command-line argument as JSON, falling back to a plain string.
fn parse_arg(arg: &str) -> Value {
    serde_json::from_str::<serde_json::Value>(arg)
        .map(|j| from_json(&j))
        .unwrap_or_else(|_| Value::from(arg))
}

/// Runs `pitcrew call`.
///
/// # Errors
/// The RPC error (printed by the caller), or a failure to connect or print.
pub async fn run(args: CallArgs, config: &Config) -> anyhow::Result<()> {
    let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
        .context("cannot reach the router")?;
    let params: Vec<Value> = args.args.iter().map(|a| parse_arg(a)).collect();
    if args.notify {
        client.notify(&args.service, &args.method, params).await?;
        // Give the socket task a moment to hand the message to libzmq before exiting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        return Ok(());
    }
    let timeout = args.timeout.unwrap_or(config.call_timeout);
    let result = client
        .call_with_timeout(&args.service, &args.method, params, timeout)
        .await?;
    print_value(&result, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_or_strings() {
        assert_eq!(parse_arg("42"), Value::from(42));
        assert_eq!(parse_arg("\"42\""), Value::from("42"));
        assert_eq!(parse_arg("polar-bear"), Value::from("polar-bear"));
        assert_eq!(parse_arg("[true]"), Value::Array(vec![Value::from(true)]));
    }
}

//! `pitcrew devices | read | write`: the device broker's RPC surface (`device-service`)
//! from the command line. `disable` and `estop` are the robot's: see [`crate::robot`].

use std::io::Write;

use anyhow::{bail, Context};
use clap::Args;
use pitcrew::codec::{from_json, to_json, Value};
use pitcrew::config::Config;
use pitcrew::rpc::Client;

use crate::output::print_value;

/// The broker's service identity.
pub const DEVICE_SERVICE: &str = "device-service";

pub(crate) async fn call(
    config: &Config,
    method: &str,
    params: Vec<Value>,
) -> anyhow::Result<Value> {
    let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
        .context("cannot create the RPC client")?;
    Ok(client.call(DEVICE_SERVICE, method, params).await?)
}

/// Arguments of `pitcrew devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print the raw list as JSON on one line.
    #[arg(long)]
    pub json: bool,
}

impl DevicesArgs {
    /// Prints the broker's devices as a table (or JSON).
    ///
    /// # Errors
    /// RPC errors; stdout errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let list = call(config, "list_devices", vec![]).await?;
        if self.json {
            return print_value(&list, true);
        }
        // A broker without `status` (an older one) simply gets no banner.
        let status = call(config, "status", vec![])
            .await
            .ok()
            .map(|v| to_json(&v));
        let json = to_json(&list);
        let mut out = std::io::stdout().lock();
        if let Some(banner) = status.as_ref().and_then(estop_banner) {
            writeln!(out, "{banner}")?;
        }
        writeln!(
            out,
            "{:<28} {:<14} {:<24} {:<6} {:>8} {:>8} {:>6}",
            "UID", "TYPE", "PORT", "VALID", "TO", "FROM", "ERRORS"
        )?;
        for d in json.as_array().into_iter().flatten() {
            let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
            let c = |k: &str| {
                d.pointer(&format!("/counters/{k}"))
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            };
            let valid = d
                .get("valid")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            writeln!(
                out,
                "{:<28} {:<14} {:<24} {:<6} {:>8} {:>8} {:>6}",
                s("uid"),
                s("type"),
                s("port"),
                if valid { "yes" } else { "no" },
                c("to_device"),
                c("from_device"),
                c("errors"),
            )?;
        }
        out.flush()?;
        Ok(())
    }
}

/// The warning line for a broker whose emergency stop is latched, from its `status`.
fn estop_banner(status: &serde_json::Value) -> Option<String> {
    let estop = status.get("estop")?;
    if estop.get("latched")?.as_bool() != Some(true) {
        return None;
    }
    let ago = estop
        .get("since")
        .and_then(serde_json::Value::as_f64)
        .and_then(|since| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs_f64();
            Some(format!(" {:.0} s ago", (now - since).max(0.0)))
        })
        .unwrap_or_default();
    let discarded = estop
        .get("writes_discarded")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Some(format!(
        "EMERGENCY STOP latched{ago}: writes to devices are discarded ({discarded} so far) until the broker restarts"
    ))
}

/// Arguments of `pitcrew read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The device's UID (decimal).
    pub uid: String,
    /// Params to read (all readable ones when none is given). The broker asks the device
    /// (DEV_READ) and answers with the values it sends back, or an error naming the device
    /// and params when it does not answer within a second.
    pub params: Vec<String>,
    /// Print JSON on one line.
    #[arg(long)]
    pub json: bool,
}

impl ReadArgs {
    /// Prints the values.
    ///
    /// # Errors
    /// RPC errors; stdout errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let params = if self.params.is_empty() {
            Value::Nil
        } else {
            Value::Array(
                self.params
                    .iter()
                    .map(|p| Value::from(p.as_str()))
                    .collect(),
            )
        };
        let values = call(config, "read", vec![Value::from(self.uid.as_str()), params]).await?;
        print_value(&values, self.json)
    }
}

/// Arguments of `pitcrew write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The device's UID (decimal).
    pub uid: String,
    /// `PARAM=VALUE` pairs; VALUE is JSON (`0.5`, `true`) or a plain word.
    #[arg(required = true)]
    pub values: Vec<String>,
}

/// Parses `PARAM=VALUE` pairs into a map value.
///
/// # Errors
/// A pair without `=`.
pub fn parse_pairs(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = Vec::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("{pair:?} is not PARAM=VALUE");
        };
        let value = serde_json::from_str::<serde_json::Value>(value)
            .map(|j| from_json(&j))
            .unwrap_or_else(|_| Value::from(value));
        map.push((Value::from(name), value));
    }
    Ok(Value::Map(map))
}

impl WriteArgs {
    /// Writes the values and reports clamping.
    ///
    /// # Errors
    /// Bad pairs; RPC errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let map = parse_pairs(&self.values)?;
        let result = call(config, "write", vec![Value::from(self.uid.as_str()), map]).await?;
        let json = to_json(&result);
        for name in json
            .get("clamped")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            eprintln!(
                "pitcrew: {} was clamped to its bounds",
                name.as_str().unwrap_or("?")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse() {
        let v =
            parse_pairs(&["duty_cycle=0.5".into(), "mode=true".into(), "x=word".into()]).unwrap();
        assert_eq!(
            to_json(&v),
            serde_json::json!({"duty_cycle": 0.5, "mode": true, "x": "word"})
        );
        assert!(parse_pairs(&["nope".into()]).is_err());
    }

    #[test]
    fn a_latched_estop_gets_a_banner() {
        let released = serde_json::json!({"estop": {"latched": false}});
        assert_eq!(estop_banner(&released), None);
        assert_eq!(estop_banner(&serde_json::json!({})), None);
        let latched =
            serde_json::json!({"estop": {"latched": true, "since": null, "writes_discarded": 4}});
        let banner = estop_banner(&latched).unwrap();
        assert!(banner.starts_with("EMERGENCY STOP latched:"), "{banner}");
        assert!(banner.contains("(4 so far)"), "{banner}");
    }
}

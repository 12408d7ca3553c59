//! `pitcrew gamepads`: the gamepad bridge's status (`gamepad-service.status`): the
//! watchdog, each source of control datagrams and each gamepad's values.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use clap::Args;
use pitcrew::codec::to_json;
use pitcrew::config::Config;
use pitcrew::rpc::Client;
use serde_json::Value as Json;

/// Arguments of `pitcrew gamepads`.
#[derive(Debug, Args)]
pub struct GamepadsArgs {
    /// Print the status as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl GamepadsArgs {
    /// Asks `gamepad-service` for its status and prints it.
    ///
    /// # Errors
    /// When the router or the receiver does not answer, or stdout is closed.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
            .context("cannot reach the router")?;
        let status = client
            .call("gamepad-service", "status", vec![])
            .await
            .context("gamepad-service.status failed")?;
        let json = to_json(&status);
        let text = if self.json {
            serde_json::to_string(&json)?
        } else {
            render(&json)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", text.trim_end())?;
        out.flush()?;
        Ok(())
    }
}

fn num(v: &Json) -> String {
    match v {
        Json::Null => "-".to_owned(),
        Json::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The status as a short human-readable report.
pub fn render(st: &Json) -> String {
    let mut s = String::new();
    let w = &st["watchdog"];
    let state = if w["tripped"] == Json::Bool(true) {
        "TRIPPED (no control)"
    } else {
        "ok (under control)"
    };
    let _ = writeln!(
        s,
        "receiver {}  timeout {} ms  watchdog {state}  trips {}  last valid {} ms ago",
        st["addr"].as_str().unwrap_or("?"),
        num(&st["control_timeout_ms"]),
        num(&w["trips"]),
        num(&w["last_valid_age_ms"]),
    );
    let c = &st["counters"];
    let _ = writeln!(
        s,
        "datagrams: received {}  applied {}  malformed {}  oversized {}  out of range {}  reordered {}",
        num(&c["received"]),
        num(&c["applied"]),
        num(&c["malformed"]),
        num(&c["oversized"]),
        num(&c["out_of_range"]),
        num(&c["reordered"]),
    );
    let _ = writeln!(
        s,
        "\nSOURCE                           LAST SEQ    AGE ms  RECEIVED  DROPPED  REORDERED"
    );
    for src in st["sources"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "{:<32} {:>8} {:>9} {:>9} {:>8} {:>10}",
            src["source"].as_str().unwrap_or("?"),
            num(&src["last_seq"]),
            num(&src["age_ms"]),
            num(&src["received"]),
            num(&src["dropped"]),
            num(&src["reordered"]),
        );
    }
    let _ = writeln!(
        s,
        "\nPAD  CONNECTED     LX      LY      RX      RY  BUTTONS"
    );
    for pad in st["gamepads"].as_array().into_iter().flatten() {
        let buttons: Vec<&str> = pad["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        let axis = |k: &str| {
            pad[k]
                .as_f64()
                .map_or("-".to_owned(), |x| format!("{x:+.3}"))
        };
        let _ = writeln!(
            s,
            "{:>3}  {:<9} {:>7} {:>7} {:>7} {:>7}  {}",
            num(&pad["index"]),
            if pad["connected"] == Json::Bool(true) {
                "yes"
            } else {
                "no"
            },
            axis("lx"),
            axis("ly"),
            axis("rx"),
            axis("ry"),
            buttons.join(" "),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_status() {
        let st = serde_json::json!({
            "addr": "0.0.0.0:6002", "control_timeout_ms": 100.0,
            "watchdog": {"tripped": false, "trips": 1, "last_valid_age_ms": 3.5},
            "counters": {"received": 10, "applied": 9, "malformed": 1, "oversized": 0,
                         "out_of_range": 0, "reordered": 0},
            "sources": [{"source": "laptop-1", "last_seq": 9, "age_ms": 3.5,
                         "received": 10, "dropped": 1, "reordered": 0}],
            "gamepads": [{"index": 0, "connected": true, "lx": 0.5, "ly": 0.0, "rx": 0.0,
                          "ry": -1.0, "btn": 1, "buttons": ["button_a"]}]
        });
        let text = render(&st);
        assert!(text.contains("laptop-1"), "{text}");
        assert!(
            text.contains("+0.500") && text.contains("button_a"),
            "{text}"
        );
        assert!(text.contains("ok (under control)"), "{text}");
    }
}

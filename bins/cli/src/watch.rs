//! `pitcrew watch`: joins the device-update multicast group and shows the devices' values:
//! on a terminal as a full-screen live view ([`crate::watch_tui`]), otherwise as plain
//! lines (a snapshot of every device each full update), or one JSON line per datagram
//! (`--json`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pitcrew::config::Config;
use pitcrew::updates::{self, Datagram};

/// Arguments of `pitcrew watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// IPv4 address of the interface to join the group on (127.0.0.1 on a loopback-only
    /// machine); the broker's `PITCREW_UPDATE_INTERFACE` too.
    #[arg(long, env = "PITCREW_UPDATE_INTERFACE", default_value = "0.0.0.0")]
    pub interface: Ipv4Addr,
    /// One JSON line per datagram instead of the full-screen view (which is also left for
    /// plain lines when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
    /// Exit after this many datagrams.
    #[arg(long)]
    pub count: Option<u64>,
}

impl WatchArgs {
    /// Receives and prints until interrupted (or `--count` datagrams).
    ///
    /// # Errors
    /// Bad group address, socket errors, stdout errors.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let group = config.update_addr;
        let socket = pitcrew::updates::join(group, self.interface)?;
        if !self.json && self.count.is_none() && std::io::stdout().is_terminal() {
            return crate::watch_tui::run(socket, config).await;
        }
        let mut buf = vec![0u8; 65_536];
        let mut state: BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
            BTreeMap::new();
        let mut seen = 0u64;
        let mut malformed = 0u64;
        while self.count.is_none_or(|c| seen < c) {
            let n = socket.recv(&mut buf).await.context("receive")?;
            let (devices, meta) = match updates::decode(buf.get(..n).unwrap_or_default()) {
                Some(Datagram::Devices { devices, meta }) => (devices, meta),
                // The robot state beside the updates: not what this view shows.
                Some(Datagram::RobotState(_)) => continue,
                None => {
                    malformed += 1;
                    if malformed == 1 {
                        eprintln!("pitcrew: ignoring a malformed update datagram");
                    }
                    continue;
                }
            };
            seen += 1;
            let mut out = std::io::stdout().lock();
            if self.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "devices": devices, "meta": meta })
                )?;
            } else {
                for (uid, values) in &devices {
                    let entry = state.entry(uid.clone()).or_default();
                    for (k, v) in values.as_object().into_iter().flatten() {
                        entry.insert(k.clone(), v.clone());
                    }
                }
                if meta["full"] == true {
                    writeln!(out, "--- seq {} ---", meta["seq"])?;
                    for (uid, values) in &state {
                        let text: Vec<String> =
                            values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        writeln!(out, "{uid:<28} {}", text.join(" "))?;
                    }
                }
            }
            out.flush()?;
        }
        tokio::time::sleep(Duration::ZERO).await;
        Ok(())
    }
}

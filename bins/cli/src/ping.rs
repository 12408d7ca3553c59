//! `pitcrew ping`: is the router there, and how long is the round trip?

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pitcrew::config::Config;
use pitcrew::rpc::Client;

/// Arguments of `pitcrew ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// How many pings to send.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub count: u32,
    /// Print one JSON object per ping.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pitcrew ping`.
///
/// # Errors
/// When the router does not answer.
pub async fn run(args: PingArgs, config: &Config) -> anyhow::Result<()> {
    let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
        .context("cannot reach the router")?;
    for i in 0..args.count.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let started = Instant::now();
        client.call("router", "ping", vec![]).await?;
        let rtt_us = started.elapsed().as_secs_f64() * 1e6;
        if args.json {
            println!("{{\"router\":\"pong\",\"rtt_us\":{rtt_us:.1}}}");
        } else {
            println!("pong from router in {rtt_us:.0} µs");
        }
    }
    Ok(())
}

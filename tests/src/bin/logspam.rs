//! `pitcrew-logspam`: logs numbered records at a steady rate, for log pipeline tests and
//! benchmarks.
//!
//! Record `n` (from `--first`) is `info!(n, half = n / 2, even, word = "spam", pad?,
//! "spam")`, at `warn` when `n % 10 == 9`. At the end it prints one JSON line on stdout:
//! how long the loop took against its nominal time and the slowest single log call, which
//! is how a test sees that logging never stalled the caller.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use pitcrew::options::SharedOptions;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-logspam",
    about = "Logs numbered records at a steady rate"
)]
struct Options {
    #[command(flatten)]
    shared: SharedOptions,
    /// The app name records carry.
    #[arg(long, default_value = "spam")]
    app: String,
    /// How many records to log; 0 means until stopped.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Records per second; 0 means as fast as possible.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// The number of the first record.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Adds a string field `pad` of this many bytes to every record.
    #[arg(long, default_value_t = 0)]
    pad: usize,
}

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    // The app name must outlive logging, which lasts for the process.
    let app: &'static str = Box::leak(options.app.clone().into_boxed_str());
    pitcrew::app::main(
        app,
        &options.shared.clone(),
        move |_config, shutdown| async move {
            let pad = "p".repeat(options.pad);
            let started = Instant::now();
            let mut slowest = Duration::ZERO;
            let mut i = 0_u64;
            while (options.count == 0 || i < options.count) && !shutdown.is_cancelled() {
                if options.rate > 0.0 {
                    let due = started + Duration::from_secs_f64(i as f64 / options.rate);
                    if due > Instant::now() + Duration::from_millis(1) {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let n = options.first + i;
                let call = Instant::now();
                if n % 10 == 9 {
                    if pad.is_empty() {
                        tracing::warn!(
                            n,
                            half = n as f64 / 2.0,
                            even = false,
                            word = "spam",
                            "spam"
                        );
                    } else {
                        tracing::warn!(n, half = n as f64 / 2.0, even = false, word = "spam", pad = %pad, "spam");
                    }
                } else if pad.is_empty() {
                    tracing::info!(
                        n,
                        half = n as f64 / 2.0,
                        even = n % 2 == 0,
                        word = "spam",
                        "spam"
                    );
                } else {
                    tracing::info!(n, half = n as f64 / 2.0, even = n % 2 == 0, word = "spam", pad = %pad, "spam");
                }
                slowest = slowest.max(call.elapsed());
                i += 1;
            }
            let nominal = if options.rate > 0.0 {
                i as f64 / options.rate
            } else {
                0.0
            };
            println!(
            "{{\"app\":\"{app}\",\"count\":{i},\"elapsed_s\":{:.3},\"nominal_s\":{nominal:.3},\"max_call_us\":{:.0}}}",
            started.elapsed().as_secs_f64(),
            slowest.as_secs_f64() * 1e6
        );
            Ok::<_, String>(())
        },
    )
}

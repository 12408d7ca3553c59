//! `pitcrew logs`: recent history from `logfwd-service`, then the live stream.
//!
//! To print every record exactly once when both are asked for, the live subscription is
//! opened *first*, then the history fetched; a live record is skipped when its publisher's
//! `seq` is not newer than the last one printed for that publisher (`(app, pid)`). A gap
//! in a publisher's `seq` on the live stream means records were lost on the way (this
//! subscriber was too slow and the forwarder's PUB dropped them); it is reported on
//! stderr.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pitcrew::codec::{to_json, Value};
use pitcrew::config::Config;
use pitcrew::endpoint::{PubSubOptions, Subscriber};
use pitcrew::logging::record::{
    level_name, parse_level, record_get, topics_at_or_above, LogRecord, ENVELOPE_KEYS,
};
use pitcrew::options::LogLevel;
use pitcrew::rpc::Client;

/// How long to wait for the subscription to connect before fetching history: past it
/// (forwarder down) history is fetched anyway and the stream starts when it can.
const CONNECT_WAIT: Duration = Duration::from_secs(1);
/// Records the subscription may buffer while we print: generous, because a subscriber
/// that falls behind by more loses records at the forwarder.
const SUBSCRIBER_HWM: i32 = 100_000;

/// Arguments of `pitcrew logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Show only records at or above this level.
    #[arg(long, value_enum, default_value = "trace")]
    pub level: LogLevel,
    /// Show only records from this app (`router`, `logfwd`, `devices`, ...).
    #[arg(long)]
    pub app: Option<String>,
    /// First print the last N records from the forwarder's history. Without `--follow`,
    /// stop after them.
    #[arg(long, value_name = "N")]
    pub since: Option<u64>,
    /// Print one JSON object per record (the record as published).
    #[arg(long)]
    pub json: bool,
    /// Follow the live stream until interrupted (the default when `--since` is not
    /// given).
    #[arg(long)]
    pub follow: bool,
}

/// Runs `pitcrew logs`.
///
/// # Errors
/// When the subscription cannot be set up, history is asked for and unavailable without
/// `--follow`, or stdout is closed.
pub async fn run(args: LogsArgs, config: &Config) -> anyhow::Result<()> {
    let follow = args.follow || args.since.is_none();
    let mut subscriber = if follow {
        let topics = topics_at_or_above(args.level);
        let address = config.log_frontend_connect();
        let mut sub = Subscriber::connect(
            &address,
            &topics,
            PubSubOptions {
                hwm: SUBSCRIBER_HWM,
                ..PubSubOptions::default()
            },
        )
        .with_context(|| format!("cannot subscribe to the log forwarder at {address}"))?;
        if args.since.is_some() {
            sub.wait_connected(CONNECT_WAIT).await;
        }
        Some(sub)
    } else {
        None
    };
    let mut printer = Printer::new(&args);
    if let Some(n) = args.since {
        match fetch_history(config, n, &args).await {
            Ok(records) => {
                for record in &records {
                    printer.history(record)?;
                }
            }
            Err(e) if follow => eprintln!("pitcrew: no history: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    let Some(sub) = subscriber.as_mut() else {
        return Ok(());
    };
    loop {
        let frames = sub.recv().await.context("the log subscription failed")?;
        // Anything that is not a record is skipped: the stream is someone else's input.
        if let Ok(record) = LogRecord::decode(&frames) {
            printer.live(&record)?;
        }
    }
}

async fn fetch_history(config: &Config, n: u64, args: &LogsArgs) -> anyhow::Result<Vec<Value>> {
    let client = Client::connect(&config.frontend_connect(), "cli", config.call_timeout)
        .context("cannot reach the router")?;
    let app = args.app.as_deref().map_or(Value::Nil, Value::from);
    let result = client
        .call(
            "logfwd-service",
            "recent_logs",
            vec![n.into(), level_name(args.level).into(), app],
        )
        .await?;
    match result {
        Value::Array(records) => Ok(records),
        other => anyhow::bail!("recent_logs returned {other} instead of an array"),
    }
}

/// Prints records, de-duplicating and watching for gaps.
struct Printer {
    json: bool,
    colour: bool,
    app: Option<String>,
    min_level: LogLevel,
    /// Last `seq` printed per publisher `(app, pid)`.
    last_seq: HashMap<(String, u32), u64>,
    /// History records without `seq` (foreign publishers), to skip them once live.
    seen_unsequenced: HashSet<String>,
    out: std::io::Stdout,
}

impl Printer {
    fn new(args: &LogsArgs) -> Self {
        Self {
            json: args.json,
            colour: !args.json && std::io::stdout().is_terminal(),
            app: args.app.clone(),
            min_level: args.level,
            last_seq: HashMap::new(),
            seen_unsequenced: HashSet::new(),
            out: std::io::stdout(),
        }
    }

    fn history(&mut self, record: &Value) -> anyhow::Result<()> {
        let app = record_get(record, "app").and_then(Value::as_str);
        let pid = record_get(record, "pid").and_then(Value::as_u64);
        let seq = record_get(record, "seq").and_then(Value::as_u64);
        match (app, pid.and_then(|p| u32::try_from(p).ok()), seq) {
            (Some(app), Some(pid), Some(seq)) => {
                self.last_seq.insert((app.to_owned(), pid), seq);
            }
            _ => {
                self.seen_unsequenced.insert(identity(record));
            }
        }
        self.print(record)
    }

    fn live(&mut self, record: &LogRecord) -> anyhow::Result<()> {
        if record.level < self.min_level || self.app.as_ref().is_some_and(|a| *a != record.app) {
            return Ok(());
        }
        match (record.pid, record.seq) {
            (Some(pid), Some(seq)) => {
                let key = (record.app.clone(), pid);
                if let Some(&last) = self.last_seq.get(&key) {
                    if seq <= last {
                        return Ok(()); // already printed from history
                    }
                    if seq > last + 1 {
                        eprintln!(
                            "pitcrew: {} records from {} (pid {pid}) were lost on the way",
                            seq - last - 1,
                            record.app
                        );
                    }
                }
                self.last_seq.insert(key, seq);
            }
            _ => {
                if !self.seen_unsequenced.is_empty()
                    && self.seen_unsequenced.remove(&identity(&record.record))
                {
                    return Ok(());
                }
            }
        }
        self.print(&record.record)
    }

    fn print(&mut self, record: &Value) -> anyhow::Result<()> {
        let line = if self.json {
            serde_json::to_string(&to_json(record))?
        } else {
            pretty(record, self.colour)
        };
        let mut out = self.out.lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }
}

/// What identifies a record that carries no `seq`.
fn identity(record: &Value) -> String {
    ["app", "timestamp", "event"]
        .iter()
        .map(|k| {
            record_get(record, k)
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// `12:34:56.123456 INFO  app: message key=value ...`, the level coloured when `colour`.
fn pretty(record: &Value, colour: bool) -> String {
    let text = |key: &str| {
        record_get(record, key)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let timestamp = text("timestamp");
    // RFC 3339 `YYYY-MM-DDTHH:MM:SS.ffffffZ`: show the time of day (UTC).
    let time = timestamp.get(11..26).unwrap_or(timestamp);
    let level = parse_level(text("level"));
    let name = level.map_or("?", level_name).to_ascii_uppercase();
    let level = match (colour, level) {
        (true, Some(l)) => format!("\x1b[{}m{name:<5}\x1b[0m", ansi_colour(l)),
        _ => format!("{name:<5}"),
    };
    let mut line = format!("{time} {level} {}: {}", text("app"), text("event"));
    if let Value::Map(entries) = record {
        for (key, value) in entries {
            let Some(key) = key.as_str() else { continue };
            if ENVELOPE_KEYS.contains(&key) {
                continue;
            }
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&field_text(value));
        }
    }
    line
}

/// A field value for `key=value`: strings bare when they are one plain word, quoted
/// otherwise; everything else as JSON.
fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let s = s.as_str().unwrap_or("");
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
            if plain {
                s.to_owned()
            } else {
                format!("{s:?}")
            }
        }
        other => to_json(other).to_string(),
    }
}

/// SGR colour code per level.
fn ansi_colour(level: LogLevel) -> u8 {
    match level {
        LogLevel::Trace => 35,
        LogLevel::Debug => 34,
        LogLevel::Info => 32,
        LogLevel::Warn => 33,
        LogLevel::Error => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        Value::Map(vec![
            ("timestamp".into(), "2024-05-01T12:34:56.123456Z".into()),
            ("level".into(), "warn".into()),
            ("app".into(), "devices".into()),
            ("target".into(), "pitcrew_devices::port".into()),
            ("event".into(), "device vanished".into()),
            ("pid".into(), 42.into()),
            ("seq".into(), 7.into()),
            ("uid".into(), "123456".into()),
            ("port".into(), "/dev/tty USB0".into()),
            ("retries".into(), 3.into()),
            ("ok".into(), false.into()),
        ])
    }

    #[test]
    fn pretty_lines_show_time_level_app_message_and_fields() {
        assert_eq!(
            pretty(&record(), false),
            "12:34:56.123456 WARN  devices: device vanished uid=123456 port=\"/dev/tty USB0\" retries=3 ok=false"
        );
        let coloured = pretty(&record(), true);
        assert!(coloured.contains("\x1b[33mWARN \x1b[0m"), "{coloured}");
    }

    #[test]
    fn live_records_already_printed_from_history_are_skipped() {
        let args = LogsArgs {
            level: LogLevel::Trace,
            app: None,
            since: Some(10),
            json: true,
            follow: true,
        };
        let mut printer = Printer::new(&args);
        printer.last_seq.insert(("devices".into(), 42), 7);
        let (topic, payload) = pitcrew::logging::record::encode(
            &pitcrew::logging::record::Envelope {
                time: std::time::UNIX_EPOCH,
                level: LogLevel::Warn,
                app: "devices",
                target: "t",
                event: "e",
                pid: 42,
                seq: 7,
            },
            Vec::new(),
        );
        let again = LogRecord::decode(&[topic.as_bytes().to_vec(), payload]).unwrap();
        // seq 7 was printed: skipping it prints nothing (and so needs no stdout).
        printer.live(&again).unwrap();
        assert_eq!(printer.last_seq[&("devices".to_owned(), 42)], 7);
    }
}

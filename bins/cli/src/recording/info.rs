//! `pitcrew recording info FILE`: what a recording holds — its span, channels and counts,
//! the robot's state changes, emergency stops, device disconnects, refused control input
//! and errors — and, for a file that was not closed, what was lost.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::channels;
use super::read::{self, Recording};

/// `pitcrew recording info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The recording.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Seconds from the first message (or the anchor) to `t`.
fn rel(rec: &Recording, t: u64) -> f64 {
    let origin = start_ns(rec);
    t.saturating_sub(origin) as f64 / 1e9
}

/// The recording's origin: its anchor, else its first message.
pub fn start_ns(rec: &Recording) -> u64 {
    rec.meta("pitcrew.recording", "anchor_monotonic_ns")
        .and_then(|s| s.parse().ok())
        .or_else(|| rec.messages.first().map(|m| m.log_time))
        .unwrap_or(0)
}

fn parse(m: &read::Message) -> Value {
    serde_json::from_slice(&m.data).unwrap_or(Value::Null)
}

/// The summary as JSON (what `--json` prints).
pub fn summary(rec: &Recording) -> Value {
    let counts: serde_json::Map<String, Value> = rec
        .channels
        .iter()
        .map(|(id, c)| {
            let n = rec.messages.iter().filter(|m| m.channel == *id).count();
            (c.topic.clone(), json!(n))
        })
        .collect();
    let schemas: serde_json::Map<String, Value> = rec
        .channels
        .values()
        .map(|c| {
            let schema = json!({"name": c.schema, "encoding": c.schema_encoding, "message_encoding": c.message_encoding});
            (c.topic.clone(), schema)
        })
        .collect();
    let states: Vec<Value> = rec
        .on(channels::ROBOT_STATE)
        .map(|m| {
            let v = parse(m);
            json!({"t_s": rel(rec, m.log_time), "state": v["state"], "reason": v["reason"], "link": v["link"]})
        })
        .collect();
    let estops: Vec<Value> = states
        .iter()
        .filter(|s| s["state"] == "estopped")
        .cloned()
        .collect();
    let disconnects: Vec<Value> = rec
        .on(channels::DEVICES_CONNECTION)
        .filter_map(|m| {
            let v = parse(m);
            (v["connected"] == false).then(|| {
                json!({"t_s": rel(rec, m.log_time), "uid": v["uid"], "type": v["type"], "end": v["end"]})
            })
        })
        .collect();
    let errors: Vec<Value> = rec
        .on(channels::LOG)
        .filter_map(|m| {
            let v = parse(m);
            (v["level"] == "error")
                .then(|| json!({"t_s": rel(rec, m.log_time), "app": v["app"], "event": v["event"]}))
        })
        .collect();
    let duration = match (rec.messages.first(), rec.messages.last()) {
        (Some(a), Some(b)) => (b.log_time - a.log_time) as f64 / 1e9,
        _ => 0.0,
    };
    let damage = rec.damage.as_ref().map(|d| {
        json!({
            "readable_bytes": d.readable_bytes,
            "lost_bytes": d.lost_bytes,
            "unfinished": d.unfinished,
        })
    });
    json!({
        "bytes": rec.size,
        "duration_s": duration,
        "messages": rec.messages.len(),
        "chunks": rec.chunks,
        "closed": rec.damage.is_none(),
        "damage": damage,
        "started": rec.meta("pitcrew.recording", "anchor_unix_ns"),
        "namespace": rec.meta("pitcrew.recording", "namespace"),
        "counts": counts,
        "schemas": schemas,
        "state_changes": states,
        "estops": estops,
        "disconnects": disconnects,
        "control_refused": rec.on(channels::CONTROL_REFUSED).count(),
        "errors": errors,
        "attachments": rec.attachments.keys().collect::<Vec<_>>(),
        "recorder_dropped": rec.meta("pitcrew.end", "recorder_dropped"),
    })
}

impl InfoArgs {
    /// Prints the summary.
    ///
    /// # Errors
    /// When the file cannot be read or is corrupt; stdout errors.
    pub fn run(self) -> anyhow::Result<()> {
        let rec = read::read(&self.file)?;
        let s = summary(&rec);
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{s}")?;
            return Ok(());
        }
        print_text(&mut out, &self.file, &rec, &s).context("cannot write to stdout")?;
        if let Some(d) = &rec.damage {
            eprintln!(
                "pitcrew: {} was not closed (the recorder was killed or lost power): read up to byte {}, {} bytes after it lost{}",
                self.file.display(),
                d.readable_bytes,
                d.lost_bytes,
                d.unfinished.as_ref().map(|u| format!(" ({u})")).unwrap_or_default()
            );
        }
        Ok(())
    }
}

fn print_text(
    out: &mut impl Write,
    file: &std::path::Path,
    rec: &Recording,
    s: &Value,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {:.1} s, {} messages in {} chunks, {} bytes{}",
        file.display(),
        s["duration_s"].as_f64().unwrap_or(0.0),
        s["messages"],
        s["chunks"],
        s["bytes"],
        if rec.damage.is_some() {
            " (NOT CLOSED)"
        } else {
            ""
        }
    )?;
    if let Some(unix_ns) = s["started"].as_str().and_then(|t| t.parse::<u64>().ok()) {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
        writeln!(
            out,
            "started {} (namespace {})",
            pitcrew::logging::record::rfc3339(at),
            s["namespace"].as_str().unwrap_or("?")
        )?;
    }
    writeln!(out, "channels:")?;
    for c in rec.channels.values() {
        writeln!(
            out,
            "  {:<22} {:>8}  {}",
            c.topic,
            s["counts"][&c.topic].as_u64().unwrap_or(0),
            s["schemas"][&c.topic]["name"].as_str().unwrap_or("")
        )?;
    }
    let list =
        |out: &mut dyn Write, title: &str, key: &str, fields: &[&str]| -> std::io::Result<()> {
            let items = s[key].as_array().cloned().unwrap_or_default();
            writeln!(out, "{title}: {}", items.len())?;
            for item in items {
                let text: Vec<String> = fields
                    .iter()
                    .map(|f| match &item[*f] {
                        Value::String(v) => v.clone(),
                        v => v.to_string(),
                    })
                    .collect();
                writeln!(
                    out,
                    "  +{:>9.3} s  {}",
                    item["t_s"].as_f64().unwrap_or(0.0),
                    text.join("  ")
                )?;
            }
            Ok(())
        };
    list(
        out,
        "state changes",
        "state_changes",
        &["state", "link", "reason"],
    )?;
    list(out, "emergency stops", "estops", &["reason"])?;
    list(out, "disconnects", "disconnects", &["uid", "type", "end"])?;
    list(out, "errors", "errors", &["app", "event"])?;
    writeln!(out, "control datagrams refused: {}", s["control_refused"])?;
    Ok(())
}

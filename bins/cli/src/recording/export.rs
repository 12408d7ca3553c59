//! `pitcrew recording export FILE --csv DIR`: one CSV file per channel
//! (`/devices/data` → `devices_data.csv`), a row per message: `t_s` (seconds from the start
//! of the recording), `log_time_ns`, then every field of the JSON message flattened with
//! dots (`values.duty_cycle_a`, `gamepads.0.lx`), the columns being every field any message
//! of the channel has, in the order first seen.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::info::start_ns;
use super::read;

/// `pitcrew recording export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording.
    pub file: PathBuf,
    /// Directory for the CSV files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub csv: PathBuf,
}

/// `prefix.key` pairs of a JSON value's leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&join(&i.to_string()), v, out)),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null => out.push((prefix.to_owned(), String::new())),
        v => out.push((prefix.to_owned(), v.to_string())),
    }
}

/// A CSV field, quoted when it must be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl ExportArgs {
    /// Writes the CSV files and names them on stderr.
    ///
    /// # Errors
    /// When the recording cannot be read or a file cannot be written.
    pub fn run(self) -> anyhow::Result<()> {
        let rec = read::read(&self.file)?;
        std::fs::create_dir_all(&self.csv)
            .with_context(|| format!("cannot create {}", self.csv.display()))?;
        let origin = start_ns(&rec);
        for (id, channel) in &rec.channels {
            let mut columns: Vec<String> = Vec::new();
            let mut rows: Vec<(u64, BTreeMap<String, String>)> = Vec::new();
            for m in rec.messages.iter().filter(|m| m.channel == *id) {
                let json: Value = serde_json::from_slice(&m.data).unwrap_or(Value::Null);
                let mut flat = Vec::new();
                flatten("", &json, &mut flat);
                for (k, _) in &flat {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
                rows.push((m.log_time, flat.into_iter().collect()));
            }
            let name = format!(
                "{}.csv",
                channel.topic.trim_start_matches('/').replace('/', "_")
            );
            let path = self.csv.join(&name);
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            );
            let header: Vec<String> = ["t_s", "log_time_ns"]
                .iter()
                .map(|s| (*s).to_owned())
                .chain(columns.iter().map(|c| field(c)))
                .collect();
            writeln!(out, "{}", header.join(","))?;
            for (t, row) in &rows {
                let mut line = vec![
                    format!("{:.6}", t.saturating_sub(origin) as f64 / 1e9),
                    t.to_string(),
                ];
                line.extend(
                    columns
                        .iter()
                        .map(|c| field(row.get(c).map_or("", String::as_str))),
                );
                writeln!(out, "{}", line.join(","))?;
            }
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{}: {} rows", path.display(), rows.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flattens_into_columns_and_fields_are_quoted() {
        let mut out = Vec::new();
        let v =
            serde_json::json!({"uid": "7", "values": {"a": 0.5, "b": true}, "g": [{"lx": null}]});
        flatten("", &v, &mut out);
        assert_eq!(
            out,
            [
                ("g.0.lx".into(), String::new()),
                ("uid".into(), "7".into()),
                ("values.a".into(), "0.5".into()),
                ("values.b".into(), "true".into()),
            ]
        );
        assert_eq!(field("a,b \"c\""), "\"a,b \"\"c\"\"\"");
        assert_eq!(field("plain"), "plain");
    }
}

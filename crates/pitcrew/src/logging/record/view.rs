//! A log record checked and read in place: [`RecordView`].
//!
//! The forwarder checks every record it forwards; decoding each into a [`crate::codec::Value`]
//! tree only to look at six keys cost it an allocation per key, string and container, and
//! most of its time. A view runs the very same checks as [`super::LogRecord::decode`] (which
//! is built on it, so the two cannot drift apart) over the received bytes and borrows what
//! it reads from them: checking a record allocates nothing.

use crate::codec::scan::{self, Cursor, RawValue};
use crate::options::LogLevel;

use super::{level_name, parse_level, MalformedRecord};

/// A checked log record, borrowed from the message it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Its level (topic, payload and record agree on it).
    pub level: LogLevel,
    /// The publishing application.
    pub app: &'a str,
    /// The message.
    pub event: &'a str,
    /// The publishing process, when the publisher says (ours do).
    pub pid: Option<u32>,
    /// The publisher's send sequence number, when it says (ours do).
    pub seq: Option<u64>,
    /// The whole record map, encoded as received.
    pub record: RawValue<'a>,
}

/// The keys a view reads while checking, first occurrence of each (as a map lookup in a
/// decoded record finds the first).
#[derive(Default)]
struct Envelope<'a> {
    timestamp: Option<RawValue<'a>>,
    level: Option<RawValue<'a>>,
    app: Option<RawValue<'a>>,
    target: Option<RawValue<'a>>,
    event: Option<RawValue<'a>>,
    pid: Option<RawValue<'a>>,
    seq: Option<RawValue<'a>>,
}

impl<'a> Envelope<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<RawValue<'a>>> {
        Some(match key {
            "timestamp" => &mut self.timestamp,
            "level" => &mut self.level,
            "app" => &mut self.app,
            "target" => &mut self.target,
            "event" => &mut self.event,
            "pid" => &mut self.pid,
            "seq" => &mut self.seq,
            _ => return None,
        })
    }
}

fn bad(why: &str) -> MalformedRecord {
    MalformedRecord(why.to_owned())
}

/// A value of a checked payload: cannot fail, but a bug here must not become a panic on
/// outside input.
fn value<'a>(cursor: &mut Cursor<'a>) -> Result<RawValue<'a>, MalformedRecord> {
    cursor.value().map_err(|e| MalformedRecord(e.to_string()))
}

impl<'a> RecordView<'a> {
    /// Checks and reads one message `[topic, payload]`.
    ///
    /// # Errors
    /// [`MalformedRecord`] naming the first thing that is wrong.
    pub fn parse<F: AsRef<[u8]>>(frames: &'a [F]) -> Result<Self, MalformedRecord> {
        let [topic, payload] = frames else {
            return Err(MalformedRecord(format!(
                "{} frames, expected 2 (topic, payload)",
                frames.len()
            )));
        };
        let topic = std::str::from_utf8(topic.as_ref())
            .ok()
            .and_then(parse_level)
            .ok_or_else(|| bad("the topic is not a level name"))?;
        let level = level_name(topic);
        let payload = payload.as_ref();
        // The whole payload first, so that a message that is not MessagePack is named so
        // whatever its shape (as decoding it whole did).
        scan::check(payload).map_err(|e| MalformedRecord(e.to_string()))?;
        let mut parts = Cursor::new(payload);
        let Some(len) = parts.array_len() else {
            return Err(bad("the payload is not an array"));
        };
        if len != 3 || value(&mut parts)?.as_u64() != Some(2) {
            return Err(bad("the payload is not [2, level, [record]]"));
        }
        if value(&mut parts)?.as_str() != Some(level) {
            return Err(bad("the payload's level differs from the topic"));
        }
        if parts.array_len() != Some(1) {
            return Err(bad("the params are not [record]"));
        }
        let record = value(&mut parts)?;
        let mut entries = Cursor::new(record.bytes());
        let Some(len) = entries.map_len() else {
            return Err(bad("the record is not a map"));
        };
        let mut envelope = Envelope::default();
        for _ in 0..len {
            let key = value(&mut entries)?;
            let v = value(&mut entries)?;
            if let Some(slot) = key.as_str().and_then(|k| envelope.slot(k)) {
                slot.get_or_insert(v);
            }
        }
        let string = |v: Option<RawValue<'a>>| v.and_then(RawValue::as_str);
        if string(envelope.level) != Some(level) {
            return Err(bad("the record's level differs from the topic"));
        }
        for (key, v) in [
            ("timestamp", envelope.timestamp),
            ("target", envelope.target),
            ("event", envelope.event),
        ] {
            if string(v).is_none() {
                return Err(MalformedRecord(format!("the record has no string {key:?}")));
            }
        }
        let app = string(envelope.app).ok_or_else(|| bad("the record has no string \"app\""))?;
        Ok(Self {
            level: topic,
            app,
            event: string(envelope.event).unwrap_or_default(),
            pid: envelope
                .pid
                .and_then(RawValue::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            seq: envelope.seq.and_then(RawValue::as_u64),
            record,
        })
    }

    /// The value of the first entry with key `key` in the record.
    pub fn get(&self, key: &str) -> Option<RawValue<'a>> {
        let mut entries = Cursor::new(self.record.bytes());
        for _ in 0..entries.map_len()? {
            let k = entries.value().ok()?;
            let v = entries.value().ok()?;
            if k.as_str() == Some(key) {
                return Some(v);
            }
        }
        None
    }
}

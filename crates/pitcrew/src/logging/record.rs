//! A log record on the wire (spec/wire.md, "Logs"): topic frame = level name, payload =
//! `[2, <level>, [record]]`, the record a map with `timestamp`, `level`, `app`, `target`,
//! `event`, the event's and its spans' fields, and two keys of ours: `pid` and `seq`.
//!
//! `seq` counts the records one publisher (one process) has *sent*, from 0: a gap seen
//! downstream means records lost on the way (a full subscriber pipe), and `(app, pid, seq)`
//! identifies a record exactly, which is how `pitcrew logs` joins history and the live
//! stream without duplicates. Records a publisher had to drop never get a `seq`; it
//! reports them in a [`DROP_NOTICE`] record instead.
//!
//! Both ends live here: the publisher encodes with [`encode`]; the forwarder checks and
//! reads in place with [`RecordView::parse`] ([`view`]), the CLI and the dashboard decode
//! with [`LogRecord::decode`], which makes the same checks.

pub mod view;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::{self, Value};
use crate::options::LogLevel;

pub use view::RecordView;

/// The keys every record carries; an event field with one of these names is published as
/// `field.<name>` so that it cannot overwrite them.
pub const ENVELOPE_KEYS: [&str; 7] = ["timestamp", "level", "app", "target", "event", "pid", "seq"];

/// The `event` of the record a publisher sends when delivery resumes after it dropped
/// records; its field [`DROPPED_FIELD`] holds how many.
pub const DROP_NOTICE: &str = "log records dropped while the log forwarder was away or slow";

/// The field of a [`DROP_NOTICE`] record that counts the dropped records.
pub const DROPPED_FIELD: &str = "dropped";

/// The largest payload a log forwarder accepts; a publisher sending more is disconnected
/// by libzmq. Publishers stay far below it (string fields are cut at
/// [`MAX_STRING_BYTES`], and a callsite has at most 32 fields).
pub const MAX_RECORD_BYTES: i64 = 1 << 20;

/// Longest string field value published; longer ones are cut (at a character boundary)
/// and end with `…`.
pub const MAX_STRING_BYTES: usize = 8 * 1024;

/// The wire name of a level (also its topic frame).
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// The level with wire name `name`.
pub fn parse_level(name: &str) -> Option<LogLevel> {
    Some(match name {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        _ => return None,
    })
}

/// The pipeline's level for a `tracing` level.
pub fn from_tracing(level: tracing::Level) -> LogLevel {
    match level {
        tracing::Level::TRACE => LogLevel::Trace,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::ERROR => LogLevel::Error,
    }
}

/// The topic prefixes a subscriber uses to receive `min` and every more severe level.
pub fn topics_at_or_above(min: LogLevel) -> Vec<&'static [u8]> {
    [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ]
    .into_iter()
    .filter(|l| *l >= min)
    .map(|l| level_name(l).as_bytes())
    .collect()
}

/// `time` as RFC 3339 in UTC with microseconds: `2024-05-01T12:34:56.123456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (see the bounds above).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// What a publisher knows about one record before encoding.
pub struct Envelope<'a> {
    /// When the event happened.
    pub time: SystemTime,
    /// Its level.
    pub level: LogLevel,
    /// The publishing application (`router`, `logfwd`, ...).
    pub app: &'a str,
    /// The event's target (module path, usually).
    pub target: &'a str,
    /// The message.
    pub event: &'a str,
    /// The publishing process.
    pub pid: u32,
    /// The publisher's send sequence number.
    pub seq: u64,
}

/// Encodes one record as `(topic, payload)`. `fields` come in order of precedence, lowest
/// first (outer span, inner span, event): a later field replaces an earlier one with the
/// same name.
pub fn encode<'f>(
    envelope: &Envelope<'_>,
    fields: impl IntoIterator<Item = (&'f str, Value)>,
) -> (&'static str, Vec<u8>) {
    let level = level_name(envelope.level);
    let mut map: Vec<(Value, Value)> = vec![
        ("timestamp".into(), rfc3339(envelope.time).into()),
        ("level".into(), level.into()),
        ("app".into(), envelope.app.into()),
        ("target".into(), envelope.target.into()),
        ("event".into(), envelope.event.into()),
        ("pid".into(), envelope.pid.into()),
        ("seq".into(), envelope.seq.into()),
    ];
    for (name, value) in fields {
        let key: Value = if ENVELOPE_KEYS.contains(&name) {
            format!("field.{name}").into()
        } else {
            name.into()
        };
        // Few fields per record: a linear scan beats hashing here.
        match map[ENVELOPE_KEYS.len()..]
            .iter_mut()
            .find(|(k, _)| *k == key)
        {
            Some(slot) => slot.1 = value,
            None => map.push((key, value)),
        }
    }
    let payload = Value::Array(vec![
        Value::from(2),
        Value::from(level),
        Value::Array(vec![Value::Map(map)]),
    ]);
    (level, codec::encode(&payload))
}

/// Why a message is not a log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a log record: {0}")]
pub struct MalformedRecord(pub String);

/// A checked log record, as the forwarder and subscribers read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Its level (topic, payload and record agree on it).
    pub level: LogLevel,
    /// The publishing application.
    pub app: String,
    /// The publishing process, when the publisher says (ours do).
    pub pid: Option<u32>,
    /// The publisher's send sequence number, when it says (ours do).
    pub seq: Option<u64>,
    /// The whole record map, as received.
    pub record: Value,
}

impl LogRecord {
    /// Checks and reads one message `[topic, payload]` (the checks of
    /// [`RecordView::parse`]), then decodes the record map.
    ///
    /// # Errors
    /// [`MalformedRecord`] naming the first thing that is wrong.
    pub fn decode(frames: &[Vec<u8>]) -> Result<Self, MalformedRecord> {
        Self::from_view(&RecordView::parse(frames)?)
    }

    /// Decodes the record map of a checked view.
    ///
    /// # Errors
    /// Never for a view from [`RecordView::parse`] (its bytes were checked); the error is
    /// kept so that a bug cannot become a panic on outside input.
    pub fn from_view(view: &RecordView<'_>) -> Result<Self, MalformedRecord> {
        let record = view
            .record
            .decode()
            .map_err(|e| MalformedRecord(e.to_string()))?;
        Ok(Self {
            level: view.level,
            app: view.app.to_owned(),
            pid: view.pid,
            seq: view.seq,
            record,
        })
    }

    /// The value of `key` in the record.
    pub fn get(&self, key: &str) -> Option<&Value> {
        record_get(&self.record, key)
    }
}

/// The value of `key` in a record map (`None` for a non-map or a missing key).
pub fn record_get<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    crate::codec::get(record, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_709_251_199_999_999); // leap year
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.999999Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800);
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000000Z");
    }

    fn envelope(level: LogLevel, seq: u64) -> Envelope<'static> {
        Envelope {
            time: UNIX_EPOCH,
            level,
            app: "demo",
            target: "demo::x",
            event: "hello",
            pid: 42,
            seq,
        }
    }

    #[test]
    fn encoded_records_decode_with_typed_fields() {
        let fields = vec![
            ("n", Value::from(7)),
            ("x", Value::F64(0.5)),
            ("ok", Value::from(true)),
            ("n", Value::from(8)),     // later wins
            ("level", Value::from(1)), // reserved: renamed
        ];
        let (topic, payload) = encode(&envelope(LogLevel::Warn, 3), fields);
        assert_eq!(topic, "warn");
        let record = LogRecord::decode(&[topic.as_bytes().to_vec(), payload]).unwrap();
        assert_eq!(record.level, LogLevel::Warn);
        assert_eq!(
            (record.app.as_str(), record.pid, record.seq),
            ("demo", Some(42), Some(3))
        );
        assert_eq!(record.get("n"), Some(&Value::from(8)));
        assert_eq!(record.get("x"), Some(&Value::F64(0.5)));
        assert_eq!(record.get("ok"), Some(&Value::from(true)));
        assert_eq!(record.get("level"), Some(&Value::from("warn")));
        assert_eq!(record.get("field.level"), Some(&Value::from(1)));
        assert_eq!(
            record.get("timestamp"),
            Some(&Value::from("1970-01-01T00:00:00.000000Z"))
        );
    }

    #[test]
    fn malformed_messages_are_named() {
        let (_, good) = encode(&envelope(LogLevel::Info, 0), Vec::new());
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![],
            vec![b"info".to_vec()],
            vec![b"loud".to_vec(), good.clone()],
            vec![b"warn".to_vec(), good.clone()],
            vec![b"info".to_vec(), b"\xc1garbage".to_vec()],
            vec![b"info".to_vec(), codec::encode(&Value::from(1))],
            vec![b"info".to_vec(), good.clone(), b"extra".to_vec()],
            vec![
                b"info".to_vec(),
                codec::encode(&Value::Array(vec![
                    2.into(),
                    "info".into(),
                    Value::Array(vec![Value::Map(vec![("level".into(), "info".into())])]),
                ])),
            ],
        ];
        for frames in cases {
            assert!(LogRecord::decode(&frames).is_err(), "{frames:?}");
        }
        assert!(LogRecord::decode(&[b"info".to_vec(), good]).is_ok());
    }

    /// The checks `LogRecord::decode` made on a decoded `Value` before the forwarder
    /// learned to check in place: the view must accept and refuse exactly the same.
    fn reference(frames: &[Vec<u8>]) -> Result<LogRecord, String> {
        let [topic, payload] = frames else {
            return Err("frames".into());
        };
        let topic = std::str::from_utf8(topic)
            .ok()
            .and_then(parse_level)
            .ok_or("the topic is not a level name")?;
        let value = codec::decode(payload).map_err(|e| e.to_string())?;
        let Value::Array(mut parts) = value else {
            return Err("the payload is not an array".into());
        };
        if parts.len() != 3 || parts[0].as_u64() != Some(2) {
            return Err("the payload is not [2, level, [record]]".into());
        }
        if parts[1].as_str() != Some(level_name(topic)) {
            return Err("the payload's level differs from the topic".into());
        }
        let record = match parts.pop() {
            Some(Value::Array(mut params)) if params.len() == 1 => params.pop(),
            _ => None,
        }
        .ok_or("the params are not [record]")?;
        if !matches!(record, Value::Map(_)) {
            return Err("the record is not a map".into());
        }
        let get = |key: &str| record_get(&record, key);
        if get("level").and_then(Value::as_str) != Some(level_name(topic)) {
            return Err("the record's level differs from the topic".into());
        }
        for key in ["timestamp", "target", "event"] {
            if get(key).and_then(Value::as_str).is_none() {
                return Err(format!("the record has no string {key:?}"));
            }
        }
        let app = get("app")
            .and_then(Value::as_str)
            .ok_or("the record has no string \"app\"")?
            .to_owned();
        let pid = get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok());
        let seq = get("seq").and_then(Value::as_u64);
        Ok(LogRecord {
            level: topic,
            app,
            pid,
            seq,
            record,
        })
    }

    fn assert_judged_alike(frames: &[Vec<u8>]) {
        let got = LogRecord::decode(frames);
        match (reference(frames), got) {
            (Ok(want), Ok(got)) => {
                assert_eq!(got, want);
                let view = RecordView::parse(frames).unwrap();
                assert_eq!(Some(view.event), want.get("event").and_then(Value::as_str));
            }
            (Err(want), Err(got)) => {
                // Not-MessagePack reasons are worded by the scanner, the others alike.
                if codec::decode(&frames[1]).is_ok() && frames.len() == 2 {
                    assert_eq!(got.0, want, "{frames:02x?}");
                }
            }
            (want, got) => panic!("{frames:02x?}: reference {want:?}, view {got:?}"),
        }
    }

    fn message(record: Vec<(Value, Value)>) -> Vec<Vec<u8>> {
        let payload = Value::Array(vec![
            2.into(),
            "info".into(),
            Value::Array(vec![Value::Map(record)]),
        ]);
        vec![b"info".to_vec(), codec::encode(&payload)]
    }

    #[test]
    fn the_view_is_exactly_as_strict_as_decoding() {
        let base: Vec<(Value, Value)> = [
            ("timestamp", Value::from("t")),
            ("level", "info".into()),
            ("app", "a".into()),
            ("target", "x".into()),
            ("event", "e".into()),
            ("pid", 7.into()),
            ("seq", 9.into()),
            (
                "k",
                Value::Array(vec![Value::Map(vec![(1.into(), Value::Nil)])]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect();
        let with = |key: &str, v: Value| {
            let mut r = base.clone();
            for entry in &mut r {
                if entry.0.as_str() == Some(key) {
                    entry.1 = v.clone();
                }
            }
            message(r)
        };
        let mut cases = vec![
            message(base.clone()),
            with("pid", Value::from(u64::from(u32::MAX) + 1)),
            with("pid", Value::from(-1)),
            with("pid", Value::F64(7.0)),
            with("seq", Value::from(-3)),
            with("seq", Value::from(u64::MAX)),
            with("app", Value::Binary(b"a".to_vec())),
            with("app", Value::Nil),
            with("event", 1.into()),
            with("timestamp", Value::Array(Vec::new())),
            with("target", Value::Map(Vec::new())),
            with("level", "warn".into()),
            // A duplicate key: the first occurrence counts, as in a decoded map.
            message([base.clone(), vec![("app".into(), 5.into())]].concat()),
            message([vec![("app".into(), 5.into())], base.clone()].concat()),
            message([vec![("pid".into(), "x".into())], base.clone()].concat()),
            message(
                [
                    vec![(Value::Binary(b"app".to_vec()), 5.into())],
                    base.clone(),
                ]
                .concat(),
            ),
            message(base[1..].to_vec()),
            message(Vec::new()),
        ];
        // Integers in every width and signedness where the envelope reads them.
        let mut signed = message(base.clone());
        let at = signed[1].iter().rposition(|&b| b == 9).unwrap();
        signed[1].splice(at..=at, [0xd1, 0x00, 0x09]);
        cases.push(signed);
        // Invalid UTF-8 in a field nobody reads is kept, as decoding keeps it; in `app` it
        // is not a string.
        for key in ["k", "app"] {
            let mut m = with(key, "\u{1}\u{1}".into());
            let at = m[1].windows(2).position(|w| w == [1, 1]).unwrap();
            m[1][at] = 0xff;
            cases.push(m);
        }
        // Every payload shape around the record.
        for payload in [
            Value::Array(vec![
                Value::F64(2.0),
                "info".into(),
                Value::Array(vec![Value::Map(base.clone())]),
            ]),
            Value::Array(vec![
                2.into(),
                Value::Binary(b"info".to_vec()),
                Value::Array(vec![Value::Map(base.clone())]),
            ]),
            Value::Array(vec![
                2.into(),
                "info".into(),
                Value::Array(vec![Value::Map(base.clone()), Value::Nil]),
            ]),
            Value::Array(vec![2.into(), "info".into(), Value::Map(Vec::new())]),
            Value::Array(vec![
                2.into(),
                "info".into(),
                Value::Array(vec![Value::Nil]),
            ]),
            Value::Array(vec![2.into(), "info".into()]),
            Value::Map(Vec::new()),
        ] {
            cases.push(vec![b"info".to_vec(), codec::encode(&payload)]);
        }
        // Random corruptions of a real record, under every topic.
        let (_, good) = encode(&envelope(LogLevel::Info, 5), vec![("n", Value::from(1))]);
        let mut state = 1_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap()
        };
        for _ in 0..50_000 {
            let mut payload = good.clone();
            for _ in 0..=next() % 2 {
                let at = next() % payload.len();
                payload[at] = u8::try_from(next() % 256).unwrap();
            }
            let topic = ["info", "warn", "inf"][next() % 3];
            cases.push(vec![topic.as_bytes().to_vec(), payload]);
        }
        for frames in &cases {
            assert_judged_alike(frames);
        }
    }

    #[test]
    fn level_topics() {
        assert_eq!(
            topics_at_or_above(LogLevel::Warn),
            [b"warn" as &[u8], b"error"]
        );
        assert_eq!(topics_at_or_above(LogLevel::Trace).len(), 5);
        for l in [LogLevel::Trace, LogLevel::Error] {
            assert_eq!(parse_level(level_name(l)), Some(l));
        }
    }
}

//! The ring of recent records that `recent_logs` answers from.
//!
//! Records are kept encoded, as received, and decoded only when asked for: a push copies
//! the bytes into the buffers of the record it forgets, so once the ring is full keeping
//! a record allocates nothing.

use std::collections::VecDeque;

use pitcrew::codec::Value;
use pitcrew::logging::record::RecordView;
use pitcrew::options::LogLevel;

/// One kept record: what `recent` filters on, and the record map as received.
#[derive(Debug)]
struct Kept {
    level: LogLevel,
    app: String,
    record: Vec<u8>,
}

/// The last `capacity` records, oldest first.
#[derive(Debug)]
pub struct History {
    records: VecDeque<Kept>,
    capacity: usize,
}

impl History {
    /// An empty ring that keeps at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            records: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Adds a record, forgetting the oldest when full (and reusing its buffers).
    pub fn push(&mut self, record: &RecordView<'_>) {
        let mut kept = if self.records.len() == self.capacity {
            self.records.pop_front()
        } else {
            None
        }
        .unwrap_or_else(|| Kept {
            level: record.level,
            app: String::new(),
            record: Vec::new(),
        });
        kept.level = record.level;
        kept.app.clear();
        kept.app.push_str(record.app);
        kept.record.clear();
        kept.record.extend_from_slice(record.record.bytes());
        self.records.push_back(kept);
    }

    /// How many records are kept now.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many records it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The last `limit` records at or above `min_level` from `app` (any app when `None`),
    /// oldest first, as record maps.
    pub fn recent(&self, limit: usize, min_level: LogLevel, app: Option<&str>) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .records
            .iter()
            .rev()
            .filter(|r| r.level >= min_level && app.is_none_or(|a| r.app == a))
            .take(limit)
            // Checked when received, so decoding cannot fail; a record that did would be
            // left out rather than answered wrong.
            .filter_map(|r| pitcrew::codec::decode(&r.record).ok())
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::logging::record::{encode, Envelope};

    fn record(app: &str, level: LogLevel, n: u64) -> [Vec<u8>; 2] {
        let (topic, payload) = encode(
            &Envelope {
                time: std::time::UNIX_EPOCH,
                level,
                app,
                target: "t",
                event: "e",
                pid: 1,
                seq: n,
            },
            vec![("n", Value::from(n))],
        );
        [topic.as_bytes().to_vec(), payload]
    }

    fn ns(values: &[Value]) -> Vec<u64> {
        values
            .iter()
            .map(|v| {
                pitcrew::logging::record::record_get(v, "n")
                    .and_then(Value::as_u64)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn keeps_the_newest_and_filters_before_limiting() {
        let mut h = History::new(5);
        for n in 0..8 {
            let level = if n % 2 == 0 {
                LogLevel::Info
            } else {
                LogLevel::Warn
            };
            let app = if n < 4 { "a" } else { "b" };
            h.push(&RecordView::parse(&record(app, level, n)).unwrap());
        }
        assert_eq!(h.len(), 5);
        assert_eq!(ns(&h.recent(100, LogLevel::Trace, None)), [3, 4, 5, 6, 7]);
        assert_eq!(ns(&h.recent(2, LogLevel::Trace, None)), [6, 7]);
        assert_eq!(ns(&h.recent(100, LogLevel::Warn, None)), [3, 5, 7]);
        assert_eq!(ns(&h.recent(100, LogLevel::Trace, Some("a"))), [3]);
        assert!(h.recent(100, LogLevel::Error, None).is_empty());
    }
}

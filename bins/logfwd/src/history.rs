//! The ring of recent records that `recent_logs` answers from.

use std::collections::VecDeque;

use pitcrew::codec::Value;
use pitcrew::logging::record::LogRecord;
use pitcrew::options::LogLevel;

/// The last `capacity` records, oldest first.
#[derive(Debug)]
pub struct History {
    records: VecDeque<LogRecord>,
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

    /// Adds a record, forgetting the oldest when full.
    pub fn push(&mut self, record: LogRecord) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
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
            .map(|r| r.record.clone())
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::logging::record::{encode, Envelope};

    fn record(app: &str, level: LogLevel, n: u64) -> LogRecord {
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
        LogRecord::decode(&[topic.as_bytes().to_vec(), payload]).unwrap()
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
            h.push(record(app, level, n));
        }
        assert_eq!(h.len(), 5);
        assert_eq!(ns(&h.recent(100, LogLevel::Trace, None)), [3, 4, 5, 6, 7]);
        assert_eq!(ns(&h.recent(2, LogLevel::Trace, None)), [6, 7]);
        assert_eq!(ns(&h.recent(100, LogLevel::Warn, None)), [3, 5, 7]);
        assert_eq!(ns(&h.recent(100, LogLevel::Trace, Some("a"))), [3]);
        assert!(h.recent(100, LogLevel::Error, None).is_empty());
    }
}

//! What the forwarder counts: records in and out, malformed messages, and per publisher
//! (one process: app and pid) the records received, the records it reported dropping, and
//! the records lost on the way (gaps in its `seq`).
//!
//! Drops at the frontend, where libzmq's PUB discards records for a subscriber whose pipe
//! is full, are invisible to the forwarder; a subscriber sees them as `seq` gaps
//! (`pitcrew logs` reports them).

use std::collections::HashMap;
use std::time::Instant;

use pitcrew::codec::scan::RawValue;
use pitcrew::codec::Value;
use pitcrew::logging::record::{RecordView, DROPPED_FIELD, DROP_NOTICE};

/// How many publishers are remembered; past that the one silent the longest is forgotten,
/// so a stream of short-lived processes (CLI runs) cannot grow the table without bound.
pub const MAX_PUBLISHERS: usize = 1024;

/// Counters of one publisher.
#[derive(Debug, Clone)]
pub struct PublisherStats {
    /// Records received.
    pub records: u64,
    /// Records the publisher reported dropping (forwarder away or slow).
    pub dropped: u64,
    /// Records missing between the publisher and us (gaps in `seq`).
    pub lost: u64,
    last_seq: Option<u64>,
    last_seen: Instant,
}

/// All counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Well-formed records received.
    pub records_in: u64,
    /// Records handed to the frontend socket.
    pub records_out: u64,
    /// Messages on the backend that were not log records.
    pub malformed: u64,
    /// By app, then pid: looked up with the record's `&str`, so counting a record
    /// allocates nothing.
    publishers: HashMap<String, HashMap<u32, PublisherStats>>,
    publisher_count: usize,
}

impl Stats {
    /// Counts a well-formed record received from its publisher.
    pub fn received(&mut self, record: &RecordView<'_>) {
        self.records_in += 1;
        let pid = record.pid.unwrap_or(0);
        let known = self
            .publishers
            .get(record.app)
            .is_some_and(|pids| pids.contains_key(&pid));
        if !known {
            if self.publisher_count >= MAX_PUBLISHERS {
                self.forget_quietest();
            }
            self.publisher_count += 1;
        }
        let pids = match self.publishers.get_mut(record.app) {
            Some(pids) => pids,
            None => self.publishers.entry(record.app.to_owned()).or_default(),
        };
        let entry = pids.entry(pid).or_insert(PublisherStats {
            records: 0,
            dropped: 0,
            lost: 0,
            last_seq: None,
            last_seen: Instant::now(),
        });
        entry.records += 1;
        entry.last_seen = Instant::now();
        if let Some(seq) = record.seq {
            if let Some(last) = entry.last_seq {
                entry.lost += seq.saturating_sub(last.saturating_add(1));
            }
            entry.last_seq = Some(seq);
        }
        if record.event == DROP_NOTICE {
            if let Some(n) = record.get(DROPPED_FIELD).and_then(RawValue::as_u64) {
                entry.dropped += n;
            }
        }
    }

    fn forget_quietest(&mut self) {
        let quietest = self
            .publishers
            .iter()
            .flat_map(|(app, pids)| pids.iter().map(move |(pid, s)| (app, *pid, s.last_seen)))
            .min_by_key(|(_, _, seen)| *seen)
            .map(|(app, pid, _)| (app.clone(), pid));
        if let Some((app, pid)) = quietest {
            if let Some(pids) = self.publishers.get_mut(&app) {
                pids.remove(&pid);
                if pids.is_empty() {
                    self.publishers.remove(&app);
                }
            }
            self.publisher_count -= 1;
        }
    }

    /// The counters as the entries of the map the `stats` RPC returns.
    pub fn entries(&self) -> Vec<(Value, Value)> {
        let mut publishers: Vec<(&String, u32, &PublisherStats)> = self
            .publishers
            .iter()
            .flat_map(|(app, pids)| pids.iter().map(move |(pid, s)| (app, *pid, s)))
            .collect();
        publishers.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let publishers = publishers
            .into_iter()
            .map(|(app, pid, s)| {
                Value::Map(vec![
                    ("app".into(), app.as_str().into()),
                    ("pid".into(), pid.into()),
                    ("records".into(), s.records.into()),
                    ("dropped".into(), s.dropped.into()),
                    ("lost".into(), s.lost.into()),
                    (
                        "last_seen_s".into(),
                        Value::F64(s.last_seen.elapsed().as_secs_f64()),
                    ),
                ])
            })
            .collect();
        vec![
            ("records_in".into(), self.records_in.into()),
            ("records_out".into(), self.records_out.into()),
            ("malformed".into(), self.malformed.into()),
            (
                "refused_connections".into(),
                pitcrew::endpoint::curve::refused_connections().into(),
            ),
            ("publishers".into(), Value::Array(publishers)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::logging::record::{encode, record_get, Envelope};
    use pitcrew::options::LogLevel;

    fn record(pid: u32, seq: u64, event: &str, dropped: Option<u64>) -> [Vec<u8>; 2] {
        let fields: Vec<(&str, Value)> = dropped
            .map(|n| vec![(DROPPED_FIELD, Value::from(n))])
            .unwrap_or_default();
        let (topic, payload) = encode(
            &Envelope {
                time: std::time::UNIX_EPOCH,
                level: LogLevel::Info,
                app: "a",
                target: "t",
                event,
                pid,
                seq,
            },
            fields,
        );
        [topic.as_bytes().to_vec(), payload]
    }

    fn receive(stats: &mut Stats, frames: &[Vec<u8>; 2]) {
        stats.received(&RecordView::parse(frames).unwrap());
    }

    #[test]
    fn gaps_and_drop_notices_are_counted_per_publisher() {
        let mut stats = Stats::default();
        for seq in [0, 1, 5, 6] {
            receive(&mut stats, &record(7, seq, "x", None));
        }
        receive(&mut stats, &record(7, 7, DROP_NOTICE, Some(40)));
        receive(&mut stats, &record(8, 100, "x", None));
        let v = Value::Map(stats.entries());
        assert_eq!(record_get(&v, "records_in"), Some(&Value::from(6)));
        let Some(Value::Array(publishers)) = record_get(&v, "publishers") else {
            panic!("{v}")
        };
        assert_eq!(record_get(&publishers[0], "pid"), Some(&Value::from(7)));
        assert_eq!(record_get(&publishers[0], "lost"), Some(&Value::from(3)));
        assert_eq!(
            record_get(&publishers[0], "dropped"),
            Some(&Value::from(40))
        );
        assert_eq!(record_get(&publishers[1], "lost"), Some(&Value::from(0)));
    }

    #[test]
    fn the_publisher_table_is_bounded() {
        let mut stats = Stats::default();
        for pid in 0..(MAX_PUBLISHERS as u32 + 10) {
            receive(&mut stats, &record(pid, 0, "x", None));
        }
        assert_eq!(stats.publisher_count, MAX_PUBLISHERS);
        let listed: usize = stats.publishers.values().map(HashMap::len).sum();
        assert_eq!(listed, MAX_PUBLISHERS);
    }
}

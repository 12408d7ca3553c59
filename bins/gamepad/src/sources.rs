//! Per-source bookkeeping of the receiver: the last applied `seq` (to drop reordered and
//! duplicated datagrams), counters for `status`, and "log once per source per minute".
//!
//! A source is the `meta.source` of a datagram, or its sender's address when it has no meta
//! or was rejected before its meta could be trusted. The table is bounded: past
//! [`MAX_SOURCES`] the source heard from least recently is forgotten.
//!
//! **What `seq` may do.** Only unsealed datagrams (a robot without a team key, from
//! loopback) are ordered by their `meta.seq`, and nothing vouches for it: any process on the
//! machine can send a datagram under a live driver's name with `seq` 2^64−1. So `seq` only
//! drops what UDP reorders or duplicates, which arrives within milliseconds of the datagram
//! it trails: a datagram not above the last applied `seq` is dropped only within
//! [`REORDER_SPAN`] of the last applied one, and taken after that (its `seq` becomes the
//! last). One forged datagram then holds a live sender back for at most [`REORDER_SPAN`],
//! a quarter of the default control timeout, instead of for as long as it keeps sending. A
//! restarted sender that reuses its name is taken back as quickly. Sealed datagrams are
//! ordered by their authenticated session counter instead (`pitcrew::control::auth`),
//! strictly, since there the order is what stops a replay: a counter cannot be forged
//! without the key, and a new session of the name is taken at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many sources are remembered. A robot has one or two drivers' stations; the bound
/// only keeps a spoofing sender from growing the table.
pub const MAX_SOURCES: usize = 64;
/// How often a misbehaving source may be logged (spec: once per source per minute).
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How long after a source's last applied datagram one whose `seq` is not above it is taken
/// for reordered or duplicated by the network, and dropped; later, it is taken (module
/// docs). Long against reordering on a LAN (milliseconds), well within the control timeout
/// (100 ms by default), so that one forged `seq` cannot make the watchdog trip.
pub const REORDER_SPAN: Duration = Duration::from_millis(25);

/// What is known about one source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Last applied seq, if the source sends meta.
    pub last_seq: Option<u64>,
    /// When the last datagram (valid or not) arrived.
    pub last_seen: Instant,
    /// When the last datagram was applied.
    pub last_applied: Option<Instant>,
    /// Datagrams received (all).
    pub received: u64,
    /// Datagrams dropped as malformed, oversized or out of range.
    pub dropped: u64,
    /// Datagrams dropped because their seq was not newer (reordered or duplicated).
    pub reordered: u64,
    /// Datagrams whose gamepads were ignored: another station held the enable.
    pub ignored: u64,
    /// When this source was last logged about, for rate limiting.
    last_logged: Option<Instant>,
    /// Rejections since that log line, reported with the next one.
    unlogged: u64,
}

/// The verdict on a datagram's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Newer than anything applied: apply it.
    Apply,
    /// Not newer: drop it.
    Stale,
}

/// The bounded table of sources.
#[derive(Debug, Default)]
pub struct Sources {
    map: HashMap<String, Source>,
}

impl Sources {
    /// The entry of `name`, created (evicting the stalest when full) on first sight, with
    /// its `received` counted.
    fn touch(&mut self, name: &str, now: Instant) -> &mut Source {
        if self.map.len() >= MAX_SOURCES && !self.map.contains_key(name) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        let entry = self.map.entry(name.to_owned()).or_insert(Source {
            last_seq: None,
            last_seen: now,
            last_applied: None,
            received: 0,
            dropped: 0,
            reordered: 0,
            ignored: 0,
            last_logged: None,
            unlogged: 0,
        });
        entry.received += 1;
        entry
    }

    /// Records a datagram of `name` with `seq` (None for meta-less and sealed senders,
    /// always applied) and says whether to apply it. An applied seq becomes the source's
    /// last; one not above it is stale only within [`REORDER_SPAN`] of the last applied.
    pub fn check_seq(&mut self, name: &str, seq: Option<u64>, now: Instant) -> SeqVerdict {
        let src = self.touch(name, now);
        src.last_seen = now;
        let recent = src
            .last_applied
            .is_some_and(|t| now.saturating_duration_since(t) < REORDER_SPAN);
        let verdict = match (seq, src.last_seq) {
            (Some(seq), Some(last)) if seq <= last && recent => {
                src.reordered += 1;
                SeqVerdict::Stale
            }
            _ => SeqVerdict::Apply,
        };
        if verdict == SeqVerdict::Apply {
            if seq.is_some() {
                src.last_seq = seq;
            }
            src.last_applied = Some(now);
        }
        verdict
    }

    /// Records a rejected datagram of `name`; returns `Some(n)` when it should be logged
    /// now, `n` being the rejections since the previous log line (including this one).
    /// `counted` says the datagram was already counted as received (by
    /// [`Sources::check_seq`]).
    pub fn reject(&mut self, name: &str, now: Instant, counted: bool) -> Option<u64> {
        let src = self.touch(name, now);
        if counted {
            src.received -= 1;
        }
        src.last_seen = now;
        src.dropped += 1;
        src.unlogged += 1;
        let due = src
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL);
        if due {
            src.last_logged = Some(now);
            let n = src.unlogged;
            src.unlogged = 0;
            Some(n)
        } else {
            None
        }
    }

    /// Counts a datagram of `name` whose gamepads were ignored (another station held the
    /// enable); `name` was just checked, so it is in the table.
    pub fn ignored(&mut self, name: &str) {
        if let Some(src) = self.map.get_mut(name) {
            src.ignored += 1;
        }
    }

    /// Every remembered source, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Source)> {
        self.map.iter()
    }

    /// Number of sources remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no source was heard from.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_and_duplicated_are_dropped() {
        let mut s = Sources::default();
        let t = Instant::now();
        assert_eq!(s.check_seq("a", Some(5), t), SeqVerdict::Apply);
        assert_eq!(s.check_seq("a", Some(5), t), SeqVerdict::Stale);
        assert_eq!(s.check_seq("a", Some(4), t), SeqVerdict::Stale);
        assert_eq!(s.check_seq("a", Some(6), t), SeqVerdict::Apply);
        assert_eq!(s.check_seq("b", Some(1), t), SeqVerdict::Apply);
        assert_eq!(s.check_seq("a", None, t), SeqVerdict::Apply);
        let a = s.iter().find(|(k, _)| *k == "a").unwrap().1;
        assert_eq!((a.received, a.reordered, a.last_seq), (5, 2, Some(6)));
    }

    #[test]
    fn a_restarted_sender_is_taken_back_after_the_reorder_span() {
        let mut s = Sources::default();
        let t = Instant::now();
        assert_eq!(s.check_seq("a", Some(500), t), SeqVerdict::Apply);
        let later = t + REORDER_SPAN;
        assert_eq!(s.check_seq("a", Some(1), later), SeqVerdict::Apply);
    }

    #[test]
    fn one_forged_maximum_seq_holds_a_live_sender_back_for_the_reorder_span_only() {
        let mut s = Sources::default();
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        assert_eq!(s.check_seq("driver", Some(10), at(0)), SeqVerdict::Apply);
        assert_eq!(
            s.check_seq("driver", Some(u64::MAX), at(5)),
            SeqVerdict::Apply
        );
        // The live sender goes on at 50 Hz: its next datagram is within the span of the
        // forged one and dropped, the one after is taken, and so is every later one.
        assert_eq!(s.check_seq("driver", Some(11), at(20)), SeqVerdict::Stale);
        assert_eq!(s.check_seq("driver", Some(12), at(40)), SeqVerdict::Apply);
        assert_eq!(s.check_seq("driver", Some(13), at(60)), SeqVerdict::Apply);
        assert_eq!(s.check_seq("driver", Some(12), at(61)), SeqVerdict::Stale);
    }

    #[test]
    fn logging_is_rate_limited_and_the_table_bounded() {
        let mut s = Sources::default();
        let t = Instant::now();
        assert_eq!(s.reject("x", t, false), Some(1));
        assert_eq!(s.reject("x", t, false), None);
        assert_eq!(s.reject("x", t + LOG_INTERVAL, false), Some(2));
        for i in 0..(MAX_SOURCES * 2) {
            s.reject(
                &format!("spoof{i}"),
                t + Duration::from_millis(i as u64),
                false,
            );
        }
        assert_eq!(s.len(), MAX_SOURCES);
    }
}

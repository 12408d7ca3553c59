//! Refusals of unauthenticated or malformed input, counted always and logged at a bounded
//! rate.
//!
//! Anyone on the event network can knock on a robot's ports: a wrong dashboard token, a
//! CURVE connection with an unknown key, junk datagrams. Logging one line per knock lets a
//! stranger fill the log forwarder's history (and the disk) and hide what matters, so a
//! [`Refusals`] logs the first refusal of each window from a handful of sources with its
//! reason, and after the window one summary line per source it kept quiet about, at the
//! next refusal: "N refused from ADDR in the last 10 s" (the span since the window began).
//! Every refusal is still counted ([`total`]), and services report the count.
//!
//! [`total`]: Refusals::total

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long one window is: a summary of what was kept quiet comes at most this often.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How many refusals a window logs on their own (each from another source), before only
/// the summary speaks: enough to see who knocks, too few to flood.
pub const FIRST_LINES: usize = 4;
/// How many sources one window keeps a count of. Past it, refusals are counted under
/// "other sources": a sender that varies its address cannot grow the table.
pub const MAX_SOURCES: usize = 32;

/// The refusals of one kind (`what`: "dashboard logins", "CURVE connections") in windows of
/// [`WINDOW`]. Not shared between threads by itself: wrap it in a `Mutex` when needed.
#[derive(Debug)]
pub struct Refusals {
    what: &'static str,
    window: Duration,
    started: Option<Instant>,
    /// Per source, the refusals of this window not yet logged.
    quiet: HashMap<String, u64>,
    /// Refusals of this window from sources beyond [`MAX_SOURCES`].
    others: u64,
    /// Lines logged on their own in this window.
    lines: usize,
    total: u64,
}

/// What [`Refusals::refuse`] did with one refusal (returned so tests can see it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Logged on its own, with its reason.
    Line,
    /// Counted for the window's summary.
    Quiet,
}

impl Refusals {
    /// Refusals of `what`, summarised every [`WINDOW`].
    pub fn new(what: &'static str) -> Refusals {
        Refusals::with_window(what, WINDOW)
    }

    /// As [`Refusals::new`] with another window (tests).
    pub fn with_window(what: &'static str, window: Duration) -> Refusals {
        Refusals {
            what,
            window,
            started: None,
            quiet: HashMap::new(),
            others: 0,
            lines: 0,
            total: 0,
        }
    }

    /// Counts one refusal of input from `from` (an address, a key) for `reason`, and logs
    /// it now, in the window's summary, or (past [`MAX_SOURCES`]) in the summary's count of
    /// other sources.
    pub fn refuse(&mut self, from: &str, reason: &str) -> Logged {
        self.refuse_at(from, reason, Instant::now())
    }

    /// As [`Refusals::refuse`], at `now`.
    pub fn refuse_at(&mut self, from: &str, reason: &str, now: Instant) -> Logged {
        self.total += 1;
        self.roll(now);
        if self.lines < FIRST_LINES && !self.quiet.contains_key(from) {
            self.lines += 1;
            self.quiet.insert(from.to_owned(), 0);
            tracing::warn!(from, reason, what = self.what, "refused");
            return Logged::Line;
        }
        let room = self.quiet.len() < MAX_SOURCES;
        match self.quiet.get_mut(from) {
            Some(n) => *n += 1,
            None if room => {
                self.quiet.insert(from.to_owned(), 1);
            }
            None => self.others += 1,
        }
        Logged::Quiet
    }

    /// Every refusal counted since the start.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Ends the window when it is over: one summary line per source with refusals not yet
    /// logged, and one for the other sources.
    fn roll(&mut self, now: Instant) {
        let Some(started) = self.started else {
            self.started = Some(now);
            return;
        };
        let elapsed = now.duration_since(started);
        if elapsed < self.window {
            return;
        }
        // Written at the first refusal after the window (a flood that stopped is summed up
        // when the next one comes), so the span is the real one, not the window's.
        let seconds = elapsed.as_secs();
        for (from, count) in self.quiet.drain() {
            if count > 0 {
                tracing::warn!(from = %from, count, what = self.what, "{count} refused from {from} in the last {seconds} s");
            }
        }
        if self.others > 0 {
            let count = self.others;
            tracing::warn!(
                count,
                what = self.what,
                "{count} refused from other sources in the last {seconds} s"
            );
        }
        self.others = 0;
        self.lines = 0;
        self.started = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_source_is_one_line_then_a_summary() {
        let mut r = Refusals::with_window("tests", Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.refuse_at("10.0.0.9", "bad token", t0), Logged::Line);
        for _ in 0..10_000 {
            assert_eq!(r.refuse_at("10.0.0.9", "bad token", t0), Logged::Quiet);
        }
        assert_eq!(r.total(), 10_001);
        // The next window logs its first refusal again (after the summary of the last).
        let later = t0 + Duration::from_secs(11);
        assert_eq!(r.refuse_at("10.0.0.9", "bad token", later), Logged::Line);
    }

    #[test]
    fn many_sources_are_bounded_in_lines_and_memory() {
        let mut r = Refusals::with_window("tests", Duration::from_secs(10));
        let t0 = Instant::now();
        let lines = (0..10_000)
            .filter(|i| {
                r.refuse_at(&format!("10.0.{}.{}", i / 256, i % 256), "x", t0) == Logged::Line
            })
            .count();
        assert_eq!(lines, FIRST_LINES);
        assert!(r.quiet.len() <= MAX_SOURCES);
        assert_eq!(r.others, 10_000 - MAX_SOURCES as u64);
        assert_eq!(r.total(), 10_000);
    }
}

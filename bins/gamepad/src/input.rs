//! Where a sender's gamepad states come from: [`crate::gilrs_input`] (real gamepads),
//! [`Replay`] (a recording) or [`NoInput`] (no input subsystem). Each waits for a change up
//! to a deadline, so the send loop needs no timer of its own.

use std::time::{Duration, Instant};

use crate::record::{Frame, Snapshot};

/// What happened while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The snapshot changed: send at once.
    Changed,
    /// Nothing changed before the deadline.
    Idle,
    /// The input has ended (a replay without `--loop`).
    Finished,
}

/// A source of gamepad states.
pub trait Input {
    /// Waits until `deadline` at most for a change.
    fn poll(&mut self, deadline: Instant) -> Poll;
    /// The current states, by index.
    fn snapshot(&self) -> &Snapshot;
}

/// No gamepads, ever: the sender idles (or sends neutral with `--neutral`).
#[derive(Debug, Default)]
pub struct NoInput {
    empty: Snapshot,
}

impl Input for NoInput {
    fn poll(&mut self, deadline: Instant) -> Poll {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        Poll::Idle
    }

    fn snapshot(&self) -> &Snapshot {
        &self.empty
    }
}

/// The least time one pass of a looped replay takes, so a recording whose frames all have
/// the same time does not spin.
const MIN_LOOP: Duration = Duration::from_millis(20);

/// A recording played back with its timing.
#[derive(Debug)]
pub struct Replay {
    frames: Vec<Frame>,
    next: usize,
    start: Instant,
    looping: bool,
    current: Snapshot,
}

impl Replay {
    /// Plays `frames` from now; again and again when `looping`.
    pub fn new(frames: Vec<Frame>, looping: bool) -> Replay {
        Replay {
            frames,
            next: 0,
            start: Instant::now(),
            looping,
            current: Snapshot::new(),
        }
    }
}

impl Input for Replay {
    fn poll(&mut self, deadline: Instant) -> Poll {
        if self.next >= self.frames.len() {
            if !self.looping || self.frames.is_empty() {
                return Poll::Finished;
            }
            let length = self.frames.last().map_or(MIN_LOOP, |f| f.at.max(MIN_LOOP));
            self.start += length;
            self.next = 0;
        }
        let Some(frame) = self.frames.get(self.next) else {
            return Poll::Finished;
        };
        let due = self.start + frame.at;
        if due > deadline {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            return Poll::Idle;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        self.next += 1;
        if frame.gamepads == self.current {
            Poll::Idle
        } else {
            self.current.clone_from(&frame.gamepads);
            Poll::Changed
        }
    }

    fn snapshot(&self) -> &Snapshot {
        &self.current
    }
}

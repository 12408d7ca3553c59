//! [`HeartbeatTable`]: the HB_REQs a session has sent and not yet seen answered, so that an
//! HB_RES can be matched to its request and, for a `heartbeat` RPC, report the round trip.
//!
//! The session sends one HB_REQ per heartbeat tick of its own (liveness: the answer is a
//! valid frame) and one per `heartbeat` RPC; only the RPC's waits for the time it took. An
//! HB_REQ's id is a u8, so the table is bounded at 256 entries: a request the device never
//! answers is simply overwritten 256 requests later.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How many heartbeat ids there are (an HB_REQ's id is one byte).
const IDS: usize = 256;

/// In-flight heartbeats by id.
#[derive(Debug)]
pub struct HeartbeatTable {
    /// The id of the next HB_REQ (wraps around).
    next: u8,
    /// When each id was sent, and where to report its round trip (RPC heartbeats only).
    sent: Vec<Option<(Instant, Option<oneshot::Sender<Duration>>)>>,
}

impl Default for HeartbeatTable {
    fn default() -> Self {
        HeartbeatTable {
            next: 0,
            sent: (0..IDS).map(|_| None).collect(),
        }
    }
}

impl HeartbeatTable {
    /// Records an HB_REQ sent now, whose round trip goes to `reply` (if any); returns the
    /// id to send it with.
    pub fn start(&mut self, reply: Option<oneshot::Sender<Duration>>) -> u8 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if let Some(slot) = self.sent.get_mut(usize::from(id)) {
            *slot = Some((Instant::now(), reply));
        }
        id
    }

    /// The device answered HB_REQ `id`: reports the round trip to whoever asked for it. An
    /// id not in flight (answered twice, or never sent) is ignored.
    pub fn finish(&mut self, id: u8) {
        if let Some((at, Some(reply))) = self.sent.get_mut(usize::from(id)).and_then(Option::take) {
            let _ = reply.send(at.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reports_the_round_trip_once_and_ids_wrap() {
        let mut table = HeartbeatTable::default();
        let (reply, mut rx) = oneshot::channel();
        let id = table.start(Some(reply));
        assert_eq!(id, 0);
        table.finish(id);
        assert!(rx.try_recv().is_ok());
        // A second answer to the same id finds nothing to report to.
        table.finish(id);
        for expected in 1..=255u8 {
            assert_eq!(table.start(None), expected);
        }
        assert_eq!(table.start(None), 0);
    }
}

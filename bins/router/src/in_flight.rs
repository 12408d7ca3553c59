//! Requests the router forwarded from each client to each service and has not yet seen
//! answered: the per-pair count behind [`crate::broker::MAX_IN_FLIGHT_PER_PAIR`], and the
//! total that tells the routing loop whether anyone is waiting for an answer soon.

use std::collections::HashMap;

use crate::peers::Side;

/// Requests in flight per (client, service) pair, looked up without allocating.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pairs: HashMap<Vec<u8>, HashMap<Vec<u8>, u32>>,
    /// The sum over all pairs.
    total: usize,
}

impl InFlight {
    /// Requests from `client` to `service` not yet answered.
    pub(crate) fn count(&self, client: &[u8], service: &[u8]) -> u32 {
        self.pairs
            .get(client)
            .and_then(|m| m.get(service))
            .copied()
            .unwrap_or(0)
    }

    /// Requests not yet answered, over all pairs.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// A request from `client` was forwarded to `service`.
    pub(crate) fn sent(&mut self, client: &[u8], service: &[u8]) {
        let per_client = match self.pairs.get_mut(client) {
            Some(m) => m,
            None => self.pairs.entry(client.to_vec()).or_default(),
        };
        match per_client.get_mut(service) {
            Some(n) => *n += 1,
            None => {
                per_client.insert(service.to_vec(), 1);
            }
        }
        self.total += 1;
    }

    /// `service` answered one of `client`'s requests (a response for a pair with nothing
    /// in flight, e.g. after a restart, changes nothing).
    pub(crate) fn answered(&mut self, client: &[u8], service: &[u8]) {
        let Some(per_client) = self.pairs.get_mut(client) else {
            return;
        };
        if let Some(n) = per_client.get_mut(service) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                per_client.remove(service);
            }
        }
        if per_client.is_empty() {
            self.pairs.remove(client);
        }
    }

    /// A peer left: its requests will never be answered, or its answers never read.
    pub(crate) fn forget(&mut self, side: Side, identity: &[u8]) {
        match side {
            Side::Client => {
                if let Some(per_client) = self.pairs.remove(identity) {
                    self.total -= per_client.values().map(|n| *n as usize).sum::<usize>();
                }
            }
            Side::Service => {
                let mut removed = 0;
                self.pairs.retain(|_, per_client| {
                    removed += per_client.remove(identity).map_or(0, |n| n as usize);
                    !per_client.is_empty()
                });
                self.total -= removed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_follows_every_pair() {
        let mut f = InFlight::default();
        f.sent(b"c1", b"s1");
        f.sent(b"c1", b"s1");
        f.sent(b"c1", b"s2");
        f.sent(b"c2", b"s1");
        assert_eq!((f.count(b"c1", b"s1"), f.total()), (2, 4));
        f.answered(b"c1", b"s1");
        // An answer nobody waits for changes nothing.
        f.answered(b"c3", b"s1");
        f.answered(b"c1", b"s3");
        assert_eq!((f.count(b"c1", b"s1"), f.total()), (1, 3));
        f.forget(Side::Service, b"s1");
        assert_eq!(
            (f.count(b"c1", b"s1"), f.count(b"c2", b"s1"), f.total()),
            (0, 0, 1)
        );
        f.forget(Side::Client, b"c1");
        assert_eq!(f.total(), 0);
        assert!(f.pairs.is_empty());
    }
}

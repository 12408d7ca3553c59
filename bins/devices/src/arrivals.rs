//! [`Arrivals`]: which params each DEV_DATA of a device brought, in arrival order, so that
//! a `read` RPC can return values the device sent *after* it was asked
//! ([`crate::fresh_read`]).
//!
//! Why not the buffer's `update` bits or its last-update timestamp: the update publisher
//! takes-and-clears the `update` bits every 50 ms, and the timestamp is one per buffer, not
//! per param, so neither can say "all of these params arrived since I asked". The session
//! already holds every DEV_DATA in hand, so it stamps the params it stored here, in the
//! broker process, at no cost to the shared-memory layout.

/// A Smart Device has at most 16 params (spec: a params bitmap is a u16).
const MAX_PARAMS: usize = 16;

/// Per-param arrival stamps of one device: `last[i]` is the stamp of the DEV_DATA that
/// last carried param `i`; stamps count DEV_DATA messages since the broker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrivals {
    stamp: u64,
    last: [u64; MAX_PARAMS],
}

impl Arrivals {
    /// Records one DEV_DATA carrying the params of `bits`.
    pub fn record(&mut self, bits: u64) {
        self.stamp += 1;
        for (i, slot) in self.last.iter_mut().enumerate() {
            if bits & (1 << i) != 0 {
                *slot = self.stamp;
            }
        }
    }

    /// The stamp of the latest DEV_DATA (0 before the first).
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Whether every param of `bits` arrived after the DEV_DATA stamped `since`.
    pub fn all_since(&self, bits: u64, since: u64) -> bool {
        self.last
            .iter()
            .enumerate()
            .all(|(i, &at)| bits & (1 << i) == 0 || at > since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_say_which_params_came_after_a_stamp() {
        let mut a = Arrivals::default();
        a.record(0b011);
        let since = a.stamp();
        assert!(!a.all_since(0b001, since));
        a.record(0b001);
        assert!(a.all_since(0b001, since));
        assert!(!a.all_since(0b011, since));
        a.record(0b110);
        assert!(a.all_since(0b111, since));
        assert!(a.all_since(0, since));
    }
}

//! The router's table of peers: who is connected on which side, since when, how busy.
//!
//! libzmq tells the router about connections only as file descriptors (socket monitor) and
//! about identities only when a message arrives. Each message carries its connection's
//! descriptor, so the table keeps identity → descriptor, and a `Disconnected(fd)` event
//! removes the identity currently on that descriptor. The ROUTER runs without
//! ROUTER_HANDOVER, so an identity moves to a new descriptor only once its old connection
//! is gone (a restarted service); should the old connection's disconnect be reported after
//! the new one's first message, it does not remove the identity.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use pitcrew::codec::Value;

/// Which socket a peer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Frontend: clients.
    Client,
    /// Backend: services.
    Service,
}

impl Side {
    /// The name used in `list_peers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Service => "service",
        }
    }
}

/// One connected peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Wall-clock time of its first message on this connection.
    pub connected_since: SystemTime,
    /// Monotonic time of its last message.
    pub last_seen: Instant,
    /// Messages received from it.
    pub messages_in: u64,
    /// Messages delivered to it.
    pub messages_out: u64,
    fd: Option<i32>,
}

/// All peers of both sides.
#[derive(Debug, Default)]
pub struct Peers {
    clients: HashMap<Vec<u8>, Peer>,
    services: HashMap<Vec<u8>, Peer>,
    by_fd: HashMap<(Side, i32), Vec<u8>>,
}

impl Peers {
    fn side(&self, side: Side) -> &HashMap<Vec<u8>, Peer> {
        match side {
            Side::Client => &self.clients,
            Side::Service => &self.services,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut HashMap<Vec<u8>, Peer> {
        match side {
            Side::Client => &mut self.clients,
            Side::Service => &mut self.services,
        }
    }

    /// Records a message from `identity` arriving on connection `fd`. Allocates only for a
    /// peer not seen before.
    pub fn seen(&mut self, side: Side, identity: &[u8], fd: Option<i32>) {
        let now = Instant::now();
        let moved = match self.side_mut(side).get_mut(identity) {
            Some(peer) => {
                peer.last_seen = now;
                peer.messages_in += 1;
                if peer.fd != fd {
                    // A new connection took this identity over: start afresh.
                    peer.fd = fd;
                    peer.connected_since = SystemTime::now();
                    true
                } else {
                    false
                }
            }
            None => {
                self.side_mut(side).insert(
                    identity.to_vec(),
                    Peer {
                        connected_since: SystemTime::now(),
                        last_seen: now,
                        messages_in: 1,
                        messages_out: 0,
                        fd,
                    },
                );
                true
            }
        };
        if moved {
            if let Some(fd) = fd {
                self.by_fd.insert((side, fd), identity.to_vec());
            }
        }
    }

    /// Records a message delivered to `identity`.
    pub fn delivered(&mut self, side: Side, identity: &[u8]) {
        if let Some(peer) = self.side_mut(side).get_mut(identity) {
            peer.messages_out += 1;
        }
    }

    /// Forgets the peer on connection `fd`, unless its identity has moved to another one.
    /// Returns the identity removed.
    pub fn disconnected(&mut self, side: Side, fd: i32) -> Option<Vec<u8>> {
        let identity = self.by_fd.remove(&(side, fd))?;
        let peers = self.side_mut(side);
        if peers.get(&identity).is_some_and(|p| p.fd == Some(fd)) {
            peers.remove(&identity);
            return Some(identity);
        }
        None
    }

    /// Forgets a peer that libzmq says is unreachable.
    pub fn unreachable(&mut self, side: Side, identity: &[u8]) {
        if let Some(peer) = self.side_mut(side).remove(identity) {
            if let Some(fd) = peer.fd {
                self.by_fd.remove(&(side, fd));
            }
        }
    }

    /// How many peers are on `side`.
    pub fn count(&self, side: Side) -> usize {
        self.side(side).len()
    }

    /// The `list_peers` answer: one map per peer, services first, then by identity.
    pub fn to_value(&self) -> Value {
        // Services first, then clients, each by identity.
        let mut rows: Vec<(Side, &Vec<u8>, &Peer)> = Vec::new();
        for side in [Side::Service, Side::Client] {
            let mut these: Vec<_> = self.side(side).iter().map(|(i, p)| (side, i, p)).collect();
            these.sort_by(|a, b| a.1.cmp(b.1));
            rows.extend(these);
        }
        let now = Instant::now();
        Value::Array(
            rows.into_iter()
                .map(|(side, identity, peer)| {
                    let since = peer
                        .connected_since
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_default();
                    Value::Map(vec![
                        (
                            "identity".into(),
                            String::from_utf8_lossy(identity).as_ref().into(),
                        ),
                        ("side".into(), side.as_str().into()),
                        ("connected_since".into(), since.into()),
                        (
                            "last_seen_s".into(),
                            now.duration_since(peer.last_seen).as_secs_f64().into(),
                        ),
                        ("messages_in".into(), peer.messages_in.into()),
                        ("messages_out".into(), peer.messages_out.into()),
                    ])
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_removes_only_the_identity_still_on_that_connection() {
        let mut peers = Peers::default();
        peers.seen(Side::Service, b"device-service", Some(7));
        // The service restarts and takes its identity over on a new connection...
        peers.seen(Side::Service, b"device-service", Some(9));
        // ...then the old connection's disconnect is reported: the service stays.
        assert_eq!(peers.disconnected(Side::Service, 7), None);
        assert_eq!(peers.count(Side::Service), 1);
        assert_eq!(
            peers.disconnected(Side::Service, 9).as_deref(),
            Some(&b"device-service"[..])
        );
        assert_eq!(peers.count(Side::Service), 0);
    }

    #[test]
    fn sides_are_separate() {
        let mut peers = Peers::default();
        peers.seen(Side::Client, b"a", Some(3));
        peers.seen(Side::Service, b"a", Some(3));
        assert_eq!(
            peers.disconnected(Side::Client, 3).as_deref(),
            Some(&b"a"[..])
        );
        assert_eq!(peers.count(Side::Service), 1);
    }
}

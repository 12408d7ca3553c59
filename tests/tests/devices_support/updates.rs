//! An in-process listener of the broker's device-update multicast (`spec/wire.md`), so a
//! test can time the moment it joined and inspect every datagram (a `pitcrew watch`
//! process would add its own start-up time to every measurement).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use pitcrew::codec::{self, to_json};
use serde_json::Value as Json;
use tokio::net::UdpSocket;

use super::{Broker, GROUP};

/// One decoded `[2, "update", [devices, meta]]` datagram.
#[derive(Debug, Clone)]
pub struct Update {
    /// UID → `{param: value}`.
    pub devices: serde_json::Map<String, Json>,
    /// `seq`, `sent_us`, `full`, `part`, `parts`.
    pub meta: Json,
    /// Size on the wire.
    pub len: usize,
}

impl Update {
    /// Whether this is (part of) a full snapshot.
    pub fn is_full(&self) -> bool {
        self.meta["full"] == true
    }
}

/// A socket joined to the broker's update group on 127.0.0.1.
pub struct Listener {
    socket: UdpSocket,
    /// When the join returned: the listener can receive from this instant on.
    pub joined_at: Instant,
}

impl Listener {
    /// Joins `broker`'s group (binds its port, IP_ADD_MEMBERSHIP on 127.0.0.1).
    pub fn join(broker: &Broker) -> Listener {
        let group: Ipv4Addr = GROUP.parse().expect("group address");
        let socket = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, broker.update_port))
            .expect("bind the update port");
        socket
            .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
            .expect("join the group on 127.0.0.1");
        let joined_at = Instant::now();
        socket.set_nonblocking(true).expect("non-blocking");
        let socket = UdpSocket::from_std(socket).expect("register with tokio");
        Listener { socket, joined_at }
    }

    /// The next update (robot-state datagrams on the same group are skipped), or `None`
    /// after `timeout` or on a datagram that does not decode.
    pub async fn recv(&self, timeout: Duration) -> Option<Update> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            let v = to_json(&codec::decode(buf.get(..n)?).ok()?);
            // The group also carries the robot state (`[2, "robot_state", ...]`): skipped.
            if v[0] == 2 && v[1] == "update" {
                return Some(Update {
                    devices: v[2][0].as_object()?.clone(),
                    meta: v[2][1].clone(),
                    len: n,
                });
            }
        }
    }

    /// Receives until a complete full snapshot (every part of one `seq`) satisfies `done`,
    /// or `patience` passes. Returns the merged snapshot and when its last part arrived.
    pub async fn full_snapshot(
        &self,
        patience: Duration,
        done: impl Fn(&serde_json::Map<String, Json>) -> bool,
    ) -> Option<(serde_json::Map<String, Json>, Instant)> {
        let deadline = Instant::now() + patience;
        let mut parts: BTreeMap<u64, Vec<Update>> = BTreeMap::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(update) = self.recv(left).await else {
                continue;
            };
            assert!(update.len <= 1200, "datagram of {} bytes", update.len);
            if !update.is_full() {
                continue;
            }
            let seq = update.meta["seq"].as_u64().expect("seq");
            let total = update.meta["parts"].as_u64().unwrap_or(1) as usize;
            let got = parts.entry(seq).or_default();
            got.push(update);
            if got.len() == total {
                let mut merged = serde_json::Map::new();
                for part in got.iter() {
                    merged.extend(part.devices.clone());
                }
                if done(&merged) {
                    return Some((merged, Instant::now()));
                }
            }
        }
        None
    }
}

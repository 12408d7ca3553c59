//! The device update multicast (spec/wire.md, "Smart Device updates"): its datagrams,
//! encoded ([`datagrams`], for the device broker) and decoded ([`decode`], for `pitcrew
//! watch`, its terminal view and the dashboard) here, and the socket every reader of the
//! stream joins with ([`join`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::{self, Value};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Largest datagram (no IP fragmentation over WiFi).
pub const MAX_DATAGRAM: usize = 1200;

/// Room kept for the envelope and meta of a datagram when packing device entries.
const ENVELOPE_ROOM: usize = 120;

/// Packs `entries` into datagrams of at most [`MAX_DATAGRAM`] bytes.
pub fn datagrams(entries: Vec<(Value, Value)>, seq: u64, full: bool) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<(Value, Value)>> = vec![Vec::new()];
    let mut size = 0;
    for entry in entries {
        let len = codec::encode(&entry.0).len() + codec::encode(&entry.1).len();
        if size + len > MAX_DATAGRAM - ENVELOPE_ROOM && groups.last().is_some_and(|g| !g.is_empty())
        {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(g) = groups.last_mut() {
            g.push(entry);
        }
    }
    let parts = groups.len();
    let sent_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    groups
        .into_iter()
        .enumerate()
        .map(|(part, devices)| {
            let meta = Value::Map(vec![
                (Value::from("seq"), Value::from(seq)),
                (Value::from("sent_us"), Value::from(sent_us)),
                (Value::from("full"), Value::from(full)),
                (Value::from("part"), Value::from(part as u64)),
                (Value::from("parts"), Value::from(parts as u64)),
            ]);
            codec::encode(&Value::Array(vec![
                Value::from(2),
                Value::from("update"),
                Value::Array(vec![Value::Map(devices), meta]),
            ]))
        })
        .collect()
}

/// One datagram of the update group.
#[derive(Debug, Clone, PartialEq)]
pub enum Datagram {
    /// `[2, "update", [devices, meta]]`: per UID the params that changed (all of them in a
    /// full snapshot), and the meta (`seq`, `sent_us`, `full`, `part`, `parts`).
    Devices {
        /// UID → `{param: value}`.
        devices: serde_json::Map<String, serde_json::Value>,
        /// The datagram's meta.
        meta: serde_json::Map<String, serde_json::Value>,
    },
    /// `[2, "robot_state", [status]]`: the robot state the broker sends after each tick's
    /// updates ([`crate::robot::status`]).
    RobotState(serde_json::Value),
}

/// Decodes a datagram received on the update group; `None` for anything malformed (it is
/// validated whole before any of it is used).
pub fn decode(bytes: &[u8]) -> Option<Datagram> {
    if let Some(status) = crate::robot::status::parse_datagram(bytes) {
        return Some(Datagram::RobotState(status));
    }
    let v = codec::to_json(&codec::decode(bytes).ok()?);
    match v.as_array()?.as_slice() {
        [code, method, body] if code.as_u64() == Some(2) && method == "update" => {
            let devices = body.get(0)?.as_object()?;
            let meta = body.get(1)?.as_object()?;
            devices
                .values()
                .all(serde_json::Value::is_object)
                .then(|| Datagram::Devices {
                    devices: devices.clone(),
                    meta: meta.clone(),
                })
        }
        _ => None,
    }
}

/// A non-blocking socket joined to `group` on `interface`, on a shared port (`SO_REUSEPORT`)
/// so that several readers listen side by side. Must be called inside a tokio runtime.
///
/// # Errors
/// Socket errors, each message naming the group, port or interface.
pub fn join(group: SocketAddrV4, interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let named = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(named("cannot create a UDP socket".into()))?;
    socket
        .set_reuse_address(true)
        .map_err(named("SO_REUSEADDR".into()))?;
    socket
        .set_reuse_port(true)
        .map_err(named("SO_REUSEPORT".into()))?;
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, group.port())).into())
        .map_err(named(format!("cannot bind UDP port {}", group.port())))?;
    socket
        .join_multicast_v4(group.ip(), &interface)
        .map_err(named(format!(
            "cannot join {} on interface {interface}",
            group.ip()
        )))?;
    socket
        .set_nonblocking(true)
        .map_err(named("non-blocking".into()))?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_updates_are_split_below_the_limit() {
        let entries: Vec<(Value, Value)> = (0..40)
            .map(|i| {
                let map = (0..16)
                    .map(|p| (Value::from(format!("param_{p}")), Value::F32(i as f32)))
                    .collect();
                (
                    Value::from(format!("5666839779443574256{i:04}")),
                    Value::Map(map),
                )
            })
            .collect();
        let grams = datagrams(entries, 7, true);
        assert!(grams.len() > 1);
        let mut seen = 0;
        for g in &grams {
            assert!(g.len() <= MAX_DATAGRAM, "{}", g.len());
            let v = codec::to_json(&codec::decode(g).unwrap());
            assert_eq!(v[2][1]["seq"], 7);
            assert_eq!(v[2][1]["parts"], grams.len());
            seen += v[2][0].as_object().unwrap().len();
        }
        assert_eq!(seen, 40);
        assert_eq!(datagrams(Vec::new(), 1, false).len(), 1);
    }

    #[test]
    fn what_is_encoded_decodes_and_junk_does_not() {
        let entries = vec![(
            Value::from("61390764277305387782290"),
            Value::Map(vec![(Value::from("duty_cycle_a"), Value::F32(0.5))]),
        )];
        let gram = &datagrams(entries, 3, false)[0];
        let Some(Datagram::Devices { devices, meta }) = decode(gram) else {
            panic!("not decoded: {gram:?}");
        };
        assert_eq!(devices["61390764277305387782290"]["duty_cycle_a"], 0.5);
        assert_eq!(
            (meta["seq"].as_u64(), meta["full"].as_bool()),
            (Some(3), Some(false))
        );
        for junk in [
            &b""[..],
            b"\x93\x02\xa6update\x90",
            b"\x93\x01\xa6update\x92\x80\x80",
            b"\xc1",
        ] {
            assert_eq!(decode(junk), None, "{junk:?}");
        }
    }
}

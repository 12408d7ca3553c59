//! Smart Device updates over UDP multicast (`spec/wire.md`, "Smart Device updates"), and the
//! robot state beside them (`[2, "robot_state", [state]]` after each tick's updates, so a
//! dashboard shows the state and the enabling link's age at the update rate):
//! `[2, "update", [devices, meta]]` every `update_interval` with the params changed since
//! the previous datagram (every connected UID appears, `{}` if unchanged), and a full
//! snapshot every [`Options::full_interval`](crate::Options) so a late listener has the whole
//! state within a second. Datagrams never exceed `pitcrew::updates::MAX_DATAGRAM` bytes: larger updates are
//! split by device across parts sharing one `seq`, each with its `part` index and `parts`
//! (the format is encoded and decoded in `pitcrew::updates`).
//!
//! Full snapshots run on a timer of their own, anchored at start: snapshot *k* goes out at
//! `start + k × full_interval` whatever the delta ticks do, so a late tick delays one
//! snapshot by its lateness instead of pushing every later one back (drift that, checked
//! on the 50 ms delta grid, made the gap between snapshots up to 1.05 s and more).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pitcrew::codec::Value;
use pitcrew::updates::datagrams;
use pitcrew_buffer::Owner;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::robot::Gate;

/// Where and how often to publish.
#[derive(Debug, Clone, Copy)]
pub struct UpdateConfig {
    /// Multicast group and port.
    pub group: SocketAddrV4,
    /// Outgoing interface (its IPv4 address); `0.0.0.0` lets the kernel choose.
    pub interface: Ipv4Addr,
    /// Period of delta datagrams.
    pub interval: Duration,
    /// Period of full snapshots.
    pub full_interval: Duration,
}

/// A sending socket: TTL 1, loopback on, outgoing interface set.
///
/// # Errors
/// Socket option errors, naming the interface.
pub fn sender(interface: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .context("cannot create the update socket")?;
    socket.set_multicast_ttl_v4(1).context("multicast TTL")?;
    socket
        .set_multicast_loop_v4(true)
        .context("multicast loopback")?;
    socket
        .set_multicast_if_v4(&interface)
        .with_context(|| format!("cannot send multicast on interface {interface}"))?;
    socket.set_nonblocking(true).context("non-blocking")?;
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())
        .context("cannot bind the update socket")?;
    UdpSocket::from_std(socket.into()).context("cannot register the update socket")
}

/// Converts a catalog value to the wire value (floats stay 32-bit).
fn wire_value(v: pitcrew_catalog::Value) -> Value {
    use pitcrew_catalog::Value as C;
    match v {
        C::Bool(b) => Value::Boolean(b),
        C::F32(f) => Value::F32(f),
        other => other
            .as_i128()
            .and_then(|i| i64::try_from(i).ok().map(Value::from))
            .or_else(|| {
                other
                    .as_i128()
                    .and_then(|i| u64::try_from(i).ok().map(Value::from))
            })
            .unwrap_or(Value::Nil),
    }
}

/// The `{param: value}` map of `bits` (readable params only).
fn values(owner: &Owner, bits: u64) -> Value {
    let ty = owner.device_type();
    let mut map = Vec::new();
    for p in ty.params_in(bits).filter(|p| p.readable()) {
        if let Ok(v) = owner.get_value(p.name()) {
            map.push((Value::from(p.name()), wire_value(v)));
        }
    }
    Value::Map(map)
}

/// Publishes until `shutdown`.
pub async fn publish(
    registry: Arc<Registry>,
    gate: Arc<Gate>,
    socket: UdpSocket,
    config: UpdateConfig,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Skip: a snapshot that is late goes out at once, the next ones keep their schedule.
    let mut full_tick = tokio::time::interval(config.full_interval);
    full_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut warned = false;
    loop {
        let full = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = full_tick.tick() => true,
            _ = tick.tick() => false,
        };
        if full {
            // A delta due at the same moment would repeat the snapshot's values.
            tick.reset();
        }
        let mut entries = Vec::new();
        for uid in registry.connected() {
            let Some(owner) = registry.owner(uid) else {
                continue;
            };
            let changed = owner.take_update().unwrap_or(0);
            let bits = if full {
                owner.device_type().readable_mask()
            } else {
                changed
            };
            entries.push((Value::from(uid.to_string()), values(&owner, bits)));
        }
        let state = gate.status_datagram();
        for datagram in datagrams(entries, seq, full).into_iter().chain([state]) {
            if let Err(e) = socket
                .send_to(&datagram, SocketAddr::V4(config.group))
                .await
            {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(group = %config.group, error = %e, "cannot send device updates");
                }
            }
        }
        seq += 1;
    }
}

//! What the broker reports about itself: one device for `list_devices` ([`device_json`])
//! and the broker as a whole for `status` ([`status_json`]): the emergency-stop latch,
//! device counts, decode errors on unidentified connections, and serial discovery per port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::estop::Latch;
use crate::registry::{DeviceInfo, Registry};
use crate::serial::SerialStats;

/// Seconds since the Unix epoch (what clients get for wall-clock times).
fn epoch_secs(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

/// The JSON form of one device for `list_devices`. `estop_latched` is repeated on every
/// device so that a client which only lists devices still learns that its writes are
/// being discarded.
pub fn device_json(d: &DeviceInfo, latch: &Latch) -> serde_json::Value {
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let c = &d.counters;
    // A device's errors, as every tool shows them: frames it sent that did not decode,
    // packets of the wrong direction, and ERROR packets it sent.
    let errors = count(&c.decode_errors) + count(&c.invalid_types) + count(&c.device_errors);
    json!({
        "uid": d.uid.to_string(),
        "type": d.type_name,
        "port": d.port,
        "connected_since": d.connected_since.and_then(epoch_secs),
        "valid": d.valid,
        "estop_latched": latch.is_engaged(),
        "counters": {
            "to_device": d.to_device,
            "from_device": d.from_device,
            "decode_errors": d.counters.decode_errors.load(Ordering::Relaxed),
            "invalid_types": d.counters.invalid_types.load(Ordering::Relaxed),
            "device_errors": d.counters.device_errors.load(Ordering::Relaxed),
            "errors": errors,
            "timeouts": d.counters.timeouts.load(Ordering::Relaxed),
            "connections": d.counters.connections.load(Ordering::Relaxed),
            "writes_discarded": d.counters.writes_discarded.load(Ordering::Relaxed),
            "outputs_held": d.counters.outputs_held.load(Ordering::Relaxed),
        },
    })
}

/// The parts of the broker `status` reports on.
#[derive(Debug, Clone, Copy)]
pub struct StatusSources<'a> {
    /// The devices.
    pub registry: &'a Registry,
    /// The emergency-stop latch.
    pub latch: &'a Latch,
    /// Serial discovery counters.
    pub serial: &'a SerialStats,
    /// Decode errors on every connection, identified or not.
    pub decode_errors: &'a AtomicU64,
    /// Whether the broker exits after an emergency stop.
    pub exit_on_estop: bool,
}

/// The JSON answer of the `status` RPC.
pub fn status_json(s: StatusSources<'_>) -> serde_json::Value {
    let ports: serde_json::Map<String, serde_json::Value> = s
        .serial
        .snapshot()
        .into_iter()
        .map(|(port, p)| {
            let v = json!({
                "opens": p.opens,
                "open_failures": p.open_failures,
                "discovery_timeouts": p.discovery_timeouts,
                "active": p.active,
            });
            (port, v)
        })
        .collect();
    json!({
        "estop": {
            "latched": s.latch.is_engaged(),
            "since": s.latch.since().and_then(epoch_secs),
            "writes_discarded": s.latch.discarded(),
            "exit_on_estop": s.exit_on_estop,
        },
        "devices": {
            "known": s.registry.list().len(),
            "connected": s.registry.connected().len(),
        },
        "decode_errors": s.decode_errors.load(Ordering::Relaxed),
        "serial_ports": ports,
    })
}

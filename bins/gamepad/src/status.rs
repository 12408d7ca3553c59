//! The `gamepad-service` RPC: `status` reports, from the receiver's state, each source
//! (last seq, age, received, dropped, reordered, ignored), each gamepad (connected, values), the
//! watchdog (tripped, trips) and the drop counters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew::codec::{self, Value};
use pitcrew::rpc::{RpcError, Service};
use serde_json::json;

use crate::receive::{lock, State};

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// The status of the receiver as JSON (what `status` returns, and `pitcrew gamepads`
/// prints).
pub fn snapshot(st: &State, now: Instant) -> serde_json::Value {
    let mut sources: Vec<_> = st
        .sources
        .iter()
        .map(|(name, s)| {
            json!({
                "source": name,
                "last_seq": s.last_seq,
                "age_ms": ms(now.saturating_duration_since(s.last_seen)),
                "received": s.received,
                "dropped": s.dropped,
                "reordered": s.reordered,
                "ignored": s.ignored,
            })
        })
        .collect();
    sources.sort_by(|a, b| a["source"].as_str().cmp(&b["source"].as_str()));
    let gamepads: Vec<_> = st
        .pads
        .iter()
        .map(|(i, p)| {
            let pressed: Vec<&str> = (0..32)
                .filter(|b| p.state.btn & (1 << b) != 0)
                .filter_map(|b| st.pads.button_name(b))
                .collect();
            json!({
                "index": i,
                "connected": p.connected,
                "lx": p.state.lx,
                "ly": p.state.ly,
                "rx": p.state.rx,
                "ry": p.state.ry,
                "btn": p.state.btn,
                "buttons": pressed,
                "age_ms": ms(now.saturating_duration_since(p.last_seen)),
            })
        })
        .collect();
    let c = &st.counters;
    json!({
        "addr": st.bound.to_string(),
        "control_timeout_ms": ms(st.watchdog.timeout()),
        "watchdog": {
            "tripped": st.watchdog.tripped(),
            "trips": st.watchdog.trips(),
            "last_valid_age_ms": st.watchdog.last_valid_age(now).map(ms),
        },
        "counters": {
            "received": c.received,
            "applied": c.applied,
            "malformed": c.malformed,
            "oversized": c.oversized,
            "out_of_range": c.out_of_range,
            "reordered": c.reordered,
            "buffer_errors": c.buffer_errors,
            "station": c.station,
            "replies": c.replies,
            "link_errors": c.link_errors,
            "unauthenticated": c.unauthenticated,
            "forged": c.forged,
            "stale": c.stale,
            "replayed": c.replayed,
            "superseded": c.superseded,
            "field": c.field,
            "not_enabling": c.not_enabling,
        },
        "flood": {
            "active": st.flood.active,
            "floods": st.flood.floods,
            "filtered": st.flood.filtered,
        },
        "sources": sources,
        "gamepads": gamepads,
        "tap": st.tap_stats().to_json(),
    })
}

/// The `gamepad-service` with its `status` method over `state`.
pub fn service(state: Arc<Mutex<State>>) -> Service {
    let mut service = Service::new("gamepad");
    service.register("status", &[], move |()| {
        let state = state.clone();
        async move {
            let json = snapshot(&lock(&state), Instant::now());
            Ok::<Value, RpcError>(codec::from_json(&json))
        }
    });
    service
}

//! What the broker offers on its tap (`pitcrew::tap`, `<ns>-tap-devices.sock`) for
//! recordings: every frame it sends a device that is a DEV_WRITE or a DEV_DISABLE (not the
//! multicast deltas: each frame, with the values it carried), every DEV_DATA it stored,
//! device connects and disconnects, and every robot state transition with its reason.
//!
//! Producers hand over raw bytes and an `Arc` of the device type (a copy of a few dozen
//! bytes and a reference count); decoding into named values happens on the tap thread.

use std::sync::Arc;

use pitcrew::robot::{monotonic_ns, RobotStatus};
use pitcrew::tap::{Tap, TapEvent};
use pitcrew_catalog::{DeviceType, Param, Uid, Value};
use pitcrew_sdp::{FrameDecoder, MessageType, ParamData};
use serde_json::{json, Map};

/// The broker's tap.
pub type BrokerTap = Tap<BrokerEvent>;

/// The process name in the tap's address.
pub const PROCESS: &str = pitcrew::tap::DEVICES;

/// One thing the broker saw or did.
#[derive(Debug)]
pub enum BrokerEvent {
    /// Framed bytes written to a device (DEV_WRITE and DEV_DISABLE are recorded).
    Sent {
        /// When.
        t_ns: u64,
        /// The device.
        uid: Uid,
        /// Its type.
        ty: Arc<DeviceType>,
        /// The COBS frames as written.
        frames: Vec<u8>,
    },
    /// A DEV_DATA stored in the device's buffer.
    Data {
        /// When.
        t_ns: u64,
        /// The device.
        uid: Uid,
        /// Its type.
        ty: Arc<DeviceType>,
        /// The params present.
        bits: u64,
        /// Their values at storage width, ascending id.
        raw: Vec<u8>,
    },
    /// A device was identified (`connected`) or its session ended.
    Connection {
        /// When.
        t_ns: u64,
        /// The device.
        uid: Uid,
        /// Its type's name.
        ty: Arc<DeviceType>,
        /// The serial port or TCP peer.
        port: String,
        /// `None` on connect, how the session ended on disconnect.
        end: Option<&'static str>,
    },
    /// A robot state transition (the status after it).
    State {
        /// When.
        t_ns: u64,
        /// The new state with its reason.
        status: Box<RobotStatus>,
    },
}

impl BrokerEvent {
    /// Bytes sent to `uid`, stamped now.
    pub fn sent(uid: Uid, ty: &Arc<DeviceType>, frames: &[u8]) -> Self {
        BrokerEvent::Sent {
            t_ns: monotonic_ns(),
            uid,
            ty: Arc::clone(ty),
            frames: frames.to_vec(),
        }
    }
}

/// One param's value from its storage bytes (arrays as a flat JSON list).
fn param_json(p: &Param, bytes: &[u8]) -> serde_json::Value {
    let element = p.ty().element();
    let width = element.storage_width();
    let one = |b: &[u8]| {
        Value::from_le_bytes(element, b).map_or(serde_json::Value::Null, |v| v.to_json())
    };
    if p.ty().is_scalar() {
        one(bytes)
    } else {
        bytes.chunks(width.max(1)).map(one).collect()
    }
}

/// The named values of `data`.
fn values_json(ty: &DeviceType, data: &ParamData<'_>) -> serde_json::Value {
    let mut map = Map::new();
    for (id, bytes) in data.iter() {
        if let Some(p) = ty.param_by_id(usize::from(id)) {
            map.insert(p.name().to_owned(), param_json(p, bytes));
        }
    }
    serde_json::Value::Object(map)
}

/// The values of `raw` (storage width, ascending id) for the params in `bits`.
fn raw_values_json(ty: &DeviceType, bits: u64, raw: &[u8]) -> serde_json::Value {
    let mut map = Map::new();
    let mut at = 0usize;
    for p in ty.params_in(bits) {
        let width = p.storage_width();
        let Some(bytes) = raw.get(at..at + width) else {
            break;
        };
        map.insert(p.name().to_owned(), param_json(p, bytes));
        at += width;
    }
    serde_json::Value::Object(map)
}

impl TapEvent for BrokerEvent {
    fn time_ns(&self) -> u64 {
        match self {
            BrokerEvent::Sent { t_ns, .. }
            | BrokerEvent::Data { t_ns, .. }
            | BrokerEvent::Connection { t_ns, .. }
            | BrokerEvent::State { t_ns, .. } => *t_ns,
        }
    }

    fn messages(&self, emit: &mut dyn FnMut(&'static str, serde_json::Value)) {
        match self {
            BrokerEvent::Sent {
                uid, ty, frames, ..
            } => {
                let widths = ty.write_widths();
                for packet in FrameDecoder::new().decode(frames).flatten() {
                    let kind = MessageType::from_byte(packet.msg_type());
                    if kind == Some(MessageType::DevDisable) {
                        emit(
                            "/devices/disable",
                            json!({"uid": uid.to_string(), "type": ty.name()}),
                        );
                    } else if kind == Some(MessageType::DevWrite) {
                        let values = ParamData::decode(packet.payload(), &widths)
                            .map_or(serde_json::Value::Null, |d| values_json(ty, &d));
                        emit(
                            "/devices/write",
                            json!({"uid": uid.to_string(), "type": ty.name(), "values": values}),
                        );
                    }
                }
            }
            BrokerEvent::Data {
                uid, ty, bits, raw, ..
            } => emit(
                "/devices/data",
                json!({"uid": uid.to_string(), "type": ty.name(), "values": raw_values_json(ty, *bits, raw)}),
            ),
            BrokerEvent::Connection {
                uid, ty, port, end, ..
            } => emit(
                "/devices/connection",
                json!({
                    "uid": uid.to_string(),
                    "type": ty.name(),
                    "port": port,
                    "connected": end.is_none(),
                    "end": end,
                }),
            ),
            BrokerEvent::State { status, .. } => emit(
                "/robot/state",
                json!({
                    "state": status.state.name(),
                    "mode": status.state.mode().map(|m| m.name()),
                    "reason": status.reason,
                    "link": status.link,
                    "transitions": status.transitions,
                    "phase": status.phase.map(|p| p.name()),
                }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_catalog::Catalog;
    use pitcrew_sdp::Message;

    fn collect(event: &BrokerEvent) -> Vec<(&'static str, serde_json::Value)> {
        let mut out = Vec::new();
        event.messages(&mut |topic, json| out.push((topic, json)));
        out
    }

    #[test]
    fn sent_frames_become_write_and_disable_messages_with_named_values() {
        let ty = Arc::new(Catalog::embedded().get("koala-bear").unwrap().clone());
        let mut frames = Vec::new();
        let id = ty.param("duty_cycle_a").unwrap().id() as u8;
        let value = 0.5f32.to_le_bytes();
        let data = ParamData::new().with(id, &value).unwrap();
        Message::DevWrite(data).encode_frame(&mut frames).unwrap();
        Message::HbReq(3).encode_frame(&mut frames).unwrap();
        Message::DevDisable.encode_frame(&mut frames).unwrap();
        let uid: Uid = "77".parse().unwrap();
        let got = collect(&BrokerEvent::sent(uid, &ty, &frames));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "/devices/write");
        assert_eq!(got[0].1["values"]["duty_cycle_a"], 0.5);
        assert_eq!(got[0].1["uid"], "77");
        assert_eq!(got[1].0, "/devices/disable");
    }
}

//! The channels of a recording: each an MCAP topic with a JSON schema, JSON messages, and
//! `log_time` in CLOCK_MONOTONIC nanoseconds (the wall-clock anchor is in the
//! `pitcrew.recording` metadata record). Foxglove and Lichtblick read the schemas to offer
//! each field for plotting (`/devices/data.values.duty_cycle_a`).
//!
//! Most channels are registered when the file is created; [`SIM_POSE`] only when its first
//! message comes, so a recording of a real robot has no simulation channel at all.

use serde_json::{json, Value};

/// One channel: its topic, schema name and JSON schema.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// The MCAP topic.
    pub topic: &'static str,
    /// The schema's name.
    pub schema: &'static str,
    /// What a message on it is (for `recording info` and the schema's description).
    pub about: &'static str,
    /// Registered when its first message comes rather than when the file is created (a
    /// channel that only some suites have).
    pub on_demand: bool,
}

/// Control datagrams the gamepad receiver applied.
pub const CONTROL_APPLIED: &str = "/control/applied";
/// Control datagrams it refused, with why.
pub const CONTROL_REFUSED: &str = "/control/refused";
/// Robot state transitions, with their reasons.
pub const ROBOT_STATE: &str = "/robot/state";
/// DEV_DATA values stored by the broker.
pub const DEVICES_DATA: &str = "/devices/data";
/// DEV_WRITE frames the broker sent, with their values.
pub const DEVICES_WRITE: &str = "/devices/write";
/// DEV_DISABLE frames the broker sent.
pub const DEVICES_DISABLE: &str = "/devices/disable";
/// Devices connecting and disconnecting.
pub const DEVICES_CONNECTION: &str = "/devices/connection";
/// Every log record the log forwarder published.
pub const LOG: &str = "/log";
/// The simulated robot's pose (`pitcrew emulate --sim`), polled from its `sim-service`.
pub const SIM_POSE: &str = "/sim/pose";

/// Every channel, in the order they are registered.
pub const ALL: [Channel; 9] = [
    Channel {
        topic: CONTROL_APPLIED,
        schema: "pitcrew.ControlApplied",
        about: "a control datagram the gamepad receiver applied",
        on_demand: false,
    },
    Channel {
        topic: CONTROL_REFUSED,
        schema: "pitcrew.ControlRefused",
        about: "a control datagram the gamepad receiver refused, with why",
        on_demand: false,
    },
    Channel {
        topic: ROBOT_STATE,
        schema: "pitcrew.RobotState",
        about: "a robot state transition with its reason",
        on_demand: false,
    },
    Channel {
        topic: DEVICES_DATA,
        schema: "pitcrew.DeviceData",
        about: "values a device sent (DEV_DATA)",
        on_demand: false,
    },
    Channel {
        topic: DEVICES_WRITE,
        schema: "pitcrew.DeviceWrite",
        about: "values the broker sent a device (DEV_WRITE)",
        on_demand: false,
    },
    Channel {
        topic: DEVICES_DISABLE,
        schema: "pitcrew.DeviceDisable",
        about: "a DEV_DISABLE the broker sent a device",
        on_demand: false,
    },
    Channel {
        topic: DEVICES_CONNECTION,
        schema: "pitcrew.DeviceConnection",
        about: "a device connected or disconnected",
        on_demand: false,
    },
    Channel {
        topic: LOG,
        schema: "pitcrew.LogRecord",
        about: "a log record of any process",
        on_demand: false,
    },
    Channel {
        topic: SIM_POSE,
        // Foxglove's own pose type, so its 3D panel draws the robot on the field; the
        // plain fields beside it plot and export as columns.
        schema: "foxglove.PoseInFrame",
        about: "the simulated robot's pose on the field (a foxglove.PoseInFrame in frame \
                `field`, plus x and y in metres, heading in radians and the simulation's \
                time in seconds)",
        on_demand: true,
    },
];

fn device_props() -> Value {
    json!({
        "uid": {"type": "string", "description": "the device's UID (decimal)"},
        "type": {"type": "string", "description": "the catalog type"},
    })
}

fn values() -> Value {
    json!({
        "type": "object",
        "description": "values by param name",
        "additionalProperties": {"type": ["number", "boolean", "array", "null"]},
    })
}

fn object(about: &str, mut props: Value, extra: Value, required: &[&str]) -> Value {
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "description": about,
        "properties": props,
        "required": required,
    })
}

/// The JSON schema of `channel`'s messages: its properties (one function per channel
/// below, so that each schema reads beside its name) and the fields it requires.
pub fn schema(channel: &Channel) -> Value {
    let about = channel.about;
    let none = json!({});
    match channel.topic {
        CONTROL_APPLIED => object(about, control_applied_props(), none, &["gamepads"]),
        CONTROL_REFUSED => object(about, control_refused_props(), none, &["kind", "reason"]),
        ROBOT_STATE => object(about, robot_state_props(), none, &["state", "reason"]),
        DEVICES_DATA | DEVICES_WRITE => object(
            about,
            device_props(),
            json!({"values": values()}),
            &["uid", "type", "values"],
        ),
        DEVICES_DISABLE => object(about, device_props(), none, &["uid"]),
        DEVICES_CONNECTION => object(
            about,
            device_props(),
            json!({
                "port": {"type": "string"},
                "connected": {"type": "boolean"},
                "end": {"type": ["string", "null"], "description": "how the session ended"},
            }),
            &["uid", "connected"],
        ),
        SIM_POSE => object(
            about,
            sim_pose_props(),
            none,
            &["timestamp", "frame_id", "pose", "time", "x", "y", "heading"],
        ),
        _ => object(about, log_record_props(), none, &["level", "app", "event"]),
    }
}

/// [`CONTROL_APPLIED`]: the gamepads of an applied datagram and its metadata (sequence,
/// send time, source, and the driver-station fields when a page sent it).
fn control_applied_props() -> Value {
    let axis = json!({"type": ["number", "null"], "minimum": -1, "maximum": 1});
    json!({
        "peer": {"type": "string"},
        "gamepads": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"},
            "lx": axis, "ly": axis, "rx": axis, "ry": axis,
            "btn": {"type": "integer", "description": "button bitmask"},
        }}},
        "meta": {"type": ["object", "null"], "properties": {
            "seq": {"type": "integer"},
            "sent_us": {"type": "integer"},
            "source": {"type": "string"},
            "ds": {"type": ["object", "null"], "properties": {
                "mode": {"type": "string", "enum": ["autonomous", "teleop"]},
                "enable": {"type": "boolean"},
                "enable_id": {"type": "integer"},
                "estop": {"type": "boolean"},
            }},
        }},
    })
}

/// [`CONTROL_REFUSED`]: a refused datagram, with the kind of refusal and why.
fn control_refused_props() -> Value {
    json!({
        "peer": {"type": "string"},
        "source": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": [
            "oversized", "malformed", "out_of_range", "reordered", "superseded",
            "unauthenticated", "forged", "stale", "replayed",
        ]},
        "reason": {"type": "string"},
        "sealed": {"type": "boolean"},
        "bytes": {"type": "integer"},
    })
}

/// [`ROBOT_STATE`]: the state entered, why, and what the robot knew of its link and match.
fn robot_state_props() -> Value {
    json!({
        "state": {"type": "string", "enum": ["disabled", "autonomous", "teleop", "estopped"]},
        "mode": {"type": ["string", "null"]},
        "reason": {"type": "string"},
        "link": {"type": "string"},
        "transitions": {"type": "integer"},
        "phase": {"type": ["string", "null"]},
    })
}

/// [`SIM_POSE`]: Foxglove's `PoseInFrame` (its `timestamp`, `frame_id` and `pose` as in
/// Foxglove's own JSON schema, the timestamp being the message's `log_time`), then the same
/// pose as a person reads it and the simulation's clock.
fn sim_pose_props() -> Value {
    let number = |about: &str| json!({"type": "number", "description": about});
    let vector = |names: &[&str]| {
        let props: serde_json::Map<String, Value> =
            names.iter().map(|n| ((*n).to_owned(), number(n))).collect();
        json!({"type": "object", "properties": props, "required": names})
    };
    json!({
        "timestamp": {"type": "object", "title": "time", "properties": {
            "sec": {"type": "integer", "minimum": 0},
            "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
        }},
        "frame_id": {"type": "string", "description": "always `field`: its corner, x along \
            its length, y along its width"},
        "pose": {"type": "object", "title": "foxglove.Pose", "properties": {
            "position": vector(&["x", "y", "z"]),
            "orientation": vector(&["x", "y", "z", "w"]),
        }, "required": ["position", "orientation"]},
        "time": number("the simulation's time (s since it started or was reset)"),
        "x": number("metres from the field's corner along its length"),
        "y": number("metres from the field's corner along its width"),
        "heading": number("radians counter-clockwise from the field's x axis"),
    })
}

/// [`LOG`]: the fields of a log record that every process's records have.
fn log_record_props() -> Value {
    json!({
        "timestamp": {"type": "string", "description": "RFC 3339, the process's clock"},
        "level": {"type": "string"},
        "app": {"type": "string"},
        "target": {"type": "string"},
        "event": {"type": "string"},
        "pid": {"type": "integer"},
        "seq": {"type": "integer"},
    })
}

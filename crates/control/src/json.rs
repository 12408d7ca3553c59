//! A control datagram as JSON, the form recordings hold (`/control/applied`): gamepads by
//! index with every axis (`null` when the datagram left it out) and the meta with the
//! driver station's requests. [`from_json`] reads it back, so a replay sends what was
//! applied through [`super::encode`].
//!
//! `{"gamepads": [{"index": 0, "lx": 0.0, "ly": 0.5, "rx": null, "ry": 0.0, "btn": 1}],
//!   "meta": {"seq": 7, "sent_us": 123, "source": "laptop", "ds": {"mode": "teleop",
//!   "enable": true, "enable_id": 2, "estop": false}}}`

use serde_json::{json, Value};

use super::{ControlMessage, Meta, PadInput, StationRequest, MAX_GAMEPADS};
use pitcrew_controller::gamepad::BUTTON_COUNT;
use pitcrew_controller::robot::Mode;

/// Why a JSON object is not a control datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a recorded control datagram: {0}")]
pub struct JsonError(String);

fn bad(what: impl Into<String>) -> JsonError {
    JsonError(what.into())
}

/// The JSON of `msg`.
pub fn to_json(msg: &ControlMessage) -> Value {
    let gamepads: Vec<_> = msg
        .gamepads
        .iter()
        .map(|(i, p)| json!({"index": i, "lx": p.lx, "ly": p.ly, "rx": p.rx, "ry": p.ry, "btn": p.btn}))
        .collect();
    let meta = msg.meta.as_ref().map(|m| {
        json!({
            "seq": m.seq,
            "sent_us": m.sent_us,
            "source": m.source,
            "ds": m.station.map(|ds| json!({
                "mode": ds.mode.name(),
                "enable": ds.enable,
                "enable_id": ds.enable_id,
                "estop": ds.estop,
            })),
        })
    });
    json!({"gamepads": gamepads, "meta": meta})
}

fn axis(p: &Value, key: &str) -> Result<Option<f32>, JsonError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| (-1.0..=1.0).contains(f))
            .map(|f| Some(f as f32))
            .ok_or_else(|| bad(format!("{key} must be a number in [-1, 1] or null"))),
    }
}

fn station(ds: &Value) -> Result<Option<StationRequest>, JsonError> {
    if ds.is_null() {
        return Ok(None);
    }
    let mode: Mode = ds["mode"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e: pitcrew_controller::robot::UnknownMode| bad(e.to_string()))?;
    let flag = |k: &str| {
        ds[k]
            .as_bool()
            .ok_or_else(|| bad(format!("ds.{k} must be a bool")))
    };
    let enable_id = ds["enable_id"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad("ds.enable_id must be a u32"))?;
    Ok(Some(StationRequest {
        mode,
        enable: flag("enable")?,
        enable_id,
        estop: flag("estop")?,
    }))
}

/// Reads a datagram back from its JSON (what [`to_json`] wrote).
///
/// # Errors
/// When a field is missing or out of range; the message names it.
pub fn from_json(json: &Value) -> Result<ControlMessage, JsonError> {
    let pads = json["gamepads"]
        .as_array()
        .ok_or_else(|| bad("gamepads must be a list"))?;
    let mut gamepads = Vec::with_capacity(pads.len());
    for p in pads {
        let index = p["index"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .filter(|i| *i < MAX_GAMEPADS)
            .ok_or_else(|| bad(format!("a gamepad index must be below {MAX_GAMEPADS}")))?;
        // As strict as the wire decoder: no bit past the catalog's last button.
        let btn = p["btn"]
            .as_u64()
            .filter(|b| b >> BUTTON_COUNT == 0)
            .and_then(|b| u32::try_from(b).ok())
            .ok_or_else(|| {
                bad(format!(
                    "btn must be an unsigned integer below 2^{BUTTON_COUNT}"
                ))
            })?;
        let input = PadInput {
            lx: axis(p, "lx")?,
            ly: axis(p, "ly")?,
            rx: axis(p, "rx")?,
            ry: axis(p, "ry")?,
            btn,
        };
        gamepads.push((index, input));
    }
    gamepads.sort_by_key(|(i, _)| *i);
    let meta = match &json["meta"] {
        Value::Null => None,
        m => Some(Meta {
            seq: m["seq"]
                .as_u64()
                .ok_or_else(|| bad("meta.seq must be a u64"))?,
            sent_us: m["sent_us"].as_u64().unwrap_or(0),
            source: m["source"]
                .as_str()
                .ok_or_else(|| bad("meta.source must be a string"))?
                .to_owned(),
            station: station(&m["ds"])?,
        }),
    };
    Ok(ControlMessage { gamepads, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_survives_json() {
        let msg = ControlMessage {
            gamepads: vec![(
                1,
                PadInput {
                    lx: Some(0.5),
                    ly: None,
                    rx: Some(-1.0),
                    ry: Some(0.0),
                    btn: 5,
                },
            )],
            meta: Some(Meta {
                seq: 9,
                sent_us: 4,
                source: "ds".into(),
                station: Some(StationRequest {
                    mode: Mode::Teleop,
                    enable: true,
                    enable_id: 3,
                    estop: false,
                }),
            }),
        };
        let json = to_json(&msg);
        assert_eq!(from_json(&json).unwrap(), msg);
        let text = json.to_string();
        assert_eq!(
            from_json(&serde_json::from_str(&text).unwrap()).unwrap(),
            msg
        );
        assert!(from_json(&json!({"gamepads": [{"index": 0, "lx": 2.0, "btn": 0}]})).is_err());
        let past_the_buttons = json!({"gamepads": [{"index": 0, "btn": 1u64 << BUTTON_COUNT}]});
        let err = from_json(&past_the_buttons).unwrap_err();
        assert!(err.to_string().contains("btn"), "{err}");
    }
}

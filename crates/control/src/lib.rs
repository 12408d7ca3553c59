//! The control datagram (spec/wire.md, "Control input"), driver station → robot:
//! `[2, "update_gamepads", [gamepads, meta]]`, parsed and validated whole, or encoded,
//! through [`pitcrew_controller::codec`]. The receiver, the sender, the tests and the benchmarks all use
//! this one codec.
//!
//! `meta` may carry the driver station's requests of the robot under the versioned key
//! `ds` (`{"v": 1, "mode": "teleop", "enable": true, "enable_id": 3, "estop": false}`,
//! [`StationRequest`]); a datagram without it moves gamepads but can never enable the robot
//! (robot-state.md rule 3).
//!
//! Parsing never panics and never allocates more than the datagram bound allows: a datagram
//! is rejected as [`Rejection::Oversized`] before decoding, as [`Rejection::Malformed`] when
//! its shape or types are wrong, and as [`Rejection::OutOfRange`] when a value is NaN, outside
//! [-1, 1], a stick is off the unit circle, or a button bit names no button.

pub mod auth;
pub mod json;
pub mod key;
pub mod recording;

use pitcrew_controller::codec::{self, Value};
use pitcrew_controller::gamepad::{PadState, BUTTON_COUNT};
use pitcrew_controller::robot::Mode;
pub use pitcrew_controller::robot::StationRequest;

/// The largest datagram accepted: the spec keeps datagrams under 1200 bytes (no IP
/// fragmentation over WiFi), and eight full gamepads with meta take about 400.
pub const MAX_DATAGRAM_BYTES: usize = 1200;
/// How many gamepads one robot takes (indices `0..MAX_GAMEPADS`); each has a buffer, so the
/// bound also caps the shared-memory segments a sender can make the receiver create.
pub const MAX_GAMEPADS: u32 = 8;
/// The longest `source` name, so per-source state stays small.
pub const MAX_SOURCE_LEN: usize = 64;
/// The notification method of a control datagram.
pub const METHOD: &str = "update_gamepads";
/// The version of the `ds` (driver station) fields this codec reads and writes.
pub const STATION_VERSION: u64 = 1;

/// One gamepad's values as carried by a datagram: a missing axis keeps its previous value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PadInput {
    /// Left stick x, if present.
    pub lx: Option<f32>,
    /// Left stick y (up positive), if present.
    pub ly: Option<f32>,
    /// Right stick x, if present.
    pub rx: Option<f32>,
    /// Right stick y (up positive), if present.
    pub ry: Option<f32>,
    /// Button bitmask (bit i = catalog button i); a missing `btn` means none pressed.
    pub btn: u32,
}

impl PadInput {
    /// `prev` updated by this input (missing axes keep their value).
    pub fn merge_into(&self, prev: &PadState) -> PadState {
        PadState {
            lx: self.lx.unwrap_or(prev.lx),
            ly: self.ly.unwrap_or(prev.ly),
            rx: self.rx.unwrap_or(prev.rx),
            ry: self.ry.unwrap_or(prev.ry),
            btn: self.btn,
        }
    }

    /// A complete state as a datagram entry.
    pub fn from_state(state: PadState) -> PadInput {
        PadInput {
            lx: Some(state.lx),
            ly: Some(state.ly),
            rx: Some(state.rx),
            ry: Some(state.ry),
            btn: state.btn,
        }
    }
}

/// The optional `meta` of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Sender's sequence number, increasing per datagram.
    pub seq: u64,
    /// Sender's clock at sending, in microseconds (any epoch).
    pub sent_us: u64,
    /// Sender's name, unique per sender instance.
    pub source: String,
    /// The driver station's requests, if the sender is one.
    pub station: Option<StationRequest>,
}

/// A validated control datagram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlMessage {
    /// Gamepads by index, ascending, each index at most once.
    pub gamepads: Vec<(u32, PadInput)>,
    /// `None` for senders without meta (PiE-style).
    pub meta: Option<Meta>,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Larger than [`MAX_DATAGRAM_BYTES`].
    #[error("datagram of {0} bytes exceeds {MAX_DATAGRAM_BYTES}")]
    Oversized(usize),
    /// Not a control datagram: not MessagePack, wrong shape, wrong types.
    #[error("malformed datagram: {0}")]
    Malformed(String),
    /// Well-formed, but a value is NaN or outside its range.
    #[error("value out of range: {0}")]
    OutOfRange(String),
}

impl Rejection {
    /// A short name of the kind, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Oversized(_) => "oversized",
            Rejection::Malformed(_) => "malformed",
            Rejection::OutOfRange(_) => "out_of_range",
        }
    }
}

fn malformed(what: impl Into<String>) -> Rejection {
    Rejection::Malformed(what.into())
}

/// Parses and validates one datagram.
///
/// # Errors
/// A [`Rejection`] saying why the datagram must be dropped.
pub fn parse(bytes: &[u8]) -> Result<ControlMessage, Rejection> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(Rejection::Oversized(bytes.len()));
    }
    // The cheapest test first: a control datagram is a MessagePack array, so junk is
    // refused by its first byte before anything is decoded.
    if !matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd)) {
        return Err(malformed("not an array"));
    }
    let value = codec::decode(bytes).map_err(|e| malformed(e.to_string()))?;
    let Value::Array(mut top) = value else {
        return Err(malformed("not an array"));
    };
    if top.len() != 3 {
        return Err(malformed(format!(
            "array of {} items, expected 3",
            top.len()
        )));
    }
    if top[0].as_u64() != Some(2) {
        return Err(malformed("type code is not 2 (notification)"));
    }
    if top[1].as_str() != Some(METHOD) {
        return Err(malformed(format!("method is not {METHOD:?}")));
    }
    let Value::Array(params) = top.swap_remove(2) else {
        return Err(malformed("params is not an array"));
    };
    let (gamepads, meta) = match params.as_slice() {
        [g] => (g, None),
        [g, Value::Nil] => (g, None),
        [g, m] => (g, Some(parse_meta(m)?)),
        _ => return Err(malformed("params must be [gamepads] or [gamepads, meta]")),
    };
    Ok(ControlMessage {
        gamepads: parse_gamepads(gamepads)?,
        meta,
    })
}

fn parse_meta(v: &Value) -> Result<Meta, Rejection> {
    let Value::Map(entries) = v else {
        return Err(malformed("meta is not a map"));
    };
    let (mut seq, mut sent_us, mut source, mut station) = (None, None, None, None);
    for (k, v) in entries {
        let slot = match k.as_str() {
            Some("ds") => {
                if station.is_some() {
                    return Err(malformed("meta key ds repeated"));
                }
                station = Some(parse_station(v)?);
                continue;
            }
            Some("seq") => &mut seq,
            Some("sent_us") => &mut sent_us,
            Some("source") => {
                if source.is_some() {
                    return Err(malformed("meta key source repeated"));
                }
                let s = v
                    .as_str()
                    .ok_or_else(|| malformed("meta.source is not a string"))?;
                if s.is_empty() || s.len() > MAX_SOURCE_LEN {
                    return Err(Rejection::OutOfRange(format!(
                        "meta.source must have 1 to {MAX_SOURCE_LEN} bytes"
                    )));
                }
                source = Some(s.to_owned());
                continue;
            }
            _ => return Err(malformed("unknown meta key")),
        };
        if slot.is_some() {
            return Err(malformed("meta key repeated"));
        }
        *slot = Some(
            v.as_u64()
                .ok_or_else(|| malformed("meta.seq and meta.sent_us must be u64"))?,
        );
    }
    match (seq, sent_us, source) {
        (Some(seq), Some(sent_us), Some(source)) => Ok(Meta {
            seq,
            sent_us,
            source,
            station,
        }),
        _ => Err(malformed("meta needs seq, sent_us and source")),
    }
}

/// The `ds` map: every key present once, version [`STATION_VERSION`].
fn parse_station(v: &Value) -> Result<StationRequest, Rejection> {
    let Value::Map(entries) = v else {
        return Err(malformed("meta.ds is not a map"));
    };
    let (mut version, mut mode, mut enable, mut enable_id, mut estop) =
        (None, None, None, None, None);
    for (k, v) in entries {
        let key = k
            .as_str()
            .ok_or_else(|| malformed("meta.ds key is not a string"))?;
        let fresh = match key {
            "v" => version.replace(v.as_u64().ok_or_else(|| malformed("ds.v is not a u64"))?),
            "mode" => {
                let name = v
                    .as_str()
                    .ok_or_else(|| malformed("ds.mode is not a string"))?;
                let m = name
                    .parse::<Mode>()
                    .map_err(|e| Rejection::OutOfRange(e.to_string()))?;
                mode.replace(m).map(|_| 0)
            }
            "enable" => enable
                .replace(
                    v.as_bool()
                        .ok_or_else(|| malformed("ds.enable is not a bool"))?,
                )
                .map(|_| 0),
            "enable_id" => {
                let id = v
                    .as_u64()
                    .ok_or_else(|| malformed("ds.enable_id is not a u32"))?;
                let id = u32::try_from(id)
                    .map_err(|_| Rejection::OutOfRange("ds.enable_id exceeds u32".into()))?;
                enable_id.replace(id).map(|_| 0)
            }
            "estop" => estop
                .replace(
                    v.as_bool()
                        .ok_or_else(|| malformed("ds.estop is not a bool"))?,
                )
                .map(|_| 0),
            _ => return Err(malformed(format!("unknown meta.ds key {key:?}"))),
        };
        if fresh.is_some() {
            return Err(malformed(format!("meta.ds key {key} repeated")));
        }
    }
    match version {
        Some(STATION_VERSION) => {}
        Some(v) => {
            return Err(malformed(format!(
                "driver-station fields of version {v}; this robot reads version {STATION_VERSION}"
            )))
        }
        None => return Err(malformed("meta.ds needs v")),
    }
    match (mode, enable, enable_id, estop) {
        (Some(mode), Some(enable), Some(enable_id), Some(estop)) => Ok(StationRequest {
            mode,
            enable,
            enable_id,
            estop,
        }),
        _ => Err(malformed(
            "meta.ds needs v, mode, enable, enable_id and estop",
        )),
    }
}

fn parse_gamepads(v: &Value) -> Result<Vec<(u32, PadInput)>, Rejection> {
    let Value::Map(entries) = v else {
        return Err(malformed("gamepads is not a map"));
    };
    if entries.len() > MAX_GAMEPADS as usize {
        return Err(Rejection::OutOfRange(format!(
            "{} gamepads, at most {MAX_GAMEPADS}",
            entries.len()
        )));
    }
    let mut out: Vec<(u32, PadInput)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let index = parse_index(k)?;
        if out.iter().any(|(i, _)| *i == index) {
            return Err(malformed("gamepad index repeated"));
        }
        out.push((index, parse_pad(v)?));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// A gamepad index: a canonical decimal string below [`MAX_GAMEPADS`].
fn parse_index(k: &Value) -> Result<u32, Rejection> {
    let s = k
        .as_str()
        .ok_or_else(|| malformed("gamepad index is not a string"))?;
    let canonical = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(malformed("gamepad index is not a decimal string"));
    }
    match s.parse::<u32>() {
        Ok(i) if i < MAX_GAMEPADS => Ok(i),
        _ => Err(Rejection::OutOfRange(format!(
            "gamepad index {s} (at most {})",
            MAX_GAMEPADS - 1
        ))),
    }
}

fn parse_pad(v: &Value) -> Result<PadInput, Rejection> {
    let Value::Map(entries) = v else {
        return Err(malformed("a gamepad is not a map"));
    };
    let mut pad = PadInput::default();
    let mut seen = 0u8;
    for (k, v) in entries {
        let key = k
            .as_str()
            .ok_or_else(|| malformed("gamepad key is not a string"))?;
        let bit = match key {
            "lx" => 1,
            "ly" => 2,
            "rx" => 4,
            "ry" => 8,
            "btn" => 16,
            _ => return Err(malformed("unknown gamepad key")),
        };
        if seen & bit != 0 {
            return Err(malformed("gamepad key repeated"));
        }
        seen |= bit;
        match key {
            "lx" => pad.lx = Some(axis(v)?),
            "ly" => pad.ly = Some(axis(v)?),
            "rx" => pad.rx = Some(axis(v)?),
            "ry" => pad.ry = Some(axis(v)?),
            _ => pad.btn = buttons(v)?,
        }
    }
    let sticks = [(pad.lx, pad.ly), (pad.rx, pad.ry)];
    for (x, y) in sticks {
        if let (Some(x), Some(y)) = (x, y) {
            let probe = PadState {
                lx: x,
                ly: y,
                ..PadState::NEUTRAL
            };
            if !probe.sticks_in_circle() {
                return Err(Rejection::OutOfRange(
                    "stick outside the unit circle".into(),
                ));
            }
        }
    }
    Ok(pad)
}

fn axis(v: &Value) -> Result<f32, Rejection> {
    let x = match v {
        Value::F32(f) => f64::from(*f),
        Value::F64(f) => *f,
        Value::Integer(i) => i
            .as_f64()
            .ok_or_else(|| malformed("axis is not a number"))?,
        _ => return Err(malformed("axis is not a number")),
    };
    if x.is_nan() || !(-1.0..=1.0).contains(&x) {
        return Err(Rejection::OutOfRange("axis outside [-1, 1] or NaN".into()));
    }
    // In range, so the narrowing cannot overflow.
    #[allow(clippy::cast_possible_truncation)]
    Ok(x as f32)
}

fn buttons(v: &Value) -> Result<u32, Rejection> {
    let n = v.as_u64().ok_or_else(|| {
        if v.as_i64().is_some() {
            Rejection::OutOfRange("btn is negative".into())
        } else {
            malformed("btn is not an unsigned integer")
        }
    })?;
    if n >> BUTTON_COUNT != 0 {
        return Err(Rejection::OutOfRange(format!(
            "btn {n:#x} sets bits past button {}",
            BUTTON_COUNT - 1
        )));
    }
    // Checked above: fits in BUTTON_COUNT (< 32) bits.
    Ok(n as u32)
}

/// The wire value of a message (what [`encode`] serialises).
pub fn to_value(msg: &ControlMessage) -> Value {
    let pads = msg
        .gamepads
        .iter()
        .map(|(i, p)| {
            let mut m = Vec::with_capacity(5);
            for (name, v) in [("lx", p.lx), ("ly", p.ly), ("rx", p.rx), ("ry", p.ry)] {
                if let Some(v) = v {
                    m.push((Value::from(name), Value::F32(v)));
                }
            }
            m.push((Value::from("btn"), Value::from(p.btn)));
            (Value::from(i.to_string()), Value::Map(m))
        })
        .collect();
    let mut params = vec![Value::Map(pads)];
    if let Some(meta) = &msg.meta {
        let mut m = vec![
            (Value::from("seq"), Value::from(meta.seq)),
            (Value::from("sent_us"), Value::from(meta.sent_us)),
            (Value::from("source"), Value::from(meta.source.as_str())),
        ];
        if let Some(ds) = &meta.station {
            m.push((
                Value::from("ds"),
                Value::Map(vec![
                    (Value::from("v"), Value::from(STATION_VERSION)),
                    (Value::from("mode"), Value::from(ds.mode.name())),
                    (Value::from("enable"), Value::from(ds.enable)),
                    (Value::from("enable_id"), Value::from(ds.enable_id)),
                    (Value::from("estop"), Value::from(ds.estop)),
                ]),
            ));
        }
        params.push(Value::Map(m));
    }
    Value::Array(vec![
        Value::from(2),
        Value::from(METHOD),
        Value::Array(params),
    ])
}

/// Encodes a message as one datagram.
pub fn encode(msg: &ControlMessage) -> Vec<u8> {
    codec::encode(&to_value(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ControlMessage {
        ControlMessage {
            gamepads: vec![
                (
                    0,
                    PadInput {
                        lx: Some(0.5),
                        ly: Some(-0.5),
                        rx: None,
                        ry: Some(1.0),
                        btn: 0b101,
                    },
                ),
                (3, PadInput::from_state(PadState::NEUTRAL)),
            ],
            meta: Some(Meta {
                seq: 7,
                sent_us: 123,
                source: "laptop-1".into(),
                station: Some(StationRequest {
                    mode: Mode::Teleop,
                    enable: true,
                    enable_id: 3,
                    estop: false,
                }),
            }),
        }
    }

    #[test]
    fn roundtrip() {
        let msg = sample();
        assert_eq!(parse(&encode(&msg)), Ok(msg));
    }

    #[test]
    fn pie_style_without_meta_is_accepted() {
        let v = codec::from_json(
            &serde_json::json!([2, "update_gamepads", [{"0": {"lx": 0, "ly": 1, "btn": 3}}]]),
        );
        let msg = parse(&codec::encode(&v)).unwrap();
        assert_eq!(msg.meta, None);
        assert_eq!(msg.gamepads[0].1.ly, Some(1.0));
        assert_eq!(msg.gamepads[0].1.btn, 3);
    }

    fn reject(json: serde_json::Value) -> Rejection {
        parse(&codec::encode(&codec::from_json(&json))).unwrap_err()
    }

    #[test]
    fn rejections_have_the_right_kind() {
        use serde_json::json;
        let m = |pad: serde_json::Value| json!([2, "update_gamepads", [{"0": pad}]]);
        assert_eq!(reject(m(json!({"lx": 1.5}))).kind(), "out_of_range");
        assert_eq!(
            reject(m(json!({"lx": 0.9, "ly": 0.9}))).kind(),
            "out_of_range"
        );
        assert_eq!(reject(m(json!({"btn": 1 << 17}))).kind(), "out_of_range");
        assert_eq!(reject(m(json!({"btn": -1}))).kind(), "out_of_range");
        assert_eq!(reject(m(json!({"lx": "x"}))).kind(), "malformed");
        assert_eq!(reject(m(json!({"zz": 1}))).kind(), "malformed");
        assert_eq!(
            reject(json!([2, "update_gamepads", [{"8": {}}]])).kind(),
            "out_of_range"
        );
        assert_eq!(
            reject(json!([2, "update_gamepads", [{"01": {}}]])).kind(),
            "malformed"
        );
        assert_eq!(reject(json!([2, "other", [{}]])).kind(), "malformed");
        assert_eq!(
            reject(json!([0, 1, "update_gamepads", [{}]])).kind(),
            "malformed"
        );
        assert_eq!(
            reject(json!([2, "update_gamepads", [{}, {"seq": 1}]])).kind(),
            "malformed"
        );
        assert_eq!(parse(b"\xc1").unwrap_err().kind(), "malformed");
        assert_eq!(parse(b"").unwrap_err(), malformed("not an array"));
        assert_eq!(parse(b"\x02junk").unwrap_err(), malformed("not an array"));
        assert_eq!(
            parse(&[0u8; MAX_DATAGRAM_BYTES + 1]).unwrap_err().kind(),
            "oversized"
        );
        let nan = Value::Array(vec![
            Value::from(2),
            Value::from(METHOD),
            Value::Array(vec![Value::Map(vec![(
                Value::from("0"),
                Value::Map(vec![(Value::from("rx"), Value::F64(f64::NAN))]),
            )])]),
        ]);
        assert_eq!(
            parse(&codec::encode(&nan)).unwrap_err().kind(),
            "out_of_range"
        );
    }

    #[test]
    fn driver_station_fields_are_versioned_and_checked_whole() {
        use serde_json::json;
        let with = |ds: serde_json::Value| json!([2, "update_gamepads", [{}, {"seq": 1, "sent_us": 0, "source": "a", "ds": ds}]]);
        let ok =
            json!({"v": 1, "mode": "autonomous", "enable": true, "enable_id": 9, "estop": false});
        let msg = parse(&codec::encode(&codec::from_json(&with(ok)))).unwrap();
        let ds = msg.meta.and_then(|m| m.station).unwrap();
        assert_eq!(
            (ds.mode, ds.enable, ds.enable_id, ds.estop),
            (Mode::Autonomous, true, 9, false)
        );
        let v2 = json!({"v": 2, "mode": "teleop", "enable": true, "enable_id": 1, "estop": false});
        assert!(reject(with(v2)).to_string().contains("version 2"));
        let partial = json!({"v": 1, "mode": "teleop"});
        assert_eq!(reject(with(partial)).kind(), "malformed");
        let bad_mode =
            json!({"v": 1, "mode": "fast", "enable": true, "enable_id": 1, "estop": false});
        assert_eq!(reject(with(bad_mode)).kind(), "out_of_range");
        let big = json!({"v": 1, "mode": "teleop", "enable": true, "enable_id": 1u64 << 33, "estop": false});
        assert_eq!(reject(with(big)).kind(), "out_of_range");
        let extra = json!({"v": 1, "mode": "teleop", "enable": true, "enable_id": 1, "estop": false, "x": 1});
        assert_eq!(reject(with(extra)).kind(), "malformed");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Random bytes never panic, and anything accepted is within range.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(msg) = parse(&bytes) {
                for (_, p) in msg.gamepads {
                    prop_assert!(p.merge_into(&PadState::NEUTRAL).sticks_in_circle());
                }
            }
        }

        /// Mutated valid datagrams never panic either (reaches the deep validation paths).
        #[test]
        fn mutated_datagrams_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode(&sample());
            let n = bytes.len();
            for (at, b) in flips {
                bytes[at % n] = b;
            }
            let _ = parse(&bytes);
        }
    }
}

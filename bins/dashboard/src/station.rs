//! The page as a driver station (robot-state.md rule 3): each `ds` frame a browser sends
//! over the feed becomes exactly one control datagram to the gamepad receiver.
//!
//! There is no keep-alive here on purpose. The page sends its Gamepad-API input and its
//! requests (mode, enable, `enable_id`, estop) at about 50 Hz while it is visible; a tab
//! that is closed or hidden, a lost network or a frozen browser sends nothing, so nothing
//! reaches the receiver and its control timeout disables the robot. A dashboard that
//! repeated the last frame would keep a dead page driving.
//!
//! Every datagram is built by [`datagram`] and, with a team key, sealed by the link's own
//! [`Sealer`] session (robot-state.md, "Who may drive"): each page is a station of its
//! own, with its own counter and the challenges the receiver answers it with.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pitcrew::control::auth::Sealer;
use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest, MAX_GAMEPADS};
use pitcrew::gamepad::BUTTON_COUNT;
use pitcrew::robot::Mode;
use serde_json::Value;

/// The closest two datagrams of one page may follow each other: a page that sends faster
/// (a bug, a hostile script) is thinned to 200 Hz instead of flooding the receiver. The
/// page repeats every frame within 20 ms, so a thinned frame costs one period at most.
pub const MIN_SPACING: Duration = Duration::from_millis(5);

/// Why a `ds` frame sent nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadFrame {
    /// A field is missing or of the wrong type.
    #[error("driver-station frame: {0}")]
    Malformed(String),
}

fn bad(what: impl Into<String>) -> BadFrame {
    BadFrame::Malformed(what.into())
}

/// One browser's link: its source name and sequence numbers.
#[derive(Debug)]
pub struct Link {
    source: String,
    seq: u64,
    last: Option<Instant>,
    sealer: Option<Sealer>,
    /// Frames dropped by [`MIN_SPACING`].
    pub thinned: u64,
}

impl Link {
    /// A link named `source` (unique per page connection, at most 64 bytes), sealing with
    /// `sealer` when the robot has a team key.
    pub fn new(source: String, sealer: Option<Sealer>) -> Link {
        Link {
            source,
            seq: 0,
            last: None,
            sealer,
            thinned: 0,
        }
    }

    /// Takes an answer of the receiver (its challenge for the next datagrams); answers
    /// that are not authentic for this link's session are ignored.
    pub fn on_answer(&mut self, bytes: &[u8]) {
        if let Some(sealer) = self.sealer.as_mut() {
            let _ = sealer.open_answer(bytes);
        }
    }

    /// The link's source name, as the robot state shows it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The datagram for `frame`, or `Ok(None)` when it came too soon after the last.
    ///
    /// # Errors
    /// [`BadFrame`] when the frame is not a valid driver-station frame.
    pub fn on_frame(&mut self, frame: &Value, now: Instant) -> Result<Option<Vec<u8>>, BadFrame> {
        let (gamepads, request) = parse_frame(frame)?;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < MIN_SPACING)
        {
            self.thinned += 1;
            return Ok(None);
        }
        self.last = Some(now);
        self.seq += 1;
        let bytes = datagram(&self.source, self.seq, gamepads, request);
        Ok(Some(match self.sealer.as_mut() {
            Some(sealer) => sealer.seal(&bytes),
            None => bytes,
        }))
    }
}

/// The one function that makes a control datagram of the dashboard.
pub fn datagram(
    source: &str,
    seq: u64,
    gamepads: Vec<(u32, PadInput)>,
    request: StationRequest,
) -> Vec<u8> {
    let sent_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    control::encode(&ControlMessage {
        gamepads,
        meta: Some(Meta {
            seq,
            sent_us,
            source: source.to_owned(),
            station: Some(request),
        }),
    })
}

/// Reads `{"pads": {"0": {"lx", "ly", "rx", "ry", "btn"}}, "mode", "enable", "enable_id",
/// "estop"}`. Sticks are scaled into the unit circle (browsers report square ranges) and
/// axes clamped, so a real gamepad never produces a datagram the receiver rejects.
fn parse_frame(frame: &Value) -> Result<(Vec<(u32, PadInput)>, StationRequest), BadFrame> {
    let mode: Mode = frame["mode"]
        .as_str()
        .ok_or_else(|| bad("mode is not a string"))?
        .parse()
        .map_err(|e: pitcrew::robot::UnknownMode| bad(e.to_string()))?;
    let enable = frame["enable"]
        .as_bool()
        .ok_or_else(|| bad("enable is not a bool"))?;
    let enable_id = frame["enable_id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| bad("enable_id is not a u32"))?;
    let estop = frame["estop"].as_bool().unwrap_or(false);
    let mut gamepads = Vec::new();
    if let Some(pads) = frame["pads"].as_object() {
        for (index, pad) in pads {
            let index: u32 = index
                .parse()
                .ok()
                .filter(|i| *i < MAX_GAMEPADS)
                .ok_or_else(|| bad(format!("gamepad index {index:?}")))?;
            gamepads.push((index, parse_pad(pad)?));
        }
    }
    gamepads.sort_by_key(|(i, _)| *i);
    Ok((
        gamepads,
        StationRequest {
            mode,
            enable,
            enable_id,
            estop,
        },
    ))
}

fn parse_pad(pad: &Value) -> Result<PadInput, BadFrame> {
    let axis = |name: &str| -> Result<f32, BadFrame> {
        let x = pad[name].as_f64().unwrap_or(0.0);
        if !x.is_finite() {
            return Err(bad(format!("{name} is not a finite number")));
        }
        // Clamped to [-1, 1], so the narrowing is exact enough and cannot overflow.
        #[allow(clippy::cast_possible_truncation)]
        Ok(x.clamp(-1.0, 1.0) as f32)
    };
    let (lx, ly) = into_circle(axis("lx")?, axis("ly")?);
    let (rx, ry) = into_circle(axis("rx")?, axis("ry")?);
    let btn = pad["btn"].as_u64().unwrap_or(0) & ((1u64 << BUTTON_COUNT) - 1);
    Ok(PadInput {
        lx: Some(lx),
        ly: Some(ly),
        rx: Some(rx),
        ry: Some(ry),
        // Masked to BUTTON_COUNT (< 32) bits above.
        btn: u32::try_from(btn).unwrap_or(0),
    })
}

/// Scales a stick onto the unit disc (a square gamepad's corner is (1, 1)).
fn into_circle(x: f32, y: f32) -> (f32, f32) {
    let r = x.hypot(y);
    if r > 1.0 {
        (x / r * 0.999_999, y / r * 0.999_999)
    } else {
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame() -> Value {
        json!({"pads": {"0": {"lx": 1.0, "ly": 1.0, "rx": 0, "ry": -0.5, "btn": 5}},
               "mode": "teleop", "enable": true, "enable_id": 3, "estop": false})
    }

    #[test]
    fn a_frame_becomes_one_valid_datagram_with_the_station_fields() {
        let mut link = Link::new("dashboard-1-1".into(), None);
        let t0 = Instant::now();
        let bytes = link.on_frame(&frame(), t0).unwrap().unwrap();
        let msg = control::parse(&bytes).unwrap();
        let meta = msg.meta.unwrap();
        assert_eq!(meta.source, "dashboard-1-1");
        assert_eq!(meta.seq, 1);
        let ds = meta.station.unwrap();
        assert_eq!((ds.mode, ds.enable, ds.enable_id), (Mode::Teleop, true, 3));
        assert_eq!(msg.gamepads[0].1.btn, 5);
        // The corner was scaled into the circle, so the receiver accepts it.
        assert!(msg.gamepads[0].1.lx.unwrap() < 0.71);
        // Too soon after the last: thinned, nothing sent.
        assert_eq!(link.on_frame(&frame(), t0), Ok(None));
        let later = t0 + MIN_SPACING;
        let again = link.on_frame(&frame(), later).unwrap().unwrap();
        assert_eq!(control::parse(&again).unwrap().meta.unwrap().seq, 2);
    }

    #[test]
    fn with_a_key_every_datagram_is_sealed() {
        use pitcrew::key::{Key, KeyKind, KEY_BYTES};
        let key = Key::from_bytes(KeyKind::Team, [7; KEY_BYTES]);
        let mut link = Link::new("d".into(), Some(Sealer::new(&key).unwrap()));
        let bytes = link.on_frame(&frame(), Instant::now()).unwrap().unwrap();
        assert!(pitcrew::control::auth::is_sealed(&bytes));
    }

    #[test]
    fn bad_frames_send_nothing() {
        let mut link = Link::new("d".into(), None);
        let now = Instant::now();
        for f in [
            json!({}),
            json!({"mode": "fast", "enable": true, "enable_id": 1}),
            json!({"mode": "teleop", "enable": 1, "enable_id": 1}),
            json!({"mode": "teleop", "enable": true, "enable_id": -1}),
            json!({"mode": "teleop", "enable": true, "enable_id": 1, "pads": {"9": {}}}),
        ] {
            assert!(link.on_frame(&f, now).is_err(), "{f}");
        }
    }
}

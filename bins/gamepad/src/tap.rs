//! What the gamepad receiver offers on its tap (`pitcrew::tap`, `<ns>-tap-gamepad.sock`)
//! for recordings: every control datagram it applied, as it was parsed
//! (`/control/applied`), and every one it refused, with why (`/control/refused`).
//!
//! The receive thread hands over the datagram's bytes (at most
//! [`pitcrew::control::MAX_DATAGRAM_BYTES`]); the tap thread parses them again and writes
//! the JSON, so the control path pays one bounded copy, and only while a recorder listens.

use std::net::SocketAddr;

use pitcrew::control;
use pitcrew::tap::{Tap, TapEvent};
use serde_json::json;

/// The receiver's tap.
pub type GamepadTap = Tap<ControlEvent>;

/// The process name in the tap's address.
pub const PROCESS: &str = pitcrew::tap::GAMEPAD;

/// A datagram the receiver applied or refused.
#[derive(Debug)]
pub struct ControlEvent {
    /// When it arrived (CLOCK_MONOTONIC ns).
    pub t_ns: u64,
    /// Who sent it.
    pub peer: SocketAddr,
    /// Its bytes (cut at the datagram bound).
    pub bytes: Vec<u8>,
    /// `None` when applied; the kind and the reason when refused.
    pub refused: Option<(&'static str, String)>,
}

impl TapEvent for ControlEvent {
    fn time_ns(&self) -> u64 {
        self.t_ns
    }

    fn messages(&self, emit: &mut dyn FnMut(&'static str, serde_json::Value)) {
        let peer = self.peer.to_string();
        match &self.refused {
            None => {
                let Ok(msg) = control::parse(&self.bytes) else {
                    return;
                };
                let mut json = control::json::to_json(&msg);
                json["peer"] = peer.into();
                emit("/control/applied", json);
            }
            Some((kind, reason)) => {
                let source = control::parse(&self.bytes)
                    .ok()
                    .and_then(|m| m.meta.map(|m| m.source));
                emit(
                    "/control/refused",
                    json!({
                        "peer": peer,
                        "source": source,
                        "kind": kind,
                        "reason": reason,
                        "sealed": control::auth::is_sealed(&self.bytes),
                        "bytes": self.bytes.len(),
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::control::{ControlMessage, Meta, PadInput};

    fn messages(e: &ControlEvent) -> Vec<(&'static str, serde_json::Value)> {
        let mut out = Vec::new();
        e.messages(&mut |t, j| out.push((t, j)));
        out
    }

    #[test]
    fn applied_datagrams_are_parsed_and_refused_ones_say_why() {
        let bytes = control::encode(&ControlMessage {
            gamepads: vec![(
                0,
                PadInput {
                    ly: Some(0.5),
                    ..PadInput::default()
                },
            )],
            meta: Some(Meta {
                seq: 4,
                sent_us: 0,
                source: "ds".into(),
                station: None,
            }),
        });
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let applied = messages(&ControlEvent {
            t_ns: 1,
            peer,
            bytes: bytes.clone(),
            refused: None,
        });
        assert_eq!(applied[0].0, "/control/applied");
        assert_eq!(applied[0].1["gamepads"][0]["ly"], 0.5);
        assert_eq!(applied[0].1["meta"]["seq"], 4);
        let refused = messages(&ControlEvent {
            t_ns: 2,
            peer,
            bytes,
            refused: Some(("reordered", "not newer".into())),
        });
        assert_eq!(refused[0].0, "/control/refused");
        assert_eq!(refused[0].1["kind"], "reordered");
        assert_eq!(refused[0].1["source"], "ds");
    }
}

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
                        "bytes": self.bytes.len(),
                    }),
                );
            }
        }
    }
}

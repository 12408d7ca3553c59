//! Real gamepads through gilrs, mapped to the catalog's W3C "standard gamepad" order:
//! triggers become buttons past a threshold, sticks get a radial dead zone and stay in the
//! unit circle, y is up positive (as gilrs reports it). Gamepads get the lowest free index
//! when they connect and keep it until they disconnect.

use std::time::Instant;

use gilrs::{Axis, Button, EventType, GamepadId, Gilrs};

use crate::input::{Input, Poll};
use crate::record::Snapshot;
use crate::stick;
use pitcrew::control::MAX_GAMEPADS;
use pitcrew::gamepad::PadState;

/// gilrs buttons in catalog order (bit i of `btn`); the triggers (bits 6, 7) are read as
/// analog values against the threshold.
const BUTTONS: [Button; 17] = [
    Button::South,
    Button::East,
    Button::West,
    Button::North,
    Button::LeftTrigger,
    Button::RightTrigger,
    Button::LeftTrigger2,
    Button::RightTrigger2,
    Button::Select,
    Button::Start,
    Button::LeftThumb,
    Button::RightThumb,
    Button::DPadUp,
    Button::DPadDown,
    Button::DPadLeft,
    Button::DPadRight,
    Button::Mode,
];

/// How real gamepads are shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shaping {
    /// Radial dead zone of each stick, in [0, 1).
    pub dead_zone: f32,
    /// Trigger travel in [0, 1] past which a trigger counts as pressed.
    pub trigger_threshold: f32,
}

/// Opens gilrs; `Err` carries the reason when there is no input subsystem.
///
/// # Errors
/// The text of gilrs' error (no udev, unsupported platform).
pub fn open() -> Result<Gilrs, String> {
    match Gilrs::new() {
        Ok(g) => Ok(g),
        Err(gilrs::Error::NotImplemented(_)) => {
            Err("gamepads are not supported on this platform".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Reads one gamepad's state.
fn read(g: &gilrs::Gamepad<'_>, shaping: Shaping) -> PadState {
    let mut btn = 0u32;
    for (bit, b) in BUTTONS.iter().enumerate() {
        let pressed = match b {
            Button::LeftTrigger2 | Button::RightTrigger2 => g
                .button_data(*b)
                .map_or(g.is_pressed(*b), |d| d.value() > shaping.trigger_threshold),
            _ => g.is_pressed(*b),
        };
        if pressed {
            btn |= 1 << bit;
        }
    }
    let (lx, ly) = stick::shape(
        g.value(Axis::LeftStickX),
        g.value(Axis::LeftStickY),
        shaping.dead_zone,
    );
    let (rx, ry) = stick::shape(
        g.value(Axis::RightStickX),
        g.value(Axis::RightStickY),
        shaping.dead_zone,
    );
    PadState {
        lx,
        ly,
        rx,
        ry,
        btn,
    }
}

/// Gamepads read through gilrs.
pub struct GilrsInput {
    gilrs: Gilrs,
    shaping: Shaping,
    /// Which gilrs gamepad holds each index.
    slots: [Option<GamepadId>; MAX_GAMEPADS as usize],
    current: Snapshot,
    said_none: bool,
}

impl GilrsInput {
    /// Wraps an opened gilrs, taking the gamepads already connected.
    pub fn new(gilrs: Gilrs, shaping: Shaping) -> GilrsInput {
        let mut input = GilrsInput {
            gilrs,
            shaping,
            slots: [None; MAX_GAMEPADS as usize],
            current: Snapshot::new(),
            said_none: false,
        };
        let ids: Vec<GamepadId> = input.gilrs.gamepads().map(|(id, _)| id).collect();
        for id in ids {
            input.attach(id);
        }
        input.refresh();
        input
    }

    fn attach(&mut self, id: GamepadId) {
        if self.slots.contains(&Some(id)) {
            return;
        }
        let name = self.gilrs.gamepad(id).name().to_owned();
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(id);
                self.said_none = false;
                tracing::info!(gamepad = i, name = %name, "gamepad connected");
            }
            None => tracing::warn!(name = %name, "gamepad ignored: all {MAX_GAMEPADS} slots taken"),
        }
    }

    fn detach(&mut self, id: GamepadId) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if *slot == Some(id) {
                *slot = None;
                tracing::info!(gamepad = i, "gamepad disconnected");
            }
        }
    }

    /// Recomputes the snapshot; true when it changed.
    fn refresh(&mut self) -> bool {
        let mut next = Snapshot::new();
        for (i, id) in (0u32..).zip(self.slots) {
            if let Some(g) = id.and_then(|id| self.gilrs.connected_gamepad(id)) {
                next.push((i, read(&g, self.shaping)));
            }
        }
        if next.is_empty() && !self.said_none {
            self.said_none = true;
            tracing::warn!("no gamepad connected; waiting for one");
        }
        let changed = next != self.current;
        self.current = next;
        changed
    }
}

impl Input for GilrsInput {
    fn poll(&mut self, deadline: Instant) -> Poll {
        let wait = deadline.saturating_duration_since(Instant::now());
        let first = if wait.is_zero() {
            self.gilrs.next_event()
        } else {
            self.gilrs.next_event_blocking(Some(wait))
        };
        let Some(first) = first else {
            return Poll::Idle;
        };
        let mut event = Some(first);
        // Drain what is pending so a burst of axis events makes one datagram.
        while let Some(ev) = event {
            match ev.event {
                EventType::Connected => self.attach(ev.id),
                EventType::Disconnected => self.detach(ev.id),
                _ => {}
            }
            event = self.gilrs.next_event();
        }
        if self.refresh() {
            Poll::Changed
        } else {
            Poll::Idle
        }
    }

    fn snapshot(&self) -> &Snapshot {
        &self.current
    }
}

/// Lines describing the gamepads gilrs finds (for `--list`).
pub fn list(gilrs: &Gilrs) -> Vec<String> {
    gilrs
        .gamepads()
        .map(|(id, g)| {
            let uuid: String = g.uuid().iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{id}: {} (os name {:?}, uuid {uuid}, power {:?})",
                g.name(),
                g.os_name(),
                g.power_info()
            )
        })
        .collect()
}

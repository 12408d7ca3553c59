//! The receiver's gamepad buffers: `/<namespace>-gamepad-<index>`, created on a gamepad's
//! first datagram, each written atomically (one version holds all 21 values), marked
//! disconnected and neutral by the watchdog. Dropping [`Pads`] releases the segments.

use std::sync::Arc;
use std::time::Instant;

use pitcrew_buffer::{BufferError, Owner, SegmentKey};
use pitcrew_catalog::DeviceType;

use pitcrew::control::{PadInput, MAX_GAMEPADS};
use pitcrew::gamepad::{Button, GamepadLayout, PadState};

/// One gamepad buffer and what the receiver last wrote to it.
#[derive(Debug)]
pub struct Pad {
    owner: Owner,
    /// Where each value goes in the record stored per datagram.
    layout: GamepadLayout,
    /// The values last written.
    pub state: PadState,
    /// Whether the gamepad is marked connected.
    pub connected: bool,
    /// When a datagram last carried this gamepad.
    pub last_seen: Instant,
}

/// Why a datagram's gamepads could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The merged state (missing axes kept) puts a stick off the unit circle.
    #[error("gamepad {0}: a stick ends up outside the unit circle")]
    OffCircle(u32),
    /// The buffer refused the write or could not be created.
    #[error(transparent)]
    Buffer(#[from] BufferError),
}

/// The gamepad buffers of one namespace, by index.
#[derive(Debug)]
pub struct Pads {
    namespace: String,
    ty: Arc<DeviceType>,
    pads: Vec<Option<Pad>>,
}

impl Pads {
    /// Prepares the buffers of `namespace` for the catalog's `gamepad` type; none is
    /// created until its gamepad appears.
    pub fn new(namespace: &str, ty: Arc<DeviceType>) -> Pads {
        Pads {
            namespace: namespace.to_owned(),
            ty,
            pads: (0..MAX_GAMEPADS).map(|_| None).collect(),
        }
    }

    /// The catalog type of the buffers.
    pub fn gamepad_type(&self) -> Arc<DeviceType> {
        self.ty.clone()
    }

    /// The catalog name of button `bit`, if there is one.
    pub fn button_name(&self, bit: usize) -> Option<&'static str> {
        Button::ALL.get(bit).map(|b| b.param())
    }

    /// The gamepads that have a buffer, by index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Pad)> {
        (0u32..)
            .zip(&self.pads)
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// Applies a datagram's gamepads: all are checked before any is written, then each is
    /// written as one version and marked connected.
    ///
    /// # Errors
    /// [`ApplyError`]; nothing is written when a merged stick is off the circle.
    pub fn apply(&mut self, gamepads: &[(u32, PadInput)], now: Instant) -> Result<(), ApplyError> {
        let mut merged = [PadState::NEUTRAL; MAX_GAMEPADS as usize];
        for (index, input) in gamepads {
            let i = *index as usize;
            let Some(slot) = self.pads.get(i) else {
                continue;
            };
            let prev = slot.as_ref().map_or(PadState::NEUTRAL, |p| p.state);
            let next = input.merge_into(&prev);
            if !next.sticks_in_circle() {
                return Err(ApplyError::OffCircle(*index));
            }
            merged[i] = next;
        }
        for (index, _) in gamepads {
            let i = *index as usize;
            if self.pads.get(i).is_some_and(Option::is_none) {
                let owner =
                    Owner::create(&self.namespace, self.ty.clone(), SegmentKey::Index(*index))?;
                let layout = GamepadLayout::of(owner.name(), &self.ty)?;
                tracing::info!(
                    gamepad = index,
                    buffer = owner.name(),
                    "gamepad buffer created"
                );
                self.pads[i] = Some(Pad {
                    owner,
                    layout,
                    state: PadState::NEUTRAL,
                    connected: true,
                    last_seen: now,
                });
            }
            if let Some(Some(pad)) = self.pads.get_mut(i) {
                // The owner may only store into a valid buffer: reconnect first.
                if !pad.connected {
                    pad.owner.set_valid(true)?;
                    pad.connected = true;
                    tracing::debug!(gamepad = index, "gamepad connected");
                }
                write(pad, merged[i])?;
                pad.last_seen = now;
            }
        }
        Ok(())
    }

    /// Sets the gamepads accepted by `stale` to neutral and marks them disconnected.
    /// Returns how many changed. Errors are logged: the other gamepads still get neutral.
    pub fn disconnect_where(&mut self, stale: impl Fn(&Pad) -> bool) -> usize {
        let mut n = 0;
        for (i, slot) in self.pads.iter_mut().enumerate() {
            let Some(pad) = slot else { continue };
            if !pad.connected || !stale(pad) {
                continue;
            }
            // Neutral first: the owner may only store into a valid buffer.
            if let Err(e) = write(pad, PadState::NEUTRAL) {
                tracing::error!(gamepad = i, error = %e, "cannot set the gamepad neutral");
            }
            if let Err(e) = pad.owner.set_valid(false) {
                tracing::error!(gamepad = i, error = %e, "cannot mark the gamepad disconnected");
            }
            pad.connected = false;
            n += 1;
        }
        n
    }
}

/// Writes a complete state as one version (a raw record: no lookup by name per datagram).
fn write(pad: &mut Pad, state: PadState) -> Result<(), BufferError> {
    pad.owner
        .set_raw(pad.layout.mask(), &pad.layout.record(&state))?;
    pad.state = state;
    Ok(())
}

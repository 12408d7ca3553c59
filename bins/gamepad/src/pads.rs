//! The receiver's gamepad buffers: `/<namespace>-gamepad-<index>`, created on a gamepad's
//! first datagram, each written atomically (one version holds all 21 values), marked
//! disconnected and neutral by the watchdog. Dropping [`Pads`] releases the segments.
//!
//! A buffer that cannot be created (its file in `/dev/shm` made immutable, owned by another
//! user, a directory) makes that gamepad unavailable, not the datagram invalid: the other
//! gamepads and the driver station's requests still go through. It is logged once as an
//! error and then retried every [`CREATE_RETRY`], silently, until it works (logged again),
//! so a driver at 50 Hz does not turn it into an error line per datagram.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How often the buffer of a gamepad that could not be created is tried again: each try
/// may take the receive thread up to 100 ms (a segment that looks half-made is waited for).
pub const CREATE_RETRY: Duration = Duration::from_secs(5);

/// A gamepad whose buffer could not be created, and since when.
#[derive(Debug, Clone, Copy)]
struct Unavailable {
    next_try: Instant,
    failures: u64,
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
    unavailable: Vec<Option<Unavailable>>,
}

impl Pads {
    /// Prepares the buffers of `namespace` for the catalog's `gamepad` type; none is
    /// created until its gamepad appears.
    pub fn new(namespace: &str, ty: Arc<DeviceType>) -> Pads {
        Pads {
            namespace: namespace.to_owned(),
            ty,
            pads: (0..MAX_GAMEPADS).map(|_| None).collect(),
            unavailable: (0..MAX_GAMEPADS).map(|_| None).collect(),
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
    /// written as one version and marked connected. A gamepad whose buffer cannot be
    /// created is skipped (module docs); returns how many were.
    ///
    /// # Errors
    /// [`ApplyError`]; nothing is written when a merged stick is off the circle.
    pub fn apply(
        &mut self,
        gamepads: &[(u32, PadInput)],
        now: Instant,
    ) -> Result<usize, ApplyError> {
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
        let mut skipped = 0;
        for (index, _) in gamepads {
            let i = *index as usize;
            if self.pads.get(i).is_some_and(Option::is_none) && !self.create(*index, now) {
                skipped += 1;
                continue;
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
        Ok(skipped)
    }

    /// Creates the buffer of gamepad `index` unless it failed less than [`CREATE_RETRY`]
    /// ago; true when it exists now.
    fn create(&mut self, index: u32, now: Instant) -> bool {
        let i = index as usize;
        let Some(slot) = self.unavailable.get_mut(i) else {
            return false;
        };
        if let Some(u) = slot.as_mut() {
            if now < u.next_try {
                u.failures += 1;
                return false;
            }
        }
        let made = Owner::create(&self.namespace, self.ty.clone(), SegmentKey::Index(index))
            .and_then(|owner| GamepadLayout::of(owner.name(), &self.ty).map(|l| (l, owner)));
        match made {
            Ok((layout, owner)) => {
                match slot.take() {
                    Some(u) => tracing::info!(
                        gamepad = index,
                        buffer = owner.name(),
                        skipped = u.failures,
                        "gamepad buffer created at last: gamepad {index} is applied again"
                    ),
                    None => tracing::info!(
                        gamepad = index,
                        buffer = owner.name(),
                        "gamepad buffer created"
                    ),
                }
                self.pads[i] = Some(Pad {
                    owner,
                    layout,
                    state: PadState::NEUTRAL,
                    connected: true,
                    last_seen: now,
                });
                true
            }
            Err(e) => {
                if slot.is_none() {
                    tracing::error!(
                        gamepad = index,
                        error = %e,
                        retry_s = CREATE_RETRY.as_secs(),
                        "cannot create the buffer of gamepad {index}: its input is dropped until it can be (is its /dev/shm file another user's, immutable, or not a file?); retried every {} s, logged again when it works",
                        CREATE_RETRY.as_secs()
                    );
                }
                let failures = slot.map_or(0, |u| u.failures) + 1;
                *slot = Some(Unavailable {
                    next_try: now + CREATE_RETRY,
                    failures,
                });
                false
            }
        }
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

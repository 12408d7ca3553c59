//! Typed accessors for user code: [`Gamepad`] with named buttons and axes, and [`Device`]
//! for Smart Devices by UID with `get::<f32>("duty_cycle")` / `set(...)`. Both report every
//! problem as a [`BufferError`]; nothing here panics.

use std::sync::Arc;
use std::time::Duration;

use pitcrew_catalog::{Catalog, DeviceType, Scalar, Uid, Value};

use crate::buffer::{Buffer, WriteOutcome};
use crate::error::BufferError;
use crate::name::SegmentKey;

/// A gamepad button, in W3C "standard gamepad" order (the discriminant is the param id and
/// the bit of a control message's `btn` mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Button {
    A,
    B,
    X,
    Y,
    LBumper,
    RBumper,
    LTrigger,
    RTrigger,
    Back,
    Start,
    LStick,
    RStick,
    DpadUp,
    DpadDown,
    DpadLeft,
    DpadRight,
    Xbox,
}

impl Button {
    /// All buttons in id order.
    pub const ALL: [Button; 17] = [
        Button::A,
        Button::B,
        Button::X,
        Button::Y,
        Button::LBumper,
        Button::RBumper,
        Button::LTrigger,
        Button::RTrigger,
        Button::Back,
        Button::Start,
        Button::LStick,
        Button::RStick,
        Button::DpadUp,
        Button::DpadDown,
        Button::DpadLeft,
        Button::DpadRight,
        Button::Xbox,
    ];

    /// The catalog param name.
    pub fn param(self) -> &'static str {
        match self {
            Button::A => "button_a",
            Button::B => "button_b",
            Button::X => "button_x",
            Button::Y => "button_y",
            Button::LBumper => "l_bumper",
            Button::RBumper => "r_bumper",
            Button::LTrigger => "l_trigger",
            Button::RTrigger => "r_trigger",
            Button::Back => "button_back",
            Button::Start => "button_start",
            Button::LStick => "l_stick",
            Button::RStick => "r_stick",
            Button::DpadUp => "dpad_up",
            Button::DpadDown => "dpad_down",
            Button::DpadLeft => "dpad_left",
            Button::DpadRight => "dpad_right",
            Button::Xbox => "button_xbox",
        }
    }
}

/// A gamepad buffer, read by controllers.
#[derive(Debug)]
pub struct Gamepad {
    buf: Buffer,
}

impl Gamepad {
    /// Opens gamepad `index` of `namespace` with the embedded catalog.
    ///
    /// # Errors
    /// As [`Gamepad::open_with`].
    pub fn open(namespace: &str, index: u32) -> Result<Gamepad, BufferError> {
        Gamepad::open_with(namespace, Catalog::embedded(), index)
    }

    /// Opens gamepad `index` with a given catalog (which must have a `gamepad` type).
    ///
    /// # Errors
    /// [`BufferError::UnknownType`], then as [`Buffer::open`].
    pub fn open_with(
        namespace: &str,
        catalog: &Catalog,
        index: u32,
    ) -> Result<Gamepad, BufferError> {
        let ty = type_named(catalog, "gamepad")?;
        Ok(Gamepad {
            buf: Buffer::open(namespace, ty, SegmentKey::Index(index))?,
        })
    }

    /// Whether `b` is pressed.
    ///
    /// # Errors
    /// Invalid buffer (gamepad disconnected).
    pub fn button(&self, b: Button) -> Result<bool, BufferError> {
        self.buf.get(b.param())
    }

    /// Left stick, x axis, in [-1, 1].
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn joystick_left_x(&self) -> Result<f32, BufferError> {
        self.buf.get("joystick_left_x")
    }

    /// Left stick, y axis, in [-1, 1].
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn joystick_left_y(&self) -> Result<f32, BufferError> {
        self.buf.get("joystick_left_y")
    }

    /// Right stick, x axis, in [-1, 1].
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn joystick_right_x(&self) -> Result<f32, BufferError> {
        self.buf.get("joystick_right_x")
    }

    /// Right stick, y axis, in [-1, 1].
    ///
    /// # Errors
    /// Invalid buffer.
    pub fn joystick_right_y(&self) -> Result<f32, BufferError> {
        self.buf.get("joystick_right_y")
    }

    /// Everything at once, from one consistent version: what a controller reads each cycle.
    /// A disconnected gamepad (invalid buffer: the driver's laptop is gone or the control
    /// watchdog tripped) reads as [`GamepadState::NEUTRAL`], and so does one whose receiver
    /// died (its watchdog died with it, and the buffer still holds the last sticks), so that
    /// code written for the happy path stops the robot instead of failing.
    ///
    /// # Errors
    /// [`BufferError::Superseded`] when a new receiver replaced the segment (open it again).
    pub fn state(&self) -> Result<GamepadState, BufferError> {
        let mut names = [""; GAMEPAD_PARAMS];
        for (slot, b) in names.iter_mut().zip(Button::ALL) {
            *slot = b.param();
        }
        names[Button::ALL.len()..].copy_from_slice(&AXES);
        if !self.buf.owner_alive() {
            return Ok(GamepadState::NEUTRAL);
        }
        let values = match self.buf.read_values(&names) {
            Ok(values) => values,
            Err(BufferError::Invalid { .. }) => return Ok(GamepadState::NEUTRAL),
            Err(e) => return Err(e),
        };
        let mut state = GamepadState {
            connected: true,
            ..GamepadState::NEUTRAL
        };
        for (i, v) in values.iter().enumerate() {
            match (i, v) {
                (i, Value::Bool(true)) if i < Button::ALL.len() => state.buttons |= 1 << i,
                (i, Value::F32(x)) if i >= Button::ALL.len() => {
                    state.axes[i - Button::ALL.len()] = *x;
                }
                _ => {}
            }
        }
        Ok(state)
    }

    /// The counter to pass to [`Gamepad::wait_for_change`].
    pub fn change_count(&self) -> u32 {
        self.buf.update_count()
    }

    /// Blocks until the receiver stores new input or the gamepad connects or disconnects
    /// after `seen`, or `timeout` passes; returns the new counter. See
    /// [`Buffer::wait_for_update`].
    ///
    /// # Errors
    /// [`BufferError::Superseded`].
    pub fn wait_for_change(&self, seen: u32, timeout: Duration) -> Result<u32, BufferError> {
        self.buf.wait_for_update(seen, timeout)
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buf
    }
}

const AXES: [&str; 4] = [
    "joystick_left_x",
    "joystick_left_y",
    "joystick_right_x",
    "joystick_right_y",
];
const GAMEPAD_PARAMS: usize = Button::ALL.len() + AXES.len();

/// One consistent reading of a gamepad (see [`Gamepad::state`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GamepadState {
    /// Whether the gamepad is connected (false: every input reads neutral).
    pub connected: bool,
    /// Pressed buttons, bit i for the button with discriminant i.
    pub buttons: u32,
    /// Left x, left y, right x, right y, each in [-1, 1].
    pub axes: [f32; 4],
}

impl GamepadState {
    /// Nothing pressed, sticks centred, not connected.
    pub const NEUTRAL: GamepadState = GamepadState {
        connected: false,
        buttons: 0,
        axes: [0.0; 4],
    };

    /// Whether `b` is pressed.
    pub fn pressed(&self, b: Button) -> bool {
        self.buttons & (1 << b as u32) != 0
    }

    /// Left stick, x axis.
    pub fn left_x(&self) -> f32 {
        self.axes[0]
    }

    /// Left stick, y axis.
    pub fn left_y(&self) -> f32 {
        self.axes[1]
    }

    /// Right stick, x axis.
    pub fn right_x(&self) -> f32 {
        self.axes[2]
    }

    /// Right stick, y axis.
    pub fn right_y(&self) -> f32 {
        self.axes[3]
    }
}

/// A Smart Device buffer, for controllers and the CLI.
#[derive(Debug)]
pub struct Device {
    buf: Buffer,
}

impl Device {
    /// Opens the device of type `type_name` with `uid`.
    ///
    /// # Errors
    /// [`BufferError::UnknownType`], then as [`Buffer::open`].
    pub fn open(
        namespace: &str,
        catalog: &Catalog,
        type_name: &str,
        uid: Uid,
    ) -> Result<Device, BufferError> {
        let ty = type_named(catalog, type_name)?;
        Ok(Device {
            buf: Buffer::open(namespace, ty, SegmentKey::Uid(uid))?,
        })
    }

    /// Opens a device by UID alone (the type comes from the UID's device id).
    ///
    /// # Errors
    /// As [`Buffer::open_uid`].
    pub fn open_uid(namespace: &str, catalog: &Catalog, uid: Uid) -> Result<Device, BufferError> {
        Ok(Device {
            buf: Buffer::open_uid(namespace, catalog, uid)?,
        })
    }

    /// Reads a sensed value.
    ///
    /// # Errors
    /// As [`Buffer::get`].
    pub fn get<T: Scalar>(&self, param: &str) -> Result<T, BufferError> {
        self.buf.get(param)
    }

    /// Writes a desired value (clamped to bounds, with a warning).
    ///
    /// # Errors
    /// As [`Buffer::write`].
    pub fn set<T: Scalar>(&self, param: &str, value: T) -> Result<WriteOutcome, BufferError> {
        self.buf.write(param, value)
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.buf
    }
}

fn type_named(catalog: &Catalog, name: &str) -> Result<Arc<DeviceType>, BufferError> {
    catalog
        .get(name)
        .cloned()
        .ok_or_else(|| BufferError::UnknownType {
            type_name: name.to_owned(),
        })
}

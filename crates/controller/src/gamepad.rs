//! The gamepad vocabulary, in one place: buttons in catalog order, the four axes, a
//! gamepad's complete state ([`PadState`]) as the control datagram carries it and the
//! receiver stores it, and the typed reader [`Gamepad`] that controllers use
//! (neutral when disconnected). The receiver, the sender, the tests and the benchmarks all
//! take these names from here, so the catalog's gamepad type and the wire agree.

use std::time::Duration;

use pitcrew_buffer::{Buffer, BufferError, SegmentKey};
use pitcrew_catalog::Catalog;

use crate::device::type_named;

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
    /// The buffer's gamepad params, resolved once: what [`Gamepad::state`] reads.
    layout: GamepadLayout,
}

/// Where each button and axis sits in a raw record of them all (ascending param id, at
/// storage width), resolved once from the gamepad type: the receiver stores a
/// [`PadState`] and a controller reads a [`GamepadState`] each cycle with no lookup by
/// name ([`pitcrew_buffer::Owner::set_raw`], [`Buffer::sensed_raw`]).
#[derive(Debug, Clone)]
pub struct GamepadLayout {
    /// The params' bits.
    mask: u64,
    /// In ascending id: what each value is.
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy)]
enum Field {
    /// Button `Button::ALL[i]`.
    Button(usize),
    /// Axis `AXES[i]`.
    Axis(usize),
}

impl GamepadLayout {
    /// The layout of `ty`, the type of buffer `buffer`.
    ///
    /// # Errors
    /// [`BufferError::UnknownParam`] when the type lacks a button or axis;
    /// [`BufferError::Unsupported`] when one is not readable, not a `bool` button or a
    /// `float` axis, or has an id past 63.
    pub fn of(buffer: &str, ty: &pitcrew_catalog::DeviceType) -> Result<Self, BufferError> {
        use pitcrew_catalog::ScalarType;
        let mut fields = Vec::with_capacity(GAMEPAD_PARAMS);
        let mut mask = 0u64;
        let named = Button::ALL
            .iter()
            .enumerate()
            .map(|(i, b)| (b.param(), Field::Button(i)))
            .chain(AXES.iter().enumerate().map(|(i, a)| (*a, Field::Axis(i))));
        for (name, field) in named {
            let Some(p) = ty.params().iter().find(|p| p.name() == name) else {
                return Err(BufferError::UnknownParam {
                    name: buffer.to_owned(),
                    type_name: ty.name().to_owned(),
                    param: name.to_owned(),
                });
            };
            let want = match field {
                Field::Button(_) => ScalarType::Bool,
                Field::Axis(_) => ScalarType::Float,
            };
            if !p.readable() || p.id() >= 64 || p.scalar() != Some(want) {
                return Err(BufferError::Unsupported {
                    type_name: ty.name().to_owned(),
                    reason: format!(
                        "gamepad param `{name}` must be a readable {want} with an id below 64"
                    ),
                });
            }
            mask |= 1 << p.id();
            fields.push((p.id(), field));
        }
        fields.sort_by_key(|(id, _)| *id);
        Ok(GamepadLayout {
            mask,
            fields: fields.into_iter().map(|(_, f)| f).collect(),
        })
    }

    /// The bits of every button and axis.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// The raw record of `state`, for `set_raw(self.mask(), ..)`.
    pub fn record(&self, state: &PadState) -> Vec<u8> {
        let axes = state.axes();
        let mut out = Vec::with_capacity(GAMEPAD_PARAMS * 4);
        for field in &self.fields {
            match field {
                Field::Button(i) => out.push(u8::from(state.btn & (1 << i) != 0)),
                Field::Axis(i) => out.extend_from_slice(&axes[*i].to_le_bytes()),
            }
        }
        out
    }

    /// The connected state a raw record holds (a short record leaves the rest neutral).
    pub fn state(&self, raw: &[u8]) -> GamepadState {
        let mut state = GamepadState {
            connected: true,
            ..GamepadState::NEUTRAL
        };
        let mut rest = raw;
        for field in &self.fields {
            match (field, rest) {
                (Field::Button(i), [b, tail @ ..]) => {
                    if *b != 0 {
                        state.pad.btn |= 1 << i;
                    }
                    rest = tail;
                }
                (Field::Axis(i), [a, b, c, d, tail @ ..]) => {
                    state.pad.set_axis(*i, f32::from_le_bytes([*a, *b, *c, *d]));
                    rest = tail;
                }
                _ => break,
            }
        }
        state
    }
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
        let buf = Buffer::open(namespace, ty, SegmentKey::Index(index))?;
        let layout = GamepadLayout::of(buf.name(), buf.device_type())?;
        Ok(Gamepad { buf, layout })
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
        if !self.buf.owner_alive() {
            return Ok(GamepadState::NEUTRAL);
        }
        match self.buf.sensed_raw(self.layout.mask) {
            Ok(raw) => Ok(self.layout.state(&raw)),
            Err(BufferError::Invalid { .. }) => Ok(GamepadState::NEUTRAL),
            Err(e) => Err(e),
        }
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

/// The catalog names of the four axes, in the order of [`PadState`]'s fields and of
/// [`GamepadState::axes`].
pub const AXES: [&str; 4] = [
    "joystick_left_x",
    "joystick_left_y",
    "joystick_right_x",
    "joystick_right_y",
];
/// Buttons and axes: every param of the catalog's gamepad type.
pub const GAMEPAD_PARAMS: usize = Button::ALL.len() + AXES.len();

/// One consistent reading of a gamepad (see [`Gamepad::state`]): the pad as its driver
/// station last sent it, and whether it is connected. The pad is the same [`PadState`]
/// the control datagram carries and the receiver stores: one representation (a button
/// bitmask and four axes) from the driver's laptop to the controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GamepadState {
    /// Whether the gamepad is connected (false: every input reads neutral).
    pub connected: bool,
    /// The buttons and sticks.
    pub pad: PadState,
}

impl GamepadState {
    /// Nothing pressed, sticks centred, not connected.
    pub const NEUTRAL: GamepadState = GamepadState {
        connected: false,
        pad: PadState::NEUTRAL,
    };

    /// Whether `b` is pressed.
    pub fn pressed(&self, b: Button) -> bool {
        self.pad.btn & (1 << b as u32) != 0
    }

    /// Pressed buttons, bit i for the button with discriminant i.
    pub fn buttons(&self) -> u32 {
        self.pad.btn
    }

    /// Left x, left y, right x, right y (the order of [`AXES`]), each in [-1, 1].
    pub fn axes(&self) -> [f32; 4] {
        self.pad.axes()
    }

    /// Left stick, x axis.
    pub fn left_x(&self) -> f32 {
        self.pad.lx
    }

    /// Left stick, y axis.
    pub fn left_y(&self) -> f32 {
        self.pad.ly
    }

    /// Right stick, x axis.
    pub fn right_x(&self) -> f32 {
        self.pad.rx
    }

    /// Right stick, y axis.
    pub fn right_y(&self) -> f32 {
        self.pad.ry
    }
}

/// Number of buttons of the catalog's gamepad type (bits `0..BUTTON_COUNT` of a control
/// datagram's `btn`).
pub const BUTTON_COUNT: u32 = Button::ALL.len() as u32;

/// Slack on the unit-circle check: a sender that normalises in f64 and sends f32 lands a
/// hair outside the circle.
const STICK_SLACK: f32 = 1e-3;

/// One gamepad's complete state, as a control datagram carries it and its buffer stores it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PadState {
    /// Left stick x.
    pub lx: f32,
    /// Left stick y (up positive).
    pub ly: f32,
    /// Right stick x.
    pub rx: f32,
    /// Right stick y (up positive).
    pub ry: f32,
    /// Button bitmask (bit i = [`Button::ALL`]`[i]`).
    pub btn: u32,
}

impl PadState {
    /// Axes at 0, no button pressed.
    pub const NEUTRAL: PadState = PadState {
        lx: 0.0,
        ly: 0.0,
        rx: 0.0,
        ry: 0.0,
        btn: 0,
    };

    /// Whether both sticks lie within the unit circle (with rounding slack).
    pub fn sticks_in_circle(&self) -> bool {
        let limit = (1.0 + STICK_SLACK) * (1.0 + STICK_SLACK);
        self.lx * self.lx + self.ly * self.ly <= limit
            && self.rx * self.rx + self.ry * self.ry <= limit
    }

    /// The axes in [`AXES`] order.
    pub fn axes(&self) -> [f32; 4] {
        [self.lx, self.ly, self.rx, self.ry]
    }

    /// Sets axis `i` of [`AXES`] (an index past the four sets nothing).
    pub fn set_axis(&mut self, i: usize, value: f32) {
        match i {
            0 => self.lx = value,
            1 => self.ly = value,
            2 => self.rx = value,
            3 => self.ry = value,
            _ => {}
        }
    }

    /// The names of the pressed buttons.
    pub fn pressed_names(&self) -> Vec<&'static str> {
        Button::ALL
            .iter()
            .filter(|b| self.btn & (1 << **b as u32) != 0)
            .map(|b| b.param())
            .collect()
    }
}

impl From<PadState> for GamepadState {
    /// The pad, connected.
    fn from(pad: PadState) -> GamepadState {
        GamepadState {
            connected: true,
            pad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_catalog::Value;

    #[test]
    fn buttons_and_axes_match_the_catalog_gamepad() {
        let ty = Catalog::embedded().get("gamepad").unwrap();
        let names: Vec<&str> = ty.params().iter().map(|p| p.name()).collect();
        let ours: Vec<&str> = Button::ALL.iter().map(|b| b.param()).chain(AXES).collect();
        assert_eq!(names, ours);
        assert_eq!(BUTTON_COUNT, 17);
    }

    #[test]
    fn a_stored_pad_state_reads_back_from_the_buffer_and_neutral_once_invalid() {
        let ns = format!("u{}-gamepad", std::process::id());
        let ty = type_named(Catalog::embedded(), "gamepad").unwrap();
        let owner = pitcrew_buffer::Owner::create(&ns, ty, SegmentKey::Index(0)).unwrap();
        let p = PadState {
            lx: 0.25,
            ly: -1.0,
            rx: 0.5,
            ry: 0.0,
            btn: (1 << Button::A as u32) | (1 << Button::Xbox as u32),
        };
        let by_name: Vec<(&str, Value)> = Button::ALL
            .iter()
            .map(|b| (b.param(), Value::Bool(p.btn & (1 << *b as u32) != 0)))
            .chain(AXES.iter().zip(p.axes()).map(|(a, v)| (*a, Value::F32(v))))
            .collect();
        owner.set_values(&by_name).unwrap();
        owner.set_valid(true).unwrap();
        let g = Gamepad::open(&ns, 0).unwrap();
        assert_eq!(
            g.state().unwrap(),
            GamepadState {
                connected: true,
                ..GamepadState::from(p)
            }
        );
        let layout = GamepadLayout::of(owner.name(), owner.device_type()).unwrap();
        let q = PadState {
            rx: -0.75,
            btn: 1 << Button::DpadLeft as u32,
            ..p
        };
        owner.set_raw(layout.mask(), &layout.record(&q)).unwrap();
        assert_eq!(
            g.state().unwrap(),
            GamepadState {
                connected: true,
                ..GamepadState::from(q)
            },
            "a raw record reads as the values stored by name"
        );
        owner.set_valid(false).unwrap();
        assert_eq!(g.state().unwrap(), GamepadState::NEUTRAL);
        drop((g, owner));
        let _ = pitcrew_buffer::remove_namespace(&ns);
    }

    #[test]
    fn a_gamepad_type_that_cannot_hold_the_datagrams_is_refused() {
        let yaml = |button_a: &str| {
            let mut y =
                format!("gamepad:\n  params:\n    - {{name: button_a, type: {button_a}}}\n");
            let buttons = Button::ALL.iter().skip(1).map(|b| (b.param(), "bool"));
            for (name, ty) in buttons.chain(AXES.iter().map(|a| (*a, "float"))) {
                y.push_str(&format!("    - {{name: {name}, type: {ty}}}\n"));
            }
            Catalog::from_yaml_str(&y, "test").unwrap()
        };
        let fits = yaml("bool");
        assert!(GamepadLayout::of("g", fits.get("gamepad").unwrap()).is_ok());
        let wrong = yaml("int32");
        let err = GamepadLayout::of("g", wrong.get("gamepad").unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`button_a` must be a readable bool"),
            "{err}"
        );
        let short = Catalog::from_yaml_str(
            "gamepad:\n  params:\n    - {name: button_a, type: bool}\n",
            "t",
        )
        .unwrap();
        let err = GamepadLayout::of("g", short.get("gamepad").unwrap()).unwrap_err();
        assert!(matches!(err, BufferError::UnknownParam { .. }), "{err}");
    }

    #[test]
    fn a_pad_state_reads_back_as_the_same_gamepad_state() {
        let p = PadState {
            lx: 0.5,
            ly: -0.5,
            rx: 0.0,
            ry: 1.0,
            btn: 1 << Button::Y as u32,
        };
        let g = GamepadState::from(p);
        assert!(g.pressed(Button::Y) && !g.pressed(Button::A));
        assert_eq!((g.left_x(), g.left_y(), g.right_y()), (0.5, -0.5, 1.0));
        assert_eq!(p.pressed_names(), ["button_y"]);
        assert!(p.sticks_in_circle());
        assert!(!PadState {
            lx: 0.9,
            ly: 0.9,
            ..p
        }
        .sticks_in_circle());
    }
}

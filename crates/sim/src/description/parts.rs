//! The parts of a description, each read from its mapping with the line of every error.

use std::collections::HashMap;

use pitcrew_catalog::yaml::{Node, NodeKind};
use pitcrew_catalog::{Catalog, Uid};

use super::fields::{fail, list, point, At, Fields};
use super::{
    Channel, Description, DescriptionError, DrivetrainSpec, Mechanism, Neutral, Port, Sensor,
    ShaftRef,
};
use crate::drivetrain::{Chassis, Pose};
use crate::field::{Field, Tag, Tape};
use crate::motor::rpm;
use crate::{Battery, DcMotor, Gearbox, ParamError};

/// A [`ParamError`] at `line`.
fn physical(line: usize) -> impl Fn(ParamError) -> At {
    move |e| At {
        line,
        message: e.to_string(),
    }
}

/// Parses a field file.
///
/// # Errors
/// [`DescriptionError`] naming `origin` and the line.
pub fn field_from_yaml_str(text: &str, origin: &str) -> Result<Field, DescriptionError> {
    let root = super::fields::document(text, "a field file").map_err(|e| e.in_file(origin))?;
    field(&root).map_err(|e| e.in_file(origin))
}

/// `size: [w, h]`, `tape: [{from, to, width}]`, `tags: [{at, id, radius}]`.
pub fn field(node: &Node) -> Result<Field, At> {
    let f = Fields::of(node, "the field", &["size", "tape", "tags"])?;
    let size = f.need("size")?;
    let (w, h) = point(size, "size")?;
    let mut field = Field::new(w, h).map_err(physical(size.line))?;
    if let Some(tape) = f.get("tape") {
        for t in list(tape, "tape")? {
            let tf = Fields::of(t, "a piece of tape", &["from", "to", "width"])?;
            let piece = Tape {
                a: point(tf.need("from")?, "from")?,
                b: point(tf.need("to")?, "to")?,
                width: tf.number_or("width", 0.05)?,
            };
            field.add_tape(piece).map_err(physical(t.line))?;
        }
    }
    if let Some(tags) = f.get("tags") {
        for t in list(tags, "tags")? {
            let tf = Fields::of(t, "a tag", &["at", "id", "radius"])?;
            let id_node = tf.need("id")?;
            let id = id_node
                .as_int()
                .and_then(|i| u32::try_from(i).ok())
                .map_or_else(
                    || {
                        fail(
                            id_node.line,
                            format!(
                                "a tag's `id` must be a whole number 0..=4294967295, found {}",
                                id_node.describe()
                            ),
                        )
                    },
                    Ok,
                )?;
            let tag = Tag {
                at: point(tf.need("at")?, "at")?,
                radius: tf.number_or("radius", 0.05)?,
                id,
            };
            field.add_tag(tag).map_err(physical(t.line))?;
        }
    }
    Ok(field)
}

/// The robot's parts from the description's top-level mapping.
pub fn robot(top: &Fields<'_>, catalog: &Catalog, field: Field) -> Result<Description, At> {
    let (w, h) = field.size();
    let start = match top.get("start") {
        Some(n) => {
            let s = Fields::of(n, "`start`", &["x", "y", "heading"])?;
            Pose {
                x: s.number("x")?,
                y: s.number("y")?,
                heading: s.number_or("heading", 0.0)?,
            }
        }
        None => Pose {
            x: w / 2.0,
            y: h / 2.0,
            heading: 0.0,
        },
    };
    let seed = match top.get("seed") {
        Some(n) => n.as_int().and_then(|i| u64::try_from(i).ok()).map_or_else(
            || {
                fail(
                    n.line,
                    format!("`seed` must be a whole number, found {}", n.describe()),
                )
            },
            Ok,
        )?,
        None => 0,
    };
    let motors = match top.get("motors") {
        Some(n) => motors(n)?,
        None => HashMap::new(),
    };
    let mut ports = Ports::default();
    let drivetrain = top
        .get("drivetrain")
        .map(|n| drivetrain(n, catalog, &motors, &mut ports))
        .transpose()?;
    let mechanisms = match top.get("mechanisms") {
        Some(n) => mechanisms(n, catalog, &motors, &mut ports)?,
        None => Vec::new(),
    };
    let sensors = match top.get("sensors") {
        Some(n) => list(n, "sensors")?
            .iter()
            .map(|s| sensor(s, catalog, drivetrain.is_some(), &mechanisms))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let battery = match top.get("battery") {
        Some(n) => battery(n, catalog)?,
        None => (Battery::lipo_3s(), None),
    };
    Ok(Description {
        origin: String::new(),
        start,
        seed,
        battery,
        drivetrain,
        mechanisms,
        sensors,
        field,
    })
}

/// `name: {nominal_voltage, stall_torque, stall_current, free_current, free_speed_rpm}`.
fn motors(node: &Node) -> Result<HashMap<String, DcMotor>, At> {
    let NodeKind::Map(entries) = &node.kind else {
        return fail(
            node.line,
            format!(
                "`motors` must map names to datasheets, found {}",
                node.describe()
            ),
        );
    };
    let mut out = HashMap::new();
    for (k, v) in entries {
        let Some(name) = k.as_scalar() else {
            return fail(k.line, "a motor's name must be text");
        };
        let m = Fields::of(
            v,
            "a motor",
            &[
                "nominal_voltage",
                "stall_torque",
                "stall_current",
                "free_current",
                "free_speed_rpm",
            ],
        )?;
        let motor = DcMotor::new(
            m.number("nominal_voltage")?,
            m.number("stall_torque")?,
            m.number("stall_current")?,
            m.number("free_current")?,
            rpm(m.number("free_speed_rpm")?),
        )
        .map_err(physical(v.line))?;
        if out.insert(name.to_owned(), motor).is_some() {
            return fail(k.line, format!("motor `{name}` is defined twice"));
        }
    }
    Ok(out)
}

/// The controller outputs already given to a shaft, so none drives two.
#[derive(Default)]
struct Ports(Vec<(Uid, Port, usize)>);

/// A UID at `node` whose catalog type is one of `types`; returns it and its type's name.
fn uid_of<'c>(
    node: &Node,
    catalog: &'c Catalog,
    types: &[&str],
    role: &str,
) -> Result<(Uid, &'c str), At> {
    let Some(text) = node.as_scalar() else {
        return fail(
            node.line,
            format!("{role} must be a device UID, found {}", node.describe()),
        );
    };
    let uid: Uid = text.parse().map_err(|e| At {
        line: node.line,
        message: format!("`{text}` is not a device UID: {e}"),
    })?;
    match catalog.type_of(uid) {
        Some(t) if types.contains(&t.name()) => Ok((uid, t.name())),
        Some(t) => fail(
            node.line,
            format!(
                "UID {uid} is a {}, but {role} must be a {}",
                t.name(),
                types.join(" or ")
            ),
        ),
        None => fail(
            node.line,
            format!(
                "UID {uid} has device id {}, which no catalog type has",
                uid.device_id()
            ),
        ),
    }
}

/// The keys of a motor controller output ([`channel`]).
const CHANNEL_KEYS: [&str; 8] = [
    "controller",
    "channel",
    "motor",
    "motors",
    "ratio",
    "inverted",
    "counts_per_rev",
    "neutral",
];

/// One motor controller output with its motors, from the [`CHANNEL_KEYS`] of `f`.
fn channel(
    f: &Fields<'_>,
    catalog: &Catalog,
    motors: &HashMap<String, DcMotor>,
    ports: &mut Ports,
) -> Result<Channel, At> {
    let controller_node = f.need("controller")?;
    let (controller, ty) = uid_of(
        controller_node,
        catalog,
        &["koala-bear", "polar-bear", "yogi-bear"],
        "`controller`",
    )?;
    let port = match (ty, f.get("channel").map(|n| (n.as_scalar(), n.line))) {
        ("koala-bear", Some((Some("a"), _))) => Port::A,
        ("koala-bear", Some((Some("b"), _))) => Port::B,
        ("koala-bear", other) => {
            return fail(
                other.map_or(f.line(), |(_, l)| l),
                "a koala-bear output needs `channel: a` or `channel: b`",
            )
        }
        (_, None) => Port::Only,
        (_, Some((_, line))) => {
            return fail(line, format!("a {ty} has one output: leave `channel` out"))
        }
    };
    if let Some((_, _, first)) = ports
        .0
        .iter()
        .find(|(u, p, _)| *u == controller && *p == port)
    {
        return fail(
            controller_node.line,
            format!("this controller output already drives the shaft on line {first}"),
        );
    }
    ports.0.push((controller, port, controller_node.line));
    let (motor_name, motor_line) = f.text("motor")?;
    let Some(motor) = motors.get(motor_name) else {
        let mut known: Vec<&str> = motors.keys().map(String::as_str).collect();
        known.sort_unstable();
        return fail(
            motor_line,
            format!(
                "no motor `{motor_name}` under `motors` (defined: {})",
                known.join(", ")
            ),
        );
    };
    let count = f.number_or("motors", 1.0)?;
    let count = if count >= 1.0 && count.fract() == 0.0 && count <= 16.0 {
        count as u32
    } else {
        return fail(
            f.line(),
            format!("`motors` must be a whole number 1..=16, found {count}"),
        );
    };
    let gearbox =
        Gearbox::new(*motor, count, f.number_or("ratio", 1.0)?).map_err(physical(f.line()))?;
    let neutral = match f.get("neutral").map(|n| (n.as_scalar(), n.line)) {
        None | Some((Some("brake"), _)) => Neutral::Brake,
        Some((Some("coast"), _)) => Neutral::Coast,
        Some((_, line)) => return fail(line, "`neutral` must be `brake` or `coast`"),
    };
    let counts_per_rev = f.number_or("counts_per_rev", 1440.0)?;
    crate::positive("counts_per_rev", counts_per_rev).map_err(physical(f.line()))?;
    Ok(Channel {
        controller,
        port,
        gearbox,
        inverted: f.flag_or("inverted", false)?,
        counts_per_rev,
        neutral,
    })
}

fn drivetrain(
    node: &Node,
    catalog: &Catalog,
    motors: &HashMap<String, DcMotor>,
    ports: &mut Ports,
) -> Result<DrivetrainSpec, At> {
    let f = Fields::of(
        node,
        "`drivetrain`",
        &[
            "wheel_radius",
            "track_width",
            "mass",
            "moment",
            "radius",
            "left",
            "right",
        ],
    )?;
    let chassis = Chassis {
        wheel_radius: f.number("wheel_radius")?,
        track_width: f.number("track_width")?,
        mass: f.number("mass")?,
        moment: f.number("moment")?,
    }
    .checked()
    .map_err(physical(f.line()))?;
    let radius = f.number("radius")?;
    crate::positive("radius", radius).map_err(physical(f.line()))?;
    Ok(DrivetrainSpec {
        chassis,
        radius,
        left: channel(
            &Fields::of(f.need("left")?, "`left`", &CHANNEL_KEYS)?,
            catalog,
            motors,
            ports,
        )?,
        right: channel(
            &Fields::of(f.need("right")?, "`right`", &CHANNEL_KEYS)?,
            catalog,
            motors,
            ports,
        )?,
    })
}

fn mechanisms(
    node: &Node,
    catalog: &Catalog,
    motors: &HashMap<String, DcMotor>,
    ports: &mut Ports,
) -> Result<Vec<Mechanism>, At> {
    let NodeKind::Map(entries) = &node.kind else {
        return fail(
            node.line,
            format!(
                "`mechanisms` must map names to mechanisms, found {}",
                node.describe()
            ),
        );
    };
    let mut out: Vec<Mechanism> = Vec::new();
    for (k, v) in entries {
        let Some(name) = k.as_scalar() else {
            return fail(k.line, "a mechanism's name must be text");
        };
        if name == "left" || name == "right" || out.iter().any(|m| m.name == name) {
            return fail(
                k.line,
                format!("mechanism name `{name}` is taken (the wheels are `left` and `right`)"),
            );
        }
        let mut keys = CHANNEL_KEYS.to_vec();
        keys.push("inertia");
        let f = Fields::of(v, "a mechanism", &keys)?;
        let channel = channel(&f, catalog, motors, ports)?;
        let inertia = f.number("inertia")?;
        crate::positive("inertia", inertia).map_err(physical(v.line))?;
        out.push(Mechanism {
            name: name.to_owned(),
            channel,
            inertia,
        });
    }
    Ok(out)
}

fn battery(node: &Node, catalog: &Catalog) -> Result<(Battery, Option<Uid>), At> {
    let f = Fields::of(
        node,
        "`battery`",
        &["uid", "open_circuit_v", "resistance", "cells"],
    )?;
    let uid = f
        .get("uid")
        .map(|n| uid_of(n, catalog, &["battery"], "the battery's `uid`").map(|(u, _)| u))
        .transpose()?;
    let cells = f.number_or("cells", 3.0)?;
    if !(1.0..=3.0).contains(&cells) || cells.fract() != 0.0 {
        return fail(
            f.line(),
            format!("`cells` must be 1, 2 or 3 (the battery device reports three), found {cells}"),
        );
    }
    let battery = Battery::new(
        f.number_or("open_circuit_v", 12.6)?,
        f.number_or("resistance", 0.02)?,
        cells as u32,
    )
    .map_err(physical(f.line()))?;
    Ok((battery, uid))
}

/// The sensor types a `sensors:` entry can be.
const SENSOR_TYPES: [&str; 5] = [
    "encoder",
    "line-follower",
    "limit-switch",
    "rfid",
    "servo-motor",
];

/// One `sensors:` entry; its keys depend on the type of its UID.
fn sensor(
    node: &Node,
    catalog: &Catalog,
    has_drivetrain: bool,
    mechanisms: &[Mechanism],
) -> Result<Sensor, At> {
    let NodeKind::Map(entries) = &node.kind else {
        let found = node.describe();
        return fail(
            node.line,
            format!("a sensor must be a mapping with a `uid`, found {found}"),
        );
    };
    let Some((_, uid_node)) = entries.iter().find(|(k, _)| k.as_scalar() == Some("uid")) else {
        return fail(node.line, "a sensor needs `uid` (its type is the UID's)");
    };
    let (uid, ty) = uid_of(uid_node, catalog, &SENSOR_TYPES, "a sensor's `uid`")?;
    match ty {
        "encoder" => encoder(node, uid, has_drivetrain, mechanisms),
        "line-follower" => {
            let f = Fields::of(node, "a line follower", &["uid", "left", "center", "right"])?;
            let mount = |key| point(f.need(key)?, key);
            Ok(Sensor::LineFollower {
                uid,
                mounts: [mount("left")?, mount("center")?, mount("right")?],
            })
        }
        "limit-switch" => {
            const SWITCHES: [&str; 3] = ["switch0", "switch1", "switch2"];
            let f = Fields::of(
                node,
                "a limit switch",
                &["uid", SWITCHES[0], SWITCHES[1], SWITCHES[2]],
            )?;
            let mut switches = Vec::new();
            for (i, key) in SWITCHES.into_iter().enumerate() {
                if let Some(n) = f.get(key) {
                    switches.push((i, point(n, key)?));
                }
            }
            Ok(Sensor::LimitSwitch { uid, switches })
        }
        "rfid" => {
            let f = Fields::of(node, "an RFID reader", &["uid", "at"])?;
            Ok(Sensor::Rfid {
                uid,
                at: f.get("at").map_or(Ok((0.0, 0.0)), |n| point(n, "at"))?,
            })
        }
        _ => {
            let f = Fields::of(node, "a servo", &["uid", "speed"])?;
            let speed = f.number_or("speed", 2.0)?;
            crate::positive("speed", speed).map_err(physical(f.line()))?;
            Ok(Sensor::Servo { uid, speed })
        }
    }
}

/// An `encoder` entry: the shaft it is `on`, its counts and noise.
fn encoder(
    node: &Node,
    uid: Uid,
    has_drivetrain: bool,
    mechanisms: &[Mechanism],
) -> Result<Sensor, At> {
    let f = Fields::of(
        node,
        "an encoder",
        &["uid", "on", "counts_per_rev", "noise"],
    )?;
    let (on, line) = f.text("on")?;
    let on = match on {
        "left" if has_drivetrain => ShaftRef::Left,
        "right" if has_drivetrain => ShaftRef::Right,
        name => match mechanisms.iter().position(|m| m.name == name) {
            Some(i) => ShaftRef::Mechanism(i),
            None => {
                let known = "`left`/`right` with a drivetrain, or a mechanism";
                return fail(line, format!("`on: {name}` names no shaft ({known})"));
            }
        },
    };
    let counts_per_rev = f.number_or("counts_per_rev", 1440.0)?;
    crate::positive("counts_per_rev", counts_per_rev).map_err(physical(line))?;
    let noise = f.number_or("noise", 0.0)?;
    crate::non_negative("noise", noise).map_err(physical(line))?;
    Ok(Sensor::Encoder {
        uid,
        on,
        counts_per_rev,
        noise,
    })
}

//! Catalog loading: every rejection rule of the spec (each asserting file, line and key),
//! and the shipped catalog against the spec's table.

use pitcrew_catalog::{Access, Catalog, LoadError, LoadErrorKind, ScalarType, Value};

const FILE: &str = "test.yaml";

/// Loads `text` and returns the error, which must exist.
fn reject(text: &str) -> LoadError {
    match Catalog::from_yaml_str(text, FILE) {
        Ok(_) => panic!("catalog was accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error's line, key and message fragment, and that the message names all three.
fn assert_rejects(text: &str, line: usize, key: &str, fragment: &str) -> LoadError {
    let err = reject(text);
    let msg = err.to_string();
    assert_eq!(err.line(), Some(line), "{msg}");
    assert_eq!(err.key(), Some(key), "{msg}");
    assert!(
        msg.starts_with(&format!("{FILE}:{line}: key `{key}`: ")),
        "{msg}"
    );
    assert!(msg.contains(fragment), "`{fragment}` not in: {msg}");
    err
}

#[test]
fn unknown_key_in_type() {
    let text = "motor:\n  device_id: 1\n  colour: red\n";
    assert_rejects(
        text,
        3,
        "motor.colour",
        "unknown key (expected one of: device_id",
    );
}

#[test]
fn unknown_key_in_param() {
    let text = "motor:\n  params:\n    - name: a\n      type: bool\n      defualt: true\n";
    assert_rejects(text, 5, "motor.params[0].defualt", "unknown key");
}

#[test]
fn unknown_type() {
    let text = "motor:\n  params:\n    - {name: a, type: float64}\n";
    assert_rejects(text, 3, "motor.params[0].type", "unknown type `float64`");
    let text = "motor:\n  params:\n    - {name: a, type: 'uint8[0]'}\n";
    assert_rejects(text, 3, "motor.params[0].type", "unknown type `uint8[0]`");
}

#[test]
fn duplicate_type_name() {
    let text = "motor:\n  device_id: 1\nservo:\n  device_id: 2\nmotor:\n  device_id: 3\n";
    let err = assert_rejects(
        text,
        5,
        "motor",
        "duplicate type name `motor` (first defined on line 1)",
    );
    assert!(matches!(
        err.kind(),
        Some(LoadErrorKind::DuplicateTypeName { first_line: 1, .. })
    ));
}

#[test]
fn duplicate_device_id() {
    let text = "motor:\n  device_id: 7\nservo:\n  device_id: 7\n";
    let err = assert_rejects(text, 4, "servo.device_id", "duplicate device id 7");
    assert!(err.to_string().contains("`motor` on line 2"), "{err}");
}

#[test]
fn duplicate_param_name() {
    let text = "motor:\n  params:\n    - {name: a, type: bool}\n    - {name: a, type: int8}\n";
    assert_rejects(
        text,
        4,
        "motor.params[1].name",
        "duplicate param name `a` (first on line 3)",
    );
}

#[test]
fn more_than_16_params_on_a_smart_device() {
    let mut text = String::from("motor:\n  device_id: 1\n  params:\n");
    for i in 0..17 {
        text.push_str(&format!("    - {{name: p{i}, type: bool}}\n"));
    }
    assert_rejects(
        &text,
        3,
        "motor.params",
        "at most 16 params, this one has 17",
    );
    // A plain peripheral may have more (the gamepad has 21).
    let plain = text.replace("  device_id: 1\n", "");
    assert!(Catalog::from_yaml_str(&plain, FILE).is_ok());
}

#[test]
fn smart_param_wider_than_253_bytes() {
    let text = "cam:\n  device_id: 9\n  params:\n    - {name: img, type: 'uint8[254]'}\n";
    assert_rejects(
        text,
        4,
        "cam.params[0].type",
        "at most 253 bytes wide, `uint8[254]` is 254",
    );
    let ok = "cam:\n  device_id: 9\n  params:\n    - {name: img, type: 'uint8[253]'}\n";
    assert!(Catalog::from_yaml_str(ok, FILE).is_ok());
    let plain = "cam:\n  params:\n    - {name: img, type: 'uint8[128][128][3]'}\n";
    let cat = Catalog::from_yaml_str(plain, FILE).unwrap();
    assert_eq!(cat.get("cam").unwrap().params()[0].storage_width(), 49152);
}

#[test]
fn lower_above_upper() {
    let text = "m:\n  params:\n    - name: a\n      type: float\n      lower: 2\n      upper: 1\n";
    assert_rejects(
        text,
        5,
        "m.params[0].lower",
        "lower bound 2 is above upper bound 1",
    );
}

#[test]
fn bound_outside_the_types_range() {
    let text = "m:\n  params:\n    - {name: a, type: uint8, lower: -1}\n";
    assert_rejects(
        text,
        3,
        "m.params[0].lower",
        "bound -1 is outside the range of uint8",
    );
    let text = "m:\n  params:\n    - name: a\n      type: int16\n      upper: 40000\n";
    assert_rejects(
        text,
        5,
        "m.params[0].upper",
        "bound 40000 is outside the range of int16",
    );
    let text = "m:\n  params:\n    - {name: a, type: float, upper: 1e39}\n";
    assert_rejects(text, 3, "m.params[0].upper", "outside the range of float");
    let text = "m:\n  params:\n    - {name: a, type: bool, upper: 1}\n";
    assert_rejects(text, 3, "m.params[0].upper", "numeric scalar params only");
}

#[test]
fn neither_readable_nor_writeable() {
    let text = "m:\n  params:\n    - name: a\n      type: bool\n      readable: false\n";
    assert_rejects(
        text,
        5,
        "m.params[0].readable",
        "must be readable or writeable",
    );
}

#[test]
fn bad_safe_values() {
    let base = "m:\n  params:\n    - {name: a, type: float, writeable: true, lower: -1, upper: 1, ";
    assert_rejects(
        &format!("{base}safe: 2}}\n"),
        3,
        "m.params[0].safe",
        "outside the bounds",
    );
    assert_rejects(
        &format!("{base}safe: x}}\n"),
        3,
        "m.params[0].safe",
        "expected a number",
    );
    let text = "m:\n  params:\n    - {name: a, type: uint8, writeable: true, safe: 300}\n";
    assert_rejects(text, 3, "m.params[0].safe", "300 is out of range for uint8");
    let text = "m:\n  params:\n    - {name: a, type: float, safe: 0}\n";
    assert_rejects(text, 3, "m.params[0].safe", "not writeable");
}

#[test]
fn leases_belong_to_outputs_and_are_durations() {
    let out = "m:\n  params:\n    - {name: a, type: float, writeable: true, safe: 0, lease: 0.25}\n    - {name: b, type: float, writeable: true}\n    - {name: c, type: float, writeable: true, safe: 0}\n";
    let catalog = Catalog::from_yaml_str(out, "t.yaml").unwrap();
    let ty = catalog.get("m").unwrap();
    let a = ty.param("a").unwrap();
    assert!(a.is_output());
    assert_eq!(a.lease(), Some(std::time::Duration::from_millis(250)));
    assert!(
        !ty.param("b").unwrap().is_output(),
        "no safe value: not an output"
    );
    assert_eq!(
        ty.param("c").unwrap().lease(),
        None,
        "the broker's default applies"
    );
    assert_eq!(ty.output_mask(), 0b101);
    let outputs: Vec<&str> = ty.outputs().map(|(p, _)| p.name()).collect();
    assert_eq!(outputs, ["a", "c"]);
    let text = "m:\n  params:\n    - {name: a, type: float, writeable: true, lease: 1}\n";
    assert_rejects(text, 3, "m.params[0].lease", "outputs only");
    let text = "m:\n  params:\n    - {name: a, type: float, writeable: true, safe: 0, lease: -1}\n";
    assert_rejects(text, 3, "m.params[0].lease", "non-negative");
}

#[test]
fn the_shipped_motors_and_servos_are_the_outputs() {
    let c = Catalog::embedded();
    let names = |t: &str| -> Vec<String> {
        c.get(t)
            .unwrap()
            .outputs()
            .map(|(p, _)| p.name().to_owned())
            .collect()
    };
    assert_eq!(names("koala-bear"), ["duty_cycle_a", "duty_cycle_b"]);
    assert_eq!(names("polar-bear"), ["duty_cycle"]);
    assert_eq!(names("servo-motor"), ["servo0", "servo1"]);
    assert!(names("team-flag").is_empty(), "LEDs are not outputs");
    assert!(names("gamepad").is_empty());
}

#[test]
fn shape_and_missing_key_errors() {
    assert_rejects(
        "m:\n  params:\n    - {type: bool}\n",
        3,
        "m.params[0]",
        "missing required key `name`",
    );
    assert_rejects(
        "m:\n  params:\n    - {name: a}\n",
        3,
        "m.params[0]",
        "missing required key `type`",
    );
    assert_rejects(
        "m:\n  params: 3\n",
        2,
        "m.params",
        "expected a list of params",
    );
    assert_rejects(
        "m:\n  device_id: 70000\n",
        2,
        "m.device_id",
        "a device id in 0..=65535",
    );
    assert_rejects(
        "m:\n  device_id: 1\n  device_id: 2\n",
        3,
        "m.device_id",
        "key given twice",
    );
    assert_rejects("Motor:\n  device_id: 1\n", 1, "Motor", "not kebab-case");
    assert_rejects(
        "m:\n  params:\n    - {name: 1a, type: bool}\n",
        3,
        "m.params[0].name",
        "not an identifier",
    );
    assert_rejects(
        "m:\n  params:\n    - {name: a, type: bool, readable: yes}\n",
        3,
        "m.params[0].readable",
        "true or false",
    );
    assert_rejects(
        "m:\n  sub_interval: -1\n",
        2,
        "m.sub_interval",
        "non-negative",
    );
    assert_rejects(
        "m:\n  heartbeat_interval: 0\n",
        2,
        "m.heartbeat_interval",
        "positive",
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let err = reject("m:\n  params: [\n");
    assert!(matches!(err, LoadError::Syntax { .. }), "{err}");
    assert!(err.to_string().starts_with("test.yaml:"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = Catalog::load("/nonexistent/devices.yaml").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/devices.yaml"),
        "{err}"
    );
}

#[test]
fn defaults_follow_the_spec() {
    let cat = Catalog::from_yaml_str(
        "m:\n  device_id: 3\n  params:\n    - {name: a, type: double}\n",
        FILE,
    )
    .unwrap();
    let m = cat.get("m").unwrap();
    assert_eq!(m.sub_interval().as_secs_f64(), 0.04);
    assert_eq!(m.heartbeat_interval().as_secs_f64(), 0.25);
    let a = &m.params()[0];
    assert_eq!(a.access(), Access::Read);
    assert!(a.subscribed());
    assert!(a.bounds().is_unbounded());
    assert_eq!(a.storage_width(), 4);
    assert_eq!(a.safe(), None);
    assert!(Catalog::from_yaml_str("", FILE).unwrap().is_empty());
}

/// `(name, device_id, [(param, type, access, lower, upper)])` from the spec's table.
type Row = (
    &'static str,
    Option<u16>,
    Vec<(String, &'static str, &'static str, f64, f64)>,
);

fn spec_table() -> Vec<Row> {
    let inf = f64::INFINITY;
    let p = |n: &str, t: &'static str, a: &'static str| (n.to_owned(), t, a, -inf, inf);
    let b =
        |n: &str, t: &'static str, a: &'static str, lo: f64, hi: f64| (n.to_owned(), t, a, lo, hi);
    let bear = vec![
        b("duty_cycle", "float", "RW", -1.0, 1.0),
        p("pid_pos_setpoint", "float", "W"),
        b("pid_pos_kp", "float", "W", 0.0, inf),
        b("pid_pos_ki", "float", "W", 0.0, inf),
        b("pid_pos_kd", "float", "W", 0.0, inf),
        p("pid_vel_setpoint", "float", "W"),
        p("pid_vel_kp", "float", "W"),
        p("pid_vel_ki", "float", "W"),
        p("pid_vel_kd", "float", "W"),
        b("current_thresh", "float", "W", 2.0, 10.0),
        p("enc_pos", "float", "RW"),
        p("enc_vel", "float", "R"),
        p("motor_current", "float", "R"),
        p("deadband", "float", "RW"),
    ];
    let mut koala = Vec::new();
    for s in ["a", "b"] {
        koala.extend([
            b(&format!("duty_cycle_{s}"), "float", "RW", -1.0, 1.0),
            b(&format!("pid_kp_{s}"), "float", "W", 0.0, inf),
            b(&format!("pid_ki_{s}"), "float", "W", 0.0, inf),
            b(&format!("pid_kd_{s}"), "float", "W", 0.0, inf),
            p(&format!("enc_pos_{s}"), "float", "RW"),
            p(&format!("deadband_{s}"), "float", "RW"),
            p(&format!("motor_enabled_{s}"), "bool", "RW"),
            p(&format!("drive_mode_{s}"), "uint8", "RW"),
        ]);
    }
    let buttons = [
        "button_a",
        "button_b",
        "button_x",
        "button_y",
        "l_bumper",
        "r_bumper",
        "l_trigger",
        "r_trigger",
        "button_back",
        "button_start",
        "l_stick",
        "r_stick",
        "dpad_up",
        "dpad_down",
        "dpad_left",
        "dpad_right",
        "button_xbox",
    ];
    let mut gamepad: Vec<_> = buttons.iter().map(|n| p(n, "bool", "R")).collect();
    for j in [
        "joystick_left_x",
        "joystick_left_y",
        "joystick_right_x",
        "joystick_right_y",
    ] {
        gamepad.push(b(j, "float", "R", -1.0, 1.0));
    }
    vec![
        (
            "limit-switch",
            Some(0),
            (0..3)
                .map(|i| p(&format!("switch{i}"), "bool", "R"))
                .collect(),
        ),
        (
            "line-follower",
            Some(1),
            ["left", "center", "right"]
                .map(|n| p(n, "float", "R"))
                .into(),
        ),
        (
            "potentiometer",
            Some(2),
            (0..3)
                .map(|i| p(&format!("pot{i}"), "float", "R"))
                .collect(),
        ),
        ("encoder", Some(3), vec![p("rotation", "int16", "R")]),
        (
            "battery",
            Some(4),
            [
                ("is_unsafe", "bool"),
                ("calibrated", "bool"),
                ("v_cell1", "float"),
                ("v_cell2", "float"),
                ("v_cell3", "float"),
                ("v_batt", "float"),
                ("dv_cell2", "float"),
                ("dv_cell3", "float"),
            ]
            .map(|(n, t)| p(n, t, "R"))
            .into(),
        ),
        (
            "team-flag",
            Some(5),
            ["mode", "blue", "yellow", "led1", "led2", "led3", "led4"]
                .map(|n| p(n, "bool", "RW"))
                .into(),
        ),
        (
            "servo-motor",
            Some(7),
            vec![
                b("servo0", "float", "RW", -1.0, 1.0),
                b("servo1", "float", "RW", -1.0, 1.0),
            ],
        ),
        ("yogi-bear", Some(10), bear.clone()),
        (
            "rfid",
            Some(11),
            vec![p("id", "uint32", "R"), p("tag_detect", "uint8", "R")],
        ),
        ("polar-bear", Some(12), bear),
        ("koala-bear", Some(13), koala),
        ("gamepad", None, gamepad),
        (
            "field",
            None,
            vec![
                p("mode", "uint8", "R"),
                p("alliance", "uint8", "R"),
                p("send_buf", "uint8[4096]", "R"),
                p("recv_buf", "uint8[4096]", "R"),
            ],
        ),
    ]
}

#[test]
fn shipped_catalog_loads_and_matches_the_spec() {
    let from_file = Catalog::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../catalog/devices.yaml"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let cat = Catalog::embedded();
    assert_eq!(from_file.len(), cat.len());
    let table = spec_table();
    let names: Vec<&str> = cat.types().map(|t| t.name()).collect();
    assert_eq!(names, table.iter().map(|r| r.0).collect::<Vec<_>>());
    for (name, id, params) in table {
        let t = cat.get(name).unwrap();
        assert_eq!(t.device_id(), id, "{name}");
        if let Some(id) = id {
            assert_eq!(cat.by_device_id(id).unwrap().name(), name);
        }
        assert_eq!(t.params().len(), params.len(), "{name}");
        let mut sub = 0u64;
        for (i, (pn, ty, acc, lo, hi)) in params.iter().enumerate() {
            let p = &t.params()[i];
            assert_eq!(
                (p.id(), p.name(), p.ty().to_string().as_str()),
                (i, pn.as_str(), *ty),
                "{name}"
            );
            assert_eq!(p.access().to_string(), *acc, "{name}.{pn}");
            assert_eq!(
                (p.bounds().lower, p.bounds().upper),
                (*lo, *hi),
                "{name}.{pn}"
            );
            if acc.contains('R') {
                sub |= 1 << i;
            }
            let expect_safe = pn.starts_with("duty_cycle") || name == "servo-motor";
            assert_eq!(
                p.safe(),
                expect_safe.then_some(Value::F32(0.0)),
                "{name}.{pn}"
            );
        }
        assert_eq!(t.default_subscription(), sub, "{name}");
        assert_eq!(from_file.get(name).unwrap().fingerprint(), t.fingerprint());
    }
    assert_eq!(cat.get("rfid").unwrap().sub_interval().as_secs_f64(), 0.1);
    assert_eq!(
        cat.get("polar-bear").unwrap().default_subscription(),
        0b11_1100_0000_0001
    );
    assert_eq!(
        cat.get("gamepad").unwrap().default_subscription(),
        (1 << 21) - 1
    );
    let uid: pitcrew_catalog::Uid = "56668397794435742564352".parse().unwrap();
    assert_eq!(cat.type_of(uid).unwrap().name(), "polar-bear");
    assert_eq!(
        cat.get("koala-bear")
            .unwrap()
            .param("drive_mode_b")
            .unwrap()
            .scalar(),
        Some(ScalarType::Uint8)
    );
}

#[test]
fn fingerprint_depends_on_layout_not_bounds() {
    let a = Catalog::from_yaml_str(
        "m:\n  params:\n    - {name: a, type: float, upper: 1}\n",
        FILE,
    )
    .unwrap();
    let b = Catalog::from_yaml_str(
        "m:\n  params:\n    - {name: a, type: float, upper: 2}\n",
        FILE,
    )
    .unwrap();
    let c = Catalog::from_yaml_str(
        "m:\n  params:\n    - {name: a, type: float, writeable: true}\n",
        FILE,
    )
    .unwrap();
    let fp = |c: &Catalog| c.get("m").unwrap().fingerprint();
    assert_eq!(fp(&a), fp(&b));
    assert_ne!(fp(&a), fp(&c));
    let yogi = Catalog::embedded().get("yogi-bear").unwrap().fingerprint();
    let polar = Catalog::embedded().get("polar-bear").unwrap().fingerprint();
    assert_ne!(yogi, polar, "the type name is part of the layout");
}

#[test]
fn prepare_write_clamps_and_refuses() {
    let cat = Catalog::embedded();
    let duty = cat.get("polar-bear").unwrap().param("duty_cycle").unwrap();
    assert_eq!(
        duty.prepare_write(Value::F32(0.5)).unwrap(),
        (Value::F32(0.5), None)
    );
    let (v, clamp) = duty.prepare_write(Value::F32(-3.0)).unwrap();
    assert_eq!(v, Value::F32(-1.0));
    assert_eq!(clamp.unwrap().requested, Value::F32(-3.0));
    assert!(duty.prepare_write(Value::F32(f32::NAN)).is_err());
    assert!(duty.prepare_write(Value::Bool(true)).is_err());
    let mode = cat
        .get("koala-bear")
        .unwrap()
        .param("drive_mode_a")
        .unwrap();
    assert_eq!(mode.prepare_write(Value::I64(2)).unwrap().0, Value::U8(2));
    assert!(mode.prepare_write(Value::I64(256)).is_err());
}

#[test]
fn an_array_too_large_to_address_is_rejected_not_wrapped() {
    let text = "field:\n  params:\n    - {name: x, type: 'uint8[99999999999][99999999999][99999999999]'}\n";
    assert_rejects(
        text,
        3,
        "field.params[0].type",
        "is larger than this machine can address",
    );
}

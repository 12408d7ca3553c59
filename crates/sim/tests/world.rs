//! The shipped example robot (`examples/sim/robot.yaml`) loaded and driven by param name,
//! as the emulated devices drive it.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

use pitcrew_catalog::{Catalog, Uid, Value};
use pitcrew_sim::{Description, World};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sim/robot.yaml")
}

fn world() -> (World, Description) {
    let d = Description::load(&example(), Catalog::embedded()).unwrap();
    (World::new(&d), d)
}

fn uid_of(d: &Description, type_name: &str) -> Uid {
    *d.devices()
        .iter()
        .find(|u| Catalog::embedded().type_of(**u).map(|t| t.name()) == Some(type_name))
        .unwrap()
}

fn f32_of(v: Option<Value>) -> f64 {
    match v {
        Some(Value::F32(x)) => f64::from(x),
        other => panic!("not a float: {other:?}"),
    }
}

fn run(w: &mut World, seconds: f64) {
    for _ in 0..(seconds * 1000.0).round() as u32 {
        w.step(1e-3);
    }
}

#[test]
fn the_example_robot_loads_with_its_six_devices() {
    let (_, d) = world();
    let types: Vec<&str> = d
        .devices()
        .iter()
        .map(|u| Catalog::embedded().type_of(*u).unwrap().name())
        .collect();
    assert_eq!(
        types,
        [
            "battery",
            "koala-bear",
            "encoder",
            "line-follower",
            "limit-switch",
            "rfid"
        ]
    );
    assert_eq!(d.field.size(), (4.0, 3.0));
}

#[test]
fn driving_forward_turns_the_encoders_by_the_distance_travelled() {
    let (mut w, d) = world();
    let koala = uid_of(&d, "koala-bear");
    let encoder = uid_of(&d, "encoder");
    let battery = uid_of(&d, "battery");
    assert!(w.write(koala, "duty_cycle_a", Value::F32(0.5)));
    assert!(w.write(koala, "duty_cycle_b", Value::F32(0.5)));
    run(&mut w, 1.0);
    let moved = w.pose().x - 0.5;
    assert!(moved > 0.3, "{moved}");
    assert!(
        w.pose().y == 1.5 && w.pose().heading == 0.0,
        "{:?}",
        w.pose()
    );
    let counts = moved / (TAU * 0.05) * 1440.0;
    let enc = f32_of(w.read(koala, "enc_pos_a"));
    assert!((enc - counts).abs() < 0.01 * counts, "{enc} vs {counts}");
    assert!((f32_of(w.read(koala, "enc_pos_b")) - enc).abs() < 1e-3 * counts);
    let Some(Value::I16(rotation)) = w.read(encoder, "rotation") else {
        panic!("no rotation")
    };
    assert!(
        (f64::from(rotation) - counts).abs() < 2.0,
        "{rotation} vs {counts}"
    );
    let v = f32_of(w.read(battery, "v_batt"));
    assert!(v < 12.6 && v > 11.0, "sagging under two motors: {v}");
    assert!((f32_of(w.read(battery, "v_cell1")) - v / 3.0).abs() < 1e-4);
    assert_eq!(w.read(koala, "pid_kp_a"), None, "not the physics'");
    assert!(!w.write(koala, "pid_kp_a", Value::F32(1.0)));
}

#[test]
fn the_line_follower_sees_the_tape_and_the_reader_the_tag() {
    let (mut w, d) = world();
    let koala = uid_of(&d, "koala-bear");
    let line = uid_of(&d, "line-follower");
    let rfid = uid_of(&d, "rfid");
    assert_eq!(w.read(line, "center"), Some(Value::F32(1.0)));
    assert_eq!(w.read(line, "left"), Some(Value::F32(0.0)));
    assert_eq!(w.read(rfid, "tag_detect"), Some(Value::U8(0)));
    w.write(koala, "duty_cycle_a", Value::F32(0.4));
    w.write(koala, "duty_cycle_b", Value::F32(0.4));
    let mut seen = Vec::new();
    for _ in 0..6000 {
        w.step(1e-3);
        if let Some(Value::U32(id)) = w.read(rfid, "id") {
            if id != 0 && !seen.contains(&id) {
                seen.push(id);
            }
        }
    }
    assert_eq!(seen, [1001]);
}

#[test]
fn a_wall_stops_the_robot_and_closes_the_front_switches() {
    let (mut w, d) = world();
    let koala = uid_of(&d, "koala-bear");
    let switch = uid_of(&d, "limit-switch");
    assert_eq!(w.read(switch, "switch0"), Some(Value::Bool(false)));
    assert_eq!(w.read(switch, "switch2"), None, "not wired");
    w.write(koala, "duty_cycle_a", Value::F32(1.0));
    w.write(koala, "duty_cycle_b", Value::F32(1.0));
    run(&mut w, 8.0);
    assert!((w.pose().x - 3.8).abs() < 1e-9, "{:?}", w.pose());
    assert_eq!(w.read(switch, "switch0"), Some(Value::Bool(true)));
    assert_eq!(w.read(switch, "switch1"), Some(Value::Bool(true)));
}

#[test]
fn a_disabled_controller_coasts_to_a_stop_and_a_new_write_drives_again() {
    let (mut w, d) = world();
    let koala = uid_of(&d, "koala-bear");
    w.write(koala, "duty_cycle_a", Value::F32(0.6));
    w.write(koala, "duty_cycle_b", Value::F32(0.6));
    run(&mut w, 1.0);
    let moving = w.snapshot().wheel_speeds.unwrap()[0];
    assert!(moving > 0.3, "{moving}");
    w.disable(koala);
    run(&mut w, 5.0);
    assert_eq!(w.snapshot().wheel_speeds, Some([0.0, 0.0]));
    let x = w.pose().x;
    run(&mut w, 0.5);
    assert_eq!(w.pose().x, x, "stays stopped while disabled");
    w.write(koala, "duty_cycle_a", Value::F32(0.6));
    w.write(koala, "duty_cycle_b", Value::F32(0.6));
    run(&mut w, 0.5);
    assert!(w.pose().x > x);
}

#[test]
fn writing_enc_pos_sets_the_count_and_reset_goes_back_to_the_start() {
    let (mut w, d) = world();
    let koala = uid_of(&d, "koala-bear");
    w.write(koala, "duty_cycle_a", Value::F32(0.5));
    run(&mut w, 0.5);
    assert!(f32_of(w.read(koala, "enc_pos_a")) > 100.0);
    assert!(w.write(koala, "enc_pos_a", Value::F32(0.0)));
    assert!(f32_of(w.read(koala, "enc_pos_a")).abs() < 1e-3);
    w.reset();
    assert_eq!(w.pose(), d.start);
    assert_eq!(w.snapshot().time, 0.0);
}

#[test]
fn the_same_description_gives_the_same_run() {
    let trace = || {
        let (mut w, d) = world();
        let koala = uid_of(&d, "koala-bear");
        w.write(koala, "duty_cycle_a", Value::F32(0.3));
        w.write(koala, "duty_cycle_b", Value::F32(0.7));
        run(&mut w, 3.0);
        w.snapshot()
    };
    assert_eq!(trace(), trace());
}

/// Loads `text` as a description; returns the error's line and message.
fn error(text: &str) -> (Option<usize>, String) {
    let dir = example();
    let e = Description::from_yaml_str(text, "robot.yaml", dir.parent(), Catalog::embedded())
        .unwrap_err();
    assert!(e.to_string().starts_with("robot.yaml"), "{e}");
    (e.line, e.message)
}

#[test]
fn every_mistake_is_an_error_on_its_line() {
    let koala = "61396659489217615757313";
    let encoder = "14172994660521163620353";
    let head = "field: field.yaml\nmotors:\n  m: {nominal_voltage: 12, stall_torque: 0.03, \
                stall_current: 5.5, free_current: 0.25, free_speed_rpm: 11000}\n";
    let chassis = "drivetrain:\n  wheel_radius: 0.05\n  track_width: 0.3\n  mass: 5\n  \
                   moment: 0.1\n  radius: 0.2\n";
    let arm = format!("  arm: {{controller: {koala}, channel: a, motor: m, inertia: 1}}\n");
    let cases: Vec<(String, usize, &str)> = vec![
        (
            "field: field.yaml\nwheels: 4\n".into(),
            2,
            "unknown key `wheels`",
        ),
        ("start: {x: 1, y: 1}\n".into(), 1, "needs `field`"),
        (
            "field: {size: [4, -3]}\n".into(),
            1,
            "height must be a positive number",
        ),
        (
            "field: {size: [4, 3], tags: [{at: [1, 1], id: -1}]}\n".into(),
            1,
            "`id` must be a whole number",
        ),
        (
            format!("{head}{chassis}  left: {{controller: {koala}, motor: m}}\n"),
            10,
            "needs `channel: a` or `channel: b`",
        ),
        (
            format!(
                "{head}mechanisms:\n{}",
                arm.replace("motor: m", "motor: nope")
            ),
            5,
            "no motor `nope`",
        ),
        (
            format!("{head}mechanisms:\n{arm}{}", arm.replace("arm", "lift")),
            6,
            "already drives the shaft on line 5",
        ),
        (
            format!("field: field.yaml\nsensors:\n  - {{uid: {koala}, on: left}}\n"),
            3,
            "is a koala-bear, but",
        ),
        (
            format!("field: field.yaml\nsensors:\n  - {{uid: {encoder}, on: left}}\n"),
            3,
            "names no shaft",
        ),
        (
            "field: field.yaml\nbattery: {cells: 4}\n".into(),
            2,
            "`cells` must be 1, 2 or 3",
        ),
        (
            "field: field.yaml\nstart: {x: 1, y: [2\n".into(),
            2,
            "YAML syntax error",
        ),
    ];
    for (text, line, want) in cases {
        let (got_line, message) = error(&text);
        assert!(message.contains(want), "{text}\n→ {message}");
        assert!(
            got_line == Some(line) || (want == "YAML syntax error" && got_line >= Some(line)),
            "{text}\n→ line {got_line:?}: {message}"
        );
    }
    let e = Description::from_yaml_str(
        "field: nowhere.yaml\n",
        "robot.yaml",
        Some(Path::new("/nonexistent")),
        Catalog::embedded(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/nowhere.yaml: cannot read"),
        "{e}"
    );
}

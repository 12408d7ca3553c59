//! The simulated robot in the real suite: `scripts/supervise --sim examples/sim/robot.yaml`
//! with the team's Python code (`examples/python/drive.py`) under `pitcrew run`. Everything
//! above the device protocol is the real suite; the devices are emulated and backed by the
//! physics of `crates/sim`.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{enable_robot, wait_state, ControlSender, Instance, Supervisor};

/// Generous bound for what should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The example robot's koala-bear and line follower (examples/sim/robot.yaml).
const KOALA: &str = "61396659489217615757313";
const LINE_FOLLOWER: &str = "4728261694781873192961";
/// Its wheel radius (m) and encoder counts per wheel revolution.
const WHEEL_RADIUS: f64 = 0.05;
const COUNTS_PER_REV: f64 = 1440.0;

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `pitcrew sim state --json`.
fn sim_state(inst: &Instance) -> serde_json::Value {
    let out = pitcrew_e2e::run_ok(inst.cli(&["sim", "state", "--json"]));
    serde_json::from_slice(&out.stdout).expect("sim state prints JSON")
}

/// `pitcrew read UID PARAM --json`, the value alone.
fn read(inst: &Instance, uid: &str, param: &str) -> serde_json::Value {
    let out = pitcrew_e2e::run_ok(inst.cli(&["read", uid, param, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("read prints JSON");
    v[param].clone()
}

fn wheel_speeds(state: &serde_json::Value) -> (f64, f64) {
    let w = &state["wheel_speeds"];
    (
        w[0].as_f64().unwrap_or(f64::NAN),
        w[1].as_f64().unwrap_or(f64::NAN),
    )
}

/// Waits until `pred` holds of the simulation's state; returns that state.
fn wait_sim(
    inst: &Instance,
    what: &str,
    patience: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + patience;
    loop {
        let state = sim_state(inst);
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(tag: &str) -> (Instance, Supervisor, ControlSender) {
    let run = format!(
        "pitcrew run {}",
        example("examples/python/drive.py").display()
    );
    let robot = example("examples/sim/robot.yaml").display().to_string();
    let inst = Instance::new(tag);
    let sup = Supervisor::start(&inst, &["--sim", &robot, "--no-record", "--run", &run]);
    let station = ControlSender::start(inst.control_addr());
    (inst, sup, station)
}

/// How far the physics alone moves the example robot under drive.py's autonomous routine:
/// both sides at 0.5 for 1 s, then 0 (braking) until it stops.
fn predicted_autonomous_distance() -> f64 {
    let robot = example("examples/sim/robot.yaml");
    let d = pitcrew_sim::Description::load(&robot, pitcrew_catalog::Catalog::embedded())
        .expect("the example robot loads");
    let mut world = pitcrew_sim::World::new(&d);
    let koala: pitcrew_catalog::Uid = KOALA.parse().expect("a UID");
    for (duty, ms) in [(0.5, 1000), (0.0, 4000)] {
        world.write(koala, "duty_cycle_a", pitcrew_catalog::Value::F32(duty));
        world.write(koala, "duty_cycle_b", pitcrew_catalog::Value::F32(duty));
        for _ in 0..ms {
            world.step(1e-3);
        }
    }
    world.pose().x - d.start.x
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// drive.py's autonomous routine (both motors at 0.5 for 1 s, then 0) moves the simulated
/// robot forward along the tape; the koala-bear's encoder counts the distance the pose
/// moved, and the line follower under the front sees the tape.
#[test]
fn autonomous_code_drives_the_simulated_robot_along_the_line() {
    let (inst, _sup, station) = start("simauto");
    let start = wait_sim(&inst, "the simulation answering", PATIENCE, |s| {
        s["x"].is_number()
    });
    assert_eq!(
        (start["x"].as_f64(), start["y"].as_f64()),
        (Some(0.5), Some(1.5)),
        "{start}"
    );
    assert_eq!(read(&inst, LINE_FOLLOWER, "center"), serde_json::json!(1.0));
    // The client registers its socket with the runtime: create it inside.
    runtime().block_on(async {
        enable_robot(&inst.client(), &station, Mode::Autonomous, PATIENCE).await
    });
    // Moving, then stopped again once the routine writes 0.
    wait_sim(&inst, "the robot moving", PATIENCE, |s| {
        wheel_speeds(s).0 > 0.1
    });
    let stopped = wait_sim(&inst, "the robot stopping", PATIENCE, |s| {
        wheel_speeds(s) == (0.0, 0.0)
    });
    let moved = stopped["x"].as_f64().unwrap_or(f64::NAN) - 0.5;
    // The executor's clock, its 20 ms period and the broker's forwarding make the second
    // of driving a little longer or shorter than in the physics alone.
    let predicted = predicted_autonomous_distance();
    assert!(
        (moved - predicted).abs() < 0.25 * predicted,
        "moved {moved} m, the physics predicts {predicted} m: {stopped}"
    );
    // Straight ahead, give or take the moment between the two sides' writes.
    assert!(
        stopped["y"]
            .as_f64()
            .is_some_and(|y| (y - 1.5).abs() < 0.02),
        "{stopped}"
    );
    let counts = moved / (TAU * WHEEL_RADIUS) * COUNTS_PER_REV;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let enc = read(&inst, KOALA, "enc_pos_a").as_f64().unwrap_or(f64::NAN);
        if (enc - counts).abs() < 0.01 * counts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "enc_pos_a {enc}, the pose says {counts}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read(&inst, LINE_FOLLOWER, "center"), serde_json::json!(1.0));
}

/// Teleop drives the simulated robot from the sticks; when the driver's link is lost the
/// robot is disabled and the simulated robot coasts to a stop instead of driving on.
#[test]
fn a_lost_driver_link_stops_the_simulated_robot() {
    let (inst, _sup, station) = start("simlink");
    wait_sim(&inst, "the simulation answering", PATIENCE, |s| {
        s["x"].is_number()
    });
    runtime()
        .block_on(async { enable_robot(&inst.client(), &station, Mode::Teleop, PATIENCE).await });
    station.set(0.8, 0.8, 0);
    wait_sim(&inst, "the robot driving", PATIENCE, |s| {
        wheel_speeds(s).0 > 0.3
    });
    station.pause();
    runtime().block_on(async { wait_state(&inst.client(), "disabled", PATIENCE).await });
    let stopped = wait_sim(&inst, "the robot stopping", PATIENCE, |s| {
        wheel_speeds(s) == (0.0, 0.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    let later = sim_state(&inst);
    assert_eq!(later["x"], stopped["x"], "it stays stopped");
    // Back on the start mark: `pitcrew sim place` and `reset`.
    pitcrew_e2e::run_ok(inst.cli(&["sim", "place", "1", "2", "0.5"]));
    let placed = sim_state(&inst);
    assert_eq!(
        (
            placed["x"].as_f64(),
            placed["y"].as_f64(),
            placed["heading"].as_f64()
        ),
        (Some(1.0), Some(2.0), Some(0.5))
    );
    pitcrew_e2e::run_ok(inst.cli(&["sim", "reset"]));
    assert_eq!(sim_state(&inst)["x"].as_f64(), Some(0.5));
}

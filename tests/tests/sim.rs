//! The simulated robot in the real suite: `scripts/supervise --sim examples/sim/robot.yaml`
//! with the team's Python code (`examples/python/drive.py`) under `pitcrew run`. Everything
//! above the device protocol is the real suite; the devices are emulated and backed by the
//! physics of `crates/sim`.

use std::f64::consts::TAU;
use std::time::{Duration, Instant};

use pitcrew::robot::Mode;
use pitcrew_e2e::simulated::{
    repo_path, wheel_speeds, SimSuite, COUNTS_PER_REV, KOALA, LINE_FOLLOWER, PATIENCE, WHEEL_RADIUS,
};
use pitcrew_e2e::supervisor::wait_state;

/// How far the physics alone moves the example robot under drive.py's autonomous routine:
/// both sides at 0.5 for 1 s, then 0 (braking) until it stops.
fn predicted_autonomous_distance() -> f64 {
    let robot = repo_path("examples/sim/robot.yaml");
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

/// drive.py's autonomous routine (both motors at 0.5 for 1 s, then 0) moves the simulated
/// robot forward along the tape; the koala-bear's encoder counts the distance the pose
/// moved, and the line follower under the front sees the tape.
#[test]
fn autonomous_code_drives_the_simulated_robot_along_the_line() {
    let suite = SimSuite::start("simauto");
    let start = suite.state();
    assert_eq!(
        (start["x"].as_f64(), start["y"].as_f64()),
        (Some(0.5), Some(1.5)),
        "{start}"
    );
    assert_eq!(suite.read(LINE_FOLLOWER, "center"), serde_json::json!(1.0));
    suite.enable(Mode::Autonomous);
    // Moving, then stopped again once the routine writes 0.
    suite.wait("the robot moving", |s| wheel_speeds(s).0 > 0.1);
    let stopped = suite.wait("the robot stopping", |s| wheel_speeds(s) == (0.0, 0.0));
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
        let enc = suite.read(KOALA, "enc_pos_a").as_f64().unwrap_or(f64::NAN);
        if (enc - counts).abs() < 0.01 * counts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "enc_pos_a {enc}, the pose says {counts}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(suite.read(LINE_FOLLOWER, "center"), serde_json::json!(1.0));
}

/// Teleop drives the simulated robot from the sticks; when the driver's link is lost the
/// robot is disabled and the simulated robot coasts to a stop instead of driving on.
#[test]
fn a_lost_driver_link_stops_the_simulated_robot() {
    let suite = SimSuite::start("simlink");
    suite.enable(Mode::Teleop);
    suite.station.set(0.8, 0.8, 0);
    suite.wait("the robot driving", |s| wheel_speeds(s).0 > 0.3);
    suite.station.pause();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async { wait_state(&suite.inst.client(), "disabled", PATIENCE).await });
    let stopped = suite.wait("the robot stopping", |s| wheel_speeds(s) == (0.0, 0.0));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(suite.state()["x"], stopped["x"], "it stays stopped");
    // Back on the start mark: `pitcrew sim place` and `reset`.
    pitcrew_e2e::run_ok(suite.inst.cli(&["sim", "place", "1", "2", "0.5"]));
    let placed = suite.state();
    assert_eq!(
        (
            placed["x"].as_f64(),
            placed["y"].as_f64(),
            placed["heading"].as_f64()
        ),
        (Some(1.0), Some(2.0), Some(0.5))
    );
    pitcrew_e2e::run_ok(suite.inst.cli(&["sim", "reset"]));
    assert_eq!(suite.state()["x"].as_f64(), Some(0.5));
}

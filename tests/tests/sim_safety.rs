//! The simulated robot under fire: what stops a real robot stops the simulated one, and
//! the physics that the sensors read holds against the suite (a wall closes the front
//! switches).

use std::time::{Duration, Instant};

use pitcrew::robot::Mode;
use pitcrew_e2e::simulated::{wheel_speeds, SimSuite, LIMIT_SWITCH};

/// A controller that stops (SIGSTOP, as a hung program) stops writing; its output lease
/// runs out and the broker writes the safe duty cycle: the simulated robot brakes to a
/// stop instead of driving on at the last stick.
#[test]
fn a_stopped_controller_stops_the_simulated_robot() {
    let suite = SimSuite::start("simstop");
    suite.enable(Mode::Teleop);
    suite.station.set(0.7, 0.7, 0);
    suite.wait("the robot driving", |s| wheel_speeds(s).0 > 0.3);
    let controller = suite.sup.pid_of("pitcrew").expect("the controller's pid");
    // Its whole process group: the executor and the worker running drive.py.
    pitcrew_e2e::supervisor::kill_group(controller, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let stopped = suite.wait("the robot stopping", |s| wheel_speeds(s) == (0.0, 0.0));
    let took = stopped_at.elapsed();
    // The lease (100 ms) and the braking (a time constant of about 0.3 s), with room for
    // a loaded machine; never driven on while the controller is stopped.
    assert!(took < Duration::from_secs(10), "{took:?}: {stopped}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(suite.state()["x"], stopped["x"], "it stays stopped");
    // Resumed, the controller drives again (the robot is still enabled).
    pitcrew_e2e::supervisor::kill_group(controller, libc::SIGCONT);
    suite.wait("the robot driving again", |s| wheel_speeds(s).0 > 0.3);
}

/// Driven into the far wall, the robot is held there and both front switches close.
#[test]
fn a_wall_closes_the_front_limit_switches() {
    let suite = SimSuite::start("simwall");
    pitcrew_e2e::run_ok(suite.inst.cli(&["sim", "place", "3.4", "1.5", "0"]));
    assert_eq!(
        suite.read(LIMIT_SWITCH, "switch0"),
        serde_json::json!(false)
    );
    suite.enable(Mode::Teleop);
    suite.station.set(0.6, 0.6, 0);
    let at_wall = suite.wait("the robot reaching the wall", |s| {
        s["x"].as_f64().is_some_and(|x| (x - 3.8).abs() < 1e-6)
    });
    assert!(
        at_wall["motors"][0]["current"].as_f64().unwrap_or(0.0) > 1.0,
        "stalling: {at_wall}"
    );
    let deadline = Instant::now() + pitcrew_e2e::simulated::PATIENCE;
    while suite.read(LIMIT_SWITCH, "switch0") != serde_json::json!(true) {
        assert!(Instant::now() < deadline, "switch0 never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(suite.read(LIMIT_SWITCH, "switch1"), serde_json::json!(true));
}

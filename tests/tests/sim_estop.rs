//! An emergency stop of the simulated robot, seen from the physics: a router, a device
//! broker (without `--exit-on-estop`, so the simulation outlives the stop and can be looked
//! at), a gamepad receiver and a driver station, and `pitcrew emulate --sim` with the
//! example robot, driven by writes as a controller would.

mod devices_support;

use std::time::{Duration, Instant};

use devices_support::{Broker, Emu, PATIENCE};
use pitcrew::codec::{self, Value};
use pitcrew_e2e::simulated::{repo_path, KOALA};
use pitcrew_e2e::Namespace;

/// `sim-service.state` as JSON.
async fn state(broker: &Broker) -> serde_json::Value {
    broker
        .client
        .call("sim-service", "state", vec![])
        .await
        .map(|v| codec::to_json(&v))
        .unwrap_or(serde_json::Value::Null)
}

fn wheel_speed(state: &serde_json::Value) -> f64 {
    state["wheel_speeds"][0].as_f64().unwrap_or(f64::NAN)
}

/// Estopped while driving, the simulated koala-bear is disabled and written its safe duty
/// cycle: its motors stop driving and the robot comes to a stop; writes after the stop are
/// refused and move nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_estop_stops_the_simulated_motors_driving_and_the_robot_stops() {
    let ns = Namespace::new("simestop");
    let broker = Broker::start(&ns, &[]).await;
    let robot = repo_path("examples/sim/robot.yaml").display().to_string();
    let emu = Emu::start(&ns, broker.port, &[], &["--sim", &robot]);
    broker.wait_valid(KOALA, true).await;
    let drive = |duty: f64| {
        vec![
            Value::from(KOALA),
            Value::Map(vec![
                ("duty_cycle_a".into(), duty.into()),
                ("duty_cycle_b".into(), duty.into()),
            ]),
        ]
    };
    // The robot is enabled in teleop with leases off: a write holds until the next.
    broker.call("write", drive(0.6)).await;
    let deadline = Instant::now() + PATIENCE;
    while wheel_speed(&state(&broker).await) < 0.3 {
        assert!(
            Instant::now() < deadline,
            "never drove: {}",
            state(&broker).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.call("estop", vec![]).await;
    emu.wait_event(KOALA, "disable").await;
    // DEV_DISABLE, then the safe duty cycle (0): the motors are not driven any more. Each
    // draws nothing (open) or a current against its motion (braking at duty 0, the
    // description's neutral), never one that drives it.
    let after = state(&broker).await;
    for motor in after["motors"].as_array().into_iter().flatten() {
        let (current, speed) = (motor["current"].as_f64(), motor["speed"].as_f64());
        assert!(
            matches!((current, speed), (Some(i), Some(w)) if i * w <= 0.0),
            "a motor driven after the estop: {after}"
        );
    }
    let deadline = Instant::now() + PATIENCE;
    let stopped = loop {
        let now = state(&broker).await;
        if wheel_speed(&now) == 0.0 {
            break now;
        }
        assert!(Instant::now() < deadline, "never stopped: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Latched: a write is refused and the robot stays where it stopped.
    let refused = broker
        .client
        .call("device-service", "write", drive(0.6))
        .await;
    assert!(refused.is_err(), "a write after the estop: {refused:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&broker).await["x"], stopped["x"]);
}

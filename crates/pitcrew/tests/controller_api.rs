//! The controller API of the application crate over real shared memory: the gamepad and
//! device readers, and the robot-state reader with its blocking wait. Each test has its
//! own namespace and removes its segments.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pitcrew::device::Device;
use pitcrew::gamepad::{Button, Gamepad, GamepadState};
use pitcrew::robot::segment::StateOwner;
use pitcrew::robot::{monotonic_ns, MatchPhase, Mode, Robot, RobotStatus, State};
use pitcrew_buffer::{list, remove_namespace, BufferError, Owner, SegmentKey};
use pitcrew_catalog::{Catalog, Uid, Value};

fn unique_namespace(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "a{}_{}_{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the namespace's segments when dropped.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = remove_namespace(&self.0);
    }
}

#[test]
fn gamepad_and_device_accessors() {
    let ns = unique_namespace("typed");
    let _c = Cleanup(ns.clone());
    let cat = Catalog::embedded();
    let pad_owner = Owner::create(
        &ns,
        Arc::clone(cat.get("gamepad").unwrap()),
        SegmentKey::Index(0),
    )
    .unwrap();
    pad_owner
        .set_values(&[
            ("button_x", Value::Bool(true)),
            ("joystick_left_y", Value::F32(-0.5)),
        ])
        .unwrap();
    let pad = Gamepad::open(&ns, 0).unwrap();
    assert!(pad.button(Button::X).unwrap());
    assert!(!pad.button(Button::A).unwrap());
    assert_eq!(pad.joystick_left_y().unwrap(), -0.5);
    assert!(matches!(
        Gamepad::open(&ns, 1).unwrap_err(),
        BufferError::NotFound { .. }
    ));

    let uid = Uid::new(13, 1, 42);
    let koala = Owner::create(
        &ns,
        Arc::clone(cat.get("koala-bear").unwrap()),
        SegmentKey::Uid(uid),
    )
    .unwrap();
    let dev = Device::open_uid(&ns, cat, uid).unwrap();
    dev.set("duty_cycle_a", 0.5f32).unwrap();
    assert_eq!(koala.take_write().unwrap(), 1);
    koala.set("enc_pos_b", 12.0f32).unwrap();
    assert_eq!(dev.get::<f32>("enc_pos_b").unwrap(), 12.0);
    let err = Device::open_uid(&ns, cat, Uid::new(99, 0, 1)).unwrap_err();
    assert!(
        err.to_string().contains("no type with device id 99"),
        "{err}"
    );
    assert_eq!(list(&ns).unwrap().len(), 2);
}

#[test]
fn a_controller_waits_for_gamepad_input_and_reads_neutral_when_disconnected() {
    let ns = unique_namespace("padwait");
    let _cleanup = Cleanup(ns.clone());
    let cat = Catalog::embedded();
    let receiver = Owner::create(
        &ns,
        Arc::clone(cat.get("gamepad").unwrap()),
        SegmentKey::Index(0),
    )
    .unwrap();
    let pad = Gamepad::open(&ns, 0).unwrap();
    let seen = pad.change_count();
    assert_eq!(
        pad.wait_for_change(seen, Duration::from_millis(20))
            .unwrap(),
        seen,
        "times out when nothing changes"
    );
    std::thread::scope(|s| {
        let controller = s.spawn(|| pad.wait_for_change(seen, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        receiver
            .set_values(&[
                ("button_a", Value::Bool(true)),
                ("joystick_right_y", Value::F32(0.25)),
            ])
            .unwrap();
        let now = controller.join().unwrap().unwrap();
        assert_ne!(now, seen, "woken by the store");
    });
    let state = pad.state().unwrap();
    assert!(state.connected);
    assert!(state.pressed(Button::A) && !state.pressed(Button::B));
    assert_eq!((state.left_y(), state.right_y()), (0.0, 0.25));

    let before = pad.change_count();
    receiver.set_valid(false).unwrap();
    assert_ne!(
        pad.change_count(),
        before,
        "a disconnect wakes controllers too"
    );
    assert_eq!(pad.state().unwrap(), GamepadState::NEUTRAL);
    drop(receiver);
    assert!(matches!(
        pad.wait_for_change(pad.change_count(), Duration::from_secs(1)),
        Err(BufferError::Superseded { .. })
    ));
}

#[test]
fn a_controller_reads_the_robot_state_and_wakes_on_each_transition() {
    let ns = unique_namespace("robot");
    let _cleanup = Cleanup(ns.clone());
    let mut robot = Robot::new(&ns);
    let none = robot.status();
    assert_eq!(none.state, State::Disabled, "no broker reads as disabled");
    assert!(none.reason.contains("not running"), "{}", none.reason);

    let mut status = RobotStatus::initial(
        "start",
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    let broker = StateOwner::create(&ns, &status).unwrap();
    assert_eq!(robot.status().reason, "start");
    let seen = robot.change_count();
    assert_eq!(
        robot
            .wait_for_change(seen, Duration::from_millis(20))
            .unwrap(),
        seen
    );
    std::thread::scope(|s| {
        let controller = s.spawn(|| {
            let mut robot = Robot::new(&ns);
            robot
                .wait_for_change(seen, Duration::from_secs(10))
                .unwrap();
            robot.status()
        });
        std::thread::sleep(Duration::from_millis(30));
        status.state = State::Autonomous;
        status.mode = Mode::Autonomous;
        status.link = "laptop".into();
        status.phase = Some(MatchPhase::Autonomous);
        status.phase_end_ns = monotonic_ns() + 15_000_000_000;
        broker.publish(&status).unwrap();
        let woke = controller.join().unwrap();
        assert_eq!(woke.state, State::Autonomous);
        assert_eq!(woke.link, "laptop");
        assert!(woke.phase_left(monotonic_ns()).unwrap() > Duration::from_secs(14));
    });
    assert_eq!(robot.enabled_mode(), Some(Mode::Autonomous));
    drop(broker);
    assert_eq!(
        robot.status().state,
        State::Disabled,
        "a gone broker reads as disabled"
    );
}

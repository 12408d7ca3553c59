//! The control law against the simulated robot (`examples/sim/robot.yaml`, the physics of
//! `pitcrew-sim`) in virtual time: what a team writes to know its autonomous routine ends
//! where it should, with no robot and no waiting. One cycle is the controller's: read the
//! gamepad, write both duty cycles, and the world moves on 20 ms.
#![cfg(test)]

use std::path::Path;
use std::time::{Duration, Instant};

use pitcrew_catalog::{Catalog, Uid, Value};
use pitcrew_controller::gamepad::{Button, GamepadState, PadState};
use pitcrew_sim::{Description, World};

use super::{Drive, Routine, Target};

/// The controller's period.
const CYCLE: Duration = Duration::from_millis(20);

/// The example robot and its koala-bear.
fn robot() -> (World, Uid) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/robot.yaml");
    let catalog = Catalog::embedded();
    let d = Description::load(&path, catalog).expect("the example robot loads");
    let koala = d
        .devices()
        .into_iter()
        .find(|u| catalog.type_of(*u).map(|t| t.name()) == Some("koala-bear"))
        .expect("a koala-bear");
    (World::new(&d), koala)
}

/// Writes `target` and lets one cycle pass.
fn cycle(world: &mut World, koala: Uid, target: Target) {
    world.write(koala, "duty_cycle_a", Value::F32(target.a));
    world.write(koala, "duty_cycle_b", Value::F32(target.b));
    for _ in 0..CYCLE.as_millis() {
        world.step(1e-3);
    }
}

#[test]
fn autonomous_ends_about_ninety_centimetres_ahead_on_the_line() {
    let (mut world, koala) = robot();
    let start = world.pose();
    // Virtual time: instants the routine is asked about, not waited for.
    let t0 = Instant::now();
    let routine = Routine::start(t0);
    for k in 0..750u32 {
        cycle(&mut world, koala, routine.target(t0 + CYCLE * k));
    }
    let moved = world.pose().x - start.x;
    assert!((moved - 0.90).abs() < 0.05, "moved {moved} m");
    assert!((world.pose().y - start.y).abs() < 1e-6);
}

#[test]
fn slow_mode_drives_at_the_slow_scale() {
    let (mut world, koala) = robot();
    let mut drive = Drive::new(0.3);
    let full = GamepadState::from(PadState {
        ly: 1.0,
        ry: 1.0,
        ..PadState::NEUTRAL
    });
    let speed = |world: &World| world.snapshot().wheel_speeds.map_or(0.0, |w| w[0]);
    for _ in 0..50 {
        cycle(&mut world, koala, drive.update(&full));
    }
    let fast = speed(&world);
    let press = GamepadState::from(PadState {
        btn: 1 << Button::A as u32,
        ..full.pad
    });
    cycle(&mut world, koala, drive.update(&press));
    for _ in 0..100 {
        cycle(&mut world, koala, drive.update(&full));
    }
    assert!(drive.slow());
    let slow = speed(&world);
    assert!((slow / fast - 0.3).abs() < 0.03, "{slow} m/s vs {fast} m/s");
}

//! `scripts/bench sim`: what one physics step of the example robot costs.
//!
//! Prints JSON lines: `sim_step_ns` (one 1 ms step of the whole robot of
//! `examples/sim/robot.yaml`, driving, with every device's values read once per 20 steps as
//! the emulated devices read them at their subscription rate) and the same per device.
//! The suite steps at 1 kHz, so a step must stay far below 1 ms.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use pitcrew_catalog::{Catalog, Value};
use pitcrew_sim::{Description, World};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let robot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sim/robot.yaml");
    let catalog = Catalog::embedded();
    let d = Description::load(&robot, catalog)?;
    let devices = d.devices();
    let mut world = World::new(&d);
    let reads: Vec<(pitcrew_catalog::Uid, String)> = devices
        .iter()
        .filter_map(|u| catalog.type_of(*u).map(|t| (*u, t)))
        .flat_map(|(u, t)| {
            t.params()
                .iter()
                .filter(|p| p.readable())
                .map(move |p| (u, p.name().to_owned()))
        })
        .collect();
    let koala = devices
        .iter()
        .copied()
        .find(|u| catalog.type_of(*u).map(|t| t.name()) == Some("koala-bear"))
        .ok_or("the example robot has no koala-bear")?;
    let steps = 200_000u32;
    let mut best = f64::MAX;
    for round in 0..5 {
        world.reset();
        let started = Instant::now();
        for i in 0..steps {
            if i % 2000 == 0 {
                // Turn a little now and then, so the pose keeps changing.
                let turn = if (i / 2000 + round) % 2 == 0 {
                    0.1
                } else {
                    -0.1
                };
                world.write(koala, "duty_cycle_a", Value::F32(0.5 - turn));
                world.write(koala, "duty_cycle_b", Value::F32(0.5 + turn));
            }
            world.step(1e-3);
            if i % 20 == 0 {
                for (uid, param) in &reads {
                    black_box(world.read(*uid, param));
                }
            }
        }
        best = best.min(started.elapsed().as_nanos() as f64 / f64::from(steps));
    }
    println!(
        "{{\"bench\":\"sim_step_ns\",\"step_ns\":{best:.0},\"devices\":{},\"per_device_ns\":{:.0},\"realtime_budget_pct\":{:.2}}}",
        devices.len(),
        best / devices.len() as f64,
        best / 1e6 * 100.0
    );
    Ok(())
}

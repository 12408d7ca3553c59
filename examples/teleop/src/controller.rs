//! The control loop: follow the robot state, wait for the gamepad, compute the target, send
//! it to the fleet.
//!
//! It runs on a thread of its own because it blocks in FUTEX_WAIT on the gamepad buffer:
//! the receiver's store wakes it within microseconds, so a stick change reaches the device
//! broker without waiting for a tick. The wait is bounded by [`PERIOD`], and the loop
//! writes the target every cycle while the robot is enabled: the broker holds an output
//! only for its lease (100 ms), so a controller that stops writing — hung, stopped,
//! crashed — has its motors stopped by the broker. In `teleop` it drives from the gamepad,
//! in `autonomous` it runs [`Routine`], and while disabled it writes nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew::config::Config;
use pitcrew_catalog::Catalog;
use pitcrew_controller::gamepad::{Gamepad, GamepadState};
use pitcrew_controller::robot::{Mode, Robot};
use tokio_util::sync::CancellationToken;

use crate::drive::{Drive, Routine, Target};
use crate::fleet::Fleet;
use crate::Options;

/// Longest wait for the gamepad: the control period. Well inside the broker's default
/// 100 ms output lease, so the motors are held while the robot is enabled.
const PERIOD: Duration = Duration::from_millis(20);

/// How often new koala-bears are looked for.
const RESCAN: Duration = Duration::from_millis(500);

/// Runs the controller until `shutdown` fires, then stops every motor it drives.
///
/// # Errors
/// When the catalog cannot be loaded or the control thread cannot start.
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Loaded (and checked) with the options; devices share it as `&'static`.
    let catalog: &'static Catalog = Box::leak(Box::new(std::sync::Arc::clone(&config.catalog)));
    let namespace = config.namespace.clone();
    tracing::info!(
        gamepad = options.gamepad,
        slow_scale = %options.slow_scale,
        "teleop running"
    );
    let thread = std::thread::Builder::new()
        .name("teleop".into())
        .spawn(move || control_loop(&namespace, catalog, &options, &shutdown))
        .context("cannot start the control thread")?;
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("the control thread was lost")?
        .map_err(|_| anyhow::anyhow!("the control thread panicked"))?;
    Ok(())
}

fn control_loop(
    namespace: &str,
    catalog: &'static Catalog,
    options: &Options,
    stop: &CancellationToken,
) {
    if let Some(priority) = options.realtime {
        pitcrew_controller::realtime::raise_priority("teleop", priority);
    }
    let mut drive = Drive::new(options.slow_scale);
    let mut fleet = Fleet::new(namespace, catalog);
    let mut pad: Option<Gamepad> = None;
    let mut seen = 0u32;
    let mut connected = false;
    let mut next_scan = Instant::now();
    let mut robot = Robot::new(namespace);
    let mut mode: Option<Mode> = None;
    let mut routine = Routine::start(Instant::now());
    while !stop.is_cancelled() {
        if Instant::now() >= next_scan {
            fleet.rescan();
            next_scan = Instant::now() + RESCAN;
        }
        if pad.is_none() {
            pad = Gamepad::open_with(namespace, catalog, options.gamepad).ok();
            seen = pad.as_ref().map_or(0, Gamepad::change_count);
        }
        let state = match &pad {
            Some(p) => match p.wait_for_change(seen, PERIOD) {
                Ok(now) => {
                    seen = now;
                    p.state().unwrap_or(GamepadState::NEUTRAL)
                }
                // Superseded: the receiver restarted; open its new buffer.
                Err(_) => {
                    pad = None;
                    GamepadState::NEUTRAL
                }
            },
            None => {
                std::thread::sleep(PERIOD);
                GamepadState::NEUTRAL
            }
        };
        if state.connected != connected {
            connected = state.connected;
            tracing::info!(gamepad = options.gamepad, connected, "gamepad");
        }
        let was_slow = drive.slow();
        let target = drive.update(&state);
        if drive.slow() != was_slow {
            tracing::info!(slow = drive.slow(), "slow mode");
        }
        let now_mode = robot.enabled_mode();
        if now_mode != mode {
            tracing::info!(
                mode = now_mode.map_or("disabled", Mode::name),
                "robot state"
            );
            if now_mode == Some(Mode::Autonomous) {
                routine = Routine::start(Instant::now());
            }
            mode = now_mode;
        }
        match mode {
            Some(Mode::Teleop) => fleet.drive(target),
            Some(Mode::Autonomous) => fleet.drive(routine.target(Instant::now())),
            None => {}
        }
    }
    fleet.drive(Target::STOP);
    tracing::info!(devices = fleet.len(), "teleop stopped; motors set to 0");
}

//! `pitcrew emulate --sim FILE`: the emulated devices of a robot description, backed by its
//! physics ([`pitcrew_sim::World`]) instead of constants.
//!
//! One world per emulator, shared by every device task and stepped by its own thread at
//! 1 kHz in real time. A device reads the values it reports from the world just before it
//! frames DEV_DATA, hands the world every value it is written, and tells it of DEV_DISABLE;
//! everything above the device protocol (broker, buffers, leases, robot state, team code)
//! runs unchanged. The `sim-service` RPC service (`state`, `place`, `reset`) is what `pitcrew sim`
//! calls; its `field` (the field's layout and the robot's footprint) is what the dashboard's
//! field view draws.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew::codec::Value;
use pitcrew::rpc::{ErrorCode, RpcError, Service};
use pitcrew_catalog::Catalog;
use pitcrew_sim::{Description, Pose, World};

use super::DeviceSpec;

/// The physics step (and the clock's tick).
pub const STEP: Duration = Duration::from_millis(1);
/// How far the clock may fall behind real time before it gives the lost time up (a stalled
/// emulator resumes from where it is rather than racing through the backlog).
const MAX_BEHIND: Duration = Duration::from_millis(50);
/// The RPC service's name on the router (`Service::new` adds `-service`).
pub const SERVICE: &str = "sim-service";

/// A world shared by the device tasks, the clock and the service.
#[derive(Clone, Debug)]
pub struct Shared {
    world: Arc<Mutex<World>>,
    /// Steps the clock gave up because it fell behind real time (the emulator was starved).
    skipped: Arc<AtomicU64>,
}

impl Shared {
    /// The world, locked (a panicked holder leaves it usable: every step is whole).
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Loads `file` and returns the world and one device spec per device it describes.
///
/// # Errors
/// The description's own error (file and line).
pub fn load(file: &Path, catalog: &Catalog) -> anyhow::Result<(Shared, Vec<DeviceSpec>)> {
    let description = Description::load(file, catalog)?;
    let world = Shared {
        world: Arc::new(Mutex::new(World::new(&description))),
        skipped: Arc::new(AtomicU64::new(0)),
    };
    let specs = description
        .devices()
        .into_iter()
        .map(|uid| {
            let ty = catalog
                .type_of(uid)
                .with_context(|| format!("UID {uid} has no catalog type"))?;
            Ok(DeviceSpec {
                ty: Arc::clone(ty),
                uid,
                initial: Vec::new(),
                script: None,
                world: Some(world.clone()),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((world, specs))
}

/// The clock: steps the world every [`STEP`] in real time until `stop` is set.
pub struct Clock {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Clock {
    /// Starts stepping `world`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(world: Shared) -> anyhow::Result<Clock> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sim-clock".into())
            .spawn(move || tick(&world, &flag))
            .context("cannot start the simulation clock")?;
        Ok(Clock {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The clock's loop: one step per tick on an absolute schedule, so sleeping late does not
/// drift the simulated time from the real one.
fn tick(world: &Shared, stop: &AtomicBool) {
    let dt = STEP.as_secs_f64();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        world.lock().step(dt);
        next += STEP;
        let now = Instant::now();
        if now > next + MAX_BEHIND {
            let behind = now.duration_since(next).as_nanos() / STEP.as_nanos();
            world
                .skipped
                .fetch_add(u64::try_from(behind).unwrap_or(u64::MAX), Ordering::Relaxed);
            next = now;
        } else if next > now {
            std::thread::sleep(next - now);
        }
    }
}

/// The `sim-service`: `state`, `field`, `place(x, y, heading)`, `reset`.
pub fn service(world: &Shared) -> Service {
    let mut service = Service::new("sim").workers(2);
    let w = world.clone();
    service.register("state", &[], move |()| {
        let w = w.clone();
        async move { Ok::<_, RpcError>(state(&w)) }
    });
    let w = world.clone();
    service.register("field", &[], move |()| {
        let w = w.clone();
        async move { Ok::<_, RpcError>(field(&w)) }
    });
    let w = world.clone();
    service.register(
        "place",
        &["x", "y", "heading"],
        move |(x, y, heading): (f64, f64, Option<f64>)| {
            let w = w.clone();
            async move {
                let heading = heading.unwrap_or(0.0);
                if ![x, y, heading].iter().all(|v| v.is_finite()) {
                    let e = "x, y and heading must be finite numbers (metres, radians)";
                    return Err(RpcError::new(ErrorCode::InvalidParams, e));
                }
                w.lock().place(Pose { x, y, heading });
                Ok(state(&w))
            }
        },
    );
    let w = world.clone();
    service.register("reset", &[], move |()| {
        let w = w.clone();
        async move {
            w.lock().reset();
            Ok::<_, RpcError>(state(&w))
        }
    });
    service
}

/// The world's state as the `state` method answers it: `x`, `y` (m), `heading` (rad),
/// `battery_v`, `battery_current`, `time`, `wheel_speeds` (m/s) and per motor group its
/// `speed` (rad/s at the output) and `current` (A per motor); `skipped_steps` counts the
/// steps the clock gave up when the emulator was starved.
pub fn state(shared: &Shared) -> Value {
    let s = shared.lock().snapshot();
    let motors = s
        .motors
        .iter()
        .map(|m| {
            Value::Map(vec![
                ("name".into(), m.name.as_str().into()),
                ("speed".into(), m.speed.into()),
                ("current".into(), m.current.into()),
            ])
        })
        .collect();
    let wheels = s
        .wheel_speeds
        .map_or(Value::Nil, |w| Value::Array(vec![w[0].into(), w[1].into()]));
    Value::Map(vec![
        ("time".into(), s.time.into()),
        ("x".into(), s.pose.x.into()),
        ("y".into(), s.pose.y.into()),
        ("heading".into(), s.pose.heading.into()),
        ("battery_v".into(), s.battery_v.into()),
        ("battery_current".into(), s.battery_current.into()),
        ("wheel_speeds".into(), wheels),
        ("motors".into(), Value::Array(motors)),
        (
            "skipped_steps".into(),
            shared.skipped.load(Ordering::Relaxed).into(),
        ),
    ])
}

/// The field as the `field` method answers it, for drawing it: `size` `[width, height]`,
/// `tape` `[{from: [x, y], to: [x, y], width}]`, `tags` `[{at: [x, y], id, radius}]` (m,
/// from the field's corner) and `radius`, the robot's footprint (nil without a drivetrain).
/// It does not change while the emulator runs.
pub fn field(shared: &Shared) -> Value {
    let world = shared.lock();
    let point = |(x, y): (f64, f64)| Value::Array(vec![x.into(), y.into()]);
    let field = world.field();
    let tape = field
        .tape()
        .iter()
        .map(|t| {
            Value::Map(vec![
                ("from".into(), point(t.a)),
                ("to".into(), point(t.b)),
                ("width".into(), t.width.into()),
            ])
        })
        .collect();
    let tags = field
        .tags()
        .iter()
        .map(|t| {
            Value::Map(vec![
                ("at".into(), point(t.at)),
                ("id".into(), t.id.into()),
                ("radius".into(), t.radius.into()),
            ])
        })
        .collect();
    let radius = world
        .description()
        .drivetrain
        .as_ref()
        .map_or(Value::Nil, |d| d.radius.into());
    Value::Map(vec![
        ("size".into(), point(field.size())),
        ("tape".into(), Value::Array(tape)),
        ("tags".into(), Value::Array(tags)),
        ("radius".into(), radius),
    ])
}

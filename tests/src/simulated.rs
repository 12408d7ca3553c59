//! A simulated robot under the supervisor (`scripts/supervise --sim`), for the tests that
//! drive it, stop parts of it and look at it through `pitcrew sim state`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pitcrew::robot::Mode;

use crate::supervisor::{enable_robot, ControlSender, Instance, Supervisor};

/// Generous bound for what should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The example robot's devices (`examples/sim/robot.yaml`).
pub const KOALA: &str = "61396659489217615757313";
/// Its line follower.
pub const LINE_FOLLOWER: &str = "4728261694781873192961";
/// Its limit switches (`switch0` front left, `switch1` front right).
pub const LIMIT_SWITCH: &str = "5895211912227979265";
/// Its wheel radius (m).
pub const WHEEL_RADIUS: f64 = 0.05;
/// Its encoder counts per wheel revolution.
pub const COUNTS_PER_REV: f64 = 1440.0;

/// A path from the repository's root.
pub fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The suite with the example robot simulated, `examples/python/drive.py` under
/// `pitcrew run`, and a driver station (not yet enabling).
pub struct SimSuite {
    // Dropped in this order: the station, the supervisor, the instance's leftovers.
    pub station: ControlSender,
    pub sup: Supervisor,
    pub inst: Instance,
}

impl SimSuite {
    /// Starts it and waits for the simulation to answer.
    pub fn start(tag: &str) -> SimSuite {
        let run = format!(
            "pitcrew run {}",
            repo_path("examples/python/drive.py").display()
        );
        let robot = repo_path("examples/sim/robot.yaml").display().to_string();
        let inst = Instance::new(tag);
        let sup = Supervisor::start(&inst, &["--sim", &robot, "--no-record", "--run", &run]);
        let station = ControlSender::start(inst.control_addr());
        let suite = SimSuite { station, sup, inst };
        suite.wait("the simulation answering", |s| s["x"].is_number());
        suite
    }

    /// `pitcrew sim state --json`.
    pub fn state(&self) -> serde_json::Value {
        let out = crate::run_ok(self.inst.cli(&["sim", "state", "--json"]));
        serde_json::from_slice(&out.stdout).expect("sim state prints JSON")
    }

    /// Waits until `pred` holds of the simulation's state; returns that state.
    ///
    /// # Panics
    /// When it does not within [`PATIENCE`].
    pub fn wait(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let state = self.state();
            if pred(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "{what} never happened: {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pitcrew read UID PARAM --json`, the value alone.
    pub fn read(&self, uid: &str, param: &str) -> serde_json::Value {
        let out = crate::run_ok(self.inst.cli(&["read", uid, param, "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("read prints JSON");
        v[param].clone()
    }

    /// Enables the robot in `mode` from the driver station.
    pub fn enable(&self, mode: Mode) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // The client registers its socket with the runtime: create it inside.
        runtime.block_on(async {
            enable_robot(&self.inst.client(), &self.station, mode, PATIENCE).await
        });
    }
}

/// Left and right wheel ground speeds (m/s) of a state.
pub fn wheel_speeds(state: &serde_json::Value) -> (f64, f64) {
    let w = &state["wheel_speeds"];
    (
        w[0].as_f64().unwrap_or(f64::NAN),
        w[1].as_f64().unwrap_or(f64::NAN),
    )
}

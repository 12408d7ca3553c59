//! One supervised robot for the tests and benchmarks that kill, stop and restart its
//! parts: `scripts/supervise` running the example controller, an emulated koala-bear and a
//! driver station streaming control datagrams, with the checks of its path.

use std::time::{Duration, Instant};

use pitcrew::robot::Mode;

use crate::supervisor::{enable_robot, is_write, ControlSender, Emulator, Instance, Supervisor};

/// Generous bound for what should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// How many devices `--emulate` starts: one per Smart Device type of the shipped catalog.
pub const EMULATED_TYPES: usize = 11;

/// The controller on the path: the example controller (examples/teleop), built into the
/// same target directory as the suite by `scripts/test`, started by name through the
/// supervisor's PATH.
pub const CONTROLLER: &str = "pitcrew-teleop";

/// What the controller writes to `duty_cycle_a` and `duty_cycle_b` for the left and right
/// stick's y (slow mode off): the sticks as they are.
pub fn expected_duty(left_y: f32, right_y: f32) -> (f64, f64) {
    (f64::from(left_y), f64::from(right_y))
}

/// A koala-bear UID (device id 13) with random part `n`, in decimal.
pub fn koala_uid(n: u64) -> String {
    ((13u128 << 72) | u128::from(n)).to_string()
}

/// One supervised robot: the supervisor running `CONTROLLER`, an emulated koala-bear and
/// a driver station streaming control datagrams.
pub struct Robot {
    // Dropped in this order: the driver station, the supervisor (graceful stop), the
    // emulated device, then the instance's leftovers.
    pub sender: ControlSender,
    pub sup: Supervisor,
    pub emu: Emulator,
    pub koala: String,
    pub inst: Instance,
}

impl Robot {
    /// Starts everything and checks that the path works once.
    pub fn start(tag: &str, koala: u64, flags: &[&str]) -> Robot {
        assert!(
            crate::bin_dir().join(CONTROLLER).exists(),
            "{CONTROLLER} is not built (scripts/test builds it from examples/teleop)"
        );
        let inst = Instance::new(tag);
        let koala = koala_uid(koala);
        let emu = Emulator::start(&inst, &[format!("koala-bear:{koala}")]);
        let mut all = vec!["--run", CONTROLLER];
        all.extend_from_slice(flags);
        let sup = Supervisor::start(&inst, &all);
        let sender = ControlSender::start(inst.control_addr());
        let robot = Robot {
            sender,
            sup,
            emu,
            koala,
            inst,
        };
        robot.enable();
        let took = robot.drive(0.0625, -0.0625, PATIENCE);
        assert!(took.is_some(), "the path never worked; {}", robot.report());
        robot
    }

    /// Enables the robot in teleop from the driver station (again after a restart of the
    /// broker or the receiver, which disables it: rules 2 and 3).
    pub fn enable(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // The client registers its socket with the runtime: create it inside.
        runtime.block_on(async {
            enable_robot(&self.inst.client(), &self.sender, Mode::Teleop, PATIENCE).await
        });
    }

    /// Sets the sticks and waits until the koala-bear received both duty cycles (written
    /// after this call); returns how long that took, or `None` after `timeout`.
    pub fn drive(&self, left_y: f32, right_y: f32, timeout: Duration) -> Option<Duration> {
        let since = Instant::now();
        self.sender.set(left_y, right_y, 0);
        let (a, b) = expected_duty(left_y, right_y);
        let events = &self.emu.events;
        let got_a = events.wait_for(since, timeout, |e| {
            is_write(e, &self.koala, "duty_cycle_a", a)
        })?;
        let got_b = events.wait_for(since, timeout, |e| {
            is_write(e, &self.koala, "duty_cycle_b", b)
        })?;
        Some(got_a.max(got_b) - since)
    }

    /// The supervisor's log and the device's recent events, for failure messages.
    pub fn report(&self) -> String {
        let events = self.emu.events.all();
        let recent: Vec<String> = events
            .iter()
            .rev()
            .take(12)
            .map(|(_, e)| e.to_string())
            .collect();
        format!(
            "supervisor log:\n{}\nlast device events (newest first):\n{}",
            self.sup.log_lines().join("\n"),
            recent.join("\n")
        )
    }

    /// Waits until the broker lists every device of `uids` as identified (valid): only
    /// those are sent DEV_DISABLE.
    pub fn wait_valid(&self, uids: &[String]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.inst.cli(&["devices", "--json"]).output();
            let list: serde_json::Value = out
                .ok()
                .and_then(|o| serde_json::from_slice(&o.stdout).ok())
                .unwrap_or_default();
            let valid = |uid: &String| {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["uid"] == uid.as_str() && d["valid"] == serde_json::json!(true))
            };
            if uids.iter().all(valid) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every device is valid: {list}; {}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The UIDs of the devices `--emulate` started (one per shipped type), once all of
    /// them connected.
    pub fn emulated(&self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut uids: Vec<String> = self
                .sup
                .stdout
                .matching(|e| e["event"] == "connected")
                .into_iter()
                .filter_map(|(_, e)| e["uid"].as_str().map(str::to_owned))
                .collect();
            uids.sort();
            uids.dedup();
            if uids.len() >= EMULATED_TYPES {
                return uids;
            }
            assert!(
                Instant::now() < deadline,
                "--emulate connected {uids:?}; {}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `service` answers a ping through the router.
    pub fn answers(&self, service: &str) -> bool {
        self.inst
            .cli(&["call", service, "ping", "--timeout", "1s"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Waits until every service of the suite answers.
    pub fn wait_services(&self) {
        let deadline = Instant::now() + PATIENCE;
        for service in [
            "router",
            "logfwd-service",
            "device-service",
            "gamepad-service",
        ] {
            while !self.answers(service) {
                assert!(
                    Instant::now() < deadline,
                    "{service} does not answer; {}",
                    self.report()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

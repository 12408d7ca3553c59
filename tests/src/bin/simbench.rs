//! `pitcrew-simbench` (`scripts/bench sim`): the joystick path with the simulated robot
//! against the same path with plain emulated devices.
//!
//! Two suites under `scripts/supervise`, one `--emulate`, one `--sim
//! examples/sim/robot.yaml`, each with the example controller (`pitcrew-teleop`) and a
//! driver station. Taking turns, the station moves the sticks and the time until the
//! emulated koala-bear reports the matching duty cycles (its `write` event line on the
//! supervisor's stdout, timestamped on arrival) is one sample. Both paths include the same
//! event line, so their ratio is what backing the devices with physics costs the path
//! (issue 23: at most 1.1).
//!
//! Prints JSON lines: `e2e_control_us` with `devices` `emulated` and `sim`, and
//! `e2e_sim_over_emulated_p50`.

use std::time::{Duration, Instant};

use clap::Parser;
use pitcrew::robot::Mode;
use pitcrew_e2e::simulated::{repo_path, PATIENCE};
use pitcrew_e2e::supervisor::{enable_robot, ControlSender, Instance, Supervisor};

/// The joystick path with simulated against emulated devices.
#[derive(Debug, Parser)]
struct Options {
    /// Stick changes measured per path.
    #[arg(long, default_value_t = 300)]
    changes: u32,
}

/// One suite, its station and the samples taken.
struct Path {
    name: &'static str,
    station: ControlSender,
    sup: Supervisor,
    _inst: Instance,
    samples: Vec<Duration>,
    lost: u32,
}

impl Path {
    fn start(name: &'static str, flags: &[&str]) -> Path {
        let inst = Instance::new(name);
        let mut all = flags.to_vec();
        all.extend(["--no-record", "--run", "pitcrew-teleop"]);
        let sup = Supervisor::start(&inst, &all);
        let station = ControlSender::start(inst.control_addr());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // The client registers its socket with the runtime: create it inside.
        runtime.block_on(async {
            enable_robot(&inst.client(), &station, Mode::Teleop, PATIENCE).await
        });
        Path {
            name,
            station,
            sup,
            _inst: inst,
            samples: Vec::new(),
            lost: 0,
        }
    }

    /// Moves the sticks to `(a, b)` and waits for a koala-bear to be written both.
    fn measure(&mut self, a: f32, b: f32) {
        let since = Instant::now();
        self.station.set(a, b, 0);
        // The event prints the f32 in its shortest form: compare to within its precision.
        let near = |v: &serde_json::Value, want: f32| {
            v.as_f64()
                .is_some_and(|x| (x - f64::from(want)).abs() < 1e-6)
        };
        let written = |e: &serde_json::Value| {
            e["event"] == "write"
                && near(&e["values"]["duty_cycle_a"], a)
                && near(&e["values"]["duty_cycle_b"], b)
        };
        match self
            .sup
            .stdout
            .wait_for(since, Duration::from_secs(2), written)
        {
            Some(at) => self.samples.push(at - since),
            None => {
                self.lost += 1;
                eprintln!("simbench: {}: ({a}, {b}) never arrived", self.name);
            }
        }
    }

    /// p50 and p99 in µs.
    fn report(&mut self) -> f64 {
        self.samples.sort_unstable();
        let at = |q: f64| {
            let i = ((self.samples.len() as f64 - 1.0) * q).round() as usize;
            self.samples
                .get(i)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
        };
        let (p50, p99) = (at(0.5), at(0.99));
        eprintln!(
            "{:<24}p50 {p50:8.1}   p99 {p99:8.1}   n {}   lost {}",
            format!("e2e_control_us {}", self.name),
            self.samples.len(),
            self.lost
        );
        println!(
            "{{\"bench\":\"e2e_control_us\",\"devices\":\"{}\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"n\":{},\"lost\":{}}}",
            self.name,
            self.samples.len(),
            self.lost
        );
        p50
    }
}

fn main() {
    let options = Options::parse();
    let robot = repo_path("examples/sim/robot.yaml").display().to_string();
    let mut paths = [
        Path::start("emulated", &["--emulate"]),
        Path::start("sim", &["--sim", &robot]),
    ];
    // Stick values that differ from one change to the next and stay small (the simulated
    // robot stays on its field).
    for k in 0..options.changes {
        let v = 0.05 + 0.01 * (k % 10) as f32;
        let (a, b) = if k % 2 == 0 { (v, -v) } else { (-v, v) };
        for path in &mut paths {
            path.measure(a, b);
        }
    }
    let [emulated, sim] = &mut paths;
    let ratio = sim.report() / emulated.report();
    eprintln!("{:<24}{ratio:.2}", "sim/emulated p50");
    println!("{{\"bench\":\"e2e_sim_over_emulated_p50\",\"ratio\":{ratio:.2}}}");
}

//! The simulated robot in a recording: `scripts/supervise --sim examples/sim/robot.yaml`
//! with its session recorded (the supervisor's own `pitcrew record`), the robot driven by
//! `examples/python/drive.py` from a driver station and moved by `pitcrew sim place`; then
//! the file read back by `pitcrew recording info|export`, by the `mcap` Python package,
//! and by `pitcrew sim fit`, whose kV must be the physics' own.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pitcrew::robot::Mode;
use pitcrew_e2e::recording::{export_tables, read_with_mcap_package};
use pitcrew_e2e::supervisor::{enable_robot, wait_state, ControlSender, Instance, Supervisor};

/// Generous bound for what should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);
/// The example robot's koala-bear (examples/sim/robot.yaml): motor a drives the left side.
const KOALA: &str = "61396659489217615757313";
/// Where `pitcrew sim place` puts the robot, and its start (x, y).
const PLACED: (f64, f64, f64) = (1.0, 2.0, 0.5);
const START: (f64, f64) = (0.5, 1.5);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The example robot's feedforward constants, from the motor and drivetrain model of
/// `crates/sim` (`motor.rs`, `drivetrain.rs`) and the description's numbers; kV in duty per
/// encoder count/s, the one `pitcrew sim fit` is held to (kS and kA to a looser bound).
///
/// A motor's current is `I = (V − ω/kv)/R` and its torque `kt·I`; its friction is Coulomb,
/// `kt·I_free`. At a constant speed the torque only meets that friction (the drivetrain has
/// no other drag and its wheels do not slip), so `I = I_free` and `V = ω/kv + R·I_free`.
/// With `V = duty·V_batt`: `duty = R·I_free/V_batt + ω/(kv·V_batt)`, i.e.
/// `kS = R·I_free/V_batt` and `kV = 1/(kv·V_batt)` per rad/s of the motor. The encoder
/// counts `cpr` per wheel turn and the motor turns `ratio` times per wheel turn, so
/// `ω = 2π·ratio/cpr` per count/s and
///
/// `kV = 2π·ratio / (cpr·kv·V_batt) = (V_nom − R·I_free) / (V_batt · free counts/s)`,
///
/// since the model's `kv = free_speed/(V_nom − R·I_free)` (a free motor at its nominal
/// voltage spins at its free speed). For the example's gearmotor: `R = 12 V / 5.5 A =
/// 2.18 Ω`, `R·I_free = 0.545 V`, a free speed of 11000 rpm / 30 × 1440 counts / 60 s =
/// 8800 counts/s at the wheel, and `V_batt` = 12.6 V (the sag at a constant speed, 0.03 Ω
/// times a battery current well under 1 A, is under 0.03 V and left out):
/// `kV = 11.455 / (12.6 × 8800) = 1.033e-4`. That is 4.5 % below the naive
/// `1/(8800 × 12.6/12) = 1.082e-4`: part of the voltage pays the friction, which is kS
/// (`0.545/12.6 = 0.043`).
///
/// kA depends on what the motor moves. Spun on the spot, each side pushes the moment `J`
/// round through half the track `w`: a side's ground acceleration is `F·(w²/2)/J`, an
/// effective mass of `2J/w²` (3.33 kg); a wheel force `F = ratio·kt·I/r` then costs
/// `duty = R·r·(2J/w²)·a/(ratio·kt·V_batt)` with `a = 2π·r/cpr` per count/s², so
/// `kA = R·r²·2π·(2J/w²) / (ratio·kt·V_batt·cpr) = 3.85e-5`.
struct Model {
    ks: f64,
    kv: f64,
    ka: f64,
}

fn model() -> Model {
    let d = pitcrew_sim::Description::load(
        &repo("examples/sim/robot.yaml"),
        pitcrew_catalog::Catalog::embedded(),
    )
    .expect("the example robot loads");
    let drivetrain = d.drivetrain.expect("a drivetrain");
    let (left, chassis) = (drivetrain.left, drivetrain.chassis);
    let motor = left.gearbox.motor();
    let ratio = motor.free_speed() / left.gearbox.free_speed();
    let battery_v = d.battery.0.voltage_at(0.0);
    let free_current = motor.friction_torque() / motor.kt();
    let (r, w) = (chassis.wheel_radius, chassis.track_width);
    let effective_mass = 2.0 * chassis.moment / (w * w);
    Model {
        ks: motor.resistance() * free_current / battery_v,
        kv: TAU * ratio / (left.counts_per_rev * motor.kv() * battery_v),
        ka: motor.resistance() * r * r * TAU * effective_mass
            / (ratio * motor.kt() * battery_v * left.counts_per_rev),
    }
}

/// `pitcrew sim state --json`.
fn sim_state(inst: &Instance) -> serde_json::Value {
    let out = pitcrew_e2e::run_ok(inst.cli(&["sim", "state", "--json"]));
    serde_json::from_slice(&out.stdout).expect("sim state prints JSON")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The one recording the supervisor made, once it has stopped.
fn recording_of(inst: &Instance) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(inst.recordings())
        .expect("the recordings directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// Drives the robot round on the spot (left forward, right back) at several duty cycles,
/// each held long enough to settle: the samples `sim fit` needs, in a robot that stays
/// where it is on the field.
fn spin(station: &ControlSender) {
    for duty in [0.3f32, 0.6, 0.45, -0.4, -0.7, 0.2, 0.8, -0.3] {
        station.set(duty, -duty, 0);
        std::thread::sleep(Duration::from_millis(900));
    }
    station.set(0.0, 0.0, 0);
}

/// `pitcrew sim fit FILE ARGS`: its exit code, stdout and stderr.
fn fit(inst: &Instance, file: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = inst
        .cli(&["sim", "fit", file.to_str().expect("a UTF-8 path")])
        .args(args)
        .output()
        .expect("the CLI runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One recorded session of the simulated robot: spun on the spot at several duty cycles,
/// then placed elsewhere. The recording has the pose on `/sim/pose` (listed and exported
/// by `pitcrew recording`, read by the `mcap` package), and `pitcrew sim fit` gives back
/// the physics' kV of the left motor within 5 %.
#[test]
fn a_simulated_session_records_the_pose_and_fits_the_motor() {
    let run = format!("pitcrew run {}", repo("examples/python/drive.py").display());
    let robot = repo("examples/sim/robot.yaml").display().to_string();
    let inst = Instance::new("simrec");
    let mut sup = Supervisor::start(&inst, &["--sim", &robot, "--run", &run]);
    let station = ControlSender::start(inst.control_addr());
    let deadline = Instant::now() + PATIENCE;
    while !inst
        .cli(&["sim", "state"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < deadline, "the simulation never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The recorder started before the simulation, and asks again every second.
    std::thread::sleep(Duration::from_millis(1500));
    runtime()
        .block_on(async { enable_robot(&inst.client(), &station, Mode::Teleop, PATIENCE).await });
    spin(&station);
    station.disable();
    runtime().block_on(async { wait_state(&inst.client(), "disabled", PATIENCE).await });
    pitcrew_e2e::run_ok(inst.cli(&[
        "sim",
        "place",
        &PLACED.0.to_string(),
        &PLACED.1.to_string(),
        &PLACED.2.to_string(),
    ]));
    // Longer than the recorder's flush interval, so a cut file would still hold it.
    std::thread::sleep(Duration::from_millis(1500));
    let skipped = sim_state(&inst)["skipped_steps"].clone();
    station.pause();
    sup.signal(libc::SIGTERM);
    assert!(sup.wait_exit(PATIENCE).is_some(), "the supervisor stopped");
    let file = recording_of(&inst);

    let poses = check_pose(&inst, &file);
    check_fit(&inst, &file, &skipped);
    eprintln!("{poses} poses recorded; simulation steps skipped: {skipped}");
}

/// The recording's `/sim/pose`: listed with its schema, 20–50 Hz, the spin and the placed
/// pose in the export and in the `mcap` package's reading. Returns how many poses.
fn check_pose(inst: &Instance, file: &Path) -> usize {
    let out = pitcrew_e2e::run_ok(inst.cli(&["recording", "info", file.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("/sim/pose") && l.contains("foxglove.PoseInFrame")),
        "{text}"
    );
    let tables = export_tables(inst.cli(&[]), file, &file.with_extension("csv"));
    let rows = &tables["sim_pose"];
    let number = |row: &std::collections::BTreeMap<String, String>, key: &str| -> f64 {
        row.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let times: Vec<u64> = rows
        .iter()
        .map(|r| r["log_time_ns"].parse().unwrap())
        .collect();
    let span = (times[times.len() - 1] - times[0]) as f64 / 1e9;
    let rate = (times.len() - 1) as f64 / span;
    assert!((20.0..=50.0).contains(&rate), "{rate} Hz over {span} s");
    // Spun on the spot: the heading went round, the centre stayed (give or take the moment
    // between the two sides' writes).
    let spinning: Vec<_> = rows
        .iter()
        .filter(|r| {
            (number(r, "x") - START.0).abs() < 0.05 && (number(r, "y") - START.1).abs() < 0.05
        })
        .map(|r| number(r, "heading"))
        .collect();
    let turned = spinning.iter().copied().fold(f64::NAN, f64::max)
        - spinning.iter().copied().fold(f64::NAN, f64::min);
    assert!(turned > 1.0, "the heading barely changed: {turned} rad");
    let last = rows.last().expect("poses");
    assert_eq!(
        (
            number(last, "x"),
            number(last, "y"),
            number(last, "heading")
        ),
        PLACED,
        "{last:?}"
    );
    assert_eq!(last["frame_id"], "field");
    assert_eq!(number(last, "pose.position.x"), PLACED.0);

    // The third-party reader: the schema is JSON, every message decodes, the pose is there.
    let read = read_with_mcap_package("read_topic.py", file, &["/sim/pose"]);
    assert_eq!(
        read["schema"]["name"], "foxglove.PoseInFrame",
        "{}",
        read["schema"]
    );
    assert_eq!(read["schema"]["encoding"], "jsonschema");
    assert_eq!(read["schema"]["is_json"], true);
    let messages = read["messages"].as_array().unwrap();
    assert_eq!(messages.len(), rows.len());
    let placed = &messages[messages.len() - 1]["message"];
    assert_eq!(
        (placed["x"].as_f64(), placed["y"].as_f64()),
        (Some(PLACED.0), Some(PLACED.1)),
        "{placed}"
    );
    let w = placed["pose"]["orientation"]["w"].as_f64().unwrap();
    assert!((w - (PLACED.2 / 2.0).cos()).abs() < 1e-9, "{placed}");
    rows.len()
}

/// `pitcrew sim fit` of the left motor: the physics' kV within 5 %; and what it says of a
/// motor it cannot fit.
fn check_fit(inst: &Instance, file: &Path, skipped: &serde_json::Value) {
    let truth = model();
    for (name, value, doc) in [
        ("kS", truth.ks, 0.0433),
        ("kV", truth.kv, 1.033e-4),
        ("kA", truth.ka, 3.85e-5),
    ] {
        assert!(
            (value - doc).abs() < 0.002 * doc,
            "the doc's figure for {name}: {value}"
        );
    }
    // Both sides: the same motor, one driven forward while the other went back.
    for side in ["a", "b"] {
        let motor = format!("{KOALA}:{side}");
        let (code, out, err) = fit(inst, file, &["--device", &motor, "--json"]);
        assert_eq!(code, Some(0), "{err}");
        let fitted: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
        let off = |key: &str, truth: f64| (fitted[key].as_f64().unwrap() - truth) / truth;
        let (kv, ks, ka) = (
            off("kv", truth.kv),
            off("ks", truth.ks),
            off("ka", truth.ka),
        );
        eprintln!(
            "sim fit {side}: {fitted}; against the model: kV {:+.2} %, kS {:+.2} %, kA {:+.2} % \
             (simulation steps skipped {skipped})",
            kv * 100.0,
            ks * 100.0,
            ka * 100.0
        );
        assert!(
            kv.abs() < 0.05,
            "motor {side}: fitted kV off the model's {:.4e} by {:+.2} %: {fitted} \
             (simulation steps skipped: {skipped})",
            truth.kv,
            kv * 100.0
        );
        assert!(ks.abs() < 0.2 && ka.abs() < 0.2, "{fitted}");
        assert!(fitted["samples"].as_u64().unwrap() >= 30, "{fitted}");
    }
    let (code, out, _) = fit(inst, file, &["--device", &format!("{KOALA}:a")]);
    assert_eq!(code, Some(0));
    assert!(out.contains("kV") && out.contains("R²"), "{out}");

    // Errors a student can act on.
    let (code, _, err) = fit(inst, file, &["--device", KOALA]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("--device {KOALA}:a or {KOALA}:b")),
        "{err}"
    );
    let (code, _, err) = fit(inst, file, &["--device", "42"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("there is no device 42") && err.contains(KOALA),
        "{err}"
    );
    let (code, _, err) = fit(inst, &repo("Cargo.toml"), &["--device", KOALA]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not an MCAP recording"), "{err}");
}

/// Where no simulation runs, a recording has no `/sim/pose` channel, and the recorder says
/// nothing about it.
#[test]
fn without_a_simulation_nothing_of_it_is_recorded() {
    let inst = Instance::new("simnorec");
    let dir = inst.recordings();
    std::fs::create_dir_all(&dir).expect("a recordings directory");
    let file = dir.join("plain.mcap");
    // No suite at all: the recorder writes its file regardless (the sources connect when
    // they come), and the simulation's poller finds nothing to ask.
    let out = pitcrew_e2e::run_ok(inst.cli(&[
        "record",
        "-o",
        file.to_str().unwrap(),
        "--duration",
        "2500ms",
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("/sim/pose") && !said.contains("simulation"),
        "{said}"
    );
    let out =
        pitcrew_e2e::run_ok(inst.cli(&["recording", "info", file.to_str().unwrap(), "--json"]));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(info["counts"].get("/sim/pose").is_none(), "{info}");
    assert!(info["counts"].get("/devices/data").is_some(), "{info}");
}

//! MCAP recordings end to end, with the real binaries: `scripts/supervise --emulate` with
//! the example controller, a driver station (the harness' `ControlSender`), `pitcrew
//! record` subscribed to the processes' taps, then the file read by `pitcrew recording`,
//! by the `mcap` Python package (a third-party reader), replayed into a fresh suite, and
//! its devices played back there (`pitcrew emulate --from`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pitcrew::robot::{monotonic_ns, Mode};
use pitcrew_e2e::recording::{export_tables, read_with_mcap_package, Tables};
use pitcrew_e2e::supervisor::{
    enable_robot, kill, wait_state, ControlSender, Events, Instance, Supervisor,
};

/// Generous bound for what should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);
/// Devices `--emulate` starts.
const EMULATED_TYPES: usize = 11;

/// A supervised, emulated robot with the example controller, not recorded by the
/// supervisor (each test runs its own recorder).
struct Suite {
    sup: Supervisor,
    koala: String,
    inst: Instance,
}

impl Suite {
    fn start(tag: &str) -> Suite {
        let inst = Instance::new(tag);
        let sup = Supervisor::start(
            &inst,
            &["--emulate", "--run", "pitcrew-teleop", "--no-record"],
        );
        let deadline = Instant::now() + PATIENCE;
        let koala = loop {
            let connected = sup.stdout.matching(|e| e["event"] == "connected");
            if connected.len() >= EMULATED_TYPES {
                break connected
                    .iter()
                    .find(|(_, e)| e["type"] == "koala-bear")
                    .and_then(|(_, e)| e["uid"].as_str().map(str::to_owned))
                    .expect("a koala-bear is emulated");
            }
            assert!(Instant::now() < deadline, "the devices did not connect");
            std::thread::sleep(Duration::from_millis(20));
        };
        Suite { sup, koala, inst }
    }

    fn events(&self) -> &Events {
        &self.sup.stdout
    }

    /// `pitcrew call SERVICE status` as JSON.
    fn status(&self, service: &str) -> serde_json::Value {
        let out = self
            .inst
            .cli(&["call", service, "status", "--json"])
            .output()
            .expect("the CLI runs");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Starts `pitcrew record -o FILE ARGS` and waits until both taps have it listening.
    fn record(&self, file: &Path, args: &[&str]) -> Child {
        let log = std::fs::File::create(file.with_extension("log")).expect("a log file");
        let child = self
            .inst
            .cli(&["record", "-o", file.to_str().expect("a UTF-8 path")])
            .args(args)
            .stderr(log)
            .spawn()
            .expect("pitcrew record starts");
        let deadline = Instant::now() + PATIENCE;
        for service in ["device-service", "gamepad-service"] {
            while self.status(service)["tap"]["listening"] != true {
                assert!(
                    Instant::now() < deadline,
                    "{service}'s tap never saw the recorder"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        child
    }

    /// The koala-bear's `(duty_cycle_a, duty_cycle_b)` writes from emulator event `since`.
    fn koala_writes(&self, since: usize) -> Vec<(f64, f64)> {
        writes_of(
            self.events().all()[since..].iter().map(|(_, e)| e.clone()),
            &self.koala,
        )
    }
}

/// The (a, b) duty cycles of `uid`'s write events, in order.
fn writes_of(events: impl Iterator<Item = serde_json::Value>, uid: &str) -> Vec<(f64, f64)> {
    events
        .filter(|e| e["uid"] == uid && e["event"] == "write")
        .filter_map(|e| {
            let v = &e["values"];
            Some((v["duty_cycle_a"].as_f64()?, v["duty_cycle_b"].as_f64()?))
        })
        .collect()
}

/// The driven values in order: consecutive repeats and the safe (0, 0) removed.
fn driven(writes: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for w in writes.iter().filter(|w| **w != (0.0, 0.0)) {
        if out.last() != Some(w) {
            out.push(*w);
        }
    }
    out
}

/// Stops a recorder gracefully (SIGINT) and checks it exited 0.
fn stop(mut recorder: Child) {
    kill(recorder.id(), libc::SIGINT);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = recorder.try_wait().expect("wait works") {
            assert!(status.success(), "pitcrew record exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "pitcrew record did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The CSV files of `pitcrew recording export FILE --csv DIR`, as rows of named fields.
fn export(inst: &Instance, file: &Path) -> Tables {
    export_tables(inst.cli(&[]), file, &file.with_extension("csv"))
}

fn info(inst: &Instance, file: &Path) -> (bool, serde_json::Value, String) {
    let out = inst
        .cli(&["recording", "info", file.to_str().unwrap(), "--json"])
        .output()
        .expect("the CLI runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn recordings_dir(inst: &Instance) -> PathBuf {
    let dir = inst.recordings();
    std::fs::create_dir_all(&dir).expect("a recordings directory");
    dir
}

/// Drives the robot the way the session test does: enable, two stick positions, disable.
async fn drive(suite: &Suite, station: &ControlSender) {
    let client = suite.inst.client();
    enable_robot(&client, station, Mode::Teleop, PATIENCE).await;
    for (a, b) in [(0.5f32, -0.5f32), (0.25, 0.25)] {
        let since = suite.events().all().len();
        station.set(a, b, 0);
        let deadline = Instant::now() + PATIENCE;
        while !suite
            .koala_writes(since)
            .contains(&(f64::from(a), f64::from(b)))
        {
            assert!(Instant::now() < deadline, "the koala never got ({a}, {b})");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Long enough that a replay on a loaded machine, a few hundred ms late in places,
        // still shows each position.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    station.set(0.0, 0.0, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    station.disable();
    wait_state(&client, "disabled", PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_recorded_read_by_a_third_party_reader_and_replayed() {
    let suite = Suite::start("rec");
    let file = recordings_dir(&suite.inst).join("session.mcap");
    let recorder = suite.record(&file, &["--flush-interval", "200ms"]);
    // A quiet moment (disabled, nobody writing): from here on, every frame the devices get
    // is one the recorder hears.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let since = suite.events().all().len();
    let mark = monotonic_ns();

    let station = ControlSender::start(suite.inst.control_addr());
    drive(&suite, &station).await;
    station.pause();
    let sent = station.sent();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Frames are compared up to here: the estop ends the suite, and an emulator stopped
    // with it may not report the last frames it got (the recording has them; the estop
    // itself is checked in the recording's summary).
    let (estop_ns, estop_at) = (monotonic_ns(), Instant::now());
    pitcrew_e2e::run_ok(suite.inst.cli(&["estop"]));
    let mut sup = suite.sup;
    let status = tokio::task::spawn_blocking(move || {
        let s = sup.wait_exit(PATIENCE);
        (s, sup)
    })
    .await
    .unwrap();
    assert_eq!(
        status.0.and_then(|s| s.code()),
        Some(255),
        "an estop ends the suite"
    );
    let events = status.1.stdout.all();
    stop(recorder);

    // The recorder's own summary.
    let (ok, summary, stderr) = info(&suite.inst, &file);
    assert!(ok, "recording info failed: {stderr}");
    assert_eq!(summary["closed"], true, "{summary}");
    let states: Vec<&str> = summary["state_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    assert_eq!(states, ["teleop", "disabled", "estopped"], "{summary}");
    assert_eq!(summary["estops"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        summary["disconnects"].as_array().map(Vec::len),
        Some(EMULATED_TYPES),
        "every device's session ended at the shutdown: {summary}"
    );
    assert_eq!(summary["recorder_dropped"], "0");

    // Counts in the file equal what the sender sent and what the devices received.
    let tables = export(&suite.inst, &file);
    assert_eq!(
        tables["control_applied"].len() as u64,
        sent,
        "every datagram sent was applied and recorded"
    );
    let after = |table: &str| -> Vec<BTreeMap<String, String>> {
        tables[table]
            .iter()
            .filter(|r| r["log_time_ns"].parse::<u64>().unwrap() > mark)
            .cloned()
            .collect()
    };
    let device_events: Vec<&serde_json::Value> = events[since..]
        .iter()
        .filter(|(at, _)| *at < estop_at)
        .map(|(_, e)| e)
        .collect();
    for (table, event) in [("devices_write", "write"), ("devices_disable", "disable")] {
        let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
        let before_estop = after(table)
            .into_iter()
            .filter(|r| r["log_time_ns"].parse::<u64>().unwrap() < estop_ns);
        for r in before_estop {
            *recorded.entry(r["uid"].clone()).or_default() += 1;
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for e in device_events.iter().filter(|e| e["event"] == event) {
            *seen
                .entry(e["uid"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(
            recorded, seen,
            "{event} frames: recorded vs received by the devices"
        );
    }
    // The estop's DEV_DISABLE went to every device, and the recording has each.
    let disabled: std::collections::BTreeSet<String> = after("devices_disable")
        .iter()
        .filter(|r| r["log_time_ns"].parse::<u64>().unwrap() >= estop_ns)
        .map(|r| r["uid"].clone())
        .collect();
    assert_eq!(disabled.len(), EMULATED_TYPES, "{disabled:?}");
    let recorded_koala: Vec<(f64, f64)> = after("devices_write")
        .iter()
        .filter(|r| r["uid"] == suite.koala)
        .filter_map(|r| {
            Some((
                r.get("values.duty_cycle_a")?.parse().ok()?,
                r.get("values.duty_cycle_b")?.parse().ok()?,
            ))
        })
        .collect();
    let original = driven(&recorded_koala);
    assert_eq!(original, [(0.5, -0.5), (0.25, 0.25)], "{recorded_koala:?}");

    // The third-party reader: channels, JSON schemas, every message decodes.
    let third = read_with_mcap_package("read_recording.py", &file, &[]);
    let expected = [
        ("/control/applied", "pitcrew.ControlApplied"),
        ("/control/refused", "pitcrew.ControlRefused"),
        ("/robot/state", "pitcrew.RobotState"),
        ("/devices/data", "pitcrew.DeviceData"),
        ("/devices/write", "pitcrew.DeviceWrite"),
        ("/devices/disable", "pitcrew.DeviceDisable"),
        ("/devices/connection", "pitcrew.DeviceConnection"),
        ("/log", "pitcrew.LogRecord"),
    ];
    for (topic, schema) in expected {
        let c = &third["channels"][topic];
        assert_eq!(c["schema"], schema, "{third}");
        assert_eq!(c["schema_encoding"], "jsonschema");
        assert_eq!(c["message_encoding"], "json");
        assert_eq!(c["schema_is_json"], true);
        assert_eq!(
            third["counts"][topic].as_u64().unwrap_or(0),
            summary["counts"][topic].as_u64().unwrap(),
            "{topic}: the mcap package and pitcrew count alike"
        );
    }
    assert!(third["chunks"].as_u64().unwrap() > 1, "{third}");
    assert!(third["attachments"]
        .as_array()
        .unwrap()
        .contains(&"catalog.yaml".into()));

    // Replay into a fresh emulated suite reproduces the DEV_WRITE sequence. The replay
    // keeps the recorded timing, so the fresh suite must be ready to drive first (its
    // controller started, its lease path warm): one drive from a station of its own shows
    // it, then that station goes quiet and the robot is disabled again.
    let fresh = Suite::start("replay");
    {
        let warm_up = ControlSender::start(fresh.inst.control_addr());
        drive(&fresh, &warm_up).await;
        warm_up.pause();
    }
    let since = fresh.events().all().len();
    let out = fresh
        .inst
        .cli(&["replay", file.to_str().unwrap()])
        .output()
        .expect("the CLI runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("every device of this suite is emulated"),
        "{said}"
    );
    let replayed = driven(&fresh.koala_writes(since));
    assert_eq!(
        replayed, original,
        "the replay drove the koala as the session did"
    );

    // `emulate --from`: the recorded koala-bear (its UID, its DEV_DATA at their times),
    // read by a consumer of its buffer, shows the recorded values in order.
    let recorded_data: Vec<f64> = tables["devices_data"]
        .iter()
        .filter(|r| r["uid"] == suite.koala)
        .filter_map(|r| r.get("values.duty_cycle_a")?.parse().ok())
        .collect();
    let mut expected: Vec<f64> = Vec::new();
    for v in recorded_data {
        if expected.last() != Some(&v) {
            expected.push(v);
        }
    }
    assert!(
        expected.contains(&0.5) && expected.contains(&0.25),
        "{expected:?}"
    );
    let mut player = fresh
        .inst
        .cli(&[
            "emulate",
            "--from",
            file.to_str().unwrap(),
            "--tcp",
            &fresh.inst.virtual_addr(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pitcrew emulate starts");
    let uid: pitcrew_catalog::Uid = suite.koala.parse().unwrap();
    let catalog = pitcrew_catalog::Catalog::embedded();
    let deadline = Instant::now() + PATIENCE;
    let device = loop {
        if let Ok(d) = pitcrew::device::Device::open_uid(fresh.inst.name(), catalog, uid) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the played-back koala never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut seen: Vec<f64> = Vec::new();
    while !expected.iter().all(|v| seen.contains(v)) || seen.last() != expected.last() {
        if let Ok(v) = device.get::<f32>("duty_cycle_a") {
            let v = f64::from(v);
            if seen.last() != Some(&v) {
                seen.push(v);
            }
        }
        assert!(
            Instant::now() < deadline,
            "read {seen:?}, recorded {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    kill(player.id(), libc::SIGKILL);
    let _ = player.wait();
    eprintln!("emulate --from: read {seen:?}, recorded {expected:?}");
    // In order: what was read is the recorded sequence from its first driven value (the
    // broker's safe value at connect may come before it).
    let first = |v: &[f64]| v.iter().position(|x| *x != 0.0).unwrap_or(0);
    assert_eq!(
        &seen[first(&seen)..],
        &expected[first(&expected)..],
        "read {seen:?}, recorded {expected:?}"
    );

    // `replay --check`: the example controller writes what was recorded; one reading the
    // wrong gamepad does not, and the first divergence is named.
    let bare = Instance::new("check");
    let _sup = Supervisor::start(&bare, &["--no-record"]);
    let check = |cmd: &str| {
        bare.cli(&[
            "replay",
            file.to_str().unwrap(),
            "--check",
            "--run",
            cmd,
            "--devices",
            &bare.virtual_addr(),
        ])
        .output()
        .expect("the CLI runs")
    };
    let out = check("pitcrew-teleop");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("{}.duty_cycle_a: same", suite.koala)),
        "{said}"
    );
    let out = check("pitcrew-teleop --gamepad 1");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "{}.duty_cycle_a: DIFFERS: first differs at t=",
            suite.koala
        )) && said.contains("recorded 0.5"),
        "{said}"
    );
}

#[tokio::test]
async fn a_recorder_killed_mid_session_leaves_a_file_readable_to_its_last_chunk() {
    let suite = Suite::start("reckill");
    let file = recordings_dir(&suite.inst).join("cut.mcap");
    let recorder = suite.record(&file, &["--flush-interval", "100ms"]);
    // Devices stream DEV_DATA all the time: a second of it is several chunks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kill(recorder.id(), libc::SIGKILL);
    let _ = tokio::task::spawn_blocking(move || {
        let mut r = recorder;
        r.wait()
    })
    .await;
    let (ok, summary, stderr) = info(&suite.inst, &file);
    assert!(ok, "a cut recording still reads: {stderr}");
    assert_eq!(summary["closed"], false, "{summary}");
    assert!(summary["chunks"].as_u64().unwrap() >= 3, "{summary}");
    assert!(
        summary["counts"]["/devices/data"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let text = suite
        .inst
        .cli(&["recording", "info", file.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&text.stderr);
    assert!(said.contains("was not closed"), "{said}");

    // A corrupt chunk is an error naming the offset: bytes flipped in the compressed data
    // of the second chunk (found by walking MCAP's record framing: opcode, u64 length).
    let mut bytes = std::fs::read(&file).unwrap();
    let mut at = 8;
    let mut chunks = 0;
    let chunk = loop {
        let len = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().unwrap()) as usize;
        if bytes[at] == 0x06 {
            chunks += 1;
            if chunks == 2 {
                break at;
            }
        }
        at += 9 + len;
    };
    for b in &mut bytes[chunk + 80..chunk + 96] {
        *b ^= 0x5A;
    }
    let bad = file.with_file_name("corrupt.mcap");
    std::fs::write(&bad, &bytes).unwrap();
    let (ok, _, stderr) = info(&suite.inst, &bad);
    assert!(!ok, "a corrupt file is an error");
    assert!(
        stderr.contains(&format!("corrupt at byte offset {chunk}")),
        "{stderr}"
    );

    // A recording stopped cleanly is closed; the same file without its last byte is not.
    let whole = file.with_file_name("whole.mcap");
    let recorder = suite.record(&whole, &["--flush-interval", "100ms"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tokio::task::spawn_blocking(move || stop(recorder)).await;
    let (ok, summary, stderr) = info(&suite.inst, &whole);
    assert!(ok && summary["closed"] == true, "{summary} {stderr}");
    let bytes = std::fs::read(&whole).unwrap();
    let short = file.with_file_name("short.mcap");
    std::fs::write(&short, &bytes[..bytes.len() - 1]).unwrap();
    let (ok, summary, stderr) = info(&suite.inst, &short);
    assert!(ok, "it still reads: {stderr}");
    assert_eq!(summary["closed"], false, "one byte short: {summary}");
    let text = suite
        .inst
        .cli(&["recording", "info", short.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&text.stderr);
    assert!(said.contains("was not closed"), "{said}");
}

#[test]
fn the_disk_budget_removes_the_oldest_recordings_first() {
    let inst = Instance::new("recbudget");
    let dir = recordings_dir(&inst);
    for name in [
        "pitcrew-x-20250101T000000Z.mcap",
        "pitcrew-x-20250102T000000Z.mcap",
        "pitcrew-x-20250103T000000Z.mcap",
    ] {
        std::fs::write(dir.join(name), vec![0u8; 1 << 20]).unwrap();
    }
    // 3 MiB of old recordings and a budget of 2.5 MiB: the oldest one goes (the new file,
    // a few KiB, counts too). No suite: the recorder still writes its file (the sources connect when they come).
    pitcrew_e2e::run_ok(inst.cli(&[
        "record",
        "--dir",
        dir.to_str().unwrap(),
        "--budget",
        "2.5M",
        "--duration",
        "500ms",
    ]));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        !left.contains(&"pitcrew-x-20250101T000000Z.mcap".to_owned()),
        "the oldest went first: {left:?}"
    );
    let new = format!("pitcrew-{}-", inst.name());
    assert!(left.iter().any(|f| f.starts_with(&new)), "{left:?}");
}

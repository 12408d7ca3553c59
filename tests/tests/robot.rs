//! The robot state enforced by the device broker (robot-state.md), with the real binaries:
//! a router, `pitcrew-devices`, `pitcrew-gamepad receive`, a driver station sending control
//! datagrams, emulated Smart Devices whose `write`/`disable` events are what they received
//! on the wire, and controllers that are real processes (stopped and killed for real).

mod devices_support;

use std::time::{Duration, Instant};

use devices_support::{uid, Broker, Emu, PATIENCE};
use pitcrew::codec::to_json;
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{
    enable_robot, robot_state, station_datagram, wait_state, ControlSender,
};
use pitcrew_e2e::{bin, Namespace, Proc};
use serde_json::json;

/// A robot with one emulated koala-bear over TCP, leases at their default (100 ms).
struct Rig {
    station: ControlSender,
    _receiver: Proc,
    emu: Emu,
    koala: String,
    control: std::net::SocketAddr,
    broker: Broker,
    ns: Namespace,
}

impl Rig {
    async fn start(tag: &str, n: u64) -> Rig {
        let ns = Namespace::new(tag);
        let control_port = devices_support::free_udp_port();
        let control = std::net::SocketAddr::from(([127, 0, 0, 1], control_port));
        let receiver = ns.spawn(
            "pitcrew-gamepad",
            &["receive", "--control-addr", &format!("udp://{control}")],
        );
        let broker = Broker::start_bare(&ns, &["--output-lease", "100ms"]).await;
        let koala = uid(13, n);
        let emu = Emu::start(&ns, broker.port, &[&format!("koala-bear:{koala}")], &[]);
        broker.wait_valid(&koala, true).await;
        let station = ControlSender::start(control);
        Rig {
            station,
            _receiver: receiver,
            emu,
            koala,
            control,
            broker,
            ns,
        }
    }

    fn writes_of(&self, since: usize, value: f64) -> usize {
        self.emu.events()[since..]
            .iter()
            .filter(|e| {
                e["uid"] == self.koala.as_str()
                    && e["event"] == "write"
                    && e["values"]["duty_cycle_a"].as_f64() == Some(value)
            })
            .count()
    }

    /// Waits until a `duty_cycle_a == value` write arrives after event `since`.
    async fn wait_duty_since(&self, since: usize, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        while self.writes_of(since, value) == 0 {
            assert!(
                Instant::now() < deadline,
                "no duty_cycle_a={value} write: {:?}",
                &self.emu.events()[since..]
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn state(&self) -> serde_json::Value {
        robot_state(&self.broker.client).await
    }
}

/// A controller process writing `duty_cycle_a = value` every 2 ms (500 Hz) through shared
/// memory: `pitcrew-e2e`'s own helper binary would do, but the CLI's `set` in a shell loop
/// is a real, separate process per write, so this uses the example controller instead
/// where a long-lived writer is needed.
fn teleop(ns: &Namespace) -> Proc {
    assert!(
        bin("pitcrew-teleop").exists(),
        "pitcrew-teleop is not built (scripts/test builds it)"
    );
    ns.spawn("pitcrew-teleop", &[])
}

#[tokio::test]
async fn outputs_stay_safe_while_disabled_and_flow_only_once_enabled() {
    let rig = Rig::start("robotgate", 21).await;
    let state = rig.state().await;
    assert_eq!(
        state["state"], "disabled",
        "rule 2: a broker starts disabled: {state}"
    );
    // A controller writing 1.0 at 500 Hz while disabled: nothing reaches the device.
    let writer = {
        let ns = rig.ns.name.clone();
        let koala = rig.koala.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let uid: pitcrew_catalog::Uid = koala.parse().unwrap();
            let dev =
                pitcrew::device::Device::open_uid(&ns, pitcrew_catalog::Catalog::embedded(), uid)
                    .unwrap();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = dev.set("duty_cycle_a", 1.0f32);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        (stop, t)
    };
    let before = rig.emu.events().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rig.writes_of(before, 1.0),
        0,
        "a write while disabled reached the device"
    );
    let status = rig.broker.status().await;
    let held = rig.broker.list().await[0]["counters"]["outputs_held"].clone();
    assert!(
        held.as_u64().unwrap_or(0) > 50,
        "held writes are counted: {held} {status}"
    );

    // Enabled: the values flow.
    enable_robot(&rig.broker.client, &rig.station, Mode::Teleop, PATIENCE).await;
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(1.0))
        .await;

    // Disabled by the station: safe values on the wire, and nothing more gets through.
    rig.station.disable();
    wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(0.0))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = rig.emu.events().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.writes_of(after, 1.0),
        0,
        "a write after the disable reached the device"
    );
    writer.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.1.join();
}

#[tokio::test]
async fn link_loss_disables_and_only_a_fresh_enable_brings_it_back() {
    let rig = Rig::start("robotlink", 22).await;
    let _controller = teleop(&rig.ns);
    rig.station.set(0.5, 0.5, 0);
    enable_robot(&rig.broker.client, &rig.station, Mode::Teleop, PATIENCE).await;
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(0.5))
        .await;

    // The link goes silent: safe values on the wire, disabled, with the reason.
    let lost = Instant::now();
    let before = rig.emu.events().len();
    rig.station.pause();
    let state = wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    assert!(
        state["reason"].as_str().unwrap_or("").contains("lost"),
        "{state}"
    );
    rig.wait_duty_since(before, 0.0).await;
    let took = lost.elapsed();
    eprintln!("link loss → safe write seen after {took:?}");
    assert!(
        took < Duration::from_millis(600),
        "generous bound: 5x the 110 ms target"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = rig.emu.events().len();

    // Packets resume with the same "teleop, enabled" request: no re-enable (rule 4).
    rig.station.resume();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rig.state().await["state"], "disabled");
    assert_eq!(
        rig.writes_of(before, 0.5),
        0,
        "the motor moved again without a new enable"
    );

    // A replayed old datagram (a fresh seq, the old enable) does not either.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let old = pitcrew::control::StationRequest {
        mode: Mode::Teleop,
        enable: true,
        enable_id: 1,
        estop: false,
    };
    for seq in [1u64, 2] {
        let bytes = station_datagram((0.5, 0.5, 0), seq, 0, "test-station", Some(old));
        socket.send_to(&bytes, rig.control).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.state().await["state"], "disabled");

    // A fresh press does.
    enable_robot(&rig.broker.client, &rig.station, Mode::Teleop, PATIENCE).await;
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(0.5))
        .await;
}

#[tokio::test]
async fn a_stopped_controller_is_safe_within_the_lease_and_a_killed_one_at_once() {
    let rig = Rig::start("robotlease", 23).await;
    let mut controller = teleop(&rig.ns);
    rig.station.set(0.75, 0.75, 0);
    enable_robot(&rig.broker.client, &rig.station, Mode::Teleop, PATIENCE).await;
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(0.75))
        .await;

    // SIGSTOP: the controller stops writing; its lease runs out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rig.emu.events().len();
    let stopped = Instant::now();
    pitcrew_e2e::supervisor::kill(controller.pid(), libc::SIGSTOP);
    rig.wait_duty_since(before, 0.0).await;
    let took = stopped.elapsed();
    eprintln!("SIGSTOP → safe write after {took:?}");
    assert!(
        took >= Duration::from_millis(50),
        "not before the lease: {took:?}"
    );
    assert!(
        took < Duration::from_millis(575),
        "generous bound: 5x (lease + 15 ms)"
    );
    assert_eq!(
        rig.state().await["state"],
        "teleop",
        "the robot stays enabled: only that output lapsed"
    );

    // SIGCONT: it writes again and drives again.
    let resumed = rig.emu.events().len();
    pitcrew_e2e::supervisor::kill(controller.pid(), libc::SIGCONT);
    rig.wait_duty_since(resumed, 0.75).await;

    // SIGKILL: its pid is gone, the output goes safe without waiting for the lease.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let n = rig.emu.events().len();
    let killed = Instant::now();
    controller.kill9();
    rig.wait_duty_since(n, 0.0).await;
    eprintln!("SIGKILL → safe write after {:?}", killed.elapsed());
}

#[tokio::test]
async fn an_estop_from_the_driver_station_disables_every_device_and_latches() {
    let rig = Rig::start("robotestop", 24).await;
    enable_robot(&rig.broker.client, &rig.station, Mode::Autonomous, PATIENCE).await;
    rig.station.estop();
    rig.emu
        .wait_for("DEV_DISABLE", |e| {
            e["uid"] == rig.koala.as_str() && e["event"] == "disable"
        })
        .await;
    let state = wait_state(&rig.broker.client, "estopped", PATIENCE).await;
    assert!(
        state["reason"]
            .as_str()
            .unwrap_or("")
            .contains("driver station"),
        "{state}"
    );
    // Everything that asks for another state is refused with a reason and changes nothing.
    let out = rig.ns.cli(&["enable", "teleop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("emergency stop is latched"),
        "{out:?}"
    );
    let out = rig
        .ns
        .cli(&["match", "--auto", "1s", "--teleop", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rig.state().await["state"], "estopped");
}

#[tokio::test]
async fn requests_the_rules_forbid_are_refused_with_a_reason_and_counted() {
    let rig = Rig::start("robotrefuse", 25).await;
    rig.station.pause();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = rig.ns.cli(&["enable", "teleop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no live driver link"),
        "{out:?}"
    );
    let out = rig.ns.cli(&["match", "--stop"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no match is running"),
        "{out:?}"
    );
    let out = rig.ns.cli(&["enable", "sideways"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad mode is a usage error");
    let status = to_json(
        &rig.broker
            .client
            .call("device-service", "status", vec![])
            .await
            .unwrap(),
    );
    assert!(
        status["robot"]["refused"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );
    assert_eq!(rig.state().await["state"], "disabled");
}

#[tokio::test]
async fn a_match_runs_autonomous_a_gap_and_teleop_with_the_example_controller() {
    let rig = Rig::start("robotmatch", 26).await;
    let _controller = teleop(&rig.ns);
    rig.station.set(-0.25, -0.25, 0);
    // The station must be known to the broker (live link) before the match starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let out = rig
        .ns
        .cli(&[
            "match", "--auto", "1500ms", "--gap", "500ms", "--teleop", "1s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("autonomous"),
        "{out:?}"
    );
    // Autonomous: the example's routine, both motors at 0.5 for 1 s, then 0.
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(0.5))
        .await;
    let gap = wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    assert_eq!(gap["match"]["phase"], "gap", "{gap}");
    let in_gap = started.elapsed();
    let teleop_state = wait_state(&rig.broker.client, "teleop", PATIENCE).await;
    assert_eq!(teleop_state["match"]["phase"], "teleop");
    let in_teleop = started.elapsed();
    rig.emu
        .wait_write(&rig.koala, "duty_cycle_a", json!(-0.25))
        .await;
    let over = wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    let ended = started.elapsed();
    assert_eq!(over["reason"], "match over", "{over}");
    assert!(over["match"].is_null());
    eprintln!("match: gap at {in_gap:?}, teleop at {in_teleop:?}, over at {ended:?}");
    assert!(in_gap >= Duration::from_millis(1400) && in_teleop >= Duration::from_millis(1900));
    assert!(ended >= Duration::from_millis(2900) && ended < Duration::from_secs(15));
}

/// One emulated device of each shipped Smart Device type, as `TYPE:UID` specs.
fn every_type(n: u64) -> Vec<(String, String)> {
    pitcrew_catalog::Catalog::embedded()
        .types()
        .filter_map(|t| t.device_id().map(|id| (t.name().to_owned(), uid(id, n))))
        .collect()
}

#[tokio::test]
async fn an_estop_reaches_all_11_devices_and_holds_across_a_broker_sigkill_and_restart() {
    let mut rig = Rig::start("robotlatch", 27).await;
    let devices = every_type(31);
    assert_eq!(devices.len(), 11);
    let specs: Vec<String> = devices.iter().map(|(t, u)| format!("{t}:{u}")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let all = Emu::start(&rig.ns, rig.broker.port, &specs, &[]);
    for (_, u) in &devices {
        rig.broker.wait_valid(u, true).await;
    }
    enable_robot(&rig.broker.client, &rig.station, Mode::Teleop, PATIENCE).await;
    rig.station.estop();
    for (t, u) in &devices {
        all.wait_for(&format!("DEV_DISABLE of the {t}"), |e| {
            e["uid"] == u.as_str() && e["event"] == "disable"
        })
        .await;
    }
    wait_state(&rig.broker.client, "estopped", PATIENCE).await;

    // kill -9 of the broker and a restart: still estopped, and a device that connects is
    // disabled again.
    rig.broker.devices.kill9();
    drop(all);
    let args = [
        "--virtual-addr",
        &format!("tcp://127.0.0.1:{}", rig.broker.port),
        "--serial-glob",
        "",
    ];
    rig.broker.devices = rig.ns.spawn("pitcrew-devices", &args);
    pitcrew_e2e::wait_for_service(&rig.broker.client, "robot-service", PATIENCE)
        .await
        .expect("the restarted broker answers");
    let state = wait_state(&rig.broker.client, "estopped", PATIENCE).await;
    assert!(
        state["reason"].as_str().unwrap_or("").contains("latched"),
        "{state}"
    );
    let again = Emu::start(
        &rig.ns,
        rig.broker.port,
        &[&format!("koala-bear:{}", rig.koala)],
        &[],
    );
    again.wait_event(&rig.koala, "disable").await;
    let out = rig.ns.cli(&["enable", "teleop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let _ = std::fs::remove_file(format!("/tmp/{}-estop", rig.ns.name));
}

#[tokio::test]
async fn every_transition_through_the_cli_rpc_and_datagrams_with_what_the_device_receives() {
    let rig = Rig::start("robottable", 28).await;
    let _controller = teleop(&rig.ns);
    rig.station.set(0.25, 0.25, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cli = |args: &[&str]| {
        let out = rig.ns.cli(args).output().unwrap();
        assert!(out.status.success(), "pitcrew {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // disabled → autonomous (CLI): the example's routine drives 0.5.
    let n = rig.emu.events().len();
    assert!(cli(&["enable", "autonomous"]).starts_with("autonomous via test-station"));
    rig.wait_duty_since(n, 0.5).await;
    // autonomous → disabled (RPC): safe values.
    let n = rig.emu.events().len();
    let disabled = rig
        .broker
        .client
        .call(
            "robot-service",
            "disable",
            vec![pitcrew::codec::Value::from("table test")],
        )
        .await
        .unwrap();
    assert_eq!(to_json(&disabled)["reason"], "table test");
    rig.wait_duty_since(n, 0.0).await;
    // disabled → teleop (datagram): the sticks drive.
    let n = rig.emu.events().len();
    rig.station.enable(Mode::Teleop);
    wait_state(&rig.broker.client, "teleop", PATIENCE).await;
    rig.wait_duty_since(n, 0.25).await;
    // teleop → autonomous (CLI) directly, then → disabled (datagram: the station disables).
    let n = rig.emu.events().len();
    assert!(cli(&["enable", "autonomous"]).starts_with("autonomous"));
    rig.wait_duty_since(n, 0.5).await;
    let n = rig.emu.events().len();
    rig.station.disable();
    let state = wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    assert!(
        state["reason"]
            .as_str()
            .unwrap_or("")
            .contains("disabled by driver station"),
        "{state}"
    );
    rig.wait_duty_since(n, 0.0).await;
    // disabled → estopped (CLI): DEV_DISABLE, and the state says so.
    assert!(cli(&["state"]).starts_with("disabled"));
    cli(&["estop"]);
    rig.emu.wait_event(&rig.koala, "disable").await;
    assert!(cli(&["state"]).starts_with("estopped"));
    let _ = std::fs::remove_file(format!("/tmp/{}-estop", rig.ns.name));
}

//! End to end through the example controller: control datagrams → `pitcrew-gamepad receive`
//! → gamepad buffer → `pitcrew-teleop` (examples/teleop) → device buffer → `pitcrew-devices`
//! → an emulated koala-bear on a pseudo-terminal, whose `write` events are the DEV_WRITEs it
//! received. `pitcrew-teleop` is built into the same target directory by `scripts/test`.

mod devices_support;

use std::net::SocketAddr;
use std::time::Duration;

use devices_support::{uid, Broker, Emu, PATIENCE};
use pitcrew::codec;
use pitcrew::control::recording::format_line;
use pitcrew::gamepad::PadState;
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{enable_robot, wait_state, ControlSender};
use pitcrew_e2e::{bin, wait_for_service, Namespace, Proc};
use serde_json::json;

const BUTTON_A: u32 = 1;

fn pad(ly: f32, ry: f32, btn: u32) -> PadState {
    PadState {
        ly,
        ry,
        btn,
        ..PadState::NEUTRAL
    }
}

/// The broker with a serial glob in a fresh directory, and an emulated koala-bear on a
/// pseudo-terminal there.
async fn koala_on_a_pty(ns: &Namespace, n: u64) -> (Broker, Emu, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{}-pty", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let glob = format!("{}/ttyEMU*", dir.display());
    let broker =
        Broker::start_bare(ns, &["--serial-glob", &glob, "--serial-rescan", "100ms"]).await;
    let u = uid(13, n);
    let emu = Emu::start(
        ns,
        1,
        &[&format!("koala-bear:{u}")],
        &["--pty", &dir.display().to_string()],
    );
    broker.wait_valid(&u, true).await;
    (broker, emu, u, dir)
}

/// A gamepad receiver on a free port, and that port.
async fn receiver(ns: &Namespace) -> (Proc, SocketAddr) {
    let proc = ns.spawn(
        "pitcrew-gamepad",
        &["receive", "--control-addr", "udp://127.0.0.1:0"],
    );
    let client = ns.client();
    wait_for_service(&client, "gamepad-service", PATIENCE)
        .await
        .expect("gamepad-service answers");
    let status = client
        .call("gamepad-service", "status", vec![])
        .await
        .expect("status answers");
    let addr = codec::to_json(&status)["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("the receiver reports its address");
    (proc, addr)
}

fn teleop(ns: &Namespace, extra: &[&str]) -> Proc {
    assert!(
        bin("pitcrew-teleop").exists(),
        "pitcrew-teleop is not built: run scripts/test (it builds examples/teleop)"
    );
    ns.spawn("pitcrew-teleop", extra)
}

/// The (duty_cycle_a, duty_cycle_b) pairs the device received, in order.
fn duty_writes(emu: &Emu, u: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
    emu.events()
        .into_iter()
        .filter(|e| e["uid"] == u && e["event"] == "write")
        .filter(|e| e["values"].get("duty_cycle_a").is_some())
        .map(|e| {
            (
                e["values"]["duty_cycle_a"].clone(),
                e["values"]["duty_cycle_b"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_recording_drives_a_koala_bear_on_a_pseudo_terminal() {
    let ns = Namespace::new("teleop");
    let (_broker, emu, u, dir) = koala_on_a_pty(&ns, 7).await;
    let (_receiver, addr) = receiver(&ns).await;
    let _teleop = teleop(&ns, &["--slow-scale", "0.5"]);

    // Full speed, then A pressed (slow mode, sticks halved), released, new sticks.
    let ms = Duration::from_millis;
    let rec = std::env::temp_dir().join(format!("{}-drive.jsonl", ns.name));
    let lines = [
        format_line(ms(0), &vec![(0, PadState::NEUTRAL)]),
        format_line(ms(1000), &vec![(0, pad(0.5, -0.25, 0))]),
        format_line(ms(1400), &vec![(0, pad(0.5, -0.25, BUTTON_A))]),
        format_line(ms(1800), &vec![(0, pad(0.5, -0.25, 0))]),
        format_line(ms(2200), &vec![(0, pad(-1.0, 1.0, 0))]),
        format_line(ms(2600), &vec![(0, pad(-1.0, 1.0, 0))]),
    ];
    std::fs::write(&rec, lines.join("\n")).unwrap();
    let to = addr.to_string();
    let mut sender = ns.spawn(
        "pitcrew-gamepad",
        &[
            "send",
            "--to",
            &to,
            "--replay",
            &rec.display().to_string(),
            "--enable",
        ],
    );

    emu.wait_write(&u, "duty_cycle_b", json!(0.5)).await;
    // The replay has ended: the link is lost, the broker disables the robot and drives
    // the motors safe.
    emu.wait_for("the motors stopped after the replay", |e| {
        e["uid"] == u && e["event"] == "write" && e["values"]["duty_cycle_b"] == json!(0.0)
    })
    .await;
    let writes = duty_writes(&emu, &u);
    let expected = [
        (json!(0.5), json!(-0.25)),
        (json!(0.25), json!(-0.125)),
        (json!(-0.5), json!(0.5)),
    ];
    let mut at = 0;
    for w in &writes {
        if at < expected.len() && *w == expected[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        expected.len(),
        "expected {expected:?} in order, got {writes:?}"
    );
    assert!(sender.signal_and_wait(libc::SIGINT, PATIENCE).is_some());
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_controller_survives_devices_and_gamepads_coming_and_going() {
    let ns = Namespace::new("teleopchurn");
    // The controller starts first, with neither a gamepad receiver nor a device.
    let mut controller = teleop(&ns, &[]);
    let (_broker, mut emu, u, dir) = koala_on_a_pty(&ns, 8).await;
    let (mut first_receiver, addr) = receiver(&ns).await;
    let driver = ControlSender::start(addr);
    driver.set(0.5, 0.25, 0);
    let client = ns.client();
    enable_robot(&client, &driver, Mode::Teleop, PATIENCE).await;
    emu.wait_write(&u, "duty_cycle_a", json!(0.5)).await;

    // The device is unplugged and plugged back: it gets the current target again.
    emu.kill9();
    let emu = Emu::start(
        &ns,
        2,
        &[&format!("koala-bear:{u}")],
        &["--pty", &dir.display().to_string()],
    );
    emu.wait_write(&u, "duty_cycle_a", json!(0.5)).await;

    // The receiver dies, and the driver link with it: the broker disables the robot and
    // drives the motors safe. A new receiver replaces it: the driver enables again and
    // the controller follows the new buffer.
    first_receiver.kill9();
    emu.wait_write(&u, "duty_cycle_a", json!(0.0)).await;
    wait_state(&client, "disabled", PATIENCE).await;
    let (_second_receiver, addr) = receiver(&ns).await;
    driver.retarget(addr);
    driver.set(-0.75, 0.25, 0);
    enable_robot(&client, &driver, Mode::Teleop, PATIENCE).await;
    emu.wait_write(&u, "duty_cycle_a", json!(-0.75)).await;
    assert!(controller.is_running(), "the controller survived it all");

    // On SIGTERM the controller stops the motors and exits 0 (the driver still sends
    // -0.75; the zero comes from the controller's own stop or, as it exits, from the
    // broker, which watches the writer's pid).
    let before = emu.events().len();
    let status = controller.signal_and_wait(libc::SIGTERM, PATIENCE);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !emu.events()[before..]
        .iter()
        .any(|e| e["event"] == "write" && e["values"]["duty_cycle_a"] == json!(0.0))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no stop write after SIGTERM: {:?}",
            &emu.events()[before..]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}

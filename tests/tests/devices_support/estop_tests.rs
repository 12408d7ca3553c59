//! Emergency stop end to end: the latch (writes discarded until the broker restarts) and
//! `--exit-on-estop` (DEV_DISABLE everywhere, then exit status 3 for the supervisor).

use std::time::{Duration, Instant};

use pitcrew::codec::{from_json, Value};
use pitcrew_e2e::Namespace;
use serde_json::json;

use crate::devices_support::{uid, Broker, Emu, PtyDir, GROUP, PATIENCE};
use crate::open;

/// The contract the supervisor relies on (pitcrew-devices' `EXIT_ESTOP`).
const EXIT_ESTOP: i32 = 3;
/// The requirement: every device disabled within 50 ms of `estop` returning.
const DISABLE_BOUND: Duration = Duration::from_millis(50);
/// The requirement: the broker gone within 2 s of `estop` returning.
const EXIT_BOUND: Duration = Duration::from_secs(2);

#[tokio::test]
async fn exit_on_estop_disables_every_device_at_once_and_exits_with_status_3() {
    let ns = Namespace::new("estopexit");
    let dir = PtyDir::new(&ns, "estopexit");
    let glob = dir.glob();
    let mut broker = Broker::start(
        &ns,
        &[
            "--exit-on-estop",
            "--serial-glob",
            &glob,
            "--serial-rescan",
            "100ms",
        ],
    )
    .await;
    let tcp_uids = [uid(12, 301), uid(13, 302), uid(5, 303), uid(0, 304)];
    let tcp = Emu::start(
        &ns,
        broker.port,
        &[
            &format!("polar-bear:{}", tcp_uids[0]),
            &format!("koala-bear:{}", tcp_uids[1]),
            &format!("team-flag:{}", tcp_uids[2]),
            &format!("limit-switch:{}", tcp_uids[3]),
        ],
        &[],
    );
    let pty_uid = uid(7, 305);
    let pty = Emu::start_pty(&ns, &dir.path, &[&format!("servo-motor:{pty_uid}")], &[]);
    let all: Vec<(&Emu, &str)> = tcp_uids
        .iter()
        .map(|u| (&tcp, u.as_str()))
        .chain([(&pty, pty_uid.as_str())])
        .collect();
    for (_, u) in &all {
        broker.wait_valid(u, true).await;
    }
    assert_eq!(broker.status().await["estop"]["exit_on_estop"], true);

    let out = ns.cli(&["estop"]).output().unwrap();
    let returned = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answered: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (_, u) in &all {
        assert!(
            answered.as_array().unwrap().contains(&json!(u)),
            "{u} missing from {answered}"
        );
    }

    let status = broker
        .devices
        .wait_for_exit(EXIT_BOUND)
        .unwrap_or_else(|| panic!("the broker still runs {EXIT_BOUND:?} after estop returned"));
    let exited_after = returned.elapsed();
    assert_eq!(status.code(), Some(EXIT_ESTOP), "{status:?}");

    for (emu, u) in &all {
        emu.wait_event(u, "disable").await;
        let seen = emu
            .first_seen(|e| e["uid"] == *u && e["event"] == "disable")
            .unwrap();
        let late = seen.saturating_duration_since(returned);
        let early = returned.saturating_duration_since(seen);
        eprintln!("{u}: DEV_DISABLE seen {late:?} after / {early:?} before estop returned");
        assert!(
            late <= DISABLE_BOUND,
            "{u} got DEV_DISABLE {late:?} after estop returned"
        );
    }
    // The safe values went out with the estop.
    tcp.wait_write(&tcp_uids[0], "duty_cycle", json!(0.0)).await;
    pty.wait_write(&pty_uid, "servo0", json!(0.0)).await;
    // The shutdown that follows disables every device once more as its session closes.
    for (emu, u) in &all {
        emu.wait_count(u, "disable", 2).await;
    }
    let left = crate::devices_support::broker_segments_left(&ns.name);
    assert!(left.is_empty(), "segments left: {left:?}");
    eprintln!("broker exited {exited_after:?} after estop returned");
}

#[tokio::test]
async fn without_exit_on_estop_the_latch_discards_writes_until_restart() {
    let ns = Namespace::new("estoplatch");
    let mut broker = Broker::start(&ns, &[]).await;
    let u = uid(12, 311);
    let emu = Emu::start(&ns, broker.port, &[&format!("polar-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    let buf = open(&ns, &u);
    buf.write_value("duty_cycle", pitcrew_catalog::Value::F32(0.5))
        .unwrap();
    emu.wait_write(&u, "duty_cycle", json!(0.5)).await;
    assert_eq!(broker.status().await["estop"]["latched"], false);

    let out = pitcrew_e2e::run_ok(ns.cli(&["estop"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("latched"));
    emu.wait_event(&u, "disable").await;
    emu.wait_write(&u, "duty_cycle", json!(0.0)).await;

    // A controller's write through shm is taken by the broker, counted and dropped.
    buf.write_value("duty_cycle", pitcrew_catalog::Value::F32(0.25))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while broker.list().await[0]["counters"]["writes_discarded"] != 1 {
        assert!(Instant::now() < deadline, "{}", broker.list().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The line and the emulator's event lines are ordered: once the device reported a
    // later DEV_DISABLE, anything sent before it has been seen. Nothing but the estop's safe
    // value was written.
    broker
        .call("disable", vec![Value::Array(vec![Value::from(u.as_str())])])
        .await;
    let deadline = Instant::now() + PATIENCE;
    while emu
        .events()
        .iter()
        .filter(|e| e["uid"] == u.as_str() && e["event"] == "disable")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{:?}", emu.events());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writes: Vec<_> = emu
        .events()
        .into_iter()
        .filter(|e| e["event"] == "write")
        .map(|e| e["values"]["duty_cycle"].clone())
        .collect();
    assert_eq!(writes, [json!(0.5), json!(0.0)]);

    // An RPC write is refused with a reason, and the CLI says so.
    let values = from_json(&json!({ "duty_cycle": 0.75 }));
    let refused = broker
        .client
        .call(
            "device-service",
            "write",
            vec![Value::from(u.as_str()), values],
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("emergency stop"), "{refused}");
    let out = ns.cli(&["write", &u, "duty_cycle=0.75"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("emergency stop"));

    // The latch shows in list_devices, status and `pitcrew devices`; the broker runs on.
    assert_eq!(broker.list().await[0]["estop_latched"], true);
    let status = broker.status().await;
    assert_eq!(status["estop"]["latched"], true, "{status}");
    assert!(status["estop"]["since"].is_f64(), "{status}");
    assert_eq!(status["estop"]["writes_discarded"], 1, "{status}");
    let out = ns.cli(&["devices"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("EMERGENCY STOP latched"), "{table}");
    assert!(broker.devices.is_running());
    assert!(
        broker
            .call("read", vec![Value::from(u.as_str()), Value::Nil])
            .await["duty_cycle"]
            .is_f64(),
        "reads still work"
    );

    // A device that reconnects while the latch holds is disabled as soon as it is known.
    drop(emu);
    broker.wait_valid(&u, false).await;
    let again = Emu::start(&ns, broker.port, &[&format!("polar-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    again.wait_event(&u, "disable").await;
}

/// The broker's arguments in `broker`'s namespace and ports, plus `extra`.
fn broker_args(broker: &Broker, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--virtual-addr",
        &format!("tcp://127.0.0.1:{}", broker.port),
        "--update-addr",
        &format!("udp://{GROUP}:{}", broker.update_port),
        "--update-interface",
        "127.0.0.1",
        "--serial-glob",
        "",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[tokio::test]
async fn an_emergency_stop_survives_a_broker_restart_until_pitcrew_clean() {
    let ns = Namespace::new("estopmark");
    let mut broker = Broker::start(&ns, &["--exit-on-estop"]).await;
    let u = uid(13, 411);
    let emu = Emu::start(&ns, broker.port, &[&format!("koala-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    let out = ns.cli(&["estop"]).output().unwrap();
    assert!(out.status.success());
    let status = broker.devices.wait_for_exit(PATIENCE);
    assert_eq!(status.and_then(|s| s.code()), Some(EXIT_ESTOP));
    let marker = std::path::PathBuf::from(format!("/tmp/{}-estop", ns.name));
    assert!(
        marker.exists(),
        "the stop is recorded in {}",
        marker.display()
    );

    // Restarted (by a supervisor, or a person) with --exit-on-estop: it stops again at once.
    let args = broker_args(&broker, &["--exit-on-estop"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut again = ns.spawn("pitcrew-devices", &args);
    let status = again.wait_for_exit(PATIENCE);
    assert_eq!(status.and_then(|s| s.code()), Some(EXIT_ESTOP));

    // Restarted without it: it runs, latched, and a device that connects is disabled.
    drop(emu);
    let args = broker_args(&broker, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    broker.devices = ns.spawn("pitcrew-devices", &args);
    pitcrew_e2e::wait_for_service(&broker.client, "device-service", PATIENCE)
        .await
        .expect("the restarted broker answers");
    assert_eq!(broker.status().await["estop"]["latched"], true);
    let emu = Emu::start(&ns, broker.port, &[&format!("koala-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    emu.wait_event(&u, "disable").await;

    // `pitcrew clean`, once the instance is stopped, releases it for the next start.
    drop(broker.station.take());
    for p in [&mut broker.devices, &mut broker.router] {
        assert!(p.signal_and_wait(libc::SIGTERM, PATIENCE).is_some());
    }
    let out = ns.cli(&["clean"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("estop marker"),
        "{text}"
    );
    assert!(!marker.exists());
    broker.router = ns.spawn("pitcrew-router", &[]);
    broker.devices = ns.spawn("pitcrew-devices", &args);
    pitcrew_e2e::wait_for_service(&broker.client, "device-service", PATIENCE)
        .await
        .expect("the released broker answers");
    assert_eq!(broker.status().await["estop"]["latched"], false);
}

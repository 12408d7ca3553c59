//! Serial discovery end to end on real pseudo-terminals: inotify alone finds a new port,
//! and a port whose device never identifies is retried without disturbing the broker.

use std::time::Instant;

use pitcrew_e2e::Namespace;
use serde_json::json;

use crate::devices_support::{uid, Broker, Emu, PtyDir, PATIENCE};
use crate::{open, wait_value};

#[tokio::test]
async fn a_port_created_after_start_is_discovered_by_inotify_alone() {
    let ns = Namespace::new("inotify");
    let dir = PtyDir::new(&ns, "inotify");
    let glob = dir.glob();
    // The periodic rescan is an hour away: only inotify can find the port in this test.
    let broker = Broker::start(&ns, &["--serial-glob", &glob, "--serial-rescan", "3600s"]).await;
    // The start-up scan found nothing (the directory is empty).
    assert_eq!(broker.status().await["serial_ports"], json!({}));

    let u = uid(2, 401);
    let _emu = Emu::start_pty(
        &ns,
        &dir.path,
        &[&format!(r#"potentiometer:{u}:{{"pot1":1.5}}"#)],
        &[],
    );
    broker.wait_valid(&u, true).await;
    let list = broker.list().await;
    assert_eq!(list[0]["port"], json!(dir.link(0)), "{list}");
    let buf = open(&ns, &u);
    wait_value(&buf, "pot1", json!(1.5)).await;
    // Values keep streaming: the counter of messages from the device goes on rising.
    let before = broker.list().await[0]["counters"]["from_device"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while broker.list().await[0]["counters"]["from_device"]
        .as_u64()
        .unwrap()
        < before + 5
    {
        assert!(Instant::now() < deadline, "values stopped streaming");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ports = broker.status().await["serial_ports"].clone();
    assert_eq!(ports[dir.link(0)]["opens"], 1, "{ports}");
}

#[tokio::test]
async fn a_silent_serial_device_times_out_is_retried_and_the_broker_keeps_serving() {
    let ns = Namespace::new("silentpty");
    let silent_dir = PtyDir::new(&ns, "silent");
    let speaking_dir = PtyDir::new(&ns, "speaking");
    let (silent_glob, speaking_glob) = (silent_dir.glob(), speaking_dir.glob());
    let mut broker = Broker::start(
        &ns,
        &[
            "--serial-glob",
            &silent_glob,
            "--serial-glob",
            &speaking_glob,
            "--serial-rescan",
            "100ms",
            "--ping-interval",
            "100ms",
            "--discovery-timeout",
            "300ms",
        ],
    )
    .await;
    let quiet = uid(0, 402);
    let _silent = Emu::start_pty(
        &ns,
        &silent_dir.path,
        &[&format!("limit-switch:{quiet}")],
        &["--silent"],
    );
    let port = silent_dir.link(0);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = broker.status().await;
        let p = &status["serial_ports"][&port];
        if p["discovery_timeouts"].as_u64().unwrap_or(0) >= 2 {
            assert!(p["opens"].as_u64().unwrap() >= 2, "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "not retried: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(broker.devices.is_running());
    assert_eq!(broker.list().await, json!([]));

    // A device that speaks, on another port, is discovered normally meanwhile.
    let u = uid(4, 403);
    let _speaking = Emu::start_pty(
        &ns,
        &speaking_dir.path,
        &[&format!(r#"battery:{u}:{{"v_batt":12.5}}"#)],
        &[],
    );
    broker.wait_valid(&u, true).await;
    wait_value(&open(&ns, &u), "v_batt", json!(12.5)).await;
    let list = broker.list().await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["port"], json!(speaking_dir.link(0)));
}

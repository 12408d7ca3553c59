//! The device broker end to end: real router, real `pitcrew-devices`, real `pitcrew emulate`
//! processes over real TCP and pseudo-terminals, shared memory read and written from this
//! test process. Topic modules: [`estop`], [`multicast`], [`read`], [`serial`], [`stall`].

mod devices_support;

#[path = "devices_support/estop_tests.rs"]
mod estop;
#[path = "devices_support/multicast_tests.rs"]
mod multicast;
#[path = "devices_support/read_tests.rs"]
mod read;
#[path = "devices_support/serial_tests.rs"]
mod serial;
#[path = "devices_support/stall_tests.rs"]
mod stall;

use std::time::Duration;

use pitcrew::codec::{from_json, Value};
use pitcrew_buffer::Buffer;
use pitcrew_catalog::{Catalog, Uid};
use pitcrew_e2e::Namespace;
use serde_json::json;

use devices_support::{uid, Broker, Emu, PATIENCE};

fn open(ns: &Namespace, uid: &str) -> Buffer {
    let uid: Uid = uid.parse().unwrap();
    Buffer::open_uid(&ns.name, Catalog::embedded(), uid).expect("the buffer exists")
}

/// Waits until `param` of the buffer reads `want` (as JSON).
async fn wait_value(buf: &Buffer, param: &str, want: serde_json::Value) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let got = buf.get_value(param).map(|v| v.to_json());
        if got.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{param}: {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_shipped_smart_device_type_is_discovered_and_streams_into_shm() {
    let ns = Namespace::new("devtypes");
    let broker = Broker::start(&ns, &[]).await;
    let catalog = Catalog::embedded();
    let mut specs = Vec::new();
    let mut expect = Vec::new();
    for (i, ty) in catalog.types().filter(|t| t.is_smart()).enumerate() {
        let Some(id) = ty.device_id() else { continue };
        let u = uid(id, 1000 + i as u64);
        let p = ty
            .params()
            .iter()
            .find(|p| p.readable())
            .expect("a readable param");
        let value = match p.scalar().expect("scalar").name() {
            "bool" => json!(true),
            "float" | "double" => json!(0.5),
            _ => json!(7),
        };
        specs.push(format!("{}:{u}:{}", ty.name(), json!({ p.name(): value })));
        expect.push((u, p.name().to_owned(), value));
    }
    assert!(expect.len() >= 11, "all shipped Smart Device types");
    let spec_refs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let emu = Emu::start(&ns, broker.port, &spec_refs, &[]);
    for (u, param, value) in &expect {
        broker.wait_valid(u, true).await;
        emu.wait_event(u, "subscribe").await;
        let buf = open(&ns, u);
        wait_value(&buf, param, value.clone()).await;
        let read = broker
            .call("read", vec![Value::from(u.as_str()), Value::Nil])
            .await;
        assert_eq!(read[param.as_str()], *value, "RPC read of {u}");
    }
}

#[tokio::test]
async fn writes_through_shm_cli_and_rpc_reach_the_emulated_device() {
    let ns = Namespace::new("devwrite");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(12, 42);
    let emu = Emu::start(&ns, broker.port, &[&format!("polar-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    let buf = open(&ns, &u);

    buf.write_value("duty_cycle", pitcrew_catalog::Value::F32(0.5))
        .unwrap();
    emu.wait_write(&u, "duty_cycle", json!(0.5)).await;

    pitcrew_e2e::run_ok(ns.cli(&["write", &u, "duty_cycle=-0.25", "deadband=0.125"]));
    emu.wait_write(&u, "duty_cycle", json!(-0.25)).await;

    let values = from_json(&json!({ "duty_cycle": 0.75 }));
    let res = broker
        .call("write", vec![Value::from(u.as_str()), values])
        .await;
    assert_eq!(res["clamped"], json!([]));
    emu.wait_write(&u, "duty_cycle", json!(0.75)).await;

    // Clamped to the bounds, and the echo of a readable param comes back into the buffer.
    let values = from_json(&json!({ "duty_cycle": 3.0 }));
    let res = broker
        .call("write", vec![Value::from(u.as_str()), values])
        .await;
    assert_eq!(res["clamped"], json!(["duty_cycle"]));
    emu.wait_write(&u, "duty_cycle", json!(1.0)).await;
    wait_value(&buf, "duty_cycle", json!(1.0)).await;

    let out = ns
        .cli(&["read", &u, "duty_cycle", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read, json!({ "duty_cycle": 1.0 }));

    let out = ns.cli(&["devices"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&u));
}

#[tokio::test]
async fn unplug_and_replug_keep_the_buffer() {
    let ns = Namespace::new("devreplug");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(4, 9);
    let mut first = Emu::start(
        &ns,
        broker.port,
        &[&format!(r#"battery:{u}:{{"v_batt":11.5}}"#)],
        &[],
    );
    broker.wait_valid(&u, true).await;
    let buf = open(&ns, &u);
    wait_value(&buf, "v_batt", json!(11.5)).await;

    first.kill9();
    broker.wait_valid(&u, false).await;
    assert!(!buf.is_valid());

    let _second = Emu::start(
        &ns,
        broker.port,
        &[&format!(r#"battery:{u}:{{"v_batt":12.25}}"#)],
        &[],
    );
    broker.wait_valid(&u, true).await;
    // The mapping opened before the unplug sees the new values: same buffer.
    wait_value(&buf, "v_batt", json!(12.25)).await;
    let list = broker.list().await;
    assert_eq!(list[0]["counters"]["connections"], json!(2));
}

#[tokio::test]
async fn a_duplicate_uid_is_refused_and_the_first_keeps_working() {
    let ns = Namespace::new("devdup");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(7, 5);
    let first = Emu::start(&ns, broker.port, &[&format!("servo-motor:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    let mut second = Emu::start(&ns, broker.port, &[&format!("servo-motor:{u}")], &[]);
    second.wait_event(&u, "closed").await;
    assert!(second.wait_exit());
    let values = from_json(&json!({ "servo1": -0.5 }));
    broker
        .call("write", vec![Value::from(u.as_str()), values])
        .await;
    first.wait_write(&u, "servo1", json!(-0.5)).await;
    broker.wait_valid(&u, true).await;
}

#[tokio::test]
async fn a_silent_device_times_out_of_discovery() {
    let ns = Namespace::new("devsilent");
    let broker = Broker::start(&ns, &["--discovery-timeout", "1500ms"]).await;
    let u = uid(0, 3);
    let mut silent = Emu::start(
        &ns,
        broker.port,
        &[&format!("limit-switch:{u}")],
        &["--silent"],
    );
    silent.wait_event(&u, "closed").await;
    assert!(silent.wait_exit());
    assert_eq!(broker.list().await, json!([]));
}

#[tokio::test]
async fn a_garbage_device_gets_errors_and_does_not_disturb_the_others() {
    let ns = Namespace::new("devgarbage");
    let broker = Broker::start(&ns, &[]).await;
    let bad = uid(3, 66);
    let good = uid(13, 67);
    let garbage = Emu::start(
        &ns,
        broker.port,
        &[&format!("encoder:{bad}")],
        &["--garbage"],
    );
    let emu = Emu::start(
        &ns,
        broker.port,
        &[&format!(r#"koala-bear:{good}:{{"enc_pos_b":2.5}}"#)],
        &[],
    );
    broker.wait_valid(&good, true).await;
    for code in ["BAD_CHECKSUM", "INVALID_TYPE"] {
        garbage
            .wait_for(code, |e| e["event"] == "error" && e["code"] == code)
            .await;
    }
    let values = from_json(&json!({ "duty_cycle_b": 0.5 }));
    broker
        .call("write", vec![Value::from(good.as_str()), values])
        .await;
    emu.wait_write(&good, "duty_cycle_b", json!(0.5)).await;
    wait_value(&open(&ns, &good), "enc_pos_b", json!(2.5)).await;
    assert!(broker
        .list()
        .await
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["uid"] != json!(bad)));
}

#[tokio::test]
async fn a_device_that_vanishes_mid_frame_is_cleaned_up() {
    let ns = Namespace::new("devvanish");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(1, 8);
    let mut emu = Emu::start(
        &ns,
        broker.port,
        &[&format!("line-follower:{u}")],
        &["--vanish-after", "1"],
    );
    broker.wait_valid(&u, true).await;
    emu.wait_event(&u, "vanished").await;
    assert!(emu.wait_exit());
    broker.wait_valid(&u, false).await;
}

#[tokio::test]
async fn sigterm_disables_every_device_before_the_broker_exits() {
    let ns = Namespace::new("devterm");
    let mut broker = Broker::start(&ns, &[]).await;
    let uids = [uid(12, 1), uid(13, 2), uid(5, 3)];
    let emu = Emu::start(
        &ns,
        broker.port,
        &[
            &format!("polar-bear:{}", uids[0]),
            &format!("koala-bear:{}", uids[1]),
            &format!("team-flag:{}", uids[2]),
        ],
        &[],
    );
    for u in &uids {
        broker.wait_valid(u, true).await;
    }
    let tap = ns.ipc_file("tap-devices.sock");
    assert!(
        tap.exists(),
        "the broker's tap is not bound: {}",
        tap.display()
    );
    let status = broker
        .devices
        .signal_and_wait(libc::SIGTERM, PATIENCE)
        .expect("the broker exits");
    assert!(status.success(), "{status:?}");
    for u in &uids {
        emu.wait_event(u, "disable").await;
    }
    let left = devices_support::broker_segments_left(&ns.name);
    assert!(left.is_empty(), "segments left: {left:?}");
    assert!(!tap.exists(), "left behind: {}", tap.display());
}

#[tokio::test]
async fn estop_disables_and_writes_safe_values_at_once() {
    let ns = Namespace::new("devestop");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(10, 77);
    let emu = Emu::start(&ns, broker.port, &[&format!("yogi-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    let values = from_json(&json!({ "duty_cycle": 0.5 }));
    broker
        .call("write", vec![Value::from(u.as_str()), values])
        .await;
    emu.wait_write(&u, "duty_cycle", json!(0.5)).await;
    pitcrew_e2e::run_ok(ns.cli(&["estop"]));
    emu.wait_event(&u, "disable").await;
    emu.wait_write(&u, "duty_cycle", json!(0.0)).await;
    let rtt = broker
        .call("heartbeat", vec![Value::from(u.as_str())])
        .await;
    assert!(rtt.as_f64().is_some_and(|s| s >= 0.0), "{rtt}");
}

#[tokio::test]
async fn thirty_two_devices_at_once_all_correct() {
    let ns = Namespace::new("dev32");
    let broker = Broker::start(&ns, &[]).await;
    let specs: Vec<(String, String)> = (0..32u64)
        .map(|i| {
            let u = uid(2, 500 + i);
            let spec = format!(r#"potentiometer:{u}:{{"pot1":{}.5}}"#, i);
            (u, spec)
        })
        .collect();
    let refs: Vec<&str> = specs.iter().map(|(_, s)| s.as_str()).collect();
    let emu = Emu::start(&ns, broker.port, &refs, &[]);
    for (i, (u, _)) in specs.iter().enumerate() {
        broker.wait_valid(u, true).await;
        wait_value(&open(&ns, u), "pot1", json!(i as f64 + 0.5)).await;
    }
    let (u, _) = &specs[17];
    let buf = open(&ns, u);
    buf.request_read(&["pot0"]).unwrap();
    assert_eq!(broker.list().await.as_array().unwrap().len(), 32);
    drop(emu);
}

#[tokio::test]
async fn a_device_on_a_pseudo_terminal_is_discovered_written_and_replugged() {
    let ns = Namespace::new("devpty");
    let dir = std::env::temp_dir().join(format!("{}-pty", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let glob = format!("{}/ttyEMU*", dir.display());
    let broker = Broker::start(&ns, &["--serial-glob", &glob, "--serial-rescan", "100ms"]).await;
    let u = uid(13, 99);
    let pty_arg = dir.display().to_string();
    let spec = format!(r#"koala-bear:{u}:{{"enc_pos_a":4.5}}"#);
    let mut first = Emu::start(&ns, 1, &[&spec], &["--pty", &pty_arg]);
    broker.wait_valid(&u, true).await;
    let buf = open(&ns, &u);
    wait_value(&buf, "enc_pos_a", json!(4.5)).await;
    buf.write_value("duty_cycle_a", pitcrew_catalog::Value::F32(-0.5))
        .unwrap();
    first.wait_write(&u, "duty_cycle_a", json!(-0.5)).await;
    let list = broker.list().await;
    assert!(
        list[0]["port"].as_str().unwrap().contains("ttyEMU0"),
        "{list}"
    );

    // Unplug: the terminal goes away; replug: a new one under the same name.
    first.kill9();
    broker.wait_valid(&u, false).await;
    let spec = format!(r#"koala-bear:{u}:{{"enc_pos_a":5.5}}"#);
    let _second = Emu::start(&ns, 2, &[&spec], &["--pty", &pty_arg]);
    broker.wait_valid(&u, true).await;
    wait_value(&buf, "enc_pos_a", json!(5.5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

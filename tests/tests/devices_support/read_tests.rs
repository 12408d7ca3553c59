//! `read(uid, params?)` asks the device (DEV_READ) and answers with what it sent back; a
//! device that does not answer gets a clear error instead of stale values.

use pitcrew::codec::{from_json, Value};
use pitcrew::rpc::ErrorCode;
use pitcrew_catalog::Catalog;
use pitcrew_e2e::Namespace;
use serde_json::json;

use crate::devices_support::{uid, Broker, Emu, PtyDir};
use crate::{open, wait_value};

/// Stops the device's stream (an empty subscription) and waits until it took effect.
async fn unsubscribe(broker: &Broker, emu: &Emu, u: &str) {
    broker
        .call("unsubscribe", vec![Value::Array(vec![Value::from(u)])])
        .await;
    emu.wait_for("the empty subscription", |e| {
        e["uid"] == u && e["event"] == "subscribe" && e["params"] == 0
    })
    .await;
}

#[tokio::test]
async fn read_asks_the_device_and_returns_what_it_answered() {
    let ns = Namespace::new("readfresh");
    let broker = Broker::start(&ns, &[]).await;
    let u = uid(12, 501);
    let emu = Emu::start(&ns, broker.port, &[&format!("polar-bear:{u}")], &[]);
    broker.wait_valid(&u, true).await;
    unsubscribe(&broker, &emu, &u).await;
    let buf = open(&ns, &u);

    // The device's duty_cycle and the broker's copy part ways: a write is echoed into the
    // buffer, then DEV_DISABLE resets the device's value to 0 without telling anyone
    // (nothing streams). Only a read that asks the device can return 0.
    for (round, written) in [(1, 0.5), (2, -0.75)] {
        let values = from_json(&json!({ "duty_cycle": written }));
        broker
            .call("write", vec![Value::from(u.as_str()), values])
            .await;
        wait_value(&buf, "duty_cycle", json!(written)).await;
        broker
            .call("disable", vec![Value::Array(vec![Value::from(u.as_str())])])
            .await;
        emu.wait_count(&u, "disable", round).await;
        assert_eq!(
            buf.get_value("duty_cycle").unwrap().to_json(),
            json!(written)
        );
        if round == 1 {
            let read = broker
                .call(
                    "read",
                    vec![
                        Value::from(u.as_str()),
                        Value::Array(vec![Value::from("duty_cycle")]),
                    ],
                )
                .await;
            assert_eq!(read, json!({ "duty_cycle": 0.0 }));
        } else {
            let out = pitcrew_e2e::run_ok(ns.cli(&["read", &u, "duty_cycle", "--json"]));
            let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(read, json!({ "duty_cycle": 0.0 }));
        }
        assert_eq!(buf.get_value("duty_cycle").unwrap().to_json(), json!(0.0));
    }

    // Without params: every readable param, each fresh.
    let all = broker
        .call("read", vec![Value::from(u.as_str()), Value::Nil])
        .await;
    let readable = Catalog::embedded()
        .get("polar-bear")
        .unwrap()
        .params()
        .iter()
        .filter(|p| p.readable())
        .count();
    assert_eq!(all.as_object().unwrap().len(), readable, "{all}");
    // A param that is not readable is refused before anything is asked.
    let err = broker
        .client
        .call(
            "device-service",
            "read",
            vec![
                Value::from(u.as_str()),
                Value::Array(vec![Value::from("pid_pos_kp")]),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParams, "{err}");
}

#[tokio::test]
async fn a_read_the_device_does_not_answer_fails_naming_the_device_and_params() {
    let ns = Namespace::new("readslow");
    let dir = PtyDir::new(&ns, "readslow");
    let glob = dir.glob();
    // A device that answers 2.5 s late, over a real serial line; the liveness timeout is
    // raised so the broker keeps it while its answers lag.
    let broker = Broker::start(
        &ns,
        &[
            "--serial-glob",
            &glob,
            "--serial-rescan",
            "100ms",
            "--liveness-timeout",
            "60s",
        ],
    )
    .await;
    let u = uid(12, 502);
    let emu = Emu::start_pty(
        &ns,
        &dir.path,
        &[&format!("polar-bear:{u}")],
        &["--slow-ms", "2500"],
    );
    broker.wait_valid(&u, true).await;
    // With nothing streaming, only an answer to the DEV_READ could satisfy the read.
    unsubscribe(&broker, &emu, &u).await;

    let err = broker
        .client
        .call(
            "device-service",
            "read",
            vec![
                Value::from(u.as_str()),
                Value::Array(vec![Value::from("duty_cycle"), Value::from("enc_vel")]),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    for part in [
        u.as_str(),
        "polar-bear",
        "duty_cycle",
        "enc_vel",
        "did not answer",
    ] {
        assert!(
            err.message.contains(part),
            "{part:?} not in {:?}",
            err.message
        );
    }
    // The broker's own bounded wait answered (`timeout` with its message), not the
    // client's 5 s deadline.

    // Another param, so the late answer to the first read cannot satisfy this one.
    let out = ns.cli(&["read", &u, "motor_current"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&u) && stderr.contains("did not answer DEV_READ of motor_current"),
        "{stderr}"
    );
}

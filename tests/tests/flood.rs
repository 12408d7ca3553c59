//! A flood of junk at the control port (another team's laptop gone wrong, or an attacker)
//! against a keyed receiver run as deployed, while the real driver drives: in a test binary
//! of its own, so that the flood's load meets no other test.

mod auth_support;
mod devices_support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use auth_support::{request, CallService, Rig};
use devices_support::PATIENCE;
use pitcrew::control::auth::Sealer;
use pitcrew::key::{Key, KeyKind};
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{enable_robot, robot_state, station_datagram, ControlSender};

#[tokio::test]
async fn a_flood_of_junk_at_the_control_port_costs_the_driver_at_most_one_percent() {
    // As deployed: scripts/supervise runs the receive thread at SCHED_FIFO 10 (without
    // CAP_SYS_NICE it warns and runs normally).
    let rig = Rig::start_with("authflood", &["--realtime", "10"]).await;
    let driver = ControlSender::sealed(rig.control, "driver", &rig.key.key);
    driver.set(0.5, 0.0, 0);
    enable_robot(&rig.broker.client, &driver, Mode::Teleop, PATIENCE).await;
    let before = rig.counters().await;
    let sent_before = driver.sent();
    let status_before = rig.broker.call_service("gamepad-service", "status").await;

    // 100 000 junk datagrams per second for 20 s from another socket: random bytes,
    // unsealed control datagrams and sealed ones with a wrong key, in turn.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (stop, to) = (std::sync::Arc::clone(&stop), rig.control);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
            let stranger = Key::generate(KeyKind::Team).expect("a key");
            let mut forger = Sealer::new(&stranger).expect("a session");
            let unsealed = station_datagram((1.0, 0.0, 0), 1, 0, "driver", Some(request(7)));
            // Made before the flood, so the sender's own work stays small.
            let mut junk: Vec<Vec<u8>> = (0..64u8)
                .map(|i| {
                    (0..(16 + usize::from(i) * 7))
                        .map(|j| (j as u8) ^ i)
                        .collect()
                })
                .collect();
            for i in 0..256 {
                junk.push(if i % 2 == 0 {
                    unsealed.clone()
                } else {
                    forger.seal(&unsealed)
                });
            }
            let start = Instant::now();
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Paced per millisecond: 100 datagrams each.
                let due = start.elapsed().as_micros() as u64 / 10;
                while sent < due {
                    let _ = socket.send_to(&junk[sent as usize % junk.len()], to);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            (sent, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (junk_sent, took) = flood.join().expect("the flood thread");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = rig.counters().await;
    let status_after = rig.broker.call_service("gamepad-service", "status").await;
    let applied = after["applied"].as_u64().unwrap_or(0) - before["applied"].as_u64().unwrap_or(0);
    let sent = driver.sent() - sent_before;
    let rate = junk_sent as f64 / took.as_secs_f64();
    // The target is 100 000/s; a loaded CI machine may not generate that many, but far
    // fewer would not test anything.
    assert!(
        rate > 30_000.0,
        "the flood reached only {rate:.0} datagrams/s"
    );
    let lost = sent.saturating_sub(applied);
    assert!(
        lost * 100 <= sent,
        "{lost} of {sent} valid datagrams lost under {rate:.0} junk datagrams/s: {after}"
    );
    assert_eq!(
        status_after["watchdog"]["trips"], status_before["watchdog"]["trips"],
        "the watchdog tripped under the flood: {status_after}"
    );
    let state = robot_state(&rig.broker.client).await;
    assert_eq!(state["state"], "teleop", "{state}");
    eprintln!(
        "flood: {junk_sent} junk datagrams at {rate:.0}/s; driver sent {sent}, applied {applied}"
    );
}

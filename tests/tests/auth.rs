//! Who may drive (robot-state.md, "Who may drive"; README, "Threat model"), with the real
//! binaries: a gamepad receiver holding a team key, the router and the device broker, a
//! real driver station sealing its datagrams, and an attacker on the same network sending
//! unsealed, forged, replayed, reordered, stale, cross-session and max-counter datagrams,
//! and a whole recorded session after a restart of the suite.

mod auth_support;
mod devices_support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use auth_support::{
    request, send_raw, spawn_receiver, CallService, KeyFile, Recorder, Rig, Station,
};
use devices_support::{Broker, PATIENCE};
use pitcrew::gamepad::Gamepad;
use pitcrew::key::{Key, KeyKind};
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{
    enable_robot, robot_state, station_datagram, wait_state, ControlSender,
};
use pitcrew_e2e::Namespace;

#[tokio::test]
async fn only_the_key_holders_fresh_datagrams_move_the_robot_and_everything_else_is_counted() {
    let rig = Rig::start("authforge").await;
    // The real driver: sealed, enabled in teleop, left stick at 0.25.
    let _driver = rig.driver().await; // drives for the whole test
                                      // Everything below is on record as well.
    let recorder = Recorder::start(&rig).await;
    let before = rig.counters().await;

    // An attacker's own datagrams: unsealed, sealed with another key, and a real one with
    // its counter raised to the maximum (the tag no longer matches).
    let unsealed = station_datagram((1.0, 0.0, 0), u64::MAX, 0, "driver", Some(request(99)));
    let stranger = Key::generate(KeyKind::Team).expect("a key");
    let mut forger = Station::new(&stranger, rig.control);
    let forged = forger.send(1.0, Some(request(99)), "driver");
    // A captured datagram of a second, genuine station (its session is live).
    let mut captured_from = Station::new(&rig.key.key, rig.control);
    captured_from.send(0.25, None, "other"); // its first: answered with a challenge
    let live = captured_from.send(0.25, None, "other");
    let mut max_counter = live.clone();
    max_counter[13..21].copy_from_slice(&u64::MAX.to_be_bytes());
    for _ in 0..20 {
        send_raw(&unsealed, rig.control);
        send_raw(&forged, rig.control);
        send_raw(&max_counter, rig.control);
        send_raw(&live, rig.control); // a replay: its counter was applied already
    }
    // The same captured datagram 1 s later: stale as well as replayed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old = captured_from.sent[0].1.clone();
    send_raw(&old, rig.control);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let after = rig.counters().await;
    let delta = |name: &str| after[name].as_u64().unwrap_or(0) - before[name].as_u64().unwrap_or(0);
    assert_eq!(delta("unauthenticated"), 20, "{after}");
    assert_eq!(
        delta("forged"),
        41,
        "forged + max counter (+ 1 forger): {after}"
    );
    assert!(delta("replayed") >= 20, "{after}");
    assert!(
        delta("stale") >= 2,
        "the capture's first and the old one: {after}"
    );
    // The driver kept control throughout: the stick is the driver's and the robot is still
    // enabled by the driver, with no watchdog trip.
    assert_eq!(rig.left_y(), 0.25);
    let state = robot_state(&rig.broker.client).await;
    assert_eq!(
        (state["state"].as_str(), state["link"].as_str()),
        (Some("teleop"), Some("driver")),
        "{state}"
    );
    let status = rig.broker.call_service("gamepad-service", "status").await;
    assert_eq!(status["watchdog"]["trips"], 0, "{status}");

    // The recording holds every refusal, with its kind, as the counters do.
    assert_eq!(status["tap"]["dropped"], 0, "{status}");
    let recorded = recorder.refused_by_kind(&rig.ns);
    for kind in ["unauthenticated", "forged", "replayed", "stale"] {
        assert_eq!(
            recorded.get(kind).copied().unwrap_or(0),
            delta(kind),
            "{kind}: recorded {recorded:?}, counted {after}"
        );
    }
}

#[tokio::test]
async fn a_restarted_driver_station_is_taken_at_once_and_its_old_session_never_again() {
    let rig = Rig::start("authsession").await;
    let mut first = Station::new(&rig.key.key, rig.control);
    first.send(0.5, None, "driver");
    first.send(0.5, None, "driver");
    let deadline = Instant::now() + PATIENCE;
    while rig.left_y() != 0.5 {
        assert!(Instant::now() < deadline, "the first session never drove");
        first.send(0.5, None, "driver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The station restarts (a new session under the same name): taken without waiting.
    let mut second = Station::new(&rig.key.key, rig.control);
    let started = Instant::now();
    while rig.left_y() != -0.5 {
        assert!(Instant::now() < deadline, "the new session was not taken");
        second.send(-0.5, None, "driver");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the new session waited {:?}",
        started.elapsed()
    );
    let before = rig.counters().await["superseded"].as_u64().unwrap_or(0);
    // The old session, still running somewhere (or replayed fresh), changes nothing.
    for _ in 0..5 {
        second.send(-0.5, None, "driver");
        first.send(0.9, None, "driver");
    }
    // Within the control timeout, so the gamepad is still the driver's.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(rig.left_y(), -0.5);
    let after = rig.counters().await["superseded"].as_u64().unwrap_or(0);
    assert!(after - before >= 4, "superseded {before} -> {after}");
}

#[tokio::test]
async fn a_whole_recorded_session_replayed_after_a_restart_of_the_suite_changes_nothing() {
    let mut rig = Rig::start("authreplay").await;
    // A real session: the station enables the robot and drives, every datagram kept.
    let mut station = Station::new(&rig.key.key, rig.control);
    let deadline = Instant::now() + PATIENCE;
    let mut id = 0;
    while robot_state(&rig.broker.client).await["state"] != "teleop" {
        assert!(Instant::now() < deadline, "the robot was never enabled");
        id += 1;
        for _ in 0..3 {
            station.send(0.75, Some(request(id)), "driver");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for _ in 0..25 {
        station.send(0.75, Some(request(id)), "driver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recording = std::mem::take(&mut station.sent);
    drop(station);
    wait_state(&rig.broker.client, "disabled", PATIENCE).await;

    // The suite restarts (the receiver, which holds the challenges; the broker too).
    rig.receiver.kill9();
    rig.receiver = spawn_receiver(&rig.ns, rig.control, &rig.key, &[]);
    let deadline = Instant::now() + PATIENCE;
    while rig
        .broker
        .call_service("gamepad-service", "status")
        .await
        .is_null()
    {
        assert!(Instant::now() < deadline, "the new receiver never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The recording, replayed with its own timing, twice.
    for _ in 0..2 {
        let start = recording[0].0;
        let t0 = Instant::now();
        for (at, bytes) in &recording {
            let due = t0 + at.duration_since(start);
            tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
            send_raw(bytes, rig.control);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = robot_state(&rig.broker.client).await;
    assert_eq!(state["state"], "disabled", "{state}");
    let counters = rig.counters().await;
    assert_eq!(counters["applied"], 0, "{counters}");
    assert_eq!(
        counters["stale"].as_u64(),
        Some(2 * recording.len() as u64),
        "{counters}"
    );
    assert!(
        rig.left_y() == 0.0 || rig.left_y().is_nan(),
        "no gamepad moved"
    );
}

#[tokio::test]
async fn without_a_key_unsealed_datagrams_are_taken_from_loopback_only() {
    // This machine's address on its network, if it has one (the test needs a second
    // address of the same machine to send from something that is not loopback).
    let probe = UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    let outside = probe
        .connect("192.0.2.1:9")
        .and_then(|()| probe.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(outside) = outside else {
        panic!("this machine has no network address to test from");
    };
    let ns = Namespace::new("authloop");
    let port = devices_support::free_udp_port();
    let _receiver = ns.spawn(
        "pitcrew-gamepad",
        &[
            "receive",
            "--control-addr",
            &format!("udp://0.0.0.0:{port}"),
        ],
    );
    let broker = Broker::start_bare(&ns, &[]).await;
    let to_loopback = SocketAddr::from(([127, 0, 0, 1], port));
    let to_outside = SocketAddr::new(outside, port);
    let from_outside = UdpSocket::bind(SocketAddr::new(outside, 0)).expect("a UDP socket");
    let deadline = Instant::now() + PATIENCE;
    let mut seq = 0;
    let left_y = || {
        Gamepad::open(&ns.name, 0)
            .and_then(|g| g.joystick_left_y())
            .unwrap_or(f32::NAN)
    };
    while left_y() != 0.5 {
        assert!(
            Instant::now() < deadline,
            "loopback datagrams were not taken"
        );
        seq += 1;
        send_raw(
            &station_datagram((0.5, 0.0, 0), seq, 0, "local", None),
            to_loopback,
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..10 {
        seq += 1;
        let d = station_datagram((-1.0, 0.0, 0), seq, 0, "local", None);
        from_outside.send_to(&d, to_outside).expect("sent");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let counters = broker.call_service("gamepad-service", "status").await["counters"].clone();
    assert_eq!(counters["unauthenticated"], 10, "{counters}");
    assert_ne!(left_y(), -1.0);
}

#[tokio::test]
async fn a_field_controllers_datagrams_stop_the_robot_and_do_nothing_else() {
    let ns = Namespace::new("authfield");
    let team = KeyFile::new(KeyKind::Team);
    let field = KeyFile::new(KeyKind::Field);
    let control = SocketAddr::from(([127, 0, 0, 1], devices_support::free_udp_port()));
    let _receiver = spawn_receiver(&ns, control, &team, &["--field-key-file", field.path()]);
    let broker = Broker::start_bare(&ns, &[]).await;
    let driver = ControlSender::sealed(control, "driver", &team.key);
    driver.set(0.25, 0.0, 0);
    enable_robot(&broker.client, &driver, Mode::Teleop, PATIENCE).await;

    // The field controller asks to enable and moves a stick: neither is taken.
    let mut fc = Station::new(&field.key, control);
    for i in 0..20 {
        fc.send(-1.0, Some(request(100 + i)), "field");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left_y = Gamepad::open(&ns.name, 0)
        .and_then(|g| g.joystick_left_y())
        .unwrap_or(f32::NAN);
    assert_eq!(left_y, 0.25, "the field key moved a gamepad");
    let state = robot_state(&broker.client).await;
    assert_eq!(state["link"], "driver", "{state}");
    let counters = broker.call_service("gamepad-service", "status").await["counters"].clone();
    assert!(counters["field"].as_u64().unwrap_or(0) >= 15, "{counters}");

    // Its emergency stop is taken.
    let mut stop = request(200);
    stop.enable = false;
    stop.estop = true;
    fc.send(0.0, Some(stop), "field");
    fc.send(0.0, Some(stop), "field");
    wait_state(&broker.client, "estopped", PATIENCE).await;
}

#[tokio::test]
async fn a_second_key_holder_does_not_take_the_sticks_from_the_station_that_holds_the_enable() {
    let rig = Rig::start("authsecond").await;
    // The driver enables the robot and drives with the left stick at 0.25.
    let driver = rig.driver().await;
    // A teammate's laptop with the same key, under another name, pushes its stick forward.
    let second = ControlSender::sealed(rig.control, "teammate", &rig.key.key);
    second.set(-0.75, 0.0, 0);
    let before = rig.counters().await["not_enabling"].as_u64().unwrap_or(0);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rig.left_y(), 0.25, "the second station moved gamepad 0");
    }
    let status = rig.broker.call_service("gamepad-service", "status").await;
    let ignored = status["counters"]["not_enabling"].as_u64().unwrap_or(0) - before;
    assert!(
        ignored >= 10,
        "the second station's datagrams are counted: {status}"
    );
    let teammate = status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["source"] == "teammate"))
        .cloned()
        .unwrap_or_default();
    assert!(teammate["ignored"].as_u64().unwrap_or(0) >= 10, "{status}");
    let state = robot_state(&rig.broker.client).await;
    assert_eq!(
        (state["state"].as_str(), state["link"].as_str()),
        (Some("teleop"), Some("driver")),
        "{state}"
    );

    // Once nobody holds the enable, every station's gamepads are taken, as before.
    driver.disable();
    wait_state(&rig.broker.client, "disabled", PATIENCE).await;
    driver.pause();
    let deadline = Instant::now() + PATIENCE;
    while rig.left_y() != -0.75 {
        assert!(
            Instant::now() < deadline,
            "the second station's stick was not taken with the robot disabled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_datagram_sealed_with_a_challenge_older_than_400_ms_is_stale() {
    let rig = Rig::start("authfresh").await;
    let deadline = Instant::now() + PATIENCE;
    while rig.counters().await.is_null() {
        assert!(Instant::now() < deadline, "the receiver never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nobody has spoken to this receiver: the challenge its first answer gives is drawn
    // for that answer, after `drawn_after`.
    let mut station = Station::new(&rig.key.key, rig.control);
    let drawn_after = Instant::now();
    station.send(0.5, None, "late"); // answered with a new challenge
    let now = rig.counters().await;
    assert_eq!(now["stale"], 1, "{now}");
    // Sealed with that challenge 450 ms after it was drawn at the earliest: older than
    // the 400 ms window of the README's "Who may drive" (the code had 500 ms).
    tokio::time::sleep(
        (drawn_after + Duration::from_millis(450)).saturating_duration_since(Instant::now()),
    )
    .await;
    station.send(0.5, None, "late");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = rig.counters().await;
    assert_eq!(
        (after["stale"].as_u64(), after["applied"].as_u64()),
        (Some(2), Some(0)),
        "{after}"
    );
    // Its answer carried a new challenge: the station drives again at once.
    let deadline = Instant::now() + PATIENCE;
    while rig.left_y() != 0.5 {
        assert!(Instant::now() < deadline, "the station never drove again");
        station.send(0.5, None, "late");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

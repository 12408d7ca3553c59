//! `pitcrew-gamepad send` as a driver station on a real terminal (tmux): its status line
//! shows the robot's state as the robot reports it, and its keys enable, disable and stop
//! the real robot (router, broker, receiver, an emulated koala-bear).

mod devices_support;

use std::time::{Duration, Instant};

use devices_support::{free_udp_port, uid, Broker, Emu, PATIENCE};
use pitcrew_e2e::supervisor::wait_state;
use pitcrew_e2e::tmux::Tmux;
use pitcrew_e2e::{bin, Namespace};

#[tokio::test]
async fn the_driver_station_keys_drive_the_robot_state_and_the_status_line_shows_it() {
    let ns = Namespace::new("stationkeys");
    let control_port = free_udp_port();
    let _receiver = ns.spawn(
        "pitcrew-gamepad",
        &[
            "receive",
            "--control-addr",
            &format!("udp://127.0.0.1:{control_port}"),
        ],
    );
    let broker = Broker::start_bare(&ns, &[]).await;
    let koala = uid(13, 41);
    let emu = Emu::start(&ns, broker.port, &[&format!("koala-bear:{koala}")], &[]);
    broker.wait_valid(&koala, true).await;

    let mut sender = format!(
        "{} send --to 127.0.0.1:{control_port} --neutral --mode autonomous",
        bin("pitcrew-gamepad").display()
    );
    for a in ns.args() {
        sender.push(' ');
        sender.push_str(&a);
    }
    let tmux = Tmux::start(&ns.name, "station", (220, 10), &sender);
    tmux.wait_screen("robot: disabled", |s| s.contains("robot: disabled"));

    tmux.keys(&["e"]);
    wait_state(&broker.client, "autonomous", PATIENCE).await;
    tmux.wait_screen("robot: autonomous via", |s| {
        s.contains("robot: autonomous via")
    });

    tmux.keys(&["Enter"]);
    let state = wait_state(&broker.client, "disabled", PATIENCE).await;
    assert!(
        state["reason"]
            .as_str()
            .unwrap_or("")
            .contains("driver station"),
        "{state}"
    );
    tmux.wait_screen("robot: disabled", |s| s.contains("robot: disabled"));

    tmux.keys(&["t", "e"]);
    wait_state(&broker.client, "teleop", PATIENCE).await;

    tmux.keys(&["Space"]);
    wait_state(&broker.client, "estopped", PATIENCE).await;
    emu.wait_event(&koala, "disable").await;
    tmux.wait_screen("E-STOP SENT", |s| s.contains("E-STOP SENT"));

    // q ends the sender, and its terminal is restored (the session ends with it).
    tmux.keys(&["q"]);
    let deadline = Instant::now() + PATIENCE;
    while tmux.running() {
        assert!(
            Instant::now() < deadline,
            "the sender did not quit on q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(format!("/tmp/{}-estop", ns.name));
}

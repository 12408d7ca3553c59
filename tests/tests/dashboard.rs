//! `pitcrew-dashboard` in a real headless Chromium, against the real suite run by
//! `scripts/supervise --emulate` (11 emulated Smart Devices): the token, the live device
//! table, a write showing up, live logs, enabling from the page and closing the tab (the
//! robot disables itself and drives the outputs safe: the page is a driver link with no
//! keep-alive), and the E-STOP on the space bar. It also saves the README's screenshot.

mod dashboard_support;

use std::time::{Duration, Instant};

use dashboard_support::{Browser, PAGE_PATIENCE};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use pitcrew_e2e::supervisor::{
    control_datagram, is_write, robot_state, wait_state, Instance, Supervisor,
};

const TOKEN: &str = "test-token-0123456789";

/// The devices as the broker lists them: (type, uid).
async fn devices(inst: &Instance) -> Vec<(String, String)> {
    let list = inst
        .client()
        .call("device-service", "list_devices", vec![])
        .await
        .map(|v| pitcrew::codec::to_json(&v))
        .unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["valid"] == true)
        .filter_map(|d| {
            Some((
                d["type"].as_str()?.to_owned(),
                d["uid"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

// Multi-threaded: the harness's event waits block their thread while a controller task
// writes.
/// Presses the page's enable button for `mode` (`teleop`, `auto`) until the robot is in
/// `state` (a press right after the page connected may come before the broker saw its
/// link: rule 4 wants a live one).
async fn enable_from_the_page(b: &Browser, client: &pitcrew::rpc::Client, mode: &str, state: &str) {
    let deadline = Instant::now() + PAGE_PATIENCE;
    loop {
        b.click(&format!("enable-{mode}")).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        if robot_state(client).await["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never enabled the robot: {}",
            robot_state(client).await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_robot_drives_it_and_a_closed_tab_disables_it() {
    let inst = Instance::new("dash");
    let sup =
        Supervisor::start_with_env(&inst, &["--emulate"], &[("PITCREW_DASHBOARD_TOKEN", TOKEN)]);
    let deadline = Instant::now() + PAGE_PATIENCE;
    let mut listed = devices(&inst).await;
    while listed.len() < 11 {
        assert!(
            Instant::now() < deadline,
            "the emulated devices never connected: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        listed = devices(&inst).await;
    }
    let base = format!("http://{}", inst.dashboard_addr());
    let browser = Browser::start(inst.name()).await;
    let b = &browser;

    // Without the token: the login page, not the dashboard (and no feed).
    b.open(&format!("{base}/")).await;
    b.wait_until(
        "the login page",
        "return !!document.getElementById('login') && !document.getElementById('devices')",
    )
    .await;
    b.open(&format!("{base}/?token=wrong-token-0123456789"))
        .await;
    b.wait_until(
        "the login page for a wrong token",
        "return !!document.getElementById('login')",
    )
    .await;

    // With it: every device, live.
    b.open(&format!("{base}/?token={TOKEN}")).await;
    b.wait_until(
        "11 devices",
        "return document.querySelectorAll('#devices tbody tr').length === 11",
    )
    .await;
    b.wait_until(
        "the robot disabled",
        "return document.getElementById('state').textContent === 'DISABLED'",
    )
    .await;

    // A controller's write shows up in the table.
    let (_, flag) = listed
        .iter()
        .find(|(t, _)| t == "team-flag")
        .expect("a team-flag")
        .clone();
    pitcrew_e2e::run_ok(inst.cli(&["write", &flag, "led1=true"]));
    b.wait_until(
        "the written value",
        &format!("const r = document.querySelector('#devices tr[data-uid=\"{flag}\"]'); return !!r && r.textContent.includes('led1=true')"),
    )
    .await;

    // Logs from a process appear live.
    let spam = std::process::Command::new(pitcrew_e2e::bin("pitcrew-logspam"))
        .args(inst.shared_args())
        .args(["--app", "dashspam", "--count", "20", "--rate", "20"])
        .output()
        .expect("pitcrew-logspam runs");
    assert!(spam.status.success());
    b.wait_until(
        "the live log records",
        "return document.getElementById('logs').textContent.includes('dashspam: spam')",
    )
    .await;

    // A device's page: its plots.
    b.click_css(&format!("#devices tr[data-uid=\"{flag}\"] td"))
        .await;
    b.wait_until(
        "the flag's plots",
        "return document.querySelectorAll('#plots canvas').length > 0",
    )
    .await;

    // Enable from a second tab, the driver link; the header shows it.
    let client = inst.client();
    let first = b.client.window().await.expect("a window");
    let tab = b.client.new_window(true).await.expect("a new tab");
    b.client.switch_to_window(tab.handle).await.expect("switch");
    b.open(&format!("{base}/?token={TOKEN}")).await;
    b.wait_until(
        "the feed",
        "return document.getElementById('feed').textContent === 'live'",
    )
    .await;
    enable_from_the_page(b, &client, "teleop", "teleop").await;
    let state = robot_state(&client).await;
    assert!(
        state["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("dashboard-")),
        "{state}"
    );
    b.wait_until(
        "TELEOP in the header",
        "return document.getElementById('state').textContent === 'TELEOP'",
    )
    .await;
    b.wait_until(
        "this page as the driver",
        "return document.getElementById('source').textContent.startsWith('this page')",
    )
    .await;
    // A gamepad on the robot (a second sender, with no driver-station fields: it moves
    // gamepad 0 and is no link), drawn live; and the koala-bear's page with its plots.
    let pad_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pad_thread = {
        let (stop, to) = (pad_stop.clone(), inst.control_addr());
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let datagram = control_datagram((0.6, -0.4, 0b1001), seq, seq * 20_000);
                let _ = socket.send_to(&datagram, to);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    b.wait_until(
        "gamepad 0 drawn",
        "return document.querySelectorAll('#pads canvas').length === 1",
    )
    .await;
    let (_, koala) = listed
        .iter()
        .find(|(t, _)| t == "koala-bear")
        .expect("a koala-bear")
        .clone();
    b.click_css(&format!("#devices tr[data-uid=\"{koala}\"] td"))
        .await;
    b.wait_until(
        "the koala-bear's plots",
        "return document.querySelectorAll('#plots canvas').length > 3",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let png = b.client.screenshot().await.expect("a screenshot");
    let path = pitcrew_e2e::doc_picture("dashboard.png");
    std::fs::write(&path, png).expect("the screenshot is saved");

    pad_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pad_thread.join().expect("the pad sender stops");
    // A screenshot can freeze the page's renderer past `control_timeout` on a loaded
    // machine: a frozen browser disables the robot (rule 3), and the driver enables again.
    if robot_state(&client).await["state"] != "teleop" {
        enable_from_the_page(b, &client, "teleop", "teleop").await;
    }

    // A controller drives the koala-bear while the page holds the robot enabled.
    let driving = Instant::now();
    let controller = {
        let (client, koala) = (inst.client(), koala.clone());
        tokio::spawn(async move {
            loop {
                let values = pitcrew::codec::Value::Map(vec![(
                    "duty_cycle_a".into(),
                    pitcrew::codec::Value::F32(0.5),
                )]);
                let _ = client
                    .call(
                        "device-service",
                        "write",
                        vec![koala.as_str().into(), values],
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let moving = sup.stdout.wait_for(driving, PAGE_PATIENCE, |e| {
        is_write(e, &koala, "duty_cycle_a", 0.5)
    });
    if moving.is_none() {
        let probe = pitcrew::codec::Value::Map(vec![(
            "duty_cycle_a".into(),
            pitcrew::codec::Value::F32(0.5),
        )]);
        let answer = client
            .call(
                "device-service",
                "write",
                vec![koala.as_str().into(), probe],
            )
            .await;
        let writes = sup.stdout.matching(|e| e["uid"] == koala.as_str());
        panic!(
            "the controller's writes never reached the koala-bear: {answer:?}, {}, {:?}",
            robot_state(&client).await,
            writes
                .iter()
                .rev()
                .take(3)
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
        );
    }

    // Close the tab: no datagrams, so the robot disables itself and the outputs go safe.
    let closed = Instant::now();
    b.client.close_window().await.expect("the tab closes");
    let state = wait_state(&client, "disabled", PAGE_PATIENCE).await;
    let took = closed.elapsed();
    eprintln!("closed tab: robot disabled after {took:?}: {state}");
    assert!(took < Duration::from_secs(5), "disabling took {took:?}");
    let safe = sup.stdout.wait_for(closed, PAGE_PATIENCE, |e| {
        is_write(e, &koala, "duty_cycle_a", 0.0)
    });
    assert!(safe.is_some(), "no safe duty cycle after the tab closed");
    controller.abort();

    // E-STOP on the first tab, by the space bar: DEV_DISABLE everywhere, the latch shown.
    b.client
        .switch_to_window(first)
        .await
        .expect("back to the first tab");
    let pressed = Instant::now();
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: ' ' })
        .then(KeyAction::Up { value: ' ' });
    b.client.perform_actions(keys).await.expect("the space bar");
    for (ty, uid) in &listed {
        let disabled = sup.stdout.wait_for(pressed, PAGE_PATIENCE, |e| {
            e["uid"] == uid.as_str() && e["event"] == "disable"
        });
        assert!(
            disabled.is_some(),
            "{ty} {uid} got no DEV_DISABLE after the page's E-STOP"
        );
    }
    b.wait_until(
        "the emergency-stop latch",
        "return document.getElementById('estop').classList.contains('latched') && document.getElementById('estop').textContent.includes('E-STOPPED')",
    )
    .await;
}

/// The arrival instants of `upd` frames on one feed, until `until`.
async fn read_updates(url: String, until: Instant) -> Vec<Instant> {
    use futures_util::StreamExt;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the feed accepts a WebSocket");
    let mut arrivals = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            if text.as_str().contains("\"t\":\"upd\"") {
                arrivals.push(Instant::now());
            }
        }
    }
    arrivals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pages_at_once_are_served_and_a_stalled_one_delays_no_other() {
    let inst = Instance::new("dashload");
    let _sup = Supervisor::start(&inst, &["--emulate"]);
    let url = format!("ws://{}/feed", inst.dashboard_addr());
    // A page that connects and then never reads: its frames pile up in its own socket
    // and its ring position, nowhere else.
    let (stalled, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the feed accepts a WebSocket");
    let until = Instant::now() + Duration::from_secs(8);
    let readers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(read_updates(url.clone(), until)))
        .collect();
    let mut worst = Duration::ZERO;
    for (i, reader) in readers.into_iter().enumerate() {
        let arrivals = reader.await.expect("the reader ran");
        // 20 Hz for ~8 s: at least half of them on a loaded machine.
        assert!(
            arrivals.len() >= 60,
            "page {i} got {} updates in 8 s",
            arrivals.len()
        );
        let gap = arrivals
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        worst = worst.max(gap);
    }
    eprintln!(
        "20 pages and a stalled one: the longest gap between updates on any page was {worst:?}"
    );
    // The updates come every 50 ms; 5× that and a margin for a loaded test machine.
    assert!(
        worst < Duration::from_millis(1000),
        "a page waited {worst:?} for an update"
    );
    let stats = pitcrew::codec::to_json(
        &inst
            .client()
            .call("dashboard-service", "stats", vec![])
            .await
            .expect("dashboard-service.stats answers"),
    );
    assert!(stats["clients"].as_u64() >= Some(1), "{stats}");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_team_key_the_page_needs_its_token_and_drives_with_sealed_datagrams() {
    use pitcrew::key::{Key, KeyKind};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("team.key");
    pitcrew_e2e::run_ok(
        std::process::Command::new(pitcrew_e2e::bin("pitcrew"))
            .args(["key", "new"])
            .arg(&path),
    );
    let token = Key::load(&path, KeyKind::Team)
        .expect("the key loads")
        .login_token();
    let inst = Instance::new("dashkey");
    let key_file = path.display().to_string();
    let _sup =
        Supervisor::start_with_env(&inst, &["--emulate"], &[("PITCREW_KEY_FILE", &key_file)]);
    let base = format!("http://{}", inst.dashboard_addr());
    let browser = Browser::start(inst.name()).await;
    let b = &browser;
    b.open(&format!("{base}/")).await;
    b.wait_until(
        "the login page",
        "return !!document.getElementById('login')",
    )
    .await;
    b.open(&format!("{base}/?token={token}")).await;
    b.wait_until(
        "11 devices",
        "return document.querySelectorAll('#devices tbody tr').length === 11",
    )
    .await;
    let client = inst.client();
    enable_from_the_page(b, &client, "auto", "autonomous").await;
    b.click("disable").await;
    wait_state(&client, "disabled", PAGE_PATIENCE).await;
}

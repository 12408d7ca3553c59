//! `pitcrew-dashboard` in a real headless Chromium, against the real suite run by
//! `scripts/supervise --emulate` (11 emulated Smart Devices): the token, the live device
//! table, a write showing up, live logs, enabling from the page and closing the tab (the
//! robot disables itself and drives the outputs safe: the page is a driver link with no
//! keep-alive), and the E-STOP on the space bar. It also saves the README's screenshot.
//!
//! Then its limits, on the dashboard alone with raw clients: a connection that trickles
//! its headers is closed, one address holds only its share of connections, pages are
//! bounded and give their memory back when they close, and a flood of wrong tokens is
//! counted and logged in a few lines.

mod dashboard_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dashboard_support::alone::{self, Alone};
use dashboard_support::{Browser, PAGE_PATIENCE};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use pitcrew_e2e::supervisor::{
    control_datagram, is_write, robot_state, wait_state, Instance, Supervisor,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-0123456789";

/// Taken by the tests that time the robot (a page's 20 ms frames against the receiver's
/// 100 ms control timeout, the feed's gaps) and by the ones that load the machine (a flood
/// of requests, hundreds of pages): on two cores a flood would starve a page's frames past
/// the control timeout, so they take turns. Light tests run beside either.
static TIMING_OR_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _turn = TIMING_OR_LOAD.lock().await;
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
    // No simulation runs: no field view.
    assert_eq!(
        b.eval("return document.getElementById('field-panel').hidden")
            .await,
        serde_json::Value::Bool(true)
    );

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
    let _turn = TIMING_OR_LOAD.lock().await;
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
    let _turn = TIMING_OR_LOAD.lock().await;
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

// The dashboard's limits (README, "The dashboard and driver station", Limits), on the real
// binary with raw clients from loopback addresses: 127.0.0.1, .2 and .3 are three clients.

const ONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const TWO: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const THREE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Trickles a request to `to` from `from`, one byte every 2 s, and returns how long the
/// dashboard kept the connection (`None`: still open after `give_up`).
async fn trickle(from: Ipv4Addr, to: SocketAddr, give_up: Duration) -> Option<Duration> {
    let request = b"GET / HTTP/1.1\r\nhost: dashboard\r\nuser-agent: slow\r\n".repeat(20);
    let mut stream = alone::connect_from(from, to).await;
    let started = Instant::now();
    let mut next = 0;
    let mut buf = [0u8; 512];
    while started.elapsed() < give_up {
        // One byte, then whatever the dashboard says within 2 s: an end is the answer.
        let sent = stream.write_all(&request[next..=next]).await;
        next = (next + 1) % request.len();
        if sent.is_err() {
            return Some(started.elapsed());
        }
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return Some(started.elapsed());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_trickles_its_headers_is_closed_after_the_header_timeout() {
    let dash = Alone::start("dashslow", &[]).await;
    let to = dash.addr();
    // 40 connections from two addresses (within their default share of 32 each), each
    // sending a byte every 2 s: without a header timeout they stay open for ever.
    let slow: Vec<_> = (0..40)
        .map(|i| {
            let from = if i % 2 == 0 { ONE } else { TWO };
            tokio::spawn(trickle(from, to, Duration::from_secs(30)))
        })
        .collect();
    // Meanwhile a browser still gets the page.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut browser = alone::connect_from(THREE, to).await;
    let page = alone::ask(&mut browser, "GET / HTTP/1.1\r\nhost: dashboard\r\n\r\n")
        .await
        .expect("the page answers");
    assert_eq!(page.status, 200);
    let mut kept = Vec::new();
    for task in slow {
        kept.push(task.await.expect("the slow client ran"));
    }
    eprintln!("trickling connections kept for: {kept:?}");
    for held in &kept {
        let held = held.expect("a trickling connection was never closed");
        // The header timeout is 10 s; 2 s of the trickle's own wait and a loaded machine.
        assert!(
            held >= Duration::from_secs(8) && held <= Duration::from_secs(20),
            "a trickling connection was closed after {held:?}"
        );
    }
    let stats = dash.wait_stat("connections", 0).await;
    assert!(stats["header_timeouts"].as_u64() >= Some(40), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_its_share_of_connections_and_pages_are_bounded() {
    let dash = Alone::start(
        "dashshare",
        &[
            "--max-connections",
            "12",
            "--max-connections-per-address",
            "8",
            "--max-pages",
            "3",
        ],
    )
    .await;
    let to = dash.addr();
    // One address takes its 8 places; its 9th connection is told why and closed.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(alone::connect_from(ONE, to).await);
    }
    dash.wait_stat("connections", 8).await;
    let mut ninth = alone::connect_from(ONE, to).await;
    let refused = alone::read_answer(&mut ninth)
        .await
        .expect("a refused connection is answered");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(
        refused.body.contains("--max-connections-per-address"),
        "{refused:?}"
    );
    // Another address still gets in, up to the total of 12; a third is refused with 503.
    for _ in 0..4 {
        held.push(alone::connect_from(TWO, to).await);
    }
    let page = alone::ask(
        held.last_mut().expect("a connection"),
        "GET / HTTP/1.1\r\nhost: dashboard\r\n\r\n",
    )
    .await
    .expect("the page answers");
    assert_eq!(page.status, 200);
    let mut full = alone::connect_from(THREE, to).await;
    let refused = alone::read_answer(&mut full)
        .await
        .expect("a refused connection is answered");
    assert_eq!(refused.status, 503, "{refused:?}");
    drop(held);
    dash.wait_stat("connections", 0).await;

    // Pages: 3 open, the 4th is refused; a closed page gives its place back.
    let mut pages = Vec::new();
    for _ in 0..3 {
        let (stream, answer) = alone::open_feed(ONE, to, "/feed").await;
        assert_eq!(answer.status, 101, "{answer:?}");
        pages.push(stream);
    }
    let (_, answer) = alone::open_feed(TWO, to, "/feed").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("--max-pages"), "{answer:?}");
    pages.pop();
    dash.wait_stat("pages", 2).await;
    let (_again, answer) = alone::open_feed(TWO, to, "/feed").await;
    assert_eq!(answer.status, 101, "{answer:?}");
    let stats = dash.wait_stat("pages", 3).await;
    eprintln!("stats after the refusals: {stats}");
    assert_eq!(stats["refused_connections"], 2, "{stats}");
    assert_eq!(stats["refused_pages"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_closed_give_their_memory_back() {
    let _turn = TIMING_OR_LOAD.lock().await;
    const PAGES: usize = 300;
    let limit = PAGES.to_string();
    let dash = Alone::start(
        "dashmem",
        &[
            "--max-connections",
            &limit,
            "--max-connections-per-address",
            &limit,
            "--max-pages",
            &limit,
        ],
    )
    .await;
    let to = dash.addr();
    let round = |n: usize| async move {
        let mut pages = Vec::with_capacity(n);
        for _ in 0..n {
            let (stream, answer) = alone::open_feed(ONE, to, "/feed").await;
            assert_eq!(answer.status, 101, "{answer:?}");
            pages.push(stream);
        }
        pages
    };
    // A few pages first, so what the first page sets up once is not counted as kept.
    drop(round(5).await);
    dash.wait_stat("pages", 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = dash.rss_kb();
    let mut figures = Vec::new();
    for _ in 0..2 {
        let pages = round(PAGES).await;
        dash.wait_stat("pages", PAGES as u64).await;
        let open = dash.rss_kb();
        drop(pages);
        dash.wait_stat("pages", 0).await;
        // The trim comes 1 s after the pages closed.
        tokio::time::sleep(Duration::from_secs(3)).await;
        figures.push((open, dash.rss_kb()));
    }
    eprintln!("dashboard VmRSS: {before} kB, then ({PAGES} pages open, closed): {figures:?}");
    // Before the fixes 300 pages took about 70 MB (each held a copy of the device types and
    // 128 KiB buffers), and two rounds left about 70 MB behind; now a page holds about
    // 20 KB and a few MB of a fragmented heap remain.
    for (open, _) in &figures {
        assert!(
            *open < before + 30 * 1024,
            "{PAGES} pages took {} kB",
            open - before
        );
    }
    let (_, after) = figures[figures.len() - 1];
    assert!(
        after < before + 20 * 1024,
        "closed pages kept {} kB",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_tokens_is_counted_and_logged_in_a_few_lines() {
    let turn = TIMING_OR_LOAD.lock().await;
    let dash = Alone::start("dashflood", &["--dashboard-token", TOKEN]).await;
    let to = dash.addr();
    // Four clients on two addresses ask for the feed and the page with wrong tokens, as
    // fast as the dashboard answers, for 2 s.
    let started = Instant::now();
    let until = started + Duration::from_secs(2);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let from = if i % 2 == 0 { ONE } else { TWO };
            tokio::spawn(async move {
                let mut refused = 0u64;
                let mut stream = alone::connect_from(from, to).await;
                while Instant::now() < until {
                    let request = if refused % 2 == 0 {
                        alone::feed_request(&format!("/feed?token=wrong-token-{refused:012}"))
                    } else {
                        format!("GET /?token=wrong-token-{refused:012} HTTP/1.1\r\nhost: dashboard\r\n\r\n")
                    };
                    match alone::ask(&mut stream, &request).await {
                        Some(answer) => {
                            assert_eq!(answer.status, 401, "{answer:?}");
                            refused += 1;
                        }
                        None => stream = alone::connect_from(from, to).await,
                    }
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for client in clients {
        refused += client.await.expect("the client ran");
    }
    drop(turn);
    let stats = dash.stats().await;
    let warnings = dash.warnings();
    eprintln!(
        "{refused} wrong tokens in 2 s: {} WARN lines; stats {stats}",
        warnings.len()
    );
    assert!(refused >= 100, "only {refused} requests went out");
    assert_eq!(stats["refused_logins"].as_u64(), Some(refused), "{stats}");
    // One line per address in the first 10 s window.
    let logins = |warnings: &[serde_json::Value]| -> Vec<serde_json::Value> {
        warnings
            .iter()
            .filter(|w| w["what"] == "dashboard logins")
            .cloned()
            .collect()
    };
    assert_eq!(logins(&warnings).len(), 2, "{warnings:?}");
    assert!(warnings.len() <= 4, "{warnings:?}");

    // The next refusal after the window ends brings its summary: one line per address,
    // which with the two first lines accounts for every refusal.
    tokio::time::sleep_until((started + Duration::from_secs(11)).into()).await;
    let (_, answer) = alone::open_feed(ONE, to, "/feed?token=one-more-wrong-token").await;
    assert_eq!(answer.status, 401);
    let warnings = dash.warnings();
    let lines = logins(&warnings);
    eprintln!("after the window: {lines:?}");
    let summarised: u64 = lines.iter().filter_map(|w| w["count"].as_u64()).sum();
    assert_eq!(summarised + 2, refused, "{lines:?}");
    assert!(
        lines.iter().any(|w| w["message"].as_str().is_some_and(|m| m
            .contains("refused from 127.0.0.2 in the last 1")
            && m.ends_with(" s"))),
        "{lines:?}"
    );
    assert!(lines.len() <= 5, "{lines:?}");
}

#[test]
fn bad_limits_are_a_one_line_usage_error() {
    for (option, value) in [
        ("--max-pages", "0"),
        ("--max-connections", "lots"),
        ("--max-connections-per-address", "-3"),
    ] {
        let out = std::process::Command::new(pitcrew_e2e::bin("pitcrew-dashboard"))
            .arg(format!("{option}={value}"))
            .output()
            .expect("pitcrew-dashboard runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(stderr.contains(option), "{stderr}");
        let lines = stderr.lines().filter(|l| l.starts_with("error")).count();
        assert_eq!(lines, 1, "{stderr}");
    }
}

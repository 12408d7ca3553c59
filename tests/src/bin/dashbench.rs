//! `pitcrew-dashbench`: the dashboard's benchmarks, on the real suite (`scripts/supervise
//! --emulate` plus 21 more emulated devices: 32 at 20 Hz) with three pages connected to
//! the feed (WebSocket clients that read every frame, as a browser does).
//!
//! * `dashboard_cpu_percent`: the dashboard process's CPU over 10 s, in percent of one core
//!   (target ≤ 5). A team-flag's LEDs are rewritten every 50 ms on every flag, so every
//!   update carries changes.
//! * `dashboard_feed_ms`: from the broker's sending of an update (`meta.sent_us`) to its
//!   frame arriving at a page, over every update frame of the three pages (target p99
//!   ≤ 5); this bounds "multicast received → WebSocket frame sent" from above.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use pitcrew::codec::Value;
use pitcrew_e2e::supervisor::{Emulator, Instance, Supervisor};
use pitcrew_e2e::{cpu_seconds, p50_p99};

const PAGES: usize = 3;
const EXTRA_FLAGS: usize = 21;
const MEASURE: Duration = Duration::from_secs(10);

/// A team-flag UID (device id 5 in the top bits, as the catalog's types are told apart).
fn flag_uid(n: usize) -> String {
    ((5u128 << 72) | (900_000 + n as u128)).to_string()
}

fn unix_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Reads one page's feed until `until`; returns each update's delay in ms.
async fn page(url: String, until: Instant) -> anyhow::Result<Vec<f64>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .context("the feed accepts a WebSocket")?;
    let mut delays = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
            continue;
        };
        let arrived = unix_us();
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        if frame["t"] == "upd" {
            if let Some(sent) = frame["meta"]["sent_us"].as_f64() {
                delays.push((arrived - sent) / 1000.0);
            }
        }
    }
    Ok(delays)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let inst = Instance::new("dashbench");
    let sup = Supervisor::start(&inst, &["--emulate"]);
    let uids: Vec<String> = (0..EXTRA_FLAGS).map(flag_uid).collect();
    let flags: Vec<String> = uids.iter().map(|u| format!("team-flag:{u}")).collect();
    let _emu = Emulator::start(&inst, &flags);
    let client = inst.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = client
            .call("device-service", "list_devices", vec![])
            .await
            .map(|v| pitcrew::codec::to_json(&v).as_array().map_or(0, Vec::len))
            .unwrap_or(0);
        if n >= 11 + EXTRA_FLAGS {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {n} devices connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dashboard = sup
        .pid_of("dashboard")
        .context("the supervisor started the dashboard")?;
    let url = format!("ws://{}/feed", inst.dashboard_addr());
    // Settle: the pages connect and get their snapshots.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let until = Instant::now() + MEASURE + Duration::from_secs(1);
    let pages: Vec<_> = (0..PAGES)
        .map(|_| tokio::spawn(page(url.clone(), until)))
        .collect();
    let writer = {
        let client = client.clone();
        let uids = uids.clone();
        tokio::spawn(async move {
            let mut on = false;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while Instant::now() < until {
                tick.tick().await;
                on = !on;
                let writes = uids.iter().map(|uid| {
                    let values = Value::Map(vec![(Value::from("led1"), Value::from(on))]);
                    client.call(
                        "device-service",
                        "write",
                        vec![Value::from(uid.as_str()), values],
                    )
                });
                futures_util::future::join_all(writes).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, t0) = (cpu_seconds(dashboard), Instant::now());
    tokio::time::sleep(MEASURE).await;
    let cpu = (cpu_seconds(dashboard) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let mut delays = Vec::new();
    for p in pages {
        delays.extend(p.await.context("a page task")??);
    }
    writer.await.ok();
    eprintln!(
        "# dashboard: {} devices at 20 Hz, {PAGES} pages",
        11 + EXTRA_FLAGS
    );
    eprintln!("{:<24}{cpu:>7.2} %   target <= 5", "dashboard_cpu_percent");
    println!("{{\"bench\":\"dashboard_cpu_percent\",\"percent\":{cpu:.2}}}");
    let n = delays.len();
    anyhow::ensure!(n > 0, "no update reached a page");
    let max = delays.iter().copied().fold(0.0f64, f64::max);
    let (p50, p99) = p50_p99(&mut delays);
    eprintln!(
        "{:<24}p50 {p50:>7.2}   p99 {p99:>7.2}   max {max:>7.2}   n {n}   target p99 <= 5",
        "dashboard_feed_ms"
    );
    println!("{{\"bench\":\"dashboard_feed_ms\",\"p50\":{p50:.2},\"p99\":{p99:.2},\"max\":{max:.2},\"n\":{n}}}");
    Ok(())
}

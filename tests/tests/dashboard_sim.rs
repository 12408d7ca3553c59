//! The dashboard's field view in a real headless Chromium, against the simulated robot in
//! the real suite (`scripts/supervise --sim examples/sim/robot.yaml`, the team's
//! `examples/python/drive.py` under `pitcrew run`): the field drawn to scale, the robot on
//! its start mark, `pitcrew sim place` moving the drawn robot, and the pose streaming at
//! 10 Hz or more while the robot drives.

mod dashboard_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dashboard_support::{Browser, PAGE_PATIENCE};
use futures_util::StreamExt;
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::{enable_robot, ControlSender, Instance, Supervisor};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The pose the page drew, from the field canvas's data attributes (`null` before one).
const DRAWN_POSE: &str = "const c = document.getElementById('field'); \
     return document.getElementById('field-panel').hidden || c.dataset.x === undefined ? null \
     : [Number(c.dataset.x), Number(c.dataset.y), Number(c.dataset.heading)];";

/// The colour of the canvas pixel at field point (`x`, `y`) in metres, located the way
/// the page draws: a 10 px margin, the field scaled to fit 500 px, y up.
fn pixel_at(x: f64, y: f64) -> String {
    format!(
        "const c = document.getElementById('field'); \
         const [w, h] = [4.0, 3.0], m = 10, s = Math.min(500 / w, 500 / h); \
         const d = c.getContext('2d').getImageData(Math.round(m + {x} * s), Math.round(c.height - m - {y} * s), 1, 1).data; \
         return [d[0], d[1], d[2]];"
    )
}

/// Whether `rgb` is the robot's footprint (translucent green over the white floor).
fn is_footprint(rgb: &serde_json::Value) -> bool {
    let c = |i: usize| rgb[i].as_i64().unwrap_or(-1);
    c(1) > c(0) + 20 && c(1) < 250
}

/// The `simpose` frames one feed gets in `window`, once the robot moves.
async fn pose_frames(url: &str, window: Duration) -> usize {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the feed accepts a WebSocket");
    let until = Instant::now() + window;
    let mut frames = 0;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            if text.as_str().contains("\"t\":\"simpose\"") {
                frames += 1;
            }
        }
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_field_view_draws_the_simulated_robot_where_it_is() {
    let robot = example("examples/sim/robot.yaml").display().to_string();
    let run = format!(
        "pitcrew run {}",
        example("examples/python/drive.py").display()
    );
    let inst = Instance::new("dashsim");
    let _sup = Supervisor::start(&inst, &["--sim", &robot, "--no-record", "--run", &run]);
    let base = format!("http://{}", inst.dashboard_addr());
    let browser = Browser::start(inst.name()).await;
    let b = &browser;
    b.open(&format!("{base}/")).await;

    // The field of examples/sim/field.yaml, to scale, and the robot on its start mark.
    b.wait_until(
        "the field view with the robot at its start (0.5, 1.5)",
        &format!("const p = (() => {{ {DRAWN_POSE} }})(); return !!p && p[0] === 0.5 && p[1] === 1.5 && p[2] === 0;"),
    )
    .await;
    assert_eq!(b.text("#field-detail").await, "4 m × 3 m, simulated");
    let size = b
        .eval("const c = document.getElementById('field'); return [c.width, c.height];")
        .await;
    assert_eq!(size, serde_json::json!([520, 395]), "4 m × 3 m at 125 px/m");
    assert!(
        is_footprint(&b.eval(&pixel_at(0.45, 1.6)).await),
        "the footprint is drawn at the start"
    );
    assert!(!is_footprint(&b.eval(&pixel_at(1.95, 0.9)).await));

    // `pitcrew sim place 2 1 0`: the drawn robot follows.
    pitcrew_e2e::run_ok(inst.cli(&["sim", "place", "2", "1", "0"]));
    b.wait_until(
        "the robot drawn at (2, 1)",
        &format!("const p = (() => {{ {DRAWN_POSE} }})(); return !!p && p[0] === 2 && p[1] === 1 && p[2] === 0;"),
    )
    .await;
    assert_eq!(
        b.text("#field-pose").await,
        "x 2.00 m · y 1.00 m · heading 0°"
    );
    assert!(
        is_footprint(&b.eval(&pixel_at(1.95, 0.9)).await),
        "the footprint is drawn where the robot was placed"
    );
    assert!(!is_footprint(&b.eval(&pixel_at(0.45, 1.6)).await));

    // Driven (teleop, the sticks opposite: it turns on the spot), the pose streams at 10 Hz
    // or more and the page draws the turn.
    let station = ControlSender::start(inst.control_addr());
    enable_robot(&inst.client(), &station, Mode::Teleop, PAGE_PATIENCE).await;
    station.set(0.6, -0.6, 0);
    b.wait_until(
        "the drawn robot turning",
        &format!("const p = (() => {{ {DRAWN_POSE} }})(); return !!p && Math.abs(p[2]) > 0.2;"),
    )
    .await;
    let window = Duration::from_secs(3);
    let frames = pose_frames(&format!("ws://{}/feed", inst.dashboard_addr()), window).await;
    eprintln!("a turning robot: {frames} poses in {window:?}");
    assert!(
        frames as f64 >= 10.0 * window.as_secs_f64(),
        "{frames} poses in {window:?}"
    );
    let trail = b
        .eval("return Number(document.getElementById('field').dataset.trail);")
        .await;
    assert!(trail.as_u64() > Some(20), "trail of {trail} poses");
    station.set(0.0, 0.0, 0);
}

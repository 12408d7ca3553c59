//! The simulated robot's pose in a recording: while a simulation runs (`pitcrew emulate
//! --sim`, `scripts/supervise --sim`), the recorder asks its `sim-service` for `state` every
//! [`PERIOD`] and writes the pose on [`channels::SIM_POSE`].
//!
//! The simulation has no tap: its state lives in the emulator's world and changes every
//! millisecond, so a recording samples it, over RPC, like `pitcrew sim state` does. Where no
//! simulation runs the call fails (at once at the router, or after [`CALL_TIMEOUT`] without
//! one) and is tried again every [`RETRY`], recording nothing and logging nothing (a
//! supervisor starts the recorder before the simulation, and restarts a simulation that
//! crashed). One line is logged when a simulation first answers.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use pitcrew::codec::{self, Value};
use pitcrew::robot::monotonic_ns;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::channels;
use super::queue::{Counters, Incoming};
use crate::emulate::sim::SERVICE;

/// How often the pose is sampled: 25 Hz, as often as the devices stream (their interval is
/// at least 40 ms), so the pose lines up with the encoder counts beside it; one call at a
/// time, about 2 KB/s of JSON before compression.
pub const PERIOD: Duration = Duration::from_millis(40);
/// How long to wait before asking again where no simulation answers.
pub const RETRY: Duration = Duration::from_secs(1);
/// How long one `state` call may take: a few periods, so a starved emulator costs a few
/// samples and not the poller's schedule.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// Polls the simulation through the router frontend at `router` until `stop` is
/// cancelled, handing each pose to the writer over `tx` (a full queue drops it and counts
/// it, as the other sources do).
///
/// # Cancel safety
/// Returns as soon as `stop` is cancelled, even mid-call (that sample is not taken).
pub(super) async fn poll(
    router: String,
    tx: SyncSender<Incoming>,
    stop: CancellationToken,
    counters: Arc<Counters>,
) {
    let Some(channel) = channels::ALL
        .iter()
        .position(|c| c.topic == channels::SIM_POSE)
    else {
        return;
    };
    let Ok(client) = pitcrew::rpc::Client::connect(&router, "record", CALL_TIMEOUT) else {
        return;
    };
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut announced = false;
    let mut failed = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let asked = monotonic_ns();
        let answer = tokio::select! {
            () = stop.cancelled() => return,
            answer = client.call(SERVICE, "state", vec![]) => answer,
        };
        let Ok(state) = answer else {
            // One miss in a run of answers (a starved emulator) is tried again at the
            // next tick; a second in a row means no simulation, for now.
            failed += 1;
            if failed < 2 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
            tick.reset();
            continue;
        };
        failed = 0;
        // The state was read somewhere between the question and the answer.
        let log_time = asked + (monotonic_ns().saturating_sub(asked)) / 2;
        let Some(data) = message(&state, log_time) else {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if !announced {
            announced = true;
            tracing::info!(
                "a simulation runs: recording its pose on {}",
                channels::SIM_POSE
            );
        }
        let incoming = Incoming {
            channel,
            log_time,
            data,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(incoming) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The [`channels::SIM_POSE`] message for a `sim-service` `state` answer stamped
/// `log_time`: a Foxglove `PoseInFrame` (a rotation of `heading` about the vertical axis
/// as its quaternion) with the plain `time`, `x`, `y` and `heading` beside it. `None` when
/// the answer has no pose.
pub fn message(state: &Value, log_time: u64) -> Option<Vec<u8>> {
    let state = codec::to_json(state);
    let number = |k: &str| state.get(k).and_then(serde_json::Value::as_f64);
    let (x, y, heading) = (number("x")?, number("y")?, number("heading")?);
    let time = number("time");
    let (sin, cos) = (heading / 2.0).sin_cos();
    let message = json!({
        "timestamp": {"sec": log_time / 1_000_000_000, "nsec": log_time % 1_000_000_000},
        "frame_id": "field",
        "pose": {
            "position": {"x": x, "y": y, "z": 0.0},
            "orientation": {"x": 0.0, "y": 0.0, "z": sin, "w": cos},
        },
        "time": time,
        "x": x,
        "y": y,
        "heading": heading,
    });
    serde_json::to_vec(&message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_becomes_a_pose_in_the_field_frame() {
        let state = Value::Map(vec![
            ("time".into(), 2.5.into()),
            ("x".into(), 1.0.into()),
            ("y".into(), 2.0.into()),
            ("heading".into(), std::f64::consts::FRAC_PI_2.into()),
            ("battery_v".into(), 12.5.into()),
        ]);
        let bytes = message(&state, 3_000_000_123).expect("a pose");
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["timestamp"], json!({"sec": 3, "nsec": 123}));
        assert_eq!(m["frame_id"], "field");
        assert_eq!(m["pose"]["position"], json!({"x": 1.0, "y": 2.0, "z": 0.0}));
        let q = &m["pose"]["orientation"];
        let half = std::f64::consts::FRAC_1_SQRT_2;
        assert!((q["z"].as_f64().unwrap() - half).abs() < 1e-12, "{q}");
        assert!((q["w"].as_f64().unwrap() - half).abs() < 1e-12, "{q}");
        assert_eq!((m["x"].clone(), m["y"].clone()), (json!(1.0), json!(2.0)));
        assert_eq!(m["time"], json!(2.5));
        // The schema names every field the message has.
        let schema = channels::schema(&channels::ALL[8]);
        for key in m.as_object().unwrap().keys() {
            assert!(schema["properties"].get(key).is_some(), "{key}");
        }
        assert!(
            message(&Value::Map(vec![]), 0).is_none(),
            "no pose, no message"
        );
    }
}

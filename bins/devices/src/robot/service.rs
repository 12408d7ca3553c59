//! `robot-service`: the robot state over RPC. `state` answers the wire form of the state;
//! `enable(mode)`, `disable(reason?)`, `start_match(auto_s, gap_s, teleop_s)` and
//! `stop_match` answer the new state or a `handler_failed` error whose message says why the
//! rules refused (nothing changed then); `estop` is urgent (it never waits behind other
//! calls) and answers the UIDs whose DEV_DISABLE is on the line.

use std::sync::Arc;
use std::time::Duration;

use pitcrew::codec::{self, Value};
use pitcrew::robot::segment::REASON_LEN;
use pitcrew::robot::Mode;
use pitcrew::rpc::{ErrorCode, RpcError, Service};

use super::machine::Refusal;
use super::Gate;

fn refused(why: Refusal) -> RpcError {
    RpcError::new(ErrorCode::HandlerFailed, why.to_string())
}

fn state(gate: &Gate) -> Value {
    codec::from_json(&gate.status_json())
}

/// A phase length in seconds from RPC: finite, 0 to 3600.
fn seconds(name: &str, s: f64) -> Result<Duration, RpcError> {
    if s.is_finite() && (0.0..=3600.0).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("{name} must be a number of seconds from 0 to 3600, got {s}"),
        ))
    }
}

/// Builds `robot-service` over `gate`.
pub fn build(gate: &Arc<Gate>) -> Service {
    let mut s = Service::new("robot").urgent("estop");
    let g = Arc::clone(gate);
    s.register("state", &[], move |()| {
        let g = Arc::clone(&g);
        async move { Ok::<_, RpcError>(state(&g)) }
    });
    let g = Arc::clone(gate);
    s.register("enable", &["mode"], move |(mode,): (String,)| {
        let g = Arc::clone(&g);
        async move {
            let mode: Mode = mode.parse().map_err(|e: pitcrew::robot::UnknownMode| {
                RpcError::new(ErrorCode::InvalidParams, e.to_string())
            })?;
            g.enable(mode).map_err(refused)?;
            Ok::<_, RpcError>(state(&g))
        }
    });
    let g = Arc::clone(gate);
    s.register(
        "disable",
        &["reason"],
        move |(reason,): (Option<String>,)| {
            let g = Arc::clone(&g);
            async move {
                // A caller's reason is shown in the state, which keeps REASON_LEN bytes of it.
                let reason: String = reason
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "disabled by RPC".into())
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(REASON_LEN)
                    .collect();
                g.disable(&reason).map_err(refused)?;
                Ok::<_, RpcError>(state(&g))
            }
        },
    );
    let g = Arc::clone(gate);
    s.register(
        "start_match",
        &["auto_s", "gap_s", "teleop_s"],
        move |(auto, gap, teleop): (f64, f64, f64)| {
            let g = Arc::clone(&g);
            async move {
                let auto = seconds("auto_s", auto)?;
                let gap = seconds("gap_s", gap)?;
                let teleop = seconds("teleop_s", teleop)?;
                g.start_match(auto, gap, teleop).map_err(refused)?;
                Ok::<_, RpcError>(state(&g))
            }
        },
    );
    let g = Arc::clone(gate);
    s.register("stop_match", &[], move |()| {
        let g = Arc::clone(&g);
        async move {
            g.stop_match().map_err(refused)?;
            Ok::<_, RpcError>(state(&g))
        }
    });
    let g = Arc::clone(gate);
    s.register("estop", &[], move |()| {
        let g = Arc::clone(&g);
        async move {
            let done = g.estop("robot-service.estop (RPC)").await;
            g.mark_answered();
            Ok::<_, RpcError>(Value::from(
                done.into_iter().map(Value::from).collect::<Vec<_>>(),
            ))
        }
    });
    s
}

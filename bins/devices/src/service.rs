//! `device-service`: the broker's RPC methods. Reads, writes and subscriptions go through
//! the device's shared-memory buffer (so an RPC write takes exactly the path of a
//! controller's write); disable, heartbeat and estop are commands to the sessions.
//!
//! UIDs are decimal strings; values are converted by the catalog type of each param.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use pitcrew::codec::{self, Value};
use pitcrew::rpc::{ErrorCode, RpcError, Service};
use pitcrew_buffer::{Owner, Subscription};
use pitcrew_catalog::Uid;
use serde_json::json;
use tokio::sync::oneshot;

use crate::registry::{Command, DeviceInfo, Registry};

/// How long `heartbeat` waits for the HB_RES.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

fn invalid(msg: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, msg)
}

fn failed(msg: impl std::fmt::Display) -> RpcError {
    RpcError::new(ErrorCode::HandlerFailed, msg.to_string())
}

/// Parses a decimal UID string.
fn parse_uid(s: &str) -> Result<Uid, RpcError> {
    s.parse::<Uid>()
        .map_err(|e| invalid(format!("bad UID {s:?}: {e}")))
}

fn owner_of(registry: &Registry, uid: &str) -> Result<(Uid, Arc<Owner>), RpcError> {
    let uid = parse_uid(uid)?;
    let owner = registry
        .owner(uid)
        .ok_or_else(|| failed(format!("no device {uid} has connected")))?;
    Ok((uid, owner))
}

/// The JSON form of one device for `list_devices`.
pub fn device_json(d: &DeviceInfo) -> serde_json::Value {
    let since = d
        .connected_since
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|t| t.as_secs_f64());
    json!({
        "uid": d.uid.to_string(),
        "type": d.type_name,
        "port": d.port,
        "connected_since": since,
        "valid": d.valid,
        "counters": {
            "to_device": d.to_device,
            "from_device": d.from_device,
            "decode_errors": d.counters.decode_errors.load(Ordering::Relaxed),
            "invalid_types": d.counters.invalid_types.load(Ordering::Relaxed),
            "device_errors": d.counters.device_errors.load(Ordering::Relaxed),
            "timeouts": d.counters.timeouts.load(Ordering::Relaxed),
            "connections": d.counters.connections.load(Ordering::Relaxed),
        },
    })
}

/// Current readable values of `params` (all readable params when `None`).
fn read_values(owner: &Owner, params: Option<Vec<String>>) -> Result<Value, RpcError> {
    let ty = owner.device_type();
    let names: Vec<String> = match params {
        Some(p) if !p.is_empty() => p,
        _ => ty
            .params()
            .iter()
            .filter(|p| p.readable())
            .map(|p| p.name().to_owned())
            .collect(),
    };
    let mut out = serde_json::Map::new();
    for name in names {
        let v = owner.get_value(&name).map_err(failed)?;
        out.insert(name, v.to_json());
    }
    Ok(codec::from_json(&serde_json::Value::Object(out)))
}

/// Writes `{param: value}` into the write block as one version (one DEV_WRITE).
fn write_values(owner: &Owner, values: BTreeMap<String, Value>) -> Result<Value, RpcError> {
    let ty = owner.device_type();
    let mut typed = Vec::with_capacity(values.len());
    for (name, v) in &values {
        let param = ty
            .param(name)
            .ok_or_else(|| invalid(format!("{} has no param {name:?}", ty.name())))?;
        let scalar = param
            .scalar()
            .ok_or_else(|| invalid(format!("param {name:?} is an array")))?;
        let value = pitcrew_catalog::Value::from_json(&codec::to_json(v), scalar)
            .map_err(|e| invalid(format!("param {name:?}: {e}")))?;
        typed.push((name.as_str(), value));
    }
    let clamps = owner.write_values(&typed).map_err(failed)?;
    let clamped: Vec<String> = typed
        .iter()
        .zip(clamps)
        .filter(|(_, c)| c.is_some())
        .map(|((n, _), _)| (*n).to_owned())
        .collect();
    Ok(codec::from_json(&json!({ "clamped": clamped })))
}

/// Sends `command` to each UID's session (all connected ones when `uids` is `None`).
fn send_all(
    registry: &Registry,
    uids: Option<Vec<String>>,
    make: impl Fn() -> Command,
) -> Result<Vec<String>, RpcError> {
    let uids = match uids {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|s| parse_uid(s))
            .collect::<Result<Vec<_>, _>>()?,
        _ => registry.connected(),
    };
    let mut done = Vec::new();
    for uid in uids {
        let tx = registry
            .commands(uid)
            .ok_or_else(|| failed(format!("device {uid} is not connected")))?;
        tx.try_send(make())
            .map_err(|e| failed(format!("device {uid}: {e}")))?;
        done.push(uid.to_string());
    }
    Ok(done)
}

/// Emergency stop: DEV_DISABLE to every device and the catalog's safe values written.
pub fn estop(registry: &Registry) -> Vec<String> {
    let uids = registry.connected();
    for &uid in &uids {
        if let Some(tx) = registry.commands(uid) {
            let _ = tx.try_send(Command::Disable);
        }
    }
    for info in registry.list() {
        let Some(owner) = registry.owner(info.uid) else {
            continue;
        };
        let safe: Vec<(&str, pitcrew_catalog::Value)> = owner
            .device_type()
            .params()
            .iter()
            .filter(|p| p.writeable())
            .filter_map(|p| p.safe().map(|v| (p.name(), v)))
            .collect();
        if !safe.is_empty() && owner.is_valid() {
            if let Err(e) = owner.write_values(&safe) {
                tracing::warn!(uid = %info.uid, error = %e, "estop: cannot write safe values");
            }
        }
    }
    tracing::warn!(devices = uids.len(), "emergency stop");
    uids.iter().map(ToString::to_string).collect()
}

/// Builds `device-service` over `registry`.
pub fn build(registry: &Arc<Registry>) -> Service {
    let mut s = Service::new("device");
    let r = Arc::clone(registry);
    s.register("list_devices", &[], move |()| {
        let r = Arc::clone(&r);
        async move {
            let list: Vec<serde_json::Value> = r.list().iter().map(device_json).collect();
            Ok::<_, RpcError>(codec::from_json(&serde_json::Value::Array(list)))
        }
    });
    let r = Arc::clone(registry);
    s.register(
        "read",
        &["uid", "params"],
        move |(uid, params): (String, Option<Vec<String>>)| {
            let r = Arc::clone(&r);
            async move { read_values(&owner_of(&r, &uid)?.1, params) }
        },
    );
    let r = Arc::clone(registry);
    s.register(
        "write",
        &["uid", "values"],
        move |(uid, values): (String, BTreeMap<String, Value>)| {
            let r = Arc::clone(&r);
            async move { write_values(&owner_of(&r, &uid)?.1, values) }
        },
    );
    let r = Arc::clone(registry);
    s.register(
        "subscribe",
        &["uid", "params", "interval"],
        move |(uid, params, interval): (String, Option<Vec<String>>, Option<f64>)| {
            let r = Arc::clone(&r);
            async move { subscribe(&owner_of(&r, &uid)?.1, params, interval) }
        },
    );
    let r = Arc::clone(registry);
    s.register(
        "unsubscribe",
        &["uids"],
        move |(uids,): (Option<Vec<String>>,)| {
            let r = Arc::clone(&r);
            async move {
                let uids = match uids {
                    Some(l) if !l.is_empty() => l,
                    _ => r.connected().iter().map(ToString::to_string).collect(),
                };
                for uid in &uids {
                    let (_, owner) = owner_of(&r, uid)?;
                    let none = Subscription {
                        params: 0,
                        interval: Duration::ZERO,
                    };
                    owner.set_subscription(none).map_err(failed)?;
                }
                Ok::<_, RpcError>(Value::from(
                    uids.into_iter().map(Value::from).collect::<Vec<_>>(),
                ))
            }
        },
    );
    let r = Arc::clone(registry);
    s.register(
        "disable",
        &["uids"],
        move |(uids,): (Option<Vec<String>>,)| {
            let r = Arc::clone(&r);
            async move {
                let done = send_all(&r, uids, || Command::Disable)?;
                Ok::<_, RpcError>(Value::from(
                    done.into_iter().map(Value::from).collect::<Vec<_>>(),
                ))
            }
        },
    );
    let r = Arc::clone(registry);
    s.register("heartbeat", &["uid"], move |(uid,): (String,)| {
        let r = Arc::clone(&r);
        async move { heartbeat(&r, &uid).await }
    });
    let r = Arc::clone(registry);
    s.register("estop", &[], move |()| {
        let r = Arc::clone(&r);
        async move {
            let done = estop(&r);
            Ok::<_, RpcError>(Value::from(
                done.into_iter().map(Value::from).collect::<Vec<_>>(),
            ))
        }
    });
    s
}

fn subscribe(
    owner: &Owner,
    params: Option<Vec<String>>,
    interval: Option<f64>,
) -> Result<Value, RpcError> {
    let ty = owner.device_type();
    let bits = match params {
        Some(names) => {
            let mut bits = 0u32;
            for name in &names {
                let p = ty
                    .param(name)
                    .ok_or_else(|| invalid(format!("{} has no param {name:?}", ty.name())))?;
                bits |= 1 << p.id();
            }
            bits
        }
        None => (ty.default_subscription() & 0xFFFF) as u32,
    };
    let interval = match interval {
        Some(s) if s.is_finite() && (0.0..=65.0).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => return Err(invalid(format!("interval {s} s is not within 0..=65 s"))),
        None => ty.sub_interval(),
    };
    owner
        .set_subscription(Subscription {
            params: bits,
            interval,
        })
        .map_err(failed)?;
    Ok(Value::from(true))
}

async fn heartbeat(registry: &Registry, uid: &str) -> Result<Value, RpcError> {
    let uid = parse_uid(uid)?;
    let tx = registry
        .commands(uid)
        .ok_or_else(|| failed(format!("device {uid} is not connected")))?;
    let (reply, rx) = oneshot::channel();
    tx.try_send(Command::Heartbeat(reply))
        .map_err(|e| failed(format!("device {uid}: {e}")))?;
    match tokio::time::timeout(HEARTBEAT_TIMEOUT, rx).await {
        Ok(Ok(rtt)) => Ok(Value::F64(rtt.as_secs_f64())),
        Ok(Err(_)) => Err(failed(format!("device {uid} disconnected"))),
        Err(_) => Err(RpcError::new(
            ErrorCode::Timeout,
            format!("device {uid} did not answer the heartbeat"),
        )),
    }
}

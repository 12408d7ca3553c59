//! `device-service`: the broker's RPC methods. Reads, writes and subscriptions go through
//! the device's shared-memory buffer (so an RPC write takes exactly the path of a
//! controller's write, and an RPC read asks the device exactly like a controller's read
//! request); disable, heartbeat and estop are commands to the sessions; `status` reports
//! on the broker itself.
//!
//! UIDs are decimal strings; values are converted by the catalog type of each param.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use pitcrew::codec::{self, Value};
use pitcrew::rpc::{ErrorCode, RpcError, Service};
use pitcrew_buffer::{Owner, Subscription};
use pitcrew_catalog::Uid;
use serde_json::json;
use tokio::sync::oneshot;

use crate::estop::Latch;
use crate::fresh_read::{self, FreshReadError};
use crate::registry::{Command, Registry};
use crate::serial::SerialStats;
use crate::status::{self, StatusSources};

/// What the service works with: the broker's shared state and its settings.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The devices.
    pub registry: Arc<Registry>,
    /// The emergency-stop latch.
    pub latch: Arc<Latch>,
    /// Serial discovery counters.
    pub serial: Arc<SerialStats>,
    /// Decode errors on every connection.
    pub decode_errors: Arc<AtomicU64>,
    /// Whether the broker exits after an emergency stop (reported by `status`).
    pub exit_on_estop: bool,
    /// How long `read` waits for the device's answer.
    pub read_timeout: Duration,
    /// The robot state (an `estop` here is the robot's emergency stop).
    pub gate: Arc<crate::robot::Gate>,
    /// The recording tap (its counters are in `status`).
    pub tap: crate::tap::BrokerTap,
}

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

/// The params a `read` asks for: the given ones, each checked to exist and be readable,
/// or every readable param when none is given.
fn readable_names(owner: &Owner, params: Option<Vec<String>>) -> Result<Vec<String>, RpcError> {
    let ty = owner.device_type();
    match params {
        Some(names) if !names.is_empty() => {
            for name in &names {
                match ty.param(name) {
                    Some(p) if p.readable() => {}
                    Some(_) => {
                        return Err(invalid(format!(
                            "param {name:?} of {} is not readable",
                            ty.name()
                        )))
                    }
                    None => return Err(invalid(format!("{} has no param {name:?}", ty.name()))),
                }
            }
            Ok(names)
        }
        _ => Ok(ty
            .params()
            .iter()
            .filter(|p| p.readable())
            .map(|p| p.name().to_owned())
            .collect()),
    }
}

/// The buffer's current values of `names` as a `{param: value}` map.
fn read_values(owner: &Owner, names: &[String]) -> Result<Value, RpcError> {
    let mut out = serde_json::Map::new();
    for name in names {
        let v = owner.get_value(name).map_err(failed)?;
        out.insert(name.clone(), v.to_json());
    }
    Ok(codec::from_json(&serde_json::Value::Object(out)))
}

/// `read(uid, params?)`: asks the device (DEV_READ) and answers with the values it sent.
async fn read(
    ctx: &ServiceContext,
    uid: &str,
    params: Option<Vec<String>>,
) -> Result<Value, RpcError> {
    let (uid, owner) = owner_of(&ctx.registry, uid)?;
    let names = readable_names(&owner, params)?;
    fresh_read::read_fresh(&ctx.registry, uid, &owner, &names, ctx.read_timeout)
        .await
        .map_err(|e| {
            let code = match e {
                FreshReadError::NoAnswer { .. } => ErrorCode::Timeout,
                _ => ErrorCode::HandlerFailed,
            };
            RpcError::new(code, e.to_string())
                .with("uid", uid.to_string())
                .with("params", names.join(","))
        })?;
    read_values(&owner, &names)
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

/// Builds `device-service` over the broker's state.
pub fn build(ctx: &ServiceContext) -> Service {
    // An emergency stop must not wait behind slow reads nor get `busy`.
    let mut s = Service::new("device").urgent("estop");
    register_reports(&mut s, ctx);
    register_buffer_methods(&mut s, ctx);
    register_commands(&mut s, ctx);
    s
}

/// `list_devices` and `status`: what the broker knows, answered from its own state without
/// asking any device.
fn register_reports(s: &mut Service, ctx: &ServiceContext) {
    let c = ctx.clone();
    s.register("list_devices", &[], move |()| {
        let c = c.clone();
        async move { Ok::<_, RpcError>(list_devices(&c)) }
    });
    let c = ctx.clone();
    s.register("status", &[], move |()| {
        let c = c.clone();
        async move { Ok::<_, RpcError>(status(&c)) }
    });
}

/// `read`, `write`, `subscribe` and `unsubscribe`: each goes through the device's buffer,
/// the path a controller takes, so the session and its waker treat an RPC like any
/// consumer.
fn register_buffer_methods(s: &mut Service, ctx: &ServiceContext) {
    let c = ctx.clone();
    s.register(
        "read",
        &["uid", "params"],
        move |(uid, params): (String, Option<Vec<String>>)| {
            let c = c.clone();
            async move { read(&c, &uid, params).await }
        },
    );
    let registry = &ctx.registry;
    let latch = Arc::clone(&ctx.latch);
    let r = Arc::clone(registry);
    s.register(
        "write",
        &["uid", "values"],
        move |(uid, values): (String, BTreeMap<String, Value>)| {
            let (r, latch) = (Arc::clone(&r), Arc::clone(&latch));
            async move { write(&r, &latch, &uid, values) }
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
            async move { unsubscribe(&r, uids) }
        },
    );
}

/// `disable`, `heartbeat` and `estop`: commands to the sessions, which act on the line
/// themselves.
fn register_commands(s: &mut Service, ctx: &ServiceContext) {
    let r = Arc::clone(&ctx.registry);
    s.register(
        "disable",
        &["uids"],
        move |(uids,): (Option<Vec<String>>,)| {
            let r = Arc::clone(&r);
            async move {
                let done = send_all(&r, uids, || Command::Disable)?;
                Ok::<_, RpcError>(uid_list(done))
            }
        },
    );
    let r = Arc::clone(&ctx.registry);
    s.register("heartbeat", &["uid"], move |(uid,): (String,)| {
        let r = Arc::clone(&r);
        async move { heartbeat(&r, &uid).await }
    });
    let c = ctx.clone();
    s.register("estop", &[], move |()| {
        let c = c.clone();
        async move { Ok::<_, RpcError>(estop(&c).await) }
    });
}

/// UIDs as a list of strings, as the methods that act on several devices answer.
fn uid_list(uids: Vec<String>) -> Value {
    Value::from(uids.into_iter().map(Value::from).collect::<Vec<_>>())
}

/// `list_devices()`: every device the broker has met, connected or not.
fn list_devices(c: &ServiceContext) -> Value {
    let list: Vec<serde_json::Value> = c
        .registry
        .list()
        .iter()
        .map(|d| status::device_json(d, &c.latch))
        .collect();
    codec::from_json(&serde_json::Value::Array(list))
}

/// `status()`: the broker's counters, the robot state and the recording tap's counters.
fn status(c: &ServiceContext) -> Value {
    let mut json = status::status_json(StatusSources {
        registry: &c.registry,
        latch: &c.latch,
        serial: &c.serial,
        decode_errors: &c.decode_errors,
        exit_on_estop: c.exit_on_estop,
    });
    json["robot"] = c.gate.counters_json();
    json["robot"]["state"] = c.gate.status_json();
    json["tap"] = c.tap.stats().to_json();
    codec::from_json(&json)
}

/// `write(uid, values)`: the values go into the buffer as one version (one DEV_WRITE).
fn write(
    registry: &Registry,
    latch: &Latch,
    uid: &str,
    values: BTreeMap<String, Value>,
) -> Result<Value, RpcError> {
    let (uid, owner) = owner_of(registry, uid)?;
    // Refused rather than silently discarded: the caller is told why.
    if latch.is_engaged() {
        return Err(failed(format!(
            "emergency stop latched: the write to {uid} is not forwarded; \
             writes are discarded until the broker restarts"
        )));
    }
    write_values(&owner, values)
}

/// `unsubscribe(uids?)`: no params, no interval, for each UID given (every connected one
/// when none is); answers the UIDs.
fn unsubscribe(registry: &Registry, uids: Option<Vec<String>>) -> Result<Value, RpcError> {
    let uids = match uids {
        Some(l) if !l.is_empty() => l,
        _ => registry
            .connected()
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    for uid in &uids {
        let (_, owner) = owner_of(registry, uid)?;
        let none = Subscription {
            params: 0,
            interval: Duration::ZERO,
        };
        owner.set_subscription(none).map_err(failed)?;
    }
    Ok(uid_list(uids))
}

/// `estop()`: the robot's emergency stop; answers the UIDs whose DEV_DISABLE is on the
/// line.
async fn estop(c: &ServiceContext) -> Value {
    let done = c.gate.estop("device-service.estop (RPC)").await;
    // The reply is sent as this future returns; with --exit-on-estop the broker
    // starts its shutdown on this mark and stops the service last, so the caller
    // gets the answer before the process exits.
    c.latch.mark_answered();
    uid_list(done)
}

/// `subscribe(uid, params?, interval?)`: the subscription the session sends the device
/// (SUB_REQ); the type's defaults for what is not given.
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

/// `heartbeat(uid)`: an HB_REQ sent by the session; answers the round trip in seconds.
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

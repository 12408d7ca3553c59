//! What the dashboard reads, each source a task that offers [`Event`]s to the feed: the
//! device-update multicast (device values and the robot state), the log forwarder's PUB
//! frontend (live records; its history once by RPC), RPC polls of the services (device
//! list, health), and the gamepad buffers in shared memory. None of them writes anything
//! or sits on the control path: a multicast listener and a SUB socket add no load to the
//! senders, and the polls are a handful of calls a second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew::codec::{to_json, Value};
use pitcrew::config::Config;
use pitcrew::endpoint::{PubSubOptions, Subscriber};
use pitcrew::gamepad::{Gamepad, GamepadState};
use pitcrew::logging::record::LogRecord;
use pitcrew::rpc::Client;
use pitcrew::updates::Datagram;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::feed::{Event, Hub};

/// Period of the device-list poll (connected, errors): the values come at the update
/// rate on the multicast stream; this is only the table's slow columns.
pub const DEVICE_POLL: Duration = Duration::from_secs(1);
/// Period of the health poll.
pub const HEALTH_POLL: Duration = Duration::from_secs(2);
/// Deadline of one poll call: a service that does not answer shows as down, not as a
/// stuck panel.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Period of the gamepad read (the update rate of the page).
pub const GAMEPAD_POLL: Duration = Duration::from_millis(50);
/// Gamepads shown (the receiver's first indices; more are rare).
pub const GAMEPADS_SHOWN: u32 = 4;
/// Log records fetched from the forwarder's history at start.
pub const HISTORY_FETCH: u64 = 200;

/// Receives update and robot-state datagrams until `shutdown`.
///
/// # Errors
/// When the socket fails.
pub async fn updates(
    hub: Hub,
    socket: UdpSocket,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut malformed = 0u64;
    loop {
        let n = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = socket.recv(&mut buf) => r.context("cannot receive device updates")?,
        };
        let bytes = buf.get(..n).unwrap_or_default();
        match pitcrew::updates::decode(bytes) {
            Some(Datagram::RobotState(state)) => hub.offer(Event::Robot(state)),
            Some(Datagram::Devices { devices, meta }) => hub.offer(Event::Update {
                devices,
                meta: meta.into(),
            }),
            None => {
                malformed += 1;
                if malformed == 1 {
                    tracing::warn!("ignoring a malformed datagram on the update group");
                }
            }
        }
    }
}

/// Follows the log forwarder: fetches its recent history once, then the live records.
///
/// # Errors
/// When the subscription cannot be set up or fails.
pub async fn logs(hub: Hub, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let address = config.log_frontend_connect();
    let mut sub = Subscriber::connect(&address, &[b""], PubSubOptions::default())
        .with_context(|| format!("cannot subscribe to the log forwarder at {address}"))?;
    let history = {
        let hub = hub.clone();
        let shutdown = shutdown.clone();
        async move {
            // Until the forwarder answers (it may start after us, or restart).
            while !shutdown.is_cancelled() {
                if let Ok(records) = fetch_history(&config).await {
                    hub.offer(Event::History(records));
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tokio::spawn(history);
    loop {
        let frames = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            f = sub.recv() => f.context("the log subscription failed")?,
        };
        if let Ok(record) = LogRecord::decode(&frames) {
            hub.offer(Event::Log(to_json(&record.record)));
        }
    }
}

async fn fetch_history(config: &Config) -> anyhow::Result<Vec<serde_json::Value>> {
    let client = Client::connect(&config.frontend_connect(), "dashboard", POLL_TIMEOUT)?;
    let result = client
        .call(
            "logfwd-service",
            "recent_logs",
            vec![HISTORY_FETCH.into(), "trace".into(), Value::Nil],
        )
        .await?;
    match to_json(&result) {
        serde_json::Value::Array(records) => Ok(records),
        other => anyhow::bail!("recent_logs returned {other}"),
    }
}

/// Polls the device list and the services' health until `shutdown`.
pub async fn polls(hub: Hub, client: Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut devices = tokio::time::interval(DEVICE_POLL);
    let mut health = tokio::time::interval(HEALTH_POLL);
    for t in [&mut devices, &mut health] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut uptimes = Uptimes::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = devices.tick() => {
                if let Some(list) = call(&client, "device-service", "list_devices").await {
                    hub.offer(Event::DeviceList(list));
                }
            }
            _ = health.tick() => {
                let (peers, router, logfwd, gamepad, devices) = tokio::join!(
                    call(&client, "router", "list_peers"),
                    call(&client, "router", "stats"),
                    call(&client, "logfwd-service", "stats"),
                    call(&client, "gamepad-service", "status"),
                    call(&client, "device-service", "status"),
                );
                let processes = peers.as_ref().map(|p| uptimes.observe(p));
                hub.offer(Event::Health(json!({
                    "peers": peers, "router": router, "logfwd": logfwd,
                    "gamepad": gamepad, "devices": devices, "processes": processes,
                })));
            }
        }
    }
}

async fn call(client: &Client, service: &str, method: &str) -> Option<serde_json::Value> {
    client
        .call_with_timeout(service, method, vec![], POLL_TIMEOUT)
        .await
        .ok()
        .map(|v| to_json(&v))
}

/// Each process's uptime and the restarts the dashboard saw, from the router's peers: a
/// service whose `connected_since` moved on was restarted (or reconnected).
#[derive(Default)]
struct Uptimes {
    since: BTreeMap<String, (serde_json::Value, u64)>,
}

impl Uptimes {
    fn observe(&mut self, peers: &serde_json::Value) -> serde_json::Value {
        let now = pitcrew::robot::status::unix_ms() as f64 / 1000.0;
        let mut out = Vec::new();
        for peer in peers.as_array().into_iter().flatten() {
            let Some(identity) = peer["identity"].as_str() else {
                continue;
            };
            if peer["side"] != "service" {
                continue;
            }
            let since = peer["connected_since"].clone();
            let entry = self
                .since
                .entry(identity.to_owned())
                .or_insert_with(|| (since.clone(), 0));
            if entry.0 != since {
                *entry = (since.clone(), entry.1 + 1);
            }
            out.push(json!({
                "name": identity,
                "uptime_s": since.as_f64().map(|s| (now - s).max(0.0)),
                "restarts_seen": entry.1,
            }));
        }
        serde_json::Value::Array(out)
    }
}

/// Reads the gamepad buffers every [`GAMEPAD_POLL`] (on a blocking thread: shared memory
/// opens are system calls) until `shutdown`.
pub async fn gamepads(
    hub: Hub,
    namespace: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(GAMEPAD_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pads: Vec<Option<Gamepad>> = (0..GAMEPADS_SHOWN).map(|_| None).collect();
    let mut reopen_at = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let reopen = Instant::now() >= reopen_at;
        if reopen {
            reopen_at = Instant::now() + Duration::from_secs(1);
        }
        let mut out = Vec::new();
        for (index, slot) in (0u32..).zip(pads.iter_mut()) {
            if slot.is_none() && reopen {
                *slot = Gamepad::open(&namespace, index).ok();
            }
            let state = match slot.as_ref().map(Gamepad::state) {
                Some(Ok(s)) => s,
                Some(Err(_)) => {
                    *slot = None; // superseded: the receiver restarted
                    GamepadState::NEUTRAL
                }
                None => GamepadState::NEUTRAL,
            };
            out.push(json!({
                "index": index,
                "connected": state.connected,
                "buttons": state.buttons(),
                "axes": state.axes(),
            }));
        }
        hub.offer(Event::Gamepads(serde_json::Value::Array(out)));
    }
}

//! The feed: one task takes what the sources read (device updates, the robot state, log
//! records, RPC polls, gamepads, a simulated robot's field and pose), keeps the current picture, and fans each change out to
//! every browser as one JSON text frame, serialised once.
//!
//! Fan-out is a [`broadcast`] ring of [`FRAME_RING`] frames: sending never waits, and each
//! client reads at its own pace. A client that falls more than the ring behind (a slow
//! browser, a stalled network) loses frames (`Lagged`) and is sent a fresh snapshot
//! instead, so it skips ahead without ever delaying the feed, another client, or anything
//! on the robot. The sources reach the feed task through a bounded queue that they
//! `try_send` into: a feed that falls behind drops source events (counted) rather than
//! backing up into the multicast socket or the log subscription.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::sim_view;

/// Frames a client may fall behind before it skips ahead to a snapshot: about 6 s of
/// updates at 20 Hz with logs and polls mixed in.
pub const FRAME_RING: usize = 256;
/// Source events queued for the feed task.
pub const EVENT_QUEUE: usize = 1024;
/// Log records kept for a page that opens (its "recent history").
pub const LOG_HISTORY: usize = 300;
/// How often collected log records go out as one frame: a log flood costs browsers ten
/// frames a second, not one per record.
pub const LOG_FLUSH: Duration = Duration::from_millis(100);
/// At most this many records per log frame; the rest of a burst is counted as skipped.
pub const LOG_BATCH: usize = 200;

/// What a source read.
#[derive(Debug)]
pub enum Event {
    /// A device update datagram (`devices`, `meta`) and when it was received.
    Update {
        /// `{uid: {param: value}}`.
        devices: Map<String, Value>,
        /// `seq`, `sent_us`, `full`, `part`, `parts`.
        meta: Value,
    },
    /// The robot state from the update stream.
    Robot(Value),
    /// One log record.
    Log(Value),
    /// Several older log records (the forwarder's history), oldest first.
    History(Vec<Value>),
    /// `device-service.list_devices`.
    DeviceList(Value),
    /// The health poll: every service's status.
    Health(Value),
    /// Gamepads as the receiver's buffers hold them.
    Gamepads(Value),
    /// The simulated robot's field, once per simulation; `None` when none runs.
    SimField(Option<sim_view::Field>),
    /// The simulated robot's pose.
    SimPose(sim_view::Pose),
}

/// Counters of the feed, for `dashboard-service.stats` and the health panel.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Frames broadcast.
    pub frames: AtomicU64,
    /// Source events dropped because the feed task was behind.
    pub events_dropped: AtomicU64,
    /// Times a client lagged and was sent a snapshot instead.
    pub client_skips: AtomicU64,
    /// Clients dropped because a send did not finish in time.
    pub clients_dropped: AtomicU64,
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Control datagrams sent for pages.
    pub datagrams: AtomicU64,
    /// Log records not shown because a burst exceeded [`LOG_BATCH`].
    pub logs_skipped: AtomicU64,
}

/// The current picture, from which a snapshot is built.
#[derive(Debug, Default)]
struct Picture {
    values: BTreeMap<String, Map<String, Value>>,
    /// When each device's last update with data arrived.
    seen: BTreeMap<String, Instant>,
    robot: Value,
    robot_at: Option<Instant>,
    logs: VecDeque<Value>,
    devices: Value,
    health: Value,
    gamepads: Value,
    /// The simulated robot's field, while a simulation runs.
    sim_field: Option<sim_view::Field>,
    /// Its last pose.
    sim_pose: Option<sim_view::Pose>,
}

/// The handle every part shares: the source queue in, the frame ring out.
#[derive(Clone)]
pub struct Hub {
    events: mpsc::Sender<Event>,
    frames: broadcast::Sender<Arc<str>>,
    picture: Arc<Mutex<Picture>>,
    /// Counters.
    pub stats: Arc<FeedStats>,
}

impl Hub {
    /// A hub and its feed task's input.
    pub fn new() -> (Hub, mpsc::Receiver<Event>) {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let (frames, _) = broadcast::channel(FRAME_RING);
        let hub = Hub {
            events,
            frames,
            picture: Arc::new(Mutex::new(Picture::default())),
            stats: Arc::new(FeedStats::default()),
        };
        (hub, rx)
    }

    /// Hands `event` to the feed task, or drops it (counted) when the task is behind.
    pub fn offer(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A new client's subscription to the frames.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.frames.subscribe()
    }

    /// The whole picture as one `snap` frame.
    pub fn snapshot(&self) -> String {
        let p = lock(&self.picture);
        let now = Instant::now();
        let devices: Map<String, Value> = p
            .values
            .iter()
            .map(|(uid, values)| (uid.clone(), Value::Object(values.clone())))
            .collect();
        let age: Map<String, Value> = p
            .seen
            .iter()
            .map(|(uid, at)| (uid.clone(), json!(millis(now.duration_since(*at)))))
            .collect();
        json!({
            "t": "snap",
            "values": devices,
            "age_ms": age,
            "robot": p.robot,
            "robot_age_ms": p.robot_at.map(|at| millis(now.duration_since(at))),
            "logs": p.logs.iter().collect::<Vec<_>>(),
            "devices": p.devices,
            "health": p.health,
            "gamepads": p.gamepads,
            "sim": p.sim_field.as_ref().map(|field| json!({"field": field, "pose": p.sim_pose})),
        })
        .to_string()
    }

    fn broadcast(&self, frame: Value) {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        // No receivers is not an error: nobody is looking.
        let _ = self.frames.send(Arc::from(frame.to_string()));
    }
}

fn lock(p: &Mutex<Picture>) -> std::sync::MutexGuard<'_, Picture> {
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The feed task: applies events and broadcasts their frames until `shutdown`.
pub async fn run(hub: Hub, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
    let mut pending_logs: Vec<Value> = Vec::new();
    let mut flush = tokio::time::interval(LOG_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = flush.tick() => {
                if !pending_logs.is_empty() {
                    let recs = std::mem::take(&mut pending_logs);
                    hub.broadcast(json!({"t": "logs", "recs": recs}));
                }
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                if let Some(frame) = apply(&hub, event, &mut pending_logs) {
                    hub.broadcast(frame);
                }
            }
        }
    }
}

/// Updates the picture with `event` and returns the frame to broadcast, if any.
fn apply(hub: &Hub, event: Event, pending_logs: &mut Vec<Value>) -> Option<Value> {
    let mut p = lock(&hub.picture);
    match event {
        Event::Update { devices, meta } => {
            let now = Instant::now();
            if meta["full"] == true && meta["part"].as_u64() == Some(0) {
                // A full snapshot lists every connected device: forget the others.
                let listed: Vec<&String> = devices.keys().collect();
                if meta["parts"].as_u64() == Some(1) {
                    p.values.retain(|uid, _| listed.contains(&uid));
                    p.seen.retain(|uid, _| listed.contains(&uid));
                }
            }
            for (uid, values) in &devices {
                let entry = p.values.entry(uid.clone()).or_default();
                let mut changed = false;
                for (k, v) in values.as_object().into_iter().flatten() {
                    entry.insert(k.clone(), v.clone());
                    changed = true;
                }
                if changed || !p.seen.contains_key(uid) {
                    p.seen.insert(uid.clone(), now);
                }
            }
            Some(json!({"t": "upd", "devices": devices, "meta": meta}))
        }
        Event::Robot(state) => {
            p.robot = state.clone();
            p.robot_at = Some(Instant::now());
            Some(json!({"t": "robot", "robot": state}))
        }
        Event::Log(record) => {
            remember_log(&mut p.logs, record.clone());
            if pending_logs.len() < LOG_BATCH {
                pending_logs.push(record);
            } else {
                hub.stats.logs_skipped.fetch_add(1, Ordering::Relaxed);
            }
            None
        }
        Event::History(records) => {
            // History comes first (it is fetched once, at start): live records that were
            // already received stay after it.
            let live: Vec<Value> = p.logs.drain(..).collect();
            for r in records.into_iter().chain(live) {
                remember_log(&mut p.logs, r);
            }
            None
        }
        Event::DeviceList(list) => {
            p.devices = list.clone();
            Some(json!({"t": "devices", "devices": list}))
        }
        Event::Health(health) => {
            p.health = health.clone();
            Some(json!({"t": "health", "health": health}))
        }
        Event::Gamepads(pads) => {
            if p.gamepads == pads {
                return None;
            }
            p.gamepads = pads.clone();
            Some(json!({"t": "pads", "gamepads": pads}))
        }
        Event::SimField(field) => sim_field(&mut p, field),
        Event::SimPose(pose) => sim_pose(&mut p, pose),
    }
}

/// A simulation's field (or that none runs), sent when it is another than the page shows:
/// fetched again after a restart or a reset, the same field is no news, and the page keeps
/// the robot's trail.
fn sim_field(p: &mut Picture, field: Option<sim_view::Field>) -> Option<Value> {
    if p.sim_field == field {
        return None;
    }
    if field.is_none() {
        p.sim_pose = None;
    }
    let frame = json!({"t": "simfield", "field": field});
    p.sim_field = field;
    Some(frame)
}

/// The simulated robot's pose, sent when it moved (a robot at rest costs the pages
/// nothing).
fn sim_pose(p: &mut Picture, pose: sim_view::Pose) -> Option<Value> {
    if p.sim_field.is_none() || p.sim_pose == Some(pose) {
        return None;
    }
    p.sim_pose = Some(pose);
    Some(json!({"t": "simpose", "pose": pose}))
}

fn remember_log(logs: &mut VecDeque<Value>, record: Value) {
    if logs.len() == LOG_HISTORY {
        logs.pop_front();
    }
    logs.push_back(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn updates_build_the_picture_and_go_out_as_frames() {
        let (hub, events) = Hub::new();
        let mut rx = hub.subscribe();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(hub.clone(), events, stop.clone()));
        let devices = json!({"7": {"switch0": true}})
            .as_object()
            .cloned()
            .unwrap();
        hub.offer(Event::Update {
            devices,
            meta: json!({"seq": 1, "full": false, "part": 0, "parts": 1}),
        });
        let frame: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(frame["t"], "upd");
        let snap: Value = serde_json::from_str(&hub.snapshot()).unwrap();
        assert_eq!(snap["values"]["7"]["switch0"], true);
        hub.offer(Event::Log(json!({"event": "hello"})));
        let frame: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(frame["t"], "logs");
        assert_eq!(frame["recs"][0]["event"], "hello");
        stop.cancel();
        task.await.unwrap();
    }

    async fn next(rx: &mut broadcast::Receiver<Arc<str>>) -> Value {
        serde_json::from_str(&rx.recv().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_simulation_sends_its_field_once_and_its_pose_when_it_moves() {
        let (hub, events) = Hub::new();
        let mut rx = hub.subscribe();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(hub.clone(), events, stop.clone()));
        let field = sim_view::Field::parse(json!({"size": [4.0, 3.0], "radius": 0.2})).unwrap();
        let start = sim_view::Pose {
            x: 0.5,
            y: 1.5,
            heading: 0.0,
        };
        let moved = sim_view::Pose { x: 2.0, ..start };
        for event in [
            Event::SimPose(start), // before its field: not shown
            Event::SimField(Some(field.clone())),
            Event::SimField(Some(field.clone())), // fetched again: no news
            Event::SimPose(start),
            Event::SimPose(start), // at rest
            Event::SimPose(moved),
        ] {
            hub.offer(event);
        }
        let f = next(&mut rx).await;
        assert_eq!(
            (&f["t"], &f["field"]["size"]),
            (&json!("simfield"), &json!([4.0, 3.0]))
        );
        assert_eq!(next(&mut rx).await["pose"]["x"], 0.5);
        assert_eq!(next(&mut rx).await["pose"]["x"], 2.0);
        let snap: Value = serde_json::from_str(&hub.snapshot()).unwrap();
        assert_eq!(snap["sim"]["field"]["radius"], 0.2);
        assert_eq!(snap["sim"]["pose"]["x"], 2.0);
        hub.offer(Event::SimField(None));
        let gone = next(&mut rx).await;
        assert_eq!(
            (&gone["t"], &gone["field"]),
            (&json!("simfield"), &Value::Null)
        );
        let snap: Value = serde_json::from_str(&hub.snapshot()).unwrap();
        assert_eq!(snap["sim"], Value::Null);
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_client_that_falls_behind_the_ring_lags_instead_of_blocking_the_sender() {
        let (hub, _events) = Hub::new();
        let mut slow = hub.subscribe();
        for i in 0..(FRAME_RING + 10) {
            hub.broadcast(json!({"t": "x", "i": i}));
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}

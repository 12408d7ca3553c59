//! The log pipeline with real processes: `pitcrew-logspam` apps publish, `pitcrew-logfwd`
//! forwards and keeps history, `pitcrew logs` follows; a forwarder outage, a late
//! subscriber, a stuck subscriber, and garbage on the backend.
//!
//! Synchronisation is by behaviour, never by sleeping and hoping: a follower is known to
//! be subscribed once it has printed a record from a probe app that logs until then.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use pitcrew::codec::Value;
use pitcrew::logging::record::{encode, rfc3339, Envelope, DROPPED_FIELD, DROP_NOTICE};
use pitcrew::options::LogLevel;
use pitcrew::rpc::Client;
use pitcrew_e2e::{bin, wait_for_service, Namespace, Proc};
use serde_json::Value as Json;

/// Every wait in these tests: generous, because a loaded 2-core CI machine is slow.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child whose stdout lines arrive on a channel; killed on drop.
struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the command starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line as JSON, or `None` after `timeout` or at end of output.
    fn next_json(&self, timeout: Duration) -> Option<Json> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// Waits for the process to exit and returns its status.
    fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("the child can be waited for")
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pitcrew logs ARGS` in `ns`, stdout captured.
fn logs_cli(ns: &Namespace, args: &[&str]) -> Lines {
    let mut cmd = ns.cli(&["logs"]);
    cmd.args(args);
    Lines::spawn(cmd)
}

/// `pitcrew-logspam` in `ns` with stdout captured (its summary line).
fn logspam(ns: &Namespace, args: &[&str]) -> Lines {
    let mut cmd = Command::new(bin("pitcrew-logspam"));
    cmd.args(ns.args()).args(args).stdin(Stdio::null());
    Lines::spawn(cmd)
}

fn forwarder(ns: &Namespace, extra: &[&str]) -> Proc {
    ns.spawn("pitcrew-logfwd", extra)
}

fn field<'a>(record: &'a Json, key: &str) -> &'a Json {
    record.get(key).unwrap_or(&Json::Null)
}

fn n_of(record: &Json) -> Option<u64> {
    field(record, "n").as_u64()
}

fn app_of(record: &Json) -> &str {
    field(record, "app").as_str().unwrap_or("")
}

/// Starts a probe app and waits until every follower has printed one of its records:
/// from then on, each follower's subscription is in place.
fn sync_followers(ns: &Namespace, app: &str, followers: &[&Lines]) {
    let _probe = logspam(
        ns,
        &[
            "--app", app, "--count", "0", "--rate", "20", "--first", "1000000",
        ],
    );
    for follower in followers {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "a follower never saw the probe");
            if let Some(r) = follower.next_json(Duration::from_millis(200)) {
                if app_of(&r) == app {
                    break;
                }
            }
        }
    }
}

/// Reads records from `follower` until `done` says so (or fails after [`PATIENCE`]).
fn collect(follower: &Lines, mut done: impl FnMut(&[Json]) -> bool) -> Vec<Json> {
    let deadline = Instant::now() + PATIENCE;
    let mut records = Vec::new();
    while !done(&records) {
        assert!(
            Instant::now() < deadline,
            "gave up after {} records; last: {}",
            records.len(),
            records
                .last()
                .map(|r| r.to_string().chars().take(300).collect::<String>())
                .unwrap_or_default()
        );
        if let Some(r) = follower.next_json(Duration::from_millis(200)) {
            records.push(r);
        }
    }
    records
}

/// The `n` of the records of `app` below the probe range, in arrival order.
fn numbers(records: &[Json], app: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| app_of(r) == app)
        .filter_map(n_of)
        .filter(|n| *n < 1_000_000)
        .collect()
}

async fn recent(client: &Client, limit: u64, app: &str) -> Vec<Value> {
    match client
        .call(
            "logfwd-service",
            "recent_logs",
            vec![limit.into(), Value::Nil, app.into()],
        )
        .await
    {
        Ok(Value::Array(records)) => records,
        other => panic!("recent_logs: {other:?}"),
    }
}

fn get<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    pitcrew::logging::record::record_get(record, key)
}

/// Polls `recent_logs` until `done` holds for the records of `app`.
async fn history_until(
    client: &Client,
    app: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let records = recent(client, 100_000, app).await;
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "history never got there: {} records",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts `got == want`, reporting lengths and the first difference rather than both
/// lists.
#[track_caller]
fn assert_numbers(got: &[u64], want: impl IntoIterator<Item = u64>, what: &str) {
    let want: Vec<u64> = want.into_iter().collect();
    if got != want {
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} records, want {}; first difference at index {first:?} \
             (got {:?}, want {:?})",
            got.len(),
            want.len(),
            first.and_then(|i| got.get(i)),
            first.and_then(|i| want.get(i)),
        );
    }
}

fn router_and_forwarder(ns: &Namespace, extra: &[&str]) -> (Proc, Proc, Client) {
    let router = ns.spawn("pitcrew-router", &[]);
    let fwd = forwarder(ns, extra);
    (router, fwd, ns.client())
}

#[test]
fn three_apps_at_once_reach_a_follower_intact_in_order_and_filters_work() {
    let ns = Namespace::new("logs3");
    let _fwd = forwarder(&ns, &[]);
    let all = logs_cli(&ns, &["--json", "--follow"]);
    let filtered = logs_cli(
        &ns,
        &["--json", "--follow", "--level", "warn", "--app", "b"],
    );
    sync_followers(&ns, "b", &[&all, &filtered]);

    let apps = ["a", "b", "c"];
    let spammers: Vec<Lines> = apps
        .iter()
        .map(|app| logspam(&ns, &["--app", app, "--count", "1000", "--rate", "2000"]))
        .collect();
    let records = collect(&all, |rs| {
        apps.iter().all(|app| numbers(rs, app).last() == Some(&999))
    });
    for app in apps {
        assert_numbers(&numbers(&records, app), 0..1000, app);
    }
    for r in records
        .iter()
        .filter(|r| apps.contains(&app_of(r)) && n_of(r).is_some_and(|n| n < 1000))
    {
        let n = n_of(r).unwrap_or_default();
        let level = if n % 10 == 9 { "warn" } else { "info" };
        assert_eq!(field(r, "level"), level, "{r}");
        assert_eq!(field(r, "event"), "spam", "{r}");
        assert_eq!(field(r, "half").as_f64(), Some(n as f64 / 2.0), "{r}");
        assert_eq!(
            field(r, "even").as_bool(),
            Some(n % 10 != 9 && n % 2 == 0),
            "{r}"
        );
        assert_eq!(field(r, "word"), "spam", "{r}");
        assert!(
            field(r, "timestamp")
                .as_str()
                .is_some_and(|t| t.len() == 27 && t.ends_with('Z')),
            "{r}"
        );
        assert!(
            field(r, "target").is_string() && field(r, "pid").is_u64(),
            "{r}"
        );
    }

    let only_b_warnings = collect(&filtered, |rs| numbers(rs, "b").last() == Some(&999));
    assert!(only_b_warnings
        .iter()
        .all(|r| app_of(r) == "b" && field(r, "level") == "warn"));
    assert_numbers(
        &numbers(&only_b_warnings, "b"),
        (0..1000).filter(|n| n % 10 == 9),
        "b warnings",
    );
    for mut spammer in spammers {
        assert!(spammer.wait().success());
    }
}

/// Voluntary context switches of `pid`'s log-publisher thread so far: one per wake-up.
fn publisher_wakeups(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process runs");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "log-publisher" {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse().ok())
                .expect("the thread's status has its switches");
        }
    }
    panic!("process {pid} has no log-publisher thread");
}

#[test]
fn an_idle_process_does_not_wake_to_publish_and_a_record_after_a_quiet_spell_goes_out_at_once() {
    let ns = Namespace::new("logidle");
    let _fwd = forwarder(&ns, &[]);
    let router = ns.spawn("pitcrew-router", &[]);
    let follower = logs_cli(&ns, &["--json", "--follow"]);
    sync_followers(&ns, "probe", &[&follower]);
    // The router has logged its start and is idle now: its log thread sleeps. (It used
    // to look at its queue every 5 ms: 400 wake-ups in these 2 s.)
    let before = publisher_wakeups(router.pid());
    std::thread::sleep(Duration::from_secs(2));
    let woke = publisher_wakeups(router.pid()) - before;
    assert!(woke <= 40, "an idle log thread woke {woke} times in 2 s");

    // Records 500 ms apart: the publisher falls asleep between any two, and the record
    // itself must wake it (a missed wake-up would hold it for up to a second).
    let mut quiet = logspam(&ns, &["--app", "quiet", "--count", "6", "--rate", "2"]);
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < 6 {
        assert!(Instant::now() < deadline, "got {} quiet records", got.len());
        if let Some(r) = follower.next_json(Duration::from_millis(200)) {
            if app_of(&r) == "quiet" {
                // Fixed-width UTC stamps order as the times they name.
                let by = rfc3339(SystemTime::now() - Duration::from_millis(400));
                let stamp = field(&r, "timestamp")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                got.push((n_of(&r), stamp, by));
            }
        }
    }
    assert_eq!(
        got.iter().map(|(n, ..)| *n).collect::<Vec<_>>(),
        (0..6).map(Some).collect::<Vec<_>>()
    );
    for (n, stamp, by) in got {
        assert!(
            stamp >= by,
            "record {n:?}, logged at {stamp}, reached the follower over 0.4 s later (after {by})"
        );
    }
    assert!(quiet.wait().success());
}

#[tokio::test]
async fn a_forwarder_outage_neither_stalls_the_app_nor_loses_what_follows() {
    let ns = Namespace::new("logout");
    let (_router, mut fwd, client) = router_and_forwarder(&ns, &["--history", "20000"]);
    wait_for_service(&client, "logfwd-service", PATIENCE)
        .await
        .expect("forwarder up");

    // 15 000 records at 5 000/s: the forwarder is away for 2 s (10 000 records' worth).
    let mut spam = logspam(
        &ns,
        &["--app", "outage", "--count", "15000", "--rate", "5000"],
    );
    history_until(&client, "outage", |rs| !rs.is_empty()).await;
    fwd.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _fwd = forwarder(&ns, &["--history", "20000"]);

    let summary = tokio::task::spawn_blocking(move || {
        let line = spam.next_json(PATIENCE).expect("logspam prints a summary");
        assert!(spam.wait().success());
        line
    })
    .await
    .expect("summary");
    let elapsed = summary["elapsed_s"].as_f64().unwrap_or(f64::MAX);
    let nominal = summary["nominal_s"].as_f64().unwrap_or(0.0);
    let slowest_us = summary["max_call_us"].as_f64().unwrap_or(f64::MAX);
    // Blocking on the absent forwarder would cost a whole 2 s at once.
    assert!(
        slowest_us < 250_000.0,
        "a log call took {slowest_us} µs: {summary}"
    );
    assert!(
        elapsed < nominal + 1.5,
        "the work loop lost its rate: {summary}"
    );

    wait_for_service(&client, "logfwd-service", PATIENCE)
        .await
        .expect("forwarder back");
    let records = history_until(&client, "outage", |rs| {
        rs.iter()
            .any(|r| get(r, "n").and_then(Value::as_u64) == Some(14_999))
    })
    .await;
    let notice = records
        .iter()
        .find(|r| get(r, "event").and_then(Value::as_str) == Some(DROP_NOTICE))
        .expect("a drop-count warn arrives");
    assert_eq!(get(notice, "level").and_then(Value::as_str), Some("warn"));
    assert!(
        get(notice, DROPPED_FIELD)
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0
    );
    let ns_after: Vec<u64> = records
        .iter()
        .filter_map(|r| get(r, "n").and_then(Value::as_u64))
        .collect();
    assert!(
        ns_after.windows(2).all(|w| w[0] < w[1]),
        "order kept after the restart"
    );
}

#[tokio::test]
async fn a_late_subscriber_gets_history_through_since_without_duplicates() {
    let ns = Namespace::new("logslate");
    let (_router, _fwd, client) = router_and_forwarder(&ns, &[]);
    wait_for_service(&client, "logfwd-service", PATIENCE)
        .await
        .expect("forwarder up");

    let mut early = logspam(&ns, &["--app", "early", "--count", "50", "--rate", "0"]);
    tokio::task::spawn_blocking(move || assert!(early.wait().success()))
        .await
        .expect("early app ran");
    let history = history_until(&client, "early", |rs| {
        rs.iter()
            .any(|r| get(r, "n").and_then(Value::as_u64) == Some(49))
    })
    .await;
    // The app's own records ("stopped", ...) count too: compare by `seq`.
    let seqs = |rs: &[Value]| -> Vec<u64> {
        rs.iter()
            .filter_map(|r| get(r, "seq").and_then(Value::as_u64))
            .collect()
    };
    let expected = seqs(&history[history.len().saturating_sub(20)..]);
    let mut last20 = logs_cli(&ns, &["--since", "20", "--app", "early", "--json"]);
    let printed = tokio::task::spawn_blocking(move || {
        let records = collect(&last20, |rs| rs.len() >= 20);
        assert!(last20.wait().success());
        assert!(last20.next_json(Duration::from_millis(200)).is_none());
        records
    })
    .await
    .expect("history printed");
    let printed_seqs: Vec<u64> = printed
        .iter()
        .filter_map(|r| field(r, "seq").as_u64())
        .collect();
    assert_eq!(printed_seqs, expected);
    assert!(numbers(&printed, "early").ends_with(&[48, 49]));

    // History and live stream joined: every record exactly once, in order.
    let _late = logspam(&ns, &["--app", "late", "--count", "400", "--rate", "100"]);
    history_until(&client, "late", |rs| rs.len() >= 50).await;
    let follower = logs_cli(
        &ns,
        &["--since", "1000", "--follow", "--app", "late", "--json"],
    );
    let joined = tokio::task::spawn_blocking(move || {
        collect(&follower, |rs| numbers(rs, "late").last() == Some(&399))
    })
    .await
    .expect("stream followed");
    assert_numbers(&numbers(&joined, "late"), 0..400, "history then live");
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_up_another() {
    let ns = Namespace::new("logstuck");
    // 1000 records of slack per subscriber: a second of this test's rate, so the reading
    // subscriber keeps up even on a loaded machine, while the stuck one overflows.
    let _fwd = forwarder(&ns, &["--subscriber-hwm", "1000"]);
    let context = zmq::Context::new();
    let stuck = context.socket(zmq::SUB).expect("socket");
    stuck.set_rcvhwm(10).expect("hwm");
    stuck.set_subscribe(b"").expect("subscribe");
    stuck
        .connect(&format!("ipc:///tmp/{}-logpub.sock", ns.name))
        .expect("connect");
    let follower = logs_cli(&ns, &["--json", "--follow", "--app", "steady"]);
    sync_followers(&ns, "steady", &[&follower]);

    // 3000 records of 8 KB at a modest 1000/s: 24 MB, far beyond what the stuck
    // subscriber's pipe (1000 records) and socket buffers hold.
    let mut spam = logspam(
        &ns,
        &[
            "--app", "steady", "--count", "3000", "--rate", "1000", "--pad", "8000",
        ],
    );
    let records = collect(&follower, |rs| numbers(rs, "steady").last() == Some(&2999));
    assert_numbers(
        &numbers(&records, "steady"),
        0..3000,
        "the reading subscriber",
    );
    assert!(spam.wait().success());
    let mut stuck_got = 0;
    while stuck.recv_multipart(zmq::DONTWAIT).is_ok() {
        stuck_got += 1;
    }
    assert!(
        stuck_got < 3000,
        "the stuck subscriber was never limited ({stuck_got})"
    );
}

fn valid_record(app: &str) -> [Vec<u8>; 2] {
    let (topic, payload) = encode(
        &Envelope {
            time: std::time::SystemTime::now(),
            level: LogLevel::Info,
            app,
            target: "test",
            event: "hand-made",
            pid: 1,
            seq: 0,
        },
        vec![("k", Value::from(1))],
    );
    [topic.as_bytes().to_vec(), payload]
}

#[tokio::test]
async fn malformed_messages_on_the_backend_are_counted_and_dropped() {
    let ns = Namespace::new("logbad");
    let (_router, mut fwd, client) = router_and_forwarder(&ns, &[]);
    wait_for_service(&client, "logfwd-service", PATIENCE)
        .await
        .expect("forwarder up");

    let context = zmq::Context::new();
    let publisher = context.socket(zmq::XPUB).expect("socket");
    publisher
        .connect(&format!("ipc:///tmp/{}-log.sock", ns.name))
        .expect("connect");
    // The forwarder's subscription tells us it is listening.
    publisher.set_rcvtimeo(30_000).expect("timeout");
    publisher.recv_bytes(0).expect("the forwarder subscribes");

    let [topic, good] = valid_record("intruder");
    let garbage: Vec<Vec<Vec<u8>>> = vec![
        vec![b"just one frame".to_vec()],
        vec![b"info".to_vec(), b"\xc1\xc1 not msgpack".to_vec()],
        vec![b"info".to_vec(), vec![0x01]],
        vec![b"loud".to_vec(), good.clone()],
        vec![topic.clone(), good.clone(), b"extra".to_vec()],
        vec![b"warn".to_vec(), good.clone()],
        vec![Vec::new(), Vec::new()],
        vec![b"info".to_vec(), vec![0x91; 100_000]],
    ];
    for frames in &garbage {
        publisher.send_multipart(frames, 0).expect("send");
    }
    publisher.send_multipart([topic, good], 0).expect("send");

    let records = history_until(&client, "intruder", |rs| !rs.is_empty()).await;
    assert_eq!(records.len(), 1);
    let stats = client
        .call("logfwd-service", "stats", vec![])
        .await
        .expect("stats");
    assert_eq!(
        get(&stats, "malformed").and_then(Value::as_u64),
        Some(garbage.len() as u64)
    );
    // An oversized message costs the sender its connection, not the forwarder its life.
    publisher
        .send_multipart([b"info".to_vec(), vec![0; 2 << 20]], 0)
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fwd.is_running());
    let stats = client
        .call("logfwd-service", "stats", vec![])
        .await
        .expect("still answers");
    let by_app: BTreeMap<String, u64> = match get(&stats, "publishers") {
        Some(Value::Array(ps)) => ps
            .iter()
            .filter_map(|p| {
                Some((
                    get(p, "app")?.as_str()?.to_owned(),
                    get(p, "records")?.as_u64()?,
                ))
            })
            .collect(),
        other => panic!("publishers: {other:?}"),
    };
    assert_eq!(by_app.get("intruder"), Some(&1), "{stats}");
}

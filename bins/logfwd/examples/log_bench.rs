//! Benchmarks of the log pipeline on ipc sockets under /tmp, with the real forwarder
//! binary in a process of its own:
//!
//! * `log_publish_ns`: the cost to the caller of one `info!` with three fields while the
//!   forwarder runs (publishing layer only, no local output), p50/p99 over 200 000 calls;
//! * `logfwd_throughput`: records per second through the forwarder to one subscriber;
//!   with `--scale`, only this, from 1, 2, 4 and 8 publishers (a thread and socket each, as
//!   as many processes logging at once), for `scripts/bench scale`.
//!
//! Prints one JSON object per figure on stdout (`scripts/bench` collects them):
//! `cargo build --release -p pitcrew-logfwd && cargo run --release -p pitcrew-logfwd --example
//! log_bench`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pitcrew::codec::Value;
use pitcrew::endpoint::{PubSubOptions, Publisher, SubSocket};
use pitcrew::logging::record::{encode, Envelope};
use pitcrew::logging::{publish_layer, PublishOptions};
use pitcrew::options::LogLevel;
use tracing_subscriber::layer::SubscriberExt;

const CALLS: usize = 200_000;
const THROUGHPUT_RECORDS: u64 = 500_000;

fn main() -> anyhow::Result<()> {
    let base = format!("/tmp/pitcrew-logbench-{}", std::process::id());
    let backend = format!("ipc://{base}-in.sock");
    let frontend = format!("ipc://{base}-out.sock");
    let _forwarder = spawn_forwarder(&base, &backend, &frontend)?;

    let received = Arc::new(AtomicU64::new(0));
    let last_at = Arc::new(Mutex::new(Instant::now()));
    let done = Arc::new(AtomicBool::new(false));
    let counting = {
        let (received, last_at, done) = (received.clone(), last_at.clone(), done.clone());
        let sub = SubSocket::connect(
            &frontend,
            &[b""],
            PubSubOptions {
                hwm: 1_000_000,
                ..PubSubOptions::default()
            },
        )?;
        std::thread::spawn(move || -> anyhow::Result<()> {
            while !done.load(Ordering::Relaxed) {
                if sub.wait(Duration::from_millis(50))? {
                    while sub.try_recv()?.is_some() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    *last_at
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
                }
            }
            Ok(())
        })
    };

    if std::env::args().any(|a| a == "--scale") {
        for publishers in [1, 2, 4, 8] {
            throughput(&backend, &received, &last_at, publishers)?;
        }
    } else {
        publish_cost(&backend, &received)?;
        throughput(&backend, &received, &last_at, 1)?;
    }

    done.store(true, Ordering::Relaxed);
    let _ = counting.join();
    Ok(())
}

/// The forwarder runs as the real binary, in a process of its own as on the robot; it
/// must be built next to this example (`cargo build --release -p pitcrew-logfwd`).
/// The second field is the path prefix of the ipc sockets it binds.
struct ForwarderProcess(Child, String);

impl Drop for ForwarderProcess {
    /// Kills the forwarder and removes the socket files it can no longer remove itself.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        for kind in ["in", "out", "srv"] {
            let _ = std::fs::remove_file(format!("{}-{kind}.sock", self.1));
        }
    }
}

fn spawn_forwarder(base: &str, backend: &str, frontend: &str) -> anyhow::Result<ForwarderProcess> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("pitcrew-logfwd"))
        .filter(|bin| bin.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("build pitcrew-logfwd first: cargo build --release -p pitcrew-logfwd")
        })?;
    let child = Command::new(bin)
        .args(["--namespace", "logbench", "--log-format", "json"])
        .args(["--log-backend", backend, "--log-frontend", frontend])
        .args(["--router-backend", &format!("ipc://{base}-srv.sock")])
        .args(["--subscriber-hwm", "1000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(ForwarderProcess(child, base.to_owned()))
}

/// Waits until `received` reaches `at_least` or `timeout` passes.
fn wait_for(received: &AtomicU64, at_least: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while received.load(Ordering::Relaxed) < at_least {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn publish_cost(backend: &str, received: &AtomicU64) -> anyhow::Result<()> {
    let (layer, guard) = publish_layer("bench", backend, PublishOptions::default())?;
    let subscriber = tracing_subscriber::registry().with(layer);
    let _default = tracing::subscriber::set_default(subscriber);
    // Until a record has made the whole trip, the subscriptions are not all in place.
    let start = received.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) == start && Instant::now() < deadline {
        tracing::info!("warming up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ns = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        tracing::info!(
            iteration = i,
            ratio = 0.5,
            word = "bench",
            "benchmark record"
        );
        ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if i % 200 == 199 {
            // Bursts of 200 a millisecond (200 000/s): heavy, but within what the
            // forwarder takes, so the figure is the caller's cost, not overload.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let arrived = wait_for(received, start + CALLS as u64, Duration::from_secs(10));
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize];
    println!(
        "{{\"bench\":\"log_publish_ns\",\"p50\":{},\"p99\":{},\"max\":{},\"calls\":{CALLS},\"dropped\":{},\"all_delivered\":{arrived}}}",
        pct(0.5),
        pct(0.99),
        ns[ns.len() - 1],
        guard.dropped()
    );
    drop(guard);
    Ok(())
}

fn throughput(
    backend: &str,
    received: &AtomicU64,
    last_at: &Mutex<Instant>,
    publishers: u64,
) -> anyhow::Result<()> {
    let (topic, payload) = encode(
        &Envelope {
            time: SystemTime::now(),
            level: LogLevel::Info,
            app: "bench",
            target: "log_bench",
            event: "benchmark record",
            pid: std::process::id(),
            seq: 0,
        },
        vec![
            ("iteration", Value::from(12_345)),
            ("ratio", Value::F64(0.5)),
            ("word", Value::from("bench")),
        ],
    );
    let each = THROUGHPUT_RECORDS / publishers;
    let sockets = (0..publishers)
        .map(|_| {
            let publisher = Publisher::connect(
                backend,
                PubSubOptions {
                    hwm: 10_000,
                    ..PubSubOptions::default()
                },
            )?;
            let mut subscribed = 0;
            let deadline = Instant::now() + Duration::from_secs(10);
            while subscribed <= 0 && Instant::now() < deadline {
                publisher.wait(None, Duration::from_millis(10))?;
                subscribed += publisher.subscription_changes()?;
            }
            Ok(publisher)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start_count = received.load(Ordering::Relaxed);
    let started = Instant::now();
    let sent: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .into_iter()
            .map(|publisher| {
                let (topic, payload) = (&topic, &payload);
                s.spawn(move || -> anyhow::Result<u64> {
                    let mut sent = 0;
                    while sent < each {
                        if publisher.try_send(topic.as_bytes(), payload)? {
                            sent += 1;
                        } else {
                            // The pipe (10 000 records) is full: sleep rather than spin,
                            // which on a small machine would take the CPU from the
                            // forwarder being measured.
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                    Ok(sent)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)).unwrap_or(0))
            .sum()
    });
    wait_for(received, start_count + sent, Duration::from_secs(20));
    let got = received.load(Ordering::Relaxed) - start_count;
    let took = last_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .duration_since(started)
        .as_secs_f64();
    println!(
        "{{\"bench\":\"logfwd_throughput\",\"records_per_s\":{:.0},\"records\":{got},\"sent\":{sent},\"record_bytes\":{},\"publishers\":{publishers}}}",
        got as f64 / took.max(1e-9),
        payload.len()
    );
    Ok(())
}

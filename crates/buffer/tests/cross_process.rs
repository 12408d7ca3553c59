//! Cross-process tests with REAL child processes: this test binary re-executes itself with
//! `PITCREW_BUFFER_CHILD=<role>:<namespace>` and runs only `child_role`, which plays a writer.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{monotonic_ns, open_when_ready, pair_key, pair_type, unique_namespace, Cleanup};
use pitcrew_buffer::{reset_stale, Owner, SegmentKey};
use pitcrew_catalog::Value;

const ROLE_ENV: &str = "PITCREW_BUFFER_CHILD";
/// Writers give up on their own after this, in case the parent died.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn spawn(role: &str, ns: &str) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, format!("{role}:{ns}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// The child side. A no-op in a normal test run.
#[test]
fn child_role() {
    let Ok(spec) = std::env::var(ROLE_ENV) else {
        return;
    };
    let (role, ns) = spec.split_once(':').expect("role:namespace");
    let end = Instant::now() + CHILD_LIFETIME;
    match role {
        "owner_pairs" => {
            let owner = Owner::create(ns, pair_type(), pair_key()).expect("create");
            let mut i = 1i64;
            while Instant::now() < end {
                for _ in 0..1000 {
                    owner
                        .set_values(&[("a", Value::I64(i)), ("b", Value::I64(-i))])
                        .expect("set");
                    i += 1;
                }
            }
            std::mem::forget(owner); // behave like a crash: leave the segment behind
        }
        "consumer_pairs" => {
            let buf = open_when_ready(ns, Duration::from_secs(10));
            let mut i = 1i64;
            while Instant::now() < end {
                buf.write_values(&[("a", Value::I64(i)), ("b", Value::I64(-i))])
                    .expect("write");
                i += 1;
            }
        }
        "bits0" | "bits1" => {
            let buf = open_when_ready(ns, Duration::from_secs(10));
            let param = if role == "bits0" { "w0" } else { "w1" };
            for k in 1..=BITS_WRITES {
                buf.write(param, k).expect("write");
            }
        }
        "wake" => {
            let buf = open_when_ready(ns, Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(100));
            buf.write_value("stamp", Value::U64(monotonic_ns()))
                .expect("write");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn no_torn_or_mixed_reads_across_processes() {
    let ns = unique_namespace("torn");
    let _c = Cleanup(ns.clone());
    let mut child = spawn("owner_pairs", &ns);
    let buf = open_when_ready(&ns, Duration::from_secs(20));
    while buf.get::<i64>("a").unwrap() == 0 {
        std::thread::yield_now();
    }
    let mut changes = 0u32;
    let mut last = 0i64;
    for _ in 0..1_000_000 {
        let v = buf.read_values(&["a", "b"]).unwrap();
        let (Value::I64(a), Value::I64(b)) = (v[0], v[1]) else {
            panic!("types")
        };
        assert_eq!(a, -b, "torn or mixed read");
        if a != last {
            changes += 1;
            last = a;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        changes > 100,
        "the writer made progress during the reads ({changes})"
    );
    // The killed owner left its segment: the next owner's start-up cleanup removes it.
    let removed = reset_stale(&ns).unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(matches!(
        buf.get::<i64>("a"),
        Err(pitcrew_buffer::BufferError::Superseded { .. })
    ));
    Owner::create(&ns, pair_type(), pair_key()).expect("a new owner starts cleanly");
}

#[test]
fn sigkill_mid_write_recovers_within_10ms() {
    let ns = unique_namespace("kill");
    let _c = Cleanup(ns.clone());
    let owner = Owner::create(&ns, pair_type(), pair_key()).unwrap();
    let mut caught = 0;
    for attempt in 0..200 {
        let mut child = spawn("consumer_pairs", &ns);
        let before = owner.desired_values(&["a"]).unwrap()[0];
        while owner.desired_values(&["a"]).unwrap()[0] == before {
            std::thread::yield_now();
        }
        // Torn-read check on the write block while the child writes.
        for _ in 0..20_000 {
            let v = owner.desired_values(&["a", "b"]).unwrap();
            assert_eq!(
                v[0].as_i128(),
                v[1].as_i128().map(|b| -b),
                "torn write-block read"
            );
        }
        std::thread::sleep(Duration::from_micros(100 * (attempt % 7)));
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        if owner.write_lock_holder() != Some(pid) {
            continue; // killed outside the critical section; try again
        }
        caught += 1;
        let t0 = Instant::now();
        let v = owner.desired_values(&["a", "b"]).unwrap();
        assert_eq!(
            v[0].as_i128(),
            v[1].as_i128().map(|b| -b),
            "data is one of the two versions"
        );
        let read_done = t0.elapsed();
        let writer = open_when_ready(&ns, Duration::from_secs(1));
        let t1 = Instant::now();
        writer
            .write_values(&[("a", Value::I64(7)), ("b", Value::I64(-7))])
            .unwrap();
        let write_done = t1.elapsed();
        assert!(
            read_done < Duration::from_millis(10),
            "read took {read_done:?}"
        );
        assert!(
            write_done < Duration::from_millis(10),
            "write took {write_done:?}"
        );
        assert_eq!(
            owner.desired_values(&["a", "b"]).unwrap(),
            vec![Value::I64(7), Value::I64(-7)]
        );
        assert!(owner.stats().lock_recoveries >= 1);
        if caught >= 3 {
            break;
        }
    }
    assert!(
        caught >= 1,
        "never killed a writer inside its critical section"
    );
}

const BITS_WRITES: u32 = 20_000;

#[test]
fn two_writer_processes_lose_no_bit() {
    let ns = unique_namespace("bits");
    let _c = Cleanup(ns.clone());
    let owner = Owner::create(&ns, pair_type(), pair_key()).unwrap();
    let mut kids = [spawn("bits0", &ns), spawn("bits1", &ns)];
    let mut max = [0u32; 2];
    let mut takes = [0u32; 2];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = kids.iter_mut().all(|k| k.try_wait().unwrap().is_some());
        let bits = owner.take_write().unwrap();
        let v = owner.desired_values(&["w0", "w1"]).unwrap();
        for (i, bit) in [7, 8].into_iter().enumerate() {
            if bits & (1 << bit) != 0 {
                takes[i] += 1;
                let Value::U32(x) = v[i] else { panic!("type") };
                max[i] = max[i].max(x);
            }
        }
        if done && owner.take_write().unwrap() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "children did not finish");
        std::thread::yield_now();
    }
    for k in &mut kids {
        assert!(k.wait().unwrap().success());
    }
    assert_eq!(
        max, [BITS_WRITES; 2],
        "a final write's bit was lost (takes {takes:?})"
    );
    assert!(takes[0] > 0 && takes[1] > 0);
}

#[test]
fn owner_is_woken_by_a_write_from_another_process() {
    let ns = unique_namespace("xwake");
    let _c = Cleanup(ns.clone());
    let owner = Owner::create(&ns, pair_type(), pair_key()).unwrap();
    let mut child = spawn("wake", &ns);
    let woke = owner.wait_for_change(Duration::from_secs(20)).unwrap();
    let now = monotonic_ns();
    assert!(woke, "timed out");
    let Value::U64(stamp) = owner.desired_values(&["stamp"]).unwrap()[0] else {
        panic!("type")
    };
    let latency = Duration::from_nanos(now.saturating_sub(stamp));
    assert!(
        latency < Duration::from_millis(100),
        "woken {latency:?} after the write"
    );
    assert!(child.wait().unwrap().success());
    let _ = SegmentKey::Index(0);
}
